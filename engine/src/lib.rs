//! framelock's runtime and services.
//!
//! | module  | what it holds |
//! |---------|---------------|
//! | [`media`] | MP4 demux and probe, the [`media::Decoder`] trait and its registry (openh264, optional libav), random-access [`media::VideoReader`], YUV frames and conversion, H.264 encode + MP4 mux, generated test media |
//! | [`fs`]  | atomic file writes (temp file + rename) |
//!
//! Later issues add `app` (world, schedule, clock), `proxy`, `cache`, `memory`, `gpu`,
//! `render` and `profile` beside these, as `ARCHITECTURE.md` lays out.

pub mod app;
pub mod fs;
pub mod media;
pub mod workers;
