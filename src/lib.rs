//! # Embed it
//!
//! framelock is a playback core: a host (an editor's UI) opens a [`Project`] in a [`Player`],
//! which plays it on its own thread on the wall clock, and talks to it with commands that
//! return at once, [`EngineEvent`]s instead of polling, live [`Edit`]s, and frames pushed to a
//! sink or pulled at the host's own vsync. [`PlaybackEngine`] is the same engine driven from
//! the host's own thread (tests, offline tools, a custom clock).
//!
//! ```no_run
//! use framelock::{ClipRef, Edit, EngineEvent, EngineOptions, Player, Project};
//!
//! // Open: probes each media file once; errors are values (a missing file, a clip longer
//! // than its media, an unsupported codec).
//! let project = Project::from_json(&std::fs::read_to_string("project.json")?)?;
//! let player = Player::open(&project, EngineOptions::default(), |_frame| {
//!     // pushed on a thread of its own; a slow sink never slows the clock
//! })?;
//!
//! // Play, seek (exact), scrub (latest wins, with a sound snippet), step.
//! player.play();
//! player.seek(12.5);
//! player.step(1);
//!
//! // Events: state changes, seeks landed, the end, media errors, edits, proxies, quality.
//! for event in player.events().try_iter() {
//!     if let EngineEvent::Error { media, error } = event {
//!         eprintln!("{}: {error}", media.display());
//!     }
//! }
//!
//! // Live edits between two ticks: all or nothing, each answers with its undo.
//! let undo = player.edit(Edit::SplitClip { clip: ClipRef::new(0, 0), at: 48 })?;
//! player.edit(undo)?;
//! std::fs::write("project.json", player.project()?.to_json())?; // the edits, saved
//!
//! // Output: pull the newest frame at the host's vsync (planes or RGBA8: `picture.format`).
//! if let Some(frame) = player.current_frame() {
//!     let _ = (frame.timeline_frame, frame.picture.width);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `cargo run --release --example host` is a whole host: events, an audio output, a scrub
//! drag with sound, frame steps with timecode, edits with undo. What follows is the
//! project's README: the build, the command line, the figures.
//!
#![doc = include_str!("../README.md")]

mod background;
mod export;
mod offline;
mod output;
mod performance;
mod playback;
mod player;

// A hand-picked list: what hosts and the tools use. The crates behind it (components,
// engine, systems) are the engine's internals; tests and benchmarks that reach into them
// depend on them directly.
pub use background::{BackgroundOptions, BackgroundStats, QUIET_TICKS, SLACK};
/// Distributed render on NATS JetStream (the `farm` feature).
#[cfg(feature = "farm")]
pub use export::farm;
pub use export::{
    Export, ExportAudio, ExportError, ExportProgress, ExportReport, ExportRequest, ExportState,
    Segment, SegmentPlan, VideoCodec,
};
pub use framelock_components::{
    AdaptiveQuality, BackgroundRender, BarColor, BarSpan, PriorityClass, QueueProgress, RenderTask,
    TaskState, chunks,
};
pub use framelock_components::{
    AudioClipDef, AudioFormat, AudioStreamInfo, AudioTrackDef, AutoSwitchThresholds, BlendMode,
    CacheKey, CacheKind, CacheTier, ChromaFormat, ClearCache, ClipAudio, ClipDef, ClipRef, Codec,
    Edit, EditError, EditMode, Effect, EffectLod, EffectStack, EffectsKey, FrameTimes, HasEffects,
    MediaInfo, MemoryBudget, OutputFormat, PlayState, Playhead, Pressure, ProResProfile, Project,
    ProjectError, Proxy, ProxyCodec, ProxyGeneration, ProxyPriority, ProxyState, ProxyStrategy,
    QualitySettings, Rational, TierStats, TrackDef, UseProxy, VideoStreamInfo,
};
pub use framelock_components::{
    QualityChange, QualityReason, QualityStep, RenderPriority, quality_ladder,
};
pub use framelock_engine::app::{Clock, VirtualClock, WallClock};
/// The system's default audio output device (the `cpal` feature).
#[cfg(feature = "cpal")]
pub use framelock_engine::audio::CpalSink;
pub use framelock_engine::audio::{
    AudioCodec, AudioError, AudioOutput, AudioPull, AudioSink, AudioSource, CallbackSink, MixClip,
    Mixer, NullSink, PeakLevel, Peaks, ResampledSource, SinkError, WaveformState,
};
pub use framelock_engine::cache::{
    Compression, DiskCache, DiskCacheOptions, DiskError, DiskStats, DiskView, decoded_key,
};
pub use framelock_engine::effects::RenderError;
pub use framelock_engine::fs::AtomicFile;
pub use framelock_engine::gpu::{
    AdapterSummary, GpuOptions, HostDevice, HostTextures, OutputCounts, TextureOutput,
    TextureOutputError, adapters,
};
/// Debian's libav as a decoder backend (the `ffmpeg` feature).
#[cfg(feature = "ffmpeg")]
pub use framelock_engine::media::decode::FfmpegBackend;
pub use framelock_engine::media::{
    ColorSpace, DecodedPicture, Decoder, DecoderBackend, DecoderRegistry, EncodeSettings,
    EncodeSpeed, GenerateOptions, H264Encoder, H264Mp4Muxer, MEDIA_OFFLINE_YUV, MatrixCoefficients,
    MediaError, Mp4Demuxer, Mp4VideoWriter, OFFLINE_INDEX, OpenH264Backend, Packet, Picture,
    PixelFormat, ProbeCache, RateControl, StreamDescription, Support, VideoReader, WriteError,
    YuvRange, generate_test_clip, parallel_decode, probe, probe_bytes, testcard,
};
pub use framelock_engine::memory::{BufferPool, PoolClass, PoolStats};
pub use framelock_engine::profile::set_enabled as set_profiling;
pub use framelock_engine::proxy::{
    JobId, ProxyCheck, ProxyError, ProxyJobStatus, ProxyManager, ProxyManagerOptions,
    ProxyProgress, check_proxy, files::manifest_path as proxy_manifest_path,
};
pub use framelock_engine::render::{
    CompositeJob, CpuRenderer, FastCpu, GpuState, GpuUse, OutputPixels, PathChoice, PooledCpu,
    ReferenceCpu, RenderPath, Work,
};
pub use framelock_engine::signal::Progress;
/// The wgpu this build uses (a host's device for [`TextureOutput`] is made with it).
pub use framelock_engine::wgpu;
pub use framelock_systems::{
    EngineEvent, LayerSource, MetricsSnapshot, PresentedFrame, RenderStats, SCRUB_MEMORY_TICKS,
    TimelineSync,
};
pub use offline::{OfflineError, OfflineRenderer, OfflineReport, STALL_TIMEOUT};
pub use output::{BoxedSink, FrameDelivery, FrameSlot};
pub use performance::{
    ASSUMED_SECONDS_PER_PIXEL, GpuStatus, OptimizationAction, OptimizationReport,
    PerformanceMetrics, QualityMode, SegmentCost, SegmentStatus, SourceDecode, Suggestion,
    SuggestionKind,
};
pub use playback::{
    CacheStats, ClearedCache, EngineOptions, PlaybackEngine, PlayerError, ProxyOptions,
};
pub use player::Player;
