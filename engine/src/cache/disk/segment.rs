//! Segment files: fixed-size slots for one geometry, memory-mapped, sparse (an evicted slot's
//! blocks are released).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use memmap2::MmapRaw;

use super::format::Geometry;
use super::{DiskCache, DiskError, Inner, SEGMENT_BYTES, io_err};
use crate::media::PixelFormat;

pub(super) struct Segment {
    pub(super) map: MmapRaw,
    pub(super) file: File,
    pub(super) name: String,
    pub(super) geometry: Geometry,
    pub(super) slot_size: usize,
    pub(super) slots: u32,
}

impl Segment {
    /// Drops the mapping's resident pages from this process (its RSS): the next read faults
    /// them back in from the page cache or the file. Nothing stored changes.
    pub(super) fn release_resident(&self) {
        // SAFETY: the mapping is a shared file mapping (`MmapRaw`, `MAP_SHARED`): after
        // `MADV_DONTNEED` an access repopulates the page from the file's up-to-date contents
        // (the page cache keeps writes not yet on disk), so no byte a view or a writer sees
        // changes; it only costs a page fault.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    pub(super) fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // In bounds: slot < self.slots and the mapping is slots * slot_size long.
        self.map
            .as_mut_ptr()
            .wrapping_add(slot as usize * self.slot_size)
    }

    /// The slot's bytes. Callers hold a pin or the reservation of the slot.
    pub(super) fn slot(&self, slot: u32) -> &[u8] {
        debug_assert!(slot < self.slots);
        // SAFETY: the range lies inside the mapping (slot < slots, len = slots * slot_size),
        // which lives as long as `self`; the slot is not being written (readers only see
        // ready, pinned slots; writers only reserved ones), so no `&mut` aliases it.
        unsafe { std::slice::from_raw_parts(self.slot_ptr(slot), self.slot_size) }
    }

    pub(super) fn release_blocks(&self, slot: u32) {
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

impl DiskCache {
    pub(super) fn new_segment(
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

pub(super) fn parse_segment_name(name: &str) -> Option<Geometry> {
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
pub(super) fn map_segment(
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
