//! What opening a project takes and what the engine's calls answer with: the options, the
//! error, and the cache reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use framelock_components::{
    MemoryBudget, Pressure, ProjectError, ProxyStrategy, QualitySettings, TierStats,
};
use framelock_engine::app::Clock;
use framelock_engine::cache::{DiskCache, DiskCacheOptions, DiskError, DiskStats};
use framelock_engine::gpu::GpuOptions;
use framelock_engine::media::{DecoderRegistry, MediaError, ProbeCache};
use framelock_engine::memory::PoolStats;
use framelock_engine::proxy::{ProxyManager, ProxyManagerOptions};
use framelock_engine::render::{CpuRenderer, FastCpu, GpuUse, OutputPixels};

/// Why a project cannot be opened for playback.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayerError {
    /// The project itself is invalid.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// A live edit was refused (the timeline is unchanged).
    #[error("edit refused: {0}")]
    Edit(#[from] framelock_components::EditError),
    /// A clip's media cannot be read or decoded.
    #[error("{path}: {source}")]
    Media {
        /// The media file.
        path: PathBuf,
        /// Why.
        source: MediaError,
    },
    /// A clip asks for source frames its media does not have.
    #[error("track {track} clip {clip}: needs source frames up to {needs}, {path} has {has}")]
    ClipBeyondMedia {
        /// Track index.
        track: usize,
        /// Clip index in the track.
        clip: usize,
        /// The media file.
        path: PathBuf,
        /// Last source frame needed + 1.
        needs: u64,
        /// Frames in the media.
        has: u64,
    },
    /// Nothing on the timeline.
    #[error("the project has no clips")]
    EmptyTimeline,
    /// A proxy call on an engine opened without [`EngineOptions::proxies`].
    #[error("proxies are not enabled (EngineOptions::proxies)")]
    ProxiesDisabled,
    /// The disk cache folder cannot be opened (in use by another process, unwritable).
    #[error(transparent)]
    DiskCache(#[from] DiskError),
    /// The player's thread is gone (it stopped or panicked).
    #[error("the player has stopped")]
    Stopped,
    /// The live profile server could not listen.
    #[error("puffin server on {addr}: {reason}")]
    ProfileServer {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An audio track's media cannot be read.
    #[error(transparent)]
    Audio(#[from] framelock_engine::audio::AudioError),
    /// The memory budget cannot hold what the timeline shows at its busiest instant: the
    /// decoders of the clips shown at once, one picture of each, one in decode and the output frame.
    #[error(
        "a memory budget of {} MiB cannot show timeline frame {frame}: it needs at least {} MiB \
         (decoders, one picture per clip shown, one in decode and the output frame); raise the budget or \
         play from proxies",
        budget >> 20,
        minimum.div_ceil(1 << 20)
    )]
    BudgetTooSmall {
        /// The budget asked for, bytes.
        budget: usize,
        /// The least that shows every frame, bytes.
        minimum: usize,
        /// The timeline frame that needs it.
        frame: u64,
    },
    /// An export was refused before it started (see [`crate::Export::start`]).
    #[error("export: {0}")]
    Export(Box<crate::ExportError>),
    /// Removing proxy files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Proxies for playback: the job manager (shared: hosts may keep a handle), the strategy, and
/// whether opening a project queues the proxies its media need.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Jobs and workers.
    pub manager: Arc<ProxyManager>,
    /// What to make and when to use it.
    pub strategy: ProxyStrategy,
    /// Queue proxies at open for media above the strategy's lowest switch threshold.
    pub auto_generate: bool,
}

impl ProxyOptions {
    /// Proxies in `dir` with the default strategy and workers, generated at open.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_manager(ProxyManager::new(ProxyManagerOptions::new(dir)))
    }

    /// Proxies in `Proxies/` beside the project file `project_path` (the default place).
    pub fn beside_project(project_path: impl AsRef<std::path::Path>) -> Self {
        let dir = project_path
            .as_ref()
            .parent()
            .map_or_else(|| PathBuf::from("Proxies"), |p| p.join("Proxies"));
        Self::new(dir)
    }

    /// Proxies made by `manager`, default strategy, generated at open.
    pub fn with_manager(manager: ProxyManager) -> Self {
        Self {
            manager: Arc::new(manager),
            strategy: ProxyStrategy::default(),
            auto_generate: true,
        }
    }
}

/// Every cache tier's statistics (see [`crate::PlaybackEngine::cache_stats`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheStats {
    /// L2 RAM, decoded frames (hits/misses: frames needed on screen, decoded or not in time).
    pub ram_decoded: TierStats,
    /// L2 RAM, rendered frames.
    pub ram_rendered: TierStats,
    /// L3 disk, when enabled.
    pub disk: Option<DiskStats>,
    /// L1 VRAM (decoded planes uploaded to the GPU), once the GPU is open. Hits: layers
    /// rendered from planes already there; misses: uploads.
    pub vram: Option<TierStats>,
    /// The buffer pools (accounted bytes, allocations, reuses per class).
    pub memory: PoolStats,
    /// Memory pressure after the last tick.
    pub pressure: Pressure,
    /// Frames answered from the disk tier instead of decoding.
    pub disk_reads: u64,
    /// Frames evicted from RAM.
    pub evicted: u64,
    /// Frames sent to the disk writer (write-back and write-through).
    pub disk_writes_queued: u64,
}

/// What [`crate::PlaybackEngine::clear_cache`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClearedCache {
    /// Frames dropped from RAM.
    pub ram_entries: usize,
    /// Entries dropped from the disk tier.
    pub disk_entries: usize,
    /// Bytes of uploaded planes dropped from VRAM.
    pub vram_bytes: usize,
    /// Proxy files deleted.
    pub proxy_files: usize,
}

/// How to run playback.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Decoder backends.
    pub registry: DecoderRegistry,
    /// Decode worker threads.
    pub workers: usize,
    /// Jobs queued per worker.
    pub queue_per_worker: usize,
    /// Drop/hold policy, prefetch depth, proxies, playback resolution.
    pub quality: QualitySettings,
    /// Memory budget and pressure thresholds (every frame buffer is counted against it).
    pub memory: MemoryBudget,
    /// The disk tier (L3) of the frame cache (`None`: RAM only).
    pub disk_cache: Option<DiskCacheOptions>,
    /// A disk tier already open in this process, used instead of opening `disk_cache` (a
    /// folder is one open tier's at a time). [`crate::PlaybackEngine::export`] hands the
    /// export's renderers the playing engine's, so frames rendered in the background are
    /// encoded from there instead of being rendered again.
    pub shared_disk_cache: Option<DiskCache>,
    /// Where probe results are cached between loads (`None`: probe every file on open).
    pub probe_cache: Option<ProbeCache>,
    /// Proxy generation and switching (`None`: originals only).
    pub proxies: Option<ProxyOptions>,
    /// The GPU for effects (`None`: the CPU path only), opened on its own thread at open when
    /// the timeline has effects, else at the first effects frame. With
    /// [`GpuUse::Measured`] effects use it only where it measured faster than the CPU path;
    /// `QualitySettings::gpu_acceleration` switches it off while playing.
    pub gpu: Option<GpuOptions>,
    /// When effects use the GPU: by measurement (the default), or always.
    pub gpu_use: GpuUse,
    /// Render threads for compositing and effects on the CPU path.
    pub render_workers: usize,
    /// The pixel format presented pictures come in.
    pub output_pixels: OutputPixels,
    /// The CPU renderer (tests put a double here; the default is [`FastCpu`]).
    pub cpu_renderer: Arc<dyn CpuRenderer>,
    /// Serve the live profile to `puffin_viewer` on this address (e.g. `127.0.0.1:8585`)
    /// while the engine lives: turns puffin's scopes on (every system, decode job, proxy
    /// range, GPU submit and readback) and marks a frame per tick.
    pub puffin_server: Option<String>,
    /// Play the project's audio (audio tracks and the video clips' own): a mixer thread
    /// fills a ring the host pulls from ([`crate::PlaybackEngine::audio_pull`]), and while a
    /// device pulls, the audio clock is the master. `false`: silent, the clock is master.
    pub audio: bool,
    /// Frames the audio ring holds ahead of the listener.
    pub audio_ring_frames: usize,
    /// How much sound a scrub plays while paused ([`crate::PlaybackEngine::scrub_frame`]); `None`:
    /// scrubs are silent. Default 80 ms.
    pub scrub_audio: Option<Duration>,
    /// Freed frame buffers go back to the OS at once, so that the process's RSS follows the
    /// budget (see [`framelock_engine::memory::return_freed_memory`]: a process-wide glibc
    /// setting). Default `true`; a host that tunes its allocator itself turns it off.
    pub return_freed_memory: bool,
    /// The clock decode work is timed on (`None`: the wall clock). The quality controller
    /// models the machine from those times. Tests that drive the engine on a virtual clock
    /// with a decoder double simulating its cost set a clock the double advances, so the
    /// controller sees exactly the simulated costs.
    pub cost_clock: Option<Arc<dyn Clock>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            registry: DecoderRegistry::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_per_worker: 8,
            quality: QualitySettings::default(),
            memory: MemoryBudget::default(),
            disk_cache: None,
            shared_disk_cache: None,
            probe_cache: None,
            proxies: None,
            gpu: Some(GpuOptions::default()),
            gpu_use: GpuUse::Measured,
            render_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            output_pixels: OutputPixels::Any,
            cpu_renderer: Arc::new(FastCpu),
            puffin_server: None,
            audio: true,
            audio_ring_frames: 8192,
            scrub_audio: Some(Duration::from_millis(80)),
            return_freed_memory: true,
            cost_clock: None,
        }
    }
}
