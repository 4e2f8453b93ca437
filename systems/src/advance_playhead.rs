//! `advance_playhead` — reads [`Tick`], [`OutputFormat`]; writes [`Playhead`],
//! [`AudioClock`].
//!
//! While playing, moves the playhead by `rate` frames per tick (times one plus the ticks the
//! loop skipped), and stops (pauses) at either end of the timeline. **While audio plays the
//! audio clock is the master**: at rate 1 with an [`AudioClock`] whose device pulled in the
//! last [`AUDIO_LIVE_TICKS`] ticks (a device is pulling), the playhead is the frame the
//! listener hears (`floor(position * fps / sample_rate)`), so video follows the sound however
//! fast or slow the device runs; without audio, muted, at other rates, or with no device
//! pulling, the tick count (the wall or virtual clock) stays master. A playhead just set by a
//! seek or by play shows its frame first and starts moving on the next tick.
//!
//! With `QualitySettings::target_fps` below the project's rate, the frame shown is the
//! position snapped down to the target's grid (every second frame for 30 on 60): the
//! picture changes every `stride` ticks, exactly. With `allow_drop_frames` off ("show all
//! frames"), the playhead does not move on until the frame it is on has been put on screen
//! (skipped ticks are not caught up; the audio clock is not master): playback runs slower
//! than real time instead of dropping. Offline
//! ([`RenderMode::Offline`]) the driver moves the playhead itself, one frame once it is made.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_components::{OutputFormat, PlayState, Playhead, QualitySettings};
use framelock_engine::audio::AudioOutput;

use crate::{RenderMode, RenderState, Tick};

/// Ticks the audio position may stand still before the tick count takes over as master.
pub const AUDIO_LIVE_TICKS: u64 = 3;

/// The audio clock: the real-time output the host pulls from, and when its position last
/// moved.
#[derive(Resource, Debug)]
pub struct AudioClock {
    /// The output.
    pub output: Arc<AudioOutput>,
    /// Frames the host had pulled at the last tick, and the last tick that count grew.
    pub last: u64,
    /// See `last`.
    pub moved_at: Option<u64>,
    /// Whether the last tick followed the audio clock.
    pub master: bool,
}

impl AudioClock {
    /// The clock of `output`.
    pub fn new(output: Arc<AudioOutput>) -> Self {
        Self {
            output,
            last: 0,
            moved_at: None,
            master: false,
        }
    }
}

/// The system.
pub fn advance_playhead(
    mut playhead: ResMut<Playhead>,
    tick: Res<Tick>,
    mode: Option<Res<RenderMode>>,
    (audio, output): (Option<ResMut<AudioClock>>, Res<OutputFormat>),
    (quality, render): (Option<Res<QualitySettings>>, Option<Res<RenderState>>),
) {
    framelock_engine::profile_function!();
    if playhead.state != PlayState::Playing || mode.is_some_and(|m| *m == RenderMode::Offline) {
        return;
    }
    let last = playhead.duration.saturating_sub(1) as f64;
    let stride = quality
        .as_ref()
        .map_or(1, |q| q.frame_stride(output.frame_rate));
    let show_all = quality.as_ref().is_some_and(|q| !q.allow_drop_frames);
    if show_all && !playhead.fresh {
        // Every frame shown: stay until this one is on screen.
        let on_screen = render
            .as_ref()
            .is_some_and(|r| r.shown == Some((playhead.frame, playhead.generation)));
        if !on_screen {
            return;
        }
    }
    if let Some(mut audio) = audio.filter(|_| !show_all) {
        let position = audio.output.position();
        let heard = audio.output.frames_heard();
        if heard != audio.last {
            audio.last = heard;
            audio.moved_at = Some(tick.index);
        }
        audio.master = playhead.rate == 1.0
            && !playhead.fresh
            && audio
                .moved_at
                .is_some_and(|t| tick.index.saturating_sub(t) <= AUDIO_LIVE_TICKS);
        if audio.master {
            let rate = output.frame_rate;
            let sr = u128::from(audio.output.format().sample_rate.max(1));
            let frame =
                (u128::from(position) * u128::from(rate.num) / (u128::from(rate.den) * sr)) as f64;
            if frame >= last {
                playhead.state = PlayState::Paused;
            }
            playhead.position = frame.min(last);
            playhead.frame = snap(playhead.position, stride);
            return;
        }
    }
    if playhead.fresh {
        playhead.fresh = false;
        return;
    }
    let steps = if show_all { 1 } else { 1 + tick.skipped };
    let next = playhead.position + playhead.rate * steps as f64;
    let clamped = next.clamp(0.0, last);
    if clamped != next {
        playhead.state = PlayState::Paused;
    }
    playhead.position = clamped;
    playhead.frame = snap(clamped, stride);
}

/// The frame at `position` on a grid of `stride` frames.
fn snap(position: f64, stride: u64) -> u64 {
    let f = position.floor() as u64;
    f - f % stride.max(1)
}
