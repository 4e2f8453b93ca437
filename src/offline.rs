//! [`OfflineRenderer`]: any frame range of a project rendered on the playback systems, every
//! frame in order, none dropped, on a virtual clock, to a frame callback. Export, background
//! render and distributed render stand on it.
//!
//! The systems run in [`RenderMode::Offline`](framelock_systems::RenderMode): only the
//! clips' own media (never a proxy or another fallback), the effect LOD fixed at
//! `QualitySettings::effect_lod`, and a frame that is not ready is neither dropped nor held.
//! This driver moves the playhead one frame at a time, ticks, and — between ticks, never
//! inside one — waits for a worker to finish something when the frame is not made yet. While
//! it waits, decode workers decode ahead and render workers render the next frames whose
//! layers are decoded, so every core works.
//!
//! Determinism: on the CPU path the pictures are bit-identical run after run (every operation
//! is a pure function of its inputs, whatever the thread count); the GPU path agrees with it
//! within the tolerance its tests use.

use std::ops::{ControlFlow, Range};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framelock_components::{PlayState, Playhead, Project, UseProxy};
use framelock_engine::app::VirtualClock;
use framelock_systems::{PresentedFrame, RenderMode};

use crate::playback::{EngineOptions, PlaybackEngine, PlayerError};

/// How long the renderer waits without any worker finishing anything before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an offline render stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The range is empty or beyond the timeline.
    #[error("frames {start}..{end} are not inside the timeline's 0..{duration}")]
    Range {
        /// First frame asked for.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// Timeline frames.
        duration: u64,
    },
    /// A source frame the timeline needs could not be decoded.
    #[error("timeline frame {frame}: {errors} source frame(s) failed to decode")]
    Decode {
        /// The timeline frame.
        frame: u64,
        /// Decode failures so far.
        errors: u64,
    },
    /// A picture could not be rendered.
    #[error("timeline frame {frame}: rendering failed: {reason}")]
    Render {
        /// The timeline frame.
        frame: u64,
        /// Why.
        reason: String,
    },
    /// No worker finished anything for [`STALL_TIMEOUT`].
    #[error("timeline frame {frame}: no progress for {} s", STALL_TIMEOUT.as_secs())]
    Stalled {
        /// The timeline frame.
        frame: u64,
    },
}

/// What an offline render did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfflineReport {
    /// Frames delivered.
    pub frames: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Frames per second.
    pub fps: f64,
    /// Seconds the decode workers spent on this range's frames (worker time, beside the
    /// render: not a share of `seconds`).
    pub decode_seconds: f64,
    /// Frames taken from the rendered tiers instead of rendered: as they are, or converted
    /// from their RGBA twin (see `RenderStats::from_tiers` and `from_twins`).
    pub reused_frames: u64,
    /// Ticks run (at least one per frame).
    pub ticks: u64,
}

/// Renders frame ranges of one project (see the module doc).
pub struct OfflineRenderer {
    engine: PlaybackEngine,
    slot: Arc<Mutex<Option<PresentedFrame>>>,
    next_tick: u64,
}

impl std::fmt::Debug for OfflineRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineRenderer")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl OfflineRenderer {
    /// Opens `project` for offline rendering (originals only: `use_proxy` is forced to
    /// `Never`).
    pub fn open(project: &Project, mut options: EngineOptions) -> Result<Self, PlayerError> {
        options.quality.use_proxy = UseProxy::Never;
        options.quality.adaptive_effect_lod = false;
        let slot: Arc<Mutex<Option<PresentedFrame>>> = Arc::default();
        let sink = slot.clone();
        let mut engine = PlaybackEngine::open(
            project,
            options,
            Arc::new(VirtualClock::new()),
            move |f: PresentedFrame| {
                *sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
            },
        )?;
        engine.set_render_mode(RenderMode::Offline);
        Ok(Self {
            engine,
            slot,
            next_tick: 0,
        })
    }

    /// The engine underneath (metrics, cache statistics, GPU status).
    pub fn engine(&self) -> &PlaybackEngine {
        &self.engine
    }

    /// Timeline frames.
    pub fn duration(&self) -> u64 {
        self.engine.playhead().duration
    }

    /// Renders `range` (timeline frames), handing each picture to `on_frame` in order.
    pub fn render(
        &mut self,
        range: Range<u64>,
        mut on_frame: impl FnMut(PresentedFrame),
    ) -> Result<OfflineReport, OfflineError> {
        self.render_while(range, |f| {
            on_frame(f);
            ControlFlow::Continue(())
        })
    }

    /// Like [`OfflineRenderer::render`], but `on_frame` may stop the render early
    /// (`ControlFlow::Break`: a cancelled export); the report then counts the frames
    /// delivered. `on_frame` runs between ticks on the caller's thread, so it may take its
    /// time (encode, wait while paused) without holding up a tick.
    pub fn render_while(
        &mut self,
        range: Range<u64>,
        mut on_frame: impl FnMut(PresentedFrame) -> ControlFlow<()>,
    ) -> Result<OfflineReport, OfflineError> {
        let duration = self.duration();
        if range.start >= range.end || range.end > duration {
            return Err(OfflineError::Range {
                start: range.start,
                end: range.end,
                duration,
            });
        }
        let start = Instant::now();
        let decode_before = self.decode_seconds();
        let reused_before = self.reused();
        let ticks_before = self.next_tick;
        let errors_before = self.engine.metrics().decode_errors;
        let render_errors_before = self.render_errors();
        self.engine.seek_frame(range.start);
        let mut frames = 0;
        'frames: for t in range.clone() {
            {
                let mut p = self.engine.world_mut().resource_mut::<Playhead>();
                p.frame = t;
                p.position = t as f64;
                p.state = PlayState::Playing;
                p.fresh = false;
            }
            loop {
                let seen = self.engine.progress().count();
                self.engine.run_tick(self.next_tick);
                self.next_tick += 1;
                let shown = self
                    .slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some(f) = shown.filter(|f| f.timeline_frame == t) {
                    frames += 1;
                    if on_frame(f).is_break() {
                        break 'frames;
                    }
                    break;
                }
                let errors = self.engine.metrics().decode_errors;
                if errors > errors_before {
                    return Err(OfflineError::Decode { frame: t, errors });
                }
                if self.render_errors() > render_errors_before {
                    return Err(OfflineError::Render {
                        frame: t,
                        reason: self.last_render_error(),
                    });
                }
                if self.engine.progress().wait_past(seen, STALL_TIMEOUT) == seen {
                    return Err(OfflineError::Stalled { frame: t });
                }
            }
        }
        self.engine.pause();
        let seconds = start.elapsed().as_secs_f64();
        Ok(OfflineReport {
            frames,
            seconds,
            fps: frames as f64 / seconds.max(1e-9),
            decode_seconds: self.decode_seconds() - decode_before,
            reused_frames: self.reused() - reused_before,
            ticks: self.next_tick - ticks_before,
        })
    }

    fn reused(&self) -> u64 {
        let s = self.engine.render_stats();
        s.from_tiers + s.from_twins
    }

    fn decode_seconds(&self) -> f64 {
        self.engine
            .world()
            .resource::<framelock_systems::Metrics>()
            .decode_seconds
    }

    fn render_errors(&self) -> u64 {
        self.engine
            .world()
            .resource::<framelock_systems::RenderState>()
            .counts
            .render_errors
    }

    fn last_render_error(&self) -> String {
        self.engine
            .world()
            .resource::<framelock_systems::RenderState>()
            .last_error
            .clone()
            .unwrap_or_default()
    }
}
