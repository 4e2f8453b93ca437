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
use framelock_components::{OutputFormat, PlayState, Playhead, QualitySettings};

use crate::{
    Composited, EngineEvent, Events, FrameSink, Metrics, OnScreen, PresentedFrame, RenderMode, Tick,
};

/// The seek being watched for its first picture (generation, the frame sought, reported),
/// and whether playback has gone on since the last new picture (only then is the same frame
/// due again a repeat: the first frame of a play is new even if it was on screen paused).
#[derive(Default)]
pub struct SeekWatch(Option<(u64, u64, bool)>, bool);

/// The system.
pub fn present(
    mut composited: ResMut<Composited>,
    playhead: Res<Playhead>,
    (quality, output): (Res<QualitySettings>, Res<OutputFormat>),
    tick: Res<Tick>,
    mut sink: ResMut<FrameSink>,
    mut metrics: ResMut<Metrics>,
    mut last: Local<Option<PresentedFrame>>,
    mut last_key: Local<Option<(u64, u64, u64)>>,
    mode: Option<Res<RenderMode>>,
    (mut events, mut seek): (Option<ResMut<Events>>, Local<SeekWatch>),
    mut on_screen: ResMut<OnScreen>,
) {
    framelock_engine::profile_function!();
    // Generation 0 is the open, whose first picture is no seek's. The first tick of a new
    // generation shows the frame sought (`fresh`).
    if playhead.state == PlayState::Paused {
        seek.1 = false;
    }
    let watch = seek.0.get_or_insert((0, 0, true));
    if watch.0 != playhead.generation {
        *watch = (playhead.generation, playhead.frame, false);
    }
    // A live edit makes the frame on screen due again (its picture may have changed).
    let key = Some(playhead.picture_key());
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
    // Below the project's rate (`target_fps`), the ticks between two frames of the target's
    // grid have nothing new to send.
    if playhead.state == PlayState::Playing
        && *last_key == key
        && quality.frame_stride(output.frame_rate) > 1
    {
        composited.0 = None;
        return;
    }
    match composited.0.take() {
        // Playing slower than one frame a tick (rate 0.5), the same frame is due again: it is
        // sent again, flagged as a repeat, and not counted as a new picture.
        Some(mut frame)
            if playhead.state == PlayState::Playing
                && seek.1
                && *last_key == key
                && last.as_ref().is_some_and(|l| l.layers == frame.layers) =>
        {
            frame.repeated = true;
            if let Some(ev) = events.as_mut().filter(|e| e.frames) {
                ev.push(EngineEvent::FramePresented {
                    frame: frame.timeline_frame,
                    tick: tick.index,
                    repeated: true,
                });
            }
            (sink.0)(frame);
        }
        Some(frame) => {
            *last_key = key;
            seek.1 = playhead.state == PlayState::Playing;
            metrics.presented += 1;
            metrics.late_shown += u64::from(frame.late);
            metrics.approximate += u64::from(!frame.exact);
            if let Some(ev) = events.as_mut() {
                if let Some((g, target, reported)) = seek.0.as_mut()
                    && *g == playhead.generation
                    && !*reported
                {
                    let at_target = frame.timeline_frame == *target;
                    // An approximate picture of the frame sought is reported, and the exact
                    // one again when it replaces it.
                    *reported = !at_target || frame.exact;
                    ev.push(EngineEvent::SeekDone {
                        frame: frame.timeline_frame,
                        exact: at_target && frame.exact,
                    });
                }
                if ev.frames {
                    ev.push(EngineEvent::FramePresented {
                        frame: frame.timeline_frame,
                        tick: tick.index,
                        repeated: false,
                    });
                }
            }
            on_screen.0 = Some((
                frame.timeline_frame,
                playhead.generation,
                playhead.edits,
                frame.exact && !frame.late && frame.timeline_frame == playhead.frame,
            ));
            *last = Some(frame.clone());
            (sink.0)(frame);
        }
        None if offline => {}
        // Paused (after a seek, say), nothing was due to move: the picture on screen stays
        // until the new one is ready, and no frame was lost.
        None if playhead.state == PlayState::Paused => {}
        // Every frame shown: the playhead waits for this one (advance_playhead).
        None if !quality.allow_drop_frames => metrics.waited += 1,
        None if quality.drop_late_frames => metrics.dropped += 1,
        None => {
            metrics.held += 1;
            if let Some(prev) = last.as_ref() {
                let mut again = prev.clone();
                again.tick = tick.index;
                again.repeated = true;
                if let Some(ev) = events.as_mut().filter(|e| e.frames) {
                    ev.push(EngineEvent::FramePresented {
                        frame: again.timeline_frame,
                        tick: tick.index,
                        repeated: true,
                    });
                }
                (sink.0)(again);
            }
        }
    }
}
