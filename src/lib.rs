#![doc = include_str!("../README.md")]

mod playback;
mod player;

pub use framelock_components as components;
pub use framelock_engine as engine;
pub use framelock_systems as systems;

pub use framelock_components::{
    AudioStreamInfo, AutoSwitchThresholds, ChromaFormat, ClipDef, Codec, EditMode, HasEffects,
    MediaInfo, PlayState, Playhead, Project, ProjectError, Proxy, ProxyCodec, ProxyGeneration,
    ProxyPriority, ProxyState, ProxyStrategy, QualitySettings, Rational, TrackDef, UseProxy,
    VideoStreamInfo,
};
pub use framelock_engine::app::{Clock, VirtualClock, WallClock};
pub use framelock_engine::media::{
    DecoderRegistry, EncodeSettings, EncodeSpeed, GenerateOptions, MediaError, Mp4VideoWriter,
    PixelFormat, ProbeCache, RateControl, VideoReader, WriteError, YuvFrame, generate_test_clip,
    parallel_decode, probe, testcard,
};
pub use framelock_engine::proxy::{
    JobId, ProxyError, ProxyJobStatus, ProxyManager, ProxyManagerOptions, ProxyProgress,
};
pub use framelock_systems::{LayerSource, MetricsSnapshot, PresentedFrame};
pub use playback::{EngineOptions, PlaybackEngine, PlayerError, ProxyOptions};
pub use player::Player;

/// The media layer, whole.
pub mod media {
    pub use framelock_engine::media::*;
}
