//! The frame cache tiers through the engine: rendered frames keyed by their effect stacks
//! (editing one clip's effects misses only its frames), rendered frames written through to the
//! disk tier and reused after a restart without decoding, decoded frames written back to disk
//! under memory pressure and read from there, and `clear_cache`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framelock::{
    ClearCache, ClipDef, DiskCacheOptions, EffectsKey, EngineOptions, MemoryBudget, PlaybackEngine,
    PresentedFrame, Project, Rational, TrackDef, VirtualClock,
};
use framelock_components::Clip;

const WAIT: Duration = Duration::from_secs(60);

fn media() -> (PathBuf, PathBuf) {
    (
        common::clip("cache_a.mp4", 320, 180, Rational::integer(30), 60, 15),
        common::clip("cache_b.mp4", 320, 180, Rational::integer(30), 60, 15),
    )
}

/// Bottom: A[0..60). Top, at half opacity: B[0..30) then A[0..30) at 30..60.
fn project() -> Project {
    let (a, b) = media();
    let clip = |media: &PathBuf, start, duration| ClipDef {
        media: media.clone(),
        start,
        duration,
        source_in: 0,
        enabled: true,
        effects: Default::default(),
        audio: Default::default(),
    };
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "bottom".into(),
        opacity: 1.0,
        clips: vec![clip(&a, 0, 60)],
    });
    p.tracks.push(TrackDef {
        name: "top".into(),
        opacity: 0.5,
        clips: vec![clip(&b, 0, 30), clip(&a, 30, 30)],
    });
    p
}

type Shown = Arc<Mutex<HashMap<u64, Vec<u8>>>>;

fn engine(options: EngineOptions) -> (PlaybackEngine, Shown) {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let engine = PlaybackEngine::open(
        &project(),
        options,
        Arc::new(VirtualClock::new()),
        move |f: PresentedFrame| {
            sink.lock()
                .unwrap()
                .insert(f.timeline_frame, f.picture.to_raw());
        },
    )
    .expect("open");
    (engine, shown)
}

/// Sets the effect-stack hash of the clip on `track` starting at `start`.
fn set_effects(engine: &mut PlaybackEngine, track: usize, start: u64, hash: u64) {
    let world = engine.world_mut();
    let mut q = world.query::<(bevy_ecs::entity::Entity, &Clip)>();
    let e = q
        .iter(world)
        .find(|(_, c)| c.track == track && c.start == start)
        .map(|(e, _)| e)
        .expect("clip");
    world.entity_mut(e).insert(EffectsKey(hash));
}

/// Shows each frame of `frames` (seek, decode, show) like a user stepping through them.
fn step_through(engine: &mut PlaybackEngine, frames: std::ops::Range<u64>) {
    for t in frames {
        common::show(engine, t);
    }
}

#[test]
fn editing_one_clips_effects_misses_only_its_rendered_frames() {
    let (mut engine, shown) = engine(EngineOptions::default());
    set_effects(&mut engine, 0, 0, 11);
    set_effects(&mut engine, 1, 0, 22);
    set_effects(&mut engine, 1, 30, 33);
    step_through(&mut engine, 0..60);
    let first = engine.cache_stats().ram_rendered;
    assert_eq!(first.entries, 60, "every composite kept: {first:?}");
    let pictures = shown.lock().unwrap().clone();
    assert_eq!(pictures.len(), 60);

    // Nothing changed: every frame is a hit.
    step_through(&mut engine, 0..60);
    let again = engine.cache_stats().ram_rendered;
    assert_eq!(
        again.misses, first.misses,
        "no miss on an unchanged timeline"
    );
    assert!(again.hits >= first.hits + 60);

    // Edit the effects of the top clip at 30..60: only its frames miss.
    set_effects(&mut engine, 1, 30, 34);
    step_through(&mut engine, 0..30);
    let untouched = engine.cache_stats().ram_rendered;
    assert_eq!(
        untouched.misses, again.misses,
        "frames 0..30 are still valid"
    );
    step_through(&mut engine, 30..60);
    let edited = engine.cache_stats().ram_rendered;
    assert!(
        edited.misses >= untouched.misses + 30,
        "all 30 frames of the edited clip miss: {edited:?}"
    );
    assert_eq!(edited.entries, 90, "30 new rendered frames beside the 60");
    // The pictures themselves are the same composites (effects do not draw yet on the CPU
    // path): right sources, right blend.
    let now = shown.lock().unwrap();
    for t in 0..60 {
        assert_eq!(now[&t], pictures[&t], "frame {t}");
    }
}

fn disk_options(dir: &Path) -> EngineOptions {
    EngineOptions {
        disk_cache: Some(DiskCacheOptions::new(dir, 256 << 20)),
        ..EngineOptions::default()
    }
}

#[test]
fn rendered_frames_survive_a_restart_on_the_disk_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_pictures = {
        let (mut engine, shown) = engine(disk_options(dir.path()));
        set_effects(&mut engine, 1, 0, 5);
        set_effects(&mut engine, 1, 30, 6);
        step_through(&mut engine, 0..60);
        engine.flush_disk_cache();
        let disk = engine.cache_stats().disk.expect("disk tier");
        assert_eq!(disk.tier.entries, 60, "{disk:?}");
        shown.lock().unwrap().clone()
    };
    // A new engine (a restart): the composites come from disk, nothing is decoded.
    let (mut engine, shown) = engine(disk_options(dir.path()));
    set_effects(&mut engine, 1, 0, 5);
    set_effects(&mut engine, 1, 30, 6);
    step_through(&mut engine, 0..60);
    let m = engine.metrics();
    assert_eq!(m.decoded, 0, "no frame decoded: {m:?}");
    let stats = engine.cache_stats();
    assert!(stats.disk_reads >= 60, "{stats:?}");
    let shown = shown.lock().unwrap();
    for t in 0..60 {
        assert_eq!(shown[&t], first_pictures[&t], "frame {t} is bit-exact");
    }
}

#[test]
fn under_pressure_decoded_frames_go_to_disk_and_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 8 MB: the open decoders count about 1 MB each (openh264 at 320x180), and 320x180
    // frames are 86,400 bytes: the warning level holds a few dozen of the 120 the timeline's
    // two layers need.
    let options = EngineOptions {
        memory: MemoryBudget::new(8 << 20),
        ..disk_options(dir.path())
    };
    let (mut engine, shown) = engine(options);
    engine.play();
    for _ in 0..60 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
        // The write-behind done too: a frame waiting in the writer's queue is held (and
        // counted against the budget) until written, so how far the writer got changed the
        // pressure, and with it how many frames were shown (47 of the 50 asked in one loaded
        // CI run).
        engine.flush_disk_cache();
    }
    engine.flush_disk_cache();
    let stats = engine.cache_stats();
    assert!(stats.evicted > 0, "{stats:?}");
    let disk = stats.disk.expect("disk tier");
    assert!(
        disk.tier.entries > 0,
        "evicted frames written back: {stats:?}"
    );
    let decoded = engine.metrics().decoded;
    // Play the start again: the evicted frames come from disk.
    engine.seek_frame(0);
    for _ in 0..20 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
    }
    let after = engine.cache_stats();
    assert!(
        after.disk_reads > stats.disk_reads,
        "frames read back from disk: {after:?}"
    );
    let decodes = engine.metrics().decoded - decoded;
    assert!(
        decodes < 64,
        "the replay needs at most 64 frames: some came back from disk ({decodes} decoded)"
    );
    // Right pictures all along: both layers' sources are in each frame (the blend of the
    // bottom's index and the top's at half opacity is checked by the layer list; the top-left
    // corner index is readable on the bottom-only region of the card).
    let shown = shown.lock().unwrap();
    assert!(shown.len() >= 50, "{} frames shown", shown.len());
}

#[test]
fn clear_cache_empties_the_tier_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut engine, _shown) = engine(disk_options(dir.path()));
    set_effects(&mut engine, 1, 0, 5);
    step_through(&mut engine, 0..10);
    engine.flush_disk_cache();
    let before = engine.cache_stats();
    assert_eq!(before.ram_rendered.entries, 10);
    assert_eq!(before.disk.expect("disk").tier.entries, 10);
    assert!(before.ram_decoded.entries >= 10);
    let cleared = engine.clear_cache(ClearCache::Rendered).expect("clears");
    assert_eq!(cleared.disk_entries, 10);
    let after = engine.cache_stats();
    assert_eq!(after.ram_rendered.entries, 0);
    assert_eq!(after.disk.expect("disk").tier.entries, 0);
    assert!(after.ram_decoded.entries >= 10, "decoded frames untouched");
    engine.tick();
    let cleared = engine.clear_cache(ClearCache::Decoded).expect("clears");
    assert!(cleared.ram_entries >= 9, "{cleared:?}");
    let after = engine.cache_stats();
    assert!(
        after.ram_decoded.entries <= 2,
        "only the frame on screen stays: {after:?}"
    );
    // And the cache refills: the frames are decoded again, right.
    step_through(&mut engine, 0..3);
    assert!(engine.cache_stats().ram_decoded.entries >= 3);
}
