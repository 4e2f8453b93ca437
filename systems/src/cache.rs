//! The memory and cache resources the systems share: the buffer pools, the disk tier and its
//! background writer, and the RAM tier of rendered frames.
//!
//! - Decoded frames in RAM are `Frame` entities with a [`CacheEntry`](framelock_components::CacheEntry)
//!   (`tier: Ram`, key, bytes, last use, pinned) and [`FramePixels`](crate::FramePixels).
//! - Rendered frames (composites worth keeping: clips with effects, or a composite that took
//!   over half a frame period) are in [`RenderedFrames`], an LRU by key, and are written
//!   through to the disk tier.
//! - The disk tier's entries are rows of its memory-mapped index (not entities: they outlive
//!   the world and are read by worker threads). Decode workers look there before decoding;
//!   rendered frames have their own reader thread ([`DiskTier::read`]), so a rendered frame
//!   never travels through the decode pool.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use bevy_ecs::prelude::*;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use framelock_components::{CacheKey, CacheKind, TierStats};
use framelock_engine::cache::{Cache, DiskCache};
use framelock_engine::media::Picture;
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

/// The disk tier, the thread that writes to it and the thread that reads rendered frames
/// from it (neither ever runs on the tick).
#[derive(Resource)]
pub struct DiskTier {
    /// The tier.
    pub cache: DiskCache,
    queue: Option<WriteQueue>,
    counters: Arc<WriterCounters>,
    handle: Option<JoinHandle<()>>,
    reads: Option<Sender<CacheKey>>,
    read_done: Receiver<(CacheKey, Option<Arc<Picture>>)>,
    reader: Option<JoinHandle<()>>,
    reading: Arc<AtomicUsize>,
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

/// Rendered-frame reads queued for the disk reader at most.
pub const READ_QUEUE: usize = 16;

impl DiskTier {
    /// Starts the writer and reader threads for `cache`; frames read come from `pool`, and
    /// each finished read bumps `progress`.
    pub fn new(
        cache: DiskCache,
        pool: Option<BufferPool>,
        progress: framelock_engine::signal::Progress,
    ) -> Self {
        let counters = Arc::new(WriterCounters::default());
        let (queue, handle) = spawn_writer(&cache, &counters);
        let (reads, requests) = crossbeam_channel::bounded::<CacheKey>(READ_QUEUE);
        let (done_tx, read_done) = crossbeam_channel::bounded(READ_QUEUE * 2);
        let disk = cache.clone();
        let reading = Arc::new(AtomicUsize::new(0));
        let in_flight = reading.clone();
        let reader = std::thread::Builder::new()
            .name("framelock-disk-reader".into())
            .spawn(move || {
                framelock_engine::profile::set_thread_name("framelock-disk-reader");
                for key in requests.iter() {
                    framelock_engine::profile_scope!("disk read");
                    let frame = disk
                        .get(key)
                        .and_then(|v| v.to_frame(pool.as_ref()))
                        .map(Arc::new);
                    let sent = done_tx.send((key, frame));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    progress.bump();
                    if sent.is_err() {
                        return;
                    }
                }
            })
            .ok();
        Self {
            cache,
            queue,
            counters,
            handle,
            reads: reader.as_ref().map(|_| reads),
            read_done,
            reader,
            reading,
        }
    }

    /// Asks the reader thread for rendered frame `key`; `false` when its queue is full.
    pub fn read(&self, key: CacheKey) -> bool {
        let Some(r) = &self.reads else { return false };
        self.reading.fetch_add(1, Ordering::SeqCst);
        if r.try_send(key).is_ok() {
            return true;
        }
        self.reading.fetch_sub(1, Ordering::SeqCst);
        false
    }

    /// Reads queued or running.
    pub fn reads_in_flight(&self) -> usize {
        self.reading.load(Ordering::SeqCst)
    }

    /// Reads finished since the last call: the frame, or `None` when the tier did not have it
    /// (evicted, corrupt), without blocking.
    pub fn try_collect_reads(&self) -> impl Iterator<Item = (CacheKey, Option<Arc<Picture>>)> + '_ {
        self.read_done.try_iter()
    }

    /// Queues `frame` for writing; a full queue drops the request (returns `false`).
    pub fn write(&self, key: CacheKey, kind: CacheKind, frame: Arc<Picture>) -> bool {
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

type WriteQueue = Sender<(CacheKey, CacheKind, Arc<Picture>)>;

fn spawn_writer(
    cache: &DiskCache,
    counters: &Arc<WriterCounters>,
) -> (Option<WriteQueue>, Option<JoinHandle<()>>) {
    let (tx, rx) = crossbeam_channel::bounded::<(CacheKey, CacheKind, Arc<Picture>)>(WRITE_QUEUE);
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
        self.reads = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        if let Some(h) = self.reader.take() {
            while !h.is_finished() {
                while self.read_done.try_recv().is_ok() {}
                std::thread::yield_now();
            }
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
    pub picture: Arc<Picture>,
    /// The tick that last used it.
    pub last_use: u64,
    /// Not worth keeping once unwanted (a cheap composite on its way to the screen): freed
    /// two ticks after its last use.
    pub transient: bool,
    /// Made by another renderer (read from the disk tier, or kept by background render), not
    /// by this engine's render path.
    pub made_elsewhere: bool,
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
    /// Keys asked of the disk reader, not answered yet.
    reading: HashSet<CacheKey>,
    /// Keys the disk tier could not answer (its index had them): rendered again instead.
    unreadable: HashSet<CacheKey>,
}

/// Where a rendered frame asked of the disk tier stands (see [`RenderedFrames::read_from_disk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskRead {
    /// Asked (now or before); it lands in RAM when the reader answers.
    Reading,
    /// The tier does not have it (or its reader is busy): make it another way.
    Unavailable,
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
    pub fn get(&mut self, key: CacheKey) -> Option<Arc<Picture>> {
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

    /// Whether `key` is held and was made by another renderer (see
    /// [`RenderedEntry::made_elsewhere`]).
    pub fn made_elsewhere(&self, key: CacheKey) -> bool {
        self.entries.get(&key).is_some_and(|e| e.made_elsewhere)
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
    pub fn insert(&mut self, key: CacheKey, picture: Arc<Picture>) {
        self.insert_from(key, picture, false);
    }

    /// [`RenderedFrames::insert`], saying whether another renderer made the picture.
    fn insert_from(&mut self, key: CacheKey, picture: Arc<Picture>, made_elsewhere: bool) {
        let bytes = picture.size_bytes();
        if bytes > self.limit_bytes {
            return;
        }
        if let Some(old) = self.entries.insert(
            key,
            RenderedEntry {
                picture,
                last_use: self.tick,
                transient: false,
                made_elsewhere,
            },
        ) {
            self.bytes -= old.picture.size_bytes();
        }
        self.bytes += bytes;
        self.evict_to(self.limit_bytes);
    }

    /// Holds `picture` under `key` only while it is wanted (used or touched in the last two
    /// ticks): a cheap composite between the render thread and the screen.
    pub fn hold(&mut self, key: CacheKey, picture: Arc<Picture>) {
        self.insert(key, picture);
        if let Some(e) = self.entries.get_mut(&key) {
            e.transient = true;
        }
    }

    /// Keeps a new composite under `key` and writes it through to `disk` (a write the busy
    /// writer cannot take yet is deferred to [`RenderedFrames::retry_writes`]). Returns
    /// whether a write was queued now. Pass no disk when the key does not describe the
    /// picture exactly (a layer came from a fallback source).
    pub fn keep(&mut self, key: CacheKey, picture: Arc<Picture>, disk: Option<&DiskTier>) -> bool {
        self.keep_from(key, picture, disk, false)
    }

    /// [`RenderedFrames::keep`] of a picture another renderer made (background render).
    pub fn keep_made_elsewhere(
        &mut self,
        key: CacheKey,
        picture: Arc<Picture>,
        disk: Option<&DiskTier>,
    ) -> bool {
        self.keep_from(key, picture, disk, true)
    }

    fn keep_from(
        &mut self,
        key: CacheKey,
        picture: Arc<Picture>,
        disk: Option<&DiskTier>,
        made_elsewhere: bool,
    ) -> bool {
        self.insert_from(key, picture.clone(), made_elsewhere);
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

    /// Whether `disk` holds rendered frame `key` and reading it has not failed before.
    pub fn on_disk(&self, key: CacheKey, disk: &DiskTier) -> bool {
        !self.unreadable.contains(&key) && disk.cache.contains(key)
    }

    /// Asks `disk` for rendered frame `key` unless it was asked already or failed before.
    pub fn read_from_disk(&mut self, key: CacheKey, disk: &DiskTier) -> DiskRead {
        if self.reading.contains(&key) {
            return DiskRead::Reading;
        }
        if self.unreadable.contains(&key) || !disk.cache.contains(key) || !disk.read(key) {
            return DiskRead::Unavailable;
        }
        self.reading.insert(key);
        DiskRead::Reading
    }

    /// Keeps the frames `disk`'s reader answered (in RAM), remembering the keys it could not.
    /// Returns how many frames came back.
    pub fn collect_disk_reads(&mut self, disk: &DiskTier) -> u64 {
        let mut n = 0;
        for (key, frame) in disk.try_collect_reads() {
            self.reading.remove(&key);
            match frame {
                Some(f) => {
                    self.insert_from(key, f, true);
                    n += 1;
                }
                None => {
                    self.unreadable.insert(key);
                }
            }
        }
        n
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
        let stale: Vec<CacheKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.transient && e.last_use + 2 < tick)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.picture.size_bytes();
            }
        }
    }

    fn purge_memory(&mut self) {
        self.entries.clear();
        self.unwritten.clear();
        self.unreadable.clear();
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
            let mut f = Picture::black(4, 4);
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
