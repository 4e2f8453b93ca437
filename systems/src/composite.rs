//! `composite` — stands aside when `effects` made the tick's picture ([`EffectsHandled`]);
//! reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`],
//! [`TimelineIndex`], [`Clip`], [`Lod`], [`EffectsKey`], [`MediaAsset`], [`ProxyAssets`],
//! [`FramePixels`], [`FrameIndex`], [`Memory`], [`DiskTier`]; writes [`CacheEntry`] (marks
//! what is on screen used), [`Composited`], [`RenderedFrames`], [`RenderCost`], [`Metrics`].
//!
//! Rendered frames: when the frame's composite is worth keeping (a layer has effects, or
//! compositing measured over half a frame period), it is looked up by its rendered key (the
//! output size and, per layer, the source's fingerprint and frame, the opacity and the clip's
//! effect-stack hash) in RAM, then among frames the disk tier answered; a new composite is
//! kept in RAM and written through to the disk tier (a write the busy writer cannot take yet is
//! retried on later ticks; only when every layer came from its
//! preferred source, so the key describes the picture exactly). Output pictures take their
//! planes from the buffer pools.
//!
//! Cache accounting happens here, when the tick needs the frame: once per shown timeline frame
//! (and playhead generation), each layer whose frame (or the same source frame of another
//! level of its clip) is decoded counts a hit and each one still missing a miss; a rendered
//! frame found whole counts one hit.
//!
//! CPU path: stacks the visible layers at the playhead, bottom first, each scaled to the output
//! size (or the playback resolution, `QualitySettings::preview_height`) and blended at its track's opacity (in Y'CbCr, per plane). A single opaque layer of the
//! output size is passed through without a copy. If any visible layer is not decoded yet, the
//! tick has no output (present drops or holds). A gap in the timeline is black. Per-tick
//! scratch (the layer list) lives in a bump arena reset every tick.

use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::prelude::*;
use bumpalo::Bump;
use framelock_components::{
    CacheEntry, Clip, EffectsKey, Lod, OutputFormat, Playhead, QualitySettings,
};
#[cfg(doc)]
use framelock_components::{MediaAsset, ProxyAssets};
use framelock_engine::media::{PixelFormat, YuvFrame};

use crate::cache::{Memory, RenderCost, RenderedFrames};
use crate::effects::EffectsHandled;
use crate::layers::{
    AssetQuery, Candidate, LayerKey, RENDERED_ASSET_ID, candidates, render_cacheable, rendered_key,
};
use crate::{
    Composited, DiskTier, FrameIndex, FramePixels, LayerSource, Metrics, PresentedFrame, Tick,
    TimelineIndex,
};

/// The rendered-cache side of composite's parameters.
type RenderParams<'w> = (
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
pub fn composite(
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    timeline: Res<TimelineIndex>,
    clips: Query<(&Clip, &Lod, Option<&EffectsKey>)>,
    assets: AssetQuery,
    pixels: Query<&FramePixels>,
    mut entries: Query<&mut CacheEntry>,
    index: Res<FrameIndex>,
    mut composited: ResMut<Composited>,
    (memory, mut rendered, mut cost, disk): RenderParams,
    (mut metrics, handled): (ResMut<Metrics>, Option<Res<EffectsHandled>>),
    (mut arena, mut counted): (Local<Bump>, Local<Option<(u64, u64)>>),
) {
    framelock_engine::profile_function!();
    arena.reset();
    if handled.is_some_and(|h| h.0) {
        return; // the effects system made this tick's picture (or is waiting for its layers)
    }
    composited.0 = None;
    if let Some(disk) = &disk {
        metrics.disk_writes_queued += rendered.retry_writes(disk);
    }
    let t = playhead.frame;
    let (w, h) = output.preview_size(quality.preview_height);
    let frame_period = 1.0 / output.frame_rate.as_f64().max(1e-9);
    let mut visible = Vec::new();
    timeline.visible_at(t, &mut visible);
    let mut sources: Vec<Candidate> = Vec::new();
    // What each layer wants: (clip entity, opacity, preferred source, source frame).
    let mut wanted = bumpalo::collections::Vec::new_in(&arena);
    let mut keys = bumpalo::collections::Vec::new_in(&arena);
    let mut any_effects = false;
    for &(clip_entity, opacity) in &visible {
        let Ok((clip, lod, effects)) = clips.get(clip_entity) else {
            return;
        };
        candidates(clip, *lod, &assets, &mut sources);
        let Some(&first) = sources.first() else {
            return;
        };
        let source = clip.source_frame(t, output.frame_rate);
        any_effects |= effects.is_some();
        keys.push(LayerKey {
            fingerprint: first.fingerprint,
            source,
            opacity,
            effects: effects.map_or(0, |e| e.0),
        });
        wanted.push((clip_entity, clip.track, opacity, first, source));
    }
    let layer_sources = || -> Vec<LayerSource> {
        wanted
            .iter()
            .map(|&(_, track, _, first, source)| LayerSource {
                track,
                asset_id: first.id,
                source_frame: source,
            })
            .collect()
    };
    // The rendered tiers first: RAM, then a frame the disk tier answered.
    let cacheable =
        !keys.is_empty() && render_cacheable(any_effects, cost.composite_secs, frame_period);
    let key = cacheable.then(|| rendered_key(w, h, None, &keys));
    if let Some(key) = key {
        let from_disk = || {
            let &e = index.0.get(&(RENDERED_ASSET_ID, key.0))?;
            Some(pixels.get(e).ok()?.0.clone())
        };
        let hit = rendered.get(key).or_else(|| {
            let p = from_disk()?;
            rendered.insert(key, p.clone());
            Some(p)
        });
        if let Some(picture) = hit {
            if *counted != Some((t, playhead.generation)) {
                *counted = Some((t, playhead.generation));
                metrics.cache_hits += 1;
            }
            composited.0 = Some(PresentedFrame {
                timeline_frame: t,
                tick: tick.index,
                picture,
                layers: layer_sources(),
                repeated: false,
                effect_lod: None,
            });
            return;
        }
    }

    let mut layers = bumpalo::collections::Vec::new_in(&arena);
    let mut all_preferred = true;
    let mut missing = 0u64;
    for &(clip_entity, track, opacity, _, source) in &wanted {
        let Ok((clip, lod, _)) = clips.get(clip_entity) else {
            return;
        };
        candidates(clip, *lod, &assets, &mut sources);
        let found = sources.iter().enumerate().find_map(|(i, c)| {
            let &e = index.0.get(&(c.id, source))?;
            Some((i, e, c.id, pixels.get(e).ok()?))
        });
        let Some((rank, e, asset_id, px)) = found else {
            missing += 1;
            continue;
        };
        all_preferred &= rank == 0;
        if let Ok(mut entry) = entries.get_mut(e) {
            entry.last_use = tick.index;
        }
        layers.push((
            LayerSource {
                track,
                asset_id,
                source_frame: source,
            },
            opacity,
            px.0.clone(),
        ));
    }
    if *counted != Some((t, playhead.generation)) {
        *counted = Some((t, playhead.generation));
        metrics.cache_hits += layers.len() as u64;
        metrics.cache_misses += missing;
    }
    if missing > 0 {
        return; // still decoding: no output this tick
    }

    let pool = Some(&memory.0);
    let picture = match layers.as_slice() {
        [(_, opacity, px)]
            if *opacity >= 1.0
                && px.width == w
                && px.height == h
                && px.format == PixelFormat::Yuv420p =>
        {
            px.clone()
        }
        _ => {
            let start = Instant::now();
            let mut out = YuvFrame::black_in(pool, w, h);
            for (_, opacity, px) in &layers {
                let scaled;
                let src: &YuvFrame =
                    if px.width == w && px.height == h && px.format == PixelFormat::Yuv420p {
                        px
                    } else {
                        match px.scaled_in(pool, w, h) {
                            Some(s) if s.format == PixelFormat::Yuv420p => {
                                scaled = s;
                                &scaled
                            }
                            // 10-bit or non-4:2:0 layers need the GPU path (a later issue).
                            _ => continue,
                        }
                    };
                blend(&mut out, src, *opacity);
            }
            out.index = t;
            cost.record(start.elapsed().as_secs_f64());
            let out = Arc::new(out);
            if let Some(key) = key.filter(|_| all_preferred) {
                metrics.disk_writes_queued +=
                    u64::from(rendered.keep(key, out.clone(), disk.as_deref()));
            }
            out
        }
    };
    composited.0 = Some(PresentedFrame {
        timeline_frame: t,
        tick: tick.index,
        picture,
        layers: layers.iter().map(|(s, _, _)| *s).collect(),
        repeated: false,
        effect_lod: None,
    });
}

/// `dst = dst * (1 - a) + src * a`, per plane, same size and format.
fn blend(dst: &mut YuvFrame, src: &YuvFrame, opacity: f32) {
    if opacity >= 1.0 {
        for (d, s) in dst.planes.iter_mut().zip(&src.planes) {
            d.copy_from_slice(s);
        }
        return;
    }
    let a = (opacity.clamp(0.0, 1.0) * 256.0) as u32;
    for (d, s) in dst.planes.iter_mut().zip(&src.planes) {
        for (dv, &sv) in d.iter_mut().zip(s) {
            *dv = ((u32::from(*dv) * (256 - a) + u32::from(sv) * a) >> 8) as u8;
        }
    }
}
