//! The frame graph: a job encoded as steps (uploads, copies, clears, dispatches) over the
//! frame's buffers, with one params slot per dispatch.

use framelock_components::Effect;

use super::{BlurKernel, GpuDevice};
use crate::effects::ops::{self, PlaneLayout, ResizeFilter};
use crate::effects::table::{self, EFFECTS};
use crate::effects::{RenderError, RenderJob};
use crate::gpu::kernels::{GROUP, PARAMS_SLOT};

/// A buffer of the frame being encoded.
pub(super) type Buf = usize;

pub(super) enum Step {
    Upload {
        staging: usize,
        dst: Buf,
        size: u64,
    },
    Copy {
        src: Buf,
        dst: Buf,
        size: u64,
    },
    Clear {
        dst: Buf,
    },
    Dispatch {
        kernel: Kernel,
        params: u32,
        src: Buf,
        dst: Buf,
        weights: Option<Buf>,
        groups: (u32, u32),
    },
}

/// A pipeline: a fixed kernel, or pass `pass` of table effect `def` (`tiled`: its tiled
/// kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    Yuv,
    ScaleH,
    ScaleV,
    Dissolve,
    Composite,
    Pack,
    Effect {
        def: usize,
        pass: usize,
        tiled: bool,
    },
}

/// The kernel's name in pass timings: the shader file, `.entry` when it has several.
pub(super) fn kernel_name(k: Kernel) -> String {
    match k {
        Kernel::Yuv => "yuv_to_rgba".into(),
        Kernel::ScaleH => "scale.horizontal".into(),
        Kernel::ScaleV => "scale.vertical".into(),
        Kernel::Dissolve => "dissolve".into(),
        Kernel::Composite => "composite".into(),
        Kernel::Pack => "pack_rgba8".into(),
        Kernel::Effect { def, pass, tiled } => {
            let d = &EFFECTS[def];
            let kernel = match (tiled, d.tiled) {
                (true, Some((t, _))) => t,
                _ => d.kernel,
            };
            match kernel.passes {
                [_] => kernel.file.into(),
                passes => format!("{}.{}", kernel.file, passes[pass]),
            }
        }
    }
}

/// A frame being encoded: its buffers (pooled ones to give back), params and steps.
#[derive(Default)]
pub(super) struct Encoding {
    pub(super) bufs: Vec<(wgpu::Buffer, bool)>,
    pub(super) params: Vec<u8>,
    pub(super) steps: Vec<Step>,
    pub(super) staging_used: Vec<usize>,
}

impl Encoding {
    pub(super) fn buf(&mut self, b: wgpu::Buffer, pooled: bool) -> Buf {
        self.bufs.push((b, pooled));
        self.bufs.len() - 1
    }

    /// Appends a params slot of 16-byte rows; returns its dynamic offset.
    pub(super) fn params(&mut self, rows: &[[u32; 4]]) -> u32 {
        let off = self.params.len();
        self.params.resize(off + PARAMS_SLOT as usize, 0);
        for (i, r) in rows.iter().enumerate() {
            for (j, v) in r.iter().enumerate() {
                let at = off + i * 16 + j * 4;
                self.params[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        off as u32
    }

    pub(super) fn dispatch(
        &mut self,
        kernel: Kernel,
        params: u32,
        src: Buf,
        dst: Buf,
        size: (u32, u32),
    ) {
        self.steps.push(Step::Dispatch {
            kernel,
            params,
            src,
            dst,
            weights: None,
            groups: (size.0.div_ceil(GROUP), size.1.div_ceil(GROUP)),
        });
    }
}

pub(super) fn f(v: f32) -> u32 {
    v.to_bits()
}

pub(super) fn size_row(w: u32, h: u32) -> [u32; 4] {
    [w, h, 0, 0]
}

impl GpuDevice {
    /// Resizes `src` (`from`) to `to`, two separable passes; returns the result's buffer.
    pub(super) fn resize(
        &mut self,
        enc: &mut Encoding,
        src: Buf,
        from: (u32, u32),
        to: (u32, u32),
    ) -> Result<Buf, RenderError> {
        if from == to {
            return Ok(src);
        }
        let filter = ResizeFilter::for_sizes(from, to);
        let (wh, window_h) = self.weights_buffer(from.0, to.0, filter);
        let (wv, window_v) = self.weights_buffer(from.1, to.1, filter);
        let wh = enc.buf(wh, false);
        let wv = enc.buf(wv, false);
        let mid = self.work(enc, to.0, from.1)?;
        let out = self.work(enc, to.0, to.1)?;
        let p = enc.params(&[[from.0, from.1, to.0, from.1], [window_h, 0, 0, 0]]);
        enc.steps.push(Step::Dispatch {
            kernel: Kernel::ScaleH,
            params: p,
            src,
            dst: mid,
            weights: Some(wh),
            groups: (to.0.div_ceil(GROUP), from.1.div_ceil(GROUP)),
        });
        let p = enc.params(&[[to.0, from.1, to.0, to.1], [window_v, 0, 0, 0]]);
        enc.steps.push(Step::Dispatch {
            kernel: Kernel::ScaleV,
            params: p,
            src: mid,
            dst: out,
            weights: Some(wv),
            groups: (to.0.div_ceil(GROUP), to.1.div_ceil(GROUP)),
        });
        Ok(out)
    }

    /// Records one effect from `cur` into a new buffer (its table entry's passes, each from
    /// the previous one's result); returns it.
    fn effect(
        &mut self,
        enc: &mut Encoding,
        e: &Effect,
        cur: Buf,
        size: (u32, u32),
    ) -> Result<Buf, RenderError> {
        let def = table::index_of(e);
        let d = &EFFECTS[def];
        let Some(rows) = (d.params)(e, size) else {
            return Ok(cur);
        };
        let p = enc.params(&rows);
        let tiled = match (d.tiled, self.blur) {
            (None, _) | (Some(_), BlurKernel::Separable) => false,
            (Some((_, fits)), BlurKernel::Tiled) => fits(e),
            (Some((_, fits)), BlurKernel::Auto) => fits(e) && !self.is_software(),
        };
        let passes = match (tiled, d.tiled) {
            (true, Some((t, _))) => t.passes.len(),
            _ => d.kernel.passes.len(),
        };
        let mut src = cur;
        for pass in 0..passes {
            let dst = self.work(enc, size.0, size.1)?;
            enc.dispatch(Kernel::Effect { def, pass, tiled }, p, src, dst, size);
            src = dst;
        }
        Ok(src)
    }

    pub(super) fn encode(&mut self, job: &RenderJob) -> Result<(Encoding, Buf), RenderError> {
        let mut enc = Encoding::default();
        let (ww, wh) = job.work_size();
        let work_bytes = u64::from(ww) * u64::from(wh) * 16;
        let acc = self.work(&mut enc, ww, wh)?;
        enc.steps.push(Step::Clear { dst: acc });
        for layer in &job.layers {
            let frame = &layer.frame;
            let planes = self.planes(&mut enc, frame, layer.key)?;
            let yp = ops::yuv_params(frame);
            let bps = frame.format.bytes_per_sample() as u32;
            let (cw, _) = frame.chroma_size();
            let at = PlaneLayout::of(frame).offsets.map(|o| o as u32);
            let p = enc.params(&[
                [frame.width, frame.height, cw, 0],
                [at[0], at[1], at[2], bps],
                [yp.shift.0, yp.shift.1, 0, 0],
                [f(yp.y_offset), f(yp.y_scale), f(yp.c_offset), f(yp.c_scale)],
                yp.matrix.map(f),
            ]);
            let rgba = self.work(&mut enc, frame.width, frame.height)?;
            enc.dispatch(Kernel::Yuv, p, planes, rgba, (frame.width, frame.height));
            let mut cur = self.resize(&mut enc, rgba, (frame.width, frame.height), (ww, wh))?;
            for e in &layer.effects {
                cur = self.effect(&mut enc, &job.effect_at_lod(e), cur, (ww, wh))?;
            }
            let blend = [ww, wh, ops::blend_code(layer.blend), 0];
            match layer.dissolve {
                Some(t) if t < 1.0 => {
                    let over = self.work(&mut enc, ww, wh)?;
                    enc.steps.push(Step::Copy {
                        src: acc,
                        dst: over,
                        size: work_bytes,
                    });
                    let p = enc.params(&[blend, [f(layer.opacity), 0, 0, 0]]);
                    enc.dispatch(Kernel::Composite, p, cur, over, (ww, wh));
                    let p = enc.params(&[size_row(ww, wh), [f(t.max(0.0)), 0, 0, 0]]);
                    enc.dispatch(Kernel::Dissolve, p, over, acc, (ww, wh));
                }
                _ => {
                    let p = enc.params(&[blend, [f(layer.opacity), 0, 0, 0]]);
                    enc.dispatch(Kernel::Composite, p, cur, acc, (ww, wh));
                }
            }
        }
        let out = self.resize(&mut enc, acc, (ww, wh), (job.width, job.height))?;
        let packed = self.take(u64::from(job.width) * u64::from(job.height) * 4)?;
        let packed = enc.buf(packed, true);
        let p = enc.params(&[size_row(job.width, job.height)]);
        enc.dispatch(Kernel::Pack, p, out, packed, (job.width, job.height));
        Ok((enc, packed))
    }
}
