//! Scale, rotate and move, the fast twin of [`crate::effects::cpu::transform`]: source
//! positions are computed eight pixels at a time, the bilinear weights are 16-bit fixed point
//! (they sum to exactly 65536, so a flat area stays exact, and a pixel's sum fits `u32`), and the four taps of a pixel
//! inside the picture are read without per-tap bounds tests.

use framelock_components::Effect;
use rayon::prelude::*;

use super::{BAND_ROWS, Image16};
use crate::effects::ops;

/// Transforms `img` in place (transparent outside the moved picture).
pub fn transform(img: &mut Image16, e: &Effect) {
    crate::profile_function!();
    let Some(m) = ops::transform_inverse(img.width, img.height, e) else {
        return;
    };
    if img.width == 0 || img.height == 0 {
        return;
    }
    let src = img.clone();
    let stride = src.stride();
    let (w, h) = (src.width as i32, src.height as i32);
    img.px
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each(|(band, out)| transform_band(out, band * BAND_ROWS, &src.px, stride, (w, h), &m));
}

super::hot! {
/// Rows from `y0` of the transformed picture.
fn transform_band(
    out: &mut [u16],
    y0: usize,
    px: &[u16],
    stride: usize,
    (w, h): (i32, i32),
    m: &[[f32; 3]; 2],
) {
    // One tap, zero outside.
    let tap = |x: i32, y: i32, c: usize| -> u32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0
        } else {
            u32::from(px[y as usize * stride + x as usize * 4 + c])
        }
    };
    for (i, row) in out.chunks_exact_mut(stride).enumerate() {
        let fy = (y0 + i) as f32 + 0.5;
        let bx = m[0][1] * fy + m[0][2] - 0.5;
        let by = m[1][1] * fy + m[1][2] - 0.5;
        for (b, block) in row.chunks_mut(32).enumerate() {
            let mut ix = [0i32; 8];
            let mut iy = [0i32; 8];
            let mut wx = [0u32; 8];
            let mut wy = [0u32; 8];
            for k in 0..8 {
                let fx = (b * 8 + k) as f32 + 0.5;
                // Far outside stays far outside (and within i32).
                let sx = (m[0][0] * fx + bx).clamp(-4.0, w as f32 + 4.0);
                let sy = (m[1][0] * fx + by).clamp(-4.0, h as f32 + 4.0);
                let (x0, y0) = (sx.floor(), sy.floor());
                ix[k] = x0 as i32;
                iy[k] = y0 as i32;
                wx[k] = ((sx - x0) * 65536.0) as u32;
                wy[k] = ((sy - y0) * 65536.0) as u32;
            }
            for (k, o) in block.chunks_exact_mut(4).enumerate() {
                let (x, y) = (ix[k], iy[k]);
                if x < -1 || y < -1 || x >= w || y >= h {
                    o.fill(0);
                    continue;
                }
                let (tx, ty) = (u64::from(wx[k].min(65536)), u64::from(wy[k].min(65536)));
                let w00 = (((65536 - tx) * (65536 - ty)) >> 16) as u32;
                let w10 = ((tx * (65536 - ty)) >> 16) as u32;
                let w01 = (((65536 - tx) * ty) >> 16) as u32;
                let w11 = 65536 - w00 - w10 - w01;
                if x >= 0 && y >= 0 && x + 1 < w && y + 1 < h {
                    let i = y as usize * stride + x as usize * 4;
                    let (t, d) = (&px[i..i + 8], &px[i + stride..i + stride + 8]);
                    for c in 0..4 {
                        // Weights sum to 65536: at most 65535 · 65536 + 32768 < 2³².
                        let v = u32::from(t[c]) * w00
                            + u32::from(t[c + 4]) * w10
                            + u32::from(d[c]) * w01
                            + u32::from(d[c + 4]) * w11;
                        o[c] = ((v + 32768) >> 16).min(65535) as u16;
                    }
                } else {
                    for (c, oc) in o.iter_mut().enumerate() {
                        let v = tap(x, y, c) * w00
                            + tap(x + 1, y, c) * w10
                            + tap(x, y + 1, c) * w01
                            + tap(x + 1, y + 1, c) * w11;
                        *oc = ((v + 32768) >> 16).min(65535) as u16;
                    }
                }
            }
        }
    }
}
}
