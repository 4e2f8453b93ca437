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
