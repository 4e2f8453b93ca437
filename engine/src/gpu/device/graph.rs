//! The frame graph: a job encoded as steps (uploads, copies, clears, dispatches) over the
//! frame's buffers, with one params slot per dispatch.

use framelock_components::Effect;

use super::{BlurKernel, GpuDevice};
use crate::effects::ops::{self, PlaneLayout, ResizeFilter};
use crate::effects::table::{self, EFFECTS};
use crate::effects::{RenderError, RenderJob};
use crate::gpu::kernels::{
    Ends, GRADE_CHAIN, GROUP, PACK_CHAIN, PARAMS_SLOT, YUV_CHAIN, quad_grid,
};

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
    /// A compute pass. `aux` is bound at 3: a resize's weights, or for a frame's last pass
    /// ([`Kernel::writes_frame`]) the tracks beneath, with `dst` (the RGBA8 frame) at 4.
    Dispatch {
        kernel: Kernel,
        params: u32,
        src: Buf,
        dst: Buf,
        aux: Option<Buf>,
        groups: (u32, u32),
    },
}

/// A pipeline: a fixed kernel, or pass `pass` of table effect `def` (`tiled`: its tiled
/// kernel). A frame's first and last passes carry what they are specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    Yuv(Ends),
    /// A whole one-layer frame: convert, grade, blend, pack.
    YuvFrame(Ends),
    ScaleH,
    ScaleV,
    Dissolve,
    Composite,
    Pack(Ends),
    Effect {
        def: usize,
        pass: usize,
        tiled: bool,
    },
}

impl Kernel {
    /// Whether it writes the finished RGBA8 frame (the frame bind group layout).
    pub(super) fn writes_frame(self) -> bool {
        matches!(self, Kernel::YuvFrame(_) | Kernel::Pack(_))
    }
}

/// The kernel's name in pass timings: the shader file, `.entry` when it has several.
pub(super) fn kernel_name(k: Kernel) -> String {
    match k {
        Kernel::Yuv(_) => "yuv_to_rgba".into(),
        Kernel::YuvFrame(_) => "yuv_to_rgba.to_frame".into(),
        Kernel::ScaleH => "scale.horizontal".into(),
        Kernel::ScaleV => "scale.vertical".into(),
        Kernel::Dissolve => "dissolve".into(),
        Kernel::Composite => "composite".into(),
        Kernel::Pack(_) => "pack_rgba8".into(),
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
        self.dispatch_with(kernel, params, src, dst, None, size);
    }

    pub(super) fn dispatch_with(
        &mut self,
        kernel: Kernel,
        params: u32,
        src: Buf,
        dst: Buf,
        aux: Option<Buf>,
        size: (u32, u32),
    ) {
        self.steps.push(Step::Dispatch {
            kernel,
            params,
            src,
            dst,
            aux,
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
        enc.dispatch_with(Kernel::ScaleH, p, src, mid, Some(wh), (to.0, from.1));
        let p = enc.params(&[[to.0, from.1, to.0, to.1], [window_v, 0, 0, 0]]);
        enc.dispatch_with(Kernel::ScaleV, p, mid, out, Some(wv), to);
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
        let kernel = match (tiled, d.tiled) {
            (true, Some((t, _))) => t,
            _ => d.kernel,
        };
        let mut src = cur;
        for pass in 0..kernel.passes.len() {
            let dst = self.work(enc, size.0, size.1)?;
            let (rx, ry) = kernel.runs.get(pass).copied().unwrap_or((1, 1));
            let grid = (size.0.div_ceil(rx), size.1.div_ceil(ry));
            enc.dispatch(Kernel::Effect { def, pass, tiled }, p, src, dst, grid);
            src = dst;
        }
        Ok(src)
    }

    /// Records a chain of grades (at most [`GRADE_CHAIN`]) from `cur` into a new buffer as
    /// one pass; returns it.
    fn grades(
        &mut self,
        enc: &mut Encoding,
        chain: &[Effect],
        cur: Buf,
        size: (u32, u32),
    ) -> Result<Buf, RenderError> {
        let Some(first) = chain.first() else {
            return Ok(cur);
        };
        let mut rows = vec![[size.0, size.1, chain.len() as u32, 0]];
        rows.extend(grade_chain(chain));
        let p = enc.params(&rows);
        let dst = self.work(enc, size.0, size.1)?;
        let def = table::index_of(first);
        let k = Kernel::Effect {
            def,
            pass: 0,
            tiled: false,
        };
        enc.dispatch(k, p, cur, dst, quad_grid(size.0, size.1));
        Ok(dst)
    }

    /// The tracks composited so far (`acc`), made a cleared (black) buffer the first time
    /// something is composited onto them.
    fn tracks(
        &mut self,
        enc: &mut Encoding,
        acc: &mut Option<Buf>,
        (w, h): (u32, u32),
    ) -> Result<Buf, RenderError> {
        if let Some(a) = *acc {
            return Ok(a);
        }
        let a = self.work(enc, w, h)?;
        enc.steps.push(Step::Clear { dst: a });
        *acc = Some(a);
        Ok(a)
    }

    /// Encodes a frame. Per-pixel work is fused into the passes next to it: the grades right
    /// after a layer's conversion run inside it, consecutive grades run as one chain, and the
    /// last layer's trailing grades and composite run inside the final pack (so a one-layer
    /// frame of grades alone is one pass). The tracks beneath start as black and are only
    /// made a buffer when a layer that is not the last is composited onto them.
    pub(super) fn encode(&mut self, job: &RenderJob) -> Result<(Encoding, Buf), RenderError> {
        let mut enc = Encoding::default();
        let (ww, wh) = job.work_size();
        let work = (ww, wh);
        let work_bytes = u64::from(ww) * u64::from(wh) * super::buffers::PIXEL_BYTES;
        // RGBA8; `take` rounds it up to 16 bytes, a whole quad (see `quad_grid`).
        let packed = self.take(u64::from(job.width) * u64::from(job.height) * 4)?;
        let packed = enc.buf(packed, true);
        // The tracks composited so far; `None` while they are still black.
        let mut acc: Option<Buf> = None;
        let last = job.layers.len().checked_sub(1);
        let mut finished = false;
        for (li, layer) in job.layers.iter().enumerate() {
            let frame = &layer.frame;
            let planes = self.planes(&mut enc, frame, layer.key)?;
            // The layer's effects at the job's LOD; those that change nothing are skipped.
            let effects: Vec<Effect> = layer
                .effects
                .iter()
                .map(|e| job.effect_at_lod(e))
                .filter(|e| (table::def_of(e).params)(e, work).is_some())
                .collect();
            let resized = (frame.width, frame.height) != work;
            // The frame's last pass finishes this layer (no resize of the result, no dissolve).
            let finishing = Some(li) == last
                && (job.width, job.height) == work
                && layer.dissolve.is_none_or(|t| t >= 1.0);
            let blend_mode = ops::blend_code(layer.blend);
            // Grades right after the conversion run inside it (not across a resize: a grade
            // of a resized picture is not the resized graded picture).
            let lead = if resized {
                0
            } else {
                leading_grades(&effects).min(YUV_CHAIN)
            };
            let (lead, rest) = effects.split_at(lead);
            let yp = ops::yuv_params(frame);
            let bps = frame.format.bytes_per_sample() as u32;
            let (cw, _) = frame.chroma_size();
            let at = PlaneLayout::of(frame).offsets.map(|o| o as u32);
            let whole = finishing && rest.is_empty() && !resized;
            let onto = if acc.is_some() { 2 } else { 1 };
            let ends = Ends {
                graded: !lead.is_empty(),
                wide: bps == 2,
                rows4: frame.width % 4 == 0,
                onto,
            };
            let mut rows = vec![
                [frame.width, frame.height, cw, lead.len() as u32],
                [at[0], at[1], at[2], bps],
                [yp.shift.0, yp.shift.1, 0, blend_mode],
                [f(yp.y_offset), f(yp.y_scale), f(yp.c_offset), f(yp.c_scale)],
                yp.matrix.map(f),
                [f(layer.opacity), 0, 0, 0],
            ];
            rows.extend(grade_chain(lead));
            let p = enc.params(&rows);
            if whole {
                // The whole frame in one pass.
                let under = acc.unwrap_or(planes);
                let grid = quad_grid(ww, wh);
                enc.dispatch_with(Kernel::YuvFrame(ends), p, planes, packed, Some(under), grid);
                finished = true;
                continue;
            }
            let rgba = self.work(&mut enc, frame.width, frame.height)?;
            let k = Kernel::Yuv(Ends { onto: 0, ..ends });
            enc.dispatch(k, p, planes, rgba, quad_grid(frame.width, frame.height));
            let mut cur = self.resize(&mut enc, rgba, (frame.width, frame.height), work)?;
            let trail = if finishing {
                trailing_grades(rest).min(PACK_CHAIN)
            } else {
                0
            };
            let (body, trail) = rest.split_at(rest.len() - trail);
            let mut i = 0;
            while i < body.len() {
                let n = leading_grades(&body[i..]).min(GRADE_CHAIN);
                if n > 0 {
                    cur = self.grades(&mut enc, &body[i..i + n], cur, work)?;
                    i += n;
                } else {
                    cur = self.effect(&mut enc, &body[i], cur, work)?;
                    i += 1;
                }
            }
            if finishing {
                let mut rows = vec![
                    [ww, wh, trail.len() as u32, 0],
                    [blend_mode, 0, 0, 0],
                    [f(layer.opacity), 0, 0, 0],
                ];
                rows.extend(grade_chain(trail));
                let p = enc.params(&rows);
                let under = acc.unwrap_or(cur);
                let ends = Ends {
                    graded: !trail.is_empty(),
                    wide: false,
                    rows4: false,
                    onto,
                };
                let grid = quad_grid(ww, wh);
                enc.dispatch_with(Kernel::Pack(ends), p, cur, packed, Some(under), grid);
                finished = true;
                continue;
            }
            let under = self.tracks(&mut enc, &mut acc, work)?;
            let blend = [ww, wh, blend_mode, 0];
            match layer.dissolve {
                Some(t) if t < 1.0 => {
                    let over = self.work(&mut enc, ww, wh)?;
                    enc.steps.push(Step::Copy {
                        src: under,
                        dst: over,
                        size: work_bytes,
                    });
                    let p = enc.params(&[blend, [f(layer.opacity), 0, 0, 0]]);
                    enc.dispatch(Kernel::Composite, p, cur, over, quad_grid(ww, wh));
                    let p = enc.params(&[size_row(ww, wh), [f(t.max(0.0)), 0, 0, 0]]);
                    enc.dispatch(Kernel::Dissolve, p, over, under, quad_grid(ww, wh));
                }
                _ => {
                    let p = enc.params(&[blend, [f(layer.opacity), 0, 0, 0]]);
                    enc.dispatch(Kernel::Composite, p, cur, under, quad_grid(ww, wh));
                }
            }
        }
        if !finished {
            let under = self.tracks(&mut enc, &mut acc, work)?;
            let out = self.resize(&mut enc, under, work, (job.width, job.height))?;
            let p = enc.params(&[size_row(job.width, job.height)]);
            let size = (job.width, job.height);
            let ends = Ends {
                graded: false,
                wide: false,
                rows4: false,
                onto: 0,
            };
            let grid = quad_grid(size.0, size.1);
            enc.dispatch_with(Kernel::Pack(ends), p, out, packed, Some(out), grid);
        }
        Ok((enc, packed))
    }
}

/// How many effects at the start of `effects` are grades.
fn leading_grades(effects: &[Effect]) -> usize {
    effects
        .iter()
        .take_while(|e| matches!(e, Effect::Grade { .. }))
        .count()
}

/// How many effects at the end of `effects` are grades.
fn trailing_grades(effects: &[Effect]) -> usize {
    effects
        .iter()
        .rev()
        .take_while(|e| matches!(e, Effect::Grade { .. }))
        .count()
}

/// The `struct Grade` rows of a chain of grades.
fn grade_chain(chain: &[Effect]) -> impl Iterator<Item = [u32; 4]> + '_ {
    chain.iter().filter_map(table::grade_rows).flatten()
}
