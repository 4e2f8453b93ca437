//! The VRAM tier (L1): uploaded planes kept under their decoded-frame key within a byte
//! budget, least recently used out first.

use std::sync::atomic::Ordering;

use framelock_components::TierStats;

use super::graph::{Buf, Encoding, Step};
use super::{GpuDevice, write_mapped};
use crate::cache::Cache;
use crate::effects::RenderError;
use crate::effects::ops::PlaneLayout;
use crate::media::Picture;

pub(super) struct VramEntry {
    pub(super) buffer: wgpu::Buffer,
    pub(super) bytes: u64,
    pub(super) last_use: u64,
}

impl GpuDevice {
    /// Drops the VRAM tier's entries (their buffers go back to the pool).
    pub fn clear_vram(&mut self) -> usize {
        let freed: u64 = self.vram.values().map(|e| e.bytes).sum();
        for (_, e) in self.vram.drain() {
            self.pool.entry(e.bytes).or_default().push(e.buffer);
        }
        freed as usize
    }

    /// The planes of `frame` on the GPU: from VRAM under `key`, or uploaded through a staging
    /// slot (and kept in VRAM when `key` is not 0 and fits the budget).
    pub(super) fn planes(
        &mut self,
        enc: &mut Encoding,
        frame: &Picture,
        key: u64,
    ) -> Result<Buf, RenderError> {
        self.uses += 1;
        if key != 0
            && let Some(e) = self.vram.get_mut(&key)
        {
            e.last_use = self.uses;
            self.stats.vram_hits += 1;
            let b = e.buffer.clone();
            return Ok(enc.buf(b, false));
        }
        let PlaneLayout {
            lens,
            offsets,
            total,
        } = PlaneLayout::of(frame);
        let total = total as u64;
        let slot = self.staging_slot(total, &enc.staging_used);
        let parts: Vec<(usize, &[u8])> = (0..3)
            .map(|p| (offsets[p], &frame.planes[p][..lens[p]]))
            .collect();
        write_mapped(&self.staging[slot].buffer, total as usize, &parts)?;
        self.staging[slot].buffer.unmap();
        self.staging[slot].mapped.store(false, Ordering::Release);
        enc.staging_used.push(slot);
        self.stats.uploads += 1;
        self.stats.upload_bytes += total;
        let size = total.next_multiple_of(16);
        let keep = key != 0 && size <= self.vram_budget;
        if keep {
            // Evict least recently used entries to fit.
            let mut held: u64 = self.vram.values().map(|e| e.bytes).sum();
            while held + size > self.vram_budget {
                let Some((&old, _)) = self.vram.iter().min_by_key(|(_, e)| e.last_use) else {
                    break;
                };
                if let Some(e) = self.vram.remove(&old) {
                    held -= e.bytes;
                    self.stats.vram_evictions += 1;
                    self.pool.entry(e.bytes).or_default().push(e.buffer);
                }
            }
        }
        let dst = self.take(size)?;
        let b = enc.buf(dst.clone(), !keep);
        if keep {
            self.vram.insert(
                key,
                VramEntry {
                    buffer: dst,
                    bytes: size,
                    last_use: self.uses,
                },
            );
        }
        enc.steps.push(Step::Upload {
            staging: slot,
            dst: b,
            size: total,
        });
        Ok(b)
    }
}

/// The VRAM tier as a [`Cache`]: bytes of uploaded planes held; a purge gives them back to
/// the buffer pool. Hits are layers rendered from planes already there, misses uploads.
impl Cache for GpuDevice {
    fn begin_frame(&mut self, _tick: u64) {}

    fn purge_memory(&mut self) {
        self.clear_vram();
    }

    fn bytes_used(&self) -> usize {
        self.vram.values().map(|e| e.bytes as usize).sum()
    }

    fn stats(&self) -> TierStats {
        TierStats {
            entries: self.vram.len(),
            bytes: self.bytes_used(),
            limit_bytes: self.vram_budget as usize,
            hits: self.stats.vram_hits,
            misses: self.stats.uploads,
        }
    }
}
