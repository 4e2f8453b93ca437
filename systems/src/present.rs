//! `present` — reads [`Composited`], [`QualitySettings`], [`Tick`]; writes [`Metrics`]; calls
//! the host's [`FrameSink`].
//!
//! Runs at the tick's deadline (the loop sleeps until it before running the schedule). A
//! composite that is ready goes to the sink. One that is not is dropped, or the previous
//! picture is shown again (`QualitySettings::drop_late_frames`); either way it is counted.
//! While paused, a frame already presented is not sent again every tick — unless it now comes
//! from other sources (the level of detail changed: a proxy picture is replaced by the
//! original's once that is decoded, or the other way round). Offline
//! ([`RenderMode::Offline`]) a frame not ready yet is neither dropped nor held: the driver ticks
//! again.

use bevy_ecs::prelude::*;
use framelock_components::{PlayState, Playhead, QualitySettings};

use crate::{Composited, FrameSink, Metrics, PresentedFrame, RenderMode, Tick};

/// The system.
pub fn present(
    mut composited: ResMut<Composited>,
    playhead: Res<Playhead>,
    quality: Res<QualitySettings>,
    tick: Res<Tick>,
    mut sink: ResMut<FrameSink>,
    mut metrics: ResMut<Metrics>,
    mut last: Local<Option<PresentedFrame>>,
    mut last_key: Local<Option<(u64, u64)>>,
    mode: Option<Res<RenderMode>>,
) {
    framelock_engine::profile_function!();
    let key = Some((playhead.frame, playhead.generation));
    if playhead.state == PlayState::Paused && *last_key == key {
        let same_sources = match (&composited.0, last.as_ref()) {
            (Some(now), Some(before)) => now.layers == before.layers,
            _ => true,
        };
        if same_sources {
            composited.0 = None;
            return;
        }
    }
    let offline = mode.is_some_and(|m| *m == RenderMode::Offline);
    match composited.0.take() {
        Some(frame) => {
            *last_key = key;
            metrics.presented += 1;
            *last = Some(frame.clone());
            (sink.0)(frame);
        }
        None if offline => {}
        None if quality.drop_late_frames => metrics.dropped += 1,
        None => {
            metrics.held += 1;
            if let Some(prev) = last.as_ref() {
                let mut again = prev.clone();
                again.tick = tick.index;
                again.repeated = true;
                (sink.0)(again);
            }
        }
    }
}
