//! Layer gathering, done once per timeline frame for everyone who needs it (prefetch asks for
//! the layers' source frames, `render` builds the picture from them): which clips are visible
//! at a frame, where each one's picture can come from (the asset its [`Lod`] names first, then
//! the original, then its other ready proxies: switching between original and proxy is
//! seamless), and the rendered frame's content key.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheKey, CacheKind, Clip, EffectLod, EffectStack, EffectsKey, Lod, MediaAsset, OutputFormat,
    ProxyAssets,
};
use framelock_engine::cache::KeyBuilder;
use framelock_engine::media::{OFFLINE_INDEX, Picture, PixelFormat};
use framelock_engine::render::OutputPixels;

use crate::{FrameIndex, FramePixels, TimelineIndex};

/// Assets with their proxy lists.
pub(crate) type AssetQuery<'w, 's> =
    Query<'w, 's, (&'static MediaAsset, Option<&'static ProxyAssets>)>;

/// Clips with their level of detail and effects.
pub(crate) type ClipQuery<'w, 's> = Query<
    'w,
    's,
    (
        &'static Clip,
        &'static Lod,
        Option<&'static EffectsKey>,
        Option<&'static EffectStack>,
    ),
>;

/// A source a clip's frame can come from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    /// The asset entity.
    pub entity: Entity,
    /// Its id.
    pub id: u64,
    /// Bytes of one decoded frame (8-bit 4:2:0 estimate).
    pub bytes: usize,
    /// The file's fingerprint.
    pub fingerprint: u64,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
}

impl Candidate {
    /// The cache key of its frame `source`.
    pub fn key(&self, source: u64) -> CacheKey {
        framelock_engine::cache::decoded_key(self.fingerprint, source, self.width, self.height)
    }
}

/// One visible layer of a timeline frame.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    /// The clip.
    pub clip: Entity,
    /// Its track (0 = bottom).
    pub track: usize,
    /// Track opacity.
    pub opacity: f32,
    /// The source frame shown.
    pub source: u64,
    /// Where it can come from, preferred first (never empty).
    pub candidates: Vec<Candidate>,
    /// The clip's effect-stack hash (0: none).
    pub effects: u64,
    /// Cross-dissolve position while the clip dissolves in.
    pub dissolve: Option<f32>,
}

impl Layer {
    /// The preferred source.
    pub fn preferred(&self) -> Candidate {
        self.candidates[0]
    }
}

/// The layers of one timeline frame, bottom first.
#[derive(Debug, Default)]
pub(crate) struct FrameLayers {
    /// The timeline frame.
    pub t: u64,
    /// Visible layers.
    pub layers: Vec<Layer>,
    /// A layer has an effect stack: the picture is made by the effects path.
    pub any_stack: bool,
    /// A layer has an effects key (a stack, or a host's own marking): the picture is worth
    /// keeping in the rendered tiers.
    pub any_effects: bool,
    visible: Vec<(Entity, f32)>,
}

/// A decoded layer picture found for a [`Layer`].
pub(crate) struct Found {
    /// The `Frame` entity.
    pub entity: Entity,
    /// The source.
    pub candidate: Candidate,
    /// The picture.
    pub picture: Arc<Picture>,
    /// The source frame it shows (the layer's own, or a nearby one standing in after a seek).
    pub source: u64,
}

impl FrameLayers {
    /// Gathers the layers visible at `t`. `false` when a visible clip or its asset is gone
    /// (the frame cannot be made).
    pub fn gather(
        &mut self,
        t: u64,
        output: &OutputFormat,
        timeline: &TimelineIndex,
        clips: &ClipQuery,
        assets: &AssetQuery,
    ) -> bool {
        self.t = t;
        self.layers.clear();
        self.any_stack = false;
        self.any_effects = false;
        timeline.visible_at(t, &mut self.visible);
        for &(clip_entity, opacity) in &self.visible {
            let Ok((clip, lod, key, stack)) = clips.get(clip_entity) else {
                return false;
            };
            let mut candidates = Vec::with_capacity(2);
            collect_candidates(clip, *lod, assets, &mut candidates);
            if candidates.is_empty() {
                return false;
            }
            let stack = stack.filter(|s| !s.is_empty());
            self.any_stack |= stack.is_some();
            self.any_effects |= key.is_some();
            let dissolve = stack
                .filter(|s| s.dissolve_in > 0)
                .map(|s| (t.saturating_sub(clip.start) + 1) as f32 / (s.dissolve_in + 1) as f32)
                .filter(|&d| d < 1.0);
            self.layers.push(Layer {
                clip: clip_entity,
                track: clip.track,
                opacity,
                source: clip.source_frame(t, output.frame_rate),
                candidates,
                effects: key.map_or(0, |e| e.0),
                dissolve,
            });
        }
        true
    }

    /// The format of the rendered picture (the path's own, or the one the host asked for).
    pub fn picture_format(&self, pixels: OutputPixels) -> PixelFormat {
        match (pixels, self.any_stack) {
            (OutputPixels::Rgba8, _) | (OutputPixels::Any, true) => PixelFormat::Rgba8,
            _ => PixelFormat::Yuv420p,
        }
    }

    /// Whether its picture is kept in the rendered tiers (and written to the disk tier):
    /// clips with effects, or a composite slower than half the frame `period`.
    pub fn kept_rendered(&self, composite_secs: f64, period: f64) -> bool {
        self.any_stack || self.any_effects || composite_secs > period / 2.0
    }

    /// The content key of the picture made from the preferred sources.
    pub fn key(&self, size: (u32, u32), lod: EffectLod, pixels: OutputPixels) -> CacheKey {
        self.key_of(size, lod, pixels, |l| (l.preferred().fingerprint, l.source))
    }

    /// For a frame with effects wanted in 8-bit 4:2:0 (`pixels`: an encoder's), the key of
    /// its RGBA twin: the picture the effects path makes before converting, as playback and
    /// background render keep it. Converting the twin gives this frame's picture bit for bit
    /// (it is the same conversion, [`OutputPixels::convert`]). `None` otherwise.
    pub fn rgba_twin_key(
        &self,
        size: (u32, u32),
        lod: EffectLod,
        pixels: OutputPixels,
    ) -> Option<CacheKey> {
        (pixels == OutputPixels::Yuv420p && self.any_stack)
            .then(|| self.key(size, lod, OutputPixels::Rgba8))
    }

    /// The content key of the picture made from `found` (one per layer, in order).
    pub fn key_from(
        &self,
        size: (u32, u32),
        lod: EffectLod,
        pixels: OutputPixels,
        found: &[Found],
    ) -> CacheKey {
        let mut i = 0;
        self.key_of(size, lod, pixels, |l| {
            let f = found
                .get(i)
                .map_or((0, l.source), |f| (f.candidate.fingerprint, f.source));
            i += 1;
            f
        })
    }

    fn key_of(
        &self,
        (w, h): (u32, u32),
        lod: EffectLod,
        pixels: OutputPixels,
        mut source: impl FnMut(&Layer) -> (u64, u64),
    ) -> CacheKey {
        let mut k =
            KeyBuilder::new(CacheKind::Rendered).geometry(self.picture_format(pixels), w, h);
        if self.any_stack {
            k = k.u64(u64::from(lod.divisor()));
        }
        for l in &self.layers {
            let (fingerprint, frame) = source(l);
            k = k.u64(fingerprint).u64(frame).f32(l.opacity).u64(l.effects);
            // Where a dissolve stands is the clip's frame count from its start, which a trim
            // of its head changes while the source frame stays.
            if let Some(d) = l.dissolve {
                k = k.f32(d);
            }
        }
        k.finish()
    }

    /// The decoded picture of each layer (its first candidate that is decoded; only the
    /// preferred one when `exact`), or how many layers are still missing.
    pub fn find_decoded(
        &self,
        index: &FrameIndex,
        pixels: &Query<&FramePixels>,
        exact: bool,
        out: &mut Vec<Found>,
    ) -> u64 {
        out.clear();
        let mut missing = 0;
        for l in &self.layers {
            let n = if exact { 1 } else { l.candidates.len() };
            let found = l.candidates[..n]
                .iter()
                .find_map(|c| decoded(index, pixels, c, l.source));
            match found {
                Some(f) => out.push(f),
                None => missing += 1,
            }
        }
        missing
    }
}

/// Source frame `source` of candidate `c`, when it is decoded. The media-offline picture gets
/// a source number of its own ([`OFFLINE_INDEX`]), so its composite is never kept under the
/// real frame's key.
fn decoded(
    index: &FrameIndex,
    pixels: &Query<&FramePixels>,
    c: &Candidate,
    source: u64,
) -> Option<Found> {
    let &entity = index.0.get(&(c.id, source))?;
    let picture = pixels.get(entity).ok()?.0.clone();
    Some(Found {
        entity,
        candidate: *c,
        source: if picture.index == OFFLINE_INDEX {
            OFFLINE_INDEX
        } else {
            source
        },
        picture,
    })
}

/// How far back from a layer's frame [`FrameLayers::find_nearest`] looks (frames).
pub(crate) const NEAREST_REACH: u64 = 600;

impl FrameLayers {
    /// Like [`FrameLayers::find_decoded`] (any candidate), and for a layer whose frame is not
    /// decoded, the nearest decoded frame before it in the same GOP (the keyframe a seek asks
    /// for first, a frame cached earlier), any candidate. Returns the layers still missing and
    /// whether every found picture is the layer's own frame.
    pub fn find_nearest(
        &self,
        index: &FrameIndex,
        pixels: &Query<&FramePixels>,
        assets: &AssetQuery,
        out: &mut Vec<Found>,
    ) -> (u64, bool) {
        out.clear();
        let mut missing = 0;
        let mut exact = true;
        for l in &self.layers {
            let found = |s: u64| {
                l.candidates
                    .iter()
                    .find_map(|c| decoded(index, pixels, c, s))
            };
            if let Some(f) = found(l.source) {
                out.push(f);
                continue;
            }
            let keyframe = assets
                .get(l.preferred().entity)
                .ok()
                .and_then(|(a, _)| a.info.video.keyframe_at_or_before(l.source))
                .unwrap_or(0)
                .max(l.source.saturating_sub(NEAREST_REACH));
            match (keyframe..l.source).rev().find_map(found) {
                Some(f) => {
                    exact = false;
                    out.push(f);
                }
                None => missing += 1,
            }
        }
        (missing, exact)
    }
}

/// The sources of `clip`'s frames, preferred first. Empty if the clip's asset is gone.
fn collect_candidates(clip: &Clip, lod: Lod, assets: &AssetQuery, out: &mut Vec<Candidate>) {
    out.clear();
    let push = |e: Entity, out: &mut Vec<Candidate>| {
        if out.iter().any(|c| c.entity == e) {
            return;
        }
        if let Ok((a, _)) = assets.get(e) {
            let (width, height) = (a.info.video.width, a.info.video.height);
            out.push(Candidate {
                entity: e,
                id: a.id,
                bytes: a.info.video.picture_bytes(),
                fingerprint: a.fingerprint,
                width,
                height,
            });
        }
    };
    push(lod.asset(clip), out);
    push(clip.asset, out);
    if let Ok((_, Some(proxies))) = assets.get(clip.asset) {
        for &(_, _, e) in proxies.0.iter().rev() {
            push(e, out);
        }
    }
}
