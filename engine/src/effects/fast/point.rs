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
use crate::effects::ops;

/// A curve over the sample codes: `hi[x]` at each of the 65536 codes, and `lo[j]` at
/// `j / 256` for the first 256 codes, where `x^(1/γ)` is too steep for whole codes (a mix
/// computes fractional values there).
#[derive(Clone)]
struct Curve {
    hi: Arc<[u16]>,
    lo: Arc<[u16]>,
}

impl Curve {
    /// The curve at a fractional code `s` in 0..=65535.
    #[inline(always)]
    fn at(&self, s: f32) -> u16 {
        if s < 256.0 {
            self.lo[((s * 256.0) as usize).min(65535)]
        } else {
            self.hi[(super::to_u16(s) as usize).min(65535)]
        }
    }
}

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
    let hi: Vec<u16> = (0..=65535u32).map(|x| f(x as f32 / 65535.0)).collect();
    let lo: Vec<u16> = (0..65536u32)
        .map(|j| f(j as f32 / 256.0 / 65535.0))
        .collect();
    let curve = Curve {
        hi: hi.into(),
        lo: lo.into(),
    };
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
    let hi: Vec<u16> = inner.hi.iter().map(|&v| outer.hi[v as usize]).collect();
    let lo: Vec<u16> = inner.lo.iter().map(|&v| outer.hi[v as usize]).collect();
    Curve {
        hi: hi.into(),
        lo: lo.into(),
    }
}

enum Op {
    /// The same curve on R, G and B.
    Curve(Curve),
    /// `s = m · rgb + c` (65535 units), clamped, then the curve (if any), interpolated.
    Mix {
        m: [[f32; 3]; 3],
        c: [f32; 3],
        curve: Option<Curve>,
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
                Some(Op::Curve(c)) => *c = compose(c, &curve),
                Some(Op::Mix { curve: Some(c), .. }) => *c = compose(c, &curve),
                Some(Op::Mix { curve: slot, .. }) => *slot = Some(curve),
                None => self.ops.push(Op::Curve(curve)),
            }
            return;
        }
        // s_i = Σ_j (sat δ_ij + (1 - sat) w_j) (α x_j + β): the offset is β because Σ w = 1.
        let mut m = [[0.0f32; 3]; 3];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let d = if i == j { saturation } else { 0.0 };
                *v = (d + (1.0 - saturation) * LUMA[j]) * alpha;
            }
        }
        let c = [beta * 65535.0; 3];
        // A curve before the mix folds into nothing (the mix needs each channel's value), so
        // the mix takes the channels as they are.
        self.ops.push(Op::Mix {
            m,
            c,
            curve: power_curve(exponent),
        });
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
            [Op::Curve(curve)] => curve_band(px, &curve.hi),
            ops => fused_band(px, ops),
        }
    }
}

super::hot! {
    fn curve_band(px: &mut [u16], t: &[u16]) {
        for p in px.chunks_exact_mut(4) {
            p[0] = t[p[0] as usize];
            p[1] = t[p[1] as usize];
            p[2] = t[p[2] as usize];
        }
    }
}

super::hot! {
    /// Every operation on eight pixels at a time, in registers: one load and one store for
    /// the whole chain.
    fn fused_band(px: &mut [u16], ops: &[Op]) {
        super::for_each8(px, |p: &mut super::Px8| {
            for op in ops {
                match op {
                    Op::Curve(t) => {
                        for ch in p.iter_mut().take(3) {
                            for v in ch.iter_mut() {
                                *v = f32::from(t.hi[super::to_u16(*v) as usize]);
                            }
                        }
                    }
                    Op::Mix { m, c, curve } => {
                        let mut s = [[0.0f32; 8]; 3];
                        for (i, si) in s.iter_mut().enumerate() {
                            for k in 0..8 {
                                let v = m[i][0] * p[0][k] + m[i][1] * p[1][k] + m[i][2] * p[2][k]
                                    + c[i];
                                let v = if v > 65535.0 { 65535.0 } else { v };
                                si[k] = if v < 0.0 { 0.0 } else { v };
                            }
                        }
                        for i in 0..3 {
                            match curve {
                                Some(t) => {
                                    for k in 0..8 {
                                        p[i][k] = f32::from(t.at(s[i][k]));
                                    }
                                }
                                None => p[i] = s[i],
                            }
                        }
                    }
                }
            }
        })
    }
}
