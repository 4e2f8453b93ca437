//! Helpers the engine's effects tests share: deterministic random pictures, one-layer jobs
//! and the per-channel difference of two renders.

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::sync::Arc;

use framelock_components::{BlendMode, Effect, EffectLod};
use framelock_engine::effects::{LayerJob, RenderJob, RenderedRgba};
use framelock_engine::media::Picture;

/// Deterministic noise.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

pub fn random_frame(
    seed: u64,
    format: framelock_engine::media::PixelFormat,
    width: u32,
    height: u32,
) -> Arc<Picture> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut f = Picture::alloc_in(None, format, width, height);
    for p in &mut f.planes {
        if format.bytes_per_sample() == 2 {
            for c in p.chunks_exact_mut(2) {
                let v = u16::from(rng.next()) << 2 | u16::from(rng.next() & 3);
                c.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for b in p.iter_mut() {
                *b = rng.next();
            }
        }
    }
    Arc::new(f)
}

pub fn layer(frame: Arc<Picture>, effects: Vec<Effect>) -> LayerJob {
    LayerJob {
        frame,
        key: 0,
        effects,
        opacity: 1.0,
        blend: BlendMode::Over,
        dissolve: None,
    }
}

pub fn job(width: u32, height: u32, layers: Vec<LayerJob>) -> RenderJob {
    RenderJob {
        width,
        height,
        lod: EffectLod::Full,
        layers,
        tag: 0,
    }
}

/// Largest per-channel difference, and how many bytes differ at all.
pub fn diff(a: &RenderedRgba, b: &RenderedRgba) -> (u8, usize) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    assert_eq!(a.rgba.len(), b.rgba.len());
    let mut max = 0;
    let mut n = 0;
    for (x, y) in a.rgba.iter().zip(&b.rgba) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += usize::from(d > 0);
    }
    (max, n)
}
