//! What a probe learns about a media file, without decoding anything.

use serde::{Deserialize, Serialize};

use crate::Rational;

/// A compressed stream's codec, as named by its sample entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC (`avc1`, `avc3`).
    H264,
    /// H.265 / HEVC (`hvc1`, `hev1`).
    Hevc,
    /// AV1 (`av01`).
    Av1,
    /// VP8 (`vp08`).
    Vp8,
    /// VP9 (`vp09`).
    Vp9,
    /// AAC audio (`mp4a`).
    Aac,
    /// A sample entry framelock does not know; the four-character code as written.
    Other(String),
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::H264 => f.write_str("h264"),
            Self::Hevc => f.write_str("hevc"),
            Self::Av1 => f.write_str("av1"),
            Self::Vp8 => f.write_str("vp8"),
            Self::Vp9 => f.write_str("vp9"),
            Self::Aac => f.write_str("aac"),
            Self::Other(fourcc) => write!(f, "unknown ({fourcc})"),
        }
    }
}

/// Chroma subsampling of a video stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChromaFormat {
    /// Luma only.
    Monochrome,
    /// 4:2:0, the format of nearly all delivery video.
    Yuv420,
    /// 4:2:2, common in camera and intermediate codecs.
    Yuv422,
    /// 4:4:4.
    Yuv444,
}

impl std::fmt::Display for ChromaFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Monochrome => "4:0:0",
            Self::Yuv420 => "4:2:0",
            Self::Yuv422 => "4:2:2",
            Self::Yuv444 => "4:4:4",
        })
    }
}

/// A video stream's facts, read from the container and the codec's parameter sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoStreamInfo {
    /// The container's track id.
    pub track_id: u32,
    /// Codec.
    pub codec: Codec,
    /// RFC 6381 codec string, e.g. `avc1.640028`, when known.
    pub codec_string: Option<String>,
    /// Profile name, e.g. `High`, `Constrained Baseline`, `Main 10`, when known.
    pub profile: Option<String>,
    /// Level, e.g. `4.0`, when known.
    pub level: Option<String>,
    /// Coded picture width in pixels (after cropping).
    pub width: u32,
    /// Coded picture height in pixels (after cropping).
    pub height: u32,
    /// Bits per luma sample, when known.
    pub bit_depth: Option<u8>,
    /// Chroma subsampling, when known.
    pub chroma: Option<ChromaFormat>,
    /// Whether the stream is interlaced (field or MBAFF coded), when known.
    pub interlaced: Option<bool>,
    /// Whether any frame is presented in another order than it is decoded (B-frames).
    pub has_reordering: bool,
    /// Frames per second, exact.
    pub frame_rate: Rational,
    /// Number of frames presented.
    pub frame_count: u64,
    /// Presented duration in seconds.
    pub duration_secs: f64,
    /// Presentation indices of the frames a decoder can start at (sync samples), ascending.
    pub keyframes: Vec<u64>,
    /// Which decoder backend will decode this stream in this build, or `None` if none can
    /// (then [`VideoStreamInfo::unsupported`] says why).
    pub backend: Option<String>,
    /// Why no built backend can decode this stream, when none can.
    pub unsupported: Option<String>,
}

/// An audio stream's facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioStreamInfo {
    /// The container's track id.
    pub track_id: u32,
    /// Codec.
    pub codec: Codec,
    /// RFC 6381 codec string, e.g. `mp4a.40.2`, when known.
    pub codec_string: Option<String>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Duration in seconds.
    pub duration_secs: f64,
}

/// Everything a probe learns about one media file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The file probed.
    pub path: std::path::PathBuf,
    /// File size in bytes.
    pub file_size: u64,
    /// Container brand, e.g. `isom`, `qt  `.
    pub container: String,
    /// The video stream framelock plays (the first video track).
    pub video: VideoStreamInfo,
    /// The first audio track, if any.
    pub audio: Option<AudioStreamInfo>,
}
