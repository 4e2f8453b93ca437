//! Unsharp mask over a 3×3 box, the fast twin of [`crate::effects::cpu::sharpen`]: the box
//! sum is a vertical sum of three rows then a horizontal sum of three shifted values, both
//! over whole rows (vectorised).

use rayon::prelude::*;

use super::point::PointChain;
use super::{BAND_ROWS, Image16, to_u16};

/// Sharpens `img` in place by `amount`, then runs `then` on each band of the result as it
/// is finished (while it is in cache).
pub fn sharpen(img: &mut Image16, amount: f32, then: Option<&PointChain>) {
    crate::profile_function!();
    if img.width == 0 || img.height == 0 {
        return;
    }
    // Every output sample is written, so the source moves out and a reused buffer takes its
    // place (no copy).
    let src = std::mem::replace(img, Image16::scratch(img.width, img.height));
    let stride = src.stride();
    img.px
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each(|(band, out)| {
            sharpen_band(out, band * BAND_ROWS, &src, amount);
            if let Some(chain) = then {
                chain.apply_band(out);
            }
        });
}

super::hot! {
    fn sharpen_band(out: &mut [u16], y0: usize, src: &Image16, amount: f32) {
        let stride = src.stride();
        let h = src.height as i64;
        let row = |y: i64| {
            let y = y.clamp(0, h - 1) as usize;
            &src.px[y * stride..(y + 1) * stride]
        };
        let k = amount / 9.0;
        // The vertical sums with one pixel of edge on each side.
        let mut v = vec![0i32; stride + 8];
        for (i, o) in out.chunks_exact_mut(stride).enumerate() {
            let y = (y0 + i) as i64;
            let (up, mid, down) = (row(y - 1), row(y), row(y + 1));
            for (((d, a), b), c) in v[4..4 + stride].iter_mut().zip(up).zip(mid).zip(down) {
                *d = i32::from(*a) + i32::from(*b) + i32::from(*c);
            }
            v.copy_within(4..8, 0);
            v.copy_within(stride..stride + 4, stride + 4);
            let (left, centre, right) = (&v[..stride], &v[4..4 + stride], &v[8..]);
            for ((((d, l), c), r), p) in o.iter_mut().zip(left).zip(centre).zip(right).zip(mid) {
                let sum = (l + c + r) as f32;
                let p = f32::from(*p);
                *d = to_u16(p + (amount * p - k * sum));
            }
            for (d, p) in o.chunks_exact_mut(4).zip(mid.chunks_exact(4)) {
                d[3] = p[3];
            }
        }
    }
}
