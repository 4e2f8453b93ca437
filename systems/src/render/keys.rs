//! The render path's content keys, read from outside the schedule (between ticks): what the
//! background render queue and the render bar need to know of a frame — the key its picture
//! has at full quality, and whether the rendered tiers (RAM or disk) hold it — and the way
//! background pictures are handed to those tiers.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemState;
use framelock_components::{CacheKey, CacheKind, OutputFormat, QualitySettings};
use framelock_engine::media::Picture;

use super::RenderState;
use super::gather::{AssetQuery, ClipQuery, FrameLayers};
use crate::cache::RenderedFrames;
use crate::{DiskTier, TimelineIndex};

/// A timeline frame's picture as rendered at full quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameKey {
    /// The timeline frame.
    pub frame: u64,
    /// Its content key at the output's full size and the host's effect LOD (`None`: a clip
    /// or its media is gone).
    pub key: Option<CacheKey>,
    /// The rendered tiers hold it (RAM, or the disk tier's index).
    pub rendered: bool,
    /// Visible layers.
    pub layers: usize,
    /// A layer has effects.
    pub effects: bool,
}

type KeyParams<'w, 's> = (
    Res<'w, TimelineIndex>,
    ClipQuery<'w, 's>,
    AssetQuery<'w, 's>,
    Res<'w, OutputFormat>,
    Res<'w, QualitySettings>,
    Res<'w, RenderState>,
    Res<'w, RenderedFrames>,
    Option<Res<'w, DiskTier>>,
);

/// The full-quality keys of `frames` (what an offline render makes of them: full size,
/// `QualitySettings::effect_lod`, the host's pixel format), and whether each is rendered.
pub fn frame_keys(world: &mut World, frames: impl IntoIterator<Item = u64>) -> Vec<FrameKey> {
    let mut state: SystemState<KeyParams> = SystemState::new(world);
    let (timeline, clips, assets, output, quality, render, rendered, disk) = state.get(world);
    let size = (output.width, output.height);
    let mut frame = FrameLayers::default();
    frames
        .into_iter()
        .map(|t| {
            if !frame.gather(t, &output, &timeline, &clips, &assets) {
                return FrameKey {
                    frame: t,
                    key: None,
                    rendered: false,
                    layers: 0,
                    effects: false,
                };
            }
            let key = frame.key(size, quality.effect_lod, render.output);
            let held =
                rendered.contains(key) || disk.as_ref().is_some_and(|d| d.cache.contains(key));
            FrameKey {
                frame: t,
                key: Some(key),
                rendered: held,
                layers: frame.layers.len(),
                effects: frame.any_stack,
            }
        })
        .collect()
}

/// Keeps a background render's `picture` under `key`: in the RAM tier (written through to
/// the disk tier when there is one), or with `disk_only` (memory pressure) only queued for
/// the disk tier. `false` when it could not be kept now (the disk writer's queue is full, or
/// no disk tier under `disk_only`): the caller tries again later.
pub fn keep_rendered(
    world: &mut World,
    key: CacheKey,
    picture: Arc<Picture>,
    disk_only: bool,
) -> bool {
    let disk = world.get_resource::<DiskTier>();
    if disk_only {
        return disk.is_some_and(|d| d.write(key, CacheKind::Rendered, picture));
    }
    world.resource_scope(|world, mut rendered: Mut<RenderedFrames>| {
        rendered.keep_made_elsewhere(key, picture, world.get_resource::<DiskTier>());
    });
    true
}
