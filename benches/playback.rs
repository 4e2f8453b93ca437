//! Playback engine benchmarks: the schedule's overhead per tick with 10 000 entities,
//! loading a 10-hour project whose probes are cached, and a live edit of it against that
//! reload.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use framelock::{
    ClipDef, DecoderRegistry, EngineOptions, GenerateOptions, PlaybackEngine, ProbeCache, Project,
    Rational, TrackDef, VirtualClock, generate_test_clip,
};
use framelock_components::{CacheEntry, CacheKey, CacheTier, Frame, FrameState};

fn small_clip(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    if !path.exists() {
        std::fs::create_dir_all(dir).unwrap();
        let mut o = GenerateOptions::new(64, 36, Rational::integer(30), seconds);
        o.rate = Some(framelock::RateControl::ConstantQp(40));
        generate_test_clip(&path, &o, |_, _| {}).unwrap();
    }
    path
}

fn bench_dir() -> PathBuf {
    std::env::temp_dir().join("framelock-bench-playback")
}

fn options() -> EngineOptions {
    EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 2,
        ..EngineOptions::default()
    }
}

/// 10 tracks x 100 clips (1 000 entities) and 9 000 decoded-frame entities: one tick's
/// schedule overhead (paused, steady state: no decoding). Goal: < 50 us.
fn tick_overhead(c: &mut Criterion) {
    let media = small_clip(&bench_dir(), "10s.mp4", 10.0);
    let mut p = Project::new(Rational::integer(30), 64, 36);
    for t in 0..10 {
        p.tracks.push(TrackDef {
            name: format!("v{t}"),
            opacity: 1.0,
            clips: (0..100)
                .map(|i| ClipDef {
                    media: media.clone(),
                    start: i * 3,
                    duration: 3,
                    source_in: (i * 7 + t) % 290,
                    enabled: true,
                    effects: Default::default(),
                    audio: Default::default(),
                })
                .collect(),
        });
    }
    let mut engine =
        PlaybackEngine::open(&p, options(), Arc::new(VirtualClock::new()), |_| {}).unwrap();
    let asset = engine
        .world_mut()
        .query::<bevy_ecs::entity::Entity>()
        .iter(engine.world())
        .next()
        .unwrap();
    for i in 0..9_000u64 {
        engine.world_mut().spawn((
            Frame {
                asset,
                asset_id: 1_000 + i / 300,
                index: i % 300,
                state: FrameState::Ready,
                generation: 0,
                priority: 0,
            },
            CacheEntry {
                tier: CacheTier::Ram,
                key: CacheKey(i),
                bytes: 64 * 36 * 3 / 2,
                last_use: u64::MAX / 2,
                pinned: false,
            },
        ));
    }
    let entities = engine.world().entities().count_spawned();
    assert!(entities >= 10_000, "{entities} entities");
    for _ in 0..5 {
        engine.tick();
        engine.wait_decodes(std::time::Duration::from_secs(10));
    }
    c.bench_function("tick/10k-entities-paused", |b| b.iter(|| engine.tick()));
}

/// A 10-hour project: 3 000 clips of 12 s over 100 files on 4 tracks, and the probe cache
/// that knows its files.
fn ten_hours() -> (Project, ProbeCache) {
    let dir = bench_dir();
    let source = small_clip(&dir, "6min.mp4", 360.0);
    let mut files = Vec::new();
    for i in 0..100 {
        let f = dir.join(format!("file{i:03}.mp4"));
        if !f.exists() {
            std::fs::copy(&source, &f).unwrap();
        }
        files.push(f);
    }
    let mut p = Project::new(Rational::integer(30), 1920, 1080);
    for t in 0..4u64 {
        p.tracks.push(TrackDef {
            name: format!("v{t}"),
            opacity: 1.0,
            clips: (0..750u64)
                .map(|i| ClipDef {
                    media: files[((i + t * 750) % 100) as usize].clone(),
                    start: i * 360,
                    duration: 360,
                    source_in: (i % 30) * 360,
                    enabled: true,
                    effects: Default::default(),
                    audio: Default::default(),
                })
                .collect(),
        });
    }
    assert_eq!(p.duration_frames(), 750 * 360); // 2.5 h per track, 10 h of clips in all
    let cache = ProbeCache::new(dir.join("probe-cache")).unwrap();
    (p, cache)
}

/// The 10-hour project, probes cached: parse the JSON and build the world. Goal: < 200 ms.
fn project_load(c: &mut Criterion) {
    let (p, cache) = ten_hours();
    let json = p.to_json();
    let load = || {
        let project = Project::from_json(&json).unwrap();
        PlaybackEngine::open(
            &project,
            EngineOptions {
                probe_cache: Some(cache.clone()),
                ..options()
            },
            Arc::new(VirtualClock::new()),
            |_| {},
        )
        .unwrap()
    };
    drop(load()); // warms the probe cache
    c.bench_function("project-load/10h-3000-clips-100-files-cached", |b| {
        b.iter(load)
    });
}

/// A live edit of the 10-hour project against reopening it (what a host did before edits
/// existed; `project-load` above, same run): one clip moved to another track and back, two
/// edits an iteration, each checked, applied to the world and answered with its inverse.
fn edit_vs_reopen(c: &mut Criterion) {
    use framelock::{ClipRef, Edit};
    let (p, cache) = ten_hours();
    let mut engine = PlaybackEngine::open(
        &p,
        EngineOptions {
            probe_cache: Some(cache),
            ..options()
        },
        Arc::new(VirtualClock::new()),
        |_| {},
    )
    .unwrap();
    // Clip 10 of track 0 (frames 3600..3960) moves up to track 3, whose clip 10 is moved
    // out of the way first (to the end), so the move is valid.
    engine
        .edit(&Edit::MoveClip {
            clip: ClipRef::new(3, 3600),
            track: 3,
            start: 750 * 360,
        })
        .unwrap();
    let there = Edit::MoveClip {
        clip: ClipRef::new(0, 3600),
        track: 3,
        start: 3600,
    };
    c.bench_function("edit/move-a-clip-and-back-10h-3000-clips", |b| {
        b.iter(|| {
            let back = engine.edit(&there).unwrap();
            engine.edit(&back).unwrap();
        })
    });
}

/// The metrics side of a tick: the `profile` system alone (counters, plots, the profiler's
/// frame mark) on a world whose metrics window is full. Goal: < 5 us.
fn metrics_cost(c: &mut Criterion) {
    use bevy_ecs::prelude::*;
    use framelock_systems::{Metrics, Tick, profile};
    let mut world = World::new();
    let mut metrics = Metrics::default();
    for i in 0..2048u64 {
        let at = std::time::Duration::from_millis(i * 33);
        metrics.record_tick(
            std::time::Duration::from_micros(100 + i % 50),
            at,
            true,
            at,
            true,
        );
        metrics.record_decode(std::time::Duration::from_millis(8));
    }
    metrics.cache_hits = 1000;
    metrics.cache_misses = 10;
    world.insert_resource(metrics);
    world.insert_resource(Tick::default());
    let mut schedule = Schedule::default();
    schedule.add_systems(profile);
    schedule.run(&mut world);
    c.bench_function("metrics/profile-system-per-tick", |b| {
        b.iter(|| schedule.run(&mut world))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = tick_overhead, project_load, edit_vs_reopen, metrics_cost
}
criterion_main!(benches);
