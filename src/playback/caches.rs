//! The engine's caches seen from the host: every tier's statistics, emptying them, and
//! flushing the disk tier.

use framelock_components::{CacheKind, ClearCache, MemoryBudget, Pressure, TierStats};
use framelock_engine::cache::Cache;
use framelock_systems::{
    DiskTier, FrameIndex, Memory, Metrics, ProxyService, RenderedFrames, Renderer, clear_frames,
    drop_proxy_entities,
};

use super::{CacheStats, ClearedCache, PlaybackEngine, PlayerError};

impl PlaybackEngine {
    /// Frames in memory (all states).
    pub fn frames_tracked(&self) -> usize {
        self.world.resource::<FrameIndex>().0.len()
    }

    /// Every cache tier's statistics and the memory pools' counts.
    pub fn cache_stats(&self) -> CacheStats {
        let m = self.world.resource::<Metrics>();
        let index = self.world.resource::<FrameIndex>();
        let decoded_entries = index.0.len();
        let rendered = self.world.resource::<RenderedFrames>();
        let rendered_bytes = rendered.bytes_used();
        let decoded_bytes = m.bytes_in_memory.saturating_sub(rendered_bytes);
        CacheStats {
            ram_decoded: TierStats {
                entries: decoded_entries,
                bytes: decoded_bytes,
                limit_bytes: self.world.resource::<MemoryBudget>().max_memory,
                hits: m.cache_hits,
                misses: m.cache_misses,
            },
            ram_rendered: Cache::stats(rendered),
            disk: self
                .world
                .get_resource::<DiskTier>()
                .map(|d| d.cache.stats()),
            vram: {
                let r = &self.world.resource::<Renderer>().0;
                (!r.gpu_stats().is_empty()).then(|| Cache::stats(r))
            },
            memory: self.world.resource::<Memory>().0.stats(),
            pressure: *self.world.resource::<Pressure>(),
            disk_reads: m.disk_reads,
            evicted: m.evicted,
            disk_writes_queued: m.disk_writes_queued,
        }
    }

    /// The memory budget.
    pub fn memory_budget(&self) -> MemoryBudget {
        *self.world.resource::<MemoryBudget>()
    }

    /// Empties a cache: decoded or rendered frames (RAM and disk; pinned frames and requests
    /// in flight stay; the picture on screen stays on screen), proxies (files deleted, clips back on their originals), or all. Returns what
    /// was removed.
    pub fn clear_cache(&mut self, what: ClearCache) -> Result<ClearedCache, PlayerError> {
        let mut cleared = ClearedCache::default();
        let decoded = matches!(what, ClearCache::Decoded | ClearCache::All);
        let rendered = matches!(what, ClearCache::Rendered | ClearCache::All);
        if decoded || rendered {
            let c = clear_frames(&mut self.world, decoded, rendered);
            cleared.ram_entries += c.ram_entries;
            cleared.vram_bytes += c.vram_bytes;
            if let Some(disk) = self.world.get_resource::<DiskTier>() {
                let kind = match what {
                    ClearCache::Decoded => Some(CacheKind::Decoded),
                    ClearCache::Rendered => Some(CacheKind::Rendered),
                    _ => None,
                };
                cleared.disk_entries += disk.cache.clear(kind)?;
            }
        }
        if matches!(what, ClearCache::Proxies | ClearCache::All) {
            cleared.proxy_files += self.remove_proxies()?;
        }
        Ok(cleared)
    }

    /// Deletes every proxy file (and manifest) of this project's media and puts clips back on
    /// their originals. Running jobs are cancelled first.
    fn remove_proxies(&mut self) -> Result<usize, PlayerError> {
        let Some(service) = self.world.get_resource::<ProxyService>().cloned() else {
            return Ok(0);
        };
        for source in service.sources.keys() {
            service.manager.cancel_source(source);
        }
        let mut removed = 0;
        let statuses = service.manager.status();
        for status in statuses
            .iter()
            .filter(|s| service.sources.contains_key(&s.source))
        {
            for path in [status.path.clone(), status.path.with_extension("json")] {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(PlayerError::Io { path, source }),
                }
            }
        }
        service
            .manager
            .forget(|s| service.sources.contains_key(&s.source));
        // Proxy assets leave the world; clips fall back to their originals.
        drop_proxy_entities(&mut self.world);
        Ok(removed / 2)
    }

    /// Waits until the disk writer has written everything queued and the disk index is
    /// persisted (tests, benchmarks between phases, before exit).
    pub fn flush_disk_cache(&mut self) {
        framelock_systems::flush_disk(&mut self.world);
    }
}
