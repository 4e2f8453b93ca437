//! `render` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`],
//! [`Pressure`], [`RenderMode`], [`TimelineIndex`], [`Clip`], [`Lod`], [`EffectsKey`],
//! [`EffectStack`], [`MediaAsset`], [`ProxyAssets`], [`FramePixels`], [`FrameIndex`],
//! [`Memory`], [`DiskTier`]; writes [`CacheEntry`] (marks what is used), [`Composited`],
//! [`RenderedFrames`], [`RenderCost`], [`RenderState`], [`Renderer`] (its traffic),
//! [`Metrics`].
//!
//! Each tick, in order: collect the pictures the render service finished (into the rendered
//! RAM tier, written through to the disk tier when worth keeping) and the reads the disk tier
//! answered; make this tick's picture (see the [module doc](super)); render ahead.
//!
//! Cache accounting happens here, when the tick needs the frame: once per shown timeline frame
//! (and playhead generation), each layer whose frame (or the same source frame of another
//! level of its clip) is decoded counts a hit and each one still missing a miss; a rendered
//! frame found whole counts one hit.

use bevy_ecs::prelude::*;
use framelock_components::{
    AdaptiveQuality, CacheEntry, CacheKey, EffectLod, MemoryBudget, OutputFormat, PlayState,
    Playhead, Pressure, QualitySettings,
};
#[cfg(doc)]
use framelock_components::{Clip, EffectStack, EffectsKey, Lod, MediaAsset, ProxyAssets};
use framelock_engine::render::{OutputPixels, RenderPath, Work};

use super::gather::{AssetQuery, ClipQuery, Found, FrameLayers};
use super::work::{Submit, build, keyed, layer_sources, make, presented, submit, trivial_picture};
use super::{RenderMode, RenderState, Renderer, next_lod};
use crate::cache::{Memory, RenderCost, RenderedFrames};
use crate::{
    Composited, DiskTier, FrameIndex, FramePixels, LayerSource, Metrics, Tick, TimelineIndex,
};

/// Per-tick scratch, reused.
#[derive(Default)]
pub struct Scratch {
    frame: FrameLayers,
    found: Vec<Found>,
    /// (timeline frame, generation, edits) last counted in the cache statistics.
    counted: Option<(u64, u64, u64)>,
}

/// The tick's frame: where, what size and quality, under what pressure, in which mode.
type FrameParams<'w> = (
    Res<'w, Playhead>,
    Res<'w, OutputFormat>,
    Res<'w, QualitySettings>,
    Res<'w, Tick>,
    Option<Res<'w, Pressure>>,
    Option<Res<'w, RenderMode>>,
    Option<Res<'w, MemoryBudget>>,
);

/// The rendered-tier resources.
type Tiers<'w> = (
    Res<'w, Memory>,
    ResMut<'w, RenderedFrames>,
    ResMut<'w, RenderCost>,
    Option<Res<'w, DiskTier>>,
);

/// The system.
#[allow(
    clippy::too_many_arguments,
    reason = "a system's parameters are its declared data access"
)]
pub fn render(
    (playhead, output, quality, tick, pressure, mode, budget): FrameParams,
    (timeline, clips, assets): (Res<TimelineIndex>, ClipQuery, AssetQuery),
    pixels: Query<&FramePixels>,
    mut entries: Query<&mut CacheEntry>,
    index: Res<FrameIndex>,
    mut composited: ResMut<Composited>,
    (memory, mut rendered, mut cost, disk): Tiers,
    (mut state, mut renderer, adaptive): (
        ResMut<RenderState>,
        ResMut<Renderer>,
        Res<AdaptiveQuality>,
    ),
    mut metrics: ResMut<Metrics>,
    mut scratch: Local<Scratch>,
) {
    framelock_engine::profile_function!();
    composited.0 = None;
    let offline = mode.is_some_and(|m| *m == RenderMode::Offline);
    let pressure = pressure.as_deref().copied().unwrap_or_default();
    let period = 1.0 / output.frame_rate.as_f64().max(1e-9);
    // The highest LOD now: the host's, or the quality controller's cap below it.
    let highest = adaptive.effect_lod(&quality);
    if state.counts.lod.divisor() < highest.divisor() || !quality.adaptive_effect_lod || offline {
        state.counts.lod = highest;
    }

    // Pictures the service finished.
    for done in renderer.0.try_collect() {
        let Some(f) = state.in_flight.remove(&done.ticket) else {
            continue;
        };
        if let Some(e) = done.gpu_error {
            state.counts.gpu_errors += 1;
            state.last_error = Some(e);
        }
        let picture = match done.result {
            Ok(p) => p,
            Err(e) => {
                state.counts.render_errors += 1;
                state.last_error = Some(e.to_string());
                continue;
            }
        };
        if f.effects {
            match done.path {
                RenderPath::Gpu => state.counts.gpu_frames += 1,
                RenderPath::Cpu => state.counts.cpu_frames += 1,
            }
            state.counts.last_render_ms = done.secs * 1e3;
            state.effects_latency = if state.effects_latency == 0.0 {
                done.secs
            } else {
                state.effects_latency + (done.secs - state.effects_latency) / 8.0
            };
            // Playing only: the LOD keeps up with the clock, and paused renders (the frame at
            // the playhead, beside the GPU path's calibration at open) say nothing of that.
            // From zero, so the first second of play weighs in gradually.
            if quality.adaptive_effect_lod && !offline && playhead.state == PlayState::Playing {
                state.lod_latency += (done.secs - state.lod_latency) / 32.0;
                // Frames render in parallel: the throughput per frame is what must fit.
                let parallel = match done.path {
                    RenderPath::Cpu => renderer.0.cpu_workers(),
                    RenderPath::Gpu => renderer.0.gpu_frames_in_flight(),
                };
                // A slow moving average, not the frame: one slow frame (a neighbour's spike
                // on a shared machine, the burst at the start of play) is no load to give up
                // quality for.
                let secs = state.lod_latency / parallel.max(1) as f64;
                state.counts.lod = next_lod(state.counts.lod, highest, secs, period, pressure);
            }
        } else {
            state.counts.composites += 1;
            cost.record(done.secs);
        }
        if f.keep_on_disk {
            metrics.disk_writes_queued += u64::from(rendered.keep(f.key, picture, disk.as_deref()));
        } else {
            rendered.hold(f.key, picture);
        }
        // Finished after the playhead passed its frame: a stand-in for a late one.
        let dir = playhead.direction();
        if !offline
            && !f.stale
            && before(f.frame.0, playhead.frame, dir)
            && after_shown(f.frame, state.shown, &playhead)
            && state
                .passed
                .as_ref()
                .is_none_or(|p| before(p.frame.0, f.frame.0, dir))
        {
            state.passed = Some(super::Passed {
                key: f.key,
                frame: f.frame,
                sources: f.sources,
            });
        }
    }
    if let Some(disk) = &disk {
        metrics.disk_reads += rendered.collect_disk_reads(disk);
        metrics.disk_writes_queued += rendered.retry_writes(disk);
    }

    let size = adaptive.preview_size(&output);
    let lod = state.counts.lod;
    let pixels_out = state.output;
    let allow_gpu = quality.gpu_acceleration;
    let Scratch {
        frame,
        found,
        counted,
    } = &mut *scratch;

    // This tick's picture.
    let t = playhead.frame;
    let playing = playhead.state == PlayState::Playing && !offline;
    let mut shown_now = false;
    if playhead.duration > 0 && frame.gather(t, &output, &timeline, &clips, &assets) {
        shown_now = true;
        let at = Some(playhead.picture_key());
        let first_count = *counted != at;
        *counted = at;
        let effect_lod = frame.any_stack.then_some(lod);
        let key = frame.key(size, lod, pixels_out);
        // Rendered ahead before the last change of playback resolution: the same frame, at
        // the size (and any LOD) of then.
        let mut hit = rendered.get(key).map(|p| (p, key));
        if hit.is_some() && offline && first_count && rendered.made_elsewhere(key) {
            state.counts.from_tiers += 1;
        }
        // Offline (an export in 4:2:0), an effects frame's RGBA twin kept by playback or
        // background render: converted here, it is the picture this frame's render would make.
        if hit.is_none()
            && offline
            && let Some(twin) = frame.rgba_twin_key(size, lod, pixels_out)
            && let Some(rgba) = rendered.get(twin)
        {
            let pool = Some(&memory.0);
            hit = Some((pixels_out.convert(rgba, pool), key));
            state.counts.from_twins += 1;
        }
        if hit.is_none()
            && let Some(height) = adaptive.previous_height
        {
            let size = output.preview_size(height);
            hit = [EffectLod::Full, EffectLod::Half, EffectLod::Quarter]
                .into_iter()
                .find_map(|lod| {
                    let k = frame.key(size, lod, pixels_out);
                    rendered.get(k).map(|p| (p, k))
                });
        }
        // Rendered at full quality (by background render): better than what this tick would
        // make at a reduced size or effect LOD, and it costs nothing to show. (Without this,
        // a quality step down under load missed every background-rendered frame and rendered
        // them again, which kept the load up.)
        if hit.is_none() && !offline {
            let full = full_quality_key(frame, &output, &quality, pixels_out);
            if full != key {
                hit = rendered.get(full).map(|p| (p, full));
            }
        }
        if let Some((picture, hit_key)) = hit {
            if first_count {
                metrics.cache_hits += 1;
            }
            let preferred: Vec<LayerSource> = frame
                .layers
                .iter()
                .map(|l| LayerSource {
                    track: l.track,
                    asset_id: l.preferred().id,
                    source_frame: l.source,
                })
                .collect();
            composited.0 = Some(keyed(
                presented(t, tick.index, picture, preferred, false, true, effect_lod),
                hit_key,
            ));
        } else {
            let missing = frame.find_decoded(&index, &pixels, offline, found);
            if first_count {
                metrics.cache_hits += found.len() as u64;
                metrics.cache_misses += missing;
            }
            if missing == 0 {
                for f in found.iter() {
                    if let Ok(mut entry) = entries.get_mut(f.entity) {
                        entry.last_use = tick.index;
                    }
                }
                let actual = frame.key_from(size, lod, pixels_out, found);
                let mut work = None;
                let picture =
                    if let Some(p) = (actual != key).then(|| rendered.get(actual)).flatten() {
                        Some(p)
                    } else if state.is_in_flight(actual) {
                        None
                    } else {
                        let w = build(frame, found, size, lod, &clips);
                        let trivial = trivial_picture(&w, &memory, pixels_out);
                        work = Some(w);
                        trivial
                    };
                match picture {
                    Some(picture) => {
                        let sources = layer_sources(frame, found);
                        // A proxy's frame standing in for the original's (a seek's first
                        // picture) is the right frame at a lower resolution: not exact.
                        let exact = found
                            .iter()
                            .zip(&frame.layers)
                            .all(|(f, l)| f.candidate.height >= l.preferred().height);
                        composited.0 = Some(keyed(
                            presented(t, tick.index, picture, sources, false, exact, effect_lod),
                            actual,
                        ));
                    }
                    None => {
                        // Late: it is being (or now will be) rendered. Playing, a frame whose
                        // render takes longer than a frame period cannot make it: render-ahead
                        // aims further ahead instead.
                        metrics.render_late += 1;
                        let hopeless = playing && latency(frame, &state, &cost) > period;
                        if let Some(work) = work.filter(|_| !hopeless) {
                            let keep = frame.kept_rendered(cost.composite_secs, period);
                            let sources = layer_sources(frame, found);
                            let at = (t, playhead.generation);
                            let job = Submit {
                                work,
                                key: actual,
                                keep,
                                at,
                                sources,
                            };
                            submit(&mut renderer, &mut state, job, allow_gpu);
                        }
                    }
                }
            }
        }
    }

    // Not ready: playing, the newest picture of a frame passed since the last one shown
    // (at most a second back) stands in (a render finished late, or layers decoded late), so the picture moves at
    // the rate the machine manages instead of freezing; after a seek (or paused), the
    // nearest decoded picture of the same sources (the keyframe the seek asked for first)
    // stands in until the exact frame is decoded.
    if shown_now && composited.0.is_none() && !offline {
        // (Not before a frame of this generation is shown: a walk back from a seek's
        // target would land before it.)
        let continuing = state.shown.is_some_and(|(_, g)| g == playhead.generation);
        let walk_back = playing && !playhead.fresh && continuing;
        if walk_back
            && let Some(p) = state.passed.take()
            && after_shown(p.frame, state.shown, &playhead)
            && let Some(picture) = rendered.get(p.key)
        {
            let effect_lod = frame.any_stack.then_some(lod);
            composited.0 = Some(keyed(
                presented(
                    p.frame.0, tick.index, picture, p.sources, true, true, effect_lod,
                ),
                p.key,
            ));
        } else {
            // The stand-in's (timeline frame, late, exact), its layers gathered in `frame`
            // and found in `found`.
            let stand_in = if walk_back {
                let dir = playhead.direction();
                let reach = output.frame_rate.as_f64().ceil().max(1.0) as i64;
                (1..=reach)
                    .map(|k| t as i64 - dir * k)
                    .take_while(|&t2| {
                        t2 >= 0
                            && after_shown((t2 as u64, playhead.generation), state.shown, &playhead)
                    })
                    .map(|t2| t2 as u64)
                    .find(|&t2| {
                        frame.gather(t2, &output, &timeline, &clips, &assets)
                            && frame.find_decoded(&index, &pixels, false, found) == 0
                    })
                    .map(|t2| (t2, true, true))
            } else {
                let (missing, exact) = frame.find_nearest(&index, &pixels, &assets, found);
                (missing == 0 && !exact).then_some((t, false, false))
            };
            if let Some((shown_t, late, exact)) = stand_in
                && let Some(picture) = make(
                    frame,
                    found,
                    (shown_t, playhead.generation),
                    &mut renderer,
                    &mut state,
                    &mut rendered,
                    &memory,
                    &clips,
                    (size, lod, allow_gpu),
                )
            {
                let sources = layer_sources(frame, found);
                let effect_lod = frame.any_stack.then_some(lod);
                let key = frame.key_from(size, lod, pixels_out, found);
                composited.0 = Some(keyed(
                    presented(
                        shown_t, tick.index, picture, sources, late, exact, effect_lod,
                    ),
                    key,
                ));
            }
        }
    }
    if let Some(f) = &composited.0 {
        state.shown = Some((f.timeline_frame, playhead.generation));
    }

    // Render ahead: the next frames whose layers are decoded. Under memory pressure the
    // pictures made ahead take room from the frames the playhead needs: at the warning level
    // at most a sixteenth of the budget of them, at critical none.
    // Paused with the current frame on screen: a pre-roll of the next frames with effects
    // (prefetch decodes them), so pressing play starts from pictures made, not from an empty
    // pipeline whose first frames would come too late.
    let preroll = playhead.state == PlayState::Paused
        && !offline
        && quality.preroll_frames > 0
        && state.shown == Some((t, playhead.generation));
    if playhead.state != PlayState::Playing && !offline && !preroll {
        return;
    }
    let mut ahead = if preroll {
        quality.preroll_frames.min(quality.prefetch_frames)
    } else {
        quality.prefetch_frames.max(1)
    };
    if !offline {
        let px = size.0 as u64 * size.1 as u64;
        let bytes = match frame.picture_format(pixels_out) {
            framelock_engine::media::PixelFormat::Rgba8 => px * 4,
            _ => px * 3 / 2,
        };
        match pressure {
            Pressure::Normal => {}
            Pressure::Warning => {
                let room = budget.as_ref().map_or(0, |b| b.max_memory as u64 / 16);
                ahead = ahead.min(room / bytes.max(1));
            }
            Pressure::Critical => ahead = 0,
        }
    }
    let dir = playhead.direction();
    let step =
        playhead.rate.abs().ceil().max(1.0) as i64 * quality.frame_stride(output.frame_rate) as i64;
    // Lead the playhead by the measured render latency: a frame due sooner cannot be ready.
    // At most half the prefetch window ahead, so the frames aimed at are already decoded.
    let window = quality.prefetch_frames.max(1);
    let lead = if offline || !frame.any_stack || preroll {
        1
    } else {
        ((state.effects_latency / period).ceil() as u64).clamp(1, (window / 2).max(1))
    };
    let last = (lead + ahead).saturating_sub(1).min(window);
    for k in lead as i64..=last as i64 {
        if !renderer.0.has_capacity() {
            break;
        }
        let t2 = t as i64 + dir * k * step;
        if t2 < 0 || t2 as u64 >= playhead.duration {
            break;
        }
        if !frame.gather(t2 as u64, &output, &timeline, &clips, &assets)
            || (preroll && !frame.any_stack)
        {
            continue;
        }
        let key = frame.key(size, lod, pixels_out);
        if rendered.touch(key) || state.is_in_flight(key) {
            continue;
        }
        // Kept at full quality (by background render): shown instead (above), so not made
        // again at the reduced size or LOD.
        let full = full_quality_key(frame, &output, &quality, pixels_out);
        if !offline && full != key && rendered.touch(full) {
            continue;
        }
        if frame.find_decoded(&index, &pixels, true, found) > 0 {
            continue;
        }
        let work = build(frame, found, size, lod, &clips);
        if let Work::Ycbcr(job) = &work
            && job.is_trivial()
            && pixels_out != OutputPixels::Rgba8
        {
            continue;
        }
        let keep = frame.kept_rendered(cost.composite_secs, period);
        let sources = layer_sources(frame, found);
        let job = Submit {
            work,
            key,
            keep,
            at: (t2 as u64, playhead.generation),
            sources,
        };
        if submit(&mut renderer, &mut state, job, allow_gpu) {
            state.counts.rendered_ahead += 1;
        }
    }
}

/// The key of `frame`'s picture at full quality: the output size, the host's effect LOD.
fn full_quality_key(
    frame: &FrameLayers,
    output: &OutputFormat,
    quality: &QualitySettings,
    pixels_out: OutputPixels,
) -> CacheKey {
    frame.key(
        (output.width, output.height),
        quality.effect_lod,
        pixels_out,
    )
}

/// Seconds `frame`'s picture takes to render (measured, moving averages).
fn latency(frame: &FrameLayers, state: &RenderState, cost: &RenderCost) -> f64 {
    if frame.any_stack {
        state.effects_latency
    } else {
        cost.composite_secs
    }
}

/// Whether `frame` (timeline frame, generation) is of the playhead's generation and comes
/// after the last frame shown in it.
fn after_shown(frame: (u64, u64), shown: Option<(u64, u64)>, playhead: &Playhead) -> bool {
    frame.1 == playhead.generation
        && shown.is_none_or(|(t, g)| g != frame.1 || before(t, frame.0, playhead.direction()))
}

/// Whether timeline frame `a` comes before `b` when playing in direction `dir`.
fn before(a: u64, b: u64, dir: i64) -> bool {
    if dir < 0 { a > b } else { a < b }
}
