//! The Gaussian blur, the fast twin of [`crate::effects::cpu::blur`]: separable, edges
//! extended. Up to [`DIRECT_MAX`] the reference kernel itself, as sums of shifted rows
//! (vectorised); wider, a cascade of three running-sum boxes per axis whose half-widths
//! ([`CASCADE`]) were fitted to the reference kernel — the cascade's step response is within
//! 1.1/255 of the reference's at every radius (checked by a test), and its cost does not grow
//! with the radius.

use rayon::prelude::*;

use super::point::PointChain;
use super::{BAND_ROWS, Image16, to_i32, to_u16};
use crate::effects::ops;

/// Samples per column strip of the column cascade.
const STRIP: usize = 1024;

/// The widest radius blurred with the reference kernel itself.
pub const DIRECT_MAX: u32 = 12;

/// Half-widths of the three boxes for radius `DIRECT_MAX + 1 + i`: fitted (by exhaustive
/// search over the widths whose variance is near the reference kernel's) to minimise the
/// largest difference of the step responses.
pub const CASCADE: [[u8; 3]; 48] = [
    [1, 6, 7],
    [1, 6, 8],
    [2, 7, 8],
    [2, 7, 9],
    [2, 7, 10],
    [3, 8, 10],
    [3, 8, 11],
    [3, 9, 11],
    [3, 9, 12],
    [3, 9, 13],
    [1, 11, 13],
    [1, 11, 14],
    [2, 12, 14],
    [1, 12, 15],
    [1, 12, 16],
    [2, 13, 16],
    [2, 13, 17],
    [2, 13, 18],
    [3, 14, 18],
    [3, 14, 19],
    [3, 14, 20],
    [4, 15, 20],
    [4, 16, 20],
    [4, 16, 21],
    [4, 16, 22],
    [2, 18, 22],
    [1, 18, 23],
    [1, 18, 24],
    [2, 19, 24],
    [2, 19, 25],
    [1, 19, 26],
    [3, 20, 26],
    [3, 20, 27],
    [3, 20, 28],
    [4, 21, 28],
    [4, 21, 29],
    [4, 22, 29],
    [2, 24, 29],
    [1, 24, 30],
    [5, 23, 31],
    [2, 25, 31],
    [1, 25, 32],
    [1, 25, 33],
    [2, 26, 33],
    [2, 26, 34],
    [2, 26, 35],
    [3, 27, 35],
    [3, 27, 36],
];

/// Blurs `img` in place with the reference's kernel of `radius` (clamped to the maximum),
/// then runs `then` on each band of the result as it is finished.
pub fn blur(img: &mut Image16, radius: u32, then: Option<&PointChain>) {
    crate::profile_function!();
    let weights = ops::gaussian_weights(radius);
    let r = weights.len() - 1;
    if r == 0 || img.width == 0 || img.height == 0 {
        if let Some(chain) = then {
            chain.apply(&mut img.px);
        }
        return;
    }
    let mut tmp = Image16::scratch(img.width, img.height);
    if r as u32 <= DIRECT_MAX {
        direct_rows(img, &mut tmp, &weights);
        direct_columns(&tmp, img, &weights, then);
    } else {
        // The column cascade is the vectorised one (whole rows at a time), so the row pass
        // runs on the transposed picture.
        let hs = CASCADE[r - DIRECT_MAX as usize - 1].map(usize::from);
        let mut t = Image16::scratch(img.height, img.width);
        transpose(img, &mut t);
        let mut t2 = Image16::scratch(img.height, img.width);
        cascade_columns(&t, &mut t2, hs, None);
        transpose(&t2, &mut tmp);
        cascade_columns(&tmp, img, hs, then);
    }
}

/// A row with `pad` pixels of its edge values on each side, as `f32`.
fn padded_row(row: &[u16], pad: usize, out: &mut Vec<f32>) {
    let n = row.len() / 4;
    out.clear();
    out.reserve((n + 2 * pad) * 4);
    for _ in 0..pad {
        out.extend(row[..4].iter().map(|&v| f32::from(v)));
    }
    out.extend(row.iter().map(|&v| f32::from(v)));
    for _ in 0..pad {
        out.extend(row[row.len() - 4..].iter().map(|&v| f32::from(v)));
    }
}

fn direct_rows(src: &Image16, dst: &mut Image16, w: &[f32]) {
    let stride = src.stride();
    dst.px
        .par_chunks_mut(stride * BAND_ROWS)
        .zip(src.px.par_chunks(stride * BAND_ROWS))
        .for_each(|(out, inp)| direct_rows_band(out, inp, stride, w));
}

hot! {
    fn direct_rows_band(out: &mut [u16], inp: &[u16], stride: usize, w: &[f32]) {
        let r = w.len() - 1;
        let mut p = Vec::new();
        let mut acc = vec![0.0f32; stride];
        for (o, row) in out.chunks_exact_mut(stride).zip(inp.chunks_exact(stride)) {
            padded_row(row, r, &mut p);
            let centre = &p[4 * r..4 * r + stride];
            for (a, c) in acc.iter_mut().zip(centre) {
                *a = w[0] * c;
            }
            for (k, &wk) in w.iter().enumerate().skip(1) {
                let left = &p[4 * (r - k)..4 * (r - k) + stride];
                let right = &p[4 * (r + k)..4 * (r + k) + stride];
                for ((a, l), rr) in acc.iter_mut().zip(left).zip(right) {
                    *a += wk * (l + rr);
                }
            }
            for (d, a) in o.iter_mut().zip(&acc) {
                *d = to_u16(*a);
            }
        }
    }
}

fn direct_columns(src: &Image16, dst: &mut Image16, w: &[f32], then: Option<&PointChain>) {
    let stride = src.stride();
    dst.px
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each(|(band, out)| {
            direct_columns_band(out, band * BAND_ROWS, src, w);
            if let Some(chain) = then {
                chain.apply_band(out);
            }
        });
}

hot! {
    fn direct_columns_band(out: &mut [u16], y0: usize, src: &Image16, w: &[f32]) {
        let stride = src.stride();
        let h = src.height as i64;
        let row = |y: i64| {
            let y = y.clamp(0, h - 1) as usize;
            &src.px[y * stride..(y + 1) * stride]
        };
        let mut acc = vec![0.0f32; stride];
        for (i, o) in out.chunks_exact_mut(stride).enumerate() {
            let y = (y0 + i) as i64;
            for (a, c) in acc.iter_mut().zip(row(y)) {
                *a = w[0] * f32::from(*c);
            }
            for (k, &wk) in w.iter().enumerate().skip(1) {
                let (up, down) = (row(y - k as i64), row(y + k as i64));
                for ((a, u), d) in acc.iter_mut().zip(up).zip(down) {
                    *a += wk * (i32::from(*u) + i32::from(*d)) as f32;
                }
            }
            for (d, a) in o.iter_mut().zip(&acc) {
                *d = to_u16(*a);
            }
        }
    }
}

/// `dst` (`src.height`×`src.width`) = `src` transposed, pixel for pixel, in tiles.
fn transpose(src: &Image16, dst: &mut Image16) {
    const TILE: usize = 16;
    let (w, h) = (src.width as usize, src.height as usize);
    let s: &[[u16; 4]] = bytemuck::cast_slice(&src.px);
    let d: &mut [[u16; 4]] = bytemuck::cast_slice_mut(&mut dst.px);
    // Destination rows are source columns: each band of TILE of them reads TILE pixels of
    // every source row.
    d.par_chunks_mut(h * TILE)
        .enumerate()
        .for_each(|(band, out)| {
            let x0 = band * TILE;
            let n = (out.len() / h.max(1)).min(w - x0);
            for y in 0..h {
                let line = &s[y * w + x0..y * w + x0 + n];
                for (k, p) in line.iter().enumerate() {
                    out[k * h + y] = *p;
                }
            }
        });
}

/// A running-sum box over rows: takes rows one at a time, gives the mean of the last `2h + 1`.
/// Sums are exact integers (`i32`: at most 121 · 65535), so nothing drifts along a column.
struct RowBox {
    width: usize,
    ring: Vec<i32>,
    sum: Vec<i32>,
    seen: usize,
    inv: f32,
}

impl RowBox {
    fn new(h: usize, stride: usize) -> Self {
        let width = 2 * h + 1;
        Self {
            width,
            ring: vec![0; width * stride],
            sum: vec![0; stride],
            seen: 0,
            inv: 1.0 / width as f32,
        }
    }

    /// Feeds one row; writes the mean into `out` once `2h + 1` rows were fed.
    fn push(&mut self, row: &[i32], out: &mut [i32]) -> bool {
        let stride = self.sum.len();
        let slot = self.seen % self.width;
        let old = &mut self.ring[slot * stride..(slot + 1) * stride];
        let full = self.seen >= self.width;
        self.seen += 1;
        let ready = self.seen >= self.width;
        box_step(
            &mut self.sum,
            old,
            row,
            full,
            ready.then_some((out, self.inv)),
        );
        ready
    }
}

hot! {
    /// One row into a running sum: `sum += row - old` (or `+= row` while filling), the ring
    /// slot takes `row`, and the mean goes to `out` when the window is full.
    fn box_step(
        sum: &mut [i32],
        old: &mut [i32],
        row: &[i32],
        full: bool,
        out: Option<(&mut [i32], f32)>,
    ) {
        if full {
            for ((s, o), n) in sum.iter_mut().zip(old.iter()).zip(row) {
                *s += n - o;
            }
        } else {
            for (s, n) in sum.iter_mut().zip(row) {
                *s += n;
            }
        }
        old.copy_from_slice(row);
        if let Some((out, inv)) = out {
            for (o, s) in out.iter_mut().zip(sum.iter()) {
                *o = to_i32(*s as f32 * inv);
            }
        }
    }
}

/// The column cascade, streamed: each band of output rows feeds its three boxes the rows
/// from `pad` above it to `pad` below it (edges extended), so bands are independent.
fn cascade_columns(src: &Image16, dst: &mut Image16, hs: [usize; 3], then: Option<&PointChain>) {
    let stride = src.stride();
    let h = src.height as i64;
    let pad: i64 = hs.iter().sum::<usize>() as i64;
    // Bands as tall as the pad's warm-up allows to waste little: a few per thread.
    let bands = (rayon::current_num_threads() * 2).max(1);
    let band_rows = (src.height as usize).div_ceil(bands).max(1);
    dst.px
        .par_chunks_mut(stride * band_rows)
        .enumerate()
        .for_each(|(band, out)| {
            let y0 = (band * band_rows) as i64;
            let rows = (out.len() / stride) as i64;
            // Column strips keep the three rings in L2 (a full 4K row is 60 KB a slot).
            for s0 in (0..stride).step_by(STRIP) {
                let s1 = (s0 + STRIP).min(stride);
                let n = s1 - s0;
                let mut boxes = hs.map(|hh| RowBox::new(hh, n));
                let mut input = vec![0i32; n];
                let (mut t1, mut t2, mut t3) = (vec![0i32; n], vec![0i32; n], vec![0i32; n]);
                let mut y_out = 0usize;
                for y in y0 - pad..y0 + rows + pad {
                    let yy = y.clamp(0, h - 1) as usize;
                    let line = &src.px[yy * stride + s0..yy * stride + s1];
                    for (d, s) in input.iter_mut().zip(line) {
                        *d = i32::from(*s);
                    }
                    if !boxes[0].push(&input, &mut t1)
                        || !boxes[1].push(&t1, &mut t2)
                        || !boxes[2].push(&t2, &mut t3)
                    {
                        continue;
                    }
                    let o = &mut out[y_out * stride + s0..y_out * stride + s1];
                    for (d, v) in o.iter_mut().zip(&t3) {
                        *d = *v as u16;
                    }
                    y_out += 1;
                }
            }
            if let Some(chain) = then {
                chain.apply_band(out);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cascade's kernel for the fitted half-widths.
    fn cascade_kernel(hs: [usize; 3]) -> Vec<f64> {
        let mut k = vec![1.0f64];
        for h in hs {
            let w = 2 * h + 1;
            let mut out = vec![0.0; k.len() + w - 1];
            for (i, x) in k.iter().enumerate() {
                for o in &mut out[i..i + w] {
                    *o += x / w as f64;
                }
            }
            k = out;
        }
        k
    }

    #[test]
    fn fitted_cascades_follow_the_reference_step_response() {
        for (i, hs) in CASCADE.iter().enumerate() {
            let r = DIRECT_MAX as usize + 1 + i;
            let w = ops::gaussian_weights(r as u32);
            let mut reference = vec![0.0f64; 2 * r + 1];
            for (k, v) in w.iter().enumerate() {
                reference[r + k] = f64::from(*v);
                reference[r - k] = f64::from(*v);
            }
            let hs = hs.map(usize::from);
            let cascade = cascade_kernel(hs);
            // Both centred; compare the cumulative sums (the response to a step edge).
            let n = reference.len().max(cascade.len());
            let centred = |k: &[f64]| {
                let pad = (n - k.len()) / 2;
                let mut v = vec![0.0; pad];
                v.extend_from_slice(k);
                v.resize(n, 0.0);
                v
            };
            let (a, b) = (centred(&reference), centred(&cascade));
            let (mut ca, mut cb, mut worst) = (0.0, 0.0, 0.0f64);
            for (x, y) in a.iter().zip(&b) {
                ca += x;
                cb += y;
                worst = worst.max((ca - cb).abs());
            }
            assert!(
                worst * 255.0 < 1.1,
                "radius {r}: step response off by {}/255",
                worst * 255.0
            );
            assert!(
                hs.iter().sum::<usize>() <= r + r / 2,
                "radius {r}: support too wide"
            );
        }
    }
}
