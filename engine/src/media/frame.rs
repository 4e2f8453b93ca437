//! Pictures: decoded planar Y'CbCr frames and rendered RGBA8 frames under one type whose
//! [`PixelFormat`] says which it is, their conversion to RGBA8 and back (`yuvutils-rs`) and
//! scaling (`fast_image_resize`, per plane, in YUV: scale first, convert last).
//!
//! | pixel format | planes | to RGBA8 | scale |
//! |--------------|--------|----------|-------|
//! | `Yuv420p` (8-bit 4:2:0) | Y, U, V | ✅ | ✅ |
//! | `Yuv422p`, `Yuv444p` (8-bit) | Y, U, V | ✅ | ✅ |
//! | `Yuv420p10`, `Yuv422p10` (10-bit in little-endian `u16`) | Y, U, V | ✅ (to 8-bit) | ❌ (convert first) |
//! | `Rgba8` (rendered with effects) | RGBA | ✅ (a copy) | ❌ |

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use yuvutils_rs::{YuvPlanarImage, YuvRange as UtilsRange, YuvStandardMatrix};

use super::pixel::{ColorSpace, MatrixCoefficients, PixelFormat, YuvRange};
use crate::memory::{BufferPool, PoolKey, PooledBuf};

/// A picture: decoded (Y'CbCr planes) or rendered (one RGBA8 plane), as [`Picture::format`]
/// says; planes tightly packed (stride = plane width × bytes per sample).
///
/// Planes are [`PooledBuf`]s: frames made with a [`BufferPool`] (`*_in` constructors) give
/// their planes back to it when dropped; plain ones (`From<Vec<u8>>`) are freed.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sample layout.
    pub format: PixelFormat,
    /// Colour interpretation.
    pub color: ColorSpace,
    /// Y, U, V planes.
    pub planes: [PooledBuf; 3],
    /// Presentation index in the source stream.
    pub index: u64,
    /// Presentation time in seconds.
    pub time_secs: f64,
}

/// The `index` of [`Picture::media_offline_in`]'s picture (never a decoded frame's).
pub const OFFLINE_INDEX: u64 = u64::MAX;

/// The media-offline picture's Y'CbCr: 50 % red, BT.709 limited range.
pub const MEDIA_OFFLINE_YUV: [u8; 3] = [39, 115, 184];

impl Picture {
    /// A black 8-bit 4:2:0 frame.
    pub fn black(width: u32, height: u32) -> Self {
        let (cw, ch) = PixelFormat::Yuv420p.chroma_size(width, height);
        Self {
            width,
            height,
            format: PixelFormat::Yuv420p,
            color: ColorSpace::default(),
            planes: [
                vec![16; (width * height) as usize].into(),
                vec![128; (cw * ch) as usize].into(),
                vec![128; (cw * ch) as usize].into(),
            ],
            index: 0,
            time_secs: 0.0,
        }
    }

    /// A black 8-bit 4:2:0 frame with planes from `pool` (plain ones without).
    pub fn black_in(pool: Option<&BufferPool>, width: u32, height: u32) -> Self {
        Self::filled_in(pool, width, height, [16, 128, 128])
    }

    /// An 8-bit 4:2:0 frame of one Y'CbCr colour, planes from `pool`.
    fn filled_in(pool: Option<&BufferPool>, width: u32, height: u32, [y, u, v]: [u8; 3]) -> Self {
        let mut f = Self::alloc_in(pool, PixelFormat::Yuv420p, width, height);
        f.planes[0].fill(y);
        f.planes[1].fill(u);
        f.planes[2].fill(v);
        f
    }

    /// The "media offline" picture editors show for a clip whose file cannot be read: dark
    /// red, 8-bit 4:2:0 (BT.709 limited range), planes from `pool`. Its `index` is
    /// [`OFFLINE_INDEX`], which no decoded frame has.
    pub fn media_offline_in(pool: Option<&BufferPool>, width: u32, height: u32) -> Self {
        let mut f = Self::filled_in(pool, width, height, MEDIA_OFFLINE_YUV);
        f.index = OFFLINE_INDEX;
        f
    }

    /// A frame whose planes are taken from `pool` (or allocated plainly without one); their
    /// contents are unspecified (recycled): the caller writes every sample.
    pub fn alloc_in(
        pool: Option<&BufferPool>,
        format: PixelFormat,
        width: u32,
        height: u32,
    ) -> Self {
        let (cw, ch) = format.chroma_size(width, height);
        let bps = format.bytes_per_sample();
        let lens = [
            width as usize * height as usize * bps,
            cw as usize * ch as usize * bps,
            cw as usize * ch as usize * bps,
        ];
        let planes = std::array::from_fn(|p| match pool {
            Some(pool) => pool.take(
                PoolKey::Plane {
                    format,
                    width,
                    height,
                    plane: p as u8,
                },
                lens[p],
            ),
            None => PooledBuf::from(vec![0u8; lens[p]]),
        });
        Self {
            width,
            height,
            format,
            color: ColorSpace::default(),
            planes,
            index: 0,
            time_secs: 0.0,
        }
    }

    /// This frame with its planes counted in `pool` from now on (see [`PooledBuf::rehome`]):
    /// for a picture made by one engine and kept by another, so the keeper's budget counts it
    /// and the maker's is free again.
    #[must_use]
    pub fn rehome(self, pool: &BufferPool) -> Self {
        let Self { planes, .. } = self;
        Self {
            planes: planes.map(|p| p.rehome(pool)),
            ..self
        }
    }

    /// A copy of this frame whose planes are taken from `pool`.
    pub fn clone_in(&self, pool: Option<&BufferPool>) -> Self {
        let mut copy = Self::alloc_in(pool, self.format, self.width, self.height);
        for (to, from) in copy.planes.iter_mut().zip(&self.planes) {
            to.copy_from_slice(from);
        }
        Self {
            color: self.color,
            index: self.index,
            time_secs: self.time_secs,
            ..copy
        }
    }

    /// Builds a frame by copying rows out of strided planes (a decoder's buffers).
    /// `strides` are in bytes.
    pub fn from_strided(
        width: u32,
        height: u32,
        format: PixelFormat,
        planes: [&[u8]; 3],
        strides: [usize; 3],
    ) -> Option<Self> {
        Self::from_strided_in(None, width, height, format, planes, strides)
    }

    /// [`Picture::from_strided`] into planes from `pool`.
    pub fn from_strided_in(
        pool: Option<&BufferPool>,
        width: u32,
        height: u32,
        format: PixelFormat,
        planes: [&[u8]; 3],
        strides: [usize; 3],
    ) -> Option<Self> {
        let (cw, ch) = format.chroma_size(width, height);
        let bps = format.bytes_per_sample();
        let dims = [(width, height), (cw, ch), (cw, ch)];
        for p in 0..3 {
            let (w, h) = dims[p];
            let row = w as usize * bps;
            let stride = strides[p];
            if stride < row || (h > 0 && planes[p].len() < stride * (h as usize - 1) + row) {
                return None;
            }
        }
        let mut frame = Self::alloc_in(pool, format, width, height);
        for p in 0..3 {
            let (w, h) = dims[p];
            let row = w as usize * bps;
            let stride = strides[p];
            for (y, dst) in frame.planes[p]
                .chunks_exact_mut(row.max(1))
                .enumerate()
                .take(h as usize)
            {
                dst.copy_from_slice(&planes[p][y * stride..y * stride + row]);
            }
        }
        Some(frame)
    }

    /// Chroma plane size.
    pub fn chroma_size(&self) -> (u32, u32) {
        self.format.chroma_size(self.width, self.height)
    }

    /// Bytes held by the planes.
    pub fn size_bytes(&self) -> usize {
        self.planes.iter().map(|p| p.len()).sum()
    }

    /// The planes written one after another, as `ffmpeg -f rawvideo -pix_fmt …` writes them.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.size_bytes());
        for p in &self.planes {
            v.extend_from_slice(p);
        }
        v
    }

    /// Converts to RGBA8 (row stride `width * 4`).
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut rgba = vec![0u8; self.width as usize * self.height as usize * 4];
        self.write_rgba(&mut rgba);
        rgba
    }

    /// Converts into `rgba` (at least `width * height * 4` bytes, stride `width * 4`).
    pub fn write_rgba(&self, rgba: &mut [u8]) {
        let (range, matrix) = utils_color(self.color);
        let (cw, _) = self.chroma_size();
        let stride = self.width * 4;
        if self.format == PixelFormat::Rgba8 {
            let n = self.planes[0].len().min(rgba.len());
            rgba[..n].copy_from_slice(&self.planes[0][..n]);
            return;
        }
        let result = match self.format {
            PixelFormat::Rgba8 => Ok(()),
            PixelFormat::Yuv420p | PixelFormat::Yuv422p | PixelFormat::Yuv444p => {
                let image = YuvPlanarImage {
                    y_plane: &self.planes[0],
                    y_stride: self.width,
                    u_plane: &self.planes[1],
                    u_stride: cw,
                    v_plane: &self.planes[2],
                    v_stride: cw,
                    width: self.width,
                    height: self.height,
                };
                match self.format {
                    PixelFormat::Yuv420p => {
                        yuvutils_rs::yuv420_to_rgba(&image, rgba, stride, range, matrix)
                    }
                    PixelFormat::Yuv422p => {
                        yuvutils_rs::yuv422_to_rgba(&image, rgba, stride, range, matrix)
                    }
                    _ => yuvutils_rs::yuv444_to_rgba(&image, rgba, stride, range, matrix),
                }
            }
            PixelFormat::Yuv420p10 | PixelFormat::Yuv422p10 => {
                let planes = self.planes.each_ref().map(|p| {
                    p.chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect::<Vec<u16>>()
                });
                let image = YuvPlanarImage {
                    y_plane: &planes[0],
                    y_stride: self.width,
                    u_plane: &planes[1],
                    u_stride: cw,
                    v_plane: &planes[2],
                    v_stride: cw,
                    width: self.width,
                    height: self.height,
                };
                if self.format == PixelFormat::Yuv420p10 {
                    yuvutils_rs::i010_to_rgba(&image, rgba, stride, range, matrix)
                } else {
                    yuvutils_rs::i210_to_rgba(&image, rgba, stride, range, matrix)
                }
            }
        };
        // Sizes are derived from the frame itself, so the converter cannot refuse them.
        debug_assert!(result.is_ok(), "yuv conversion failed: {result:?}");
    }

    /// Scales an 8-bit frame to `width`×`height` (each plane with a Catmull-Rom filter),
    /// keeping its index, time and colour space. Returns `None` for 10-bit frames or a zero size.
    pub fn scaled(&self, width: u32, height: u32) -> Option<Self> {
        self.scaled_in(None, width, height)
    }

    /// [`Picture::scaled`] into planes from `pool`.
    pub fn scaled_in(&self, pool: Option<&BufferPool>, width: u32, height: u32) -> Option<Self> {
        if self.format.bytes_per_sample() != 1 {
            return None;
        }
        let planes: [&[u8]; 3] = [&self.planes[0], &self.planes[1], &self.planes[2]];
        self.resize_planes(
            pool,
            planes,
            self.format,
            width,
            height,
            FilterType::CatmullRom,
        )
    }

    /// Scales to `width`×`height` **8-bit 4:2:0**, whatever this frame's layout: 10-bit samples
    /// are rounded to 8 bits and 4:2:2/4:4:4 chroma is resampled with the same filter. This is
    /// what the H.264 encoder takes (proxies of 10-bit or 4:2:2 camera footage). Downscaling
    /// averages areas (a box filter: no aliasing, and at 4K → 720p about 3x cheaper than
    /// Catmull-Rom's 12 taps per axis); upscaling uses Catmull-Rom.
    pub fn scaled_yuv420p(&self, width: u32, height: u32) -> Option<Self> {
        let filter = self.filter_to(width, height);
        if self.format.bytes_per_sample() == 1 {
            let planes: [&[u8]; 3] = [&self.planes[0], &self.planes[1], &self.planes[2]];
            return self.resize_planes(None, planes, PixelFormat::Yuv420p, width, height, filter);
        }
        let to8 = |p: &[u8]| -> Vec<u8> {
            p.chunks_exact(2)
                .map(|b| ((u16::from_le_bytes([b[0], b[1]]) + 2) >> 2).min(255) as u8)
                .collect()
        };
        let eight = [
            to8(&self.planes[0]),
            to8(&self.planes[1]),
            to8(&self.planes[2]),
        ];
        let planes: [&[u8]; 3] = [&eight[0], &eight[1], &eight[2]];
        self.resize_planes(None, planes, PixelFormat::Yuv420p, width, height, filter)
    }

    /// Scales to `width`×`height` **10-bit 4:2:2**, what ProRes 422 takes: 10-bit samples keep
    /// their bits, 8-bit ones are widened (×4); chroma of any layout is resampled to half
    /// width and full height with the same filter as [`Picture::scaled_yuv420p`].
    pub fn scaled_yuv422p10(&self, width: u32, height: u32) -> Option<Self> {
        let filter = self.filter_to(width, height);
        let planes: [&[u8]; 3] = [&self.planes[0], &self.planes[1], &self.planes[2]];
        if self.format.bytes_per_sample() == 2 {
            return self.resize_planes(None, planes, PixelFormat::Yuv422p10, width, height, filter);
        }
        let eight =
            self.resize_planes(None, planes, PixelFormat::Yuv422p, width, height, filter)?;
        let mut out = Self::alloc_in(None, PixelFormat::Yuv422p10, width, height);
        for (wide, narrow) in out.planes.iter_mut().zip(&eight.planes) {
            for (d, &v) in wide.chunks_exact_mut(2).zip(narrow.iter()) {
                d.copy_from_slice(&(u16::from(v) << 2).to_le_bytes());
            }
        }
        out.color = self.color;
        out.index = self.index;
        out.time_secs = self.time_secs;
        Some(out)
    }

    /// This picture as one RGBA8 plane (from the pool), converted with its colour space; an
    /// RGBA8 picture is copied.
    pub fn to_rgba8_in(&self, pool: Option<&BufferPool>) -> Self {
        let mut out = Self::alloc_in(pool, PixelFormat::Rgba8, self.width, self.height);
        self.write_rgba(&mut out.planes[0]);
        out.color = self.color;
        out.index = self.index;
        out.time_secs = self.time_secs;
        out
    }

    /// This picture as 8-bit 4:2:0 (from the pool): an RGBA8 picture is converted with
    /// `color` (BT.709 limited by default, what encoders and players assume), Y'CbCr of
    /// other layouts is resampled at the same size. `None` when the conversion fails.
    pub fn to_yuv420p_in(&self, pool: Option<&BufferPool>, color: ColorSpace) -> Option<Self> {
        match self.format {
            PixelFormat::Yuv420p => Some(self.clone()),
            PixelFormat::Rgba8 => {
                let (w, h) = (self.width, self.height);
                let mut out = Self::alloc_in(pool, PixelFormat::Yuv420p, w, h);
                let (cw, _) = out.chroma_size();
                let [y, u, v] = &mut out.planes;
                let mut image = yuvutils_rs::YuvPlanarImageMut {
                    y_plane: yuvutils_rs::BufferStoreMut::Borrowed(y),
                    y_stride: w,
                    u_plane: yuvutils_rs::BufferStoreMut::Borrowed(u),
                    u_stride: cw,
                    v_plane: yuvutils_rs::BufferStoreMut::Borrowed(v),
                    v_stride: cw,
                    width: w,
                    height: h,
                };
                let (range, matrix) = utils_color(color);
                yuvutils_rs::rgba_to_yuv420(
                    &mut image,
                    &self.planes[0],
                    w * 4,
                    range,
                    matrix,
                    yuvutils_rs::YuvConversionMode::Balanced,
                )
                .ok()?;
                out.color = color;
                out.index = self.index;
                out.time_secs = self.time_secs;
                Some(out)
            }
            _ => self.scaled_yuv420p(self.width, self.height),
        }
    }

    /// Resizes 8-bit `planes` of this frame's geometry into a `format` frame of the new size.
    /// The filter [`Picture::scaled_yuv420p`] and [`Picture::scaled_yuv422p10`] use: a box
    /// (area average) to shrink, Catmull-Rom otherwise.
    fn filter_to(&self, width: u32, height: u32) -> FilterType {
        if width < self.width && height < self.height {
            FilterType::Box
        } else {
            FilterType::CatmullRom
        }
    }

    fn resize_planes(
        &self,
        pool: Option<&BufferPool>,
        planes: [&[u8]; 3],
        format: PixelFormat,
        width: u32,
        height: u32,
        filter: FilterType,
    ) -> Option<Self> {
        if width == 0 || height == 0 {
            return None;
        }
        let (cw, ch) = self.chroma_size();
        let (ncw, nch) = format.chroma_size(width, height);
        let src_dims = [(self.width, self.height), (cw, ch), (cw, ch)];
        let dst_dims = [(width, height), (ncw, nch), (ncw, nch)];
        let mut resizer = Resizer::new();
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
        // The source planes have the output's sample size (callers convert first).
        let kind = if format.bytes_per_sample() == 2 {
            PixelType::U16
        } else {
            PixelType::U8
        };
        let mut out = Self::alloc_in(pool, format, width, height);
        for p in 0..3 {
            let (sw, sh) = src_dims[p];
            let (dw, dh) = dst_dims[p];
            let src = ImageRef::new(sw, sh, planes[p], kind).ok()?;
            let mut dst = Image::from_slice_u8(dw, dh, &mut out.planes[p], kind).ok()?;
            resizer.resize(&src, &mut dst, &options).ok()?;
        }
        out.color = self.color;
        out.index = self.index;
        out.time_secs = self.time_secs;
        Some(out)
    }

    /// Peak signal-to-noise ratio of the luma planes against `other` (same size), in dB;
    /// `f64::INFINITY` when identical.
    pub fn psnr_luma(&self, other: &Self) -> Option<f64> {
        if self.width != other.width || self.height != other.height || self.format != other.format {
            return None;
        }
        let max = if self.format.bytes_per_sample() == 2 {
            1023.0
        } else {
            255.0
        };
        let sse: f64 = if self.format.bytes_per_sample() == 2 {
            self.planes[0]
                .chunks_exact(2)
                .zip(other.planes[0].chunks_exact(2))
                .map(|(a, b)| {
                    let d = f64::from(u16::from_le_bytes([a[0], a[1]]))
                        - f64::from(u16::from_le_bytes([b[0], b[1]]));
                    d * d
                })
                .sum()
        } else {
            self.planes[0]
                .iter()
                .zip(other.planes[0].iter())
                .map(|(&a, &b)| {
                    let d = f64::from(a) - f64::from(b);
                    d * d
                })
                .sum()
        };
        if sse == 0.0 {
            return Some(f64::INFINITY);
        }
        let mse = sse / (self.width as f64 * self.height as f64);
        Some(10.0 * (max * max / mse).log10())
    }
}

/// `yuvutils-rs`' names for a colour space.
fn utils_color(color: ColorSpace) -> (UtilsRange, YuvStandardMatrix) {
    let range = match color.range {
        YuvRange::Limited => UtilsRange::Limited,
        YuvRange::Full => UtilsRange::Full,
    };
    let matrix = match color.matrix {
        MatrixCoefficients::Bt601 => YuvStandardMatrix::Bt601,
        MatrixCoefficients::Bt709 => YuvStandardMatrix::Bt709,
    };
    (range, matrix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_converts_to_black_and_scales() {
        let f = Picture::black(64, 36);
        let rgba = f.to_rgba();
        assert_eq!(rgba.len(), 64 * 36 * 4);
        assert!(
            rgba.chunks_exact(4)
                .all(|p| p[0] < 2 && p[1] < 2 && p[2] < 2)
        );
        let s = f.scaled(8, 5).expect("8-bit scales");
        assert_eq!((s.width, s.height), (8, 5));
        assert_eq!(s.planes[1].len(), 4 * 3);
        assert!(s.planes[0].iter().all(|&y| y == 16));
    }

    #[test]
    fn ten_bit_422_scales_to_8_bit_420() {
        let (w, h) = (16u32, 8u32);
        let sample = |v: u16| v.to_le_bytes();
        let y: Vec<u8> = (0..w * h).flat_map(|_| sample(64 * 4)).collect();
        let c: Vec<u8> = (0..(w / 2) * h).flat_map(|_| sample(512)).collect();
        let f = Picture {
            width: w,
            height: h,
            format: PixelFormat::Yuv422p10,
            color: ColorSpace::default(),
            planes: [y.into(), c.clone().into(), c.into()],
            index: 7,
            time_secs: 0.0,
        };
        let s = f.scaled_yuv420p(8, 4).expect("scales");
        assert_eq!((s.format, s.index), (PixelFormat::Yuv420p, 7));
        assert_eq!((s.planes[0].len(), s.planes[1].len()), (32, 8));
        assert!(s.planes[0].iter().all(|&v| v == 64));
        assert!(s.planes[1].iter().all(|&v| v == 128));
    }

    #[test]
    fn strided_copy_drops_padding() {
        let y: Vec<u8> = (0..4 * 8).map(|i| i as u8).collect(); // stride 8, width 4
        let u = vec![1u8; 2 * 4];
        let f = Picture::from_strided(4, 4, PixelFormat::Yuv420p, [&y, &u, &u], [8, 4, 4])
            .expect("valid");
        assert_eq!(&f.planes[0][..8], &[0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(f.planes[1].len(), 4);
    }
}
