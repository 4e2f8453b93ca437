//! Y'CbCr planes to RGBA16, the fast twin of [`crate::effects::cpu::yuv_to_rgba`]: the
//! reference's arithmetic in 65535 units, eight pixels at a time. A point chain given with it runs on each
//! band right after the band is converted, while it is in cache.

use rayon::prelude::*;

use super::point::PointChain;
use super::{BAND_ROWS, Image16, ONE, to_u16};
use crate::effects::ops;
use crate::media::{Picture, PixelFormat};

/// Reads a plane's row of samples as `f32` (8-bit, or 10-bit little-endian).
trait Samples: Sync {
    fn row(plane: &[u8], start: usize, n: usize, out: &mut Vec<f32>);
}

struct Eight;
struct Ten;

impl Samples for Eight {
    fn row(plane: &[u8], start: usize, n: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend(plane[start..start + n].iter().map(|&v| f32::from(v)));
    }
}

impl Samples for Ten {
    fn row(plane: &[u8], start: usize, n: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            plane[2 * start..2 * (start + n)]
                .chunks_exact(2)
                .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]]))),
        );
    }
}

/// The conversion's constants in 65535 units: `l = Y · ys + yo`, chroma `(C - co) · cs`,
/// then the matrix `[R from Cr, G from Cb, G from Cr, B from Cb]`.
#[derive(Clone, Copy)]
struct Coefficients {
    ys: f32,
    yo: f32,
    cs: f32,
    co: f32,
    matrix: [f32; 4],
    shift_y: u32,
}

fn coefficients(frame: &Picture) -> Coefficients {
    let p = ops::yuv_params(frame);
    let ys = p.y_scale * 65535.0;
    Coefficients {
        ys,
        yo: -p.y_offset * ys,
        cs: p.c_scale * 65535.0,
        co: p.c_offset,
        matrix: p.matrix,
        shift_y: p.shift.1,
    }
}

/// The reference's arithmetic in 65535 units, over rows converted to `f32` once.
fn convert_yuv<S: Samples, const SX: usize>(
    frame: &Picture,
    out: &mut Image16,
    chain: Option<&PointChain>,
) {
    let k = coefficients(frame);
    let stride = frame.width as usize * 4;
    out.px
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each(|(band, rows)| {
            convert_band::<S, SX>(rows, band * BAND_ROWS, frame, k);
            if let Some(chain) = chain {
                chain.apply_band(rows);
            }
        });
}

/// One row's working buffers for [`rgb_row`].
struct RowScratch {
    yf: Vec<f32>,
    uf: Vec<f32>,
    vf: Vec<f32>,
    cb: Vec<f32>,
    cr: Vec<f32>,
    rgb: [Vec<u16>; 3],
}

impl RowScratch {
    fn new(w: usize) -> Self {
        Self {
            yf: Vec::new(),
            uf: Vec::new(),
            vf: Vec::new(),
            cb: vec![0.0; w],
            cr: vec![0.0; w],
            rgb: [vec![0; w], vec![0; w], vec![0; w]],
        }
    }
}

/// Row `y` of `frame` converted into `s.rgb` (R, G and B planes of the row).
#[inline(always)]
fn rgb_row<S: Samples, const SX: usize>(
    y: usize,
    frame: &Picture,
    k: Coefficients,
    s: &mut RowScratch,
) {
    let w = frame.width as usize;
    let cw = frame.chroma_size().0 as usize;
    let [yp, up, vp] = &frame.planes;
    let [rv, gu, gv, bu] = k.matrix;
    S::row(yp, y * w, w, &mut s.yf);
    let crow = (y >> k.shift_y) * cw;
    S::row(up, crow, cw, &mut s.uf);
    S::row(vp, crow, cw, &mut s.vf);
    // Chroma centred and scaled, then at luma resolution (each sample twice when
    // subsampled): whole rows, vectorised.
    for plane in [&mut s.uf, &mut s.vf] {
        for c in plane.iter_mut() {
            *c = (*c - k.co) * k.cs;
        }
    }
    for (plane, full) in [(&s.uf, &mut s.cb), (&s.vf, &mut s.cr)] {
        if SX == 0 {
            full.copy_from_slice(&plane[..w]);
        } else {
            let mut pairs = full.chunks_exact_mut(2);
            for (d, v) in (&mut pairs).zip(plane.iter()) {
                d[0] = *v;
                d[1] = *v;
            }
            if let (Some(last), Some(v)) = (pairs.into_remainder().first_mut(), plane.last()) {
                *last = *v;
            }
        }
    }
    let [rr, gg, bb] = &mut s.rgb;
    let (yf, cb, cr) = (&s.yf, &s.cb, &s.cr);
    for x in 0..w {
        let l = yf[x] * k.ys + k.yo;
        rr[x] = to_u16(l + rv * cr[x]);
        gg[x] = to_u16(l - gu * cb[x] - gv * cr[x]);
        bb[x] = to_u16(l + bu * cb[x]);
    }
}

/// R, G and B planes of a row into its RGBA samples, alpha opaque.
#[inline(always)]
fn interleave(row: &mut [u16], [rr, gg, bb]: &[Vec<u16>; 3]) {
    for (((o, r), g), b) in row.chunks_exact_mut(4).zip(rr).zip(gg).zip(bb) {
        o[0] = *r;
        o[1] = *g;
        o[2] = *b;
        o[3] = ONE;
    }
}

super::hot! {
    fn convert_band<S: Samples, const SX: usize>(
        rows: &mut [u16],
        y0: usize,
        frame: &Picture,
        k: Coefficients,
    ) {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let mut s = RowScratch::new(w);
        for (r, row) in rows.chunks_exact_mut(w * 4).enumerate() {
            let y = y0 + r;
            if y >= h {
                break;
            }
            rgb_row::<S, SX>(y, frame, k, &mut s);
            interleave(row, &s.rgb);
        }
    }
}

super::hot! {
    /// Half-size rows from `y0` (of the half-size picture): each pixel the rounded mean of
    /// the 2×2 converted pixels beneath it, made from two converted rows at a time.
    fn half_band<S: Samples, const SX: usize>(
        rows: &mut [u16],
        y0: usize,
        frame: &Picture,
        k: Coefficients,
    ) {
        let w = frame.width as usize;
        let half = w / 2;
        let (mut a, mut b) = (RowScratch::new(w), RowScratch::new(w));
        let mut sums = [vec![0u16; half], vec![0u16; half], vec![0u16; half]];
        for (r, row) in rows.chunks_exact_mut(half * 4).enumerate() {
            let y = 2 * (y0 + r);
            rgb_row::<S, SX>(y, frame, k, &mut a);
            rgb_row::<S, SX>(y + 1, frame, k, &mut b);
            for ((sum, ra), rb) in sums.iter_mut().zip(&a.rgb).zip(&b.rgb) {
                for ((o, pa), pb) in sum.iter_mut().zip(ra.chunks_exact(2)).zip(rb.chunks_exact(2)) {
                    let t = u32::from(pa[0]) + u32::from(pa[1]) + u32::from(pb[0]) + u32::from(pb[1]);
                    *o = ((t + 2) >> 2) as u16;
                }
            }
            interleave(row, &sums);
        }
    }
}

fn convert_rgba8(frame: &Picture, out: &mut Image16, chain: Option<&PointChain>) {
    let stride = frame.width as usize * 4;
    let src = &frame.planes[0];
    out.px
        .par_chunks_mut(stride * BAND_ROWS)
        .zip(src.par_chunks(stride * BAND_ROWS))
        .for_each(|(o, s)| {
            rgba8_band(o, s);
            if let Some(chain) = chain {
                chain.apply_band(o);
            }
        });
}

/// RGBA8 samples widened to 16 bits, alpha opaque.
fn rgba8_band(o: &mut [u16], s: &[u8]) {
    for (d, v) in o.iter_mut().zip(s) {
        *d = u16::from(*v) * 257;
    }
    for px in o.chunks_exact_mut(4) {
        px[3] = ONE;
    }
}

/// [`convert`] then `chain`, then the blend onto black (`onto_black`: the factor from
/// [`super::blend::over_black_factor`]; `None` when the blend changes nothing) and the pack to
/// RGBA8 into `out`, band by band: the frame's 16-bit picture is never whole in memory (the
/// only layer of a frame whose effects are all per-pixel: 16 MB written and read again less
/// at 1080p).
pub fn convert_pack(
    frame: &Picture,
    chain: Option<&PointChain>,
    out: &mut [u8],
    onto_black: Option<f32>,
) {
    crate::profile_function!();
    let stride = frame.width as usize * 4;
    let bytes = (stride * frame.height as usize).min(out.len());
    let k = coefficients(frame);
    out[..bytes]
        .par_chunks_mut(stride * BAND_ROWS)
        .enumerate()
        .for_each_init(
            || vec![0u16; stride * BAND_ROWS],
            |band_px, (band, o)| {
                let px = &mut band_px[..o.len()];
                let y0 = band * BAND_ROWS;
                match frame.format {
                    PixelFormat::Rgba8 => {
                        rgba8_band(px, frame.planes[0].get(y0 * stride..).unwrap_or_default());
                    }
                    PixelFormat::Yuv444p => convert_band::<Eight, 0>(px, y0, frame, k),
                    f if f.bytes_per_sample() == 2 => convert_band::<Ten, 1>(px, y0, frame, k),
                    _ => convert_band::<Eight, 1>(px, y0, frame, k),
                }
                if let Some(chain) = chain {
                    chain.apply_band(px);
                }
                match onto_black {
                    Some(f) => super::pack_over_black_band(o, px, f),
                    None => super::pack_band(o, px),
                }
            },
        );
}

/// [`convert_yuv`] at half size in each direction: each pair of source rows is converted
/// into per-channel rows (in cache) and averaged 2×2 into the output, which is what the box
/// shrink of the full-size conversion gives, without the full-size image or even a
/// full-size band of it (4K full stack at LOD ½: 60 → 5x ms).
fn convert_yuv_half<S: Samples, const SX: usize>(frame: &Picture, out: &mut Image16) {
    let k = coefficients(frame);
    let half = out.width as usize * 4;
    out.px
        .par_chunks_mut(half * BAND_ROWS)
        .enumerate()
        .for_each(|(band, rows)| half_band::<S, SX>(rows, band * BAND_ROWS, frame, k));
}

/// `frame` at half its size in each direction (a Y'CbCr frame of even size): the box shrink of
/// [`convert`]'s image, made in one pass. `None` when the frame is not one of those.
pub fn convert_half(frame: &Picture) -> Option<Image16> {
    if !frame.width.is_multiple_of(2)
        || !frame.height.is_multiple_of(2)
        || frame.format == PixelFormat::Rgba8
    {
        return None;
    }
    crate::profile_function!();
    let mut out = Image16::scratch(frame.width / 2, frame.height / 2);
    match frame.format {
        PixelFormat::Yuv444p => convert_yuv_half::<Eight, 0>(frame, &mut out),
        f if f.bytes_per_sample() == 2 => convert_yuv_half::<Ten, 1>(frame, &mut out),
        _ => convert_yuv_half::<Eight, 1>(frame, &mut out),
    }
    Some(out)
}

/// `frame` as RGBA16 (alpha 1), then `chain` on it.
pub fn convert(frame: &Picture, chain: Option<&PointChain>) -> Image16 {
    crate::profile_function!();
    let mut out = Image16::scratch(frame.width, frame.height);
    match frame.format {
        PixelFormat::Rgba8 => convert_rgba8(frame, &mut out, chain),
        PixelFormat::Yuv444p => convert_yuv::<Eight, 0>(frame, &mut out, chain),
        f if f.bytes_per_sample() == 2 => convert_yuv::<Ten, 1>(frame, &mut out, chain),
        _ => convert_yuv::<Eight, 1>(frame, &mut out, chain),
    }
    out
}
