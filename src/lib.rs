#![doc = include_str!("../README.md")]

pub use framelock_components as components;
pub use framelock_engine as engine;

pub use framelock_components::{
    AudioStreamInfo, ChromaFormat, Codec, MediaInfo, Rational, VideoStreamInfo,
};
pub use framelock_engine::media::{
    DecoderRegistry, EncodeSettings, GenerateOptions, MediaError, Mp4VideoWriter, PixelFormat,
    RateControl, VideoReader, WriteError, YuvFrame, generate_test_clip, parallel_decode, probe,
    testcard,
};

/// The media layer, whole.
pub mod media {
    pub use framelock_engine::media::*;
}
