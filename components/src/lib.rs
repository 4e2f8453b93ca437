//! framelock's data model.
//!
//! Data only: no I/O, no threads. What is saved (projects, probe caches) derives serde.
//! The engine fills these types in; systems and hosts read them.

mod audio;
mod cache;
mod edit;
mod effects;
mod media;
mod playback;
mod project;
mod proxy;
mod quality;
mod rational;
mod render_queue;

pub use audio::{AudioClipDef, AudioFormat, AudioTrackDef, ClipAudio, db_to_gain};
pub use cache::{CacheKey, CacheKind, CacheTier, ClearCache, MemoryBudget, Pressure, TierStats};
pub use edit::{ClipRef, Edit, EditError};
pub use effects::{BlendMode, Effect, EffectLod, EffectStack};
pub use media::{
    AudioStreamInfo, ChromaFormat, Codec, FrameTimes, MediaInfo, VideoStreamInfo, picture_bytes,
};
pub use playback::{
    CacheEntry, Clip, Frame, FrameState, Lod, MediaAsset, OutputFormat, PlayState, Playhead,
    QualitySettings, Track,
};
pub use project::{
    ClipDef, OLDEST_PROJECT_VERSION, PROJECT_VERSION, Project, ProjectError, TrackDef,
};
pub use proxy::{
    AutoSwitchThresholds, EditMode, EffectsKey, HasEffects, ProResProfile, Proxy, ProxyAssets,
    ProxyCodec, ProxyGeneration, ProxyPriority, ProxyState, ProxyStrategy, UseProxy,
};
pub use quality::{
    AdaptiveQuality, QualityChange, QualityReason, QualityStep, RenderPriority, quality_ladder,
    viewer_height,
};
pub use rational::Rational;
pub use render_queue::{
    BackgroundRender, BarColor, BarSpan, PriorityClass, QueueProgress, RenderTask, TaskState,
    chunks, spans,
};
