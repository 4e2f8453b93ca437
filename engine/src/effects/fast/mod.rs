//! The fast CPU path: what plays when the CPU renders effects. It computes what the
//! reference twins in [`super::cpu`] compute (they stay the oracle: the tests hold every
//! operation here within 1/255 of them, 2/255 for the wide blurs), with three changes of
//! representation that make it run near the memory-bandwidth limit:
//!
//! - pictures are RGBA in `u16` (65535 = 1.0), 8 bytes a pixel instead of 16: every value
//!   between operations lies in 0..=1 (each operation clamps or is a convex combination), so
//!   16 bits lose nothing the 8-bit output can show;
//! - per-pixel operations are tables: a grade is an affine map, a clamp and a power curve, and
//!   the curve is a 65536-entry lookup table (or, in a chain of several operations, eight
//!   fitted cubic pieces where they hold it within 8 codes: `fast::pieces`); consecutive grades
//!   fuse into one pass ([`point::PointChain`]) and a grade right after the Y'CbCr
//!   conversion runs in the conversion's pass, while the rows are in cache;
//! - the inner loops are slices of `f32`/`u32` the compiler vectorises (the neighbourhood
//!   operations sum shifted rows instead of walking pixels), rows in bands on rayon's pool,
//!   and blurs wider than [`blur::DIRECT_MAX`] are a cascade of three running-sum boxes whose
//!   widths are fitted to the reference kernel (cost independent of the radius).
//!
//! Pictures are deterministic: every output value is computed from its inputs alone, so the
//! number of threads and the band split never change a bit.

#![allow(
    clippy::needless_range_loop,
    reason = "lane loops index several arrays by the same lane: the form the vectoriser reads best"
)]

/// Compiles a hot loop once for the baseline and once for each SIMD level below, and picks
/// the best the CPU has at run time (`multiversion`): AVX2 doubles the vector width and brings
/// `roundps` (floor without a libm call), gathers and 32-bit multiplies. No FMA contraction
/// happens in any version, so every version computes the same bits.
macro_rules! hot {
    ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => {
        $(#[$m])*
        #[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
        $v fn $($rest)*
    };
}
pub(crate) use hot;

/// The moves between samples and lanes for [`for_each8_via`] and its kin in a [`hot!`]
/// function: [`lanes_avx2`]'s in its AVX2 version, [`load8`] and [`store8`] in the others
/// (the same values either way).
macro_rules! lanes {
    () => {{
        #[cfg(target_arch = "x86_64")]
        let avx2 = multiversion::target::target_cfg_f!(target_feature = "avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        (
            move |p: &[u16; 32]| -> $crate::effects::fast::Px8 {
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: this version of the function runs only on CPUs with AVX2
                    // (`multiversion` chose it for that). Its closures inherit AVX2, where
                    // the call needs no `unsafe`; the other versions' closures need it.
                    #[allow(unused_unsafe, reason = "needed outside the AVX2 version only")]
                    return unsafe { $crate::effects::fast::lanes_avx2::load8(p) };
                }
                $crate::effects::fast::load8(p)
            },
            move |p: &mut [u16; 32], v: &$crate::effects::fast::Px8| {
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: as above.
                    #[allow(unused_unsafe, reason = "needed outside the AVX2 version only")]
                    return unsafe { $crate::effects::fast::lanes_avx2::store8(p, v) };
                }
                $crate::effects::fast::store8(p, v)
            },
        )
    }};
}

pub mod blend;
pub mod blur;
pub mod convert;
mod frame;
mod pieces;
pub mod point;
pub mod resize;
pub mod sharpen;
pub mod transform;

use std::sync::LazyLock;

use crate::memory::BufferPool;

pub use frame::{apply, render, render_picture, scratch_bytes};

/// 1.0 in the fast path's samples.
pub const ONE: u16 = u16::MAX;

/// Rows per parallel band (small enough to balance two to sixteen cores at 1080p, large
/// enough that a band's start costs nothing).
pub(crate) const BAND_ROWS: usize = 8;

/// Where the images of a render without a pool (benchmarks, tests, the CLI's one-off renders)
/// keep their buffers between frames: a pool of its own, with no limit but
/// [`crate::memory::pool::SAMPLE_BUFFERS_KEPT`] (a fresh 16 MB buffer costs ~4000 page faults,
/// a few milliseconds at 1080p; a reused one none).
static UNPOOLED: LazyLock<BufferPool> = LazyLock::new(|| BufferPool::new(usize::MAX));

thread_local! {
    /// The pool the images made on this thread come from and go back to ([`with_pool`]).
    static POOL: std::cell::RefCell<Option<BufferPool>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the [`Image16`]s made on this thread taking their samples from `pool`
/// ([`BufferPool::take_samples`]) and giving them back there when dropped, so that the
/// buffers a render keeps for the next one are counted in the memory budget as idle effect
/// scratch, trimmed under pressure and freed with the pool. The images of a render are made
/// on the thread that runs it (its parallel bands only fill slices of them); a render
/// started inside `f` on this thread (rayon runs a queued job while it waits) sets its own
/// pool and restores this one.
pub fn with_pool<R>(pool: Option<&BufferPool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<BufferPool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            POOL.with(|p| *p.borrow_mut() = before);
        }
    }
    let _restore = Restore(POOL.with(|p| p.replace(pool.cloned())));
    f()
}

/// An RGBA picture in `u16` (0..=65535 for 0..=1, gamma-encoded as stored), rows tightly
/// packed: `px[(y * width + x) * 4 + c]`. Its buffer returns when dropped to the pool it came
/// from ([`with_pool`], else a process-wide one).
#[derive(Debug)]
pub struct Image16 {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Samples, four a pixel.
    pub px: Vec<u16>,
    /// The pool `px` goes back to.
    home: BufferPool,
}

impl Image16 {
    /// A `width`×`height` picture whose samples are unspecified (a reused buffer): for
    /// operations that write every sample.
    pub fn scratch(width: u32, height: u32) -> Self {
        let home = POOL
            .with(|p| p.borrow().clone())
            .unwrap_or_else(|| UNPOOLED.clone());
        let px = home.take_samples(width as usize * height as usize * 4);
        Self {
            width,
            height,
            px,
            home,
        }
    }

    /// A picture filled with one pixel.
    pub fn filled(width: u32, height: u32, value: [u16; 4]) -> Self {
        let mut img = Self::scratch(width, height);
        for p in img.px.chunks_exact_mut(4) {
            p.copy_from_slice(&value);
        }
        img
    }

    /// Samples per row.
    pub fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// Rounds to RGBA8 (alpha opaque), as the reference's `to_rgba8` does, into `out`
    /// (`width * height * 4` bytes).
    pub fn pack_rgba8(&self, out: &mut [u8]) {
        self.pack_bands(out, pack_band);
    }

    /// [`Self::pack_rgba8`] of the image blended onto opaque black first (`k` from
    /// [`blend::over_black_factor`]): the same values as [`blend::over_black`] then the pack,
    /// in one pass.
    pub fn pack_rgba8_over_black(&self, out: &mut [u8], k: f32) {
        self.pack_bands(out, |o, s| pack_over_black_band(o, s, k));
    }

    /// `pack` on each band of rows of the output and the samples beneath it, in parallel.
    fn pack_bands(&self, out: &mut [u8], pack: impl Fn(&mut [u8], &[u16]) + Sync + Send) {
        use rayon::prelude::*;
        let band = self.stride() * BAND_ROWS;
        if band == 0 {
            return;
        }
        out.par_chunks_mut(band)
            .zip(self.px.par_chunks(band))
            .for_each(|(o, s)| pack(o, s));
    }
}

hot! {
    pub(crate) fn pack_over_black_band(o: &mut [u8], s: &[u16], k: f32) {
        for (d, v) in o.chunks_exact_mut(4).zip(s.chunks_exact(4)) {
            let a = f32::from(v[3]) * k;
            for c in 0..3 {
                let u = u32::from(to_u16(f32::from(v[c]) * a));
                d[c] = to_u8(u);
            }
            d[3] = 255;
        }
    }
}

hot! {
    pub(crate) fn pack_band(o: &mut [u8], s: &[u16]) {
        for (d, v) in o.iter_mut().zip(s) {
            *d = to_u8(u32::from(*v));
        }
        for px in o.chunks_exact_mut(4) {
            px[3] = 255;
        }
    }
}

impl Clone for Image16 {
    fn clone(&self) -> Self {
        let mut out = Self::scratch(self.width, self.height);
        out.px.copy_from_slice(&self.px);
        out
    }
}

impl Drop for Image16 {
    fn drop(&mut self) {
        self.home.give_samples(std::mem::take(&mut self.px));
    }
}

/// `v` (in 0..=65535 units) clamped and rounded to the nearest sample. Branch-free and
/// vectorisable: the clamps are plain comparisons (`minps`/`maxps`), and adding 1.5 · 2²³
/// leaves the rounded integer in the low mantissa bits (an `as` cast would saturate and check
/// for NaN first, which the vectoriser gives up on).
#[inline(always)]
pub(crate) fn to_u16(v: f32) -> u16 {
    let v = if v > 65535.0 { 65535.0 } else { v };
    let v = if v < 0.0 { 0.0 } else { v };
    (v + 12_582_912.0).to_bits() as u16
}

/// A sample (0..=65535) rounded to 8 bits, `round(v · 255 / 65535)` = `round(v / 257)`, in
/// shifts and adds (a division by a constant is a 32-bit multiply-high, which x86 vectors
/// lack: the packs ran 1.5–2x slower with it). A test holds the two equal for every sample.
#[inline(always)]
pub(crate) fn to_u8(v: u32) -> u8 {
    let t = v + 128;
    ((t - (t >> 8)) >> 8) as u8
}

/// [`to_u16`] widened, for integer stages.
#[inline(always)]
pub(crate) fn to_i32(v: f32) -> i32 {
    i32::from(to_u16(v))
}

/// Eight pixels as four lanes of eight `f32` (R, G, B, A): per-pixel operations are written
/// over these lanes, which the compiler turns into vector instructions.
pub(crate) type Px8 = [[f32; 8]; 4];

#[inline(always)]
pub(crate) fn load8(p: &[u16; 32]) -> Px8 {
    let mut o = [[0.0; 8]; 4];
    for i in 0..8 {
        for c in 0..4 {
            o[c][i] = f32::from(p[i * 4 + c]);
        }
    }
    o
}

#[inline(always)]
pub(crate) fn store8(p: &mut [u16; 32], v: &Px8) {
    for i in 0..8 {
        for c in 0..4 {
            p[i * 4 + c] = to_u16(v[c][i]);
        }
    }
}

/// Runs `f` on every eight pixels of `px` (whole pixels; a short tail is padded).
#[inline(always)]
pub(crate) fn for_each8(px: &mut [u16], f: impl FnMut(&mut Px8)) {
    for_each8_via(px, (load8, store8), f);
}

/// [`for_each8`] with its own moves between samples and lanes: `load` may put the eight
/// pixels in its lanes in any order that `store` undoes (per-pixel operations do not care),
/// such as [`lanes_avx2`]'s.
#[inline(always)]
pub(crate) fn for_each8_via(
    px: &mut [u16],
    (load8, store8): (impl Fn(&[u16; 32]) -> Px8, impl Fn(&mut [u16; 32], &Px8)),
    mut f: impl FnMut(&mut Px8),
) {
    let mut chunks = px.chunks_exact_mut(32);
    for c in &mut chunks {
        if let Ok(c) = <&mut [u16; 32]>::try_from(c) {
            let mut v = load8(c);
            f(&mut v);
            store8(c, &v);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0u16; 32];
        buf[..rest.len()].copy_from_slice(rest);
        let mut v = load8(&buf);
        f(&mut v);
        store8(&mut buf, &v);
        let n = rest.len();
        rest.copy_from_slice(&buf[..n]);
    }
}

/// Blocks of eight pixels [`for_each8_tiled`] hands over at once: 64 (8 KiB of lanes, in L1).
pub(crate) const TILE_BLOCKS: usize = 64;

/// Runs `f` on tiles of up to [`TILE_BLOCKS`] blocks of eight pixels of `px` (whole pixels;
/// a short tail is padded): a chain of operations can then run each operation over the whole
/// tile, so one operation's table stays in cache while it is used, instead of every
/// operation's table being touched for each eight pixels.
/// `load8` and `store8` move between samples and lanes (see [`for_each8_via`]).
#[inline(always)]
pub(crate) fn for_each8_tiled(
    px: &mut [u16],
    (load8, store8): (impl Fn(&[u16; 32]) -> Px8, impl Fn(&mut [u16; 32], &Px8)),
    mut f: impl FnMut(&mut [Px8]),
) {
    let mut tile = [[[0.0f32; 8]; 4]; TILE_BLOCKS];
    for chunk in px.chunks_mut(32 * TILE_BLOCKS) {
        let whole = chunk.len() / 32;
        for (b, t) in chunk.chunks_exact(32).zip(tile.iter_mut()) {
            if let Ok(b) = <&[u16; 32]>::try_from(b) {
                *t = load8(b);
            }
        }
        let rest = chunk.len() - 32 * whole;
        let mut buf = [0u16; 32];
        if rest > 0 {
            buf[..rest].copy_from_slice(&chunk[32 * whole..]);
            tile[whole] = load8(&buf);
        }
        let n = whole + usize::from(rest > 0);
        f(&mut tile[..n]);
        for (b, t) in chunk.chunks_exact_mut(32).zip(tile.iter()) {
            if let Ok(b) = <&mut [u16; 32]>::try_from(b) {
                store8(b, t);
            }
        }
        if rest > 0 {
            store8(&mut buf, &tile[whole]);
            chunk[32 * whole..].copy_from_slice(&buf[..rest]);
        }
    }
}

/// Moves between eight pixels' samples and `f32` lanes in AVX2 registers: widening
/// unpacks and two 4×4 transposes, where [`load8`] and [`store8`] move sample by sample
/// (`vpinsrw`: 32 inserts for eight pixels, most of a short point chain's time). The lanes
/// hold the pixels in the order 0, 1, 4, 5, 2, 3, 6, 7, which [`store8`](lanes_avx2::store8)
/// undoes; the values are [`load8`]'s and [`store8`]'s, bit for bit.
#[cfg(target_arch = "x86_64")]
pub(crate) mod lanes_avx2 {
    use std::arch::x86_64::*;

    use super::Px8;

    /// Eight pixels' samples as lanes (see the module).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn load8(p: &[u16; 32]) -> Px8 {
        // SAFETY: `p` holds 64 bytes, read as two unaligned 32-byte halves.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(p.as_ptr().cast()),
                _mm256_loadu_si256(p.as_ptr().add(16).cast()),
            )
        };
        let zero = _mm256_setzero_si256();
        // Each 128-bit half: one pixel's four samples widened to 32 bits.
        let (p02, p13) = (
            _mm256_unpacklo_epi16(a, zero),
            _mm256_unpackhi_epi16(a, zero),
        );
        let (p46, p57) = (
            _mm256_unpacklo_epi16(b, zero),
            _mm256_unpackhi_epi16(b, zero),
        );
        let (t0, t1) = (
            _mm256_unpacklo_epi32(p02, p13),
            _mm256_unpackhi_epi32(p02, p13),
        );
        let (t2, t3) = (
            _mm256_unpacklo_epi32(p46, p57),
            _mm256_unpackhi_epi32(p46, p57),
        );
        let channels = [
            _mm256_unpacklo_epi64(t0, t2),
            _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3),
            _mm256_unpackhi_epi64(t1, t3),
        ];
        let mut o = [[0.0f32; 8]; 4];
        for (o, c) in o.iter_mut().zip(channels) {
            // SAFETY: `o` holds eight f32, the 32 bytes written (unaligned).
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), _mm256_cvtepi32_ps(c)) };
        }
        o
    }

    /// Lanes back to eight pixels' samples, each rounded as [`super::to_u16`] rounds
    /// (clamped into 0..=65535, NaN to 0, to nearest even).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn store8(p: &mut [u16; 32], v: &Px8) {
        let c = v.map(|c| {
            // SAFETY: `c` holds eight f32, the 32 bytes read (unaligned).
            let c = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            // `max` first: it gives its second operand, 0, for NaN.
            let c = _mm256_min_ps(
                _mm256_max_ps(c, _mm256_setzero_ps()),
                _mm256_set1_ps(65535.0),
            );
            _mm256_cvtps_epi32(c)
        });
        let (t0, t1) = (
            _mm256_unpacklo_epi32(c[0], c[1]),
            _mm256_unpackhi_epi32(c[0], c[1]),
        );
        let (t2, t3) = (
            _mm256_unpacklo_epi32(c[2], c[3]),
            _mm256_unpackhi_epi32(c[2], c[3]),
        );
        let a = _mm256_packus_epi32(_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2));
        let b = _mm256_packus_epi32(_mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3));
        // SAFETY: `p` holds 64 bytes, written as two unaligned 32-byte halves.
        unsafe {
            _mm256_storeu_si256(p.as_mut_ptr().cast(), a);
            _mm256_storeu_si256(p.as_mut_ptr().add(16).cast(), b);
        }
    }
}

/// [`for_each8_via`] over `dst` with the same pixels of `src` beside.
#[inline(always)]
pub(crate) fn for_each8_with(
    dst: &mut [u16],
    src: &[u16],
    (load8, store8): (impl Fn(&[u16; 32]) -> Px8, impl Fn(&mut [u16; 32], &Px8)),
    mut f: impl FnMut(&mut Px8, &Px8),
) {
    let mut d = dst.chunks_exact_mut(32);
    let mut s = src.chunks_exact(32);
    for (dc, sc) in (&mut d).zip(&mut s) {
        if let (Ok(dc), Ok(sc)) = (<&mut [u16; 32]>::try_from(dc), <&[u16; 32]>::try_from(sc)) {
            let mut v = load8(dc);
            f(&mut v, &load8(sc));
            store8(dc, &v);
        }
    }
    let (dr, sr) = (d.into_remainder(), s.remainder());
    let n = dr.len().min(sr.len());
    if n > 0 {
        let (mut a, mut b) = ([0u16; 32], [0u16; 32]);
        a[..n].copy_from_slice(&dr[..n]);
        b[..n].copy_from_slice(&sr[..n]);
        let mut v = load8(&a);
        f(&mut v, &load8(&b));
        store8(&mut a, &v);
        dr[..n].copy_from_slice(&a[..n]);
    }
}

/// The AVX2 lanes carry each pixel's values as [`load8`] and [`store8`] do: a per-pixel
/// operation gives the same samples through either, with results below 0, above 65535,
/// halfway between codes and NaN.
#[cfg(all(test, target_arch = "x86_64"))]
#[test]
fn avx2_lanes_move_pixels_as_the_portable_lanes() {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return;
    }
    let px: Vec<u16> = lcg(8)
        .take(4 * 1000 + 12)
        .map(|r| (r >> 16) as u16)
        .collect();
    let op = |p: &mut Px8| {
        for i in 0..8 {
            // Halves, negatives and overflows from the samples; NaN from the pixels whose
            // green is 0 (0 / 0), each a function of its own pixel only.
            let g = p[1][i];
            p[0][i] = p[0][i] * 1.5 - 20000.5;
            p[1][i] = if g == 0.0 {
                f32::NAN
            } else {
                p[2][i] * 2.0 - g * 0.5
            };
            p[2][i] = (p[2][i] + p[3][i]) * 0.5;
        }
    };
    let mut px = px;
    px[4 * 17 + 1] = 0;
    let mut portable = px.clone();
    for_each8(&mut portable, op);
    let mut avx2 = px.clone();
    for_each8_via(
        &mut avx2,
        (
            // SAFETY: the CPU has AVX2 (checked above).
            |p: &[u16; 32]| unsafe { lanes_avx2::load8(p) },
            // SAFETY: as above.
            |p: &mut [u16; 32], v: &Px8| unsafe { lanes_avx2::store8(p, v) },
        ),
        op,
    );
    assert!(portable == avx2);
    assert_eq!(portable[4 * 17 + 1], 0, "NaN stores as 0");
}

#[cfg(test)]
#[test]
fn rounding_to_8_bits_is_the_division() {
    for v in 0..=65535u32 {
        assert_eq!(u32::from(to_u8(v)), (v * 255 + 32767) / 65535, "{v}");
    }
}

/// A fixed pseudo-random sequence (a linear congruential generator) for the unit tests.
#[cfg(test)]
pub(crate) fn lcg(mut seed: u32) -> impl Iterator<Item = u32> {
    std::iter::repeat_with(move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed
    })
}
