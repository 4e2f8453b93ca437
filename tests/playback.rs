//! The ECS playback engine on a virtual clock: the right frame at every tick through cuts,
//! offsets, source in-points and track priority (forward, reverse, 2x); frame-exact seeks;
//! scrub storms; a decoder that never answers; exact rational time.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use framelock::{
    ClipDef, DecoderRegistry, EngineOptions, MediaError, PlaybackEngine, PlayerError,
    PresentedFrame, Project, QualitySettings, Rational, TrackDef, VirtualClock, testcard,
};

const WAIT: Duration = Duration::from_secs(30);

fn media() -> (PathBuf, PathBuf) {
    let a = common::clip("play_a.mp4", 320, 180, Rational::integer(30), 90, 15);
    let b = common::clip("play_b.mp4", 320, 180, Rational::integer(30), 60, 10);
    (a, b)
}

/// Track 0: A[10..50) at 0..40, cut to B[5..35) at 40..70. Track 1 (on top): A[60..70) at
/// 20..30, gap, B[0..5) at 75..80. Frames 70..75 are a gap in both tracks: black.
fn project() -> Project {
    let (a, b) = media();
    let clip = |media: &PathBuf, start, duration, source_in| ClipDef {
        media: media.clone(),
        start,
        duration,
        source_in,
        enabled: true,
        effects: Default::default(),
        audio: Default::default(),
    };
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "bottom".into(),
        opacity: 1.0,
        clips: vec![clip(&a, 0, 40, 10), clip(&b, 40, 30, 5)],
    });
    p.tracks.push(TrackDef {
        name: "top".into(),
        opacity: 1.0,
        clips: vec![clip(&a, 20, 10, 60), clip(&b, 75, 5, 0)],
    });
    p
}

/// What the timeline shows at `t`: (asset id, source frame), or `None` for black.
fn expected(t: u64) -> Option<(u64, u64)> {
    // asset ids follow first use: A = 0, B = 1
    match t {
        20..30 => Some((0, 60 + t - 20)),
        75..80 => Some((1, t - 75)),
        0..40 => Some((0, 10 + t)),
        40..70 => Some((1, 5 + t - 40)),
        _ => None,
    }
}

type Shown = Arc<Mutex<Vec<PresentedFrame>>>;

fn engine(options: EngineOptions) -> (PlaybackEngine, Shown, VirtualClock) {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let clock = VirtualClock::new();
    let engine = PlaybackEngine::open(&project(), options, Arc::new(clock.clone()), move |f| {
        sink.lock().unwrap().push(f);
    })
    .expect("open");
    (engine, shown, clock)
}

fn options() -> EngineOptions {
    EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 2,
        ..EngineOptions::default()
    }
}

/// Checks one presented frame against the timeline.
fn check(f: &PresentedFrame) {
    let want = expected(f.timeline_frame);
    match want {
        // A seek's first picture may be the nearest decoded frame of the same clip (its
        // keyframe or a frame before), and says so; the exact one follows.
        Some((asset, source)) if !f.exact => {
            let top = f.layers.last().expect("a layer");
            assert_eq!(top.asset_id, asset, "t={}", f.timeline_frame);
            assert!(top.source_frame < source, "t={}", f.timeline_frame);
            assert_eq!(testcard::read_index(&f.picture), Some(top.source_frame));
        }
        Some((asset, source)) => {
            let top = f.layers.last().expect("a layer");
            assert_eq!(
                (top.asset_id, top.source_frame),
                (asset, source),
                "t={}",
                f.timeline_frame
            );
            assert_eq!(f.layers.len(), 1, "an opaque top layer hides the rest");
            assert_eq!(
                testcard::read_index(&f.picture),
                Some(source),
                "t={}: picture shows the wrong source frame",
                f.timeline_frame
            );
        }
        None => {
            assert!(f.layers.is_empty(), "t={} is a gap", f.timeline_frame);
            assert!(
                f.picture.planes[0].iter().all(|&y| y == 16),
                "gaps are black"
            );
        }
    }
}

/// Ticks, letting the workers finish between ticks (deterministic), until the playhead stops.
fn play_through(engine: &mut PlaybackEngine, max_ticks: usize) {
    for _ in 0..max_ticks {
        engine.tick();
        assert!(engine.wait_decodes(WAIT));
        if engine.playhead().state == framelock::PlayState::Paused {
            break;
        }
    }
    engine.tick(); // show the last frame, now decoded
}

fn presented_frames(shown: &Shown) -> Vec<u64> {
    let shown = shown.lock().unwrap();
    shown.iter().for_each(check);
    shown
        .iter()
        .filter(|f| !f.repeated)
        .map(|f| f.timeline_frame)
        .collect()
}

#[test]
fn forward_every_frame_right_through_cuts_offsets_and_priority() {
    let (mut engine, shown, _clock) = engine(options());
    engine.tick(); // paused on frame 0: requests it
    assert!(engine.wait_decodes(WAIT));
    engine.play();
    play_through(&mut engine, 200);
    let frames = presented_frames(&shown);
    let mut dedup = frames.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        (0..80).collect::<Vec<_>>(),
        "every timeline frame once, in order"
    );
    let m = engine.metrics();
    // The priming tick (paused on frame 0, nothing decoded yet) had no frame, but paused
    // nothing is due to move: no drop. Workers finished between ticks: nothing late.
    assert_eq!(m.dropped, 0, "{m:?}");
    assert!(m.cache_hit_rate > 0.9, "prefetch had frames ready: {m:?}");
}

#[test]
fn reverse_and_double_speed() {
    let (mut engine, shown, _clock) = engine(options());
    engine.seek_frame(79);
    engine.set_rate(-1.0);
    engine.tick();
    assert!(engine.wait_decodes(WAIT));
    engine.play();
    play_through(&mut engine, 200);
    let mut frames = presented_frames(&shown);
    frames.dedup();
    assert_eq!(frames, (0..80).rev().collect::<Vec<_>>());

    let (mut engine, shown, _clock) = self::engine(options());
    engine.set_rate(2.0);
    engine.tick();
    assert!(engine.wait_decodes(WAIT));
    engine.play();
    play_through(&mut engine, 200);
    let mut frames = presented_frames(&shown);
    frames.dedup();
    // every other frame, then the playhead stops on the last frame
    let mut want: Vec<u64> = (0..80).step_by(2).collect();
    want.push(79);
    assert_eq!(frames, want);
}

/// A deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn frame_exact_seek_to_100_random_times() {
    let (mut engine, shown, _clock) = engine(options());
    let mut rng = Rng(0x5eed);
    for _ in 0..100 {
        let frame = rng.below(80);
        // anywhere inside the frame's 1/30 s
        let seconds = (frame as f64 + rng.below(1000) as f64 / 1000.0 * 0.999) / 30.0;
        engine.seek(seconds);
        engine.tick();
        assert!(engine.wait_decodes(WAIT));
        engine.tick();
        let last = shown.lock().unwrap().last().cloned().expect("a frame");
        assert_eq!(last.timeline_frame, frame, "seek({seconds})");
        check(&last);
    }
}

#[test]
fn scrub_storm_ends_on_the_last_frame_and_leaves_no_work() {
    let (mut engine, shown, _clock) = engine(options());
    let mut rng = Rng(42);
    let mut last = 0;
    for _ in 0..1000 {
        last = rng.below(80);
        engine.seek_frame(last);
        engine.tick(); // never waits: most of these requests go stale
    }
    assert!(engine.wait_decodes(WAIT), "stale work drains");
    engine.tick();
    let f = shown.lock().unwrap().last().cloned().expect("a frame");
    assert_eq!(f.timeline_frame, last);
    check(&f);
    assert!(engine.wait_decodes(WAIT));
    assert_eq!(engine.decodes_in_flight(), 0, "no orphan decode work");
    // Paused: once the scrub is over (no move for SCRUB_MEMORY_TICKS), prefetch asks for
    // nothing more; what the storm decoded stays cached (under the budget), and no request
    // is left half done.
    for _ in 0..=framelock_systems::SCRUB_MEMORY_TICKS {
        engine.tick();
    }
    assert!(engine.wait_decodes(WAIT));
    for _ in 0..40 {
        engine.tick();
    }
    assert!(engine.wait_decodes(WAIT));
    engine.tick();
    assert_eq!(engine.decodes_in_flight(), 0);
    let mut q = engine.world_mut().query::<&framelock_components::Frame>();
    let states: Vec<_> = q.iter(engine.world()).map(|f| f.state).collect();
    assert!(
        states
            .iter()
            .all(|s| *s == framelock_components::FrameState::Ready),
        "{states:?}"
    );
    assert!(
        states.len() <= 160,
        "at most one frame per timeline frame and layer"
    );
    let stats = engine.cache_stats();
    assert!(stats.memory.peak_bytes <= engine.memory_budget().max_memory);
}

/// A decoder that blocks until a gate opens: decoding far slower than real time.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    /// Before a packet: waits until the gate is open.
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    /// The decoder double this gate holds back.
    fn backend(self: &Arc<Self>) -> common::HookedBackend {
        let gate = self.clone();
        common::HookedBackend::new("gated", move |_| gate.pass())
    }
}

#[test]
fn a_stuck_decoder_makes_ticks_drop_frames_but_never_stalls_the_loop() {
    let gate = Arc::new(Gate::default());
    let mut registry = DecoderRegistry::empty();
    registry.register(Arc::new(gate.backend()));
    for drop_late in [true, false] {
        let (mut engine, shown, clock) = engine(EngineOptions {
            registry: registry.clone(),
            workers: 2,
            queue_per_worker: 4,
            quality: QualitySettings {
                drop_late_frames: drop_late,
                ..QualitySettings::default()
            },
            ..EngineOptions::default()
        });
        *gate.open.lock().unwrap() = false;
        engine.play();
        for _ in 0..30 {
            engine.tick(); // every decode is blocked: the tick must still return
        }
        let m = engine.metrics();
        assert_eq!(m.ticks, 30);
        assert_eq!(m.presented, 0);
        assert_eq!(m.dropped + m.held, 30, "{m:?}");
        assert!(m.decode_queue_depth > 0);
        let pacer = framelock_engine::app::FramePacer::new(Rational::integer(30));
        use framelock::Clock;
        assert_eq!(
            clock.now(),
            pacer.time_of(29),
            "30 ticks took 29 frame periods"
        );
        // release: decoding resumes and frames come out again
        *gate.open.lock().unwrap() = true;
        gate.cv.notify_all();
        engine.pause();
        for _ in 0..5 {
            engine.tick();
            assert!(engine.wait_decodes(WAIT));
        }
        let shown = shown.lock().unwrap();
        let f = shown.last().expect("a frame after release");
        check(f);
    }
}

#[test]
fn an_hour_of_29_97_lands_exactly() {
    let (a, _) = media();
    let mut p = Project::new(Rational::new(30000, 1001).unwrap(), 320, 180);
    p.tracks.push(TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media: a,
            start: 0,
            duration: 80,
            source_in: 0,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    let clock = VirtualClock::new();
    let mut engine =
        PlaybackEngine::open(&p, options(), Arc::new(clock.clone()), |_| {}).expect("open");
    let pacer = framelock_engine::app::FramePacer::new(Rational::new(30000, 1001).unwrap());
    // ticks 0..107 892 (tick 107 891 is due at 3599.96303333… s): each on its exact
    // nanosecond (rounded up), none skipped
    for n in 0..107_892u64 {
        let plan = engine.tick();
        assert_eq!(plan.tick, n);
        assert_eq!(plan.skipped, 0);
        if n % 9_973 == 0 {
            use framelock::Clock;
            assert_eq!(clock.now(), pacer.time_of(n));
        }
    }
    use framelock::Clock;
    assert_eq!(clock.now(), Duration::from_nanos(3_599_963_033_334));
    assert_eq!(engine.metrics().ticks, 107_892);
    assert_eq!(engine.metrics().skipped_ticks, 0);
}

#[test]
fn bad_projects_get_clear_errors() {
    let (a, _) = media();
    let mut p = project();
    // unknown version
    let json = p.to_json().replace("\"version\": 2", "\"version\": 7");
    assert!(matches!(
        Project::from_json(&json),
        Err(framelock::ProjectError::UnsupportedVersion { found: 7, .. })
    ));
    // overlapping clips
    let mut q = p.clone();
    q.tracks[0].clips[1].start = 30;
    assert!(Project::from_json(&q.to_json()).is_err());
    // a clip pointing at a missing file
    p.tracks[1].clips[0].media = "/nonexistent/clip.mp4".into();
    let err = PlaybackEngine::open(&p, options(), Arc::new(VirtualClock::new()), |_| {})
        .expect_err("missing media");
    assert!(
        matches!(
            &err,
            PlayerError::Media {
                source: MediaError::NotFound { .. },
                ..
            }
        ),
        "{err}"
    );
    // a clip needing more source frames than its media has
    let mut r = project();
    r.tracks[0].clips[0] = ClipDef {
        media: a,
        start: 0,
        duration: 40,
        source_in: 80,
        enabled: true,
        effects: Default::default(),
        audio: Default::default(),
    };
    let err = PlaybackEngine::open(&r, options(), Arc::new(VirtualClock::new()), |_| {})
        .expect_err("beyond media");
    assert!(
        matches!(err, PlayerError::ClipBeyondMedia { has: 90, .. }),
        "{err}"
    );
    // nothing on the timeline
    let empty = Project::new(Rational::integer(30), 320, 180);
    assert!(matches!(
        PlaybackEngine::open(&empty, options(), Arc::new(VirtualClock::new()), |_| {}),
        Err(PlayerError::EmptyTimeline)
    ));
}

#[test]
fn probe_cache_serves_the_second_load() {
    let dir = tempfile::tempdir().unwrap();
    let cache = framelock::ProbeCache::new(dir.path()).unwrap();
    let open = || {
        PlaybackEngine::open(
            &project(),
            EngineOptions {
                probe_cache: Some(cache.clone()),
                ..options()
            },
            Arc::new(VirtualClock::new()),
            |_| {},
        )
        .expect("open")
    };
    drop(open());
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 2, "one entry per distinct media file");
    // a second load reads the entries: they are what a fresh probe says
    let (a, _) = media();
    let cached = cache.probe(&a, &DecoderRegistry::openh264_only()).unwrap();
    assert_eq!(
        cached,
        framelock::probe(&a, &DecoderRegistry::openh264_only()).unwrap()
    );
    drop(open());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_jump_cancels_queued_work_and_a_scrub_step_keeps_it() {
    let gate = Arc::new(Gate::default());
    let mut registry = DecoderRegistry::empty();
    registry.register(Arc::new(gate.backend()));
    let (mut engine, shown, _clock) = engine(EngineOptions {
        registry,
        workers: 1,
        queue_per_worker: 16,
        ..EngineOptions::default()
    });
    *gate.open.lock().unwrap() = false;
    engine.play();
    engine.tick(); // asks for 0..=12: one decoding (blocked), the rest queued
    assert!(engine.decodes_in_flight() > 5);
    // A step inside the prefetch plan keeps the queued work.
    engine.seek_frame(2);
    engine.tick();
    assert_eq!(engine.decodes_dropped_stale(), 0);
    // A jump away from it cancels the queued jobs: the worker drops them undecoded.
    engine.seek_frame(70);
    engine.tick();
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    assert!(engine.wait_decodes(WAIT));
    assert!(
        engine.decodes_dropped_stale() > 0,
        "stale jobs dropped undecoded"
    );
    engine.tick();
    assert!(engine.wait_decodes(WAIT));
    engine.tick();
    let last = shown.lock().unwrap().last().cloned().expect("a frame");
    assert!(last.timeline_frame >= 70);
    check(&last);
}

/// Metrics on the virtual clock: a decoder stalled for a known number of ticks as playback
/// starts gives exactly that many drops, one frame time that long, and 1/30 s everywhere else.
#[test]
fn metrics_show_an_injected_decode_stall_exactly() {
    let gate = Arc::new(Gate::default());
    let mut registry = DecoderRegistry::empty();
    registry.register(Arc::new(gate.backend()));
    let mut options = EngineOptions {
        registry,
        workers: 2,
        ..EngineOptions::default()
    };
    // No pre-roll: paused, only the frame at the playhead is decoded.
    options.quality.preroll_frames = 0;
    let (mut engine, _shown, _clock) = engine(options);
    let release = |open: bool| {
        *gate.open.lock().unwrap() = open;
        gate.cv.notify_all();
    };
    // Frame 0 on screen, paused; nothing else decoded (paused and still: current frame only).
    release(true);
    engine.tick();
    assert!(engine.wait_decodes(WAIT));
    engine.tick();
    // The decoder stalls for 6 ticks of playback.
    release(false);
    engine.play();
    for _ in 0..6 {
        engine.tick();
    }
    release(true);
    for _ in 0..20 {
        assert!(engine.wait_decodes(WAIT));
        engine.tick();
    }
    let m = engine.metrics();
    let period = 1000.0 / 30.0;
    // The very first tick had nothing decoded yet, but it was paused (no drop); play's
    // first tick shows frame 0 again (decoded); the other 5 stalled ticks needed frames
    // 1..=5 (5 drops).
    assert_eq!(m.dropped, 5, "{m:?}");
    assert!((m.frame_ms_p50 - period).abs() < 1e-6, "{m:?}");
    let longest = engine
        .world()
        .resource::<framelock_systems::Metrics>()
        .frame_times
        .iter()
        .max()
        .copied()
        .unwrap();
    assert!(
        (longest.as_secs_f64() * 1e3 - 6.0 * period).abs() < 1e-6,
        "one frame time spans the 5 dropped frames: {longest:?}"
    );
    assert!((m.frame_ms_last - period).abs() < 1e-6);
}
