//! `advance_playhead` — reads [`Tick`]; writes [`Playhead`].
//!
//! While playing, moves the playhead by `rate` frames per tick (times one plus the ticks the
//! loop skipped), and stops (pauses) at either end of the timeline. A playhead just set by a
//! seek or by play shows its frame first and starts moving on the next tick. Offline
//! ([`RenderMode::Offline`]) the driver moves the playhead itself, one frame once it is made.

use bevy_ecs::prelude::*;
use framelock_components::{PlayState, Playhead};

use crate::{RenderMode, Tick};

/// The system.
pub fn advance_playhead(
    mut playhead: ResMut<Playhead>,
    tick: Res<Tick>,
    mode: Option<Res<RenderMode>>,
) {
    framelock_engine::profile_function!();
    if playhead.state != PlayState::Playing || mode.is_some_and(|m| *m == RenderMode::Offline) {
        return;
    }
    if playhead.fresh {
        playhead.fresh = false;
        return;
    }
    let last = playhead.duration.saturating_sub(1) as f64;
    let steps = 1 + tick.skipped;
    let next = playhead.position + playhead.rate * steps as f64;
    let clamped = next.clamp(0.0, last);
    if clamped != next {
        playhead.state = PlayState::Paused;
    }
    playhead.position = clamped;
    playhead.frame = clamped.floor() as u64;
}
