//! The Y'CbCr compositor: layers without effects stacked bottom first, each scaled to the
//! output size and blended at its track opacity per plane (8-bit 4:2:0 out). A single opaque
//! 4:2:0 layer of the output size is passed through without a copy; a gap is black. Layers
//! that are not 8-bit (10-bit sources) are skipped here: they need the effects path.

use std::sync::Arc;

use crate::media::{Picture, PixelFormat};
use crate::memory::BufferPool;

/// One layer of a [`CompositeJob`].
#[derive(Clone, Debug)]
pub struct CompositeLayer {
    /// The decoded picture.
    pub picture: Arc<Picture>,
    /// Track opacity, 0..=1.
    pub opacity: f32,
}

/// One output frame stacked from decoded layers.
#[derive(Clone, Debug)]
pub struct CompositeJob {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Layers, bottom first (none: black).
    pub layers: Vec<CompositeLayer>,
    /// Caller's tag (the timeline frame): the output picture's index.
    pub tag: u64,
}

impl CompositeJob {
    /// Whether the job is a pass-through (one opaque 4:2:0 layer of the output size) or a
    /// gap: nothing to compute, so the tick may make it itself.
    pub fn is_trivial(&self) -> bool {
        match self.layers.as_slice() {
            [] => true,
            [l] => {
                l.opacity >= 1.0
                    && l.picture.width == self.width
                    && l.picture.height == self.height
                    && l.picture.format == PixelFormat::Yuv420p
            }
            _ => false,
        }
    }
}

/// Composites `job` (pictures from `pool`).
pub fn composite(job: &CompositeJob, pool: Option<&BufferPool>) -> Arc<Picture> {
    crate::profile_function!();
    let (w, h) = (job.width, job.height);
    if job.layers.len() == 1 && job.is_trivial() {
        return job.layers[0].picture.clone();
    }
    let mut out = Picture::black_in(pool, w, h);
    for layer in &job.layers {
        let px = &layer.picture;
        let scaled;
        let src: &Picture = if px.width == w && px.height == h && px.format == PixelFormat::Yuv420p
        {
            px
        } else {
            match px.scaled_in(pool, w, h) {
                Some(s) if s.format == PixelFormat::Yuv420p => {
                    scaled = s;
                    &scaled
                }
                // 10-bit or non-4:2:0 layers need the effects path.
                _ => continue,
            }
        };
        blend(&mut out, src, layer.opacity);
    }
    out.index = job.tag;
    Arc::new(out)
}

/// `dst = dst * (1 - a) + src * a`, per plane, same size and format.
fn blend(dst: &mut Picture, src: &Picture, opacity: f32) {
    if opacity >= 1.0 {
        for (d, s) in dst.planes.iter_mut().zip(&src.planes) {
            d.copy_from_slice(s);
        }
        return;
    }
    let a = (opacity.clamp(0.0, 1.0) * 256.0) as u32;
    for (d, s) in dst.planes.iter_mut().zip(&src.planes) {
        for (dv, &sv) in d.iter_mut().zip(s) {
            *dv = ((u32::from(*dv) * (256 - a) + u32::from(sv) * a) >> 8) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, y: u8) -> Arc<Picture> {
        let mut p = Picture::black(w, h);
        p.planes[0].fill(y);
        Arc::new(p)
    }

    #[test]
    fn pass_through_blend_and_gap() {
        let a = flat(8, 4, 200);
        let one = CompositeJob {
            width: 8,
            height: 4,
            layers: vec![CompositeLayer {
                picture: a.clone(),
                opacity: 1.0,
            }],
            tag: 3,
        };
        assert!(one.is_trivial());
        assert!(Arc::ptr_eq(&composite(&one, None), &a));
        let half = CompositeJob {
            layers: vec![
                CompositeLayer {
                    picture: flat(8, 4, 100),
                    opacity: 1.0,
                },
                CompositeLayer {
                    picture: a,
                    opacity: 0.5,
                },
            ],
            ..one.clone()
        };
        assert!(!half.is_trivial());
        let out = composite(&half, None);
        assert!(out.planes[0].iter().all(|&y| y == 150));
        assert_eq!(out.index, 3);
        let gap = CompositeJob {
            layers: vec![],
            ..one
        };
        assert!(composite(&gap, None).planes[0].iter().all(|&y| y == 16));
    }
}
