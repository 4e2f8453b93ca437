//! World assembly and the edits that reach into it: [`WorldBuilder`] inserts every resource the
//! playback schedule reads, spawns tracks, assets and clips, and hands back the world with
//! its schedule (the engine's facade and the systems' tests build worlds the same way); the
//! functions below change a built world between ticks (a clip's effects, emptying the frame
//! caches, dropping proxy entities, draining the disk writer).

use bevy_ecs::prelude::*;
use bevy_ecs::system::RunSystemOnce;
use framelock_components::{
    CacheEntry, Clip, EffectStack, EffectsKey, Frame, FrameState, HasEffects, Lod, MediaAsset,
    MemoryBudget, OutputFormat, Playhead, Proxy, ProxyAssets, QualitySettings, Track,
};
use framelock_engine::cache::Cache;
use framelock_engine::memory::BufferPool;
use framelock_engine::render::{OutputPixels, RenderService};
use framelock_engine::workers::DecodePool;

use crate::{
    AssetIds, Composited, DecodeLoad, Decoders, DiskTier, FrameIndex, FrameSink, Memory, Metrics,
    PresentedFrame, ProxyService, RenderState, RenderedFrames, Renderer, Tick, TimelineIndex,
    index_timeline, insert_cache_resources, playback_schedule,
};

/// Builds a playback world: resources first ([`WorldBuilder::new`]), then the timeline's
/// entities and the optional services, then [`WorldBuilder::build`] with the decoders and the
/// renderer.
#[derive(Debug)]
pub struct WorldBuilder {
    world: World,
    assets: u64,
}

impl WorldBuilder {
    /// A world for a timeline of `duration` frames at `output`, with the playhead at 0, fresh
    /// metrics and indexes, the memory pools and frame caches for `memory`, and a sink that
    /// drops pictures.
    pub fn new(
        output: OutputFormat,
        duration: u64,
        quality: QualitySettings,
        memory: MemoryBudget,
    ) -> Self {
        let mut world = World::new();
        world.insert_resource(Playhead::new(duration));
        world.insert_resource(output);
        world.insert_resource(quality);
        world.insert_resource(Tick::default());
        world.insert_resource(Metrics::default());
        world.insert_resource(FrameIndex::default());
        world.insert_resource(Composited::default());
        world.insert_resource(TimelineIndex::default());
        world.insert_resource(DecodeLoad::default());
        world.init_resource::<framelock_components::AdaptiveQuality>();
        world.insert_resource(crate::Events::default());
        world.insert_resource(FrameSink(Box::new(|_| {})));
        insert_cache_resources(&mut world, memory);
        Self { world, assets: 0 }
    }

    /// The memory pool every picture is allocated from (decoders and renderers share it).
    pub fn pool(&self) -> BufferPool {
        self.world.resource::<Memory>().0.clone()
    }

    /// Adds track `index` with its opacity.
    pub fn track(&mut self, index: usize, opacity: f32) -> &mut Self {
        self.world.spawn(Track { index, opacity });
        self
    }

    /// Adds a media asset (its `id` is overwritten with the next one) and returns its entity.
    pub fn asset(&mut self, mut asset: MediaAsset) -> Entity {
        asset.id = self.assets;
        self.assets += 1;
        self.world.spawn((asset, ProxyAssets::default())).id()
    }

    /// Adds a clip, on its original media, with its effects (none when the stack is empty).
    pub fn clip(&mut self, clip: Clip, effects: &EffectStack) -> Entity {
        let mut e = self.world.spawn((clip, Lod::Original));
        if !effects.is_empty() {
            e.insert((EffectsKey(effects.hash()), HasEffects, effects.clone()));
        }
        e.id()
    }

    /// The disk tier (L3).
    pub fn disk(&mut self, tier: DiskTier) -> &mut Self {
        self.world.insert_resource(tier);
        self
    }

    /// The proxy service.
    pub fn proxies(&mut self, service: ProxyService) -> &mut Self {
        self.world.insert_resource(service);
        self
    }

    /// Where presented pictures go.
    pub fn sink(&mut self, sink: impl FnMut(PresentedFrame) + Send + Sync + 'static) -> &mut Self {
        self.world.insert_resource(FrameSink(Box::new(sink)));
        self
    }

    /// The world as built so far (to read an asset back, or add the host's own resources).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The world, with its decode workers and render service (both own threads, so they
    /// come last) and the pixel format pictures are presented in, and the timeline indexed
    /// (the performance map reads it before the first tick); and the playback schedule.
    pub fn build(
        mut self,
        decoders: DecodePool,
        renderer: RenderService,
        output: OutputPixels,
    ) -> (World, Schedule) {
        self.world.insert_resource(Decoders(decoders));
        self.world.insert_resource(Renderer(renderer));
        self.world.resource_mut::<RenderState>().output = output;
        self.world.insert_resource(AssetIds { next: self.assets });
        let _ = self.world.run_system_once(index_timeline);
        (self.world, playback_schedule())
    }
}

/// Replaces the effects of the clip on `track` that starts at timeline frame `start` (an
/// empty stack removes them); its effects hash changes with it, so exactly that clip's
/// rendered frames miss from now on. Starts the GPU when the stack has effects. `false` when
/// there is no such clip.
pub fn set_clip_effects(world: &mut World, track: usize, start: u64, effects: EffectStack) -> bool {
    let mut q = world.query::<(Entity, &Clip)>();
    let Some(e) = q
        .iter(world)
        .find(|(_, c)| c.track == track && c.start == start)
        .map(|(e, _)| e)
    else {
        return false;
    };
    if !effects.is_empty()
        && let Some(mut r) = world.get_resource_mut::<Renderer>()
    {
        r.0.start_gpu();
    }
    let mut entity = world.entity_mut(e);
    if effects.is_empty() {
        entity.remove::<(EffectStack, EffectsKey, HasEffects)>();
    } else {
        entity.insert((EffectsKey(effects.hash()), HasEffects, effects));
    }
    true
}

/// What [`clear_frames`] removed from memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClearedFrames {
    /// Frame entries (decoded and rendered) dropped from RAM.
    pub ram_entries: usize,
    /// Bytes of uploaded planes dropped from VRAM.
    pub vram_bytes: usize,
}

/// Empties the RAM (and, with `decoded`, VRAM) frame caches: ready decoded frames that are
/// not pinned (requests in flight finish normally; the picture on screen is held by present),
/// and with `rendered` the rendered frames. Idle pool buffers are released.
pub fn clear_frames(world: &mut World, decoded: bool, rendered: bool) -> ClearedFrames {
    let mut cleared = ClearedFrames::default();
    if decoded {
        let mut q = world.query::<(Entity, &Frame, &CacheEntry)>();
        let doomed: Vec<_> = q
            .iter(world)
            .filter(|(_, frame, entry)| !entry.pinned && frame.state == FrameState::Ready)
            .map(|(e, frame, _)| (e, frame.asset_id, frame.index))
            .collect();
        for (e, asset, index) in doomed {
            world.resource_mut::<FrameIndex>().0.remove(&(asset, index));
            world.despawn(e);
            cleared.ram_entries += 1;
        }
        if let Some(r) = world.get_resource::<Renderer>() {
            cleared.vram_bytes += r.0.clear_vram();
        }
    }
    if rendered {
        let mut r = world.resource_mut::<RenderedFrames>();
        cleared.ram_entries += r.entries.len();
        r.purge_memory();
    }
    world.resource::<Memory>().0.purge_idle();
    cleared
}

/// Takes every proxy out of the world: proxy assets and entities despawned, every clip back
/// on its original media. (Deleting the files is the proxy manager's.)
pub fn drop_proxy_entities(world: &mut World) {
    let mut lists = world.query::<&mut ProxyAssets>();
    let mut doomed = Vec::new();
    for mut list in lists.iter_mut(world) {
        doomed.extend(list.0.drain(..).map(|(_, _, e)| e));
    }
    let mut clips = world.query::<&mut Lod>();
    for mut lod in clips.iter_mut(world) {
        *lod = Lod::Original;
    }
    let mut proxies = world.query_filtered::<Entity, With<Proxy>>();
    doomed.extend(proxies.iter(world));
    doomed.sort_unstable();
    doomed.dedup();
    for e in doomed {
        world.despawn(e);
    }
}

/// Waits until the disk writer has written everything queued (rendered write-throughs
/// deferred while it was busy first) and the disk index is persisted. For tests, benchmarks
/// between phases and exit: never called from a system.
pub fn flush_disk(world: &mut World) {
    if !world.contains_resource::<DiskTier>() {
        return;
    }
    loop {
        let pending = world.resource_scope(|world, mut rendered: Mut<RenderedFrames>| {
            if let Some(disk) = world.get_resource::<DiskTier>() {
                rendered.retry_writes(disk);
            }
            rendered.pending_writes()
        });
        if let Some(mut d) = world.get_resource_mut::<DiskTier>() {
            d.drain();
        }
        if pending == 0 {
            break;
        }
    }
}
