//! `decode` — reads [`Playhead`], [`MediaAsset`]; writes [`Frame`], [`FramePixels`],
//! [`CacheEntry`], [`FrameIndex`], [`Metrics`], [`DecodeLoad`]; owns the [`Decoders`] pool's traffic.
//!
//! Only dispatches and collects — never waits on a decoder: finished jobs are drained with
//! `try_recv`, new ones queued with `try_send` (a full queue leaves the request for the next
//! tick). On a new playhead generation (seek, scrub) it tells the pool, so queued stale jobs
//! are dropped undecoded, and despawns the requests nobody renewed.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_components::{CacheEntry, Frame, FrameState, MediaAsset, Playhead};
use framelock_engine::workers::DecodeJob;

use crate::{DecodeLoad, Decoders, FrameIndex, FramePixels, Metrics, Pending};

/// The system.
pub fn decode(
    mut commands: Commands,
    playhead: Res<Playhead>,
    pool: Res<Decoders>,
    assets: Query<&MediaAsset>,
    mut frames: Query<(Entity, &mut Frame, &mut CacheEntry)>,
    pending: Query<Entity, With<Pending>>,
    mut index: ResMut<FrameIndex>,
    mut metrics: ResMut<Metrics>,
    mut load: ResMut<DecodeLoad>,
    mut seen_generation: Local<u64>,
) {
    framelock_engine::profile_function!();
    if *seen_generation != playhead.generation {
        *seen_generation = playhead.generation;
        pool.0.set_generation(playhead.generation);
        for (e, frame, _) in &frames {
            if frame.generation != playhead.generation && frame.state != FrameState::Ready {
                index.0.remove(&(frame.asset_id, frame.index));
                commands.entity(e).despawn();
            }
        }
    }

    for done in pool.0.try_collect() {
        let Some(&e) = index.0.get(&(done.asset_id, done.frame)) else {
            continue; // nobody wants it any more
        };
        let Ok((_, mut frame, mut entry)) = frames.get_mut(e) else {
            continue;
        };
        if frame.state == FrameState::Ready {
            continue;
        }
        match done.result {
            Ok(picture) => {
                metrics.record_decode(done.decode_time);
                load.record(done.asset_id, done.decode_time.as_secs_f64());
                entry.bytes = picture.size_bytes();
                frame.state = FrameState::Ready;
                commands.entity(e).insert(FramePixels(picture));
            }
            Err(_) => {
                metrics.decode_errors += 1;
                frame.state = FrameState::Failed;
            }
        }
    }

    let mut requested: Vec<(u64, Entity)> = pending
        .iter()
        .filter_map(|e| frames.get(e).ok())
        .filter(|(_, f, _)| f.state == FrameState::Requested && f.generation == playhead.generation)
        .map(|(e, f, _)| (f.priority, e))
        .collect();
    requested.sort_unstable();
    for (_, e) in requested {
        let Ok((_, mut frame, _)) = frames.get_mut(e) else {
            continue;
        };
        let Ok(asset) = assets.get(frame.asset) else {
            continue;
        };
        // Lane: asset + GOP, so a GOP's frames share one worker's decoder.
        let keyframes = &asset.info.video.keyframes;
        let gop = keyframes.partition_point(|&k| k <= frame.index) as u64;
        let job = DecodeJob {
            asset_id: asset.id,
            path: Arc::new(asset.path.clone()),
            frame: frame.index,
            generation: frame.generation,
            lane: asset.id.wrapping_mul(0x9e37_79b9).wrapping_add(gop),
        };
        if pool.0.try_submit(job).is_err() {
            break; // queues full: the rest wait for the next tick
        }
        frame.state = FrameState::Decoding;
        commands.entity(e).remove::<Pending>();
    }
    metrics.decode_queue_depth = pool.0.in_flight();
}
