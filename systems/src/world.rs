//! World assembly and the edits that reach into it: [`WorldBuilder`] inserts every resource the
//! playback schedule reads, spawns tracks, assets and clips, and hands back the world with
//! its schedule (the engine's facade and the systems' tests build worlds the same way); the
//! functions below change a built world between ticks (the timeline after an edit, emptying the
//! frame caches, dropping proxy entities, draining the disk writer).

use std::collections::HashMap;
use std::path::PathBuf;

use bevy_ecs::prelude::*;
use bevy_ecs::system::RunSystemOnce;
use framelock_components::{
    CacheEntry, Clip, ClipDef, EffectStack, EffectsKey, Frame, FrameState, HasEffects, Lod,
    MediaAsset, MemoryBudget, OutputFormat, Playhead, Project, Proxy, ProxyAssets, QualitySettings,
    Track,
};
use framelock_engine::cache::Cache;
use framelock_engine::memory::BufferPool;
use framelock_engine::render::{OutputPixels, RenderService};
use framelock_engine::workers::DecodePool;

use crate::{
    AssetIds, Composited, DecodeLoad, Decoders, DiskTier, FrameIndex, FrameSink, Memory, Metrics,
    OnScreen, PresentedFrame, ProxyService, RenderState, RenderedFrames, Renderer, Tick,
    TimelineIndex, index_timeline, insert_cache_resources, playback_schedule,
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
        world.insert_resource(OnScreen::default());
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

/// What [`sync_timeline`] did to the world's clips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineSync {
    /// Clip entities left exactly as they were.
    pub kept: usize,
    /// Clip entities changed in place (placement, effects, enabled; same media).
    pub changed: usize,
    /// Clip entities spawned.
    pub added: usize,
    /// Clip entities despawned.
    pub removed: usize,
}

/// The clip entity `project`'s clip `def` on `track` becomes, its asset found in `assets`
/// (by path). `None` when the asset is missing.
fn placed(
    world: &World,
    def: &ClipDef,
    track: usize,
    assets: &HashMap<PathBuf, Entity>,
) -> Option<Clip> {
    let &asset = assets.get(&def.media)?;
    let video = &world.get::<MediaAsset>(asset)?.info.video;
    Some(Clip::placed(asset, video, track, def))
}

/// A clip's placement and its effect stack's hash: equal keys are candidates for "unchanged"
/// (the stacks themselves are compared too).
type PlaceKey = (Entity, usize, u64, u64, u64, bool, u64);

fn place_key(c: &Clip, effects: &EffectStack) -> PlaceKey {
    (
        c.asset,
        c.track,
        c.start,
        c.duration,
        c.source_in,
        c.enabled,
        effects.hash(),
    )
}

fn same_place(a: &Clip, b: &Clip) -> bool {
    (
        a.asset,
        a.track,
        a.start,
        a.duration,
        a.source_in,
        a.enabled,
    ) == (
        b.asset,
        b.track,
        b.start,
        b.duration,
        b.source_in,
        b.enabled,
    )
}

/// Brings the world's tracks and clips to `project` after a live edit, between ticks. Every
/// clip's media must be an asset of `assets` (by path; the engine probes new files first).
/// Change detection keeps the rest valid: a clip that did not change keeps its entity
/// untouched; one that changed but shows the same media keeps its entity (and its level of
/// detail) and gets its new placement; the others are despawned or spawned. Cached frames
/// stay valid, since every cache key is a content key (a moved clip's rendered frames still
/// hit). The playhead gets the new duration (and moves back inside it), its `edits` count
/// goes up so the frame on screen is made again, and pictures still rendering for the old
/// timeline never stand in for a late frame. `None` (nothing changed) when a clip's asset is
/// missing.
pub fn sync_timeline(
    world: &mut World,
    project: &Project,
    assets: &HashMap<PathBuf, Entity>,
) -> Option<TimelineSync> {
    let mut wanted = Vec::new();
    for (ti, track) in project.tracks.iter().enumerate() {
        for def in &track.clips {
            wanted.push((placed(world, def, ti, assets)?, def.effects.clone()));
        }
    }
    let mut sync = TimelineSync::default();

    // Tracks: one entity per index.
    let mut tracks = world.query::<(Entity, &Track)>();
    let mut have: Vec<(Entity, usize, f32)> = tracks
        .iter(world)
        .map(|(e, t)| (e, t.index, t.opacity))
        .collect();
    have.sort_by_key(|&(_, i, _)| i);
    for (e, index, opacity) in have {
        match project.tracks.get(index) {
            None => {
                world.despawn(e);
            }
            Some(def) if def.opacity != opacity => {
                world.entity_mut(e).insert(Track {
                    index,
                    opacity: def.opacity,
                });
            }
            Some(_) => {}
        }
    }
    let present: std::collections::HashSet<usize> =
        tracks.iter(world).map(|(_, t)| t.index).collect();
    for (index, def) in project.tracks.iter().enumerate() {
        if !present.contains(&index) {
            world.spawn(Track {
                index,
                opacity: def.opacity,
            });
        }
    }

    // Clips: unchanged ones first, then same-media ones changed in place, then the rest
    // (hash lookups: an edit of a timeline of thousands of clips stays linear).
    let mut clips = world.query::<(Entity, &Clip, Option<&EffectStack>)>();
    let mut exact: HashMap<PlaceKey, Vec<(Entity, Clip, EffectStack)>> = HashMap::new();
    for (e, c, s) in clips.iter(world) {
        let stack = s.cloned().unwrap_or_default();
        exact
            .entry(place_key(c, &stack))
            .or_default()
            .push((e, c.clone(), stack));
    }
    let mut rest = Vec::new();
    for (clip, effects) in wanted {
        let same = exact.get_mut(&place_key(&clip, &effects)).and_then(|v| {
            v.iter()
                .position(|(_, _, s)| *s == effects)
                .map(|i| v.swap_remove(i))
        });
        match same {
            Some(_) => sync.kept += 1,
            None => rest.push((clip, effects)),
        }
    }
    // What is left of the old clips, by asset.
    let mut by_asset: HashMap<Entity, Vec<(Entity, Clip, EffectStack)>> = HashMap::new();
    for old in exact.into_values().flatten() {
        by_asset.entry(old.1.asset).or_default().push(old);
    }
    let mut spawn = Vec::new();
    for (clip, effects) in rest {
        match by_asset.get_mut(&clip.asset).and_then(Vec::pop) {
            Some((e, before, stack)) => {
                if !same_place(&before, &clip) {
                    world.entity_mut(e).insert(clip);
                }
                if stack != effects {
                    set_effects(world, e, effects);
                }
                sync.changed += 1;
            }
            None => spawn.push((clip, effects)),
        }
    }
    for (e, ..) in by_asset.into_values().flatten() {
        world.despawn(e);
        sync.removed += 1;
    }
    for (clip, effects) in spawn {
        let e = world.spawn((clip, Lod::Original)).id();
        set_effects(world, e, effects);
        sync.added += 1;
    }

    let duration = project.duration_frames();
    let mut playhead = world.resource_mut::<Playhead>();
    playhead.duration = duration;
    if playhead.frame >= duration {
        playhead.seek(duration.saturating_sub(1));
    }
    playhead.edits += 1;
    let mut state = world.resource_mut::<RenderState>();
    state.passed = None;
    for f in state.in_flight.values_mut() {
        f.stale = true;
    }
    Some(sync)
}

/// Sets entity `e`'s effect stack (an empty one removes it), starting the GPU for a stack.
fn set_effects(world: &mut World, e: Entity, effects: EffectStack) {
    let gpu_on = world
        .get_resource::<QualitySettings>()
        .is_none_or(|q| q.gpu_acceleration);
    if !effects.is_empty()
        && gpu_on
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
