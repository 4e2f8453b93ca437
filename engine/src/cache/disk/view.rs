//! Zero-copy reads: a pinned, checksum-verified view of a stored frame.

use std::sync::Arc;

use framelock_components::{CacheKey, CacheKind};

use super::format::{FLAG_LZ4, Header};
use super::index::Entry;
use super::segment::Segment;
use super::{DiskCache, SLOT_HEADER};
use crate::media::{ColorSpace, MatrixCoefficients, Picture, PixelFormat, YuvRange};
use crate::memory::BufferPool;

/// A pinned, checksum-verified view of one stored frame, borrowing the mapping (zero-copy).
/// The slot cannot be evicted or rewritten while the view lives.
pub struct DiskView {
    pub(super) cache: DiskCache,
    pub(super) key: CacheKey,
    pub(super) seg: Arc<Segment>,
    pub(super) entry: Entry,
}

impl std::fmt::Debug for DiskView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskView")
            .field("key", &self.key)
            .field("stored_len", &self.entry.stored_len)
            .finish()
    }
}

impl DiskView {
    /// The stored payload, straight from the mapping.
    pub fn stored(&self) -> &[u8] {
        let slot = self.seg.slot(self.entry.slot);
        &slot[SLOT_HEADER..SLOT_HEADER + self.entry.stored_len as usize]
    }

    fn header(&self) -> Option<Header> {
        Header::read(self.seg.slot(self.entry.slot))
    }

    /// Whether the payload is LZ4-compressed.
    pub fn is_compressed(&self) -> bool {
        self.header().is_some_and(|h| h.flags & FLAG_LZ4 != 0)
    }

    /// What produced it.
    pub fn kind(&self) -> CacheKind {
        self.entry.kind
    }

    /// The Y, U, V planes as views of the mapping (uncompressed entries only).
    pub fn planes(&self) -> Option<(PixelFormat, u32, u32, [&[u8]; 3])> {
        let h = self.header()?;
        if h.flags & FLAG_LZ4 != 0 {
            return None;
        }
        let format = PixelFormat::from_code(h.geometry.format)?;
        let (w, ht) = (h.geometry.width, h.geometry.height);
        let (cw, ch) = format.chroma_size(w, ht);
        let bps = format.bytes_per_sample();
        let ylen = w as usize * ht as usize * bps;
        let clen = cw as usize * ch as usize * bps;
        let s = self.stored();
        if s.len() != ylen + 2 * clen {
            return None;
        }
        Some((
            format,
            w,
            ht,
            [&s[..ylen], &s[ylen..ylen + clen], &s[ylen + clen..]],
        ))
    }

    /// Copies (or decompresses) the frame into planes from `pool`.
    pub fn to_frame(&self, pool: Option<&BufferPool>) -> Option<Picture> {
        let h = self.header()?;
        let format = PixelFormat::from_code(h.geometry.format)?;
        let mut frame = Picture::alloc_in(pool, format, h.geometry.width, h.geometry.height);
        if h.flags & FLAG_LZ4 != 0 {
            let mut raw = vec![0u8; h.geometry.raw_len()?];
            let n = lz4_flex::block::decompress_into(self.stored(), &mut raw).ok()?;
            if n != raw.len() {
                return None;
            }
            let mut at = 0;
            for p in &mut frame.planes {
                let len = p.len();
                p.copy_from_slice(&raw[at..at + len]);
                at += len;
            }
        } else {
            let (_, _, _, planes) = self.planes()?;
            for (dst, src) in frame.planes.iter_mut().zip(planes) {
                dst.copy_from_slice(src);
            }
        }
        frame.index = h.index;
        frame.color = ColorSpace {
            matrix: if h.matrix == 0 {
                MatrixCoefficients::Bt601
            } else {
                MatrixCoefficients::Bt709
            },
            range: if h.range == 0 {
                YuvRange::Limited
            } else {
                YuvRange::Full
            },
        };
        Some(frame)
    }
}

impl Drop for DiskView {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        if let Some(e) = inner.entries.get_mut(&self.key) {
            e.pins = e.pins.saturating_sub(1);
        }
    }
}
