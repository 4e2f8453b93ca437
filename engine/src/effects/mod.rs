//! Effects rendering: what one output frame with effects is made of ([`RenderJob`]), the
//! effect table that declares each effect once ([`table`]), the operations both paths run in
//! the same order ([`ops`]), the reference CPU path ([`cpu`]), whose every operation is the
//! twin of a WGSL shader in `shaders/` (the GPU path, in [`crate::gpu`]), and the fast CPU
//! path ([`fast`]) that plays, held to the reference by the tests.
//!
//! One frame: each layer's planes are converted to RGBA (f32, gamma-encoded as stored, alpha
//! 1), scaled to the work size (the output size divided by the [`EffectLod`]), run through its
//! [`Effect`]s in order, then blended onto the tracks beneath (black, opaque) with its track
//! opacity and [`BlendMode`] (or cross-dissolved in). At a reduced LOD the result is scaled up
//! to the output size. The finished picture is rounded to RGBA8.

pub mod cpu;
pub mod fast;
pub mod ops;
pub mod samples;
pub mod table;

use std::sync::Arc;

use framelock_components::{BlendMode, Effect, EffectLod};

use crate::media::Picture;

/// One layer of a [`RenderJob`].
#[derive(Clone, Debug)]
pub struct LayerJob {
    /// The decoded source picture.
    pub frame: Arc<Picture>,
    /// Its decoded-frame cache key (the GPU keeps uploaded planes in VRAM under it; 0 = do
    /// not keep).
    pub key: u64,
    /// Effects, first applied first.
    pub effects: Vec<Effect>,
    /// Track opacity, 0..=1.
    pub opacity: f32,
    /// How it is blended onto the layers beneath.
    pub blend: BlendMode,
    /// Cross-dissolve position (0 = only what is beneath, 1 = the layer fully in), if the
    /// layer is dissolving in.
    pub dissolve: Option<f32>,
}

/// One output frame to render.
#[derive(Clone, Debug)]
pub struct RenderJob {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Resolution effects run at.
    pub lod: EffectLod,
    /// Layers, bottom first.
    pub layers: Vec<LayerJob>,
    /// Caller's tag (the timeline frame), returned with the result.
    pub tag: u64,
}

/// A rendered frame: RGBA8, rows of `width * 4` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedRgba {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Pixels.
    pub rgba: Vec<u8>,
    /// The LOD effects ran at.
    pub lod: EffectLod,
    /// The job's tag.
    pub tag: u64,
    /// The same pixels in a texture on the host's device, when the GPU path rendered the
    /// frame on it ([`crate::gpu::HostDevice`]); `None` otherwise.
    pub texture: Option<wgpu::Texture>,
}

/// Why a frame could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The job is malformed (zero size, a layer without pixels).
    #[error("cannot render: {0}")]
    Invalid(String),
    /// The GPU failed (device lost, out of memory, validation): the frame can be rendered on
    /// the CPU path instead.
    #[error("GPU error: {0}")]
    Gpu(String),
}

impl RenderJob {
    /// Checks what both paths assume.
    pub fn validate(&self) -> Result<(), RenderError> {
        if self.width == 0 || self.height == 0 {
            return Err(RenderError::Invalid("zero output size".into()));
        }
        for l in &self.layers {
            if l.frame.width == 0 || l.frame.height == 0 {
                return Err(RenderError::Invalid("a layer has a zero size".into()));
            }
            if l.frame.size_bytes() < ops::planes_len(&l.frame) {
                return Err(RenderError::Invalid("a layer's planes are short".into()));
            }
        }
        Ok(())
    }

    /// The size effects run at.
    pub fn work_size(&self) -> (u32, u32) {
        self.lod.work_size(self.width, self.height)
    }

    /// Pixel-sized effect parameters at the job's LOD.
    pub fn effect_at_lod(&self, e: &Effect) -> Effect {
        (table::def_of(e).at_lod)(e, self.lod.divisor() as f32)
    }
}
