//! Making a frame's picture: the work that composites (or renders the effects of) its
//! layers, made at once when it is a pass-through, else handed to the render service; and the
//! [`PresentedFrame`] it becomes.

use std::sync::Arc;

use framelock_components::EffectLod;
use framelock_engine::effects::{LayerJob, RenderJob};
use framelock_engine::media::Picture;
use framelock_engine::render::{CompositeJob, CompositeLayer, OutputPixels, Work, ycbcr};

use super::gather::{ClipQuery, Found, FrameLayers};
use super::{InFlight, RenderState, Renderer};
use crate::cache::{Memory, RenderedFrames};
use crate::{LayerSource, PresentedFrame};

/// A presented frame.
pub(super) fn presented(
    t: u64,
    tick: u64,
    picture: Arc<Picture>,
    layers: Vec<LayerSource>,
    late: bool,
    exact: bool,
    effect_lod: Option<EffectLod>,
) -> PresentedFrame {
    PresentedFrame {
        timeline_frame: t,
        tick,
        picture,
        layers,
        repeated: false,
        late,
        exact,
        effect_lod,
        content_key: None,
    }
}

/// `frame` with the content key of its picture.
pub(super) fn keyed(
    mut frame: PresentedFrame,
    key: framelock_components::CacheKey,
) -> PresentedFrame {
    frame.content_key = Some(key);
    frame
}

/// The picture of a one-layer pass-through (or a gap), made at once; `None` for real work.
pub(super) fn trivial_picture(
    work: &Work,
    memory: &Memory,
    pixels_out: OutputPixels,
) -> Option<Arc<Picture>> {
    match work {
        Work::Ycbcr(job) if job.is_trivial() => {
            let p = ycbcr::composite(job, Some(&memory.0));
            pixels_out.accepts(&p).then_some(p)
        }
        _ => None,
    }
}

/// A stand-in's picture from `found`: kept already, or trivial (made now); otherwise it is
/// submitted (unless in flight) and `None` — a later tick shows it when it is done.
#[allow(
    clippy::too_many_arguments,
    reason = "the render path's pieces, borrowed from the system"
)]
pub(super) fn make(
    frame: &FrameLayers,
    found: &[Found],
    at: (u64, u64),
    renderer: &mut Renderer,
    state: &mut RenderState,
    rendered: &mut RenderedFrames,
    memory: &Memory,
    clips: &ClipQuery,
    (size, lod, allow_gpu): ((u32, u32), EffectLod, bool),
) -> Option<Arc<Picture>> {
    let pixels_out = state.output;
    let key = frame.key_from(size, lod, pixels_out, found);
    if let Some(p) = rendered.get(key) {
        return Some(p);
    }
    if state.is_in_flight(key) {
        return None;
    }
    let work = build(frame, found, size, lod, clips);
    if let Some(p) = trivial_picture(&work, memory, pixels_out) {
        return Some(p);
    }
    let job = Submit {
        work,
        key,
        keep: false,
        at,
        sources: layer_sources(frame, found),
    };
    submit(renderer, state, job, allow_gpu);
    None
}

/// The work that makes `frame` from `found`.
pub(super) fn build(
    frame: &FrameLayers,
    found: &[Found],
    (width, height): (u32, u32),
    lod: EffectLod,
    clips: &ClipQuery,
) -> Work {
    if frame.any_stack {
        let layers = frame
            .layers
            .iter()
            .zip(found)
            .map(|(l, f)| {
                let stack = clips
                    .get(l.clip)
                    .ok()
                    .and_then(|(_, _, _, s)| s)
                    .filter(|s| !s.is_empty());
                LayerJob {
                    frame: f.picture.clone(),
                    key: f.candidate.key(l.source).0,
                    effects: stack.map(|s| s.effects.clone()).unwrap_or_default(),
                    opacity: l.opacity,
                    blend: stack.map(|s| s.blend).unwrap_or_default(),
                    dissolve: l.dissolve,
                }
            })
            .collect();
        Work::Effects(RenderJob {
            width,
            height,
            lod,
            layers,
            tag: frame.t,
        })
    } else {
        Work::Ycbcr(CompositeJob {
            width,
            height,
            layers: frame
                .layers
                .iter()
                .zip(found)
                .map(|(l, f)| CompositeLayer {
                    picture: f.picture.clone(),
                    opacity: l.opacity,
                })
                .collect(),
            tag: frame.t,
        })
    }
}

/// A picture to hand to the service.
pub(super) struct Submit {
    pub(super) work: Work,
    pub(super) key: framelock_components::CacheKey,
    pub(super) keep: bool,
    pub(super) at: (u64, u64),
    pub(super) sources: Vec<LayerSource>,
}

/// Hands `job` to the service; `false` when its queue is full (tried again next tick).
pub(super) fn submit(
    renderer: &mut Renderer,
    state: &mut RenderState,
    job: Submit,
    allow_gpu: bool,
) -> bool {
    let effects = matches!(job.work, Work::Effects(_));
    match renderer.0.try_submit(job.work, state.output, allow_gpu) {
        Some(ticket) => {
            state.in_flight.insert(
                ticket,
                InFlight {
                    key: job.key,
                    keep_on_disk: job.keep,
                    effects,
                    frame: job.at,
                    sources: job.sources,
                    stale: false,
                },
            );
            true
        }
        None => false,
    }
}

/// The layers `found` makes of `frame`.
pub(super) fn layer_sources(frame: &FrameLayers, found: &[Found]) -> Vec<LayerSource> {
    frame
        .layers
        .iter()
        .zip(found)
        .map(|(l, f)| LayerSource {
            track: l.track,
            asset_id: f.candidate.id,
            source_frame: f.source,
        })
        .collect()
}
