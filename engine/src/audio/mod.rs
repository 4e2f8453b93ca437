//! Audio: files decoded with symphonia ([`AudioSource`]), converted to the mixer's channels
//! and resampled with rubato in seam-free blocks ([`ResampledSource`]), and mixed
//! sample-exactly on the timeline ([`Mixer`]), for playback and offline alike; in playback
//! the mixer runs on its own thread into a ring the host's audio callback pulls from
//! ([`AudioOutput`], [`AudioPull`]). Waveform peaks are computed in the background and kept
//! on disk ([`Waveforms`]).
//!
//! Samples are f32, interleaved; a *frame* is one sample per channel. Timeline positions
//! become output frames with exact rational arithmetic
//! ([`framelock_components::AudioFormat::sample_at_frame`]).

mod encode;
#[cfg(feature = "ffmpeg")]
mod libav;
mod mix;
mod output;
mod resampled;
mod sink;
mod source;
mod waveform;

use std::path::PathBuf;

pub use encode::{AudioCodec, AudioEncoder, AudioPacket};
pub use mix::{MixClip, Mixer};
pub use output::{AudioOutput, AudioPull, CHUNK_FRAMES};
pub use resampled::{ResampledSource, convert_channels};
#[cfg(feature = "cpal")]
pub use sink::CpalSink;
pub use sink::{AudioSink, CallbackSink, NullSink, SinkError};
pub use source::AudioSource;
pub use waveform::{LEVELS, PeakLevel, Peaks, WaveformState, Waveforms, read_stored};

/// Why audio cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has no audio track.
    #[error("{0}: no audio track")]
    NoAudio(PathBuf),
    /// The container or codec is not one this build decodes, or the stream is malformed
    /// beyond a packet.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
