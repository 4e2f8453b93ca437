//! The CPU path: one function per shader, the reference each GPU result is tested against,
//! and what plays when there is no adapter (or `gpu_acceleration` is off). Rows run in
//! parallel on rayon's pool; resizing is `fast_image_resize`, as for the rest of the engine
//! (colour conversion is computed here: see [`yuv_to_rgba`]).

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use framelock_components::{BlendMode, Effect};
use rayon::prelude::*;

use super::ops::{self, ResizeFilter};
use super::{RenderError, RenderJob, RenderedRgba};
use crate::media::Picture;

/// An RGBA picture in f32 (gamma-encoded values, 0..1), rows tightly packed.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Pixels, row-major.
    pub px: Vec<[f32; 4]>,
}

impl Image {
    /// A `width`×`height` picture filled with `value`.
    pub fn filled(width: u32, height: u32, value: [f32; 4]) -> Self {
        Self {
            width,
            height,
            px: vec![value; width as usize * height as usize],
        }
    }

    fn rows_mut(&mut self) -> rayon::slice::ChunksExactMut<'_, [f32; 4]> {
        let w = (self.width as usize).max(1);
        self.px.par_chunks_exact_mut(w)
    }

    /// Rounds to RGBA8 as `pack_rgba8.wgsl` does (`floor(0.5 + 255 * clamp(x, 0, 1))`,
    /// alpha opaque).
    pub fn to_rgba8(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.px.len() * 4];
        out.par_chunks_exact_mut(4)
            .zip(self.px.par_iter())
            .for_each(|(o, p)| {
                for c in 0..3 {
                    o[c] = (0.5 + 255.0 * p[c].clamp(0.0, 1.0)).floor() as u8;
                }
                o[3] = 255;
            });
        out
    }
}

/// `yuv_to_rgba.wgsl`: the frame's planes to RGBA (alpha 1), in f32 with the same
/// coefficients as the shader.
///
/// The rest of the engine converts with `yuvutils-rs`, but its integer SIMD path is up to
/// 2/255 off the exact BT.601/709 result on in-range samples and clamps super-black luma to
/// 16 first (measured here on random pictures), which is outside the 1/255 the GPU must match;
/// so the reference twin computes exactly what the shader computes.
pub fn yuv_to_rgba(frame: &Picture) -> Image {
    if frame.format == crate::media::PixelFormat::Rgba8 {
        // An already rendered picture (a cached render used as a layer): bytes / 255.
        let mut img = Image::filled(frame.width, frame.height, [0.0, 0.0, 0.0, 1.0]);
        for (o, p) in img.px.iter_mut().zip(frame.planes[0].chunks_exact(4)) {
            *o = [
                f32::from(p[0]) / 255.0,
                f32::from(p[1]) / 255.0,
                f32::from(p[2]) / 255.0,
                1.0,
            ];
        }
        return img;
    }
    let p = ops::yuv_params(frame);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, _) = frame.chroma_size();
    let cw = cw as usize;
    let two = frame.format.bytes_per_sample() == 2;
    let sample = |plane: &[u8], i: usize| -> f32 {
        if two {
            f32::from(u16::from_le_bytes([plane[2 * i], plane[2 * i + 1]]))
        } else {
            f32::from(plane[i])
        }
    };
    let mut img = Image::filled(frame.width, frame.height, [0.0, 0.0, 0.0, 1.0]);
    let [yp, up, vp] = &frame.planes;
    img.px
        .par_chunks_exact_mut(w.max(1))
        .enumerate()
        .take(h)
        .for_each(|(y, row)| {
            for (x, out) in row.iter_mut().enumerate() {
                let c = (y >> p.shift.1) * cw + (x >> p.shift.0);
                let luma = (sample(yp, y * w + x) - p.y_offset) * p.y_scale;
                let cb = (sample(up, c) - p.c_offset) * p.c_scale;
                let cr = (sample(vp, c) - p.c_offset) * p.c_scale;
                let r = luma + p.matrix[0] * cr;
                let g = luma - p.matrix[1] * cb - p.matrix[2] * cr;
                let b = luma + p.matrix[3] * cb;
                *out = [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0), 1.0];
            }
        });
    img
}

/// `scale.wgsl`: resizes with `fast_image_resize` (box when shrinking, bilinear otherwise;
/// alpha not premultiplied, as on the GPU).
pub fn resize(src: &Image, width: u32, height: u32) -> Image {
    if (src.width, src.height) == (width, height) {
        return src.clone();
    }
    let filter = match ResizeFilter::for_sizes((src.width, src.height), (width, height)) {
        ResizeFilter::Box => FilterType::Box,
        ResizeFilter::Bilinear => FilterType::Bilinear,
    };
    let bytes: &[u8] = bytemuck::cast_slice(&src.px);
    let mut out = Image::filled(width, height, [0.0; 4]);
    let ok = (|| {
        let src_img = ImageRef::new(src.width, src.height, bytes, PixelType::F32x4).ok()?;
        let dst_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out.px);
        let mut dst = FirImage::from_slice_u8(width, height, dst_bytes, PixelType::F32x4).ok()?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(filter))
            .use_alpha(false);
        Resizer::new().resize(&src_img, &mut dst, &options).ok()
    })();
    debug_assert!(ok.is_some(), "resize of valid sizes failed");
    out
}

/// `grade.wgsl`.
pub fn grade(img: &mut Image, e: &Effect) {
    let Some((a, b)) = ops::grade_params(e) else {
        return;
    };
    img.px.par_iter_mut().for_each(|p| {
        let mut c = [p[0], p[1], p[2]];
        for v in &mut c {
            *v = (*v + b[0] * (1.0 - *v)) * b[1];
            *v += a[0];
            *v = (*v - 0.5) * a[1] + 0.5;
        }
        let luma = c[0] * 0.2126 + c[1] * 0.7152 + c[2] * 0.0722;
        for (i, v) in c.iter().enumerate() {
            let s = luma + (v - luma) * a[2];
            p[i] = s.clamp(0.0, 1.0).powf(a[3]);
        }
    });
}

/// `blur.wgsl`: separable Gaussian, edges clamped.
pub fn blur(img: &mut Image, radius: u32) {
    let w = ops::gaussian_weights(radius);
    let r = w.len() as i64 - 1;
    if r == 0 {
        return;
    }
    let (width, height) = (img.width as i64, img.height as i64);
    let src = img.px.clone();
    img.rows_mut().enumerate().for_each(|(y, row)| {
        let base = y * width as usize;
        for (x, out) in row.iter_mut().enumerate() {
            let mut acc = scale4(src[base + x], w[0]);
            for k in 1..=r {
                let l = (x as i64 - k).clamp(0, width - 1) as usize;
                let rr = (x as i64 + k).clamp(0, width - 1) as usize;
                acc = add4(
                    acc,
                    scale4(add4(src[base + l], src[base + rr]), w[k as usize]),
                );
            }
            *out = acc;
        }
    });
    let src = img.px.clone();
    img.rows_mut().enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let at = |yy: i64| src[yy.clamp(0, height - 1) as usize * width as usize + x];
            let mut acc = scale4(at(y as i64), w[0]);
            for k in 1..=r {
                acc = add4(
                    acc,
                    scale4(add4(at(y as i64 - k), at(y as i64 + k)), w[k as usize]),
                );
            }
            *out = acc;
        }
    });
}

/// `sharpen.wgsl`.
pub fn sharpen(img: &mut Image, amount: f32) {
    let (width, height) = (img.width as i64, img.height as i64);
    let src = img.px.clone();
    img.rows_mut().enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let mut sum = [0.0f32; 3];
            for dy in -1..=1i64 {
                for dx in -1..=1i64 {
                    let sx = (x as i64 + dx).clamp(0, width - 1) as usize;
                    let sy = (y as i64 + dy).clamp(0, height - 1) as usize;
                    let p = src[sy * width as usize + sx];
                    for c in 0..3 {
                        sum[c] += p[c];
                    }
                }
            }
            let p = src[y * width as usize + x];
            for c in 0..3 {
                out[c] = (p[c] + amount * (p[c] - sum[c] / 9.0)).clamp(0.0, 1.0);
            }
            out[3] = p[3];
        }
    });
}

/// `transform.wgsl`: inverse-mapped bilinear sampling, transparent outside.
pub fn transform(img: &mut Image, e: &Effect) {
    let Some(m) = ops::transform_inverse(img.width, img.height, e) else {
        return;
    };
    let (width, height) = (img.width as i64, img.height as i64);
    let src = img.px.clone();
    let tap = |x: i64, y: i64| -> [f32; 4] {
        if x < 0 || y < 0 || x >= width || y >= height {
            [0.0; 4]
        } else {
            src[y as usize * width as usize + x as usize]
        }
    };
    img.rows_mut().enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let fx = x as f32 + 0.5;
            let fy = y as f32 + 0.5;
            let sx = m[0][0] * fx + m[0][1] * fy + m[0][2] - 0.5;
            let sy = m[1][0] * fx + m[1][1] * fy + m[1][2] - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (tx, ty) = (sx - x0, sy - y0);
            let (ix, iy) = (x0 as i64, y0 as i64);
            let top = mix4(tap(ix, iy), tap(ix + 1, iy), tx);
            let bottom = mix4(tap(ix, iy + 1), tap(ix + 1, iy + 1), tx);
            *out = mix4(top, bottom, ty);
        }
    });
}

/// `dissolve.wgsl`: `dst = mix(dst, src, t)`.
pub fn dissolve(dst: &mut Image, src: &Image, t: f32) {
    dst.px
        .par_iter_mut()
        .zip(src.px.par_iter())
        .for_each(|(d, s)| *d = mix4(*d, *s, t));
}

/// `composite.wgsl`: blends `src` onto `dst` in place.
pub fn composite(dst: &mut Image, src: &Image, opacity: f32, mode: BlendMode) {
    dst.px
        .par_iter_mut()
        .zip(src.px.par_iter())
        .for_each(|(d, s)| {
            let f = |dc: f32, sc: f32| match mode {
                BlendMode::Over => sc,
                BlendMode::Add => (dc + sc).min(1.0),
                BlendMode::Multiply => dc * sc,
                BlendMode::Screen => 1.0 - (1.0 - dc) * (1.0 - sc),
            };
            let a = s[3] * opacity;
            let mut out = [0.0; 4];
            for c in 0..3 {
                let fc = f(d[c], s[c]);
                out[c] = d[c] + (fc - d[c]) * a;
            }
            out[3] = a + d[3] * (1.0 - a);
            *d = out;
        });
}

/// Applies one effect in place (its table entry's CPU twin).
pub fn apply(img: &mut Image, e: &Effect) {
    (super::table::def_of(e).cpu)(img, e);
}

/// Renders a whole frame on the CPU.
pub fn render(job: &RenderJob) -> Result<RenderedRgba, RenderError> {
    crate::profile_function!();
    job.validate()?;
    let (ww, wh) = job.work_size();
    let mut acc = Image::filled(ww, wh, [0.0, 0.0, 0.0, 1.0]);
    for layer in &job.layers {
        let mut img = resize(&yuv_to_rgba(&layer.frame), ww, wh);
        for e in &layer.effects {
            apply(&mut img, &job.effect_at_lod(e));
        }
        match layer.dissolve {
            Some(t) if t < 1.0 => {
                let mut over = acc.clone();
                composite(&mut over, &img, layer.opacity, layer.blend);
                dissolve(&mut acc, &over, t.max(0.0));
            }
            _ => composite(&mut acc, &img, layer.opacity, layer.blend),
        }
    }
    let out = resize(&acc, job.width, job.height);
    Ok(RenderedRgba {
        width: job.width,
        height: job.height,
        rgba: out.to_rgba8(),
        lod: job.lod,
        tag: job.tag,
        texture: None,
    })
}

fn add4(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

fn scale4(a: [f32; 4], k: f32) -> [f32; 4] {
    [a[0] * k, a[1] * k, a[2] * k, a[3] * k]
}

/// WGSL's `mix`: `a + (b - a) * t`... as `a * (1 - t) + b * t`, the form GPUs compute.
fn mix4(a: [f32; 4], b: [f32; 4], t: f32) -> [f32; 4] {
    [
        a[0] * (1.0 - t) + b[0] * t,
        a[1] * (1.0 - t) + b[1] * t,
        a[2] * (1.0 - t) + b[2] * t,
        a[3] * (1.0 - t) + b[3] * t,
    ]
}
