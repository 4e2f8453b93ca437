//! framelock's runtime and services.
//!
//! | module  | what it holds |
//! |---------|---------------|
//! | [`media`] | MP4 demux and probe, the [`media::Decoder`] trait and its registry (openh264, optional libav), random-access [`media::VideoReader`], YUV frames and conversion, H.264 encode + MP4 mux, generated test media |
//! | [`fs`]  | atomic file writes (temp file + rename) |
//! | [`proxy`] | proxy files: naming + manifest, the decode → scale → encode pipeline, the job queue |
//! | [`app`] | clocks and the frame pacer |
//! | [`workers`] | the decode worker pool |
//! | [`profile`] | `profile_function!` / `profile_scope!` over puffin, frame marks |
//! | [`memory`] | typed buffer pools (frames, audio, effect scratch) with exact byte accounting; the budget |
//! | [`cache`] | cache keys, the [`cache::Cache`] contract, the memory-mapped disk tier |
//! | [`effects`] | what a frame with effects is made of, the CPU path (the shaders' reference twins) |
//! | [`gpu`] | wgpu devices running `shaders/*.wgsl`: staging/readback rings, VRAM tier, pipelining, multi-device scheduling |
//! | [`render`] | the render service: CPU render threads and the GPU's own thread, the Y'CbCr compositor, the measured CPU/GPU choice |
//! | [`signal`] | the progress counter workers bump, which drivers outside the tick wait on |

pub mod app;
/// The wgpu this build uses: a host that shares its device with
/// [`gpu::TextureOutput`] creates it with this version.
pub use wgpu;
pub mod audio;
pub mod cache;
pub mod effects;
pub mod fs;
pub mod gpu;
pub mod media;
pub mod memory;
pub mod profile;
pub mod proxy;
pub mod render;
pub mod signal;
pub mod workers;
