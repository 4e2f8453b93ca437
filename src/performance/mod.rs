//! The Performance API: what an editor's dashboard reads ([`PlaybackEngine::get_metrics`]),
//! one switch for the quality/performance trade ([`QualityMode`]), and an optimization report
//! computed from measurements ([`PlaybackEngine::run_optimization`]): suggestions that carry
//! their evidence and an action the API can apply, and a per-segment map of the timeline's
//! cost against the frame budget.
//!
//! Costs come from what was measured (decode seconds per frame per asset, compositing time);
//! an asset never decoded yet is estimated from its pixel count at the slowest measured
//! seconds per pixel of this session (or [`ASSUMED_SECONDS_PER_PIXEL`] before anything was
//! measured), and says so (`estimated: true`). The map and the report are in [`optimize`].

mod optimize;

use std::path::PathBuf;

use framelock_components::{
    ClearCache, EffectLod, MemoryBudget, OutputFormat, QualitySettings, UseProxy,
};
use framelock_engine::proxy::ProxyProgress;
#[cfg(doc)]
use framelock_engine::render::GpuUse;
use framelock_engine::render::{GpuState, PathChoice, RenderPath};
use framelock_systems::{DecodeLoad, MetricsSnapshot, RenderState, Renderer};

use crate::playback::{CacheStats, PlaybackEngine};

/// Decode cost assumed per pixel before anything was measured (openh264, one thread, this
/// project's test media on the development machine: 4K ≈ 32 ms, 1080p ≈ 8 ms a frame).
pub const ASSUMED_SECONDS_PER_PIXEL: f64 = 4.0e-9;

/// What the timeline performance map assumes one effect costs per output pixel on one render
/// worker (about one pass of the fast CPU path over a frame).
pub const ASSUMED_EFFECT_SECONDS_PER_PIXEL: f64 = 5.0e-9;

/// A preset of the quality settings that trade picture for smoothness; each sets the
/// quality controller's limits (the ladder's floor) as well as the proxy and drop policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QualityMode {
    /// Originals at full resolution, late frames held rather than skipped, the quality
    /// controller off (the picture is never lowered).
    Quality,
    /// Proxies when the source is too tall or too slow (`UseProxy::Auto`), full-size viewer;
    /// under load the controller may go down to half the viewer's height (at least 360
    /// lines).
    Balanced,
    /// Proxies whenever one is ready, a 720p viewer, late frames dropped; under load the
    /// controller may go down to 180 lines.
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
    /// The quality controller: rung, playback resolution, effect LOD cap, last change.
    pub adaptive: framelock_components::AdaptiveQuality,
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
            QualityMode::Quality => {
                q.use_proxy = UseProxy::Never;
                q.preview_height = None;
                q.drop_late_frames = false;
                q.auto_reduce_quality = false;
            }
            QualityMode::Balanced => {
                q.use_proxy = UseProxy::Auto;
                q.preview_height = None;
                q.drop_late_frames = true;
                q.auto_reduce_quality = true;
                q.min_resolution = (output.height / 2).max(360).min(output.height);
            }
            QualityMode::Performance => {
                q.use_proxy = UseProxy::Always;
                q.preview_height = (output.height > 720).then_some(720);
                q.drop_late_frames = true;
                q.auto_reduce_quality = true;
                q.min_resolution = 180;
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
            adaptive: self.adaptive_quality(),
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
}

/// The quality mode last set (for the metrics).
#[derive(bevy_ecs::prelude::Resource, Clone, Copy, Debug)]
struct ModeSet(QualityMode);
