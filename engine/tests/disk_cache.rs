//! The disk tier: bit-exact round trips, restart, LRU within the limit, pins, corruption
//! (flipped bytes, a truncated or garbled index, a truncated segment) detected and recovered.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use framelock_engine::cache::{
    CacheKey, CacheKind, Compression, DiskCache, DiskCacheOptions, decoded_key,
};
use framelock_engine::media::{Picture, PixelFormat, testcard};
use framelock_engine::memory::{BufferPool, PoolClass};

const W: u32 = 320;
const H: u32 = 180;

fn card(index: u64) -> Picture {
    let mut f = Picture::alloc_in(None, PixelFormat::Yuv420p, W, H);
    let [y, u, v] = &mut f.planes;
    testcard::draw_i420(index, W, H, y, u, v);
    f.index = index;
    f
}

fn key(i: u64) -> CacheKey {
    decoded_key(0xfeed, i, W, H)
}

fn frame_bytes() -> u64 {
    (W * H * 3 / 2) as u64
}

fn open(dir: &std::path::Path, frames: u64, compression: Compression) -> DiskCache {
    let mut o = DiskCacheOptions::new(dir, frames * frame_bytes());
    o.compression = compression;
    DiskCache::open(o).expect("opens")
}

#[test]
fn round_trip_is_bit_exact_zero_copy_and_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    for compression in [Compression::None, Compression::Lz4] {
        let sub = dir.path().join(format!("{compression:?}"));
        {
            let cache = open(&sub, 16, compression);
            for i in 0..10 {
                assert!(
                    cache
                        .put(key(i), CacheKind::Decoded, &card(i))
                        .expect("writes")
                );
            }
            assert!(
                !cache
                    .put(key(3), CacheKind::Decoded, &card(3))
                    .expect("no-op")
            );
            let view = cache.get(key(7)).expect("hit");
            if compression == Compression::None {
                // Zero-copy: the planes are views of the mapping, equal to the frame's.
                let (format, w, h, planes) = view.planes().expect("uncompressed");
                assert_eq!((format, w, h), (PixelFormat::Yuv420p, W, H));
                assert_eq!(planes[0], &card(7).planes[0][..]);
            } else {
                assert!(view.is_compressed(), "the test card compresses");
            }
            let pool = BufferPool::new(1 << 30);
            let back = view.to_frame(Some(&pool)).expect("reads back");
            assert_eq!(back, card(7));
            assert_eq!(back.index, 7);
            assert_eq!(testcard::read_index(&back), Some(7));
            assert_eq!(pool.stats().class(PoolClass::Frames).allocations, 3);
            assert_eq!(cache.stats().tier.entries, 10);
        }
        // Restart: the index is reloaded, every frame is there and exact.
        let cache = open(&sub, 16, compression);
        let s = cache.stats();
        assert_eq!((s.tier.entries, s.corrupt, s.rebuilt_index), (10, 0, false));
        for i in 0..10 {
            let f = cache
                .get(key(i))
                .expect("kept")
                .to_frame(None)
                .expect("reads");
            assert_eq!(f, card(i), "{compression:?} frame {i}");
        }
        assert!(cache.get(key(99)).is_none());
        let s = cache.stats().tier;
        assert_eq!((s.hits, s.misses), (10, 1));
    }
}

#[test]
fn lru_keeps_the_limit_and_never_evicts_pinned_views() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = open(dir.path(), 4, Compression::None);
    for i in 0..4 {
        cache
            .put(key(i), CacheKind::Decoded, &card(i))
            .expect("writes");
    }
    let pinned = cache.get(key(0)).expect("hit"); // 0 is now the most recent, and pinned
    cache.get(key(2)).expect("hit");
    for i in 4..6 {
        cache
            .put(key(i), CacheKind::Decoded, &card(i))
            .expect("writes");
    }
    // 1 and 3 were the least recently used.
    assert!(cache.contains(key(0)) && cache.contains(key(2)));
    assert!(!cache.contains(key(1)) && !cache.contains(key(3)));
    assert!(cache.stats().tier.bytes as u64 <= 4 * frame_bytes());
    // With 0 pinned, more writes evict the others, never 0.
    for i in 6..12 {
        cache
            .put(key(i), CacheKind::Decoded, &card(i))
            .expect("writes");
    }
    assert!(cache.contains(key(0)));
    assert_eq!(pinned.to_frame(None).expect("still readable"), card(0));
    assert!(cache.stats().tier.bytes as u64 <= 4 * frame_bytes());
    assert!(!cache.remove(key(0)), "a pinned entry is not removed");
    drop(pinned);
    assert!(cache.remove(key(0)));
}

#[test]
fn clear_by_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = open(dir.path(), 8, Compression::None);
    cache
        .put(key(0), CacheKind::Decoded, &card(0))
        .expect("writes");
    cache
        .put(key(1), CacheKind::Rendered, &card(1))
        .expect("writes");
    assert_eq!(cache.clear(Some(CacheKind::Rendered)).expect("clears"), 1);
    assert!(cache.contains(key(0)) && !cache.contains(key(1)));
    assert_eq!(cache.clear(None).expect("clears"), 1);
    assert_eq!(cache.stats().tier.entries, 0);
}

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("lists")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "slots"))
        .expect("a segment file")
}

#[test]
fn flipped_payload_bytes_are_a_miss_never_a_wrong_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let cache = open(dir.path(), 8, Compression::None);
        for i in 0..3 {
            cache
                .put(key(i), CacheKind::Decoded, &card(i))
                .expect("writes");
        }
    }
    // Flip a byte in the middle of every slot's payload region of slot 1.
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).expect("reads");
    let slot_size = (64 + frame_bytes() as usize).next_multiple_of(4096);
    bytes[slot_size + 64 + 1000] ^= 0x5a;
    std::fs::write(&seg, &bytes).expect("writes");
    let cache = open(dir.path(), 8, Compression::None);
    let hits: Vec<bool> = (0..3).map(|i| cache.get(key(i)).is_some()).collect();
    assert_eq!(
        hits.iter().filter(|h| !**h).count(),
        1,
        "exactly one slot is corrupt"
    );
    assert_eq!(cache.stats().corrupt, 1);
    for i in 0..3 {
        if let Some(v) = cache.get(key(i)) {
            assert_eq!(v.to_frame(None).expect("reads"), card(i));
        }
    }
    // The corrupt entry is gone; writing it again works.
    let bad = (0..3)
        .find(|&i| !cache.contains(key(i)))
        .expect("one dropped");
    cache
        .put(key(bad), CacheKind::Decoded, &card(bad))
        .expect("rewrites");
    assert_eq!(
        cache.get(key(bad)).expect("hit").to_frame(None),
        Some(card(bad))
    );
}

#[test]
fn a_truncated_or_garbled_index_is_rebuilt_from_slot_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let cache = open(dir.path(), 8, Compression::Lz4);
        for i in 0..5 {
            cache
                .put(key(i), CacheKind::Decoded, &card(i))
                .expect("writes");
        }
    }
    let index = dir.path().join("index.json");
    let len = std::fs::metadata(&index).expect("exists").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .expect("opens");
    f.set_len(len / 2).expect("truncates");
    drop(f);
    {
        let cache = open(dir.path(), 8, Compression::Lz4);
        let s = cache.stats();
        assert!(s.rebuilt_index);
        assert_eq!(s.tier.entries, 5);
        for i in 0..5 {
            assert_eq!(
                cache.get(key(i)).expect("found").to_frame(None),
                Some(card(i))
            );
        }
    }
    std::fs::write(
        &index,
        b"{\"version\":1,\"entries\":[]}\n0000000000000000\n",
    )
    .expect("writes");
    let cache = open(dir.path(), 8, Compression::Lz4);
    assert!(
        cache.stats().rebuilt_index,
        "a wrong checksum line is detected"
    );
    assert_eq!(cache.stats().tier.entries, 5);
}

#[test]
fn a_truncated_segment_loses_only_the_cut_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let cache = open(dir.path(), 8, Compression::None);
        for i in 0..4 {
            cache
                .put(key(i), CacheKind::Decoded, &card(i))
                .expect("writes");
        }
    }
    let seg = segment(dir.path());
    let slot_size = (64 + frame_bytes() as usize).next_multiple_of(4096) as u64;
    // Cut in the middle of slot 2: slots 0 and 1 stay whole.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("opens");
    f.set_len(2 * slot_size + 100).expect("truncates");
    drop(f);
    let cache = open(dir.path(), 8, Compression::None);
    let found: Vec<u64> = (0..4).filter(|&i| cache.get(key(i)).is_some()).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    for i in found {
        assert_eq!(
            cache.get(key(i)).expect("hit").to_frame(None),
            Some(card(i))
        );
    }
    assert!(cache.stats().corrupt >= 2);
}

#[test]
fn a_second_process_is_refused_the_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _a = open(dir.path(), 4, Compression::None);
    let b = DiskCache::open(DiskCacheOptions::new(dir.path(), 1 << 20));
    assert!(
        matches!(b, Err(framelock_engine::cache::DiskError::Locked { .. })),
        "{b:?}"
    );
}

/// The tier as a `Cache`: its bytes are what it stores, and a purge under memory pressure
/// (the mapping's resident pages given back) loses no frame — not even one a view holds.
#[test]
fn purge_memory_keeps_every_frame() {
    use framelock_engine::cache::Cache;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cache = open(dir.path(), 8, Compression::None);
    for i in 0..4 {
        cache
            .put(key(i), CacheKind::Decoded, &card(i))
            .expect("writes");
    }
    let held = cache.get(key(2)).expect("hit");
    let before = Cache::stats(&cache);
    assert_eq!(before.entries, 4);
    assert_eq!(cache.bytes_used(), before.bytes);
    cache.purge_memory();
    assert_eq!(Cache::stats(&cache).entries, 4);
    let frame = held.to_frame(None).expect("the held view still reads");
    assert_eq!(frame.planes, card(2).planes);
    drop(held);
    for i in 0..4 {
        let f = cache
            .get(key(i))
            .expect("hit")
            .to_frame(None)
            .expect("reads");
        assert_eq!(f.planes, card(i).planes, "frame {i}");
    }
}
