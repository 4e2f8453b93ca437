//! framelock's playback systems: one module per phase of a tick, each documenting the
//! components and resources it reads and writes, and [`playback_schedule`] that orders them.
//!
//! ```text
//! Clock (advance_playhead, index_timeline) → SelectLod (proxy_sync, adapt_quality, lod_select)
//!   → Prefetch (prefetch)
//!   → Decode (decode: collect finished, dispatch new) → Render (render: collect finished
//!   pictures, make or submit this tick's, render ahead) → Present (present) → Evict (evict)
//!   → Profile (profile)
//! ```
//!
//! Order is declared between the [`PlaybackSet`]s, never implied by registration order, and a
//! test builds the schedule and fails on any ambiguous system pair.

mod adapt;
mod advance_playhead;
mod cache;
mod decode;
mod events;
mod evict;
mod lod_select;
mod metrics;
mod prefetch;
mod present;
mod profile;
mod proxy_sync;
mod render;
mod resources;
mod timeline_index;
mod world;

pub use adapt::{
    Controller, DOWN_TARGET, LATE_TO_STEP, LayerCost, Machine, Observation, SETTLE_TICKS,
    UP_TARGET, UP_TICKS, WINDOW, adapt_quality, predict,
};
pub use advance_playhead::{AUDIO_LIVE_TICKS, AudioClock, advance_playhead};
pub use cache::{
    DiskRead, DiskTier, Memory, READ_QUEUE, RenderCost, RenderedEntry, RenderedFrames, WRITE_QUEUE,
    WriterCounters,
};
pub use decode::decode;
pub use events::{EngineEvent, Events};
pub use evict::{ASSUMED_DISK_WRITE_SPEED, evict};
pub use lod_select::lod_select;
pub use metrics::{Metrics, MetricsSnapshot};
pub use prefetch::{PrefetchState, SCRUB_MEMORY_TICKS, prefetch};
pub use present::present;
pub use profile::profile;
pub use proxy_sync::proxy_sync;
pub use render::{
    FrameKey, RenderMode, RenderState, RenderStats, Renderer, frame_keys, keep_rendered, next_lod,
    render,
};
pub use resources::{
    AssetIds, BesideLane, Composited, DecodeGenerations, DecodeLoad, Decoders, FrameIndex,
    FramePixels, FrameSink, LayerSource, OnScreen, Pending, PresentedFrame, ProxyService,
    SwitchedFrom, Tick, decode_lane,
};
pub use timeline_index::{TimelineIndex, TrackIndex, index_timeline};
pub use world::{
    ClearedFrames, TimelineSync, WorldBuilder, clear_frames, drop_proxy_entities, flush_disk,
    sync_timeline,
};

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleBuildSettings, ScheduleLabel};

/// The phases of one tick (one output frame), in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackSet {
    /// Moves the playhead by the play rate (and by skipped ticks).
    Clock,
    /// Mirrors proxy jobs into the world, steps the adaptive quality, then chooses each
    /// clip's level of detail.
    SelectLod,
    /// Requests the frames the next ticks will need.
    Prefetch,
    /// Collects finished decodes and dispatches new ones to the worker pool. Never blocks.
    Decode,
    /// Collects finished pictures and makes or submits this tick's (the render path).
    Render,
    /// Hands the output to the host's sink, or drops/holds and counts it.
    Present,
    /// Frees frames behind the playhead and over the memory budget.
    Evict,
    /// Metrics and the profiler's frame mark.
    Profile,
}

/// Inserts the memory, cache and render-state resources with fresh pools for `budget` (no
/// disk tier; the [`Renderer`] is the caller's, as it owns threads).
pub fn insert_cache_resources(world: &mut World, budget: framelock_components::MemoryBudget) {
    world.insert_resource(Memory(framelock_engine::memory::BufferPool::new(
        budget.max_memory,
    )));
    world.insert_resource(RenderedFrames::new(budget.max_memory / 4));
    world.insert_resource(RenderCost::default());
    world.insert_resource(DecodeGenerations::default());
    world.insert_resource(SwitchedFrom::default());
    world.insert_resource(framelock_components::Pressure::default());
    world.insert_resource(budget);
    world.insert_resource(RenderState::default());
    world.init_resource::<framelock_components::AdaptiveQuality>();
}

/// The label of the playback schedule.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Playback;

/// Builds the playback schedule: every system in its set, the sets chained in tick order.
/// Ambiguous system pairs are build errors.
pub fn playback_schedule() -> Schedule {
    let mut schedule = Schedule::new(Playback);
    schedule.set_build_settings(ScheduleBuildSettings {
        ambiguity_detection: bevy_ecs::schedule::LogLevel::Error,
        ..Default::default()
    });
    schedule.configure_sets(
        (
            PlaybackSet::Clock,
            PlaybackSet::SelectLod,
            PlaybackSet::Prefetch,
            PlaybackSet::Decode,
            PlaybackSet::Render,
            PlaybackSet::Present,
            PlaybackSet::Evict,
            PlaybackSet::Profile,
        )
            .chain(),
    );
    schedule.add_systems((
        (advance_playhead, index_timeline).in_set(PlaybackSet::Clock),
        (proxy_sync, adapt_quality, lod_select)
            .chain()
            .in_set(PlaybackSet::SelectLod),
        prefetch.in_set(PlaybackSet::Prefetch),
        decode.in_set(PlaybackSet::Decode),
        render.in_set(PlaybackSet::Render),
        present.in_set(PlaybackSet::Present),
        evict.in_set(PlaybackSet::Evict),
        profile.in_set(PlaybackSet::Profile),
    ));
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use framelock_components::{OutputFormat, QualitySettings, Rational};
    use framelock_engine::media::DecoderRegistry;
    use framelock_engine::workers::DecodePool;

    fn world() -> World {
        let b = WorldBuilder::new(
            OutputFormat {
                frame_rate: Rational::integer(30),
                width: 64,
                height: 36,
            },
            10,
            QualitySettings::default(),
            framelock_components::MemoryBudget::default(),
        );
        b.build(
            DecodePool::new(1, DecoderRegistry::openh264_only(), 1),
            framelock_engine::render::RenderService::new(
                framelock_engine::render::RenderServiceOptions {
                    cpu_workers: 1,
                    ..Default::default()
                },
            ),
            framelock_engine::render::OutputPixels::Any,
        )
        .0
    }

    /// Like bevy's ambiguity detection test: the full schedule has no ambiguous system pair.
    #[test]
    fn playback_schedule_has_no_ambiguities() {
        let mut world = world();
        let mut schedule = playback_schedule();
        let built = schedule.initialize(&mut world);
        assert!(built.is_ok(), "the playback schedule has ambiguous systems");
        schedule.run(&mut world);
        assert_eq!(world.resource::<Metrics>().ticks, 1);
    }

    /// And the detection is live: two unordered writers of one resource fail the build.
    #[test]
    fn ambiguity_detection_catches_unordered_writers() {
        fn a(mut m: ResMut<Metrics>) {
            m.dropped += 1;
        }
        fn b(mut m: ResMut<Metrics>) {
            m.held += 1;
        }
        let mut world = world();
        let mut schedule = playback_schedule();
        schedule.add_systems((a, b).in_set(PlaybackSet::Present));
        assert!(schedule.initialize(&mut world).is_err());
    }
}
