//! `profile` — reads [`Tick`]; writes [`Metrics`]; marks the profiler's frame.
//!
//! Counts the tick (and the ticks skipped before it) and ends puffin's frame, so each output
//! frame is one profiler frame with the systems' scopes inside it.

use bevy_ecs::prelude::*;

use crate::{Metrics, Tick};

/// The system.
pub fn profile(tick: Res<Tick>, mut metrics: ResMut<Metrics>) {
    framelock_engine::profile_function!();
    metrics.ticks += 1;
    metrics.skipped_ticks += tick.skipped;
    framelock_engine::profile::finish_frame();
}
