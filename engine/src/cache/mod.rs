//! The frame cache tiers and their keys.
//!
//! | tier | what | where |
//! |---|---|---|
//! | L1 VRAM | decoded planes uploaded to the GPU | [`crate::gpu`] (each device; the tick sees it through [`crate::render::RenderService`]) |
//! | L2 RAM | decoded frames (`Frame` entities with `FramePixels`) and rendered frames | `framelock-systems` (`evict` keeps LRU within the budget) |
//! | L3 disk | memory-mapped slot files, index on disk, checksums | [`disk`] |
//!
//! Keys ([`CacheKey`]) are stable hashes of everything that produced a frame (see
//! [`KeyBuilder`]); two frames with equal keys are the same picture, across restarts, so
//! a changed source file or an edited effect stack can never hit a stale entry.
//!
//! Every tier implements [`Cache`] (rerun's cache contract): a per-tick hook, a purge under
//! memory pressure, its size in bytes and its [`TierStats`], so eviction and `cache_stats`
//! treat them alike: the VRAM tier (`GpuDevice`, and `RenderService` for the tick), the RAM
//! tier of rendered frames (`RenderedFrames` in systems), the disk tier ([`DiskCache`]). The
//! decoded RAM frames are ECS entities, evicted by the `evict` system from their
//! `CacheEntry` components.

pub mod disk;

pub use disk::{
    Compression, DiskCache, DiskCacheOptions, DiskError, DiskStats, DiskView, SEGMENT_BYTES,
};
pub use framelock_components::{CacheKey, CacheKind, CacheTier, ClearCache, TierStats};

use xxhash_rust::xxh3::Xxh3;

use crate::media::PixelFormat;

/// The contract of a cache tier.
pub trait Cache {
    /// Called once per tick before lookups (LRU clocks advance, counters roll).
    fn begin_frame(&mut self, tick: u64);
    /// Frees what can be freed now (memory pressure or `clear_cache`); pinned entries stay.
    fn purge_memory(&mut self);
    /// Bytes held.
    fn bytes_used(&self) -> usize;
    /// Entries, bytes, hits, misses.
    fn stats(&self) -> TierStats;
}

/// Builds a [`CacheKey`]: an xxh3 over a domain tag and the parts fed in, in order.
#[derive(Clone)]
pub struct KeyBuilder(Xxh3);

impl std::fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBuilder")
    }
}

impl KeyBuilder {
    /// Starts a key of `kind`.
    pub fn new(kind: CacheKind) -> Self {
        let mut h = Xxh3::new();
        h.update(match kind {
            CacheKind::Decoded => b"framelock.decoded.v1",
            CacheKind::Rendered => b"framelock.rendered.v1",
        });
        Self(h)
    }

    /// Feeds a number.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.update(&v.to_le_bytes());
        self
    }

    /// Feeds a float by its bits.
    pub fn f32(self, v: f32) -> Self {
        self.u64(u64::from(v.to_bits()))
    }

    /// Feeds a picture geometry.
    pub fn geometry(self, format: PixelFormat, width: u32, height: u32) -> Self {
        self.u64(u64::from(format.code()))
            .u64(u64::from(width))
            .u64(u64::from(height))
    }

    /// The key.
    pub fn finish(&self) -> CacheKey {
        CacheKey(self.0.digest())
    }
}

/// The key of source frame `frame` of the asset with `fingerprint`, decoded at its own
/// resolution (`width`×`height`).
pub fn decoded_key(fingerprint: u64, frame: u64, width: u32, height: u32) -> CacheKey {
    KeyBuilder::new(CacheKind::Decoded)
        .u64(fingerprint)
        .u64(frame)
        .u64(u64::from(width))
        .u64(u64::from(height))
        .finish()
}

/// A file's fingerprint as a number (see [`crate::media::ProbeCache::fingerprint`]: size,
/// mtime, first and last MiB).
pub fn fingerprint(path: &std::path::Path) -> Result<u64, crate::media::MediaError> {
    Ok(fingerprint_from_hex(
        &crate::media::ProbeCache::fingerprint(path)?,
    ))
}

/// [`fingerprint`] from the hex form manifests and probe caches store.
pub fn fingerprint_from_hex(hex: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(hex.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_part() {
        let base = decoded_key(1, 2, 3, 4);
        assert_eq!(base, decoded_key(1, 2, 3, 4));
        for other in [
            decoded_key(9, 2, 3, 4),
            decoded_key(1, 9, 3, 4),
            decoded_key(1, 2, 9, 4),
            decoded_key(1, 2, 3, 9),
        ] {
            assert_ne!(base, other);
        }
        let r = KeyBuilder::new(CacheKind::Rendered).u64(1).u64(2).finish();
        let d = KeyBuilder::new(CacheKind::Decoded).u64(1).u64(2).finish();
        assert_ne!(r, d);
    }
}
