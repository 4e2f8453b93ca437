//! `profile` — reads [`Tick`]; writes [`Metrics`]; marks the profiler's frame.
//!
//! Counts the tick (and the ticks skipped before it), plots fps, memory, drops and the cache
//! hit rate (Tracy), and ends the profiler frame, so each output frame is one profiler frame with
//! the systems' scopes inside it.

use bevy_ecs::prelude::*;

use crate::{Metrics, Tick};

/// The system.
pub fn profile(tick: Res<Tick>, mut metrics: ResMut<Metrics>) {
    framelock_engine::profile_function!();
    metrics.ticks += 1;
    metrics.skipped_ticks += tick.skipped;
    framelock_engine::profile_plot!("frames in memory", metrics.frames_in_memory);
    framelock_engine::profile_plot!("memory MiB", metrics.bytes_in_memory as f64 / 1048576.0);
    framelock_engine::profile_plot!("dropped", metrics.dropped);
    if let Some(frame) = metrics.frame_times.back().filter(|d| !d.is_zero()) {
        framelock_engine::profile_plot!("fps", 1.0 / frame.as_secs_f64());
    }
    let looked = metrics.cache_hits + metrics.cache_misses;
    if looked > 0 {
        framelock_engine::profile_plot!(
            "cache hit rate",
            metrics.cache_hits as f64 / looked as f64
        );
    }
    framelock_engine::profile::finish_frame();
}
