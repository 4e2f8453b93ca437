//! [`PlaybackEngine`]: the world, the playback schedule and the frame-locked loop, driven
//! from one thread. [`Player`](crate::Player) runs one on its own thread for UI hosts; tests
//! and tools drive one directly, on a virtual or wall clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod audio;
pub(crate) mod budget;
mod caches;
mod edit;
mod events;
mod options;

pub use options::{CacheStats, ClearedCache, EngineOptions, PlayerError, ProxyOptions};

use bevy_ecs::prelude::*;
use framelock_components::{
    MediaAsset, OutputFormat, PlayState, Playhead, Project, QualitySettings, Rational, UseProxy,
};
use framelock_engine::app::{Clock, FramePacer, TickPlan};
use framelock_engine::audio::{AudioSink, Waveforms};
use framelock_engine::cache::DiskCache;
use framelock_engine::media::{DecoderRegistry, probe};
use framelock_engine::proxy::{JobId, ProxyJobStatus, ProxyManager};
use framelock_engine::render::{RenderService, RenderServiceOptions};
use framelock_engine::signal::Progress;
use framelock_engine::workers::{DecodePool, DecodePoolOptions};
use framelock_systems::EngineEvent;
use framelock_systems::{
    Decoders, DiskTier, FrameSink, Metrics, MetricsSnapshot, OnScreen, PresentedFrame,
    ProxyService, RenderMode, RenderState, RenderStats, Renderer, Tick, TimelineSync, WorldBuilder,
};

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
    pub(crate) world: World,
    schedule: Schedule,
    pacer: FramePacer,
    clock: Arc<dyn Clock>,
    /// Clock time of tick 0 of the current run.
    epoch: Duration,
    last_tick: Option<u64>,
    /// The playhead (frame, generation, edits) the last tick ran for.
    last_ran_for: Option<(u64, u64, u64)>,
    /// The live profile server, when [`EngineOptions::puffin_server`] asked for one.
    puffin: Option<puffin_http::Server>,
    /// Bumped by every worker (decode, render, disk read) when it finishes a job.
    progress: Progress,
    /// The audio output, and the playhead generation and play state it was last set for.
    audio: Option<audio::AudioSync>,
    /// The output the mix plays on, when the host gave one ([`PlaybackEngine::set_audio_sink`]).
    audio_sink: Option<Box<dyn AudioSink>>,
    /// Waveform peaks of the project's audio, computed in the background.
    waveforms: Waveforms,
    /// Events for the host (bounded: when the host does not read them, new ones are
    /// dropped and counted, never waited on).
    events: (
        crossbeam_channel::Sender<EngineEvent>,
        crossbeam_channel::Receiver<EngineEvent>,
    ),
    events_dropped: u64,
    /// The play state last reported.
    reported_state: PlayState,
    /// The timeline as edited ([`PlaybackEngine::edit`]).
    pub(crate) project: Project,
    /// What opening an edit's new media needs.
    media: edit::MediaContext,
    /// What the last edit did to the clip entities.
    last_sync: TimelineSync,
    /// The background render queue's engine side.
    pub(crate) background: crate::background::Background,
}

/// Events the host has not read yet, at most.
const EVENT_CAPACITY: usize = 1024;

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
        if options.return_freed_memory {
            framelock_engine::memory::return_freed_memory();
        }
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
        let mut builder = WorldBuilder::new(
            OutputFormat {
                frame_rate: project.frame_rate,
                width: project.width,
                height: project.height,
            },
            duration,
            project.quality_or(options.quality),
            options.memory,
        );
        let mut assets: BTreeMap<PathBuf, Entity> = BTreeMap::new();
        for (ti, track) in project.tracks.iter().enumerate() {
            builder.track(ti, track.opacity);
            for (ci, clip) in track.clips.iter().enumerate() {
                let asset = match assets.get(&clip.media) {
                    Some(&e) => e,
                    None => {
                        let asset = edit::probe_asset(
                            &clip.media,
                            &options.registry,
                            options.probe_cache.as_ref(),
                        )?;
                        let e = builder.asset(asset);
                        assets.insert(clip.media.clone(), e);
                        e
                    }
                };
                let placed = match builder.world_mut().get::<MediaAsset>(asset) {
                    Some(info) => edit::place(asset, info, (ti, ci), clip, project.frame_rate)?,
                    None => return Err(PlayerError::EmptyTimeline),
                };
                builder.clip(placed, &clip.effects);
            }
        }
        if let Some(proxies) = &options.proxies {
            let mut sources = std::collections::HashMap::new();
            for (path, &entity) in &assets {
                let absolute = framelock_engine::proxy::files::absolute(path);
                if proxies.auto_generate
                    && let Some(asset) = builder.world_mut().get::<MediaAsset>(entity)
                {
                    proxies.manager.submit_for(
                        &absolute,
                        asset.info.video.height,
                        &proxies.strategy,
                    );
                }
                sources.insert(absolute, entity);
            }
            builder.proxies(ProxyService {
                manager: proxies.manager.clone(),
                strategy: proxies.strategy.clone(),
                sources,
            });
        }
        let (need, originals_need) = {
            let media: std::collections::HashMap<PathBuf, _> = assets
                .iter()
                .filter_map(|(path, &e)| {
                    let asset = builder.world_mut().get::<MediaAsset>(e)?;
                    Some((path.clone(), asset.info.video.clone()))
                })
                .collect();
            let originals = budget::need(project, &media, |h| h);
            // Proxies may stand in for the originals: then the smallest one sets the floor.
            let need = match &options.proxies {
                Some(p) => budget::need(project, &media, |h| {
                    p.strategy.heights_for(h).first().copied().unwrap_or(h)
                }),
                None => originals,
            };
            (need, originals)
        };
        need.check(options.memory.max_memory)?;
        builder.sink(sink);
        let background = crate::background::Background::new(&options, originals_need.minimum);
        let pool = builder.pool();
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
        // (Not while the host has the GPU off: the device, and on a machine without a GPU
        // the software Vulkan stack, would take memory for nothing; the first effects work
        // with it on starts it.)
        if options.quality.gpu_acceleration
            && project
                .tracks
                .iter()
                .any(|t| t.clips.iter().any(|c| !c.effects.is_empty()))
        {
            service.start_gpu();
        }
        let disk = match (&options.shared_disk_cache, &options.disk_cache) {
            (Some(shared), _) => Some(shared.clone()),
            (None, Some(o)) => Some(DiskCache::open(o.clone())?),
            (None, None) => None,
        };
        if let Some(d) = &disk {
            builder.disk(DiskTier::new(
                d.clone(),
                Some(pool.clone()),
                progress.clone(),
            ));
        }
        let workers = options.workers.max(1);
        let decoders = DecodePool::with_options(DecodePoolOptions {
            workers,
            registry: options.registry.clone(),
            queue: options.queue_per_worker,
            // Frames kept on the way to requested ones: part of the budget's headroom above
            // the warning level (an eighth of the budget over all workers, at most 128 MiB each).
            skip_cache_bytes: (options.memory.max_memory / 8 / workers).min(128 << 20),
            pool: Some(pool.clone()),
            disk,
            progress: progress.clone(),
            // Decoders open while the budget has room below its critical level (past it a
            // worker closes its least recently used ones: the frames above the warning level
            // are evicted, decoders are not); and when a decoder per shown clip per worker
            // cannot fit below the warning level, each asset decodes on one worker only.
            decoder_room: Some(options.memory.critical_bytes()),
            by_asset: workers * need.decoders > options.memory.warning_bytes(),
            decoders_expected: need.decoders,
            clock: options.cost_clock.clone(),
        });
        let (world, schedule) = builder.build(decoders, service, options.output_pixels);
        let mut world = world;
        // What the budget holds outside the frame caches before the first tick (the decoders'
        // reservation): evict measures it after each tick, prefetch's first window needs it.
        world.resource_mut::<Metrics>().bytes_outside_caches = pool.in_use_bytes();
        let waveforms = Waveforms::new(options.disk_cache.as_ref().map(|d| d.dir.join("analysis")));
        let mut media = edit::MediaContext {
            registry: options.registry.clone(),
            probe_cache: options.probe_cache.clone(),
            auto_proxies: options.proxies.as_ref().is_some_and(|p| p.auto_generate),
            audio: options.audio,
            audio_ring_frames: options.audio_ring_frames,
            scrub_audio: options.scrub_audio,
            pool: pool.clone(),
            silent: Default::default(),
        };
        let audio = edit::start_audio(project, &mut media, &waveforms, &mut world)?;
        let epoch = clock.now();
        Ok(Self {
            world,
            schedule,
            pacer: FramePacer::new(project.frame_rate),
            clock,
            epoch,
            last_tick: None,
            last_ran_for: None,
            puffin,
            progress,
            audio,
            audio_sink: None,
            waveforms,
            events: crossbeam_channel::bounded(EVENT_CAPACITY),
            events_dropped: 0,
            reported_state: PlayState::Paused,
            project: project.clone(),
            media,
            last_sync: TimelineSync::default(),
            background,
        })
    }

    /// Clients connected to the live profile server (`None`: no server).
    pub fn puffin_clients(&self) -> Option<usize> {
        self.puffin.as_ref().map(puffin_http::Server::num_clients)
    }

    /// Waits for the next tick's deadline on the clock (skipping ticks if behind), then runs
    /// the schedule once. Returns what ran.
    ///
    /// Paused with the playhead's exact picture not on screen yet (a seek, a scrub step),
    /// the loop does not wait for frame boundaries: a playhead moved since the last tick is
    /// acted on at once (the decode is asked for now), and while workers decode or render
    /// for it the wait ends as soon as one of them finishes, so what landed is shown at once.
    /// (Paused, the tick grid's phase means nothing: it restarts from that tick.)
    pub fn tick(&mut self) -> TickPlan {
        let now = self.clock.now().saturating_sub(self.epoch);
        let plan = self.pacer.next(self.last_tick, now);
        let due = self.epoch + plan.due;
        let seen = self.progress.count();
        let outstanding = self.picture_outstanding();
        let moved = self.last_ran_for != Some(self.world.resource::<Playhead>().picture_key());
        let woken = if outstanding && moved {
            true
        } else if outstanding && self.work_in_flight() {
            self.clock.sleep_until_or_woken(due, &self.progress, seen)
        } else {
            self.clock.sleep_until(due);
            false
        };
        if woken {
            self.epoch = self.clock.now().saturating_sub(plan.due);
        }
        self.run(plan);
        plan
    }

    /// Paused (not offline) and the exact picture of the playhead's frame not on screen.
    fn picture_outstanding(&self) -> bool {
        let playhead = self.world.resource::<Playhead>();
        playhead.state == PlayState::Paused
            && self.world.get_resource::<RenderMode>() != Some(&RenderMode::Offline)
            && !self.world.resource::<OnScreen>().shows(playhead)
    }

    /// The clock time the next [`PlaybackEngine::tick`] runs at: its frame's deadline (or
    /// now, when the loop is behind). Paused with a picture outstanding, a tick may run
    /// earlier (see [`PlaybackEngine::tick`]). For drivers that simulate work on a
    /// virtual clock up to the next tick.
    pub fn next_tick_due(&self) -> Duration {
        let now = self.clock.now().saturating_sub(self.epoch);
        self.epoch + self.pacer.next(self.last_tick, now).due
    }

    /// Decodes, renders or disk reads not collected yet.
    fn work_in_flight(&self) -> bool {
        let renderer = &self.world.resource::<Renderer>().0;
        self.world.resource::<Decoders>().0.in_flight() > 0
            || renderer.running() > 0
            || self
                .world
                .get_resource::<DiskTier>()
                .is_some_and(|d| d.reads_in_flight() > 0)
    }

    fn run(&mut self, plan: TickPlan) {
        self.sync_audio();
        *self.world.resource_mut::<Tick>() = Tick {
            index: plan.tick,
            skipped: plan.skipped,
        };
        let start = Instant::now();
        let presented_before = self.world.resource::<Metrics>().presented;
        self.schedule.run(&mut self.world);
        let took = start.elapsed();
        let at = self.clock.now();
        let playing = self.world.resource::<Playhead>().state == PlayState::Playing;
        let due = self.epoch + plan.due;
        let mut metrics = self.world.resource_mut::<Metrics>();
        // A new picture is on screen at the tick's deadline (the loop slept until it).
        let presented = metrics.presented > presented_before;
        metrics.record_tick(took, at, playing, due, presented);
        self.last_tick = Some(plan.tick);
        self.last_ran_for = Some(self.world.resource::<Playhead>().picture_key());
        self.emit_tick_events();
        self.export_tick();
        self.background_tick(took);
    }

    /// The clock's time now.
    pub(crate) fn clock_now(&self) -> Duration {
        self.clock.now()
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

    /// The quality settings, to change between ticks (`gpu_acceleration`, the effect LOD...).
    pub fn quality_mut(&mut self) -> Mut<'_, QualitySettings> {
        self.world.resource_mut::<QualitySettings>()
    }

    /// Where the quality controller stands: the rung, the playback resolution and effect
    /// LOD it means, the last change and why (see `QualitySettings::auto_reduce_quality`).
    pub fn adaptive_quality(&self) -> framelock_components::AdaptiveQuality {
        self.world
            .get_resource::<framelock_components::AdaptiveQuality>()
            .cloned()
            .unwrap_or_default()
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
        self.background.touch(self.clock.now());
        self.emit_state();
    }

    /// Stops advancing (the current frame stays on screen).
    pub fn pause(&mut self) {
        self.world.resource_mut::<Playhead>().state = PlayState::Paused;
        self.background.touch(self.clock.now());
        self.emit_state();
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
        self.background.touch(self.clock.now());
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

    /// Decode workers with a job queued or being decoded (the others wait for work).
    pub fn busy_decode_workers(&self) -> usize {
        self.world.resource::<Decoders>().0.busy_workers()
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
            !self.work_in_flight() && !self.world.resource::<Renderer>().0.calibrating()
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

    /// Render jobs queued or running on a render worker (their results may still wait to
    /// be collected by a tick).
    pub fn renders_running(&self) -> usize {
        self.world.resource::<Renderer>().0.running()
    }

    /// What the render path did so far (effects frames per path, composites, rendered ahead,
    /// the effect LOD).
    pub fn render_stats(&self) -> RenderStats {
        self.world.resource::<RenderState>().stats()
    }

    /// Switches between real-time playback and offline rendering (see
    /// [`crate::OfflineRenderer`]).
    /// The engine's buffer pool (what its budget counts).
    pub(crate) fn pool(&self) -> &framelock_engine::memory::BufferPool {
        &self.media.pool
    }

    pub(crate) fn set_render_mode(&mut self, mode: RenderMode) {
        if let Some(r) = self.world.get_resource::<Renderer>() {
            r.0.set_whole_frames(mode == RenderMode::Offline);
        }
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
}
