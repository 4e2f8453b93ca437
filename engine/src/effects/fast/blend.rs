//! Blending a layer onto what is beneath it, the fast twins of
//! [`crate::effects::cpu::composite`] and [`crate::effects::cpu::dissolve`], and the first
//! layer's blend onto opaque black without a black picture to read.

use framelock_components::BlendMode;
use rayon::prelude::*;

use super::{BAND_ROWS, Image16, Px8, for_each8, for_each8_via, for_each8_with};

const FULL: f32 = 65535.0;
const BAND: usize = 4 * 1024 * BAND_ROWS;

super::hot! {
    fn composite_band<F: Fn(f32, f32) -> f32 + Copy>(d: &mut [u16], s: &[u16], k: f32, f: F) {
        // Runs of 64 pixels: those where the layer is transparent (outside a moved or
        // scaled layer) leave what is beneath exactly as it is, unread and unwritten.
        for (d, s) in d.chunks_mut(256).zip(s.chunks(256)) {
            if s.chunks_exact(4).fold(0, |any, p| any | p[3]) == 0 {
                continue;
            }
            for_each8_with(d, s, lanes!(), |d: &mut Px8, s: &Px8| {
                for i in 0..8 {
                    let a = s[3][i] * k;
                    for c in 0..3 {
                        let dc = d[c][i];
                        d[c][i] = dc + (f(dc, s[c][i]) - dc) * a;
                    }
                    d[3][i] = a * FULL + d[3][i] * (1.0 - a);
                }
            })
        }
    }
}

/// Blends `src` onto `dst` in place.
pub fn composite(dst: &mut Image16, src: &Image16, opacity: f32, mode: BlendMode) {
    crate::profile_function!();
    dst.px
        .par_chunks_mut(BAND)
        .zip(src.px.par_chunks(BAND))
        .for_each(|(d, s)| composite_band_as(d, s, opacity, mode));
}

/// [`composite`] of one band of samples, on this thread.
pub(crate) fn composite_band_as(d: &mut [u16], s: &[u16], opacity: f32, mode: BlendMode) {
    let k = opacity / FULL;
    match mode {
        BlendMode::Over => composite_band(d, s, k, |_, s| s),
        BlendMode::Add => composite_band(d, s, k, |d, s| {
            let v = d + s;
            if v > FULL { FULL } else { v }
        }),
        BlendMode::Multiply => composite_band(d, s, k, |d, s| d * s * (1.0 / FULL)),
        BlendMode::Screen => composite_band(d, s, k, |d, s| {
            FULL - (FULL - d) * (FULL - s) * (1.0 / FULL)
        }),
    }
}

/// What [`over_black`] multiplies each colour by, per unit of the pixel's alpha.
pub fn over_black_factor(opacity: f32, mode: BlendMode) -> f32 {
    if mode == BlendMode::Multiply {
        0.0
    } else {
        opacity / FULL
    }
}

/// Whether an opaque layer blended onto opaque black is itself (full opacity, any mode but
/// multiply): then there is nothing to compute.
pub fn over_black_is_identity(opacity: f32, mode: BlendMode) -> bool {
    opacity >= 1.0 && mode != BlendMode::Multiply
}

/// `img` blended onto opaque black, in place: with black beneath, every mode but multiply
/// gives the layer's colour (multiply gives black), weighted by its alpha; alpha becomes 1.
pub fn over_black(img: &mut Image16, opacity: f32, mode: BlendMode) {
    crate::profile_function!();
    let k = over_black_factor(opacity, mode);
    img.px
        .par_chunks_mut(BAND)
        .for_each(|band| over_black_band(band, k));
}

super::hot! {
    fn over_black_band(band: &mut [u16], k: f32) {
        for_each8_via(band, lanes!(), |p: &mut Px8| {
            for i in 0..8 {
                let a = p[3][i] * k;
                for c in 0..3 {
                    p[c][i] *= a;
                }
                p[3][i] = FULL;
            }
        })
    }
}

/// `dst = mix(dst, src, t)`.
pub fn dissolve(dst: &mut Image16, src: &Image16, t: f32) {
    crate::profile_function!();
    dst.px
        .par_chunks_mut(BAND)
        .zip(src.px.par_chunks(BAND))
        .for_each(|(d, s)| dissolve_band(d, s, t));
}

super::hot! {
    fn dissolve_band(d: &mut [u16], s: &[u16], t: f32) {
        for_each8_with(d, s, lanes!(), |d: &mut Px8, s: &Px8| {
            for c in 0..4 {
                for i in 0..8 {
                    d[c][i] = d[c][i] * (1.0 - t) + s[c][i] * t;
                }
            }
        })
    }
}

/// `img = mix(opaque black, img, t)` for an opaque `img`.
pub fn dissolve_from_black(img: &mut Image16, t: f32) {
    img.px.par_chunks_mut(BAND).for_each(|band| {
        for_each8(band, |p: &mut Px8| {
            for i in 0..8 {
                for c in 0..3 {
                    p[c][i] *= t;
                }
                p[3][i] = FULL;
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pack that blends onto black on the way gives the bytes of the blend, then the pack.
    #[test]
    fn packing_onto_black_equals_the_blend_then_the_pack() {
        let (w, h) = (37, 11);
        for (opacity, mode) in [
            (1.0, BlendMode::Over),
            (0.7, BlendMode::Screen),
            (0.3, BlendMode::Multiply),
        ] {
            let mut img = Image16::scratch(w, h);
            for (v, r) in img.px.iter_mut().zip(super::super::lcg(5)) {
                *v = (r >> 16) as u16;
            }
            let mut fused = vec![0u8; (w * h * 4) as usize];
            img.pack_rgba8_over_black(&mut fused, over_black_factor(opacity, mode));
            let mut apart = vec![0u8; fused.len()];
            over_black(&mut img, opacity, mode);
            img.pack_rgba8(&mut apart);
            assert!(fused == apart, "{mode:?}");
        }
    }
}
