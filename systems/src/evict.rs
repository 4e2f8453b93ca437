//! `evict` — reads [`QualitySettings`], [`MemoryBudget`], [`Memory`], [`Tick`], [`Frame`],
//! [`CacheEntry`], [`FramePixels`], [`DecodeLoad`], [`DiskTier`]; writes [`Pressure`],
//! [`FrameIndex`], [`RenderedFrames`], [`Metrics`]; despawns frames.
//!
//! Keeps the RAM tier within the [`MemoryBudget`]. Pressure is measured on the pools' live
//! bytes (buffers handed out); idle pooled buffers are capacity for the next decodes, and the
//! pool itself never lets live + idle exceed the budget's maximum.
//!
//! | pressure (live + in-flight bytes vs budget) | action |
//! |---|---|
//! | normal (≤ warning) | nothing is evicted: decoded and rendered frames stay cached |
//! | warning | cold entries — every frame not wanted this tick — go, least recently used first, until under warning (their buffers are reused by the next decodes) |
//! | critical | the same, then rendered frames not wanted this tick, and idle pool buffers are freed down to warning; on entering it the disk tier's mapped pages leave the process's memory ([`Cache::purge_memory`]); prefetch asks for the current frame only and `lod_select` drops to the smallest proxy |
//!
//! Frames wanted this tick (the prefetch window, the frame on screen) and pinned ones are
//! never evicted. An evicted decoded frame whose decode costs more than writing it to disk
//! (measured decode time per frame vs the disk tier's measured write speed) is handed to the
//! disk writer first (write-back, "swap to disk"; while the writer's queue is full and the
//! pressure is only at warning, such a frame waits in RAM for a later tick instead of being
//! lost); a cheap one is simply freed. Failed
//! requests and requests not yet handed to a worker are dropped once unwanted for
//! `keep_unused_ticks` ticks.

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheEntry, CacheKind, Frame, FrameState, MemoryBudget, Pressure, QualitySettings,
};
use framelock_engine::cache::Cache;

use crate::cache::{Memory, RenderedFrames};
use crate::{DecodeLoad, DiskTier, FrameIndex, FramePixels, Metrics, Tick};

/// Write speed assumed before the disk tier has measured its own (bytes per second).
pub const ASSUMED_DISK_WRITE_SPEED: f64 = 1e9;

/// The system.
#[allow(
    clippy::too_many_arguments,
    reason = "a system's parameters are its declared data access"
)]
pub fn evict(
    mut commands: Commands,
    quality: Res<QualitySettings>,
    (budget, mut pressure, memory): (Res<MemoryBudget>, ResMut<Pressure>, Res<Memory>),
    tick: Res<Tick>,
    frames: Query<(Entity, &Frame, &CacheEntry, Option<&FramePixels>)>,
    mut index: ResMut<FrameIndex>,
    mut rendered: ResMut<RenderedFrames>,
    (load, disk): (Res<DecodeLoad>, Option<Res<DiskTier>>),
    mut metrics: ResMut<Metrics>,
) {
    framelock_engine::profile_function!();
    let mut held = 0usize;
    let mut requested = 0usize;
    let mut count = 0usize;
    let mut candidates: Vec<(u64, Entity)> = Vec::new();
    for (e, frame, entry, _) in &frames {
        let unused = tick.index.saturating_sub(entry.last_use);
        match frame.state {
            FrameState::Ready => {
                held += entry.bytes;
                count += 1;
                if entry.last_use < tick.index && !entry.pinned {
                    candidates.push((entry.last_use, e));
                }
            }
            FrameState::Failed | FrameState::Requested if unused > quality.keep_unused_ticks => {
                index.0.remove(&(frame.asset_id, frame.index));
                commands.entity(e).despawn();
            }
            FrameState::Failed => count += 1,
            FrameState::Requested | FrameState::Decoding => {
                requested += entry.bytes;
                count += 1;
            }
        }
    }
    let warning = budget.warning_bytes();
    let live = memory.0.in_use_bytes();
    let before = *pressure;
    *pressure = budget.pressure(live + requested);
    if *pressure >= Pressure::Warning {
        candidates.sort_unstable();
        let write_speed = disk
            .as_ref()
            .map(|d| d.cache.write_bytes_per_sec())
            .filter(|&s| s > 0.0)
            .unwrap_or(ASSUMED_DISK_WRITE_SPEED);
        // Room for what is in flight too: it lands in the next ticks.
        let mut over = (live + requested).saturating_sub(warning);
        for (_, e) in candidates {
            if over == 0 {
                break;
            }
            let Ok((_, frame, entry, pixels)) = frames.get(e) else {
                continue;
            };
            if let (Some(disk), Some(px)) = (&disk, pixels) {
                let decode = load.seconds_per_frame(frame.asset_id).unwrap_or(0.0);
                let write = entry.bytes as f64 / write_speed;
                if decode > write && !disk.cache.contains(entry.key) {
                    if disk.write(entry.key, CacheKind::Decoded, px.0.clone()) {
                        metrics.disk_writes_queued += 1;
                    } else if *pressure == Pressure::Warning {
                        // The writer is busy: keep this costly frame until it can be written
                        // (below critical there is room to wait a tick).
                        continue;
                    }
                }
            }
            index.0.remove(&(frame.asset_id, frame.index));
            commands.entity(e).despawn();
            metrics.evicted += 1;
            held -= entry.bytes;
            count -= 1;
            over = over.saturating_sub(entry.bytes);
        }
        if *pressure == Pressure::Critical || over > 0 {
            // Rendered frames not wanted this tick go too (prefetch marked the wanted ones).
            let target = rendered.bytes_used().saturating_sub(over);
            rendered.evict_to(target);
        }
        if *pressure == Pressure::Critical {
            memory.0.trim_to(warning);
            // Entering critical: every tier gives back what it holds in memory without
            // losing a frame — the disk tier its mapping's resident pages.
            if before != Pressure::Critical
                && let Some(d) = &disk
            {
                Cache::purge_memory(&mut d.cache.clone());
            }
        }
    }
    metrics.bytes_in_memory = held + rendered.bytes_used();
    metrics.bytes_outside_caches = memory
        .0
        .in_use_bytes()
        .saturating_sub(metrics.bytes_in_memory);
    metrics.bytes_requested = requested;
    metrics.frames_in_memory = count;
}
