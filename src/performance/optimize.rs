//! The timeline performance map and the optimization report: per stretch of the timeline
//! its measured (or estimated) cost against the frame budget, and suggestions that carry
//! their evidence and an action [`PlaybackEngine::apply`] runs.

use std::path::PathBuf;

use framelock_components::{
    ClearCache, Clip, EffectStack, Lod, MediaAsset, MemoryBudget, OutputFormat, ProxyAssets,
    QualitySettings, UseProxy,
};
#[cfg(doc)]
use framelock_engine::render::GpuUse;
use framelock_systems::{DecodeLoad, Decoders, RenderCost, RenderState, Renderer, TimelineIndex};

use super::{
    ASSUMED_EFFECT_SECONDS_PER_PIXEL, ASSUMED_SECONDS_PER_PIXEL, OptimizationAction,
    OptimizationReport, QualityMode, SegmentCost, SegmentStatus, Suggestion, SuggestionKind,
};
use crate::playback::{PlaybackEngine, PlayerError};

impl PlaybackEngine {
    /// Every media asset (originals and proxies).
    pub(super) fn assets(&self) -> Vec<&MediaAsset> {
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
        let out_pixels = f64::from(output.width) * f64::from(output.height);
        let render_workers = world.resource::<Renderer>().0.cpu_workers().max(1) as f64;
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
            // Effects: an estimate per effect and output pixel over the render workers
            // (their measured time is per frame, not per stretch).
            let effects: usize = visible
                .iter()
                .filter_map(|&(e, _)| world.get::<EffectStack>(e))
                .map(|s| s.effects.len())
                .sum();
            let mut cost_ms = secs / workers * 1e3;
            if visible.len() > 1 {
                cost_ms += composite * 1e3;
            }
            if effects > 0 {
                estimated = true;
                cost_ms += effects as f64 * out_pixels * ASSUMED_EFFECT_SECONDS_PER_PIXEL
                    / render_workers
                    * 1e3;
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
                // Opened now (on its own thread), not at the next effects frame: the
                // suggestion's point is that effects move there.
                if *on {
                    self.world_mut().resource_mut::<Renderer>().0.start_gpu();
                }
            }
        }
        Ok(())
    }
}
