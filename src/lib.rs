#![doc = include_str!("../README.md")]

mod export;
mod offline;
mod output;
mod performance;
mod playback;
mod player;

// A hand-picked list: what hosts and the tools use. The crates behind it (components,
// engine, systems) are the engine's internals; tests and benchmarks that reach into them
// depend on them directly.
/// Distributed render on NATS JetStream (the `farm` feature).
#[cfg(feature = "farm")]
pub use export::farm;
pub use export::{
    Export, ExportAudio, ExportError, ExportProgress, ExportReport, ExportRequest, ExportState,
    Segment, SegmentPlan, VideoCodec,
};
pub use framelock_components::{
    AdaptiveQuality, QualityChange, QualityReason, QualityStep, RenderPriority, quality_ladder,
};
pub use framelock_components::{
    AudioClipDef, AudioFormat, AudioStreamInfo, AudioTrackDef, AutoSwitchThresholds, BlendMode,
    CacheKey, CacheKind, CacheTier, ChromaFormat, ClearCache, ClipAudio, ClipDef, ClipRef, Codec,
    Edit, EditError, EditMode, Effect, EffectLod, EffectStack, EffectsKey, FrameTimes, HasEffects,
    MediaInfo, MemoryBudget, OutputFormat, PlayState, Playhead, Pressure, Project, ProjectError,
    Proxy, ProxyCodec, ProxyGeneration, ProxyPriority, ProxyState, ProxyStrategy, QualitySettings,
    Rational, TierStats, TrackDef, UseProxy, VideoStreamInfo,
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
pub use framelock_engine::gpu::{AdapterSummary, GpuOptions, adapters};
/// Debian's libav as a decoder backend (the `ffmpeg` feature).
#[cfg(feature = "ffmpeg")]
pub use framelock_engine::media::decode::FfmpegBackend;
pub use framelock_engine::media::{
    ColorSpace, DecodedPicture, Decoder, DecoderBackend, DecoderRegistry, EncodeSettings,
    EncodeSpeed, GenerateOptions, H264Encoder, H264Mp4Muxer, MEDIA_OFFLINE_YUV, MatrixCoefficients,
    MediaError, Mp4VideoWriter, OFFLINE_INDEX, OpenH264Backend, Packet, Picture, PixelFormat,
    ProbeCache, RateControl, StreamDescription, Support, VideoReader, WriteError, YuvRange,
    generate_test_clip, parallel_decode, probe, testcard,
};
pub use framelock_engine::memory::{BufferPool, PoolClass, PoolStats};
pub use framelock_engine::profile::set_enabled as set_profiling;
pub use framelock_engine::proxy::{
    JobId, ProxyCheck, ProxyError, ProxyJobStatus, ProxyManager, ProxyManagerOptions,
    ProxyProgress, check_proxy, files::manifest_path as proxy_manifest_path,
};
pub use framelock_engine::render::{
    CompositeJob, CpuRenderer, FastCpu, GpuState, GpuUse, OutputPixels, PathChoice, ReferenceCpu,
    RenderPath, Work,
};
pub use framelock_engine::signal::Progress;
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
