//! The media layer's errors.

use std::path::PathBuf;

/// Why a media file could not be opened, probed or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The request was cancelled while it decoded (a seek made it stale): nothing is wrong
    /// with the media.
    #[error("decode cancelled")]
    Cancelled,
    /// A decoder for the file does not fit in the memory budget yet: the other decode
    /// workers are asked to close theirs, and the request is to be made again (nothing is
    /// wrong with the media).
    #[error("{path}: no room in the memory budget for its decoder ({bytes} bytes) yet")]
    NoRoom {
        /// The file.
        path: PathBuf,
        /// The decoder's estimated state.
        bytes: usize,
    },
    /// A rendered frame was asked of the disk tier and is not there (a worker cannot render:
    /// the frame is composited from its layers instead).
    #[error("frame not in the disk cache")]
    NotCached,
    /// The path does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The path is a directory, not a media file.
    #[error("{path}: is a directory, not a media file")]
    IsDirectory {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file is empty.
    #[error("{path}: file is empty")]
    Empty {
        /// The path asked for.
        path: PathBuf,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not an MP4/MOV the demuxer can read (no `ftyp`/`moov`, a broken box, …).
    #[error("{path}: not a readable MP4/MOV: {reason}")]
    InvalidContainer {
        /// The file.
        path: PathBuf,
        /// What the demuxer found wrong.
        reason: String,
    },
    /// The file's sample table points past its end: the file was cut short.
    #[error("{path}: truncated: samples need {needed} bytes, file has {size}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The byte offset the sample table needs.
        needed: u64,
        /// The file's size.
        size: u64,
    },
    /// The file has no video track.
    #[error("{path}: no video track")]
    NoVideoTrack {
        /// The file.
        path: PathBuf,
    },
    /// No decoder backend in this build can decode the stream. Refused up front: never garbage frames.
    #[error("unsupported stream: {codec}: {reason}")]
    Unsupported {
        /// The codec (and profile) named by the stream.
        codec: String,
        /// Why each built backend refused it.
        reason: String,
    },
    /// A frame index past the end of the stream.
    #[error("frame {index} out of range: the stream has {frames} frames")]
    FrameOutOfRange {
        /// The index asked for.
        index: u64,
        /// Frames in the stream.
        frames: u64,
    },
    /// The decoder rejected the bitstream (corrupt data).
    #[error("{backend} decoder: {reason}")]
    Decode {
        /// Which backend.
        backend: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl MediaError {
    /// Whether trying again (another frame, another seek) may succeed: a decode error on one
    /// frame is; a file that cannot be opened or a codec that cannot be decoded is not.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Decode { .. } | Self::FrameOutOfRange { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a media file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Writing the output failed (full disk, permissions, …). Nothing was left at the destination.
    #[error("{path}: {source}")]
    Io {
        /// The destination.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The settings cannot be encoded (zero size, odd size, zero frame rate, …).
    #[error("invalid encode settings: {0}")]
    InvalidSettings(String),
    /// A frame of another size than the encoder was set up for.
    #[error("frame is {got_width}x{got_height}, encoder expects {width}x{height}")]
    FrameSize {
        /// Encoder width.
        width: u32,
        /// Encoder height.
        height: u32,
        /// Frame width.
        got_width: u32,
        /// Frame height.
        got_height: u32,
    },
    /// The encoder failed.
    #[error("video encoder: {0}")]
    Encode(String),
    /// The MP4 writer failed.
    #[error("mp4 writer: {0}")]
    Mux(String),
    /// The complete file did not read back as written (frame count, keyframes).
    #[error("written file failed verification: {0}")]
    Verify(String),
    /// Reading the source failed.
    #[error(transparent)]
    Source(#[from] MediaError),
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_stay_small() {
        assert!(size_of::<super::MediaError>() <= 64);
    }
}
