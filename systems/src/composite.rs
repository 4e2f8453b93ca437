//! `composite` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`], [`TimelineIndex`], [`Clip`],
//! [`Lod`], [`MediaAsset`], [`ProxyAssets`], [`Frame`], [`FramePixels`], [`FrameIndex`]; writes [`CacheEntry`] (pins
//! what is on screen), [`Composited`].
//!
//! CPU path: stacks the visible layers at the playhead, bottom first, each scaled to the output
//! size (or the playback resolution, `QualitySettings::preview_height`) and blended at its track's opacity (in Y'CbCr, per plane). A single opaque layer of the
//! output size is passed through without a copy. If any visible layer is not decoded yet, the
//! tick has no output (present drops or holds). A gap in the timeline is black. Per-tick
//! scratch (the layer list) lives in a bump arena reset every tick.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bumpalo::Bump;
use framelock_components::{CacheEntry, Clip, Lod, OutputFormat, Playhead, QualitySettings};
#[cfg(doc)]
use framelock_components::{MediaAsset, ProxyAssets};
use framelock_engine::media::{PixelFormat, YuvFrame};

use crate::layers::{AssetQuery, candidates};
use crate::{
    Composited, FrameIndex, FramePixels, LayerSource, PresentedFrame, Tick, TimelineIndex,
};

/// The system.
pub fn composite(
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    timeline: Res<TimelineIndex>,
    clips: Query<(&Clip, &Lod)>,
    assets: AssetQuery,
    pixels: Query<&FramePixels>,
    mut entries: Query<&mut CacheEntry>,
    index: Res<FrameIndex>,
    mut composited: ResMut<Composited>,
    mut arena: Local<Bump>,
) {
    framelock_engine::profile_function!();
    arena.reset();
    composited.0 = None;
    let t = playhead.frame;
    let mut visible = Vec::new();
    timeline.visible_at(t, &mut visible);
    let mut layers = bumpalo::collections::Vec::new_in(&arena);
    let mut sources = Vec::new();
    for &(clip_entity, opacity) in &visible {
        let Ok((clip, lod)) = clips.get(clip_entity) else {
            return;
        };
        candidates(clip, *lod, &assets, &mut sources);
        let source = clip.source_frame(t, output.frame_rate);
        let found = sources.iter().find_map(|&(_, id, _)| {
            let &e = index.0.get(&(id, source))?;
            Some((e, id, pixels.get(e).ok()?))
        });
        let Some((e, asset_id, px)) = found else {
            return; // still decoding: no output this tick
        };
        if let Ok(mut entry) = entries.get_mut(e) {
            entry.last_use = tick.index;
        }
        layers.push((
            LayerSource {
                track: clip.track,
                asset_id,
                source_frame: source,
            },
            opacity,
            px.0.clone(),
        ));
    }

    let (w, h) = output.preview_size(quality.preview_height);
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
            let mut out = YuvFrame::black(w, h);
            for (_, opacity, px) in &layers {
                let scaled;
                let src: &YuvFrame =
                    if px.width == w && px.height == h && px.format == PixelFormat::Yuv420p {
                        px
                    } else {
                        match px.scaled(w, h) {
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
            Arc::new(out)
        }
    };
    composited.0 = Some(PresentedFrame {
        timeline_frame: t,
        tick: tick.index,
        picture,
        layers: layers.iter().map(|(s, _, _)| *s).collect(),
        repeated: false,
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
