//! `adapt_quality` — reads [`QualitySettings`], [`OutputFormat`], [`Playhead`], [`Tick`],
//! [`RenderMode`], [`Metrics`] (the last tick's outcome), [`DecodeLoad`], [`Decoders`],
//! [`TimelineIndex`], [`Clip`], [`Lod`], [`MediaAsset`], [`ProxyAssets`], [`RenderCost`],
//! [`RenderState`], [`Renderer`]; writes [`AdaptiveQuality`], [`Events`].
//!
//! The quality controller. While playing in real time with `auto_reduce_quality` on, it
//! watches whether frames are late (dropped, held, shown late, or waited for) and models the
//! work one frame costs on every rung of the [`quality_ladder`] (full → effect LOD ½ →
//! playback resolution ½ → ¼ → …):
//!
//! - **decode**: per visible layer, the measured seconds per frame of the source it decodes
//!   now, scaled by pixels for the source a rung would use (a ready proxy no taller than the
//!   rung's picture, else the original): decode cost is close to proportional to pixels;
//! - **render**: the measured composite (or effects) seconds per frame, scaled by the
//!   pixels the rung renders (effects at their LOD);
//! - the load of a rung is the largest of decode over the decode workers, render over the
//!   render workers, and both over the cores, per frame period.
//!
//! It steps **down** after [`LATE_TO_STEP`] late frames of the last [`WINDOW`] when the load
//! is over 0.9 of the budget — straight to the first rung predicted under 0.85 (one change,
//! however many rungs), or the cheapest rung if none is (only when that is a real saving) —
//! and **up** only after [`UP_TICKS`] frames in a row on time, to the best rung predicted
//! under 0.7: headroom on both sides (hysteresis), so it does not oscillate. A step up that
//! is followed by a step down within twice the wait doubles the wait (up to 8×); a long calm
//! resets it. A rung that does not lower the modelled cost (resolution, when decoding
//! originals with no proxy is the bottleneck) is not taken: the picture keeps its quality
//! and late frames are shown late instead (see `render`), so it moves evenly at the rate the
//! machine manages.
//!
//! Each change is in [`AdaptiveQuality`] (rung, reason, count), in the metrics and
//! `monitor`, and an [`EngineEvent::QualityChanged`].

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use framelock_components::{
    AdaptiveQuality, Clip, Lod, MediaAsset, OutputFormat, PlayState, Playhead, ProxyAssets,
    QualityChange, QualityReason, QualitySettings, QualityStep, UseProxy, quality_ladder,
    viewer_height,
};

use crate::cache::RenderCost;
use crate::render::{RenderMode, RenderState, Renderer};
use crate::{DecodeLoad, Decoders, EngineEvent, Events, Metrics, Tick, TimelineIndex};

/// Ticks of late/on-time history the step-down rule looks at.
pub const WINDOW: u32 = 15;
/// Late ticks in the window that step the quality down.
pub const LATE_TO_STEP: u32 = 4;
/// Ticks after a change before another step down (the pipeline takes a few frames to
/// show the effect of a change).
pub const SETTLE_TICKS: u32 = 10;
/// On-time ticks in a row before a step up (doubled after a failed one).
pub const UP_TICKS: u32 = 30;
/// A step down goes to the first rung predicted at or under this share of the budget.
pub const DOWN_TARGET: f64 = 0.85;
/// A step up goes to the best rung predicted at or under this share of the budget.
pub const UP_TARGET: f64 = 0.7;

/// One tick as the controller sees it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The tick.
    pub tick: u64,
    /// The last tick's frame was late.
    pub late: bool,
    /// The modelled load of every rung (work per frame over the frame budget), rung 0 first.
    pub predicted: &'a [f64],
}

/// The controller's decision logic: history in, rung changes out. No ECS, no clock, so it is
/// tested tick by tick with a simulated machine.
#[derive(Clone, Debug)]
pub struct Controller {
    late: VecDeque<bool>,
    on_time: u32,
    since_change: u32,
    up_wait: u32,
    last_up: Option<u64>,
}

impl Default for Controller {
    fn default() -> Self {
        Self {
            late: VecDeque::with_capacity(WINDOW as usize),
            on_time: 0,
            since_change: u32::MAX / 2,
            up_wait: UP_TICKS,
            last_up: None,
        }
    }
}

impl Controller {
    /// Takes one tick at rung `level`; returns the rung to move to and why, if any.
    pub fn observe(
        &mut self,
        level: usize,
        obs: &Observation<'_>,
    ) -> Option<(usize, QualityReason)> {
        let p = obs.predicted;
        let n = p.len();
        self.since_change = self.since_change.saturating_add(1);
        if self.late.len() == WINDOW as usize {
            self.late.pop_front();
        }
        self.late.push_back(obs.late);
        self.on_time = if obs.late { 0 } else { self.on_time + 1 };
        let late = self.late.iter().filter(|&&l| l).count() as u32;
        let load = p.get(level).copied().unwrap_or(0.0);
        if obs.late
            && late >= LATE_TO_STEP
            && self.since_change >= SETTLE_TICKS
            && load > 0.9
            && level + 1 < n
        {
            let first_fit = (level + 1..n).find(|&i| p[i] <= DOWN_TARGET);
            let cheapest = (level + 1..n)
                .min_by(|&a, &b| p[a].total_cmp(&p[b]))
                .filter(|&i| p[i] < 0.9 * load);
            if let Some(to) = first_fit.or(cheapest) {
                if self
                    .last_up
                    .is_some_and(|t| obs.tick.saturating_sub(t) <= 2 * u64::from(self.up_wait))
                {
                    self.up_wait = (self.up_wait * 2).min(8 * UP_TICKS);
                }
                let reason = QualityReason::Late {
                    late,
                    window: self.late.len() as u32,
                    load,
                };
                self.changed();
                return Some((to, reason));
            }
        }
        if level > 0
            && self.on_time >= self.up_wait
            && self.since_change >= self.up_wait
            && let Some(to) = (0..level).find(|&j| p[j] <= UP_TARGET)
        {
            let reason = QualityReason::Headroom {
                ticks: self.on_time,
                load: p[to],
            };
            self.last_up = Some(obs.tick);
            self.changed();
            return Some((to, reason));
        }
        if self.since_change > 10 * UP_TICKS {
            self.up_wait = UP_TICKS;
        }
        None
    }

    fn changed(&mut self) {
        self.since_change = 0;
        self.on_time = 0;
        self.late.clear();
    }

    /// Forgets the history (a seek, a pause: what was late before says nothing now).
    pub fn forget(&mut self) {
        self.late.clear();
        self.on_time = 0;
    }
}

/// One visible layer's decode, as the model needs it.
#[derive(Clone, Debug, Default)]
pub struct LayerCost {
    /// Seconds per frame measured for the source decoded now (`None`: not measured).
    pub measured: Option<f64>,
    /// Pixels of that source.
    pub pixels: f64,
    /// Pixels of the original.
    pub original_pixels: f64,
    /// Ready proxies: (height, pixels), shortest first.
    pub proxies: Vec<(u32, f64)>,
    /// It decodes a proxy now.
    pub on_proxy: bool,
}

/// What the model knows of the machine and the frame.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// Decode workers.
    pub decode_workers: f64,
    /// Render workers (CPU) or frames in flight (GPU).
    pub render_workers: f64,
    /// Cores.
    pub cores: f64,
    /// Seconds per frame period, over the frames each tick moves.
    pub period: f64,
    /// Render seconds per frame measured now, at `render_pixels`.
    pub render_secs: f64,
    /// Pixels the render works on now.
    pub render_pixels: f64,
    /// Render work shares the CPU cores with decoding.
    pub render_on_cpu: bool,
    /// The frame has effects (their work scales with the LOD).
    pub effects: bool,
    /// Preview height of each rung's picture (the viewer's full height on rung 0).
    pub viewer: (u32, u32),
}

/// The modelled load of each rung of `ladder` (see the module doc).
pub fn predict(
    ladder: &[QualityStep],
    layers: &[LayerCost],
    machine: &Machine,
    use_proxy: UseProxy,
) -> Vec<f64> {
    let (vw, vh) = machine.viewer;
    ladder
        .iter()
        .map(|step| {
            let h = (vh / step.divisor).max(2);
            let decode: f64 = layers
                .iter()
                .map(|l| {
                    let Some(m) = l.measured else {
                        return 0.0;
                    };
                    let per_pixel = m / l.pixels.max(1.0);
                    let proxy = if use_proxy == UseProxy::Never {
                        None
                    } else if step.divisor > 1 {
                        l.proxies.iter().rev().find(|&&(ph, _)| ph <= h)
                    } else if use_proxy == UseProxy::Always && l.on_proxy {
                        return m;
                    } else {
                        None
                    };
                    let pixels = proxy.map_or(l.original_pixels, |&(_, px)| px);
                    per_pixel * pixels
                })
                .sum();
            let mut pixels = f64::from(vw / step.divisor).max(1.0) * f64::from(h);
            if machine.effects {
                pixels /= f64::from(step.effect_lod.divisor()).powi(2);
            }
            let render = machine.render_secs * pixels / machine.render_pixels.max(1.0);
            let cpu = decode + if machine.render_on_cpu { render } else { 0.0 };
            let per_frame = (decode / machine.decode_workers.max(1.0))
                .max(render / machine.render_workers.max(1.0))
                .max(cpu / machine.cores.max(1.0));
            per_frame / machine.period.max(1e-9)
        })
        .collect()
}

/// What the system remembers between ticks.
#[derive(Default)]
pub struct AdaptState {
    controller: Controller,
    late_seen: u64,
    generation: u64,
    cores: Option<f64>,
    layers: Vec<LayerCost>,
    visible: Vec<(Entity, f32)>,
}

/// The quality settings and the frame's place.
type Settings<'w> = (
    Res<'w, QualitySettings>,
    Res<'w, OutputFormat>,
    Res<'w, Playhead>,
    Res<'w, Tick>,
    Option<Res<'w, RenderMode>>,
);

/// What the model measures from.
type Measures<'w> = (
    Res<'w, Metrics>,
    Res<'w, DecodeLoad>,
    Res<'w, Decoders>,
    Res<'w, RenderCost>,
    Option<Res<'w, RenderState>>,
    Option<Res<'w, Renderer>>,
);

/// The system.
#[allow(
    clippy::too_many_arguments,
    reason = "a system's parameters are its declared data access"
)]
pub fn adapt_quality(
    (quality, output, playhead, tick, mode): Settings,
    (metrics, load, decoders, cost, render_state, renderer): Measures,
    timeline: Res<TimelineIndex>,
    clips: Query<(&Clip, &Lod)>,
    assets: Query<(&MediaAsset, Option<&ProxyAssets>)>,
    mut adaptive: ResMut<AdaptiveQuality>,
    mut events: Option<ResMut<Events>>,
    mut st: Local<AdaptState>,
) {
    framelock_engine::profile_function!();
    let offline = mode.is_some_and(|m| *m == RenderMode::Offline);
    let ladder = quality_ladder(&quality, &output);
    let late_now = metrics.dropped + metrics.held + metrics.late_shown + metrics.waited;
    let late = late_now > st.late_seen;
    st.late_seen = late_now;
    let mut change = |adaptive: &mut AdaptiveQuality, to: usize, reason: QualityReason| {
        let from = adaptive.level;
        adaptive.set(to, &ladder, &quality, &output);
        if adaptive.level == from {
            return;
        }
        adaptive.changes += 1;
        if let Some(ev) = events.as_mut() {
            ev.push(EngineEvent::QualityChanged {
                from,
                to: adaptive.level,
                preview_height: adaptive.preview_height,
                effect_lod: adaptive.step.effect_lod,
                reason: reason.to_string(),
            });
        }
        adaptive.last = Some(QualityChange {
            tick: tick.index,
            from,
            to: adaptive.level,
            reason,
        });
    };
    if !quality.auto_reduce_quality || offline {
        // (`change` sets the rung either way: the settings' own size is refreshed.)
        change(&mut adaptive, 0, QualityReason::Settings);
        return;
    }
    if adaptive.level >= ladder.len() {
        change(&mut adaptive, ladder.len() - 1, QualityReason::Settings);
    }
    let level = adaptive.level;
    adaptive.set(level, &ladder, &quality, &output);
    if st.generation != playhead.generation || playhead.state != PlayState::Playing {
        st.generation = playhead.generation;
        st.controller.forget();
        return;
    }
    if playhead.fresh {
        return;
    }

    // The model's inputs.
    let st = &mut *st;
    timeline.visible_at(playhead.frame, &mut st.visible);
    st.layers.clear();
    for &(e, _) in &st.visible {
        let Ok((clip, lod)) = clips.get(e) else {
            continue;
        };
        let Ok((original, proxies)) = assets.get(clip.asset) else {
            continue;
        };
        let now = lod.asset(clip);
        let Ok((source, _)) = assets.get(now) else {
            continue;
        };
        let px = |a: &MediaAsset| f64::from(a.info.video.width) * f64::from(a.info.video.height);
        st.layers.push(LayerCost {
            measured: load.seconds_per_frame(source.id),
            pixels: px(source),
            original_pixels: px(original),
            proxies: proxies
                .map(|p| {
                    p.0.iter()
                        .filter_map(|&(h, _, pe)| assets.get(pe).ok().map(|(a, _)| (h, px(a))))
                        .collect()
                })
                .unwrap_or_default(),
            on_proxy: now != clip.asset,
        });
    }
    let cores = *st.cores.get_or_insert_with(|| {
        std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
    });
    let stride = quality.frame_stride(output.frame_rate) as f64;
    let period = stride / output.frame_rate.as_f64().max(1e-9) / playhead.rate.abs().max(1.0);
    let (effects, render_secs, on_cpu, lod_divisor) = match render_state.as_deref() {
        Some(s) if s.counts.gpu_frames + s.counts.cpu_frames > 0 && s.effects_latency > 0.0 => (
            true,
            s.effects_latency,
            s.counts.cpu_frames >= s.counts.gpu_frames,
            f64::from(s.counts.lod.divisor()),
        ),
        _ => (false, cost.composite_secs, true, 1.0),
    };
    let (pw, ph) = adaptive.preview_size(&output);
    let mut render_pixels = f64::from(pw) * f64::from(ph);
    if effects {
        render_pixels /= lod_divisor * lod_divisor;
    }
    let vh = viewer_height(&quality, &output);
    let vw = output.preview_size(Some(vh)).0;
    let machine = Machine {
        decode_workers: decoders.0.workers() as f64,
        render_workers: renderer.map_or(1, |r| r.0.cpu_workers()) as f64,
        cores,
        period,
        render_secs,
        render_pixels,
        render_on_cpu: on_cpu,
        effects,
        viewer: (vw, vh),
    };
    let predicted = predict(&ladder, &st.layers, &machine, quality.use_proxy);
    adaptive.load = predicted.get(level).copied().unwrap_or(0.0);
    let obs = Observation {
        tick: tick.index,
        late,
        predicted: &predicted,
    };
    if let Some((to, reason)) = st.controller.observe(level, &obs) {
        change(&mut adaptive, to, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framelock_components::EffectLod;

    fn ladder() -> Vec<QualityStep> {
        [(1, 1), (2, 1), (2, 2), (4, 4)]
            .iter()
            .map(|&(l, d)| QualityStep {
                effect_lod: match l {
                    1 => EffectLod::Full,
                    _ if d < 4 => EffectLod::Half,
                    _ => EffectLod::Quarter,
                },
                divisor: d,
            })
            .collect()
    }

    /// A simulated machine: a 1080p original with a 540p proxy, decode cost per pixel
    /// jumping ×8 between ticks 60 and 180 (10 ms → 80 ms a 1080p frame at 30 fps), one
    /// decode worker, no render cost. A frame is late when its rung's decode cost exceeds the
    /// period; the controller's prediction comes from the cost measured on the rung in use.
    #[test]
    fn steps_down_within_a_second_and_back_up_within_two_with_two_changes_at_most() {
        let ladder = ladder();
        let period = 1.0 / 30.0;
        let full_px = 1920.0 * 1080.0;
        let proxy_px = 960.0 * 540.0;
        let cost_at = |tick: u64, px: f64| {
            let per_px = if (60..180).contains(&tick) {
                0.080
            } else {
                0.010
            } / full_px;
            per_px * px
        };
        let machine = Machine {
            decode_workers: 1.0,
            render_workers: 1.0,
            cores: 1.0,
            period,
            render_secs: 0.0,
            render_pixels: full_px,
            render_on_cpu: true,
            effects: false,
            viewer: (1920, 1080),
        };
        let mut c = Controller::default();
        let mut level = 0;
        let mut changes = Vec::new();
        let mut late_ticks = Vec::new();
        let mut measured: Option<f64> = None;
        for tick in 0..300u64 {
            let on_proxy = ladder[level].divisor > 1;
            let px = if on_proxy { proxy_px } else { full_px };
            let cost = cost_at(tick, px);
            // The measurement follows the cost like DecodeLoad's average (weight 1/8).
            let m = measured.map_or(cost, |m| m + (cost - m) / 8.0);
            measured = Some(m);
            let late = cost > period;
            if late {
                late_ticks.push(tick);
            }
            let layers = [LayerCost {
                measured: Some(m),
                pixels: px,
                original_pixels: full_px,
                proxies: vec![(540, proxy_px)],
                on_proxy,
            }];
            let p = predict(&ladder, &layers, &machine, UseProxy::Auto);
            let obs = Observation {
                tick,
                late,
                predicted: &p,
            };
            if let Some((to, _)) = c.observe(level, &obs) {
                changes.push((tick, level, to));
                if to != level && ladder[to].divisor != ladder[level].divisor {
                    measured = None; // a new source: its cost is measured afresh
                }
                level = to;
            }
        }
        let down: Vec<_> = changes
            .iter()
            .filter(|c| (60..180).contains(&c.0))
            .collect();
        let up: Vec<_> = changes.iter().filter(|c| c.0 >= 180).collect();
        assert!(!down.is_empty() && down.len() <= 2, "{changes:?}");
        assert!(down[0].0 < 90, "stepped down within 1 s: {changes:?}");
        assert!(up.len() <= 2 && !up.is_empty(), "{changes:?}");
        assert!(
            up.last().is_some_and(|c| c.0 <= 240 && c.2 == 0),
            "{changes:?}"
        );
        // Late frames only in the second after the jump.
        assert!(
            late_ticks.iter().all(|&t| (60..90).contains(&t)),
            "{late_ticks:?}"
        );
    }

    #[test]
    fn a_rung_that_saves_nothing_is_not_taken() {
        let ladder = ladder();
        // Decode-bound originals with no proxy: lower rungs cost the same.
        let layers = [LayerCost {
            measured: Some(0.06),
            pixels: 8.3e6,
            original_pixels: 8.3e6,
            proxies: vec![],
            on_proxy: false,
        }];
        let machine = Machine {
            decode_workers: 1.0,
            render_workers: 1.0,
            cores: 2.0,
            period: 1.0 / 30.0,
            render_pixels: 8.3e6,
            render_on_cpu: true,
            viewer: (3840, 2160),
            ..Machine::default()
        };
        let p = predict(&ladder, &layers, &machine, UseProxy::Auto);
        assert!(p.iter().all(|&x| (x - p[0]).abs() < 1e-9), "{p:?}");
        let mut c = Controller::default();
        for tick in 0..100 {
            let obs = Observation {
                tick,
                late: true,
                predicted: &p,
            };
            assert!(c.observe(0, &obs).is_none());
        }
    }

    #[test]
    fn a_failed_step_up_doubles_the_wait() {
        let mut c = Controller::default();
        let p = [0.5, 0.5, 0.3, 0.2];
        let mut level = 2;
        let mut ups = Vec::new();
        for tick in 0..400u64 {
            // Rung 0 is really over budget: the model is wrong about it.
            let late = level == 0;
            let pred = if level == 0 { [1.5, 1.5, 0.3, 0.2] } else { p };
            if let Some((to, _)) = c.observe(
                level,
                &Observation {
                    tick,
                    late,
                    predicted: &pred,
                },
            ) {
                if to < level {
                    ups.push(tick);
                }
                level = to;
            }
        }
        assert!(ups.len() >= 2, "{ups:?}");
        let gaps: Vec<u64> = ups.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
        assert!(gaps[0] > u64::from(UP_TICKS), "{gaps:?}");
    }
}
