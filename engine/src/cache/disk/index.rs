//! The index: entries (key → segment, slot, lengths, checksum, kind, last use) in memory,
//! persisted atomically to `index.json` with a trailing checksum; opening loads it or
//! rebuilds it from the slot headers.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use framelock_components::{CacheKey, CacheKind};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::format::{FLAG_RENDERED, Header, INDEX_VERSION};
use super::segment::{map_segment, parse_segment_name};
use super::{DiskCache, DiskCacheOptions, DiskError, Inner, SLOT_HEADER, Shared, io_err};

#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) seg: usize,
    pub(super) slot: u32,
    pub(super) stored_len: u64,
    pub(super) checksum: u64,
    pub(super) kind: CacheKind,
    pub(super) last_use: u64,
    pub(super) pins: u32,
    pub(super) ready: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct IndexFile {
    pub(super) version: u32,
    pub(super) entries: Vec<IndexRow>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct IndexRow {
    pub(super) key: u64,
    pub(super) segment: String,
    pub(super) slot: u32,
    pub(super) stored_len: u64,
    pub(super) checksum: u64,
    pub(super) rendered: bool,
    pub(super) last_use: u64,
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
}

impl Shared {
    pub(super) fn flush(&self) -> Result<(), DiskError> {
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
pub(super) fn adopt(
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

pub(super) fn drop_entry(inner: &mut Inner, key: CacheKey) {
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

pub(super) fn read_index(path: &Path) -> Option<IndexFile> {
    let bytes = std::fs::read(path).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?.trim_end();
    let (body, sum) = text.rsplit_once('\n')?;
    if u64::from_str_radix(sum, 16).ok()? != xxh3_64(body.as_bytes()) {
        return None;
    }
    let index: IndexFile = serde_json::from_str(body).ok()?;
    (index.version == INDEX_VERSION).then_some(index)
}
