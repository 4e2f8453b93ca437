//! Probing: what a file holds, from its boxes and parameter sets alone. Nothing is decoded, so
//! an hour of 4K probes in milliseconds.

use std::path::Path;

use framelock_components::{MediaInfo, VideoStreamInfo};

use super::decode::{DecoderRegistry, StreamDescription};
use super::{MediaError, Mp4Demuxer};

/// Probes `path`, naming the backend of `registry` that would decode its video (or why none
/// can). Errors only when the file cannot be read as MP4/MOV or has no video track: an
/// undecodable stream is still described.
pub fn probe(path: impl AsRef<Path>, registry: &DecoderRegistry) -> Result<MediaInfo, MediaError> {
    let demux = Mp4Demuxer::open(path)?;
    Ok(describe(&demux, registry))
}

/// Probes an MP4/MOV held in memory as [`probe`] does a file (`name` stands for its path).
pub fn probe_bytes(
    bytes: impl Into<std::sync::Arc<[u8]>>,
    name: impl Into<std::path::PathBuf>,
    registry: &DecoderRegistry,
) -> Result<MediaInfo, MediaError> {
    let demux = Mp4Demuxer::from_bytes(bytes, name)?;
    Ok(describe(&demux, registry))
}

pub(crate) fn describe(demux: &Mp4Demuxer, registry: &DecoderRegistry) -> MediaInfo {
    let track = demux.video();
    let stream = StreamDescription::from_track(track);
    let (backend, unsupported, decoder_bytes) = match registry.select(&stream) {
        Ok(sel) => (
            Some(sel.backend.name().to_string()),
            None,
            sel.backend.state_bytes(&stream) as u64,
        ),
        Err(MediaError::Unsupported { reason, .. }) => (None, Some(reason), 0),
        Err(e) => (None, Some(e.to_string()), 0),
    };
    MediaInfo {
        path: demux.path().to_path_buf(),
        file_size: demux.file_size(),
        container: demux.brand().to_string(),
        video: VideoStreamInfo {
            track_id: track.track_id,
            codec: track.codec.clone(),
            codec_string: track.codec_string.clone(),
            profile: stream.profile.clone(),
            level: stream.level.clone(),
            width: track
                .orientation
                .display_size(stream.width, stream.height)
                .0,
            height: track
                .orientation
                .display_size(stream.width, stream.height)
                .1,
            rotation: track.orientation.rotation,
            mirrored: track.orientation.mirrored,
            decoder_bytes,
            bit_depth: stream.bit_depth,
            chroma: stream.chroma,
            interlaced: stream.interlaced,
            has_reordering: track.has_reordering,
            frame_rate: track.frame_rate,
            frame_count: track.frame_count(),
            duration_secs: track.duration_secs(),
            keyframes: track.keyframes.clone(),
            frame_times: track.frame_times.clone(),
            backend,
            unsupported,
        },
        audio: demux.audio().cloned(),
    }
}
