//! The picture `framelock gen-media` draws: moving, textured content with the frame's own
//! index burned in as large black/white blocks, and the reader that gets the index back from
//! any decoded frame at any scale.
//!
//! Layout: the top quarter of the picture is a band of 2 rows × 16 columns of cells, one bit
//! each (white = 1), row-major, most significant first: 24 bits of frame index then an 8-bit
//! CRC of those three bytes. The reader averages the central half of each cell and thresholds
//! at mid-grey, so lossy coding and downscaling (1/8 of 1080p is a 15×17-pixel cell) leave the
//! bits intact; the CRC rejects anything else (a frame of some other video, a corrupt decode).
//! Below the band: a scrolling XOR texture over a gradient, a moving box and drifting chroma,
//! so the stream is not trivially compressible and every frame differs from its neighbours.

const COLS: u32 = 16;
const ROWS: u32 = 2;
const BITS: u32 = COLS * ROWS;
const INDEX_BITS: u32 = 24;
/// Largest index the pattern can carry.
pub const MAX_INDEX: u64 = (1 << INDEX_BITS) - 1;

const Y_BLACK: u8 = 16;
const Y_WHITE: u8 = 235;

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn word(index: u64) -> u32 {
    let i = (index & MAX_INDEX) as u32;
    let b = i.to_be_bytes();
    // The CRC is inverted so that an all-black (or all-white) band is never a valid word.
    (i << 8) | u32::from(crc8(&b[1..]) ^ 0xa5)
}

struct Geometry {
    cell_w: f64,
    cell_h: f64,
    band_h: u32,
}

fn geometry(width: u32, height: u32) -> Geometry {
    let band_h = (height / 4).max(ROWS);
    Geometry {
        cell_w: f64::from(width) / f64::from(COLS),
        cell_h: f64::from(band_h) / f64::from(ROWS),
        band_h,
    }
}

/// Draws frame `index` of a `width`×`height` clip into 8-bit 4:2:0 planes (tightly packed:
/// `y` is `width*height`, `u` and `v` are `ceil(width/2)*ceil(height/2)`).
pub fn draw_i420(index: u64, width: u32, height: u32, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let g = geometry(width, height);
    let bits = word(index);
    let t = index as usize;

    // Moving box: a sixth of the height, crossing the picture every 4 seconds at 30 fps.
    let box_size = (h / 6).max(2);
    let box_x = (t * w.max(1) / 120) % w.max(1);
    let box_y = g.band_h as usize + (h - g.band_h as usize).saturating_sub(box_size) / 2;

    for (row, line) in y.chunks_exact_mut(w).take(h).enumerate() {
        if row < g.band_h as usize {
            let r = ((row as f64 / g.cell_h) as u32).min(ROWS - 1);
            for (x, px) in line.iter_mut().enumerate() {
                let c = ((x as f64 / g.cell_w) as u32).min(COLS - 1);
                let bit = (bits >> (BITS - 1 - (r * COLS + c))) & 1;
                *px = if bit == 1 { Y_WHITE } else { Y_BLACK };
            }
            continue;
        }
        let grad = row * 64 / h.max(1);
        let in_box_rows = row >= box_y && row < box_y + box_size;
        for (x, px) in line.iter_mut().enumerate() {
            let tex = ((x + 3 * t) ^ (row + t)) & 0x3f;
            let mut val = 40 + tex + grad + x * 64 / w.max(1);
            if in_box_rows && (x + w - box_x) % w < box_size {
                val = 220 - tex / 2;
            }
            *px = val.min(235) as u8;
        }
    }
    let band_c = (g.band_h as usize).div_ceil(2);
    for (row, (lu, lv)) in u
        .chunks_exact_mut(cw)
        .zip(v.chunks_exact_mut(cw))
        .take(ch)
        .enumerate()
    {
        if row < band_c {
            lu.fill(128);
            lv.fill(128);
            continue;
        }
        for x in 0..cw {
            lu[x] = (96 + ((x + t) & 0x3f)) as u8;
            lv[x] = (160 - ((row + 2 * t) & 0x3f)) as u8;
        }
    }
}

fn read_with(width: u32, height: u32, sample: impl Fn(usize, usize) -> u8) -> Option<u64> {
    if width < COLS || height < 4 * ROWS {
        return None;
    }
    let g = geometry(width, height);
    let mut bits = 0u32;
    for r in 0..ROWS {
        for c in 0..COLS {
            let x0 = (f64::from(c) + 0.25) * g.cell_w;
            let x1 = (f64::from(c) + 0.75) * g.cell_w;
            let y0 = (f64::from(r) + 0.25) * g.cell_h;
            let y1 = (f64::from(r) + 0.75) * g.cell_h;
            let (x0, x1) = (x0 as usize, (x1 as usize).max(x0 as usize + 1));
            let (y0, y1) = (y0 as usize, (y1 as usize).max(y0 as usize + 1));
            let mut sum = 0u64;
            for yy in y0..y1 {
                for xx in x0..x1 {
                    sum += u64::from(sample(xx, yy));
                }
            }
            let avg = sum / ((x1 - x0) * (y1 - y0)) as u64;
            bits = (bits << 1) | u32::from(avg > 126);
        }
    }
    let index = bits >> 8;
    (word(u64::from(index)) == bits).then_some(u64::from(index))
}

/// Reads the burned-in frame index from a luma plane (8-bit, `stride` bytes per row), or
/// `None` if the pattern is not there or its checksum does not match.
pub fn read_index_luma(y: &[u8], width: u32, height: u32, stride: usize) -> Option<u64> {
    if y.len() < stride * height as usize {
        return None;
    }
    read_with(width, height, |x, yy| y[yy * stride + x])
}

/// Reads the burned-in frame index from an RGBA8 image (row stride `width * 4`).
pub fn read_index_rgba(rgba: &[u8], width: u32, height: u32) -> Option<u64> {
    let stride = width as usize * 4;
    if rgba.len() < stride * height as usize {
        return None;
    }
    read_with(width, height, |x, yy| rgba[yy * stride + x * 4 + 1])
}

/// Reads the burned-in frame index from a decoded frame (8- or 10-bit).
pub fn read_index(frame: &super::Picture) -> Option<u64> {
    if frame.format.bytes_per_sample() == 2 {
        let stride = frame.width as usize * 2;
        let y = &frame.planes[0];
        return read_with(frame.width, frame.height, |x, yy| {
            let i = yy * stride + x * 2;
            (u16::from_le_bytes([y[i], y[i + 1]]) >> 2) as u8
        });
    }
    read_index_luma(
        &frame.planes[0],
        frame.width,
        frame.height,
        frame.width as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Picture, PixelFormat};

    fn card(index: u64, w: u32, h: u32) -> Picture {
        let mut f = Picture::black(w, h);
        let [y, u, v] = &mut f.planes;
        draw_i420(index, w, h, y, u, v);
        f
    }

    #[test]
    fn roundtrip_at_full_and_eighth_scale() {
        for &(w, h) in &[(1920, 1080), (640, 360), (1918, 1080)] {
            for index in [0, 1, 29, 1234, 65_535, MAX_INDEX] {
                let f = card(index, w, h);
                assert_eq!(read_index(&f), Some(index), "{w}x{h} #{index}");
                let small = f.scaled(w / 8, h / 8).expect("scales");
                assert_eq!(read_index(&small), Some(index), "{w}x{h}/8 #{index}");
                assert_eq!(read_index_rgba(&f.to_rgba(), w, h), Some(index));
            }
        }
    }

    #[test]
    fn rejects_pictures_without_the_pattern() {
        let f = Picture::black(320, 180);
        assert_eq!(read_index(&f), None);
        let mut f = card(77, 320, 180);
        assert_eq!(f.format, PixelFormat::Yuv420p);
        // flip one bit cell: the checksum catches it
        let w = 320usize;
        for row in 0..22 {
            for x in 0..20 {
                f.planes[0][row * w + x] ^= 0xff;
            }
        }
        assert_eq!(read_index(&f), None);
    }
}
