//! Display orientation: the track header's matrix (`tkhd`) says how a picture is turned for
//! display — every phone shooting portrait writes a 90° one. The reader turns each decoded
//! picture upright ([`orient`]), so playback, proxies and export see it as it is meant to be
//! seen; probe reports the display size and the rotation.

use super::{Picture, PixelFormat};
use crate::memory::BufferPool;

/// How a track's pictures are turned for display: a horizontal mirror first (when
/// `mirrored`), then a clockwise rotation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Orientation {
    /// Degrees clockwise: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Mirrored left to right (before the rotation).
    pub mirrored: bool,
}

impl Orientation {
    /// From the matrix's `a b c d` (16.16 fixed point; only their signs matter for the
    /// right angles a camera writes). Anything else (a shear, an odd angle) is upright.
    pub fn from_matrix(a: i32, b: i32, c: i32, d: i32) -> Self {
        let (a, b, c, d) = (a.signum(), b.signum(), c.signum(), d.signum());
        let mirrored = a * d - b * c < 0;
        // Undo the mirror (it negates the x axis: the first column).
        let (a, b) = if mirrored { (-a, -b) } else { (a, b) };
        // As ffmpeg (and phones' players) show it: an iPhone's portrait matrix (0 1 -1 0)
        // is a quarter turn clockwise.
        let rotation = match (a, b, c, d) {
            (0, 1, -1, 0) | (0, 1, 1, 0) => 90,
            (-1, 0, 0, -1) | (-1, 0, 0, 1) => 180,
            (0, -1, 1, 0) | (0, -1, -1, 0) => 270,
            _ => 0,
        };
        Self { rotation, mirrored }
    }

    /// Whether pictures are shown as they are decoded.
    pub fn is_upright(self) -> bool {
        self.rotation == 0 && !self.mirrored
    }

    /// The displayed size of a `width`x`height` picture.
    pub fn display_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// `picture` turned upright for display. 4:2:2 turned a quarter goes to 4:2:0 first (its
/// chroma would otherwise be subsampled vertically, which no format here is).
pub fn orient(picture: Picture, o: Orientation, pool: Option<&BufferPool>) -> Picture {
    if o.is_upright() {
        return picture;
    }
    let picture = match picture.format {
        PixelFormat::Yuv422p | PixelFormat::Yuv422p10 if o.rotation % 180 == 90 => {
            let color = picture.color;
            match picture.to_yuv420p_in(pool, color) {
                Some(p) => p,
                None => return picture,
            }
        }
        _ => picture,
    };
    let (w, h) = (picture.width, picture.height);
    let (ow, oh) = o.display_size(w, h);
    let bps = picture.format.bytes_per_sample();
    let mut out = Picture::alloc_in(pool, picture.format, ow, oh);
    out.color = picture.color;
    out.index = picture.index;
    out.time_secs = picture.time_secs;
    let (cw, ch) = picture.chroma_size();
    for (p, (src, dst)) in picture.planes.iter().zip(out.planes.iter_mut()).enumerate() {
        let (pw, ph) = if p == 0 { (w, h) } else { (cw, ch) };
        if pw == 0 || ph == 0 {
            continue;
        }
        turn_plane(src, dst, (pw as usize, ph as usize), bps, o);
    }
    out
}

/// Writes `src` (`w`x`h` samples of `bps` bytes) turned by `o` into `dst`.
fn turn_plane(src: &[u8], dst: &mut [u8], (w, h): (usize, usize), bps: usize, o: Orientation) {
    let (ow, _) = o.display_size(w as u32, h as u32);
    let ow = ow as usize;
    for y in 0..h {
        for x in 0..w {
            // Mirror first, then rotate clockwise.
            let mx = if o.mirrored { w - 1 - x } else { x };
            let (dx, dy) = match o.rotation {
                90 => (h - 1 - y, mx),
                180 => (w - 1 - mx, h - 1 - y),
                270 => (y, w - 1 - mx),
                _ => (mx, y),
            };
            let s = (y * w + x) * bps;
            let d = (dy * ow + dx) * bps;
            dst[d..d + bps].copy_from_slice(&src[s..s + bps]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: i32 = 65536;

    #[test]
    fn matrices_read_as_rotations() {
        let r = |a, b, c, d| Orientation::from_matrix(a, b, c, d);
        assert_eq!(r(ONE, 0, 0, ONE), Orientation::default());
        assert_eq!(r(0, ONE, -ONE, 0).rotation, 90);
        assert_eq!(r(-ONE, 0, 0, -ONE).rotation, 180);
        assert_eq!(r(0, -ONE, ONE, 0).rotation, 270);
        let m = r(-ONE, 0, 0, ONE);
        assert!(m.mirrored && m.rotation == 0, "{m:?}");
    }

    #[test]
    fn a_quarter_turn_clockwise_moves_the_top_left_to_the_top_right() {
        // 3x2 plane: rows "abc", "def".
        let src = b"abcdef";
        let mut dst = [0u8; 6];
        let o = Orientation {
            rotation: 90,
            mirrored: false,
        };
        turn_plane(src, &mut dst, (3, 2), 1, o);
        // 2x3: rows "da", "eb", "fc".
        assert_eq!(&dst, b"daebfc");
        let o = Orientation {
            rotation: 270,
            mirrored: false,
        };
        turn_plane(src, &mut dst, (3, 2), 1, o);
        assert_eq!(&dst, b"cfbead");
        let o = Orientation {
            rotation: 180,
            mirrored: false,
        };
        turn_plane(src, &mut dst, (3, 2), 1, o);
        assert_eq!(&dst, b"fedcba");
        let o = Orientation {
            rotation: 0,
            mirrored: true,
        };
        turn_plane(src, &mut dst, (3, 2), 1, o);
        assert_eq!(&dst, b"cbafed");
    }
}
