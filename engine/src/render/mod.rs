//! The render service: every output picture that is more than a pass-through is made here,
//! off the tick, on CPU worker threads or on the GPU's own thread.
//!
//! | work | where |
//! |---|---|
//! | [`Work::Ycbcr`]: layers without effects (scaling, opacity) | CPU workers ([`ycbcr::composite`]) |
//! | [`Work::Effects`]: layers with effect stacks | the GPU thread when the measured choice (or [`GpuUse::Always`]) says so, else CPU workers ([`crate::effects::fast`]; [`ReferenceCpu`] runs the f32 reference instead) |
//!
//! Contract: [`RenderService::try_submit`] never blocks (a full queue hands the work back);
//! results come back through [`RenderService::try_collect`], in any order, each with its
//! ticket, the path that made it and its wall time; every submitted job produces exactly one
//! [`RenderDone`] (a GPU failure re-renders the frame on the CPU path and says so). Pictures
//! are converted to the [`OutputPixels`] the host asked for on the worker.
//!
//! The GPU opens on its own thread (never on the tick), started by the host at open when the
//! timeline has effects, or by the first effects work; until it is open, effects render on the
//! CPU workers. With [`GpuUse::Measured`] (the default) the first
//! effects frame is also measured on the GPU thread by both paths — first on a copy at a
//! sixteenth of the pixels (a GPU over 1.5x slower there keeps the CPU path), otherwise on the
//! frame itself, alternately, the minimum of two runs each after a warm-up — and the faster is
//! the path from then on: a software adapter that is slower than the CPU path is never the
//! default. [`RenderService::choice`]
//! says which and why.

mod gpu_thread;
mod service;
pub mod ycbcr;

use std::sync::Arc;

pub use service::{RenderService, RenderServiceOptions};
pub use ycbcr::{CompositeJob, CompositeLayer};

use crate::effects::{RenderError, RenderJob};
use crate::media::{ColorSpace, Picture};
use crate::memory::BufferPool;

/// What to render.
#[derive(Clone, Debug)]
pub enum Work {
    /// Decoded layers stacked in Y'CbCr (no effects).
    Ycbcr(CompositeJob),
    /// Layers with effect stacks, in RGBA.
    Effects(RenderJob),
}

impl Work {
    /// The caller's tag.
    pub fn tag(&self) -> u64 {
        match self {
            Self::Ycbcr(j) => j.tag,
            Self::Effects(j) => j.tag,
        }
    }
}

/// The pixel format the host wants its pictures in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputPixels {
    /// Whatever the path made, as [`Picture::format`] says: 8-bit 4:2:0 from the Y'CbCr
    /// compositor and pass-through (no conversion at all), RGBA8 from effects.
    #[default]
    Any,
    /// 8-bit 4:2:0 planes (a GPU host converting itself, an encoder).
    Yuv420p,
    /// RGBA8 (a webview or UI toolkit).
    Rgba8,
}

impl OutputPixels {
    /// Whether `picture` is already in this format.
    pub fn accepts(self, picture: &Picture) -> bool {
        use crate::media::PixelFormat;
        match self {
            Self::Any => true,
            Self::Yuv420p => picture.format == PixelFormat::Yuv420p,
            Self::Rgba8 => picture.format == PixelFormat::Rgba8,
        }
    }

    /// `picture` in this format (a conversion from `pool` when it is not already).
    pub fn convert(self, picture: Arc<Picture>, pool: Option<&BufferPool>) -> Arc<Picture> {
        if self.accepts(&picture) {
            return picture;
        }
        match self {
            Self::Rgba8 => Arc::new(picture.to_rgba8_in(pool)),
            _ => match picture.to_yuv420p_in(pool, ColorSpace::default()) {
                Some(p) => Arc::new(p),
                None => picture,
            },
        }
    }
}

/// Which path made a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RenderPath {
    /// CPU workers.
    Cpu,
    /// The GPU.
    Gpu,
}

/// When effects use the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuUse {
    /// Measure both paths on the first effects frame and use the faster.
    #[default]
    Measured,
    /// Always the GPU while it is open (tests of the GPU path, hosts that know better).
    Always,
}

/// The path chosen for effects, and the measurement behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct PathChoice {
    /// The path effects use.
    pub path: RenderPath,
    /// Milliseconds per frame on the CPU path (best of two runs).
    pub cpu_ms: f64,
    /// Milliseconds per frame on the GPU, upload to readback (best of two runs after a
    /// warm-up); `None` when the GPU failed the frame.
    pub gpu_ms: Option<f64>,
    /// The frame measured.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// In words.
    pub reason: String,
}

/// The GPU as the render service sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuState {
    /// Not asked for (no GPU options).
    Disabled,
    /// Not started yet: it starts with the first effects work (or
    /// [`RenderService::start_gpu`]).
    NotStarted,
    /// Opening on its thread.
    Opening,
    /// Open.
    Open {
        /// Device names, as the drivers report them.
        devices: Vec<String>,
        /// Every device is a software rasteriser.
        software: bool,
    },
    /// Could not be opened: why.
    Unavailable(String),
}

/// One finished job.
#[derive(Debug)]
pub struct RenderDone {
    /// The ticket [`RenderService::try_submit`] gave.
    pub ticket: u64,
    /// The work's tag.
    pub tag: u64,
    /// The picture, in the format asked for.
    pub result: Result<Arc<Picture>, RenderError>,
    /// The path that made it.
    pub path: RenderPath,
    /// Wall time on that path (seconds).
    pub secs: f64,
    /// The GPU failed this frame first (it was re-rendered on the CPU path): why.
    pub gpu_error: Option<String>,
}

/// The CPU side of rendering, a trait so tests can put a double in (a slow effect).
pub trait CpuRenderer: Send + Sync + std::fmt::Debug {
    /// Renders `work` with pictures from `pool`.
    fn render(&self, work: &Work, pool: Option<&BufferPool>) -> Result<Arc<Picture>, RenderError>;
}

/// [`FastCpu`] on a rayon pool of its own instead of the global one (which playback's
/// effects use): for a renderer whose work must not queue beside playback's, such as
/// background render's (its pool's threads, started from a thread of lowered priority,
/// inherit it), or a benchmark's one-thread baseline.
#[derive(Debug)]
pub struct PooledCpu(pub rayon::ThreadPool);

impl CpuRenderer for PooledCpu {
    fn render(&self, work: &Work, pool: Option<&BufferPool>) -> Result<Arc<Picture>, RenderError> {
        self.0.install(|| FastCpu.render(work, pool))
    }
}

/// The CPU path that plays: [`ycbcr::composite`] and [`crate::effects::fast`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FastCpu;

impl CpuRenderer for FastCpu {
    fn render(&self, work: &Work, pool: Option<&BufferPool>) -> Result<Arc<Picture>, RenderError> {
        match work {
            Work::Ycbcr(job) => Ok(ycbcr::composite(job, pool)),
            Work::Effects(job) => Ok(Arc::new(crate::effects::fast::render_picture(job, pool)?)),
        }
    }
}

/// The reference CPU path, [`ycbcr::composite`] and [`crate::effects::cpu::render`]: the
/// oracle of the tests (f32 throughout, 10x slower than [`FastCpu`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceCpu;

impl CpuRenderer for ReferenceCpu {
    fn render(&self, work: &Work, pool: Option<&BufferPool>) -> Result<Arc<Picture>, RenderError> {
        match work {
            Work::Ycbcr(job) => Ok(ycbcr::composite(job, pool)),
            Work::Effects(job) => {
                let r = crate::effects::cpu::render(job)?;
                Ok(Arc::new(rgba_picture(&r, pool)))
            }
        }
    }
}

/// A rendered RGBA8 frame as a [`Picture`] (planes from `pool`), indexed by its tag.
pub fn rgba_picture(r: &crate::effects::RenderedRgba, pool: Option<&BufferPool>) -> Picture {
    let mut f = Picture::alloc_in(pool, crate::media::PixelFormat::Rgba8, r.width, r.height);
    f.planes[0].copy_from_slice(&r.rgba);
    f.index = r.tag;
    f
}
