//! The memory budget and the cache model: pressure levels, tiers, keys, what can be cleared,
//! and per-tier statistics. Data only; the pools and tiers themselves live in
//! `framelock_engine::{memory, cache}` and the `evict`/`prefetch` systems act on them.

use bevy_ecs::prelude::Resource;
use serde::{Deserialize, Serialize};

/// How much memory the engine may hold, and where it starts to push back.
///
/// The budget is enforced on **accounted bytes**: every frame, audio and effect buffer the
/// engine allocates comes from its buffer pools, which count the bytes they hand out and keep
/// idle, so accounted bytes track real allocations; each open decoder counts what its
/// backend estimates it holds (reference pictures, per-macroblock state), checked against
/// RSS in the tests. What stays outside is fixed: code, thread stacks, the GPU driver.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryBudget {
    /// Hard ceiling, bytes.
    pub max_memory: usize,
    /// Fraction of `max_memory` above which cold entries are evicted proactively (0.75).
    pub warning_threshold: f64,
    /// Fraction of `max_memory` above which prefetch stops, frames are evicted down to the
    /// warning level and playback drops to lower-resolution sources (0.9).
    pub critical_threshold: f64,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::new(1 << 30)
    }
}

impl MemoryBudget {
    /// A budget of `max_memory` bytes with the default thresholds.
    pub fn new(max_memory: usize) -> Self {
        Self {
            max_memory,
            warning_threshold: 0.75,
            critical_threshold: 0.9,
        }
    }

    /// Bytes at the warning threshold.
    pub fn warning_bytes(&self) -> usize {
        (self.max_memory as f64 * self.warning_threshold.clamp(0.0, 1.0)) as usize
    }

    /// Bytes at the critical threshold.
    pub fn critical_bytes(&self) -> usize {
        (self.max_memory as f64 * self.critical_threshold.clamp(0.0, 1.0)) as usize
    }

    /// The pressure level at `accounted` bytes.
    pub fn pressure(&self, accounted: usize) -> Pressure {
        if accounted > self.critical_bytes() {
            Pressure::Critical
        } else if accounted > self.warning_bytes() {
            Pressure::Warning
        } else {
            Pressure::Normal
        }
    }
}

/// Memory pressure against the [`MemoryBudget`].
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pressure {
    /// Below the warning threshold: prefetch fills the window, eviction frees only what
    /// nobody wants.
    #[default]
    Normal,
    /// Above warning: cold entries are evicted proactively (least recently used first,
    /// never the prefetch window or pinned frames).
    Warning,
    /// Above critical: prefetch asks for the current frame only, eviction goes down to the
    /// warning level, and `lod_select` plays from the smallest proxy available.
    Critical,
}

/// Where a cached frame lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CacheTier {
    /// GPU memory (L1; the GPU issue fills it).
    Vram,
    /// Decoded or rendered frames in RAM (L2).
    Ram,
    /// Memory-mapped slot files in the cache folder (L3).
    Disk,
}

/// A stable hash of everything that produced a frame: the asset's fingerprint, the source
/// frame, the resolution and pixel format, and for rendered frames the hash of the effect
/// stack (and layers) that made it. Equal keys mean equal pictures, across restarts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct CacheKey(pub u64);

/// What a cached frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CacheKind {
    /// A source frame as decoded (cheap-ish to recompute: written back to disk only when
    /// evicted and its decode is costly).
    Decoded,
    /// The output of effects and compositing (costly: written through to disk).
    Rendered,
}

/// What `clear_cache` empties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClearCache {
    /// Decoded source frames, in RAM and on disk.
    Decoded,
    /// Rendered frames, in RAM and on disk.
    Rendered,
    /// Proxy files (and the playback of them: clips go back to their originals).
    Proxies,
    /// All of the above.
    All,
}

/// One tier's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held.
    pub bytes: usize,
    /// Byte limit of the tier (0: none set).
    pub limit_bytes: usize,
    /// Lookups that found their frame.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

impl TierStats {
    /// hits / (hits + misses), 0 when nothing was looked up.
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_follows_thresholds() {
        let b = MemoryBudget::new(1000);
        assert_eq!(b.pressure(0), Pressure::Normal);
        assert_eq!(b.pressure(750), Pressure::Normal);
        assert_eq!(b.pressure(751), Pressure::Warning);
        assert_eq!(b.pressure(900), Pressure::Warning);
        assert_eq!(b.pressure(901), Pressure::Critical);
        assert!(Pressure::Critical > Pressure::Warning);
    }
}
