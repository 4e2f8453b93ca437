//! Where a clip's frame can come from: the asset its [`Lod`] names first, then the original,
//! then its other ready proxies. Prefetch decodes the first; composite shows the first that is
//! decoded, which is what makes switching between original and proxy seamless.

use bevy_ecs::prelude::*;
use framelock_components::{Clip, Lod, MediaAsset, ProxyAssets};

/// Assets with their proxy lists.
pub(crate) type AssetQuery<'w, 's> =
    Query<'w, 's, (&'static MediaAsset, Option<&'static ProxyAssets>)>;

/// (asset entity, asset id, bytes per frame), preferred first. Empty if the clip's asset is
/// gone.
pub(crate) fn candidates(
    clip: &Clip,
    lod: Lod,
    assets: &AssetQuery,
    out: &mut Vec<(Entity, u64, usize)>,
) {
    out.clear();
    let push = |e: Entity, out: &mut Vec<(Entity, u64, usize)>| {
        if out.iter().any(|c| c.0 == e) {
            return;
        }
        if let Ok((a, _)) = assets.get(e) {
            let bytes = a.info.video.width as usize * a.info.video.height as usize * 3 / 2;
            out.push((e, a.id, bytes));
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
