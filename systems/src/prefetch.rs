//! `prefetch` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`], [`Clip`],
//! [`Lod`], [`TimelineIndex`], [`MediaAsset`], [`ProxyAssets`]; writes [`Frame`] and [`CacheEntry`] (spawns requests),
//! [`FrameIndex`].
//!
//! Requests the source frames the current tick and the next `prefetch_frames` ticks will show,
//! in the play direction at the play rate (paused: the current frame only), nearest first,
//! until the memory budget is spent. Only layers that can be seen are requested: below an
//! opaque layer nothing is. A wanted frame is marked used this tick (eviction keeps it), and a
//! request left over from an older generation is renewed. Frames are requested from the asset
//! the clip's [`Lod`] names (original or proxy); a frame counts as a cache hit when it, or the
//! same source frame of another level of the clip, is decoded (composite can show either).

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheEntry, Clip, Frame, FrameState, Lod, OutputFormat, PlayState, Playhead, QualitySettings,
};
#[cfg(doc)]
use framelock_components::{MediaAsset, ProxyAssets};

use crate::layers::{AssetQuery, candidates};
use crate::{FrameIndex, Tick, TimelineIndex};

/// The system.
pub fn prefetch(
    mut commands: Commands,
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    timeline: Res<TimelineIndex>,
    clips: Query<(&Clip, &Lod)>,
    assets: AssetQuery,
    mut frames: Query<(&mut Frame, &mut CacheEntry)>,
    mut index: ResMut<FrameIndex>,
    mut metrics: ResMut<crate::Metrics>,
    mut last_counted: Local<Option<(u64, u64)>>,
) {
    framelock_engine::profile_function!();
    let mut layers = Vec::new();
    let mut sources = Vec::new();
    let window = if playhead.state == PlayState::Playing {
        quality.prefetch_frames
    } else {
        0
    };
    let step = playhead.rate.abs().max(1.0);
    let count_this = *last_counted != Some((playhead.frame, playhead.generation));
    *last_counted = Some((playhead.frame, playhead.generation));
    let mut budget = quality.memory_budget_bytes;
    for k in 0..=window {
        let offset = (k as f64 * step).round() as i64 * playhead.direction();
        let t = playhead.frame as i64 + offset;
        if t < 0 || t >= playhead.duration as i64 {
            break;
        }
        timeline.visible_at(t as u64, &mut layers);
        for &(clip_entity, _) in &layers {
            let Ok((clip, lod)) = clips.get(clip_entity) else {
                continue;
            };
            candidates(clip, *lod, &assets, &mut sources);
            let Some(&(asset_entity, asset_id, bytes)) = sources.first() else {
                continue;
            };
            let source = clip.source_frame(t as u64, output.frame_rate);
            if bytes > budget && k > 0 {
                return;
            }
            budget = budget.saturating_sub(bytes);
            // Cache accounting: once per shown timeline frame and layer, at its first look.
            if k == 0 && count_this {
                let ready = sources.iter().any(|&(_, id, _)| {
                    index.0.get(&(id, source)).is_some_and(|&e| {
                        frames
                            .get(e)
                            .is_ok_and(|(f, _)| f.state == FrameState::Ready)
                    })
                });
                if ready {
                    metrics.cache_hits += 1;
                } else {
                    metrics.cache_misses += 1;
                }
            }
            match index.0.get(&(asset_id, source)) {
                Some(&e) => {
                    if let Ok((mut frame, mut entry)) = frames.get_mut(e) {
                        entry.last_use = tick.index;
                        frame.priority = k;
                        if frame.generation != playhead.generation
                            && frame.state != FrameState::Ready
                        {
                            // Its job may have been dropped as stale: ask again.
                            frame.generation = playhead.generation;
                            frame.state = FrameState::Requested;
                            commands.entity(e).insert(crate::Pending);
                        }
                    }
                }
                None => {
                    let e = commands
                        .spawn((
                            Frame {
                                asset: asset_entity,
                                asset_id,
                                index: source,
                                state: FrameState::Requested,
                                generation: playhead.generation,
                                priority: k,
                            },
                            CacheEntry {
                                bytes: 0,
                                last_use: tick.index,
                                pinned: false,
                            },
                            crate::Pending,
                        ))
                        .id();
                    index.0.insert((asset_id, source), e);
                }
            }
        }
    }
}
