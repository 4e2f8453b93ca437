//! Where a clip's frame can come from: the asset its [`Lod`] names first, then the original,
//! then its other ready proxies. Prefetch decodes the first; composite shows the first that is
//! decoded, which is what makes switching between original and proxy seamless.

use bevy_ecs::prelude::*;
use framelock_components::{CacheKey, CacheKind, Clip, EffectLod, Lod, MediaAsset, ProxyAssets};
use framelock_engine::cache::KeyBuilder;
use framelock_engine::media::PixelFormat;

/// Assets with their proxy lists.
pub(crate) type AssetQuery<'w, 's> =
    Query<'w, 's, (&'static MediaAsset, Option<&'static ProxyAssets>)>;

/// Asset id of rendered-frame requests (`Frame` entities a worker fills from the disk tier).
pub const RENDERED_ASSET_ID: u64 = u64::MAX;

/// Whether the frames composited from `layers` are kept in the rendered tiers: when a layer
/// has effects (costly to recompute) or compositing measured over half a frame period.
pub(crate) fn render_cacheable(any_effects: bool, composite_secs: f64, frame_period: f64) -> bool {
    any_effects || composite_secs > frame_period / 2.0
}

/// One layer's part of a rendered frame's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerKey {
    /// Fingerprint of the asset shown.
    pub fingerprint: u64,
    /// Its frame.
    pub source: u64,
    /// Track opacity.
    pub opacity: f32,
    /// The clip's effect stack hash (0: none).
    pub effects: u64,
}

/// The key of the output frame of `width`×`height` made of `layers` (bottom first): by the
/// Y'CbCr compositor (`effect_lod: None`), or by the effects system as RGBA8 at that LOD.
pub(crate) fn rendered_key(
    width: u32,
    height: u32,
    effect_lod: Option<EffectLod>,
    layers: &[LayerKey],
) -> CacheKey {
    let format = match effect_lod {
        Some(_) => PixelFormat::Rgba8,
        None => PixelFormat::Yuv420p,
    };
    let mut k = KeyBuilder::new(CacheKind::Rendered).geometry(format, width, height);
    if let Some(lod) = effect_lod {
        k = k.u64(u64::from(lod.divisor()));
    }
    for l in layers {
        k = k
            .u64(l.fingerprint)
            .u64(l.source)
            .f32(l.opacity)
            .u64(l.effects);
    }
    k.finish()
}

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

/// The sources of `clip`'s frames, preferred first. Empty if the clip's asset is gone.
pub(crate) fn candidates(clip: &Clip, lod: Lod, assets: &AssetQuery, out: &mut Vec<Candidate>) {
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
                bytes: width as usize * height as usize * 3 / 2,
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
