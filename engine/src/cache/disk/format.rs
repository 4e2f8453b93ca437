//! The slot format: a frame's geometry (which segment it goes in) and the 64-byte slot
//! header (magic, key, lengths, flags, geometry, payload checksum, header checksum).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::SLOT_HEADER;
use crate::media::{Picture, PixelFormat};

pub(super) const MAGIC: u32 = u32::from_le_bytes(*b"FLS1");
pub(super) const INDEX_VERSION: u32 = 1;
pub(super) const FLAG_LZ4: u32 = 1;
pub(super) const FLAG_RENDERED: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Geometry {
    pub(super) format: u8,
    pub(super) width: u32,
    pub(super) height: u32,
}

impl Geometry {
    pub(super) fn of(frame: &Picture) -> Self {
        Self {
            format: frame.format.code(),
            width: frame.width,
            height: frame.height,
        }
    }

    pub(super) fn raw_len(self) -> Option<usize> {
        let format = PixelFormat::from_code(self.format)?;
        let (cw, ch) = format.chroma_size(self.width, self.height);
        let bps = format.bytes_per_sample();
        Some((self.width as usize * self.height as usize + 2 * cw as usize * ch as usize) * bps)
    }

    pub(super) fn slot_size(self) -> Option<usize> {
        Some((SLOT_HEADER + self.raw_len()?).next_multiple_of(4096))
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) flags: u32,
    pub(super) key: u64,
    pub(super) stored_len: u64,
    pub(super) checksum: u64,
    pub(super) geometry: Geometry,
    pub(super) index: u64,
    pub(super) matrix: u8,
    pub(super) range: u8,
}

impl Header {
    pub(super) fn write(&self, out: &mut [u8]) {
        out[..SLOT_HEADER].fill(0);
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..24].copy_from_slice(&self.stored_len.to_le_bytes());
        out[24..32].copy_from_slice(&self.checksum.to_le_bytes());
        out[32] = self.geometry.format;
        out[33] = self.matrix;
        out[34] = self.range;
        out[36..40].copy_from_slice(&self.geometry.width.to_le_bytes());
        out[40..44].copy_from_slice(&self.geometry.height.to_le_bytes());
        out[44..52].copy_from_slice(&self.index.to_le_bytes());
        let sum = xxh3_64(&out[..56]);
        out[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    pub(super) fn read(b: &[u8]) -> Option<Self> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if b.len() < SLOT_HEADER || u32_at(0) != MAGIC || xxh3_64(&b[..56]) != u64_at(56) {
            return None;
        }
        Some(Self {
            flags: u32_at(4),
            key: u64_at(8),
            stored_len: u64_at(16),
            checksum: u64_at(24),
            geometry: Geometry {
                format: b[32],
                width: u32_at(36),
                height: u32_at(40),
            },
            index: u64_at(44),
            matrix: b[33],
            range: b[34],
        })
    }
}
