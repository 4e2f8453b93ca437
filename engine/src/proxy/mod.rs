//! Proxy files: reduced-resolution H.264 (or, with libav, ProRes) copies of originals, made
//! in the background.
//!
//! - [`files`]: naming (`<stem>_<height>p.mp4`), the manifest that ties a proxy to its source's
//!   fingerprint, staleness checks.
//! - [`pipeline`]: one proxy made — decode (several GOP ranges in parallel, the best backend
//!   the registry has) → scale in YUV → encode (openh264 or libav's ProRes, one encoder per
//!   worker) → mux in order, atomically, verified before it replaces anything.
//! - [`manager`]: the job queue (priority, FIFO within one), a bounded pool of workers running
//!   below playback priority, cancellation, progress and ETA.
//!
//! Frame mapping: a proxy has the source's frame count and frame rate, so proxy frame N is
//! source frame N; playback switches between them by frame index.

mod codec;
pub mod files;
pub mod manager;
pub mod pipeline;

use std::path::PathBuf;

pub use files::{ProxyCheck, ProxyManifest, check_proxy, proxy_path};
pub use manager::{JobId, ProxyJobStatus, ProxyManager, ProxyManagerOptions, ProxyProgress};
pub use pipeline::{ProxyJobSpec, ProxyOutput, generate_proxy, proxy_width};

use crate::media::{MediaError, WriteError};

/// Why a proxy was not made. Whatever the reason, nothing that looks like a proxy was left
/// at its path and an older proxy there is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The source cannot be read or decoded.
    #[error("source: {0}")]
    Source(#[from] MediaError),
    /// Writing the proxy failed (full disk, permissions, encoder, verification).
    #[error("writing the proxy: {0}")]
    Write(#[from] WriteError),
    /// A proxy must be smaller than its source.
    #[error("a {height}p proxy of a {source_height}p source would not be smaller")]
    NotSmaller {
        /// Requested height.
        height: u32,
        /// Source height.
        source_height: u32,
    },
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Fewer frames came out than the source has.
    #[error("{got} frames made, the source has {expected}")]
    FrameCount {
        /// Source frames.
        expected: u64,
        /// Frames made.
        got: u64,
    },
    /// The manifest could not be written (a full disk): the proxy was removed with it.
    #[error("cannot write the manifest {path}: {source}; the proxy was removed with it")]
    Manifest {
        /// Manifest path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// This build cannot make the proxy asked for (ProRes without the `ffmpeg` feature).
    #[error("{0}")]
    Unsupported(String),
    /// A worker thread failed (could not start, panicked, got an unusable frame).
    #[error("worker: {0}")]
    Worker(String),
}

impl ProxyError {
    /// Whether running the same job again may succeed (everything but a bad source or a
    /// request that cannot be met).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::Source(_) | Self::NotSmaller { .. } | Self::Unsupported(_)
        )
    }
}
