//! [`PlaybackEngine`]: the world, the playback schedule and the frame-locked loop, driven
//! from one thread. [`Player`](crate::Player) runs one on its own thread for UI hosts; tests
//! and tools drive one directly, on a virtual or wall clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use framelock_components::{
    Clip, Lod, MediaAsset, OutputFormat, PlayState, Playhead, Project, ProjectError, ProxyAssets,
    ProxyStrategy, QualitySettings, Rational, Track, UseProxy,
};
use framelock_engine::app::{Clock, FramePacer, TickPlan};
use framelock_engine::media::{DecoderRegistry, MediaError, ProbeCache, probe};
use framelock_engine::proxy::{JobId, ProxyJobStatus, ProxyManager, ProxyManagerOptions};
use framelock_engine::workers::DecodePool;
use framelock_systems::{
    AssetIds, Composited, DecodeLoad, Decoders, FrameIndex, FrameSink, Metrics, MetricsSnapshot,
    PresentedFrame, ProxyService, Tick, TimelineIndex, playback_schedule,
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

/// How to run playback.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Decoder backends.
    pub registry: DecoderRegistry,
    /// Decode worker threads.
    pub workers: usize,
    /// Jobs queued per worker.
    pub queue_per_worker: usize,
    /// Drop/hold policy, prefetch depth, memory budget.
    pub quality: QualitySettings,
    /// Where probe results are cached between loads (`None`: probe every file on open).
    pub probe_cache: Option<ProbeCache>,
    /// Proxy generation and switching (`None`: originals only).
    pub proxies: Option<ProxyOptions>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            registry: DecoderRegistry::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_per_worker: 8,
            quality: QualitySettings::default(),
            probe_cache: None,
            proxies: None,
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
                        let e = world
                            .spawn((
                                MediaAsset {
                                    id,
                                    path: clip.media.clone(),
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
                world.spawn((component, Lod::Original));
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
        world.insert_resource(Decoders(DecodePool::new(
            options.workers,
            options.registry,
            options.queue_per_worker,
        )));
        let epoch = clock.now();
        Ok(Self {
            world,
            schedule: playback_schedule(),
            pacer: FramePacer::new(project.frame_rate),
            clock,
            epoch,
            last_tick: None,
        })
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
        self.schedule.run(&mut self.world);
        let took = start.elapsed();
        let at = self.clock.now();
        self.world.resource_mut::<Metrics>().record_tick(took, at);
        self.last_tick = Some(plan.tick);
    }

    /// Restarts tick timing from now (after a pause in driving the loop).
    pub fn resync(&mut self) {
        self.epoch = self.clock.now();
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
}
