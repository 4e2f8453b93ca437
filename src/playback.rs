//! [`PlaybackEngine`]: the world, the playback schedule and the frame-locked loop, driven
//! from one thread. [`Player`](crate::Player) runs one on its own thread for UI hosts; tests
//! and tools drive one directly, on a virtual or wall clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheEntry, CacheKind, ClearCache, Clip, EffectStack, EffectsKey, FrameState, HasEffects, Lod,
    MediaAsset, MemoryBudget, OutputFormat, PlayState, Playhead, Pressure, Project, ProjectError,
    ProxyAssets, ProxyStrategy, QualitySettings, Rational, TierStats, Track, UseProxy,
};
use framelock_engine::app::{Clock, FramePacer, TickPlan};
use framelock_engine::cache::{Cache, DiskCache, DiskCacheOptions, DiskError, DiskStats};
use framelock_engine::gpu::GpuOptions;
use framelock_engine::media::{DecoderRegistry, MediaError, ProbeCache, probe};
use framelock_engine::memory::PoolStats;
use framelock_engine::proxy::{JobId, ProxyJobStatus, ProxyManager, ProxyManagerOptions};
use framelock_engine::render::{
    CpuRenderer, GpuUse, OutputPixels, ReferenceCpu, RenderService, RenderServiceOptions,
};
use framelock_engine::signal::Progress;
use framelock_engine::workers::{DecodePool, DecodePoolOptions};
use framelock_systems::{
    AssetIds, Composited, DecodeLoad, Decoders, DiskTier, FrameIndex, FrameSink, Memory, Metrics,
    MetricsSnapshot, PresentedFrame, ProxyService, RenderMode, RenderState, RenderStats,
    RenderedFrames, Renderer, Tick, TimelineIndex, playback_schedule,
};

/// Why a project cannot be opened for playback.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayerError {
    /// The project itself is invalid.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// A clip's media cannot be read or decoded.
    #[error("{path}: {source}")]
    Media {
        /// The media file.
        path: PathBuf,
        /// Why.
        source: MediaError,
    },
    /// A clip asks for source frames its media does not have.
    #[error("track {track} clip {clip}: needs source frames up to {needs}, {path} has {has}")]
    ClipBeyondMedia {
        /// Track index.
        track: usize,
        /// Clip index in the track.
        clip: usize,
        /// The media file.
        path: PathBuf,
        /// Last source frame needed + 1.
        needs: u64,
        /// Frames in the media.
        has: u64,
    },
    /// Nothing on the timeline.
    #[error("the project has no clips")]
    EmptyTimeline,
    /// A proxy call on an engine opened without [`EngineOptions::proxies`].
    #[error("proxies are not enabled (EngineOptions::proxies)")]
    ProxiesDisabled,
    /// The disk cache folder cannot be opened (in use by another process, unwritable).
    #[error(transparent)]
    DiskCache(#[from] DiskError),
    /// The player's thread is gone (it stopped or panicked).
    #[error("the player has stopped")]
    Stopped,
    /// The live profile server could not listen.
    #[error("puffin server on {addr}: {reason}")]
    ProfileServer {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Removing proxy files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Proxies for playback: the job manager (shared: hosts may keep a handle), the strategy, and
/// whether opening a project queues the proxies its media need.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Jobs and workers.
    pub manager: Arc<ProxyManager>,
    /// What to make and when to use it.
    pub strategy: ProxyStrategy,
    /// Queue proxies at open for media above the strategy's lowest switch threshold.
    pub auto_generate: bool,
}

impl ProxyOptions {
    /// Proxies in `dir` with the default strategy and workers, generated at open.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_manager(ProxyManager::new(ProxyManagerOptions::new(dir)))
    }

    /// Proxies in `Proxies/` beside the project file `project_path` (the default place).
    pub fn beside_project(project_path: impl AsRef<std::path::Path>) -> Self {
        let dir = project_path
            .as_ref()
            .parent()
            .map_or_else(|| PathBuf::from("Proxies"), |p| p.join("Proxies"));
        Self::new(dir)
    }

    /// Proxies made by `manager`, default strategy, generated at open.
    pub fn with_manager(manager: ProxyManager) -> Self {
        Self {
            manager: Arc::new(manager),
            strategy: ProxyStrategy::default(),
            auto_generate: true,
        }
    }
}

/// Every cache tier's statistics (see [`PlaybackEngine::cache_stats`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheStats {
    /// L2 RAM, decoded frames (hits/misses: frames needed on screen, decoded or not in time).
    pub ram_decoded: TierStats,
    /// L2 RAM, rendered frames.
    pub ram_rendered: TierStats,
    /// L3 disk, when enabled.
    pub disk: Option<DiskStats>,
    /// L1 VRAM (decoded planes uploaded to the GPU), once the GPU is open. Hits: layers
    /// rendered from planes already there; misses: uploads.
    pub vram: Option<TierStats>,
    /// The buffer pools (accounted bytes, allocations, reuses per class).
    pub memory: PoolStats,
    /// Memory pressure after the last tick.
    pub pressure: Pressure,
    /// Frames answered from the disk tier instead of decoding.
    pub disk_reads: u64,
    /// Frames evicted from RAM.
    pub evicted: u64,
    /// Frames sent to the disk writer (write-back and write-through).
    pub disk_writes_queued: u64,
}

/// What [`PlaybackEngine::clear_cache`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClearedCache {
    /// Frames dropped from RAM.
    pub ram_entries: usize,
    /// Entries dropped from the disk tier.
    pub disk_entries: usize,
    /// Bytes of uploaded planes dropped from VRAM.
    pub vram_bytes: usize,
    /// Proxy files deleted.
    pub proxy_files: usize,
}

/// How to run playback.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Decoder backends.
    pub registry: DecoderRegistry,
    /// Decode worker threads.
    pub workers: usize,
    /// Jobs queued per worker.
    pub queue_per_worker: usize,
    /// Drop/hold policy, prefetch depth, proxies, playback resolution.
    pub quality: QualitySettings,
    /// Memory budget and pressure thresholds (every frame buffer is counted against it).
    pub memory: MemoryBudget,
    /// The disk tier (L3) of the frame cache (`None`: RAM only).
    pub disk_cache: Option<DiskCacheOptions>,
    /// Where probe results are cached between loads (`None`: probe every file on open).
    pub probe_cache: Option<ProbeCache>,
    /// Proxy generation and switching (`None`: originals only).
    pub proxies: Option<ProxyOptions>,
    /// The GPU for effects (`None`: the CPU path only), opened on its own thread at open when
    /// the timeline has effects, else at the first effects frame. With
    /// [`GpuUse::Measured`] effects use it only where it measured faster than the CPU path;
    /// `QualitySettings::gpu_acceleration` switches it off while playing.
    pub gpu: Option<GpuOptions>,
    /// When effects use the GPU: by measurement (the default), or always.
    pub gpu_use: GpuUse,
    /// Render threads for compositing and effects on the CPU path.
    pub render_workers: usize,
    /// The pixel format presented pictures come in.
    pub output_pixels: OutputPixels,
    /// The CPU renderer (tests put a double here; the default is the reference path).
    pub cpu_renderer: Arc<dyn CpuRenderer>,
    /// Serve the live profile to `puffin_viewer` on this address (e.g. `127.0.0.1:8585`)
    /// while the engine lives: turns puffin's scopes on (every system, decode job, proxy
    /// range, GPU submit and readback) and marks a frame per tick.
    pub puffin_server: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            registry: DecoderRegistry::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_per_worker: 8,
            quality: QualitySettings::default(),
            memory: MemoryBudget::default(),
            disk_cache: None,
            probe_cache: None,
            proxies: None,
            gpu: Some(GpuOptions::default()),
            gpu_use: GpuUse::Measured,
            render_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            output_pixels: OutputPixels::Any,
            cpu_renderer: Arc::new(ReferenceCpu),
            puffin_server: None,
        }
    }
}

/// Queues `generation`'s heights below each file's own height (an explicit request: the
/// switch thresholds do not apply). `known_height` answers for files already probed (by
/// absolute path); the others are probed here, on the calling thread.
pub(crate) fn queue_proxies(
    manager: &ProxyManager,
    generation: &framelock_components::ProxyGeneration,
    files: &[PathBuf],
    known_height: impl Fn(&std::path::Path) -> Option<u32>,
) -> Result<Vec<JobId>, PlayerError> {
    let mut ids = Vec::new();
    for file in files {
        let absolute = framelock_engine::proxy::files::absolute(file);
        let height = match known_height(&absolute) {
            Some(h) => h,
            None => {
                probe(file, &DecoderRegistry::new())
                    .map_err(|source| PlayerError::Media {
                        path: file.clone(),
                        source,
                    })?
                    .video
                    .height
            }
        };
        ids.extend(manager.submit_below(&absolute, height, generation));
    }
    Ok(ids)
}

/// A project loaded into an ECS world, played by ticks.
pub struct PlaybackEngine {
    world: World,
    schedule: Schedule,
    pacer: FramePacer,
    clock: Arc<dyn Clock>,
    /// Clock time of tick 0 of the current run.
    epoch: Duration,
    last_tick: Option<u64>,
    /// The live profile server, when [`EngineOptions::puffin_server`] asked for one.
    puffin: Option<puffin_http::Server>,
    /// Bumped by every worker (decode, render, disk read) when it finishes a job.
    progress: Progress,
}

impl std::fmt::Debug for PlaybackEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackEngine")
            .field("playhead", &self.playhead())
            .finish_non_exhaustive()
    }
}

impl PlaybackEngine {
    /// Loads `project`: probes each distinct media file once, checks that every clip is
    /// decodable and inside its media, and builds the world. Decodes nothing yet.
    pub fn open(
        project: &Project,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
        sink: impl FnMut(PresentedFrame) + Send + Sync + 'static,
    ) -> Result<Self, PlayerError> {
        project.validate()?;
        let puffin = match &options.puffin_server {
            Some(addr) => {
                let server =
                    puffin_http::Server::new(addr).map_err(|e| PlayerError::ProfileServer {
                        addr: addr.clone(),
                        reason: e.to_string(),
                    })?;
                framelock_engine::profile::set_enabled(true);
                Some(server)
            }
            None => None,
        };
        let duration = project.duration_frames();
        if duration == 0 {
            return Err(PlayerError::EmptyTimeline);
        }
        let mut world = World::new();
        let mut assets: BTreeMap<PathBuf, (Entity, u64, Rational)> = BTreeMap::new();
        for (ti, track) in project.tracks.iter().enumerate() {
            world.spawn(Track {
                index: ti,
                opacity: track.opacity,
            });
            for (ci, clip) in track.clips.iter().enumerate() {
                let (asset, frames, rate) = match assets.get(&clip.media) {
                    Some(a) => *a,
                    None => {
                        let media_error = |source| PlayerError::Media {
                            path: clip.media.clone(),
                            source,
                        };
                        let info = match &options.probe_cache {
                            Some(cache) => cache.probe(&clip.media, &options.registry),
                            None => probe(&clip.media, &options.registry),
                        }
                        .map_err(media_error)?;
                        if let Some(why) = &info.video.unsupported {
                            return Err(media_error(MediaError::Unsupported {
                                codec: info.video.codec.to_string(),
                                reason: why.clone(),
                            }));
                        }
                        let frames = info.video.frame_count;
                        let rate = info.video.frame_rate;
                        let id = assets.len() as u64;
                        let fingerprint = framelock_engine::cache::fingerprint(&clip.media)
                            .map_err(media_error)?;
                        let e = world
                            .spawn((
                                MediaAsset {
                                    id,
                                    path: clip.media.clone(),
                                    fingerprint,
                                    info,
                                },
                                ProxyAssets::default(),
                            ))
                            .id();
                        assets.insert(clip.media.clone(), (e, frames, rate));
                        (e, frames, rate)
                    }
                };
                let component = Clip {
                    asset,
                    track: ti,
                    start: clip.start,
                    duration: clip.duration,
                    source_in: clip.source_in,
                    source_rate: rate,
                    source_frames: frames,
                    enabled: clip.enabled,
                };
                let last = clip.source_frame(clip.end() - 1, project.frame_rate, rate);
                if last >= frames {
                    return Err(PlayerError::ClipBeyondMedia {
                        track: ti,
                        clip: ci,
                        path: clip.media.clone(),
                        needs: last + 1,
                        has: frames,
                    });
                }
                let mut e = world.spawn((component, Lod::Original));
                if !clip.effects.is_empty() {
                    e.insert((
                        EffectsKey(clip.effects.hash()),
                        HasEffects,
                        clip.effects.clone(),
                    ));
                }
            }
        }
        world.insert_resource(AssetIds {
            next: assets.len() as u64,
        });
        world.insert_resource(DecodeLoad::default());
        if let Some(proxies) = &options.proxies {
            let mut sources = std::collections::HashMap::new();
            for (path, &(entity, _, _)) in &assets {
                let absolute = framelock_engine::proxy::files::absolute(path);
                if proxies.auto_generate
                    && let Some(asset) = world.get::<MediaAsset>(entity)
                {
                    proxies.manager.submit_for(
                        &absolute,
                        asset.info.video.height,
                        &proxies.strategy,
                    );
                }
                sources.insert(absolute, entity);
            }
            world.insert_resource(ProxyService {
                manager: proxies.manager.clone(),
                strategy: proxies.strategy.clone(),
                sources,
            });
        }
        world.insert_resource(Playhead::new(duration));
        world.insert_resource(OutputFormat {
            frame_rate: project.frame_rate,
            width: project.width,
            height: project.height,
        });
        world.insert_resource(options.quality);
        world.insert_resource(Tick::default());
        world.insert_resource(Metrics::default());
        world.insert_resource(FrameIndex::default());
        world.insert_resource(Composited::default());
        world.insert_resource(TimelineIndex::default());
        world.insert_resource(FrameSink(Box::new(sink)));
        framelock_systems::insert_cache_resources(&mut world, options.memory);
        let pool = world.resource::<Memory>().0.clone();
        let progress = Progress::default();
        let mut service = RenderService::new(RenderServiceOptions {
            cpu_workers: options.render_workers.max(1),
            queue_per_worker: 1,
            gpu: options.gpu,
            gpu_use: options.gpu_use,
            pool: Some(pool.clone()),
            cpu: options.cpu_renderer,
            progress: progress.clone(),
        });
        if project
            .tracks
            .iter()
            .any(|t| t.clips.iter().any(|c| !c.effects.is_empty()))
        {
            service.start_gpu();
        }
        world.insert_resource(Renderer(service));
        world.resource_mut::<RenderState>().output = options.output_pixels;
        let disk = match &options.disk_cache {
            Some(o) => Some(DiskCache::open(o.clone())?),
            None => None,
        };
        if let Some(d) = &disk {
            world.insert_resource(DiskTier::new(
                d.clone(),
                Some(pool.clone()),
                progress.clone(),
            ));
        }
        let workers = options.workers.max(1);
        world.insert_resource(Decoders(DecodePool::with_options(DecodePoolOptions {
            workers,
            registry: options.registry,
            queue: options.queue_per_worker,
            // Frames kept on the way to requested ones: part of the budget's headroom above
            // the warning level (an eighth of the budget over all workers, at most 128 MiB each).
            skip_cache_bytes: (options.memory.max_memory / 8 / workers).min(128 << 20),
            pool: Some(pool),
            disk,
            progress: progress.clone(),
        })));
        // The timeline index exists from the start (the performance map reads it before the
        // first tick).
        {
            use bevy_ecs::system::RunSystemOnce;
            let _ = world.run_system_once(framelock_systems::index_timeline);
        }
        let epoch = clock.now();
        Ok(Self {
            world,
            schedule: playback_schedule(),
            pacer: FramePacer::new(project.frame_rate),
            clock,
            epoch,
            last_tick: None,
            puffin,
            progress,
        })
    }

    /// Clients connected to the live profile server (`None`: no server).
    pub fn puffin_clients(&self) -> Option<usize> {
        self.puffin.as_ref().map(puffin_http::Server::num_clients)
    }

    /// Waits for the next tick's deadline on the clock (skipping ticks if behind), then runs
    /// the schedule once. Returns what ran.
    pub fn tick(&mut self) -> TickPlan {
        let now = self.clock.now().saturating_sub(self.epoch);
        let plan = self.pacer.next(self.last_tick, now);
        self.clock.sleep_until(self.epoch + plan.due);
        self.run(plan);
        plan
    }

    fn run(&mut self, plan: TickPlan) {
        *self.world.resource_mut::<Tick>() = Tick {
            index: plan.tick,
            skipped: plan.skipped,
        };
        let start = Instant::now();
        let presented_before = self.world.resource::<Metrics>().presented;
        self.schedule.run(&mut self.world);
        let took = start.elapsed();
        let at = self.clock.now();
        let mut metrics = self.world.resource_mut::<Metrics>();
        metrics.record_tick(took, at);
        if metrics.presented > presented_before {
            // On screen at the tick's deadline (the loop slept until it).
            metrics.record_present(self.epoch + plan.due);
        }
        self.last_tick = Some(plan.tick);
    }

    /// Restarts tick timing from now (after a pause in driving the loop).
    pub fn resync(&mut self) {
        self.epoch = self.clock.now();
        // A frame interval across the break would measure the host, not playback.
        self.world.resource_mut::<Metrics>().last_presented_at = None;
        self.last_tick = None;
    }

    /// The ECS world: hosts may add their own components and read the engine's.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The ECS world, mutably (between ticks).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Replaces the effects of the clip on `track` that starts at timeline frame `start`
    /// (an empty stack removes them). Its effect-stack hash changes with it, so exactly that
    /// clip's rendered frames miss from now on. Returns `false` when there is no such clip.
    pub fn set_clip_effects(&mut self, track: usize, start: u64, effects: EffectStack) -> bool {
        let mut q = self.world.query::<(Entity, &Clip)>();
        let Some(e) = q
            .iter(&self.world)
            .find(|(_, c)| c.track == track && c.start == start)
            .map(|(e, _)| e)
        else {
            return false;
        };
        if !effects.is_empty() {
            self.world.resource_mut::<Renderer>().0.start_gpu();
        }
        let mut entity = self.world.entity_mut(e);
        if effects.is_empty() {
            entity.remove::<(EffectStack, EffectsKey, HasEffects)>();
        } else {
            entity.insert((EffectsKey(effects.hash()), HasEffects, effects));
        }
        true
    }

    /// The quality settings, to change between ticks (`gpu_acceleration`, the effect LOD...).
    pub fn quality_mut(&mut self) -> Mut<'_, QualitySettings> {
        self.world.resource_mut::<QualitySettings>()
    }

    /// The project's frame rate.
    pub fn frame_rate(&self) -> Rational {
        self.pacer.rate()
    }

    /// The playhead.
    pub fn playhead(&self) -> Playhead {
        *self.world.resource::<Playhead>()
    }

    /// Metrics so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.world.resource::<Metrics>().snapshot()
    }

    /// Starts playing from the current frame.
    pub fn play(&mut self) {
        let mut p = self.world.resource_mut::<Playhead>();
        if p.state != PlayState::Playing {
            p.state = PlayState::Playing;
            p.fresh = true;
        }
    }

    /// Stops advancing (the current frame stays on screen).
    pub fn pause(&mut self) {
        self.world.resource_mut::<Playhead>().state = PlayState::Paused;
    }

    /// Play rate in frames per tick: 1 normal, 2 double, -1 reverse.
    pub fn set_rate(&mut self, rate: f64) {
        let mut p = self.world.resource_mut::<Playhead>();
        if rate.is_finite() && rate != 0.0 && rate != p.rate {
            p.rate = rate;
            p.generation += 1; // the prefetch window changed direction or reach
        }
    }

    /// Jumps to timeline frame `frame` (clamped); stale decode work is cancelled.
    pub fn seek_frame(&mut self, frame: u64) {
        self.world.resource_mut::<Playhead>().seek(frame);
    }

    /// Jumps to the frame shown at `seconds` (exact: the last frame starting at or before it).
    pub fn seek(&mut self, seconds: f64) {
        let t = Duration::from_secs_f64(seconds.max(0.0));
        self.seek_frame(self.pacer.tick_at(t));
    }

    /// Replaces the frame sink.
    pub fn set_frame_sink(&mut self, sink: impl FnMut(PresentedFrame) + Send + Sync + 'static) {
        self.world.insert_resource(FrameSink(Box::new(sink)));
    }

    /// Decode jobs queued or running.
    pub fn decodes_in_flight(&self) -> usize {
        self.world.resource::<Decoders>().0.in_flight()
    }

    /// Decode jobs dropped undecoded because a seek made them stale.
    pub fn decodes_dropped_stale(&self) -> u64 {
        self.world.resource::<Decoders>().0.dropped_stale()
    }

    /// Blocks until the decode workers are idle (tests, offline render; never in a tick).
    pub fn wait_decodes(&self, timeout: Duration) -> bool {
        self.world.resource::<Decoders>().0.wait_idle(timeout)
    }

    /// Blocks until every worker is idle: decodes, renders (and the GPU's path measurement),
    /// disk reads. Their results are collected by the next tick. For tests and drivers
    /// between ticks; never in a tick.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.progress.wait_until(timeout, || {
            let decoding = self.world.resource::<Decoders>().0.in_flight() > 0;
            let rendering = {
                let r = &self.world.resource::<Renderer>().0;
                r.running() > 0 || r.calibrating()
            };
            let reading = self
                .world
                .get_resource::<DiskTier>()
                .is_some_and(|d| d.reads_in_flight() > 0);
            !decoding && !rendering && !reading
        })
    }

    /// The counter every worker bumps when it finishes a job (decode, render, disk read).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Pictures being rendered (submitted, not collected).
    pub fn renders_in_flight(&self) -> usize {
        self.world.resource::<RenderState>().in_flight()
    }

    /// What the render path did so far (effects frames per path, composites, rendered ahead,
    /// the effect LOD).
    pub fn render_stats(&self) -> RenderStats {
        self.world.resource::<RenderState>().stats()
    }

    /// Switches between real-time playback and offline rendering (see
    /// [`crate::OfflineRenderer`]).
    pub(crate) fn set_render_mode(&mut self, mode: RenderMode) {
        self.world.insert_resource(mode);
    }

    /// Runs tick `index` of the schedule now, without the clock (offline rendering).
    pub(crate) fn run_tick(&mut self, index: u64) {
        self.run(TickPlan {
            tick: index,
            skipped: 0,
            due: self.clock.now().saturating_sub(self.epoch),
        });
    }

    /// Queues the strategy's proxy resolutions (those below each file's height, whatever the
    /// switch thresholds) for `files`; proxies already fresh on disk are ready at once. Files
    /// of this project are picked up by playback as soon as their proxies are ready.
    pub fn generate_proxies(&self, files: &[PathBuf]) -> Result<Vec<JobId>, PlayerError> {
        let service = self
            .world
            .get_resource::<ProxyService>()
            .ok_or(PlayerError::ProxiesDisabled)?;
        queue_proxies(
            &service.manager,
            &service.strategy.generation,
            files,
            |absolute| {
                let &e = service.sources.get(absolute)?;
                Some(self.world.get::<MediaAsset>(e)?.info.video.height)
            },
        )
    }

    /// Every proxy job, by id (empty without proxies).
    pub fn proxy_status(&self) -> Vec<ProxyJobStatus> {
        self.proxy_manager().map(|m| m.status()).unwrap_or_default()
    }

    /// The proxy manager, when proxies are enabled.
    pub fn proxy_manager(&self) -> Option<Arc<ProxyManager>> {
        self.world
            .get_resource::<ProxyService>()
            .map(|s| s.manager.clone())
    }

    /// Whether clips play from proxies (`auto`: by mode thresholds and measured load).
    pub fn set_use_proxy(&mut self, use_proxy: UseProxy) {
        self.world.resource_mut::<QualitySettings>().use_proxy = use_proxy;
    }

    /// Frames in memory (all states).
    pub fn frames_tracked(&self) -> usize {
        self.world.resource::<FrameIndex>().0.len()
    }

    /// Every cache tier's statistics and the memory pools' counts.
    pub fn cache_stats(&self) -> CacheStats {
        let m = self.world.resource::<Metrics>();
        let index = self.world.resource::<FrameIndex>();
        let decoded_entries = index.0.len();
        let rendered = self.world.resource::<RenderedFrames>();
        let rendered_bytes = rendered.bytes_used();
        let decoded_bytes = m.bytes_in_memory.saturating_sub(rendered_bytes);
        CacheStats {
            ram_decoded: TierStats {
                entries: decoded_entries,
                bytes: decoded_bytes,
                limit_bytes: self.world.resource::<MemoryBudget>().max_memory,
                hits: m.cache_hits,
                misses: m.cache_misses,
            },
            ram_rendered: Cache::stats(rendered),
            disk: self
                .world
                .get_resource::<DiskTier>()
                .map(|d| d.cache.stats()),
            vram: {
                let s = self.world.resource::<Renderer>().0.gpu_stats();
                (!s.is_empty()).then(|| TierStats {
                    entries: s.iter().map(|d| d.vram_entries).sum(),
                    bytes: s.iter().map(|d| d.vram_bytes).sum(),
                    limit_bytes: s.iter().map(|d| d.vram_limit).sum(),
                    hits: s.iter().map(|d| d.vram_hits).sum(),
                    misses: s.iter().map(|d| d.uploads).sum(),
                })
            },
            memory: self.world.resource::<Memory>().0.stats(),
            pressure: *self.world.resource::<Pressure>(),
            disk_reads: m.disk_reads,
            evicted: m.evicted,
            disk_writes_queued: m.disk_writes_queued,
        }
    }

    /// The memory budget.
    pub fn memory_budget(&self) -> MemoryBudget {
        *self.world.resource::<MemoryBudget>()
    }

    /// Empties a cache: decoded or rendered frames (RAM and disk; pinned frames and requests
    /// in flight stay; the picture on screen stays on screen), proxies (files deleted, clips back on their originals), or all. Returns what
    /// was removed.
    pub fn clear_cache(&mut self, what: ClearCache) -> Result<ClearedCache, PlayerError> {
        let mut cleared = ClearedCache::default();
        let decoded = matches!(what, ClearCache::Decoded | ClearCache::All);
        let rendered = matches!(what, ClearCache::Rendered | ClearCache::All);
        if decoded || rendered {
            let mut doomed = Vec::new();
            let mut q = self
                .world
                .query::<(Entity, &framelock_components::Frame, &CacheEntry)>();
            for (e, frame, entry) in q.iter(&self.world) {
                // In-flight requests finish normally; a picture on screen is held by present.
                if entry.pinned || !decoded || frame.state != FrameState::Ready {
                    continue;
                }
                doomed.push((e, frame.asset_id, frame.index));
            }
            for (e, asset, index) in doomed {
                self.world
                    .resource_mut::<FrameIndex>()
                    .0
                    .remove(&(asset, index));
                self.world.despawn(e);
                cleared.ram_entries += 1;
            }
            if decoded {
                cleared.vram_bytes += self.world.resource::<Renderer>().0.clear_vram();
            }
            if rendered {
                let mut r = self.world.resource_mut::<RenderedFrames>();
                cleared.ram_entries += r.entries.len();
                r.purge_memory();
            }
            self.world.resource::<Memory>().0.purge_idle();
            if let Some(disk) = self.world.get_resource::<DiskTier>() {
                let kind = match what {
                    ClearCache::Decoded => Some(CacheKind::Decoded),
                    ClearCache::Rendered => Some(CacheKind::Rendered),
                    _ => None,
                };
                cleared.disk_entries += disk.cache.clear(kind)?;
            }
        }
        if matches!(what, ClearCache::Proxies | ClearCache::All) {
            cleared.proxy_files += self.remove_proxies()?;
        }
        Ok(cleared)
    }

    /// Deletes every proxy file (and manifest) of this project's media and puts clips back on
    /// their originals. Running jobs are cancelled first.
    fn remove_proxies(&mut self) -> Result<usize, PlayerError> {
        let Some(service) = self.world.get_resource::<ProxyService>().cloned() else {
            return Ok(0);
        };
        for source in service.sources.keys() {
            service.manager.cancel_source(source);
        }
        let mut removed = 0;
        let statuses = service.manager.status();
        for status in statuses
            .iter()
            .filter(|s| service.sources.contains_key(&s.source))
        {
            for path in [status.path.clone(), status.path.with_extension("json")] {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(PlayerError::Io { path, source }),
                }
            }
        }
        service
            .manager
            .forget(|s| service.sources.contains_key(&s.source));
        // Proxy assets leave the world; clips fall back to their originals.
        let mut lists = self.world.query::<&mut ProxyAssets>();
        let mut proxy_assets = Vec::new();
        for mut list in lists.iter_mut(&mut self.world) {
            proxy_assets.extend(list.0.drain(..).map(|(_, _, e)| e));
        }
        let mut clips = self.world.query::<&mut Lod>();
        for mut lod in clips.iter_mut(&mut self.world) {
            *lod = Lod::Original;
        }
        for e in proxy_assets {
            self.world.despawn(e);
        }
        let mut proxies = self
            .world
            .query_filtered::<Entity, With<framelock_components::Proxy>>();
        let doomed: Vec<Entity> = proxies.iter(&self.world).collect();
        for e in doomed {
            self.world.despawn(e);
        }
        Ok(removed / 2)
    }

    /// Waits until the disk writer has written everything queued and the disk index is
    /// persisted (tests, benchmarks between phases, before exit).
    pub fn flush_disk_cache(&mut self) {
        if !self.world.contains_resource::<DiskTier>() {
            return;
        }
        loop {
            // Rendered write-throughs deferred while the writer was busy go first.
            let pending = self
                .world
                .resource_scope(|world, mut rendered: Mut<RenderedFrames>| {
                    if let Some(disk) = world.get_resource::<DiskTier>() {
                        rendered.retry_writes(disk);
                    }
                    rendered.pending_writes()
                });
            if let Some(mut d) = self.world.get_resource_mut::<DiskTier>() {
                d.drain();
            }
            if pending == 0 {
                break;
            }
        }
    }
}
