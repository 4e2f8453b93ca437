//! `evict` — reads [`QualitySettings`], [`Tick`], [`Frame`], [`CacheEntry`]; writes
//! [`FrameIndex`], [`Metrics`]; despawns frames.
//!
//! Frees decoded frames nobody has wanted for `keep_unused_ticks` ticks (behind the playhead,
//! off the prefetch window), then, while the total is over the memory budget, the least
//! recently used ones. Frames used this tick (on screen or about to be) are never freed.

use bevy_ecs::prelude::*;
use framelock_components::{CacheEntry, Frame, FrameState, QualitySettings};

use crate::{FrameIndex, Metrics, Tick};

/// The system.
pub fn evict(
    mut commands: Commands,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    frames: Query<(Entity, &Frame, &CacheEntry)>,
    mut index: ResMut<FrameIndex>,
    mut metrics: ResMut<Metrics>,
) {
    framelock_engine::profile_function!();
    let mut total = 0usize;
    let mut count = 0usize;
    for (e, frame, entry) in &frames {
        if !matches!(frame.state, FrameState::Ready | FrameState::Failed) {
            count += 1;
            continue;
        }
        let unused = tick.index.saturating_sub(entry.last_use);
        if unused > quality.keep_unused_ticks && !entry.pinned {
            index.0.remove(&(frame.asset_id, frame.index));
            commands.entity(e).despawn();
            continue;
        }
        total += entry.bytes;
        count += 1;
    }
    if total > quality.memory_budget_bytes {
        // Over budget (rare): least recently used first.
        let mut held: Vec<(u64, usize, Entity, u64, u64)> = frames
            .iter()
            .filter(|(_, f, en)| {
                matches!(f.state, FrameState::Ready | FrameState::Failed)
                    && tick.index.saturating_sub(en.last_use) <= quality.keep_unused_ticks
            })
            .map(|(e, f, en)| (en.last_use, en.bytes, e, f.asset_id, f.index))
            .collect();
        held.sort_unstable_by_key(|h| h.0);
        for (last_use, bytes, e, asset_id, source) in held {
            if total <= quality.memory_budget_bytes || last_use >= tick.index {
                break;
            }
            index.0.remove(&(asset_id, source));
            commands.entity(e).despawn();
            total -= bytes;
            count -= 1;
        }
    }
    metrics.bytes_in_memory = total;
    metrics.frames_in_memory = count;
}
