//! The L3 disk tier: frames in memory-mapped slot files in a cache folder.
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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use framelock_components::{CacheKey, CacheKind, TierStats};
use memmap2::MmapRaw;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::media::{ColorSpace, MatrixCoefficients, Picture, PixelFormat, YuvRange};
use crate::memory::BufferPool;

/// Bytes of a slot header.
pub const SLOT_HEADER: usize = 64;
/// Segments are sized to hold about this many bytes of slots (at least one slot).
pub const SEGMENT_BYTES: usize = 256 << 20;
/// The index is persisted after this many writes (and on flush/drop).
pub const FLUSH_EVERY: u64 = 64;

const MAGIC: u32 = u32::from_le_bytes(*b"FLS1");
const INDEX_VERSION: u32 = 1;
const FLAG_LZ4: u32 = 1;
const FLAG_RENDERED: u32 = 2;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Geometry {
    format: u8,
    width: u32,
    height: u32,
}

impl Geometry {
    fn of(frame: &Picture) -> Self {
        Self {
            format: frame.format.code(),
            width: frame.width,
            height: frame.height,
        }
    }

    fn raw_len(self) -> Option<usize> {
        let format = PixelFormat::from_code(self.format)?;
        let (cw, ch) = format.chroma_size(self.width, self.height);
        let bps = format.bytes_per_sample();
        Some((self.width as usize * self.height as usize + 2 * cw as usize * ch as usize) * bps)
    }

    fn slot_size(self) -> Option<usize> {
        Some((SLOT_HEADER + self.raw_len()?).next_multiple_of(4096))
    }
}

struct Segment {
    map: MmapRaw,
    file: File,
    name: String,
    geometry: Geometry,
    slot_size: usize,
    slots: u32,
}

impl Segment {
    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // In bounds: slot < self.slots and the mapping is slots * slot_size long.
        self.map
            .as_mut_ptr()
            .wrapping_add(slot as usize * self.slot_size)
    }

    /// The slot's bytes. Callers hold a pin or the reservation of the slot.
    fn slot(&self, slot: u32) -> &[u8] {
        debug_assert!(slot < self.slots);
        // SAFETY: the range lies inside the mapping (slot < slots, len = slots * slot_size),
        // which lives as long as `self`; the slot is not being written (readers only see
        // ready, pinned slots; writers only reserved ones), so no `&mut` aliases it.
        unsafe { std::slice::from_raw_parts(self.slot_ptr(slot), self.slot_size) }
    }

    fn release_blocks(&self, slot: u32) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fallocate on an open descriptor with an in-file range; failure (a file
            // system without hole punching) only means the blocks stay allocated.
            unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    (slot as usize * self.slot_size) as libc::off_t,
                    self.slot_size as libc::off_t,
                );
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Header {
    flags: u32,
    key: u64,
    stored_len: u64,
    checksum: u64,
    geometry: Geometry,
    index: u64,
    matrix: u8,
    range: u8,
}

impl Header {
    fn write(&self, out: &mut [u8]) {
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

    fn read(b: &[u8]) -> Option<Self> {
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

#[derive(Clone, Copy, Debug)]
struct Entry {
    seg: usize,
    slot: u32,
    stored_len: u64,
    checksum: u64,
    kind: CacheKind,
    last_use: u64,
    pins: u32,
    ready: bool,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    entries: Vec<IndexRow>,
}

#[derive(Serialize, Deserialize)]
struct IndexRow {
    key: u64,
    segment: String,
    slot: u32,
    stored_len: u64,
    checksum: u64,
    rendered: bool,
    last_use: u64,
}

#[derive(Default)]
struct Inner {
    segments: Vec<Arc<Segment>>,
    free: HashMap<Geometry, Vec<(usize, u32)>>,
    entries: HashMap<CacheKey, Entry>,
    bytes: u64,
    clock: u64,
    hits: u64,
    misses: u64,
    writes: u64,
    evictions: u64,
    corrupt: u64,
    rebuilt_index: bool,
    unflushed: u64,
    written_bytes: u64,
    write_secs: f64,
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
    options: DiskCacheOptions,
    inner: Mutex<Inner>,
    _lock: File,
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
    /// Opens (or creates) the tier in `options.dir`: maps the segments, loads the index or
    /// rebuilds it from the slot headers, drops what does not check out.
    pub fn open(options: DiskCacheOptions) -> Result<Self, DiskError> {
        let dir = options.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r != 0 {
                return Err(DiskError::Locked { path: dir });
            }
        }
        let mut inner = Inner::default();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("seg-") && n.ends_with(".slots"))
            .collect();
        names.sort();
        for name in names {
            let Some(geometry) = parse_segment_name(&name) else {
                continue;
            };
            match map_segment(&dir.join(&name), &name, geometry, None) {
                Ok(seg) => inner.segments.push(Arc::new(seg)),
                Err(_) => {
                    let _ = std::fs::remove_file(dir.join(&name));
                }
            }
        }
        let loaded = read_index(&dir.join("index.json"));
        match loaded {
            Some(index) => {
                let by_name: HashMap<&str, usize> = inner
                    .segments
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.name.as_str(), i))
                    .collect();
                let mut adopted = Vec::new();
                for row in index.entries {
                    let Some(&seg) = by_name.get(row.segment.as_str()) else {
                        inner.corrupt += 1;
                        continue;
                    };
                    let s = &inner.segments[seg];
                    let ok = row.slot < s.slots
                        && Header::read(s.slot(row.slot)).is_some_and(|h| {
                            h.key == row.key
                                && h.stored_len == row.stored_len
                                && h.checksum == row.checksum
                                && h.geometry == s.geometry
                        });
                    if !ok {
                        inner.corrupt += 1;
                        continue;
                    }
                    adopted.push((row, seg));
                }
                for (row, seg) in adopted {
                    inner.clock = inner.clock.max(row.last_use + 1);
                    adopt(
                        &mut inner,
                        CacheKey(row.key),
                        seg,
                        row.slot,
                        row.stored_len,
                        row.checksum,
                        row.rendered,
                        row.last_use,
                    );
                }
            }
            None => {
                // No index or an unreadable one: every slot header that checks out is kept.
                inner.rebuilt_index = dir.join("index.json").exists() || !inner.segments.is_empty();
                let mut found = Vec::new();
                for (i, s) in inner.segments.iter().enumerate() {
                    for slot in 0..s.slots {
                        if let Some(h) = Header::read(s.slot(slot))
                            && h.geometry == s.geometry
                            && h.stored_len as usize + SLOT_HEADER <= s.slot_size
                        {
                            found.push((h, i, slot));
                        }
                    }
                }
                for (h, seg, slot) in found {
                    adopt(
                        &mut inner,
                        CacheKey(h.key),
                        seg,
                        slot,
                        h.stored_len,
                        h.checksum,
                        h.flags & FLAG_RENDERED != 0,
                        0,
                    );
                }
            }
        }
        // Every slot not holding an entry is free.
        let used: std::collections::HashSet<(usize, u32)> =
            inner.entries.values().map(|e| (e.seg, e.slot)).collect();
        for (i, s) in inner.segments.iter().enumerate() {
            let list = inner.free.entry(s.geometry).or_default();
            for slot in (0..s.slots).rev() {
                if !used.contains(&(i, slot)) {
                    list.push((i, slot));
                }
            }
        }
        let cache = Self(Arc::new(Shared {
            options,
            inner: Mutex::new(inner),
            _lock: lock,
        }));
        {
            let mut inner = cache.lock();
            let limit = cache.0.options.limit_bytes;
            cache.evict_to(&mut inner, limit);
        }
        cache.flush()?;
        Ok(cache)
    }

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

    fn new_segment(
        &self,
        inner: &mut Inner,
        geometry: Geometry,
    ) -> Result<(usize, u32), DiskError> {
        let slot_size = geometry.slot_size().ok_or_else(|| DiskError::Io {
            path: self.dir().to_path_buf(),
            source: std::io::Error::other("unknown pixel format"),
        })?;
        let n = inner
            .segments
            .iter()
            .filter(|s| s.geometry == geometry)
            .count();
        let name = format!(
            "seg-{}-{}x{}-{n}.slots",
            geometry.format, geometry.width, geometry.height
        );
        let slots = (SEGMENT_BYTES / slot_size).max(1) as u32;
        let path = self.dir().join(&name);
        let seg = map_segment(&path, &name, geometry, Some(slots))?;
        debug_assert_eq!(seg.slot_size, slot_size);
        let i = inner.segments.len();
        inner.segments.push(Arc::new(seg));
        let free = inner.free.entry(geometry).or_default();
        for slot in (1..slots).rev() {
            free.push((i, slot));
        }
        Ok((i, 0))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn flush(&self) -> Result<(), DiskError> {
        let (rows, segments) = {
            let mut inner = self.lock();
            inner.unflushed = 0;
            let rows: Vec<IndexRow> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.ready)
                .map(|(k, e)| IndexRow {
                    key: k.0,
                    segment: inner.segments[e.seg].name.clone(),
                    slot: e.slot,
                    stored_len: e.stored_len,
                    checksum: e.checksum,
                    rendered: e.kind == CacheKind::Rendered,
                    last_use: e.last_use,
                })
                .collect();
            (rows, inner.segments.clone())
        };
        for s in &segments {
            s.map
                .flush_async()
                .map_err(io_err(self.options.dir.as_path()))?;
        }
        let mut rows = rows;
        rows.sort_unstable_by_key(|r| (r.segment.clone(), r.slot));
        let body = serde_json::to_vec(&IndexFile {
            version: INDEX_VERSION,
            entries: rows,
        })
        .map_err(|e| DiskError::Io {
            path: self.options.dir.as_path().join("index.json"),
            source: std::io::Error::other(e),
        })?;
        let path = self.options.dir.as_path().join("index.json");
        let mut f = crate::fs::AtomicFile::create(&path).map_err(io_err(&path))?;
        f.write_all(&body).map_err(io_err(&path))?;
        writeln!(f, "\n{:016x}", xxh3_64(&body)).map_err(io_err(&path))?;
        f.commit().map_err(io_err(&path))?;
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Last handle: persist what is there. An error cannot be reported from a drop; the
        // next open then rebuilds the index from the slot headers.
        let _ = self.flush();
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site per way of finding an entry"
)]
fn adopt(
    inner: &mut Inner,
    key: CacheKey,
    seg: usize,
    slot: u32,
    stored_len: u64,
    checksum: u64,
    rendered: bool,
    last_use: u64,
) {
    if inner.entries.contains_key(&key) {
        return; // a duplicate (a crash between writes): the first one wins
    }
    inner.bytes += stored_len;
    inner.entries.insert(
        key,
        Entry {
            seg,
            slot,
            stored_len,
            checksum,
            kind: if rendered {
                CacheKind::Rendered
            } else {
                CacheKind::Decoded
            },
            last_use,
            pins: 0,
            ready: true,
        },
    );
}

fn drop_entry(inner: &mut Inner, key: CacheKey) {
    if let Some(e) = inner.entries.remove(&key) {
        if e.ready {
            inner.bytes -= e.stored_len;
        }
        let seg = inner.segments[e.seg].clone();
        // Invalidate the header so a rebuild never resurrects it, then give back the blocks.
        // SAFETY: the entry is gone from the index and was unpinned: no view or writer uses
        // the slot; the header lies inside the mapping.
        unsafe { std::ptr::write_bytes(seg.slot_ptr(e.slot), 0, SLOT_HEADER) };
        seg.release_blocks(e.slot);
        inner
            .free
            .entry(seg.geometry)
            .or_default()
            .push((e.seg, e.slot));
    }
}

fn parse_segment_name(name: &str) -> Option<Geometry> {
    let body = name.strip_prefix("seg-")?.strip_suffix(".slots")?;
    let mut parts = body.split('-');
    let format: u8 = parts.next()?.parse().ok()?;
    let (w, h) = parts.next()?.split_once('x')?;
    let _n: u32 = parts.next()?.parse().ok()?;
    PixelFormat::from_code(format)?;
    Some(Geometry {
        format,
        width: w.parse().ok()?,
        height: h.parse().ok()?,
    })
}

/// Opens (creating with `create_slots`) and maps a segment; a truncated file keeps its whole
/// slots and is extended back to a whole number of slots (the lost ones read as empty).
fn map_segment(
    path: &Path,
    name: &str,
    geometry: Geometry,
    create_slots: Option<u32>,
) -> Result<Segment, DiskError> {
    let slot_size = geometry.slot_size().ok_or_else(|| DiskError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("unknown pixel format"),
    })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create_slots.is_some())
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len() as usize;
    let slots = match create_slots {
        Some(n) => n,
        None => (len / slot_size).max(1) as u32,
    };
    let want = slots as usize * slot_size;
    if len != want {
        file.set_len(want as u64).map_err(io_err(path))?;
    }
    let map = MmapRaw::map_raw(&file).map_err(io_err(path))?;
    Ok(Segment {
        map,
        file,
        name: name.to_string(),
        geometry,
        slot_size,
        slots,
    })
}

fn read_index(path: &Path) -> Option<IndexFile> {
    let bytes = std::fs::read(path).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?.trim_end();
    let (body, sum) = text.rsplit_once('\n')?;
    if u64::from_str_radix(sum, 16).ok()? != xxh3_64(body.as_bytes()) {
        return None;
    }
    let index: IndexFile = serde_json::from_str(body).ok()?;
    (index.version == INDEX_VERSION).then_some(index)
}

/// A pinned, checksum-verified view of one stored frame, borrowing the mapping (zero-copy).
/// The slot cannot be evicted or rewritten while the view lives.
pub struct DiskView {
    cache: DiskCache,
    key: CacheKey,
    seg: Arc<Segment>,
    entry: Entry,
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
