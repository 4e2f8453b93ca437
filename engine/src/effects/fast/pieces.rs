//! A tone curve as eight cubic pieces: what a point chain evaluates in place of a table
//! lookup when the curve is smooth enough (see [`Pieces::fit`]). A lookup at eight
//! fractional codes is an AVX2 gather, and a 1080p frame through a 100-effect stack made 28
//! million of them (60 % of its time); eight pieces are eight lanes of a register, so the
//! piece's coefficients are one in-register permute each (`vpermps`) and the curve is a few
//! multiplies and adds, with no memory read.

/// Pieces a curve is cut into: one AVX2 register of `f32` coefficients.
pub(super) const PIECES: usize = 8;

/// The most a fitted curve may differ from its table, in codes (of 65535): 1/32 of an 8-bit
/// step, so that the 36 mixes of a 100-effect stack, every error in the same direction,
/// still stay within 1/255 (each mix scales the error before it by about its saturation).
pub(super) const TOLERANCE: f32 = 8.0;

/// A curve over the codes 0..=65535 as [`PIECES`] cubics over `from..=to` (the curve is flat
/// outside: a grade's clamps), evaluated at `s` as: `s` clamped into `from..=to`,
/// `t = s · scale + offset` (0 at `from`, [`PIECES`] at `to`), piece `k = ⌊t⌋` (at most the
/// last), `u = t - k`, `c0[k] + u (c1[k] + u (c2[k] + u c3[k]))`. The result may lie up to
/// [`TOLERANCE`] outside 0..=65535, unclamped: whatever a chain does next clamps what it is
/// given (a mix, a curve, the store to samples).
#[derive(Clone, Debug)]
pub(super) struct Pieces {
    pub(super) from: f32,
    pub(super) to: f32,
    pub(super) scale: f32,
    pub(super) offset: f32,
    /// `c[j][k]`: the coefficient of `u^j` in piece `k`.
    pub(super) c: [[f32; PIECES]; 4],
}

/// `_mm256_max_ps` lane by lane (the second operand when either is NaN), so that the
/// portable and the vector evaluations give the same bits for every input.
#[inline(always)]
fn max_ps(x: f32, y: f32) -> f32 {
    if x > y { x } else { y }
}

/// `_mm256_min_ps` lane by lane.
#[inline(always)]
fn min_ps(x: f32, y: f32) -> f32 {
    if x < y { x } else { y }
}

impl Pieces {
    /// The curve at `s` (see the type): the portable twin of [`avx2::eval8`], bit for bit.
    #[inline(always)]
    pub(super) fn eval(&self, s: f32) -> f32 {
        let v = min_ps(max_ps(s, self.from), self.to);
        let t = v * self.scale + self.offset;
        // `as` truncates like `vcvttps2dq`; a NaN `t` (never, `v` is clamped) would be 0.
        let k = (t as i32).clamp(0, PIECES as i32 - 1);
        let u = t - k as f32;
        let k = k as usize;
        let c = &self.c;
        c[0][k] + u * (c[1][k] + u * (c[2][k] + u * c[3][k]))
    }

    /// Fits the curve whose value at the code `i` is `hi[i]` and at `j / 256` (below code
    /// 256) is `lo[j]` (see [`super::point`]'s curves), by least squares on each piece, and
    /// keeps the fit only if it is within [`TOLERANCE`] of every one of those values: a
    /// steep start (`x^(1/2.2)` near black) or a kink inside the span (a clamp of a
    /// non-monotone chain) keeps its table.
    pub(super) fn fit(hi: &[u16], lo: &[u16]) -> Option<Self> {
        let pieces = Self::fit_unchecked(hi)?;
        let near = |s: f32, v: u16| (pieces.eval(s) - f32::from(v)).abs() <= TOLERANCE;
        let fits = hi.iter().enumerate().all(|(i, &v)| near(i as f32, v))
            && lo
                .iter()
                .enumerate()
                .all(|(j, &v)| near(j as f32 / 256.0, v));
        fits.then_some(pieces)
    }

    /// The least-squares pieces of [`Self::fit`], however far they are from the curve.
    pub(super) fn fit_unchecked(hi: &[u16]) -> Option<Self> {
        if hi.len() != 65536 {
            return None;
        }
        // The flat ends: the span starts at the last code of the first run of equal values
        // and ends at the first code of the last run.
        let first = hi[0];
        let last = hi[65535];
        let from = hi.iter().position(|&v| v != first).map_or(0, |i| i - 1);
        let to = hi.iter().rposition(|&v| v != last).map_or(65535, |i| i + 1);
        let (from, to) = if to > from { (from, to) } else { (0, 65535) };
        let width = (to - from) as f64 / PIECES as f64;
        let mut c = [[0.0f32; PIECES]; 4];
        for k in 0..PIECES {
            let start = from as f64 + k as f64 * width;
            let codes =
                (start.floor() as usize).max(from)..=((start + width).ceil() as usize).min(to);
            let coeffs =
                least_squares(codes.map(|i| ((i as f64 - start) / width, f64::from(hi[i]))))?;
            for (j, v) in coeffs.iter().enumerate() {
                c[j][k] = *v as f32;
            }
        }
        // Just under PIECES at `to` (by 2^-20 of it, far above the rounding of `t`), so that
        // every `t` of the span is in 0..PIECES and its piece needs no clamp.
        let scale = PIECES as f32 * (1.0 - 1.0 / 1_048_576.0) / (to - from) as f32;
        Some(Self {
            from: from as f32,
            to: to as f32,
            scale,
            offset: -(from as f32) * scale,
            c,
        })
    }
}

/// The cubic `c0 + c1 u + c2 u² + c3 u³` nearest the points in the least-squares sense (the
/// normal equations, solved by elimination with partial pivoting; `u` spans at most 0..=1
/// and the points are thousands, so they are well conditioned). `None` for fewer than four
/// points.
fn least_squares(points: impl Iterator<Item = (f64, f64)>) -> Option<[f64; 4]> {
    let mut a = [[0.0f64; 5]; 4];
    let mut n = 0usize;
    for (u, y) in points {
        let pow = [1.0, u, u * u, u * u * u];
        for i in 0..4 {
            for j in 0..4 {
                a[i][j] += pow[i] * pow[j];
            }
            a[i][4] += pow[i] * y;
        }
        n += 1;
    }
    if n < 4 {
        return None;
    }
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        a.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-12 {
            return None;
        }
        for row in 0..4 {
            if row != col {
                let f = a[row][col] / p;
                for j in col..5 {
                    a[row][j] -= f * a[col][j];
                }
            }
        }
    }
    let x = [0, 1, 2, 3].map(|i| a[i][4] / a[i][i]);
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// [`Pieces::eval`] on eight lanes.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use super::Pieces;

    /// The curve at eight codes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(in super::super) fn eval8(p: &Pieces, s: &[f32; 8]) -> [f32; 8] {
        // SAFETY: `s` holds eight f32, the 32 bytes read (unaligned).
        let v = unsafe { _mm256_loadu_ps(s.as_ptr()) };
        let v = _mm256_min_ps(
            _mm256_max_ps(v, _mm256_set1_ps(p.from)),
            _mm256_set1_ps(p.to),
        );
        let t = _mm256_add_ps(
            _mm256_mul_ps(v, _mm256_set1_ps(p.scale)),
            _mm256_set1_ps(p.offset),
        );
        // In 0..PIECES: `v` is in the span (see `scale` in `Pieces::fit`).
        let k = _mm256_cvttps_epi32(t);
        let u = _mm256_sub_ps(t, _mm256_cvtepi32_ps(k));
        // SAFETY: each row holds eight f32, the 32 bytes read (unaligned).
        let c = |j: usize| unsafe { _mm256_permutevar8x32_ps(_mm256_loadu_ps(p.c[j].as_ptr()), k) };
        let r = _mm256_add_ps(c(2), _mm256_mul_ps(u, c(3)));
        let r = _mm256_add_ps(c(1), _mm256_mul_ps(u, r));
        let r = _mm256_add_ps(c(0), _mm256_mul_ps(u, r));
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds eight f32, the 32 bytes written (unaligned).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), r) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clamp(α x + β)^e` in codes, at a fractional code.
    fn curve(alpha: f64, beta: f64, e: f64) -> impl Fn(f64) -> f64 {
        move |s| (alpha * s / 65535.0 + beta).clamp(0.0, 1.0).powf(e) * 65535.0
    }

    fn tables(f: &impl Fn(f64) -> f64) -> (Vec<u16>, Vec<u16>) {
        let hi = (0..65536).map(|i| f(f64::from(i)).round() as u16).collect();
        let lo = (0..65536)
            .map(|j| f(f64::from(j) / 256.0).round() as u16)
            .collect();
        (hi, lo)
    }

    /// Gentle grades (a 100-effect stack's: clamped at both ends, powers near 1) fit, and the
    /// fit holds between the codes it was checked at too.
    #[test]
    fn gentle_curves_fit_within_tolerance_between_codes() {
        for (alpha, beta, e) in [
            (1.0098, 0.00005, 1.0 / 0.9902),
            (1.02, -0.01, 0.99),
            (0.9, 0.05, 1.0),
        ] {
            let f = curve(alpha, beta, e);
            let (hi, lo) = tables(&f);
            let p = Pieces::fit(&hi, &lo).unwrap_or_else(|| panic!("{alpha} {beta} {e}"));
            for i in 0..65535 {
                let s = i as f32 + 0.37;
                let d = (f64::from(p.eval(s)) - f(f64::from(s))).abs();
                assert!(
                    d <= f64::from(TOLERANCE) + 1.0,
                    "{alpha} {beta} {e} at {s}: {d}"
                );
            }
        }
    }

    /// A steep start (`x^(1/2.2)`, `x^(1/1.05)` near black) keeps its table, and so does a
    /// power whose curvature starts sharply at a clamp (`x^1.05` from where `αx + β`
    /// crosses 0: 18 codes off at its worst).
    #[test]
    fn steep_curves_keep_their_tables() {
        for (alpha, beta, e) in [
            (1.0, 0.0, 1.0 / 2.2),
            (1.0, 0.0, 1.0 / 1.05),
            (1.1, -0.05, 1.05),
        ] {
            let (hi, lo) = tables(&curve(alpha, beta, e));
            assert!(Pieces::fit(&hi, &lo).is_none(), "{alpha} {beta} {e}");
        }
        // A flat curve fits (one value everywhere).
        let (hi, lo) = tables(&|_| 1234.0);
        let p = Pieces::fit(&hi, &lo).expect("a constant fits");
        assert_eq!([0.0, 77.5, 65535.0].map(|s| p.eval(s)), [1234.0; 3]);
    }

    /// The vector evaluation gives the portable one's bits, inside and outside the span,
    /// below 0, above 65535 and for NaN.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_evaluation_equals_the_portable() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let (hi, lo) = tables(&curve(1.02, -0.01, 0.99));
        let p = Pieces::fit(&hi, &lo).expect("fits");
        let mut s: Vec<f32> = crate::effects::fast::lcg(3)
            .take(4096)
            .map(|r| (r >> 8) as f32 / 16_777_216.0 * 70000.0 - 2000.0)
            .collect();
        s.extend([f32::NAN, -0.0, 0.0, p.from, p.to, 65535.0, 1e30, -1e30]);
        for eight in s.chunks(8) {
            let mut v = [0.0f32; 8];
            v[..eight.len()].copy_from_slice(eight);
            // SAFETY: the CPU has AVX2 (checked above).
            let fast = unsafe { avx2::eval8(&p, &v) };
            assert_eq!(
                fast.map(f32::to_bits),
                v.map(|s| p.eval(s).to_bits()),
                "{v:?}"
            );
        }
    }
}
