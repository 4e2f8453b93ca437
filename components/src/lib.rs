//! framelock's data model.
//!
//! Data only: no I/O, no threads. What is saved (projects, probe caches) derives serde.
//! The engine fills these types in; systems and hosts read them.

mod media;
mod rational;

pub use media::{AudioStreamInfo, ChromaFormat, Codec, MediaInfo, VideoStreamInfo};
pub use rational::Rational;
