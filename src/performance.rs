//! The Performance API: what an editor's dashboard reads ([`PlaybackEngine::get_metrics`]),
//! one switch for the quality/performance trade ([`QualityMode`]), and an optimization report
//! computed from measurements ([`PlaybackEngine::run_optimization`]): suggestions that carry
//! their evidence and an action the API can apply, and a per-segment map of the timeline's
//! cost against the frame budget.
//!
//! Costs come from what was measured (decode seconds per frame per asset, compositing time);
//! an asset never decoded yet is estimated from its pixel count at the slowest measured
//! seconds per pixel of this session (or [`ASSUMED_SECONDS_PER_PIXEL`] before anything was
//! measured), and says so (`estimated: true`).

use std::path::PathBuf;

use framelock_components::{
    ClearCache, Clip, EffectLod, Lod, MediaAsset, MemoryBudget, OutputFormat, ProxyAssets,
    QualitySettings, UseProxy,
};
use framelock_engine::proxy::ProxyProgress;
#[cfg(doc)]
use framelock_engine::render::GpuUse;
use framelock_engine::render::{GpuState, PathChoice, RenderPath};
use framelock_systems::{
    DecodeLoad, Decoders, MetricsSnapshot, RenderCost, RenderState, Renderer, TimelineIndex,
};

use crate::playback::{CacheStats, PlaybackEngine, PlayerError};

/// Decode cost assumed per pixel before anything was measured (openh264, one thread, this
/// project's test media on the development machine: 4K ≈ 32 ms, 1080p ≈ 8 ms a frame).
pub const ASSUMED_SECONDS_PER_PIXEL: f64 = 4.0e-9;

/// A preset of the quality settings that trade picture for smoothness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QualityMode {
    /// Originals at full resolution, late frames held rather than skipped.
    Full,
    /// Proxies when the source is too tall or too slow (`UseProxy::Auto`), full-size viewer.
    Balanced,
    /// Proxies whenever one is ready, a 720p viewer, late frames dropped.
    Performance,
}

/// GPU side of the metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuStatus {
    /// The GPU is open.
    Active {
        /// The devices' names, as their drivers report them.
        devices: Vec<String>,
        /// Every device is a software rasteriser (lavapipe).
        software: bool,
        /// The path effects run on now (the measured choice, [`GpuUse::Always`], or the CPU
        /// path while the measurement runs).
        effects_on: RenderPath,
        /// The measurement behind the choice (`None` until the first effects frame was
        /// measured, or with [`GpuUse::Always`]); its `reason` says why in words.
        choice: Option<PathChoice>,
        /// Effects frames rendered on the GPU / on the CPU path.
        gpu_frames: u64,
        /// See `gpu_frames`.
        cpu_frames: u64,
        /// Bytes of uploaded planes held in VRAM (the L1 tier), all devices.
        vram_bytes: usize,
        /// The effect LOD now.
        lod: EffectLod,
        /// Wall time of the last effects frame on its path (upload to readback on the GPU),
        /// ms.
        last_render_ms: f64,
        /// GPU time per shader of the last frame read back (ms, first device), from timestamp
        /// queries; `None` where the adapter has none.
        pass_ms: Option<Vec<(String, f64)>>,
    },
    /// Not opened yet: the GPU opens (on its own thread) with the first effects.
    NotStarted,
    /// Opening on its own thread; effects render on the CPU path meanwhile.
    Opening,
    /// Effects run on the CPU path: why (no adapter, turned off). No GPU timings (never a
    /// made-up number).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// One source's measured decode cost.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceDecode {
    /// The file.
    pub path: PathBuf,
    /// Picture height.
    pub height: u32,
    /// Worker milliseconds per frame (moving average), if decoded yet.
    pub ms_per_frame: Option<f64>,
}

/// Everything a dashboard shows.
#[derive(Clone, Debug, PartialEq)]
pub struct PerformanceMetrics {
    /// fps, frame-time percentiles, drops, held frames, decode times.
    pub playback: MetricsSnapshot,
    /// Decode cost per source (originals and proxies), sorted by path.
    pub decode_per_source: Vec<SourceDecode>,
    /// Memory by pool and by cache tier.
    pub cache: CacheStats,
    /// The budget the memory is held to.
    pub budget: MemoryBudget,
    /// GPU device and per-pass times.
    pub gpu: GpuStatus,
    /// Proxy jobs, when proxies are enabled.
    pub proxies: Option<ProxyProgress>,
    /// The mode last set, if any.
    pub quality_mode: Option<QualityMode>,
}

/// What a suggestion is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuggestionKind {
    /// Sources too heavy to play from originals.
    Proxies,
    /// The memory budget cannot hold the prefetch window.
    MemoryBudget,
    /// Cached frames nobody used for a long time.
    StaleCache,
    /// The timeline cannot play smoothly as set.
    QualityMode,
    /// Effects run on the CPU path while a GPU is available.
    Gpu,
}

/// An action the API can apply ([`PlaybackEngine::apply`]).
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizationAction {
    /// Queue proxies for these files.
    GenerateProxies(Vec<PathBuf>),
    /// Raise the memory budget to this many bytes.
    SetMemoryBudget(usize),
    /// Empty a cache.
    ClearCache(ClearCache),
    /// Switch the quality mode.
    SetQualityMode(QualityMode),
    /// Turn GPU acceleration on or off (`QualitySettings::gpu_acceleration`).
    SetGpuAcceleration(bool),
}

/// One suggestion: what, why (numbers), and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// Its subject.
    pub kind: SuggestionKind,
    /// One sentence for a person.
    pub message: String,
    /// The measurements behind it (name, value).
    pub evidence: Vec<(String, f64)>,
    /// What applying it does.
    pub action: OptimizationAction,
}

/// Whether a stretch of the timeline plays in real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentStatus {
    /// Its cost fits the frame budget.
    Smooth,
    /// It does not.
    NeedsOptimization,
}

/// One stretch of the timeline between clip boundaries.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentCost {
    /// First timeline frame.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Visible layers.
    pub layers: usize,
    /// Milliseconds of work per frame (decode over the workers, plus compositing).
    pub cost_ms: f64,
    /// Milliseconds per frame at the project's rate.
    pub budget_ms: f64,
    /// Smooth or not.
    pub status: SegmentStatus,
    /// Part of the cost is estimated (a layer's source was never decoded yet).
    pub estimated: bool,
}

/// The report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizationReport {
    /// What to do, most important first.
    pub suggestions: Vec<Suggestion>,
    /// The timeline performance map, in order.
    pub timeline: Vec<SegmentCost>,
}

impl OptimizationReport {
    /// Whether some suggestion is of `kind`.
    pub fn suggests(&self, kind: SuggestionKind) -> bool {
        self.suggestions.iter().any(|s| s.kind == kind)
    }
}

impl PlaybackEngine {
    /// Applies a quality mode's preset to the quality settings.
    pub fn set_quality_mode(&mut self, mode: QualityMode) {
        let output = *self.world().resource::<OutputFormat>();
        let mut q = self.world_mut().resource_mut::<QualitySettings>();
        match mode {
            QualityMode::Full => {
                q.use_proxy = UseProxy::Never;
                q.preview_height = None;
                q.drop_late_frames = false;
            }
            QualityMode::Balanced => {
                q.use_proxy = UseProxy::Auto;
                q.preview_height = None;
                q.drop_late_frames = true;
            }
            QualityMode::Performance => {
                q.use_proxy = UseProxy::Always;
                q.preview_height = (output.height > 720).then_some(720);
                q.drop_late_frames = true;
            }
        }
        self.world_mut().insert_resource(ModeSet(mode));
    }

    /// The dashboard's numbers.
    pub fn get_metrics(&self) -> PerformanceMetrics {
        let world = self.world();
        let load = world.resource::<DecodeLoad>();
        let mut decode_per_source: Vec<SourceDecode> = self
            .assets()
            .into_iter()
            .map(|a| SourceDecode {
                path: a.path.clone(),
                height: a.info.video.height,
                ms_per_frame: load.seconds_per_frame(a.id).map(|s| s * 1e3),
            })
            .collect();
        decode_per_source.sort_by(|a, b| a.path.cmp(&b.path));
        PerformanceMetrics {
            playback: self.metrics(),
            decode_per_source,
            cache: self.cache_stats(),
            budget: self.memory_budget(),
            gpu: self.gpu_status(),
            proxies: self.proxy_manager().map(|m| m.progress()),
            quality_mode: world.get_resource::<ModeSet>().map(|m| m.0),
        }
    }

    /// Whether effects run on the GPU, and what it did.
    pub fn gpu_status(&self) -> GpuStatus {
        let world = self.world();
        let quality = world.resource::<QualitySettings>();
        let state = world.resource::<RenderState>();
        let service = &world.resource::<Renderer>().0;
        if !quality.gpu_acceleration {
            return GpuStatus::Unavailable {
                reason: "gpu_acceleration is off in the quality settings".into(),
            };
        }
        match service.gpu_state() {
            GpuState::Open { devices, software } => {
                let stats = service.gpu_stats();
                GpuStatus::Active {
                    devices,
                    software,
                    effects_on: service.effects_path(true),
                    choice: service.choice(),
                    gpu_frames: state.counts.gpu_frames,
                    cpu_frames: state.counts.cpu_frames,
                    vram_bytes: stats.iter().map(|s| s.vram_bytes).sum(),
                    lod: state.counts.lod,
                    last_render_ms: state.counts.last_render_ms,
                    pass_ms: stats.first().and_then(|s| {
                        s.pass_ms
                            .as_ref()
                            .map(|v| v.iter().map(|(n, ms)| ((*n).to_owned(), *ms)).collect())
                    }),
                }
            }
            GpuState::NotStarted => GpuStatus::NotStarted,
            GpuState::Opening => GpuStatus::Opening,
            GpuState::Disabled => GpuStatus::Unavailable {
                reason: "the GPU is disabled (EngineOptions::gpu is None)".into(),
            },
            GpuState::Unavailable(reason) => GpuStatus::Unavailable { reason },
        }
    }

    /// Every media asset (originals and proxies).
    fn assets(&self) -> Vec<&MediaAsset> {
        let world = self.world();
        match world.try_query::<&MediaAsset>() {
            Some(mut q) => q.iter(world).collect(),
            None => Vec::new(),
        }
    }

    /// The timeline performance map: per stretch between clip boundaries, the measured (or
    /// estimated) work per frame of what is visible there, at each clip's current level of
    /// detail, against the frame budget.
    pub fn performance_map(&self) -> Vec<SegmentCost> {
        let world = self.world();
        let Some(timeline) = world.get_resource::<TimelineIndex>() else {
            return Vec::new();
        };
        let output = world.resource::<OutputFormat>();
        let load = world.resource::<DecodeLoad>();
        let workers = world.resource::<Decoders>().0.workers().max(1) as f64;
        let composite = world.resource::<RenderCost>().composite_secs;
        let per_pixel = self.seconds_per_pixel();
        let budget_ms = 1e3 / output.frame_rate.as_f64().max(1e-9);
        let mut cuts: Vec<u64> = vec![0, self.playhead().duration];
        for track in &timeline.tracks {
            for &(start, end, _) in &track.clips {
                cuts.push(start);
                cuts.push(end);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut visible = Vec::new();
        let mut out = Vec::new();
        for w in cuts.windows(2) {
            let (start, end) = (w[0], w[1]);
            if start >= end {
                continue;
            }
            timeline.visible_at(start, &mut visible);
            let mut secs = 0.0;
            let mut estimated = false;
            for &(clip_entity, _) in &visible {
                let (Some(clip), lod) = (
                    world.get::<Clip>(clip_entity),
                    world.get::<Lod>(clip_entity).copied().unwrap_or_default(),
                ) else {
                    continue;
                };
                let Some(asset) = world.get::<MediaAsset>(lod.asset(clip)) else {
                    continue;
                };
                secs += match load.seconds_per_frame(asset.id) {
                    Some(s) => s,
                    None => {
                        estimated = true;
                        f64::from(asset.info.video.width)
                            * f64::from(asset.info.video.height)
                            * per_pixel
                    }
                };
            }
            let mut cost_ms = secs / workers * 1e3;
            if visible.len() > 1 {
                cost_ms += composite * 1e3;
            }
            out.push(SegmentCost {
                start,
                end,
                layers: visible.len(),
                cost_ms,
                budget_ms,
                status: if cost_ms <= budget_ms {
                    SegmentStatus::Smooth
                } else {
                    SegmentStatus::NeedsOptimization
                },
                estimated,
            });
        }
        out
    }

    /// The slowest measured decode seconds per pixel of this session, or the assumption.
    fn seconds_per_pixel(&self) -> f64 {
        let load = self.world().resource::<DecodeLoad>();
        self.assets()
            .iter()
            .filter_map(|a| {
                let px = f64::from(a.info.video.width) * f64::from(a.info.video.height);
                Some(load.seconds_per_frame(a.id)? / px.max(1.0))
            })
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
            .unwrap_or(ASSUMED_SECONDS_PER_PIXEL)
    }

    /// Looks at what was measured and says what would make playback smoother or leaner.
    pub fn run_optimization(&self) -> OptimizationReport {
        let world = self.world();
        let timeline = self.performance_map();
        let mut suggestions = Vec::new();
        let thresholds = world
            .get_resource::<framelock_systems::ProxyService>()
            .map(|s| s.strategy.auto_switch_thresholds)
            .unwrap_or_default();
        let workers = world.resource::<Decoders>().0.workers().max(1) as f64;
        let per_pixel = self.seconds_per_pixel();
        let load = world.resource::<DecodeLoad>();

        // 1. Heavy originals without a ready proxy.
        let mut heavy: Vec<(PathBuf, u32, u64, f64)> = Vec::new();
        let originals: Vec<(&MediaAsset, &ProxyAssets)> =
            match world.try_query::<(&MediaAsset, &ProxyAssets)>() {
                // Proxies have no ProxyAssets: only originals.
                Some(mut q) => q.iter(world).collect(),
                None => Vec::new(),
            };
        for (asset, proxies) in originals {
            let ready = proxies
                .0
                .iter()
                .any(|&(_, _, p)| world.get_entity(p).is_ok());
            let v = &asset.info.video;
            if v.height > thresholds.playback && !ready {
                let spf = load
                    .seconds_per_frame(asset.id)
                    .unwrap_or(f64::from(v.width) * f64::from(v.height) * per_pixel);
                heavy.push((asset.path.clone(), v.height, v.frame_count, spf));
            }
        }
        heavy.sort_by(|a, b| a.0.cmp(&b.0));
        if !heavy.is_empty() {
            // A proxy job decodes, scales and encodes every frame: about 1.5x the decode.
            let est_secs: f64 = heavy
                .iter()
                .map(|(_, _, frames, spf)| *frames as f64 * spf * 1.5 / workers)
                .sum();
            let tallest = heavy.iter().map(|h| h.1).max().unwrap_or(0);
            suggestions.push(Suggestion {
                kind: SuggestionKind::Proxies,
                message: format!(
                    "{} source(s) up to {tallest}p have no proxy: generate {}p proxies (est. {:.1} min)",
                    heavy.len(),
                    thresholds.playback,
                    est_secs / 60.0
                ),
                evidence: vec![
                    ("files".into(), heavy.len() as f64),
                    ("tallest_source_height".into(), f64::from(tallest)),
                    ("playback_threshold".into(), f64::from(thresholds.playback)),
                    ("estimated_seconds".into(), est_secs),
                ],
                action: OptimizationAction::GenerateProxies(
                    heavy.into_iter().map(|h| h.0).collect(),
                ),
            });
        }

        // 2. A budget too small for the prefetch window at the busiest point.
        let budget = self.memory_budget();
        let quality = world.resource::<QualitySettings>();
        let rate = self.playhead().rate.abs().max(1.0);
        let mut widest = 0usize;
        if let Some(index) = world.get_resource::<TimelineIndex>() {
            let mut visible = Vec::new();
            for seg in &timeline {
                index.visible_at(seg.start, &mut visible);
                let bytes: usize = visible
                    .iter()
                    .filter_map(|&(c, _)| {
                        let clip = world.get::<Clip>(c)?;
                        let lod = world.get::<Lod>(c).copied().unwrap_or_default();
                        let v = &world.get::<MediaAsset>(lod.asset(clip))?.info.video;
                        Some(v.width as usize * v.height as usize * 3 / 2)
                    })
                    .sum();
                widest = widest.max(bytes);
            }
        }
        let window = widest * (quality.prefetch_frames as f64 * rate) as usize + widest;
        if window > budget.warning_bytes() {
            let need =
                ((window as f64 / budget.warning_threshold) as usize).next_multiple_of(256 << 20);
            suggestions.push(Suggestion {
                kind: SuggestionKind::MemoryBudget,
                message: format!(
                    "the prefetch window needs {} MiB at this rate, the budget allows {} MiB before evicting: raise it to {} MiB",
                    window >> 20,
                    budget.warning_bytes() >> 20,
                    need >> 20
                ),
                evidence: vec![
                    ("window_bytes".into(), window as f64),
                    ("warning_bytes".into(), budget.warning_bytes() as f64),
                    ("prefetch_frames".into(), quality.prefetch_frames as f64),
                    ("rate".into(), rate),
                ],
                action: OptimizationAction::SetMemoryBudget(need),
            });
        }

        // 3. Decoded frames held but unused for over a minute.
        let tick = world.resource::<framelock_systems::Tick>().index;
        let fps = world.resource::<OutputFormat>().frame_rate.as_f64();
        let minute = (60.0 * fps) as u64;
        let (mut stale_bytes, mut oldest) = (0usize, 0u64);
        let entries: Vec<&framelock_components::CacheEntry> = match world.try_query::<(
            &framelock_components::Frame,
            &framelock_components::CacheEntry,
        )>() {
            Some(mut q) => q.iter(world).map(|(_, e)| e).collect(),
            None => Vec::new(),
        };
        for entry in entries {
            if tick.saturating_sub(entry.last_use) > minute {
                stale_bytes += entry.bytes;
                oldest = oldest.max(tick - entry.last_use);
            }
        }
        if stale_bytes >= 64 << 20 {
            suggestions.push(Suggestion {
                kind: SuggestionKind::StaleCache,
                message: format!(
                    "the cache holds {} MiB of frames unused for {:.1} min or more: clear it",
                    stale_bytes >> 20,
                    oldest as f64 / fps / 60.0
                ),
                evidence: vec![
                    ("stale_bytes".into(), stale_bytes as f64),
                    ("oldest_unused_seconds".into(), oldest as f64 / fps),
                ],
                action: OptimizationAction::ClearCache(ClearCache::Decoded),
            });
        }

        // 4. Parts of the timeline over budget even with what the settings allow.
        let over: Vec<&SegmentCost> = timeline
            .iter()
            .filter(|s| s.status == SegmentStatus::NeedsOptimization)
            .collect();
        if !over.is_empty() && quality.use_proxy != UseProxy::Always {
            let frames: u64 = over.iter().map(|s| s.end - s.start).sum();
            let worst = over.iter().map(|s| s.cost_ms).fold(0.0, f64::max);
            suggestions.push(Suggestion {
                kind: SuggestionKind::QualityMode,
                message: format!(
                    "{frames} frames of the timeline cost up to {worst:.1} ms against {:.1} ms a frame: switch to the performance mode",
                    over[0].budget_ms
                ),
                evidence: vec![
                    ("frames_over_budget".into(), frames as f64),
                    ("worst_cost_ms".into(), worst),
                    ("budget_ms".into(), over[0].budget_ms),
                ],
                action: OptimizationAction::SetQualityMode(QualityMode::Performance),
            });
        }
        // 5. Effects rendered on the CPU path while an adapter is there to take them.
        let state = world.resource::<RenderState>();
        if !quality.gpu_acceleration && state.counts.cpu_frames > 0 {
            let found = framelock_engine::gpu::adapters();
            if let Some(best) = found.first() {
                suggestions.push(Suggestion {
                    kind: SuggestionKind::Gpu,
                    message: format!(
                        "effects ran on the CPU path for {} frames ({:.1} ms the last): GPU available ({}), enable it",
                        state.counts.cpu_frames,
                        state.counts.last_render_ms,
                        best.name
                    ),
                    evidence: vec![
                        ("cpu_frames".into(), state.counts.cpu_frames as f64),
                        ("last_render_ms".into(), state.counts.last_render_ms),
                        ("adapters".into(), found.len() as f64),
                    ],
                    action: OptimizationAction::SetGpuAcceleration(true),
                });
            }
        }
        OptimizationReport {
            suggestions,
            timeline,
        }
    }

    /// Applies a suggestion's action.
    pub fn apply(&mut self, action: &OptimizationAction) -> Result<(), PlayerError> {
        match action {
            OptimizationAction::GenerateProxies(files) => {
                self.generate_proxies(files)?;
            }
            OptimizationAction::SetMemoryBudget(bytes) => {
                let mut b = self.world_mut().resource_mut::<MemoryBudget>();
                b.max_memory = *bytes;
                let pool = self
                    .world()
                    .resource::<framelock_systems::Memory>()
                    .0
                    .clone();
                pool.set_limit(*bytes);
            }
            OptimizationAction::ClearCache(what) => {
                self.clear_cache(*what)?;
            }
            OptimizationAction::SetQualityMode(mode) => self.set_quality_mode(*mode),
            OptimizationAction::SetGpuAcceleration(on) => {
                self.world_mut()
                    .resource_mut::<QualitySettings>()
                    .gpu_acceleration = *on;
            }
        }
        Ok(())
    }
}

/// The quality mode last set (for the metrics).
#[derive(bevy_ecs::prelude::Resource, Clone, Copy, Debug)]
struct ModeSet(QualityMode);
