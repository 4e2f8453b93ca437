//! What the CPU and GPU paths share: the parameters of each operation, computed once on the
//! host (filter weights, matrices), so both run exactly the same arithmetic.

use framelock_components::Effect;

use crate::media::{MatrixCoefficients, Picture, PixelFormat, YuvRange};

/// Bytes of a frame's three planes as the GPU reads them (tightly packed).
pub fn planes_len(frame: &Picture) -> usize {
    PlaneLayout::of(frame).lens.iter().sum()
}

/// Where a frame's planes lie in the buffer the GPU converts from: one after another, each at
/// a 4-byte-aligned offset (`yuv_to_rgba.wgsl` reads them as `u32` words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Bytes of the Y, U and V planes.
    pub lens: [usize; 3],
    /// Their offsets.
    pub offsets: [usize; 3],
    /// Bytes of the whole buffer (a multiple of 4, at least 4).
    pub total: usize,
}

impl PlaneLayout {
    /// The layout of `frame`'s planes.
    pub fn of(frame: &Picture) -> Self {
        let bps = frame.format.bytes_per_sample();
        let (cw, ch) = frame.chroma_size();
        let luma = frame.width as usize * frame.height as usize * bps;
        let chroma = cw as usize * ch as usize * bps;
        let lens = [luma, chroma, chroma];
        let offsets = [
            0,
            luma.next_multiple_of(4),
            luma.next_multiple_of(4) + chroma.next_multiple_of(4),
        ];
        let total = (offsets[2] + chroma).next_multiple_of(4).max(4);
        Self {
            lens,
            offsets,
            total,
        }
    }
}

/// Sample → normalised value and Y'CbCr → R'G'B' coefficients of a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YuvParams {
    /// `(luma - y_offset) * y_scale`.
    pub y_offset: f32,
    /// See `y_offset`.
    pub y_scale: f32,
    /// `(chroma - c_offset) * c_scale`.
    pub c_offset: f32,
    /// See `c_offset`.
    pub c_scale: f32,
    /// R from Cr, G from Cb, G from Cr, B from Cb.
    pub matrix: [f32; 4],
    /// Chroma subsampling shifts (x, y).
    pub shift: (u32, u32),
}

/// The conversion parameters of `frame`.
pub fn yuv_params(frame: &Picture) -> YuvParams {
    let bits = if frame.format.bytes_per_sample() == 2 {
        10
    } else {
        8
    };
    let k = f64::from(1u32 << (bits - 8));
    let max = f64::from((1u32 << bits) - 1);
    let (y_offset, y_scale, c_offset, c_scale) = match frame.color.range {
        YuvRange::Limited => (16.0 * k, 1.0 / (219.0 * k), 128.0 * k, 1.0 / (224.0 * k)),
        YuvRange::Full => (0.0, 1.0 / max, 128.0 * k, 1.0 / max),
    };
    let (kr, kb) = match frame.color.matrix {
        MatrixCoefficients::Bt601 => (0.299, 0.114),
        MatrixCoefficients::Bt709 => (0.2126, 0.0722),
    };
    let kg = 1.0 - kr - kb;
    let rv = 2.0 * (1.0 - kr);
    let bu = 2.0 * (1.0 - kb);
    let gu = bu * kb / kg;
    let gv = rv * kr / kg;
    let shift = match frame.format {
        PixelFormat::Yuv420p | PixelFormat::Yuv420p10 => (1, 1),
        PixelFormat::Yuv422p | PixelFormat::Yuv422p10 => (1, 0),
        _ => (0, 0),
    };
    YuvParams {
        y_offset: y_offset as f32,
        y_scale: y_scale as f32,
        c_offset: c_offset as f32,
        c_scale: c_scale as f32,
        matrix: [rv as f32, gu as f32, gv as f32, bu as f32],
        shift,
    }
}

/// The resampling filter for a resize: area (box) when both sides shrink, bilinear otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeFilter {
    /// Triangle of radius one source pixel (upscaling).
    Bilinear,
    /// Average of the source pixels whose centres fall in the output pixel (downscaling).
    Box,
}

impl ResizeFilter {
    /// The filter for `src` → `dst` sizes.
    pub fn for_sizes(src: (u32, u32), dst: (u32, u32)) -> Self {
        if dst.0 < src.0 && dst.1 < src.1 {
            Self::Box
        } else {
            Self::Bilinear
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear => 1.0,
        }
    }
}

/// One axis of a resize: for each output index, its first source index and normalised weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisWeights {
    /// Maximum taps per output index.
    pub window: usize,
    /// `(first source index, weights)` per output index.
    pub taps: Vec<(u32, Vec<f32>)>,
}

impl AxisWeights {
    /// The weights for resampling `in_size` samples to `out_size` with `filter`: the kernel
    /// widens with the downscale ratio (an antialiasing convolution), as `fast_image_resize`'s
    /// `Convolution` algorithm computes it, so the GPU matches the CPU path's resizer.
    pub fn new(in_size: u32, out_size: u32, filter: ResizeFilter) -> Self {
        let scale = f64::from(in_size) / f64::from(out_size.max(1));
        let filter_scale = scale.max(1.0);
        let radius = filter.support() * filter_scale;
        let window = radius.ceil() as usize * 2 + 1;
        let mut taps = Vec::with_capacity(out_size as usize);
        for o in 0..out_size {
            let in_center = (f64::from(o) + 0.5) * scale;
            let x_min = (in_center - radius).floor().max(0.0) as u32;
            let x_max = (in_center + radius).ceil().min(f64::from(in_size)) as u32;
            let center = in_center - 0.5;
            let mut start = x_min;
            let mut w: Vec<f64> = Vec::new();
            for x in x_min..x_max {
                let v = filter.eval((f64::from(x) - center) / filter_scale);
                if x == start && v == 0.0 {
                    start += 1;
                } else {
                    w.push(v);
                }
            }
            while w.last() == Some(&0.0) {
                w.pop();
            }
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            taps.push((start, w.into_iter().map(|v| v as f32).collect()));
        }
        Self { window, taps }
    }

    /// The GPU layout: per output index `window + 2` words (first, count, weights as bits).
    pub fn to_words(&self) -> Vec<u32> {
        let stride = self.window + 2;
        let mut words = vec![0u32; stride * self.taps.len()];
        for (rec, (first, w)) in words.chunks_exact_mut(stride).zip(&self.taps) {
            rec[0] = *first;
            rec[1] = w.len() as u32;
            for (dst, v) in rec[2..].iter_mut().zip(w) {
                *dst = v.to_bits();
            }
        }
        words
    }
}

/// Normalised Gaussian weights `w[0..=radius]` (sigma = radius / 2): `w[0] + 2 Σ w[k] = 1`.
pub fn gaussian_weights(radius: u32) -> Vec<f32> {
    let radius = radius.min(Effect::MAX_BLUR_RADIUS);
    if radius == 0 {
        return vec![1.0];
    }
    let sigma = f64::from(radius) / 2.0;
    let raw: Vec<f64> = (0..=radius)
        .map(|k| (-(f64::from(k) * f64::from(k)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total = raw[0] + 2.0 * raw[1..].iter().sum::<f64>();
    raw.into_iter().map(|v| (v / total) as f32).collect()
}

/// The grade's shader parameters: `[brightness, contrast, saturation, 1/gamma]`, `[lift, gain]`.
pub fn grade_params(e: &Effect) -> Option<([f32; 4], [f32; 2])> {
    match *e {
        Effect::Grade {
            brightness,
            contrast,
            saturation,
            gamma,
            lift,
            gain,
        } => Some((
            [brightness, contrast, saturation, 1.0 / gamma.max(1e-3)],
            [lift, gain],
        )),
        _ => None,
    }
}

/// The inverse transform (output pixel centre → source position) of a transform effect on a
/// `width`×`height` picture, as two rows `[a, b, c]`, `[d, e, f]`.
pub fn transform_inverse(width: u32, height: u32, e: &Effect) -> Option<[[f32; 3]; 2]> {
    let Effect::Transform {
        scale,
        x,
        y,
        rotation,
    } = *e
    else {
        return None;
    };
    let s = f64::from(scale).max(1e-6);
    let (sin, cos) = f64::from(rotation).to_radians().sin_cos();
    let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    let (tx, ty) = (cx + f64::from(x), cy + f64::from(y));
    let (a, b, d, e2) = (cos / s, sin / s, -sin / s, cos / s);
    let c = cx - a * tx - b * ty;
    let f = cy - d * tx - e2 * ty;
    Some([
        [a as f32, b as f32, c as f32],
        [d as f32, e2 as f32, f as f32],
    ])
}

/// The blend mode's shader code.
pub fn blend_code(mode: framelock_components::BlendMode) -> u32 {
    use framelock_components::BlendMode;
    match mode {
        BlendMode::Over => 0,
        BlendMode::Add => 1,
        BlendMode::Multiply => 2,
        BlendMode::Screen => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalised_and_bilinear_upscale_is_classic() {
        let up = AxisWeights::new(4, 8, ResizeFilter::Bilinear);
        // Output 1's centre (1.5 * 0.5 = 0.75) is 0.25 past source 0's centre.
        assert_eq!(up.taps[1].0, 0);
        assert!((up.taps[1].1[0] - 0.75).abs() < 1e-6 && (up.taps[1].1[1] - 0.25).abs() < 1e-6);
        let down = AxisWeights::new(1918, 640, ResizeFilter::Box);
        for (_, w) in &down.taps {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let g = gaussian_weights(5);
        assert!((g[0] + 2.0 * g[1..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
