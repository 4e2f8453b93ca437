//! The memory and cache resources the systems share: the buffer pools, the disk tier and its
//! background writer, and the RAM tier of rendered frames.
//!
//! - Decoded frames in RAM are `Frame` entities with a [`CacheEntry`](framelock_components::CacheEntry)
//!   (`tier: Ram`, key, bytes, last use, pinned) and [`FramePixels`](crate::FramePixels).
//! - Rendered frames (composites worth keeping: clips with effects, or a composite that took
//!   over half a frame period) are in [`RenderedFrames`], an LRU by key, and are written
//!   through to the disk tier.
//! - The disk tier's entries are rows of its memory-mapped index (not entities: they outlive
//!   the world and are read by worker threads). Decode workers look there before decoding.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use bevy_ecs::prelude::*;
use crossbeam_channel::{Sender, TrySendError};
use framelock_components::{CacheKey, CacheKind, TierStats};
use framelock_engine::cache::{Cache, DiskCache};
use framelock_engine::media::YuvFrame;
use framelock_engine::memory::BufferPool;

/// The buffer pools every frame buffer of this engine comes from.
#[derive(Resource, Clone, Debug)]
pub struct Memory(pub BufferPool);

/// Counters of the background disk writer.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Frames written.
    pub written: AtomicU64,
    /// Frames not written because the writer's queue was full (they were simply freed).
    pub skipped: AtomicU64,
    /// Writes that failed (a full disk): the frame is not cached, nothing else is lost.
    pub failed: AtomicU64,
}

/// The disk tier and the thread that writes to it (writes never run on the tick).
#[derive(Resource)]
pub struct DiskTier {
    /// The tier.
    pub cache: DiskCache,
    queue: Option<WriteQueue>,
    counters: Arc<WriterCounters>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("cache", &self.cache)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Frames queued for the disk writer at most.
pub const WRITE_QUEUE: usize = 8;

impl DiskTier {
    /// Starts the writer thread for `cache`.
    pub fn new(cache: DiskCache) -> Self {
        let counters = Arc::new(WriterCounters::default());
        let (queue, handle) = spawn_writer(&cache, &counters);
        Self {
            cache,
            queue,
            counters,
            handle,
        }
    }

    /// Queues `frame` for writing; a full queue drops the request (returns `false`).
    pub fn write(&self, key: CacheKey, kind: CacheKind, frame: Arc<YuvFrame>) -> bool {
        let Some(q) = &self.queue else { return false };
        match q.try_send((key, kind, frame)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The writer's counters.
    pub fn counters(&self) -> &WriterCounters {
        &self.counters
    }

    /// Waits until every queued write is done and the index is persisted (tests, shutdown,
    /// benchmarks between phases), then starts a fresh writer.
    pub fn drain(&mut self) {
        self.queue = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let (queue, handle) = spawn_writer(&self.cache, &self.counters);
        self.queue = queue;
        self.handle = handle;
    }
}

type WriteQueue = Sender<(CacheKey, CacheKind, Arc<YuvFrame>)>;

fn spawn_writer(
    cache: &DiskCache,
    counters: &Arc<WriterCounters>,
) -> (Option<WriteQueue>, Option<JoinHandle<()>>) {
    let (tx, rx) = crossbeam_channel::bounded::<(CacheKey, CacheKind, Arc<YuvFrame>)>(WRITE_QUEUE);
    let (c, disk) = (counters.clone(), cache.clone());
    let handle = std::thread::Builder::new()
        .name("framelock-disk-writer".into())
        .spawn(move || {
            framelock_engine::workers::lower_thread_priority();
            framelock_engine::profile::set_thread_name("framelock-disk-writer");
            for (key, kind, frame) in rx.iter() {
                framelock_engine::profile_scope!("disk write");
                match disk.put(key, kind, &frame) {
                    Ok(_) => c.written.fetch_add(1, Ordering::Relaxed),
                    Err(_) => c.failed.fetch_add(1, Ordering::Relaxed),
                };
            }
            let _ = disk.flush();
        })
        .ok();
    match handle {
        Some(h) => (Some(tx), Some(h)),
        None => (None, None),
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Measured cost of compositing (seconds per frame, an exponential moving average with
/// weight 1/8): prefetch and composite keep rendered frames when it is over half a frame period.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct RenderCost {
    /// Seconds per composite.
    pub composite_secs: f64,
}

impl RenderCost {
    /// Adds one composite's time.
    pub fn record(&mut self, secs: f64) {
        if self.composite_secs == 0.0 {
            self.composite_secs = secs;
        } else {
            self.composite_secs += (secs - self.composite_secs) / 8.0;
        }
    }
}

/// One rendered frame in RAM.
#[derive(Clone, Debug)]
pub struct RenderedEntry {
    /// The picture (output size).
    pub picture: Arc<YuvFrame>,
    /// The tick that last used it.
    pub last_use: u64,
}

/// The RAM tier of rendered frames: an LRU by [`CacheKey`] within `limit_bytes`.
#[derive(Resource, Debug, Default)]
pub struct RenderedFrames {
    /// Entries by key.
    pub entries: HashMap<CacheKey, RenderedEntry>,
    /// Most bytes held (the budget's share for rendered frames).
    pub limit_bytes: usize,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
    /// Keys whose write-through found the disk writer's queue full: retried each tick while
    /// the frame is still held.
    unwritten: Vec<CacheKey>,
}

impl RenderedFrames {
    /// An empty tier of at most `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            ..Self::default()
        }
    }

    /// The frame for `key`, marking it used (counts a hit or a miss).
    pub fn get(&mut self, key: CacheKey) -> Option<Arc<YuvFrame>> {
        match self.entries.get_mut(&key) {
            Some(e) => {
                e.last_use = self.tick;
                self.hits += 1;
                Some(e.picture.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Whether `key` is held (no counting).
    pub fn contains(&self, key: CacheKey) -> bool {
        self.entries.contains_key(&key)
    }

    /// Marks `key` used this tick, if held (prefetch keeps the window's frames).
    pub fn touch(&mut self, key: CacheKey) -> bool {
        match self.entries.get_mut(&key) {
            Some(e) => {
                e.last_use = self.tick;
                true
            }
            None => false,
        }
    }

    /// Keeps `picture` under `key`, evicting least recently used entries (never one used
    /// this tick) to stay within the limit.
    pub fn insert(&mut self, key: CacheKey, picture: Arc<YuvFrame>) {
        let bytes = picture.size_bytes();
        if bytes > self.limit_bytes {
            return;
        }
        if let Some(old) = self.entries.insert(
            key,
            RenderedEntry {
                picture,
                last_use: self.tick,
            },
        ) {
            self.bytes -= old.picture.size_bytes();
        }
        self.bytes += bytes;
        self.evict_to(self.limit_bytes);
    }

    /// Remembers that `key` still has to be written through to disk.
    /// Keeps a new composite under `key` and writes it through to `disk` (a write the busy
    /// writer cannot take yet is deferred to [`RenderedFrames::retry_writes`]). Returns
    /// whether a write was queued now. Pass no disk when the key does not describe the
    /// picture exactly (a layer came from a fallback source).
    pub fn keep(&mut self, key: CacheKey, picture: Arc<YuvFrame>, disk: Option<&DiskTier>) -> bool {
        self.insert(key, picture.clone());
        match disk {
            Some(disk) if !disk.cache.contains(key) => {
                let queued = disk.write(key, CacheKind::Rendered, picture);
                if !queued {
                    self.defer_write(key);
                }
                queued
            }
            _ => false,
        }
    }

    /// Remembers a write-through the busy writer could not take yet.
    pub fn defer_write(&mut self, key: CacheKey) {
        if !self.unwritten.contains(&key) {
            self.unwritten.push(key);
        }
    }

    /// Write-throughs still waiting for the writer.
    pub fn pending_writes(&self) -> usize {
        self.unwritten.len()
    }

    /// Hands deferred write-throughs to `disk` while its queue takes them. Returns how many.
    pub fn retry_writes(&mut self, disk: &DiskTier) -> u64 {
        let mut queued = 0;
        while let Some(&key) = self.unwritten.first() {
            let Some(e) = self.entries.get(&key) else {
                self.unwritten.remove(0);
                continue;
            };
            if disk.cache.contains(key) {
                self.unwritten.remove(0);
                continue;
            }
            if !disk.write(key, CacheKind::Rendered, e.picture.clone()) {
                break;
            }
            self.unwritten.remove(0);
            queued += 1;
        }
        queued
    }

    /// Evicts least recently used entries (not those used this tick) until bytes ≤ `target`.
    /// Returns the bytes freed.
    pub fn evict_to(&mut self, target: usize) -> usize {
        if self.bytes <= target {
            return 0;
        }
        let before = self.bytes;
        let mut order: Vec<(u64, CacheKey)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.last_use < self.tick)
            .map(|(k, e)| (e.last_use, *k))
            .collect();
        order.sort_unstable();
        for (_, k) in order {
            if self.bytes <= target {
                break;
            }
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.picture.size_bytes();
            }
        }
        before - self.bytes
    }
}

impl Cache for RenderedFrames {
    fn begin_frame(&mut self, tick: u64) {
        self.tick = tick;
    }

    fn purge_memory(&mut self) {
        self.entries.clear();
        self.unwritten.clear();
        self.bytes = 0;
    }

    fn bytes_used(&self) -> usize {
        self.bytes
    }

    fn stats(&self) -> TierStats {
        TierStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            limit_bytes: self.limit_bytes,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_lru_keeps_recent_and_current() {
        let mut r = RenderedFrames::new(3 * 24);
        let f = |i: u64| {
            let mut f = YuvFrame::black(4, 4);
            f.index = i;
            Arc::new(f)
        };
        for i in 0..3 {
            r.begin_frame(i);
            r.insert(CacheKey(i), f(i));
        }
        r.begin_frame(3);
        assert!(r.get(CacheKey(0)).is_some()); // 0 is now the most recent
        r.insert(CacheKey(3), f(3));
        assert!(r.contains(CacheKey(0)) && !r.contains(CacheKey(1)));
        assert_eq!(r.bytes_used(), 3 * 24);
        let s = r.stats();
        assert_eq!((s.entries, s.hits), (3, 1));
        r.begin_frame(4);
        r.purge_memory();
        assert_eq!(r.bytes_used(), 0);
    }
}
