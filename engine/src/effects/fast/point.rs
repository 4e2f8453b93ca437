//! Per-pixel effects as one pass: the fast twin of [`crate::effects::cpu::grade`], fused.
//!
//! The reference grade is, per channel, `v' = α v + β` (lift, gain, brightness and contrast
//! fold into one affine map), then a saturation mix across channels
//! (`s = luma + (v' - luma) · sat`), a clamp to 0..=1 and `s^(1/γ)`. So a grade is
//! - with saturation 1, one curve the same for R, G and B: a 65536-entry table, and
//!   consecutive such grades compose into one table;
//! - otherwise a 3×3 matrix and offset, then a clamp, then the curve (interpolated between
//!   table entries: the steep start of `x^(1/γ)` needs it), and the tables of the grades that
//!   follow compose into that curve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use framelock_components::Effect;

use super::BAND_ROWS;
use super::pieces::Pieces;
use crate::effects::ops;

/// A curve over the sample codes, one table: `lo` at `j / 256` for `j` in 0..65536 (the
/// first 256 codes, where `x^(1/γ)` is too steep for whole codes: a mix computes
/// fractional values there), then `hi` at each of the 65536 codes, then one spare entry (a
/// 32-bit gather of the last entry reads it).
#[derive(Clone)]
struct Curve {
    table: Arc<[u16]>,
}

/// Where `hi` starts in a curve's table.
const HI: usize = 65536;

impl Curve {
    fn new(lo: impl Iterator<Item = u16>, hi: impl Iterator<Item = u16>) -> Self {
        let mut table = Vec::with_capacity(2 * HI + 1);
        table.extend(lo);
        table.extend(hi);
        debug_assert_eq!(table.len(), 2 * HI);
        table.push(0);
        Self {
            table: table.into(),
        }
    }

    fn lo(&self) -> &[u16] {
        &self.table[..HI]
    }

    fn hi(&self) -> &[u16] {
        &self.table[HI..2 * HI]
    }

    /// The curve at a fractional code `s` in 0..=65535.
    #[inline(always)]
    fn at(&self, s: f32) -> u16 {
        if s < 256.0 {
            self.lo()[((s * 256.0) as usize).min(65535)]
        } else {
            self.hi()[(super::to_u16(s) as usize).min(65535)]
        }
    }
}

/// Fitted chains kept for reuse by [`PointChain::of`], the last used first: a 100-effect
/// stack is 13 chains.
type Kept = Vec<(Vec<[u32; 6]>, Arc<PointChain>)>;
static CHAINS: Mutex<Kept> = Mutex::new(Vec::new());
const CHAINS_KEEP: usize = 32;

/// Rec. 709 luma weights, as the reference uses them.
const LUMA: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Curves built so far, by `(α, β, 1/γ)` bits: building one costs 65536 `powf` (~1 ms), and a
/// playing timeline asks for the same few every frame.
static CURVES: Mutex<Option<HashMap<[u32; 3], Curve>>> = Mutex::new(None);
const CURVES_KEEP: usize = 64;

fn curve_of(alpha: f32, beta: f32, exponent: f32) -> Curve {
    let key = [alpha.to_bits(), beta.to_bits(), exponent.to_bits()];
    if let Ok(cache) = CURVES.lock()
        && let Some(c) = cache.as_ref().and_then(|m| m.get(&key))
    {
        return c.clone();
    }
    let f = |v: f32| super::to_u16((alpha * v + beta).clamp(0.0, 1.0).powf(exponent) * 65535.0);
    let curve = Curve::new(
        (0..65536u32).map(|j| f(j as f32 / 256.0 / 65535.0)),
        (0..=65535u32).map(|x| f(x as f32 / 65535.0)),
    );
    if let Ok(mut cache) = CURVES.lock() {
        let map = cache.get_or_insert_with(HashMap::new);
        if map.len() >= CURVES_KEEP {
            map.clear();
        }
        map.insert(key, curve.clone());
    }
    curve
}

/// The pure power curve (no affine part).
fn power_curve(exponent: f32) -> Option<Curve> {
    (exponent != 1.0).then(|| curve_of(1.0, 0.0, exponent))
}

/// `outer ∘ inner`.
fn compose(inner: &Curve, outer: &Curve) -> Curve {
    let outer = outer.hi();
    Curve::new(
        inner.lo().iter().map(|&v| outer[v as usize]),
        inner.hi().iter().map(|&v| outer[v as usize]),
    )
}

/// A curve as a point chain evaluates it.
enum Shape {
    /// Its table.
    Table(Curve),
    /// Fitted pieces (in a chain of several operations, for a curve smooth enough: see
    /// [`PointChain::of`]).
    Pieces(Box<Pieces>),
}

enum Op {
    /// The same curve on R, G and B.
    Curve(Shape),
    /// `s = keep · rgb + (luma · rgb + c)` (65535 units: a saturation mix is a 3×3 matrix
    /// whose rows differ only on the diagonal, 12 operations instead of 18), clamped, then
    /// the curve (if any), interpolated.
    Mix {
        keep: f32,
        luma: [f32; 3],
        c: f32,
        curve: Option<Shape>,
    },
}

/// Consecutive per-pixel effects fused into as few operations as their parameters allow
/// (most stacks of grades become one table lookup a channel).
#[derive(Default)]
pub struct PointChain {
    ops: Vec<Op>,
}

impl PointChain {
    /// Whether `e` is a per-pixel effect this chain can take.
    pub fn takes(e: &Effect) -> bool {
        matches!(e, Effect::Grade { .. })
    }

    /// Whether the chain does nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends `e` (ignored unless [`Self::takes`] it).
    pub fn push(&mut self, e: &Effect) {
        let Some((a, b)) = ops::grade_params(e) else {
            return;
        };
        let [brightness, contrast, saturation, exponent] = a;
        let [lift, gain] = b;
        // ((v + lift (1 - v)) gain + brightness - 0.5) contrast + 0.5
        let alpha = (1.0 - lift) * gain * contrast;
        let beta = (lift * gain + brightness - 0.5) * contrast + 0.5;
        if saturation == 1.0 {
            let curve = curve_of(alpha, beta, exponent);
            match self.ops.last_mut() {
                Some(Op::Curve(Shape::Table(c))) => *c = compose(c, &curve),
                Some(Op::Mix {
                    curve: Some(Shape::Table(c)),
                    ..
                }) => *c = compose(c, &curve),
                Some(Op::Mix {
                    curve: slot @ None, ..
                }) => *slot = Some(Shape::Table(curve)),
                None => self.ops.push(Op::Curve(Shape::Table(curve))),
                // A fitted curve has no table to compose with (chains are fitted after
                // their last push): the curve is an operation of its own.
                Some(_) => self.ops.push(Op::Curve(Shape::Table(curve))),
            }
            return;
        }
        // s_i = Σ_j (sat δ_ij + (1 - sat) w_j) (α x_j + β): the offset is β because Σ w = 1.
        // A curve before the mix folds into nothing (the mix needs each channel's value), so
        // the mix takes the channels as they are.
        self.ops.push(Op::Mix {
            keep: saturation * alpha,
            luma: LUMA.map(|w| (1.0 - saturation) * w * alpha),
            c: beta * 65535.0,
            curve: power_curve(exponent).map(Shape::Table),
        });
    }

    /// The chain of `effects` (the per-pixel ones), fitted: in a chain of more than one
    /// operation, each curve smooth enough becomes eight cubic pieces (no lookups; see
    /// `fast::pieces`). Chains are kept for reuse (a playing timeline asks for the same
    /// few every frame, and fitting a curve costs about a millisecond).
    pub fn of(effects: &[Effect]) -> Arc<Self> {
        let key: Vec<[u32; 6]> = effects
            .iter()
            .filter_map(ops::grade_params)
            .map(|(a, b)| [a[0], a[1], a[2], a[3], b[0], b[1]].map(f32::to_bits))
            .collect();
        if let Ok(mut kept) = CHAINS.lock()
            && let Some(i) = kept.iter().position(|(k, _)| *k == key)
        {
            let hit = kept.remove(i);
            let chain = hit.1.clone();
            kept.insert(0, hit);
            return chain;
        }
        let mut chain = Self::default();
        for e in effects {
            chain.push(e);
        }
        chain.fit();
        let chain = Arc::new(chain);
        if let Ok(mut kept) = CHAINS.lock() {
            kept.insert(0, (key, chain.clone()));
            kept.truncate(CHAINS_KEEP);
        }
        chain
    }

    /// Replaces each table the chain looks up by [`Pieces`] where they fit, unless the chain
    /// is one curve (its samples are looked up as they are, without `f32` lanes: faster than
    /// any arithmetic).
    fn fit(&mut self) {
        if let [Op::Curve(_)] = self.ops.as_slice() {
            return;
        }
        for op in &mut self.ops {
            let (Op::Curve(shape)
            | Op::Mix {
                curve: Some(shape), ..
            }) = op
            else {
                continue;
            };
            if let Shape::Table(t) = shape
                && let Some(p) = Pieces::fit(t.hi(), t.lo())
            {
                *shape = Shape::Pieces(Box::new(p));
            }
        }
    }

    /// Runs the chain on RGBA16 samples (whole pixels), in parallel bands.
    pub fn apply(&self, px: &mut [u16]) {
        use rayon::prelude::*;
        if self.ops.is_empty() {
            return;
        }
        crate::profile_function!();
        px.par_chunks_mut(4 * 1024 * BAND_ROWS)
            .for_each(|band| self.apply_band(band));
    }

    /// Runs the chain on RGBA16 samples (whole pixels) on this thread.
    pub fn apply_band(&self, px: &mut [u16]) {
        match self.ops.as_slice() {
            [Op::Curve(Shape::Table(curve))] => curve_band(px, curve.hi()),
            ops => {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked above).
                    unsafe { avx2::fused_band(px, ops) };
                    return;
                }
                fused_band(px, ops);
            }
        }
    }
}

/// A curve at eight fractional codes (the mix's results, each in 0..=65535).
type At8 = [f32; 8];

super::hot! {
    fn curve_band(px: &mut [u16], t: &[u16]) {
        for p in px.chunks_exact_mut(4) {
            p[0] = t[p[0] as usize];
            p[1] = t[p[1] as usize];
            p[2] = t[p[2] as usize];
        }
    }
}

/// One operation on eight pixels `$p`, in `f32` lanes (see [`fused_with`]).
macro_rules! op8 {
    ($op:expr, $p:expr, $at:expr, $hi:expr, $pc:expr) => {{
        let p: &mut crate::effects::fast::Px8 = $p;
        match $op {
            Op::Curve(Shape::Table(t)) => {
                for ch in p.iter_mut().take(3) {
                    *ch = $hi(t, ch);
                }
            }
            Op::Curve(Shape::Pieces(t)) => {
                for ch in p.iter_mut().take(3) {
                    *ch = $pc(t, ch);
                }
            }
            Op::Mix {
                keep,
                luma,
                c,
                curve,
            } => {
                let mut t = [0.0f32; 8];
                for k in 0..8 {
                    t[k] = luma[0] * p[0][k] + luma[1] * p[1][k] + luma[2] * p[2][k] + c;
                }
                let mut s = [[0.0f32; 8]; 3];
                // Fitted pieces clamp what they are given into their span.
                let clamp = !matches!(curve, Some(Shape::Pieces(_)));
                for (i, si) in s.iter_mut().enumerate() {
                    for k in 0..8 {
                        let v = keep * p[i][k] + t[k];
                        si[k] = if clamp {
                            let v = if v > 65535.0 { 65535.0 } else { v };
                            if v < 0.0 { 0.0 } else { v }
                        } else {
                            v
                        };
                    }
                }
                for i in 0..3 {
                    p[i] = match curve {
                        Some(Shape::Table(t)) => $at(t, &s[i]),
                        Some(Shape::Pieces(t)) => $pc(t, &s[i]),
                        None => s[i],
                    };
                }
            }
        }
    }};
}

/// Every operation in `f32` lanes, with one load and one store for the whole chain. A short
/// chain runs all its operations on eight pixels at a time, in registers; a longer one runs
/// each operation over a tile of pixels ([`super::for_each8_tiled`]) before the next, so
/// one operation's table stays in cache while it is used (a 100-effect stack has 36 mixes,
/// each with its own 256 KiB table: for each eight pixels, all of them missed the cache;
/// 172 → 143 ms a 1080p frame). `$at` looks a curve up at eight fractional codes
/// ([`Curve::at`]), `$hi` at eight whole codes (its `hi` part), `$pc` evaluates fitted
/// pieces at eight codes ([`Pieces::eval`]). A macro, not a function
/// taking closures: the closures must be written inside the function compiled for the SIMD
/// level to inherit its target features (and be inlined into the loop's body).
macro_rules! fused_with {
    ($px:expr, $ops:expr, $load:expr, $store:expr, $at:expr, $hi:expr, $pc:expr) => {{
        let (at, hi, pc) = ($at, $hi, $pc);
        let ops: &[Op] = $ops;
        if ops.len() <= TILED_FROM {
            crate::effects::fast::for_each8_via(
                $px,
                ($load, $store),
                |p: &mut crate::effects::fast::Px8| {
                    for op in ops {
                        op8!(op, p, at, hi, pc);
                    }
                },
            )
        } else {
            crate::effects::fast::for_each8_tiled(
                $px,
                ($load, $store),
                |tile: &mut [crate::effects::fast::Px8]| {
                    for op in ops {
                        for p in tile.iter_mut() {
                            op8!(op, p, at, hi, pc);
                        }
                    }
                },
            )
        }
    }};
}

/// Chains of more operations than this run tile by tile (see [`fused_with`]): a lone mix
/// lost 4 % to the tile's extra pass (1080p grade 6.4 → 6.65 ms).
const TILED_FROM: usize = 2;

super::hot! {
    /// [`fused_with`], one lane at a time for the lookups.
    fn fused_band(px: &mut [u16], ops: &[Op]) {
        fused_with!(
            px,
            ops,
            crate::effects::fast::load8,
            crate::effects::fast::store8,
            |t: &Curve, s: &At8| s.map(|s| f32::from(t.at(s))),
            |t: &Curve, v: &At8| v.map(|v| f32::from(t.hi()[super::to_u16(v) as usize])),
            |t: &Pieces, s: &At8| s.map(|s| t.eval(s))
        );
    }
}

/// The lookups as AVX2 gathers: eight codes at once from the curve's joined table (the
/// rest of the chain is already vector code).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{At8, Curve, HI, Op, Pieces, Shape, TILED_FROM};
    use crate::effects::fast::lanes_avx2;

    /// [`super::fused_band`] with gathered lookups.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn fused_band(px: &mut [u16], ops: &[Op]) {
        // The closures inherit the function's target features.
        fused_with!(
            px,
            ops,
            |p: &[u16; 32]| lanes_avx2::load8(p),
            |p: &mut [u16; 32], v: &crate::effects::fast::Px8| lanes_avx2::store8(p, v),
            |t: &Curve, s: &At8| at(t, s),
            |t: &Curve, v: &At8| hi(t, v),
            |t: &Pieces, s: &At8| crate::effects::fast::pieces::avx2::eval8(t, s)
        );
    }

    /// Eight table entries at `index` (each clamped into the table: NaN codes land on an
    /// entry, never outside).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn gather(t: &Curve, index: __m256i) -> At8 {
        let index = _mm256_min_epi32(
            _mm256_max_epi32(index, _mm256_setzero_si256()),
            _mm256_set1_epi32((2 * HI - 1) as i32),
        );
        // SAFETY: every index is below 2 · HI, and the table holds 2 · HI + 1 entries, so
        // the four bytes read at each index · 2 lie inside it (x86 gathers allow unaligned
        // elements).
        let v = unsafe { _mm256_i32gather_epi32::<2>(t.table.as_ptr().cast(), index) };
        let v = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds eight f32, the 32 bytes written (unaligned).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_cvtepi32_ps(v)) };
        out
    }

    /// [`Curve::at`] at eight codes: `lo` by the code · 256 truncated below 256, `hi` by the
    /// code rounded to nearest (even) above.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn at(t: &Curve, s: &At8) -> At8 {
        // SAFETY: `s` holds eight f32, the 32 bytes read (unaligned).
        let v = unsafe { _mm256_loadu_ps(s.as_ptr()) };
        let lo = _mm256_min_epi32(
            _mm256_cvttps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(256.0))),
            _mm256_set1_epi32(65535),
        );
        let hi = _mm256_add_epi32(
            _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(65535)),
            _mm256_set1_epi32(HI as i32),
        );
        let below = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_set1_ps(256.0)));
        gather(t, _mm256_blendv_epi8(hi, lo, below))
    }

    /// The curve's `hi` part at eight whole codes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hi(t: &Curve, v: &At8) -> At8 {
        // SAFETY: `v` holds eight f32, the 32 bytes read (unaligned).
        let v = unsafe { _mm256_loadu_ps(v.as_ptr()) };
        let v = _mm256_min_ps(
            _mm256_max_ps(v, _mm256_setzero_ps()),
            _mm256_set1_ps(65535.0),
        );
        gather(
            t,
            _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(HI as i32)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gathered lookups give the lane-at-a-time lookups' bits, for mixes with and
    /// without curves, curves after mixes and codes near the `lo`/`hi` seam.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lookups_equal_the_portable_lanes() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let grade = |brightness: f32, saturation: f32, gamma: f32| Effect::Grade {
            brightness,
            contrast: 1.1,
            saturation,
            gamma,
            lift: 0.01,
            gain: 0.98,
        };
        let mut chain = PointChain::default();
        for e in [
            grade(0.03, 1.0, 1.3),
            grade(0.02, 1.2, 1.05),
            grade(-0.1, 1.0, 2.2),
            grade(0.0, 0.5, 1.0),
            grade(0.05, 1.0, 0.8),
            grade(-0.3, 1.7, 2.4),
        ] {
            chain.push(&e);
        }
        // A third of the samples near black, where the mixes land below code 256.
        let px: Vec<u16> = super::super::lcg(11)
            .take(4 * 1037)
            .enumerate()
            .map(|(i, r)| {
                if i % 3 == 0 {
                    (r >> 24) as u16
                } else {
                    (r >> 16) as u16
                }
            })
            .collect();
        assert!(matches!(chain.ops.first(), Some(Op::Curve(_))) && chain.ops.len() == 4);
        let (mut a, mut b) = (px.clone(), px.clone());
        fused_band(&mut a, &chain.ops);
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { avx2::fused_band(&mut b, &chain.ops) };
        assert!(a == b);
        // The same with fitted pieces where they fit.
        let gentle = [
            grade(0.01, 1.02, 1.01),
            grade(0.0, 1.0, 0.99),
            grade(-0.01, 1.1, 1.0),
            grade(0.02, 1.0, 1.02),
        ];
        let fitted = PointChain::of(&gentle);
        assert!(fitted.ops.iter().any(|op| matches!(
            op,
            Op::Mix {
                curve: Some(Shape::Pieces(_)),
                ..
            }
        )));
        let (mut a, mut b) = (px.clone(), px);
        fused_band(&mut a, &fitted.ops);
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { avx2::fused_band(&mut b, &fitted.ops) };
        assert!(a == b);
    }

    /// A fitted chain is within a fraction of an 8-bit step of its tables, and `of` gives the
    /// same chain again.
    #[test]
    fn fitted_chains_stay_near_their_tables() {
        let effects = crate::effects::samples::hundred()[..7].to_vec();
        let mut tables = PointChain::default();
        for e in &effects {
            tables.push(e);
        }
        let fitted = PointChain::of(&effects);
        assert!(Arc::ptr_eq(&fitted, &PointChain::of(&effects)));
        let px: Vec<u16> = super::super::lcg(12)
            .take(4 * 4099)
            .map(|r| (r >> 16) as u16)
            .collect();
        let (mut a, mut b) = (px.clone(), px);
        fused_band(&mut a, &tables.ops);
        fused_band(&mut b, &fitted.ops);
        let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(worst.is_some_and(|d| d <= 64), "{worst:?} codes");
    }
}
