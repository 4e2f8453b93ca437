//! `lod_select` — reads [`Clip`], [`HasEffects`], [`MediaAsset`], [`ProxyAssets`],
//! [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`ProxyService`] (thresholds),
//! [`DecodeLoad`], [`Decoders`], [`TimelineIndex`], [`Pressure`], [`AdaptiveQuality`]; writes
//! [`Lod`], [`SwitchedFrom`] (the candidates it moved clips away from).
//!
//! Chooses, per clip near the playhead and tick, whether it decodes from its original or from
//! one of its ready proxies:
//!
//! - mode: `effects` if the clip has effects, else `playback` while playing, else `editing`
//!   (paused, scrubbing); the strategy's threshold for that mode is a picture height.
//! - `use_proxy: never` → original. `always` → the tallest ready proxy within the threshold
//!   (the smallest one if none is within it), the original while none is ready.
//! - `auto` → a proxy (chosen as for `always`) when the original is taller than the threshold.
//!   Otherwise the original. Load: with the quality controller on (`auto_reduce_quality`),
//!   load is its job — a rung with a lower playback resolution caps the threshold (below) and
//!   it steps back up when the machine has headroom again. With the controller off, a proxy
//!   is also chosen when the measured load says the original cannot keep up (its decode time
//!   per frame × the visible layers exceeds the frame period × decode workers); once a clip
//!   is on a proxy for load the original is no longer decoded, so its measured cost stays as
//!   last seen: that choice sticks until the settings change (no flapping).
//! - a playback resolution lowered by the quality controller caps every mode's threshold at
//!   the picture's height (a proxy no taller than the picture is enough).
//! - memory pressure critical (and `use_proxy` not `never`) → the smallest ready proxy:
//!   fewer bytes per frame until the pressure passes.
//!
//! Switching never moves the picture: proxy frame N is source frame N, and composite shows
//! whichever of the two is decoded for the current frame while the other catches up.

use bevy_ecs::prelude::*;
use framelock_components::{
    AdaptiveQuality, AutoSwitchThresholds, Clip, EditMode, HasEffects, Lod, MediaAsset,
    OutputFormat, PlayState, Playhead, Pressure, ProxyAssets, QualitySettings, UseProxy,
};

use crate::{DecodeLoad, Decoders, ProxyService, SwitchedFrom, TimelineIndex};

/// The system.
pub fn lod_select(
    quality: Res<QualitySettings>,
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    load: Res<DecodeLoad>,
    decoders: Res<Decoders>,
    timeline: Res<TimelineIndex>,
    service: Option<Res<ProxyService>>,
    (pressure, adaptive, mut switched): (
        Res<Pressure>,
        Res<AdaptiveQuality>,
        Option<ResMut<SwitchedFrom>>,
    ),
    assets: Query<(&MediaAsset, Option<&ProxyAssets>)>,
    mut clips: Query<(&Clip, &mut Lod, Has<HasEffects>)>,
) {
    framelock_engine::profile_function!();
    let mut thresholds = service
        .as_ref()
        .map(|s| s.strategy.auto_switch_thresholds)
        .unwrap_or_default();
    // A lowered playback resolution (the quality controller) is a lower threshold: a ready
    // proxy no taller than the picture is decoded instead of the original.
    if adaptive.step.divisor > 1
        && let Some(h) = adaptive.preview_height
    {
        thresholds = thresholds.capped(h);
    }
    let mut visible = Vec::new();
    timeline.visible_at(playhead.frame, &mut visible);
    let layers = visible.len().max(1) as f64;
    let frame_period = 1.0 / output.frame_rate.as_f64().max(1e-9);
    let workers = decoders.0.workers().max(1) as f64;
    // Only clips prefetch or composite can touch in this tick: those overlapping the
    // playhead ± the prefetch reach. Others keep their level until they come near (this
    // system runs before prefetch every tick), so a 10-hour timeline costs what its
    // neighbourhood does.
    let reach = (quality.prefetch_frames as f64 * playhead.rate.abs().max(1.0)).ceil() as u64 + 1;
    let lo = playhead.frame.saturating_sub(reach);
    let hi = playhead.frame.saturating_add(reach);
    // (No load rule while the controller handles load: see the module doc.)
    let cost_factor = if quality.auto_reduce_quality {
        0.0
    } else {
        layers * playhead.rate.abs().max(1.0) / (frame_period * workers)
    };
    for track in &timeline.tracks {
        // Clips are sorted by start and do not overlap, so their ends are sorted too.
        let first = track.clips.partition_point(|&(_, end, _)| end <= lo);
        for &(start, _, entity) in &track.clips[first..] {
            if start > hi {
                break;
            }
            let Ok((clip, mut lod, has_effects)) = clips.get_mut(entity) else {
                continue;
            };
            let mode = if has_effects {
                EditMode::Effects
            } else if playhead.state == PlayState::Playing {
                EditMode::Playback
            } else {
                EditMode::Editing
            };
            let want = if *pressure == Pressure::Critical {
                smallest_proxy(clip, quality.use_proxy, &assets)
            } else {
                choose(
                    clip,
                    mode,
                    &thresholds,
                    quality.use_proxy,
                    &assets,
                    &load,
                    cost_factor,
                )
            };
            if *lod != want {
                if let Some(switched) = switched.as_mut() {
                    switched.0.push(match *lod {
                        Lod::Original => clip.asset,
                        Lod::Proxy { asset, .. } => asset,
                    });
                }
                *lod = want;
            }
        }
    }
}

/// The smallest ready proxy (original if none, or with `never`).
fn smallest_proxy(
    clip: &Clip,
    use_proxy: UseProxy,
    assets: &Query<(&MediaAsset, Option<&ProxyAssets>)>,
) -> Lod {
    if use_proxy == UseProxy::Never {
        return Lod::Original;
    }
    let Ok((_, Some(proxies))) = assets.get(clip.asset) else {
        return Lod::Original;
    };
    proxies
        .0
        .iter()
        .find(|&&(_, _, e)| assets.contains(e))
        .map_or(Lod::Original, |&(height, _, asset)| Lod::Proxy {
            asset,
            height,
        })
}

/// `cost_factor` turns seconds per frame into a share of the decode capacity.
fn choose(
    clip: &Clip,
    mode: EditMode,
    thresholds: &AutoSwitchThresholds,
    use_proxy: UseProxy,
    assets: &Query<(&MediaAsset, Option<&ProxyAssets>)>,
    load: &DecodeLoad,
    cost_factor: f64,
) -> Lod {
    let Ok((original, Some(proxies))) = assets.get(clip.asset) else {
        return Lod::Original;
    };
    if use_proxy == UseProxy::Never {
        return Lod::Original;
    }
    // Ready proxies, shortest first (the list is kept sorted by height).
    let mut ready = proxies
        .0
        .iter()
        .filter(|&&(_, _, e)| assets.contains(e))
        .map(|&(h, _, e)| (h, e));
    let limit = thresholds.for_mode(mode);
    let Some(smallest) = ready.next() else {
        return Lod::Original;
    };
    let (height, asset) = ready.rfind(|&(h, _)| h <= limit).unwrap_or(smallest);
    let best = Lod::Proxy { asset, height };
    if use_proxy == UseProxy::Always {
        return best;
    }
    let too_tall = original.info.video.height > limit;
    let overloaded = load
        .seconds_per_frame(original.id)
        .is_some_and(|s| s * cost_factor > 1.0);
    if too_tall || overloaded {
        best
    } else {
        Lod::Original
    }
}
