//! The render path: one way every output picture is made, for playback and offline alike.
//!
//! ```text
//! gather (once per frame: visible layers, their sources, the content key)
//!   → rendered tiers (RAM, then a read the disk tier answered)      → present
//!   → trivial (a gap: black; one opaque 4:2:0 layer: passed through) → present
//!   → the render service (Y'CbCr compositor or effects, CPU workers or the GPU thread):
//!     submitted this tick, collected by a later one into the rendered RAM tier
//! ```
//!
//! The tick never renders anything that costs more than a pass-through: it submits work to
//! [`framelock_engine::render::RenderService`] and collects finished pictures on later ticks.
//! A frame whose picture is still rendering at its deadline is late like a late decode
//! (`present` drops or holds it, and `Metrics::render_late` counts it) — unless a picture of
//! an earlier frame finished after its own deadline and was never shown: playing, the newest
//! such picture stands in once (`PresentedFrame::late`), so an overloaded timeline keeps
//! moving at the rate the renders finish instead of freezing. Render-ahead leads the playhead
//! by the measured effects latency (frames due sooner cannot be ready), and a frame whose
//! render takes longer than a frame period is not started when its own tick comes. While playing (and
//! offline), the next frames whose layers are decoded are rendered ahead, so both cores (or
//! the GPU's queue) work in parallel and pictures are ready before the playhead arrives.
//! Pictures in flight take memory the prefetch window would otherwise have: above the
//! budget's warning level at most a sixteenth of the budget is rendered ahead, at critical
//! nothing (without this, a small budget thrashes: frames decoded for the window are evicted
//! to make room for pictures made ahead, and decoded again).
//!
//! Keys are content keys (see [`gather::FrameLayers::key`]): a picture made from a fallback
//! source (a proxy while the original decodes) is kept under the key of the sources it was
//! really made from, so it never stands in for the exact picture later.
//!
//! Offline ([`RenderMode::Offline`]: export, background render) the same systems run with
//! three differences: only preferred sources are used (never a fallback), the effect LOD is
//! fixed at `QualitySettings::effect_lod`, and a frame that is not ready is neither dropped nor
//! held: the driver waits between ticks (never inside one) and ticks again.

pub(crate) mod gather;
mod keys;
mod system;
mod work;

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use framelock_components::{CacheKey, EffectLod, Pressure};
use framelock_engine::render::{OutputPixels, RenderService};

pub use keys::{FrameKey, frame_keys, keep_rendered};
pub use system::render;

/// The render service, as a resource.
#[derive(Resource, Debug)]
pub struct Renderer(pub RenderService);

/// How the systems run.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    /// Real time: late frames are dropped or held, fallbacks are shown, the LOD adapts.
    #[default]
    Playback,
    /// Every frame exact, in order; the driver waits between ticks (export, background
    /// render, tests).
    Offline,
}

/// A picture on its way through the render service.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    /// Its content key.
    pub key: CacheKey,
    /// Kept in the rendered tiers (RAM, written through to disk) when done: an effects frame
    /// or a slow composite; else held only until shown.
    pub keep_on_disk: bool,
    /// Effects work (its time drives the adaptive LOD).
    pub effects: bool,
    /// The timeline frame and playhead generation it was made for.
    pub frame: (u64, u64),
    /// The layers it is made of.
    pub sources: Vec<crate::LayerSource>,
    /// Submitted before a live edit of the timeline: its picture is kept under its content
    /// key (still right for what it shows), but never stands in for a late frame.
    pub stale: bool,
}

/// A finished picture of a frame the playhead has already passed.
#[derive(Clone, Debug)]
pub(crate) struct Passed {
    pub key: CacheKey,
    pub frame: (u64, u64),
    pub sources: Vec<crate::LayerSource>,
}

/// What the render path did, and the pictures in flight.
#[derive(Resource, Debug, Default)]
pub struct RenderState {
    /// The pixel format the host asked for.
    pub output: OutputPixels,
    /// The counters and the LOD effects run at now (adaptive, never above
    /// `QualitySettings::effect_lod`); `in_flight` is filled in by [`RenderState::stats`].
    pub counts: RenderStats,
    /// The last GPU failure or render failure, in words.
    pub last_error: Option<String>,
    pub(crate) in_flight: HashMap<u64, InFlight>,
    /// The newest finished picture of a frame the playhead passed (shown once in place of a
    /// late frame, so an overloaded timeline keeps moving).
    pub(crate) passed: Option<Passed>,
    /// The last (timeline frame, generation) this system put on screen.
    pub(crate) shown: Option<(u64, u64)>,
    /// Seconds an effects frame takes from submission to result (moving average, weight 1/8):
    /// render-ahead leads the playhead by it.
    pub(crate) effects_latency: f64,
    /// A slower moving average of the same (weight 1/32, from zero, frames rendered while
    /// playing) that the adaptive effect LOD follows: the start of play, when decodes catch
    /// up and the render-ahead fills, is a burst of slow frames, not a load that quality must
    /// give way to.
    pub(crate) lod_latency: f64,
}

/// What the render path did so far (a copy for hosts and tools).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RenderStats {
    /// The LOD effects run at now.
    pub lod: EffectLod,
    /// Effects frames rendered on the GPU.
    pub gpu_frames: u64,
    /// Effects frames rendered on the CPU path.
    pub cpu_frames: u64,
    /// Y'CbCr composites rendered on the CPU workers.
    pub composites: u64,
    /// Pictures rendered ahead of the playhead.
    pub rendered_ahead: u64,
    /// Offline, effects frames made from their RGBA twin in the rendered tiers (kept by
    /// playback or background render), converted instead of rendered.
    pub from_twins: u64,
    /// Offline, pictures another renderer made (read from the disk tier, or kept by
    /// background render) found in the rendered tiers under the frame's own content key: used
    /// as they are, not rendered.
    pub from_tiers: u64,
    /// GPU failures (re-rendered on the CPU path).
    pub gpu_errors: u64,
    /// Pictures that could not be rendered (a malformed job): the frame is not shown.
    pub render_errors: u64,
    /// Milliseconds the last effects frame took on its path.
    pub last_render_ms: f64,
    /// Pictures in flight now.
    pub in_flight: usize,
}

impl RenderState {
    /// A copy of the counters.
    pub fn stats(&self) -> RenderStats {
        RenderStats {
            in_flight: self.in_flight.len(),
            ..self.counts
        }
    }

    /// Pictures submitted and not collected yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub(crate) fn is_in_flight(&self, key: CacheKey) -> bool {
        self.in_flight.values().any(|f| f.key == key)
    }
}

/// The next LOD: one level lower under load, one back up when there is room.
pub fn next_lod(
    current: EffectLod,
    highest: EffectLod,
    secs: f64,
    period: f64,
    pressure: Pressure,
) -> EffectLod {
    let clamp = |l: EffectLod| {
        if l.divisor() < highest.divisor() {
            highest
        } else {
            l
        }
    };
    // Over 9/10 of the period: the render throughput (measured under the machine's real
    // load, decode included) leaves no room. (At 3/4, the 1080p full stack on 2 cores, which
    // keeps up at full LOD, stepped down to 1/4 and oscillated.)
    if secs > 0.9 * period || pressure == Pressure::Critical {
        return clamp(current.lower());
    }
    if secs < 0.25 * period {
        let up = match current {
            EffectLod::Quarter => EffectLod::Half,
            _ => EffectLod::Full,
        };
        return clamp(up);
    }
    clamp(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lod_moves_down_under_load_and_back_up() {
        let p = 1.0 / 30.0;
        let n = Pressure::Normal;
        assert_eq!(
            next_lod(EffectLod::Full, EffectLod::Full, 0.031, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Full, 0.031, p, n),
            EffectLod::Quarter
        );
        assert_eq!(
            next_lod(EffectLod::Quarter, EffectLod::Full, 0.031, p, n),
            EffectLod::Quarter
        );
        assert_eq!(
            next_lod(EffectLod::Quarter, EffectLod::Full, 0.001, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Full, 0.015, p, n),
            EffectLod::Half
        );
        // Never above the highest allowed.
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Half, 0.001, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(
                EffectLod::Full,
                EffectLod::Full,
                0.001,
                p,
                Pressure::Critical
            ),
            EffectLod::Half
        );
    }
}
