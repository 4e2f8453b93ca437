#![doc = include_str!("../README.md")]

mod offline;
mod performance;
mod playback;
mod player;

pub use framelock_components as components;
pub use framelock_engine as engine;
pub use framelock_systems as systems;

pub use framelock_components::{
    AudioStreamInfo, AutoSwitchThresholds, BlendMode, CacheKey, CacheKind, CacheTier, ChromaFormat,
    ClearCache, ClipDef, Codec, EditMode, Effect, EffectLod, EffectStack, EffectsKey, HasEffects,
    MediaInfo, MemoryBudget, PlayState, Playhead, Pressure, Project, ProjectError, Proxy,
    ProxyCodec, ProxyGeneration, ProxyPriority, ProxyState, ProxyStrategy, QualitySettings,
    Rational, TierStats, TrackDef, UseProxy, VideoStreamInfo,
};
pub use framelock_engine::app::{Clock, VirtualClock, WallClock};
pub use framelock_engine::cache::{Compression, DiskCacheOptions, DiskError, DiskStats};
pub use framelock_engine::gpu::{AdapterSummary, GpuOptions, adapters};
pub use framelock_engine::media::{
    DecoderRegistry, EncodeSettings, EncodeSpeed, GenerateOptions, MediaError, Mp4VideoWriter,
    Picture, PixelFormat, ProbeCache, RateControl, VideoReader, WriteError, generate_test_clip,
    parallel_decode, probe, testcard,
};
pub use framelock_engine::memory::{BufferPool, PoolClass, PoolStats};
pub use framelock_engine::proxy::{
    JobId, ProxyError, ProxyJobStatus, ProxyManager, ProxyManagerOptions, ProxyProgress,
};
pub use framelock_engine::render::{
    CompositeJob, CpuRenderer, GpuState, GpuUse, OutputPixels, PathChoice, ReferenceCpu,
    RenderPath, Work,
};
pub use framelock_engine::signal::Progress;
pub use framelock_systems::{LayerSource, MetricsSnapshot, PresentedFrame, RenderStats};
pub use offline::{OfflineError, OfflineRenderer, OfflineReport, STALL_TIMEOUT};
pub use performance::{
    ASSUMED_SECONDS_PER_PIXEL, GpuStatus, OptimizationAction, OptimizationReport,
    PerformanceMetrics, QualityMode, SegmentCost, SegmentStatus, SourceDecode, Suggestion,
    SuggestionKind,
};
pub use playback::{
    CacheStats, ClearedCache, EngineOptions, PlaybackEngine, PlayerError, ProxyOptions,
};
pub use player::Player;

/// The media layer, whole.
pub mod media {
    pub use framelock_engine::media::*;
}
