//! Resizing RGBA16 with `fast_image_resize` (its `U16x4` convolution: the reference's
//! filters, in integer arithmetic).

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::Image16;
use crate::effects::ops::ResizeFilter;

/// `src` resized to `width`×`height` (box when shrinking, bilinear otherwise; alpha not
/// premultiplied), as the reference's [`crate::effects::cpu::resize`].
pub fn resize(src: &Image16, width: u32, height: u32) -> Image16 {
    crate::profile_function!();
    let mut out = Image16::scratch(width, height);
    if (src.width, src.height) == (width, height) {
        out.px.copy_from_slice(&src.px);
        return out;
    }
    let filter = match ResizeFilter::for_sizes((src.width, src.height), (width, height)) {
        ResizeFilter::Box => FilterType::Box,
        ResizeFilter::Bilinear => FilterType::Bilinear,
    };
    let ok = (|| {
        let bytes: &[u8] = bytemuck::cast_slice(&src.px);
        let src_img = ImageRef::new(src.width, src.height, bytes, PixelType::U16x4).ok()?;
        let dst_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out.px);
        let mut dst = FirImage::from_slice_u8(width, height, dst_bytes, PixelType::U16x4).ok()?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(filter))
            .use_alpha(false);
        Resizer::new().resize(&src_img, &mut dst, &options).ok()
    })();
    if ok.is_none() {
        // Sizes are checked by the job's validation; a failure here leaves black.
        out.px.fill(0);
    }
    out
}

/// Source rows a band of [`enlarge2_pack_rgba8`] covers (twice as many output rows).
const ENLARGE_BAND: usize = 4;

/// `src` enlarged to exactly twice its width and height and rounded to RGBA8 (alpha opaque)
/// into `out` (`4 · 2w · 2h` bytes), in one pass: the same values as [`resize`] then
/// [`Image16::pack_rgba8`] (bilinear at 2× puts every output pixel a quarter of a source
/// pixel from its nearest one: weights ¾ and ¼ on each axis, edges clamped), without the
/// enlarged 16-bit image, which at 4K is 66 MB written and read again. Effects at LOD ½ end
/// here.
pub fn enlarge2_pack_rgba8(src: &Image16, out: &mut [u8]) {
    use rayon::prelude::*;
    crate::profile_function!();
    let (w, h) = (src.width as usize, src.height as usize);
    let stride = w * 4;
    let out_stride = 2 * stride;
    if w == 0 || h == 0 || out.len() < 2 * out_stride * h {
        return;
    }
    out[..2 * out_stride * h]
        .par_chunks_mut(2 * out_stride * ENLARGE_BAND)
        .enumerate()
        .for_each_init(
            || Rows::new(stride),
            |rows, (band, out)| {
                for (k, pair) in out.chunks_exact_mut(2 * out_stride).enumerate() {
                    let j = band * ENLARGE_BAND + k;
                    let row = |r: usize| &src.px[r * stride..][..stride];
                    let (top, bottom) = pair.split_at_mut(out_stride);
                    vertical(row(j), row(j.saturating_sub(1)), &mut rows.padded);
                    rows.horizontal(top);
                    vertical(row(j), row((j + 1).min(h - 1)), &mut rows.padded);
                    rows.horizontal(bottom);
                }
            },
        );
}

/// A band's working rows for [`enlarge2_pack_rgba8`].
struct Rows {
    /// A row of the vertical step, in quarters, with its first and last pixel repeated
    /// once outside it (the clamped edge), so the horizontal step reads plain slices.
    padded: Vec<u32>,
    /// The even and the odd output pixels of a row, packed (RGBA8 as little-endian words).
    even: Vec<u32>,
    odd: Vec<u32>,
}

impl Rows {
    fn new(stride: usize) -> Self {
        Self {
            padded: vec![0; stride + 8],
            even: vec![0; stride / 4],
            odd: vec![0; stride / 4],
        }
    }

    /// The horizontal ¾/¼ step of the row in `padded`, packed, into `out` (twice as wide).
    fn horizontal(&mut self, out: &mut [u8]) {
        let n = self.padded.len() - 8;
        let p = &mut self.padded;
        for c in 0..4 {
            p[c] = p[4 + c];
            p[n + 4 + c] = p[n + c];
        }
        horizontal(
            p,
            bytemuck::cast_slice_mut(&mut self.even),
            bytemuck::cast_slice_mut(&mut self.odd),
        );
        interleave(&self.even, &self.odd, out);
    }
}

super::hot! {
    /// Even and odd pixels, alternately, alpha opaque.
    fn interleave(even: &[u32], odd: &[u32], out: &mut [u8]) {
        for ((o, &e), &d) in out.chunks_exact_mut(8).zip(even).zip(odd) {
            let v = u64::from(e | 0xFF00_0000) | (u64::from(d | 0xFF00_0000) << 32);
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

super::hot! {
    /// `3 · near + far` per sample into `out[4..]`: a row of the vertical ¾/¼ step, in
    /// quarters.
    fn vertical(near: &[u16], far: &[u16], out: &mut [u32]) {
        for ((o, &n), &f) in out[4..].iter_mut().zip(near).zip(far) {
            *o = 3 * u32::from(n) + u32::from(f);
        }
    }
}

/// A sum in sixteenths of a sample rounded to the sample, then to 8 bits as
/// [`Image16::pack_rgba8`] rounds.
#[inline(always)]
fn pack16th(v: u32) -> u8 {
    super::to_u8((v + 8) >> 4)
}

super::hot! {
    /// The horizontal ¾/¼ step over a padded row of quarters, each sample against the same
    /// sample of the pixel on its left (even outputs) and on its right (odd outputs), packed.
    fn horizontal(padded: &[u32], even: &mut [u8], odd: &mut [u8]) {
        let n = even.len();
        let (left, mid, right) = (&padded[..n], &padded[4..4 + n], &padded[8..8 + n]);
        for ((e, l), m) in even.iter_mut().zip(left).zip(mid) {
            *e = pack16th(3 * m + l);
        }
        for ((o, m), r) in odd.iter_mut().zip(mid).zip(right) {
            *o = pack16th(3 * m + r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass 2× enlargement and pack gives the bytes of [`resize`] then the pack, to
    /// within one step of rounding (`fast_image_resize` weighs in fixed point), narrow
    /// pictures included.
    #[test]
    fn enlarging_and_packing_in_one_pass_equals_the_resize_then_the_pack() {
        for (w, h) in [(1, 1), (2, 3), (3, 2), (37, 11)] {
            let mut img = Image16::scratch(w, h);
            for (v, r) in img.px.iter_mut().zip(super::super::lcg(w * 7 + h)) {
                *v = (r >> 16) as u16;
            }
            let mut fused = vec![0u8; (4 * w * h * 4) as usize];
            enlarge2_pack_rgba8(&img, &mut fused);
            let mut apart = vec![0u8; fused.len()];
            resize(&img, 2 * w, 2 * h).pack_rgba8(&mut apart);
            let worst = fused.iter().zip(&apart).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(worst <= Some(1), "{w}x{h}: off by {worst:?}");
        }
    }
}
