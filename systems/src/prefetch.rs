//! `prefetch` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`], [`Clip`],
//! [`TimelineIndex`], [`MediaAsset`]; writes [`Frame`] and [`CacheEntry`] (spawns requests),
//! [`FrameIndex`].
//!
//! Requests the source frames the current tick and the next `prefetch_frames` ticks will show,
//! in the play direction at the play rate (paused: the current frame only), nearest first,
//! until the memory budget is spent. Only layers that can be seen are requested: below an
//! opaque layer nothing is. A wanted frame is marked used this tick (eviction keeps it), and a
//! request left over from an older generation is renewed.

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheEntry, Clip, Frame, FrameState, MediaAsset, OutputFormat, PlayState, Playhead,
    QualitySettings,
};

use crate::{FrameIndex, Tick, TimelineIndex};

/// The system.
pub fn prefetch(
    mut commands: Commands,
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    timeline: Res<TimelineIndex>,
    clips: Query<&Clip>,
    assets: Query<&MediaAsset>,
    mut frames: Query<(&mut Frame, &mut CacheEntry)>,
    mut index: ResMut<FrameIndex>,
    mut metrics: ResMut<crate::Metrics>,
    mut last_counted: Local<Option<(u64, u64)>>,
) {
    puffin::profile_function!();
    let mut layers = Vec::new();
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
            let Ok(clip) = clips.get(clip_entity) else {
                continue;
            };
            let Ok(asset) = assets.get(clip.asset) else {
                continue;
            };
            let source = clip.source_frame(t as u64, output.frame_rate);
            let bytes = asset.info.video.width as usize * asset.info.video.height as usize * 3 / 2;
            if bytes > budget && k > 0 {
                return;
            }
            budget = budget.saturating_sub(bytes);
            // Cache accounting: once per shown timeline frame and layer, at its first look.
            if k == 0 && count_this {
                let ready = index.0.get(&(asset.id, source)).is_some_and(|&e| {
                    frames
                        .get(e)
                        .is_ok_and(|(f, _)| f.state == FrameState::Ready)
                });
                if ready {
                    metrics.cache_hits += 1;
                } else {
                    metrics.cache_misses += 1;
                }
            }
            match index.0.get(&(asset.id, source)) {
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
                                asset: clip.asset,
                                asset_id: asset.id,
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
                    index.0.insert((asset.id, source), e);
                }
            }
        }
    }
}
