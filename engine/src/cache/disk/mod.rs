//! The L3 disk tier: frames in memory-mapped slot files in a cache folder. One concept a
//! file: the slot format ([`format`]), segment files ([`segment`]), the index and opening
//! ([`index`]), zero-copy views ([`view`]); storing, reading and eviction here.
//!
//! Layout of the folder:
//! - `lock` — held with `flock` while a [`DiskCache`] is open (one process per folder; a
//!   second opener gets [`DiskError::Locked`]).
//! - `seg-<format>-<w>x<h>-<n>.slots` — a segment: [`SEGMENT_BYTES`] of fixed-size slots
//!   (at least one) for one frame geometry, each a 64-byte header (magic, key, lengths, flags, geometry,
//!   payload checksum, header checksum) followed by the payload (the planes one after another,
//!   or their LZ4 block when that is smaller). Segment files are sparse: a slot takes disk
//!   blocks only once written, and an evicted slot's blocks are released
//!   (`FALLOC_FL_PUNCH_HOLE`), so the tier's byte limit is a limit on disk use.
//! - `index.json` — the entries (key → segment, slot, lengths, checksum, kind, last use) and a
//!   trailing xxh3 checksum line; written atomically (temp + rename) by [`DiskCache::flush`],
//!   every [`FLUSH_EVERY`] writes and on drop.
//!
//! Reads are zero-copy: [`DiskCache::get`] returns a [`DiskView`] of the mapping (the slot is
//! pinned — never evicted or rewritten — while the view lives). Every read checks the payload
//! checksum first. Anything that does not check out — a corrupt or truncated index (rebuilt
//! by scanning the slot headers), a truncated segment (its missing slots are forgotten), a
//! payload whose checksum fails (the entry is dropped, the read is a miss) — is discarded:
//! never a crash, never a wrong frame.
//!
//! Safety model: writes go through the raw mapping into slots the writer has reserved under
//! the index lock (no reader can see a reserved slot; no writer gets a pinned one). The files
//! are this process's alone while the lock is held; a file changed underneath by another
//! program can produce a wrong checksum (a miss), not a wrong frame.

mod format;
mod index;
mod segment;
mod view;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use framelock_components::{CacheKey, CacheKind, TierStats};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::Cache;
use crate::media::{MatrixCoefficients, Picture, YuvRange};
use format::{FLAG_LZ4, FLAG_RENDERED, Geometry, Header};
use index::{Entry, drop_entry};
use segment::Segment;
pub use view::DiskView;

/// Bytes of a slot header.
pub const SLOT_HEADER: usize = 64;
/// Segments are sized to hold about this many bytes of slots (at least one slot).
pub const SEGMENT_BYTES: usize = 256 << 20;
/// The index is persisted after this many writes (and on flush/drop).
pub const FLUSH_EVERY: u64 = 64;

/// Why the disk tier cannot open or write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// File system error (a full disk is one).
    #[error("disk cache {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process has the folder open.
    #[error("disk cache {path} is in use by another process")]
    Locked {
        /// The folder.
        path: PathBuf,
    },
    /// The frame is larger than the tier's whole limit.
    #[error("a {bytes}-byte frame does not fit a {limit}-byte disk tier")]
    TooLarge {
        /// Frame bytes.
        bytes: usize,
        /// Tier limit.
        limit: u64,
    },
}

/// Payload compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compression {
    /// Planes stored as they are: reads are zero-copy views (the default: measured faster
    /// to read, see `benches/cache.rs`).
    #[default]
    None,
    /// LZ4 block (`lz4_flex`), kept only when smaller than the raw planes.
    Lz4,
}

/// How to open a disk tier.
#[derive(Clone, Debug)]
pub struct DiskCacheOptions {
    /// The cache folder (created if missing).
    pub dir: PathBuf,
    /// Most bytes of payload kept; least recently used entries go first.
    pub limit_bytes: u64,
    /// Payload compression.
    pub compression: Compression,
}

impl DiskCacheOptions {
    /// A tier in `dir` of at most `limit_bytes`, uncompressed.
    pub fn new(dir: impl Into<PathBuf>, limit_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            limit_bytes,
            compression: Compression::None,
        }
    }
}

/// The tier's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiskStats {
    /// Entries, bytes, limit, hits, misses.
    pub tier: TierStats,
    /// Frames written.
    pub writes: u64,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Entries found corrupt (checksum) and dropped; includes those dropped at open.
    pub corrupt: u64,
    /// The index was unreadable at open and rebuilt from the slot headers.
    pub rebuilt_index: bool,
    /// Measured write speed, bytes per second: payload bytes over the time spent copying them
    /// into the mapping, averaged over this run's writes.
    pub write_bytes_per_sec: f64,
}

#[derive(Default)]
struct Inner {
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) free: HashMap<Geometry, Vec<(usize, u32)>>,
    pub(super) entries: HashMap<CacheKey, Entry>,
    pub(super) bytes: u64,
    pub(super) clock: u64,
    pub(super) hits: u64,
    pub(super) misses: u64,
    pub(super) writes: u64,
    pub(super) evictions: u64,
    pub(super) corrupt: u64,
    pub(super) rebuilt_index: bool,
    pub(super) unflushed: u64,
    pub(super) written_bytes: u64,
    pub(super) write_secs: f64,
}

impl Inner {
    fn write_speed(&self) -> f64 {
        if self.write_secs > 0.0 {
            self.written_bytes as f64 / self.write_secs
        } else {
            0.0
        }
    }
}

struct Shared {
    pub(super) options: DiskCacheOptions,
    pub(super) inner: Mutex<Inner>,
    pub(super) _lock: File,
}

/// The disk tier (a cheap handle: clones share it). See the module doc.
#[derive(Clone)]
pub struct DiskCache(Arc<Shared>);

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.0.options.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DiskCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.0.options.dir
    }

    /// Whether `key` is stored (no pin, no checksum: a hint for prefetch).
    pub fn contains(&self, key: CacheKey) -> bool {
        self.lock().entries.get(&key).is_some_and(|e| e.ready)
    }

    /// The frame stored under `key`, as a pinned zero-copy view, after checking its payload
    /// checksum (a mismatch drops the entry and is a miss).
    pub fn get(&self, key: CacheKey) -> Option<DiskView> {
        let (seg, entry) = {
            let mut inner = self.lock();
            inner.clock += 1;
            let clock = inner.clock;
            let Some(e) = inner.entries.get_mut(&key).filter(|e| e.ready) else {
                inner.misses += 1;
                return None;
            };
            e.pins += 1;
            e.last_use = clock;
            let e = *e;
            (inner.segments[e.seg].clone(), e)
        };
        let view = DiskView {
            cache: self.clone(),
            key,
            seg,
            entry,
        };
        let header = Header::read(view.seg.slot(entry.slot));
        let ok = header.is_some_and(|h| h.key == key.0 && h.stored_len == entry.stored_len)
            && xxh3_64(view.stored()) == entry.checksum;
        let mut inner = self.lock();
        if ok {
            inner.hits += 1;
            return Some(view);
        }
        inner.corrupt += 1;
        inner.misses += 1;
        drop(inner);
        drop(view); // unpins
        self.remove(key);
        None
    }

    /// Stores `frame` under `key` (a no-op when it is already there). Compresses per the
    /// options, evicts least recently used entries for room, writes into the mapping.
    /// Returns whether it wrote.
    pub fn put(&self, key: CacheKey, kind: CacheKind, frame: &Picture) -> Result<bool, DiskError> {
        let geometry = Geometry::of(frame);
        let raw_len = frame.size_bytes();
        let limit = self.0.options.limit_bytes;
        if raw_len as u64 > limit {
            return Err(DiskError::TooLarge {
                bytes: raw_len,
                limit,
            });
        }
        if self.contains(key) {
            return Ok(false);
        }
        let compressed = match self.0.options.compression {
            Compression::None => None,
            Compression::Lz4 => {
                let raw = frame.to_raw();
                let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(raw.len())];
                match lz4_flex::block::compress_into(&raw, &mut out) {
                    Ok(n) if n < raw.len() => {
                        out.truncate(n);
                        Some(out)
                    }
                    _ => None,
                }
            }
        };
        let stored_len = compressed.as_ref().map_or(raw_len, Vec::len) as u64;
        let (seg, slot) = {
            let mut inner = self.lock();
            if inner.entries.contains_key(&key) {
                return Ok(false);
            }
            self.evict_to(&mut inner, limit - stored_len);
            let (seg, slot) = match inner.free.get_mut(&geometry).and_then(Vec::pop) {
                Some(s) => s,
                None => self.new_segment(&mut inner, geometry)?,
            };
            inner.clock += 1;
            let clock = inner.clock;
            inner.entries.insert(
                key,
                Entry {
                    seg,
                    slot,
                    stored_len,
                    checksum: 0,
                    kind,
                    last_use: clock,
                    pins: 0,
                    ready: false,
                },
            );
            (inner.segments[seg].clone(), slot)
        };
        let copy_start = Instant::now();
        // SAFETY: the slot is reserved for this call (entry not ready: no reader gets it, no
        // evictor frees it) and lies inside the mapping; nothing else aliases it.
        let out = unsafe { std::slice::from_raw_parts_mut(seg.slot_ptr(slot), seg.slot_size) };
        let payload = &mut out[SLOT_HEADER..SLOT_HEADER + stored_len as usize];
        match &compressed {
            Some(c) => payload.copy_from_slice(c),
            None => {
                let mut at = 0;
                for p in &frame.planes {
                    payload[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
            }
        }
        let checksum = xxh3_64(payload);
        let mut flags = 0;
        if compressed.is_some() {
            flags |= FLAG_LZ4;
        }
        if kind == CacheKind::Rendered {
            flags |= FLAG_RENDERED;
        }
        Header {
            flags,
            key: key.0,
            stored_len,
            checksum,
            geometry,
            index: frame.index,
            matrix: match frame.color.matrix {
                MatrixCoefficients::Bt601 => 0,
                MatrixCoefficients::Bt709 => 1,
            },
            range: match frame.color.range {
                YuvRange::Limited => 0,
                YuvRange::Full => 1,
            },
        }
        .write(out);
        let flush_now = {
            let mut inner = self.lock();
            if let Some(e) = inner.entries.get_mut(&key) {
                e.checksum = checksum;
                e.ready = true;
            }
            inner.bytes += stored_len;
            inner.writes += 1;
            inner.unflushed += 1;
            inner.written_bytes += stored_len;
            // The copy into the mapping (page faults included), not segment creation or
            // compression: what one more write costs.
            inner.write_secs += copy_start.elapsed().as_secs_f64();
            inner.unflushed >= FLUSH_EVERY
        };
        if flush_now {
            self.flush()?;
        }
        Ok(true)
    }

    /// Drops `key` (unless a view pins it). Returns whether it was dropped.
    pub fn remove(&self, key: CacheKey) -> bool {
        let mut inner = self.lock();
        match inner.entries.get(&key) {
            Some(e) if e.ready && e.pins == 0 => {
                drop_entry(&mut inner, key);
                true
            }
            _ => false,
        }
    }

    /// Drops every unpinned entry of `kind` (`None`: all) and persists the index.
    pub fn clear(&self, kind: Option<CacheKind>) -> Result<usize, DiskError> {
        let n = {
            let mut inner = self.lock();
            let keys: Vec<CacheKey> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.ready && e.pins == 0 && kind.is_none_or(|k| e.kind == k))
                .map(|(k, _)| *k)
                .collect();
            for k in &keys {
                drop_entry(&mut inner, *k);
            }
            keys.len()
        };
        self.flush()?;
        Ok(n)
    }

    /// Writes the mapped pages and then the index (atomically), so the index never names a
    /// slot whose bytes are not on disk.
    pub fn flush(&self) -> Result<(), DiskError> {
        self.0.flush()
    }

    /// Measured write speed, bytes per second (0 before the first write): the figure of
    /// [`DiskStats::write_bytes_per_sec`] without counting the entries (eviction asks each tick).
    pub fn write_bytes_per_sec(&self) -> f64 {
        self.lock().write_speed()
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        let inner = self.lock();
        DiskStats {
            tier: TierStats {
                entries: inner.entries.values().filter(|e| e.ready).count(),
                bytes: inner.bytes as usize,
                limit_bytes: self.0.options.limit_bytes as usize,
                hits: inner.hits,
                misses: inner.misses,
            },
            writes: inner.writes,
            evictions: inner.evictions,
            corrupt: inner.corrupt,
            rebuilt_index: inner.rebuilt_index,
            write_bytes_per_sec: inner.write_speed(),
        }
    }

    /// Evicts least recently used, unpinned, ready entries until bytes ≤ `target`.
    fn evict_to(&self, inner: &mut Inner, target: u64) {
        if inner.bytes <= target {
            return;
        }
        let mut order: Vec<(u64, CacheKey)> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.ready && e.pins == 0)
            .map(|(k, e)| (e.last_use, *k))
            .collect();
        order.sort_unstable();
        for (_, key) in order {
            if inner.bytes <= target {
                break;
            }
            drop_entry(inner, key);
            inner.evictions += 1;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The disk tier as a [`Cache`]: its bytes are those on disk; a purge under memory pressure
/// gives back the mapping's resident pages (the frames stay on disk).
impl Cache for DiskCache {
    fn begin_frame(&mut self, _tick: u64) {}

    fn purge_memory(&mut self) {
        let segments = self.lock().segments.clone();
        for s in segments {
            s.release_resident();
        }
    }

    fn bytes_used(&self) -> usize {
        self.lock().bytes as usize
    }

    fn stats(&self) -> TierStats {
        DiskCache::stats(self).tier
    }
}
