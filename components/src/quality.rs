//! Adaptive quality's data: the ladder the quality controller steps (see
//! `framelock_systems::adapt_quality`), where it stands now, and why.

use bevy_ecs::prelude::Resource;
use serde::{Deserialize, Serialize};

use crate::{EffectLod, OutputFormat, QualitySettings};

/// What offline renders (export, background render) favour when a choice trades time for
/// picture: the encoder's effort and whether effects may run at a lower LOD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderPriority {
    /// Fastest encode settings.
    Speed,
    /// The defaults.
    #[default]
    Balanced,
    /// Slowest, best encode settings.
    Quality,
}

/// One rung of the quality ladder: the effect LOD cap and the playback-resolution divisor
/// (1 = the viewer's full size, 2 = half its height, 4 = a quarter…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QualityStep {
    /// The highest LOD effects may run at on this rung.
    pub effect_lod: EffectLod,
    /// The playback resolution's divisor of the viewer height.
    pub divisor: u32,
}

/// The ladder for `quality` on `output`, best first: full → effect LOD ½ → playback
/// resolution ½ → ¼ → ⅛ …, never below `quality.min_resolution` (the first rung is always
/// there). The host's own `effect_lod` and `preview_height` are the top of the ladder.
pub fn quality_ladder(quality: &QualitySettings, output: &OutputFormat) -> Vec<QualityStep> {
    let top = quality.effect_lod;
    let half = if top.divisor() < 2 {
        EffectLod::Half
    } else {
        top
    };
    let mut steps = vec![QualityStep {
        effect_lod: top,
        divisor: 1,
    }];
    if half != top {
        steps.push(QualityStep {
            effect_lod: half,
            divisor: 1,
        });
    }
    let base = viewer_height(quality, output);
    let mut divisor = 2;
    while base / divisor >= quality.min_resolution.max(2) && divisor <= 16 {
        let effect_lod = if divisor >= 4 {
            EffectLod::Quarter
        } else {
            half
        };
        steps.push(QualityStep {
            effect_lod,
            divisor,
        });
        divisor *= 2;
    }
    steps
}

/// The viewer's height before the controller lowers it (the host's `preview_height`, or the
/// output's).
pub fn viewer_height(quality: &QualitySettings, output: &OutputFormat) -> u32 {
    quality
        .preview_height
        .filter(|&h| h >= 2 && h < output.height)
        .unwrap_or(output.height)
}

/// Why the controller last changed the playback quality.
#[derive(Clone, Debug, PartialEq)]
pub enum QualityReason {
    /// Frames were late: `late` of the last `window` ticks, the work measured at `load`
    /// times the frame budget.
    Late {
        /// Late ticks in the window.
        late: u32,
        /// The window, ticks.
        window: u32,
        /// Measured work per frame over the frame budget (1.0 = exactly the budget).
        load: f64,
    },
    /// `ticks` ticks in a row were on time and the rung above is predicted at `load`.
    Headroom {
        /// On-time ticks in a row.
        ticks: u32,
        /// The rung above's predicted work over the frame budget.
        load: f64,
    },
    /// The settings changed (a preset, `auto_reduce_quality` off, a new floor).
    Settings,
}

impl std::fmt::Display for QualityReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Late { late, window, load } => write!(
                f,
                "{late} of the last {window} frames late, load {:.0}% of the frame budget",
                load * 100.0
            ),
            Self::Headroom { ticks, load } => write!(
                f,
                "{ticks} frames on time, the level above is predicted at {:.0}% of the budget",
                load * 100.0
            ),
            Self::Settings => f.write_str("the quality settings changed"),
        }
    }
}

/// One change of rung.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityChange {
    /// The tick it took effect.
    pub tick: u64,
    /// Rung before (0 = full quality).
    pub from: usize,
    /// Rung after.
    pub to: usize,
    /// Why.
    pub reason: QualityReason,
}

/// Where the quality controller stands: the rung now and what it means. Playback reads the
/// effective settings from here ([`AdaptiveQuality::preview_height`],
/// [`AdaptiveQuality::effect_lod`]); without the controller (or with
/// `auto_reduce_quality` off) it is rung 0 — the host's settings as they are.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct AdaptiveQuality {
    /// The rung now (0 = full quality).
    pub level: usize,
    /// Rungs on the ladder now.
    pub levels: usize,
    /// The rung's step.
    pub step: QualityStep,
    /// The playback resolution now (`None`: the viewer's full size).
    pub preview_height: Option<u32>,
    /// Changes so far.
    pub changes: u64,
    /// The last change, if any.
    pub last: Option<QualityChange>,
    /// Measured work per frame over the frame budget, last tick (0 while nothing is measured).
    pub load: f64,
    /// The playback resolution before the last change of it: frames already rendered ahead
    /// at that size still stand in for their ticks (a change does not throw them away).
    pub previous_height: Option<Option<u32>>,
}

impl Default for AdaptiveQuality {
    fn default() -> Self {
        Self {
            level: 0,
            levels: 1,
            step: QualityStep {
                effect_lod: EffectLod::Full,
                divisor: 1,
            },
            preview_height: None,
            changes: 0,
            last: None,
            load: 0.0,
            previous_height: None,
        }
    }
}

impl AdaptiveQuality {
    /// The highest LOD effects may run at now: the rung's cap, never above the host's.
    pub fn effect_lod(&self, quality: &QualitySettings) -> EffectLod {
        if self.step.effect_lod.divisor() > quality.effect_lod.divisor() {
            self.step.effect_lod
        } else {
            quality.effect_lod
        }
    }

    /// Sets the rung from `ladder` and computes the playback resolution it means.
    pub fn set(
        &mut self,
        level: usize,
        ladder: &[QualityStep],
        quality: &QualitySettings,
        output: &OutputFormat,
    ) {
        self.levels = ladder.len().max(1);
        self.level = level.min(self.levels - 1);
        self.step = ladder.get(self.level).copied().unwrap_or(QualityStep {
            effect_lod: quality.effect_lod,
            divisor: 1,
        });
        let height = if self.step.divisor > 1 {
            Some((viewer_height(quality, output) / self.step.divisor).max(2) & !1)
        } else {
            quality.preview_height
        };
        if height != self.preview_height {
            self.previous_height = Some(self.preview_height);
        }
        self.preview_height = height;
    }

    /// The picture size presented now.
    pub fn preview_size(&self, output: &OutputFormat) -> (u32, u32) {
        output.preview_size(self.preview_height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rational;

    #[test]
    fn the_ladder_halves_resolution_down_to_the_floor() {
        let out = OutputFormat {
            frame_rate: Rational::integer(30),
            width: 3840,
            height: 2160,
        };
        let q = QualitySettings {
            min_resolution: 360,
            ..QualitySettings::default()
        };
        let l = quality_ladder(&q, &out);
        let d: Vec<(u32, u32)> = l
            .iter()
            .map(|s| (s.effect_lod.divisor(), s.divisor))
            .collect();
        assert_eq!(d, vec![(1, 1), (2, 1), (2, 2), (4, 4)]);
        let mut a = AdaptiveQuality::default();
        a.set(3, &l, &q, &out);
        assert_eq!(a.preview_height, Some(540));
        assert_eq!(a.preview_size(&out), (960, 540));
        // The size before stays known (frames rendered at it still stand in).
        assert_eq!(a.previous_height, Some(None));
        a.set(3, &l, &q, &out);
        assert_eq!(
            a.previous_height,
            Some(None),
            "no change, no new previous size"
        );
        // A floor at full height: only the effects rung.
        let q = QualitySettings {
            min_resolution: 2160,
            effect_lod: EffectLod::Half,
            ..QualitySettings::default()
        };
        assert_eq!(quality_ladder(&q, &out).len(), 1);
    }
}
