//! `decode` — reads [`Playhead`], [`MediaAsset`], [`DiskTier`] (is there one); writes [`Frame`],
//! [`FramePixels`], [`CacheEntry`], [`FrameIndex`], [`Metrics`], [`DecodeLoad`], [`SwitchedFrom`]
//! (drains it); owns the [`Decoders`] pool's traffic.
//!
//! When `lod_select` moves a clip to another candidate (a quality step to a proxy, or back),
//! the requests and queued jobs of the candidate it left that nothing uses any more are
//! dropped and withdrawn from the pool, so the new candidate's frames do not wait behind them.
//!
//! A frame that fails to decode (a missing, truncated or corrupt file) gets the media-offline
//! picture ([`Picture::media_offline_in`], one per asset, shared), so the timeline plays on
//! showing where media is missing, as editors do; the file is reported once
//! ([`EngineEvent::Error`]) and tried again on the next seek (and, playing, at every new
//! frame), [`EngineEvent::MediaRecovered`] when it decodes again.
//!
//! With a disk tier, every job carries its frame's cache key and the worker answers from the
//! disk tier when it can (counted as `disk_reads`, not as decode time).
//!
//! Only dispatches and collects — never waits on a decoder: finished jobs are drained with
//! `try_recv`, new ones queued with `try_send` (a full queue leaves the request for the next
//! tick). On a new playhead generation that jumps (a seek away from the prefetch plan; see
//! [`DecodeGenerations`]) it tells the pool, so queued stale jobs
//! are dropped undecoded, and despawns the requests nobody renewed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_components::{CacheEntry, Frame, FrameState, MediaAsset, PlayState, Playhead};
use framelock_engine::media::{MediaError, Picture};
use framelock_engine::workers::DecodeJob;

use crate::{
    BesideLane, DecodeGenerations, DecodeLoad, Decoders, DiskTier, EngineEvent, Events, FrameIndex,
    FramePixels, Memory, Metrics, Pending, SwitchedFrom, Tick, decode_lane,
};

/// The media-offline picture of each failing asset id.
type OfflinePictures = HashMap<u64, Arc<Picture>>;

/// The system.
pub fn decode(
    mut commands: Commands,
    playhead: Res<Playhead>,
    pool: Res<Decoders>,
    assets: Query<&MediaAsset>,
    mut frames: Query<(Entity, &mut Frame, &mut CacheEntry)>,
    (pending, beside): (Query<Entity, With<Pending>>, Query<&BesideLane>),
    mut index: ResMut<FrameIndex>,
    mut metrics: ResMut<Metrics>,
    mut load: ResMut<DecodeLoad>,
    (disk, mut generations, tick): (Option<Res<DiskTier>>, ResMut<DecodeGenerations>, Res<Tick>),
    switched: Option<ResMut<SwitchedFrom>>,
    mut seen_generation: Local<u64>,
    // Media whose last decode failed (reported once, until one decodes again).
    (mut events, mut failing): (Option<ResMut<Events>>, Local<HashSet<u64>>),
    // The media-offline picture of each failing asset (one, shared by its frames).
    (memory, mut offline): (Option<Res<Memory>>, Local<OfflinePictures>),
) {
    framelock_engine::profile_function!();
    if *seen_generation != playhead.generation {
        *seen_generation = playhead.generation;
        if !generations.continuous {
            pool.0.set_generation(playhead.generation);
            generations.floor = playhead.generation;
        }
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
                offline.remove(&done.asset_id);
                if failing.remove(&done.asset_id)
                    && let (Some(ev), Ok(asset)) = (events.as_mut(), assets.get(frame.asset))
                {
                    ev.push(EngineEvent::MediaRecovered {
                        media: asset.path.clone(),
                    });
                }
                if done.from_disk {
                    metrics.disk_reads += 1;
                } else {
                    metrics.record_decode(done.decode_time);
                    load.record(done.asset_id, done.decode_time.as_secs_f64());
                }
                entry.bytes = picture.size_bytes();
                frame.state = FrameState::Ready;
                commands.entity(e).insert(FramePixels(picture));
            }
            // No room for its decoder yet: asked again on a later tick, once the other
            // workers have closed theirs.
            Err(MediaError::NoRoom { .. }) => {
                frame.state = FrameState::Requested;
                metrics.decoder_waits += 1;
            }
            Err(error) => {
                metrics.decode_errors += 1;
                frame.state = FrameState::Failed;
                let Ok(asset) = assets.get(frame.asset) else {
                    continue;
                };
                let (w, h) = (asset.info.video.width, asset.info.video.height);
                let picture = offline.entry(done.asset_id).or_insert_with(|| {
                    Arc::new(Picture::media_offline_in(
                        memory.as_ref().map(|m| &m.0),
                        w.max(2) & !1,
                        h.max(2) & !1,
                    ))
                });
                // Shared: its bytes are the pool's once, not each frame's.
                entry.bytes = 0;
                commands.entity(e).insert(FramePixels(picture.clone()));
                if failing.insert(done.asset_id)
                    && let Some(ev) = events.as_mut()
                {
                    ev.push(EngineEvent::Error {
                        media: asset.path.clone(),
                        error: format!("frame {}: {error}", frame.index),
                    });
                }
            }
        }
    }

    let switched = switched.map(|mut s| std::mem::take(&mut s.0));
    if let Some(switched) = switched.filter(|s| !s.is_empty()) {
        withdraw_unwanted(
            &mut commands,
            &pool,
            (&mut frames, &switched),
            &mut index,
            &mut metrics,
            tick.index,
        );
    }
    // Playing, a request the playhead left behind in an earlier GOP than every frame wanted
    // now (of its asset) can only be shown late by a decoder that has fallen behind: it is
    // dropped, so the decoder jumps to the playhead's GOP (a keyframe) instead of finishing
    // the old one. Within the playhead's GOP passed requests stay: decoding them is on the
    // way to the wanted frames anyway, and `render` shows each late (the picture moves at the
    // decoder's pace instead of freezing).
    if playhead.state == PlayState::Playing {
        let mut wanted: HashMap<u64, (u64, u64)> = HashMap::new();
        for e in &pending {
            if let Ok((_, f, entry)) = frames.get(e)
                && entry.last_use == tick.index
                && let Ok(asset) = assets.get(f.asset)
            {
                let g = asset.info.video.gop_of(f.index);
                let w = wanted.entry(f.asset_id).or_insert((g, g));
                *w = (w.0.min(g), w.1.max(g));
            }
        }
        let forward = playhead.direction() > 0;
        for e in &pending {
            let Ok((_, f, entry)) = frames.get(e) else {
                continue;
            };
            let (Some(&(lo, hi)), Ok(asset)) = (wanted.get(&f.asset_id), assets.get(f.asset))
            else {
                continue;
            };
            let g = asset.info.video.gop_of(f.index);
            let behind = if forward { g < lo } else { g > hi };
            if entry.last_use != tick.index && behind && f.state == FrameState::Requested {
                index.0.remove(&(f.asset_id, f.index));
                commands.entity(e).despawn();
                metrics.gave_up += 1;
            }
        }
    }
    let mut requested: Vec<(u64, u64, Entity)> = pending
        .iter()
        .filter_map(|e| frames.get(e).ok())
        .filter(|(_, f, _)| f.state == FrameState::Requested && f.generation == playhead.generation)
        // Nearest first; within a rank, earlier source frames first (a seek's keyframe before
        // the frame sought, on the same lane).
        .map(|(e, f, _)| (f.priority, f.index, e))
        .collect();
    requested.sort_unstable();
    for (_, _, e) in requested {
        let Ok((_, mut frame, entry)) = frames.get_mut(e) else {
            continue;
        };
        let cache_key = disk.is_some().then_some(entry.key);
        let Ok(asset) = assets.get(frame.asset) else {
            continue;
        };
        // Lane: asset + GOP, so a GOP's frames share one worker's decoder.
        let gop = asset.info.video.gop_of(frame.index);
        let mut lane = decode_lane(asset.id, gop);
        let workers = pool.0.workers().max(1) as u64;
        if let Ok(BesideLane(other)) = beside.get(e)
            && lane % workers == other % workers
        {
            lane = other.wrapping_add(1);
        }
        let job = DecodeJob {
            asset_id: asset.id,
            path: Arc::new(asset.path.clone()),
            frame: frame.index,
            generation: frame.generation,
            lane,
            cache_key,
        };
        let submitted = if frame.priority == 0 {
            pool.0.try_submit(job)
        } else {
            pool.0.try_submit_ahead(job)
        };
        if submitted.is_err() {
            continue; // that worker's queue is full: this one waits for the next tick
        }
        frame.state = FrameState::Decoding;
        commands.entity(e).remove::<Pending>();
    }
    metrics.decode_queue_depth = pool.0.in_flight();
}

/// A request or queued decode of an asset a clip just moved away from (see [`SwitchedFrom`]),
/// that no frame wanted this tick uses, is dropped (and withdrawn from the pool), so the
/// new candidate's frames do not wait behind it on its worker. (A job already running
/// finishes; its result finds no request and is dropped. Frames of a clip that merely
/// ended are left: they may still stand in for late frames.)
fn withdraw_unwanted(
    commands: &mut Commands,
    pool: &Decoders,
    (frames, switched): (&mut Query<(Entity, &mut Frame, &mut CacheEntry)>, &[Entity]),
    index: &mut FrameIndex,
    metrics: &mut Metrics,
    tick: u64,
) {
    let used: HashSet<u64> = frames
        .iter()
        .filter(|(_, _, entry)| entry.last_use == tick)
        .map(|(_, f, _)| f.asset_id)
        .collect();
    for (e, f, entry) in frames.iter() {
        let waiting = matches!(f.state, FrameState::Decoding | FrameState::Requested);
        if waiting
            && entry.last_use != tick
            && switched.contains(&f.asset)
            && !used.contains(&f.asset_id)
        {
            if f.state == FrameState::Decoding {
                pool.0.withdraw(f.asset_id, f.index, f.generation);
            }
            index.0.remove(&(f.asset_id, f.index));
            commands.entity(e).despawn();
            metrics.withdrawn += 1;
        }
    }
}
