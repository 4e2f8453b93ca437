//! Scale, rotate and move, the fast twin of [`crate::effects::cpu::transform`]. Source
//! positions are computed eight pixels at a time. Where all four taps of eight pixels lie
//! inside the picture (nearly all of a slightly moved frame), the eight pixels are one block
//! of 16-bit lanes: each pixel's two taps of a row are one 16-byte load, and each bilinear
//! step is a high-half multiply by a 16-bit weight (`vpmulhuw`), so a block is a few vector
//! instructions. The weights of a step sum to 65535, so a value may come out up to four
//! codes (of 65535) low: 1/64 of an 8-bit step. Blocks wholly outside are transparent
//! without reading, and blocks at the picture's edge take each tap with a bounds test (32-bit
//! weights summing to 65536: exact on a flat area).

use framelock_components::Effect;
use rayon::prelude::*;

use super::point::PointChain;
use super::{BAND_ROWS, Image16};
use crate::effects::ops;

/// Transforms `img` in place (transparent outside the moved picture), then runs `then` on
/// each band of the result as it is finished (while it is in cache).
pub fn transform(img: &mut Image16, e: &Effect, then: Option<&PointChain>) {
    crate::profile_function!();
    let m = ops::transform_inverse(img.width, img.height, e);
    let Some(m) = m.filter(|_| img.width > 0 && img.height > 0) else {
        if let Some(chain) = then {
            chain.apply(&mut img.px);
        }
        return;
    };
    // Every output sample is written, so the source moves out and a reused buffer takes its
    // place (no copy).
    let src = std::mem::replace(img, Image16::scratch(img.width, img.height));
    let stride = src.stride();
    let from = Source {
        px: &src.px,
        stride,
        size: (src.width as i32, src.height as i32),
        m,
    };
    img.px
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each(|(band, out)| {
            best_band(out, band * BAND_ROWS, &from);
            if let Some(chain) = then {
                chain.apply_band(out);
            }
        });
}

/// Where [`transform_into`] puts the transformed layer, band by band, on its way to the
/// frame's RGBA8 bytes.
pub enum Sink<'a> {
    /// The only layer: blended onto black (`k` from [`super::blend::over_black_factor`]).
    OntoBlack(f32),
    /// The last layer: blended onto the layers beneath (made in place), then packed.
    Onto {
        /// The layers beneath.
        under: &'a mut Image16,
        /// The layer's opacity.
        opacity: f32,
        /// The layer's blend mode.
        mode: framelock_components::BlendMode,
    },
}

/// [`transform`] of `img` then `then`, blended as `sink` says and rounded to RGBA8 into
/// `out`, band by band: the transformed picture is never whole in memory, each band goes
/// from the transform to the bytes while it is in cache (a frame's last layer whose last
/// effect is a transform: 16 MB written and read again less at 1080p, twice for a layer
/// blended onto others).
pub fn transform_into(
    img: Image16,
    e: &Effect,
    then: Option<&PointChain>,
    out: &mut [u8],
    sink: Sink,
) {
    crate::profile_function!();
    let m = ops::transform_inverse(img.width, img.height, e);
    let Some(m) = m.filter(|_| img.width > 0 && img.height > 0) else {
        let mut img = img;
        if let Some(chain) = then {
            chain.apply(&mut img.px);
        }
        match sink {
            Sink::OntoBlack(k) => img.pack_rgba8_over_black(out, k),
            Sink::Onto {
                under,
                opacity,
                mode,
            } => {
                super::blend::composite(under, &img, opacity, mode);
                under.pack_rgba8(out);
            }
        }
        return;
    };
    let stride = img.stride();
    let from = Source {
        px: &img.px,
        stride,
        size: (img.width as i32, img.height as i32),
        m,
    };
    let bytes = (stride * img.height as usize).min(out.len());
    let band = stride * BAND_ROWS;
    // Each band: transformed into a scratch band (in cache), the chain, then the sink.
    let make = |band_px: &mut Vec<u16>, b: usize, n: usize| {
        let px = &mut band_px[..n];
        best_band(px, b * BAND_ROWS, &from);
        if let Some(chain) = then {
            chain.apply_band(px);
        }
    };
    let scratch = || vec![0u16; band];
    match sink {
        Sink::OntoBlack(k) => out[..bytes].par_chunks_mut(band).enumerate().for_each_init(
            scratch,
            |band_px, (b, o)| {
                make(band_px, b, o.len());
                super::pack_over_black_band(o, &band_px[..o.len()], k);
            },
        ),
        Sink::Onto {
            under,
            opacity,
            mode,
        } => out[..bytes]
            .par_chunks_mut(band)
            .zip(under.px.par_chunks_mut(band))
            .enumerate()
            .for_each_init(scratch, |band_px, (b, (o, d))| {
                make(band_px, b, o.len());
                super::blend::composite_band_as(d, &band_px[..o.len()], opacity, mode);
                super::pack_band(o, d);
            }),
    }
}

/// The picture a transform reads, and the map from output to source positions.
struct Source<'a> {
    px: &'a [u16],
    stride: usize,
    size: (i32, i32),
    m: [[f32; 3]; 2],
}

/// Rows from `y0` of the transformed picture, with the best block code the CPU has.
fn best_band(out: &mut [u16], y0: usize, src: &Source) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { avx2::transform_band(out, y0, src) };
        return;
    }
    transform_band(out, y0, src);
}

/// `a · b / 65536`, rounded down: `vpmulhuw` when vectorised.
#[inline(always)]
fn mulhi(a: u16, b: u16) -> u16 {
    ((u32::from(a) * u32::from(b)) >> 16) as u16
}

/// Fractional bits of a source position: 24 keep a step's rounding under 2⁻²⁵ of a pixel,
/// so across an 8K row a position drifts less than 10⁻³ of a pixel.
const FRAC: u32 = 24;

/// `v` pixels in `FRAC`-bit fixed point, clamped to ±`limit` pixels (NaN gives 0).
fn fixed(v: f64, limit: f64) -> i64 {
    (v.clamp(-limit, limit) * f64::from(1u32 << FRAC)) as i64
}

/// Where eight consecutive output pixels of a row read from.
struct Taps {
    /// Column and row of each pixel's top-left tap.
    x: [i32; 8],
    y: [i32; 8],
    /// The fractional position in 1/65536ths.
    fx: [u32; 8],
    fy: [u32; 8],
}

/// A row's source positions in fixed point: the position moves by a constant step along a
/// row, so pixel `k`'s is an integer sum (no float, floor or saturating cast a pixel).
struct RowWalk {
    /// Pixel 0's top-left tap corner (x, y).
    start: [i64; 2],
    /// `k` steps, for `k` in 0..8 (x, y).
    steps: [[i64; 8]; 2],
    /// Eight steps (x, y).
    eight: [i64; 2],
}

impl RowWalk {
    fn new(m: &[[f32; 3]; 2], y: usize) -> Self {
        let m = m.map(|r| r.map(f64::from));
        let fy = y as f64 + 0.5;
        // Within ±2³⁰ pixels a start, ±2²⁰ a step, 8 K steps stay far from i64's limits; a
        // step clamped there still leaves every pixel after the first far outside.
        let start = |r: [f64; 3]| fixed(0.5 * r[0] + r[1] * fy + r[2] - 0.5, f64::from(1 << 30));
        let step = |r: [f64; 3]| fixed(r[0], f64::from(1 << 20));
        let d = [step(m[0]), step(m[1])];
        Self {
            start: [start(m[0]), start(m[1])],
            steps: d.map(|d| std::array::from_fn(|k| k as i64 * d)),
            eight: d.map(|d| 8 * d),
        }
    }
}

impl Taps {
    /// Block `b` of the row (its pixels from `8 b`).
    #[inline(always)]
    fn new(row: &RowWalk, b: usize, (w, h): (i32, i32)) -> Self {
        let mut t = Self {
            x: [0; 8],
            y: [0; 8],
            fx: [0; 8],
            fy: [0; 8],
        };
        let base = [
            row.start[0] + b as i64 * row.eight[0],
            row.start[1] + b as i64 * row.eight[1],
        ];
        for k in 0..8 {
            let sx = base[0] + row.steps[0][k];
            let sy = base[1] + row.steps[1][k];
            // Far outside stays far outside (and within i32).
            t.x[k] = (sx >> FRAC).clamp(-4, i64::from(w) + 4) as i32;
            t.y[k] = (sy >> FRAC).clamp(-4, i64::from(h) + 4) as i32;
            t.fx[k] = ((sx >> (FRAC - 16)) & 0xFFFF) as u32;
            t.fy[k] = ((sy >> (FRAC - 16)) & 0xFFFF) as u32;
        }
        t
    }

    /// Whether all four taps of each of the first `n` pixels lie inside: the positions lie
    /// on a line, so those of its ends do.
    #[inline(always)]
    fn inside(&self, n: usize, (w, h): (i32, i32)) -> bool {
        let ok =
            |k: usize| self.x[k] >= 0 && self.y[k] >= 0 && self.x[k] + 1 < w && self.y[k] + 1 < h;
        n > 0 && ok(0) && ok(n - 1)
    }

    /// Whether every tap of the first `n` pixels lies outside (they are transparent): the
    /// ends lie beyond the same edge.
    #[inline(always)]
    fn outside(&self, n: usize, (w, h): (i32, i32)) -> bool {
        let (a, b) = (0, n.saturating_sub(1));
        (self.x[a] < -1 && self.x[b] < -1)
            || (self.y[a] < -1 && self.y[b] < -1)
            || (self.x[a] >= w && self.x[b] >= w)
            || (self.y[a] >= h && self.y[b] >= h)
    }
}

/// Rows from `y0` of the transformed picture, blocks wholly inside made by `inside`.
#[inline(always)]
fn band_with(
    out: &mut [u16],
    y0: usize,
    src: &Source,
    inside: impl Fn(&mut [u16; 32], &Taps, &[u16], usize),
) {
    let (px, stride, size) = (src.px, src.stride, src.size);
    for (i, row) in out.chunks_exact_mut(stride).enumerate() {
        let walk = RowWalk::new(&src.m, y0 + i);
        for (b, block) in row.chunks_mut(32).enumerate() {
            let taps = Taps::new(&walk, b, size);
            let n = block.len() / 4;
            if let Ok(block) = <&mut [u16; 32]>::try_from(&mut *block)
                && taps.inside(8, size)
            {
                inside(block, &taps, px, stride);
            } else if taps.outside(n, size) {
                block.fill(0);
            } else {
                edge_block(block, &taps, px, stride, size);
            }
        }
    }
}

super::hot! {
/// Rows from `y0` of the transformed picture (portable lanes).
fn transform_band(out: &mut [u16], y0: usize, src: &Source) {
    band_with(out, y0, src, inside_block);
}
}

/// The inside blocks in AVX2 registers: a pixel's two taps of a row are one 128-bit load,
/// two pixels share a register, and no lane passes through memory (the portable lanes
/// gather the taps on the stack and reload them as vectors, which stalls store forwarding).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Taps;

    /// [`super::transform_band`] with AVX2 blocks.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transform_band(out: &mut [u16], y0: usize, src: &super::Source) {
        super::band_with(out, y0, src, |o, t, px, stride| {
            // SAFETY: this runs inside a function compiled for (and called only with) AVX2.
            if !unsafe { block(o, t, px, stride) } {
                super::inside_block(o, t, px, stride);
            }
        });
    }

    /// `v` in each of a 64-bit lane's four 16-bit lanes.
    #[inline(always)]
    fn splat4(v: u16) -> i64 {
        (u64::from(v) * 0x0001_0001_0001_0001) as i64
    }

    /// Two pixels, `k` and `k + 1`: each one's four channels in the low 64 bits of its
    /// 128-bit lane. `None` when a tap is out of `px` (never for an inside block).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pair(t: &Taps, k: usize, px: &[u16], stride: usize) -> Option<__m256i> {
        let at = |k: usize| t.y[k] as usize * stride + t.x[k] as usize * 4;
        let (i0, i1) = (at(k), at(k + 1));
        let rows = |i: usize| -> Option<(__m128i, __m128i)> {
            let (top, bottom) = (px.get(i..i + 8)?, px.get(i + stride..i + stride + 8)?);
            // SAFETY: each slice holds 8 u16, the 16 bytes read (unaligned).
            Some(unsafe {
                (
                    _mm_loadu_si128(top.as_ptr().cast()),
                    _mm_loadu_si128(bottom.as_ptr().cast()),
                )
            })
        };
        let ((t0, b0), (t1, b1)) = (rows(i0)?, rows(i1)?);
        let top = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(t0), t1);
        let bottom = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(b0), b1);
        let (x0, x1) = (t.fx[k].min(65535) as u16, t.fx[k + 1].min(65535) as u16);
        let (y0, y1) = (t.fy[k].min(65535) as u16, t.fy[k + 1].min(65535) as u16);
        // [left weight, right weight] per pixel; then [top weight, bottom weight].
        let wx = _mm256_set_epi64x(splat4(x1), splat4(!x1), splat4(x0), splat4(!x0));
        let wy0 = _mm256_set_epi64x(0, splat4(!y1), 0, splat4(!y0));
        let wy1 = _mm256_set_epi64x(0, splat4(y1), 0, splat4(y0));
        // Left and right taps weighted, then the right half added onto the left.
        let h = |v: __m256i| {
            let a = _mm256_mulhi_epu16(v, wx);
            _mm256_add_epi16(a, _mm256_shuffle_epi32::<0b01_00_11_10>(a))
        };
        let (top, bottom) = (h(top), h(bottom));
        Some(_mm256_add_epi16(
            _mm256_mulhi_epu16(top, wy0),
            _mm256_mulhi_epu16(bottom, wy1),
        ))
    }

    /// Eight pixels into `o`; false (nothing written) when a tap is out of `px`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(o: &mut [u16; 32], t: &Taps, px: &[u16], stride: usize) -> bool {
        let mut four = [_mm256_setzero_si256(); 2];
        for (half, v) in four.iter_mut().enumerate() {
            let k = half * 4;
            let (Some(a), Some(b)) = (pair(t, k, px, stride), pair(t, k + 2, px, stride)) else {
                return false;
            };
            // [k, k+2 | k+1, k+3] -> [k, k+1, k+2, k+3]
            *v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_unpacklo_epi64(a, b));
        }
        let (lo, hi) = o.split_at_mut(16);
        // SAFETY: each half holds 16 u16, the 32 bytes written (unaligned).
        unsafe {
            _mm256_storeu_si256(lo.as_mut_ptr().cast(), four[0]);
            _mm256_storeu_si256(hi.as_mut_ptr().cast(), four[1]);
        }
        true
    }
}

/// Eight pixels whose taps all lie inside, as 32 lanes of 16 bits.
#[inline(always)]
fn inside_block(o: &mut [u16; 32], t: &Taps, px: &[u16], stride: usize) {
    let (mut tl, mut tr, mut bl, mut br) = ([0u16; 32], [0u16; 32], [0u16; 32], [0u16; 32]);
    let (mut wx, mut wy) = ([0u16; 32], [0u16; 32]);
    for k in 0..8 {
        let i = t.y[k] as usize * stride + t.x[k] as usize * 4;
        if let (Some(top), Some(bottom)) = (px.get(i..i + 8), px.get(i + stride..i + stride + 8)) {
            tl[k * 4..k * 4 + 4].copy_from_slice(&top[..4]);
            tr[k * 4..k * 4 + 4].copy_from_slice(&top[4..]);
            bl[k * 4..k * 4 + 4].copy_from_slice(&bottom[..4]);
            br[k * 4..k * 4 + 4].copy_from_slice(&bottom[4..]);
        }
        let (fx, fy) = (t.fx[k].min(65535) as u16, t.fy[k].min(65535) as u16);
        wx[k * 4..k * 4 + 4].fill(fx);
        wy[k * 4..k * 4 + 4].fill(fy);
    }
    for j in 0..32 {
        let top = mulhi(tl[j], !wx[j]) + mulhi(tr[j], wx[j]);
        let bottom = mulhi(bl[j], !wx[j]) + mulhi(br[j], wx[j]);
        o[j] = mulhi(top, !wy[j]) + mulhi(bottom, wy[j]);
    }
}

/// Up to eight pixels at the picture's edge: each tap tested, zero outside.
#[inline(always)]
fn edge_block(o: &mut [u16], t: &Taps, px: &[u16], stride: usize, (w, h): (i32, i32)) {
    let tap = |x: i32, y: i32, c: usize| -> u32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0
        } else {
            px.get(y as usize * stride + x as usize * 4 + c)
                .map_or(0, |v| u32::from(*v))
        }
    };
    for (k, o) in o.chunks_exact_mut(4).enumerate() {
        let (x, y) = (t.x[k], t.y[k]);
        if x < -1 || y < -1 || x >= w || y >= h {
            o.fill(0);
            continue;
        }
        let (tx, ty) = (u64::from(t.fx[k].min(65536)), u64::from(t.fy[k].min(65536)));
        let w00 = (((65536 - tx) * (65536 - ty)) >> 16) as u32;
        let w10 = ((tx * (65536 - ty)) >> 16) as u32;
        let w01 = (((65536 - tx) * ty) >> 16) as u32;
        let w11 = 65536 - w00 - w10 - w01;
        for (c, oc) in o.iter_mut().enumerate() {
            // Weights sum to 65536: at most 65535 · 65536 + 32768 < 2³².
            let v = tap(x, y, c) * w00
                + tap(x + 1, y, c) * w10
                + tap(x, y + 1, c) * w01
                + tap(x + 1, y + 1, c) * w11;
            *oc = ((v + 32768) >> 16).min(65535) as u16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 blocks give the portable lanes' bits (both compute the same 16-bit steps).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_blocks_equal_the_portable_lanes() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let (w, h) = (203u32, 77u32);
        let px: Vec<u16> = super::super::lcg(7)
            .take((w * h * 4) as usize)
            .map(|r| (r >> 16) as u16)
            .collect();
        let stride = w as usize * 4;
        for (scale, rotation, x, y) in [
            (1.05, 1.5, 3.0, -2.0),
            (0.7, -30.0, 10.5, 4.25),
            (2.0, 90.0, 0.0, 0.0),
        ] {
            let e = Effect::Transform {
                scale,
                x,
                y,
                rotation,
            };
            let Some(m) = ops::transform_inverse(w, h, &e) else {
                continue;
            };
            let (mut a, mut b) = (vec![0u16; px.len()], vec![0u16; px.len()]);
            let src = Source {
                px: &px,
                stride,
                size: (w as i32, h as i32),
                m,
            };
            transform_band(&mut a, 0, &src);
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { avx2::transform_band(&mut b, 0, &src) };
            assert!(a == b, "{e:?}");
            assert!(a.iter().any(|&v| v != 0));
        }
    }
}
