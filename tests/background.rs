//! Background render on the virtual clock: the queue's order, prioritize / pause / resume /
//! clear and exact progress; Smart choosing the performance map's red stretches after the
//! idle delay only; playback using what was rendered (no effects frame made again); edits
//! invalidating only what they touched, and an old generation's pictures never landing.
//! No timing asserts: the worker runs on real threads, and the tests wait for it between
//! ticks with a generous deadline.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framelock::{
    BackgroundOptions, BackgroundRender, BarColor, ClipRef, DecoderRegistry, Edit, Effect,
    EffectStack, EngineOptions, PixelFormat, PlaybackEngine, PoolClass, PresentedFrame,
    PriorityClass, Project, Rational, TaskState, TrackDef, VirtualClock, testcard,
};

const RATE: Rational = Rational::integer(30);
const WAIT: Duration = Duration::from_secs(60);

fn grade(brightness: f32) -> EffectStack {
    EffectStack {
        effects: vec![Effect::Grade {
            brightness,
            contrast: 1.1,
            saturation: 0.9,
            gamma: 1.0,
            lift: 0.0,
            gain: 1.0,
        }],
        ..EffectStack::default()
    }
}

/// A: graded, timeline 0..60 from source 0; B: plain, 60..120 from source 60.
fn project(rate: Rational, fx: EffectStack) -> Project {
    let media = common::clip("background.mp4", 320, 180, RATE, 150, 30);
    let mut p = Project::new(rate, 320, 180);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![
            common::clip_def(&media, 0, 60, 0, fx),
            common::clip_def(&media, 60, 60, 60, EffectStack::default()),
        ],
    });
    p
}

type Shown = Arc<Mutex<Vec<PresentedFrame>>>;

fn open(project: &Project) -> (PlaybackEngine, Shown) {
    open_with(project, None)
}

/// [`open`] with a disk tier in `disk`.
fn open_with(project: &Project, disk: Option<&std::path::Path>) -> (PlaybackEngine, Shown) {
    open_budget(project, disk, EngineOptions::default().memory.max_memory)
}

/// [`open_with`] with a memory budget of `budget` bytes.
fn open_budget(
    project: &Project,
    disk: Option<&std::path::Path>,
    budget: usize,
) -> (PlaybackEngine, Shown) {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let defaults = EngineOptions::default();
    let options = EngineOptions {
        memory: framelock::MemoryBudget {
            max_memory: budget,
            ..defaults.memory
        },
        registry: DecoderRegistry::openh264_only(),
        workers: 2,
        // Two render workers whatever the machine: the performance map's effects estimate
        // (what Smart chooses by) divides by them.
        render_workers: 2,
        gpu: None,
        audio: false,
        disk_cache: disk.map(|d| framelock::DiskCacheOptions::new(d, 256 << 20)),
        ..defaults
    };
    let mut engine =
        PlaybackEngine::open(project, options, Arc::new(VirtualClock::new()), move |f| {
            sink.lock().unwrap().push(f);
        })
        .expect("open");
    engine.set_background_options(BackgroundOptions {
        idle_delay: Duration::from_secs(1),
        debounce: Duration::from_millis(300),
        chunk_frames: 30,
        cores: 0,
    });
    (engine, shown)
}

/// Ticks (the worker runs meanwhile on its own thread) until `done` says so.
fn tick_until(
    engine: &mut PlaybackEngine,
    what: &str,
    mut done: impl FnMut(&mut PlaybackEngine) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        engine.tick();
        if done(engine) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: gave up; queue {:?}, stats {:?}",
            engine.render_progress(),
            engine.background_stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Plays from where the playhead is to `frame`, letting every worker finish between ticks
/// (deterministic), then pauses.
fn play_to(engine: &mut PlaybackEngine, frame: u64) {
    engine.play();
    for _ in 0..2 * frame + 20 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
        if engine.playhead().frame >= frame {
            break;
        }
    }
    engine.pause();
}

fn rendered_all(engine: &mut PlaybackEngine) -> bool {
    let p = engine.render_progress();
    p.queued == 0 && p.rendering == 0 && p.done == p.frames
}

fn colors(
    engine: &mut PlaybackEngine,
    range: std::ops::Range<u64>,
) -> Vec<(std::ops::Range<u64>, BarColor)> {
    engine
        .render_bar(range)
        .into_iter()
        .map(|s| (s.range, s.color))
        .collect()
}

fn index_of(f: &PresentedFrame) -> Option<u64> {
    let p = &f.picture;
    match p.format {
        PixelFormat::Rgba8 => testcard::read_index_rgba(&p.planes[0], p.width, p.height),
        _ => testcard::read_index(p),
    }
}

/// At least `at_least` exact pictures were shown, and each is its timeline frame's.
fn assert_exact_frames(shown: &[PresentedFrame], at_least: usize) {
    let exact: Vec<&PresentedFrame> = shown.iter().filter(|f| f.exact && !f.repeated).collect();
    assert!(exact.len() >= at_least, "{} frames", exact.len());
    for f in exact {
        assert_eq!(
            index_of(f),
            Some(f.timeline_frame),
            "t={}",
            f.timeline_frame
        );
    }
}

#[test]
fn the_queue_runs_nearest_first_pauses_resumes_clears_and_counts_exactly() {
    let (mut engine, _) = open(&project(RATE, grade(0.05)));
    engine.set_background_render(BackgroundRender::Manual);
    engine.pause_render_queue();
    engine.seek_frame(100);
    assert_eq!(engine.prioritize_render(0..120), 4);
    assert_eq!(engine.prioritize_render(30..60), 0, "queued once");
    let order: Vec<_> = engine.render_tasks().into_iter().map(|t| t.range).collect();
    assert_eq!(
        order,
        vec![90..120, 60..90, 30..60, 0..30],
        "nearest the playhead first"
    );
    let p = engine.render_progress();
    assert_eq!((p.frames, p.done, p.queued, p.paused), (120, 0, 4, true));
    // Paused: ticks hand out nothing.
    for _ in 0..10 {
        engine.tick();
    }
    assert_eq!(engine.render_progress().queued, 4);
    assert_eq!(engine.background_stats().chunks, 0);
    // Resumed: the nearest chunk goes first.
    engine.resume_render_queue();
    engine.tick();
    let first = engine.render_tasks();
    assert!(
        matches!(first[0].state, TaskState::Rendering { .. }) && first[0].range == (90..120),
        "{first:?}"
    );
    tick_until(&mut engine, "render 0..120", rendered_all);
    let p = engine.render_progress();
    assert_eq!((p.frames, p.done, p.finished), (120, 120, 4));
    assert_eq!(colors(&mut engine, 0..120), vec![(0..120, BarColor::Green)]);
    assert_eq!(engine.background_stats().frames, 120);
    // Queued again, everything is rendered already: done without work.
    assert_eq!(engine.clear_render_queue(), 4);
    assert_eq!(engine.render_progress().frames, 0);
    engine.prioritize_render(0..60);
    tick_until(&mut engine, "already rendered", rendered_all);
    assert_eq!(
        engine.background_stats().frames,
        120,
        "nothing rendered twice"
    );
    assert_eq!(engine.background_stats().already_rendered, 2);
}

#[test]
fn playback_shows_the_background_pictures_instead_of_rendering_them() {
    let (mut engine, shown) = open(&project(RATE, grade(0.05)));
    engine.set_background_render(BackgroundRender::Manual);
    engine.seek_frame(90);
    engine.prioritize_render(0..60);
    tick_until(&mut engine, "render 0..60", rendered_all);
    let effects_before = {
        let s = engine.render_stats();
        s.cpu_frames + s.gpu_frames
    };
    shown.lock().unwrap().clear();
    // The queue works on while playing (when playback leaves slack): it takes nothing
    // from playback's own decoders and render workers.
    engine.prioritize_render(60..120);
    engine.seek_frame(0);
    play_to(&mut engine, 59);
    assert_eq!(engine.metrics().dropped, 0, "{:?}", engine.metrics());
    let s = engine.render_stats();
    assert_eq!(
        s.cpu_frames + s.gpu_frames,
        effects_before,
        "playback rendered effects frames the background had rendered"
    );
    let shown = shown.lock().unwrap();
    let graded: Vec<&PresentedFrame> = shown
        .iter()
        .filter(|f| f.timeline_frame < 60 && !f.repeated && f.exact)
        .collect();
    assert!(graded.len() >= 50, "{} frames", graded.len());
    for f in graded {
        assert_eq!(
            index_of(f),
            Some(f.timeline_frame),
            "t={}",
            f.timeline_frame
        );
        assert!(f.content_key.is_some());
    }
}

/// Plays from frame 0 (after a preroll) with the queue resumed once playing, ticking (every worker done between
/// ticks) until the gate opens (a tick that does not count as yielded) or `ticks` ticks.
/// Returns the ticks played and whether the gate opened.
fn play_until_the_gate_opens(engine: &mut PlaybackEngine, ticks: u64) -> (u64, bool) {
    // The first frame decoded and rendered before play (as a host's preroll would).
    engine.seek_frame(0);
    for _ in 0..2 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
    }
    engine.play();
    engine.resume_render_queue();
    for n in 1..=ticks {
        let yielded = engine.background_stats().yielded_ticks;
        engine.tick();
        assert!(engine.wait_idle(WAIT));
        if engine.background_stats().yielded_ticks == yielded {
            return (n, true);
        }
    }
    (ticks, false)
}

/// While playing, the queue renders only on a core playback leaves idle. Counting one core,
/// it never does (it yields every tick, and nothing reaches the worker); counting many, it
/// renders alongside once playback has been quiet. Either way playback drops nothing and
/// shows the right frames, and, paused again, the queue renders.
#[test]
fn while_playing_the_queue_renders_only_on_a_core_playback_leaves_idle() {
    for cores in [1, 64] {
        let (mut engine, shown) = open(&project(RATE, grade(0.05)));
        engine.set_background_options(BackgroundOptions {
            idle_delay: Duration::from_secs(1),
            debounce: Duration::from_millis(300),
            chunk_frames: 30,
            cores,
        });
        engine.set_background_render(BackgroundRender::Manual);
        engine.pause_render_queue();
        engine.prioritize_render(0..120);
        let (played, opened) = play_until_the_gate_opens(&mut engine, 60);
        let stats = engine.background_stats();
        if cores == 1 {
            assert!(!opened, "cores {cores}: the gate opened while playing");
            assert_eq!(stats.yielded_ticks, played, "{stats:?}");
            // The gate was shut on every tick: the worker was handed nothing.
            std::thread::sleep(Duration::from_millis(200));
            engine.tick();
            assert_eq!(
                (
                    engine.background_stats().chunks,
                    engine.background_reports_waiting()
                ),
                (0, 0)
            );
        } else {
            // Open after the quiet ticks: the worker renders while playback plays on (no
            // tick meanwhile, so the playhead waits where it is).
            assert!(opened, "cores {cores}: the gate never opened: {stats:?}");
            assert!(
                played >= framelock::QUIET_TICKS,
                "opened after {played} ticks"
            );
            let deadline = Instant::now() + WAIT;
            while engine.background_reports_waiting() == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the worker rendered nothing: {:?} {:?}",
                    engine.background_stats(),
                    engine.render_tasks()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        play_to(&mut engine, 110);
        let rendered_while_playing = engine.background_stats().frames;
        if cores == 1 {
            assert_eq!(rendered_while_playing, 0);
        } else {
            assert!(rendered_while_playing > 0);
        }
        assert_eq!(
            engine.metrics().dropped,
            0,
            "cores {cores}: {:?}",
            engine.metrics()
        );
        assert_exact_frames(&shown.lock().unwrap(), 100);
        // Paused: the queue renders on whatever the machine has.
        tick_until(&mut engine, "render 0..120 paused", rendered_all);
    }
}

#[test]
fn smart_queues_exactly_the_red_stretches_after_the_idle_delay() {
    // At 120 fps the graded stretch (80 grades a frame) cannot play in real time by the
    // map's estimate (11.5 ms of effects a frame on two render workers, over the 8.3 ms
    // budget, whatever decoding costs); the plain one can (a 320x180 decode is far below).
    let heavy = EffectStack {
        effects: (0..80)
            .map(|i| grade(0.001 * i as f32).effects[0])
            .collect(),
        ..EffectStack::default()
    };
    let (mut engine, _) = open(&project(Rational::integer(120), heavy));
    engine.set_background_options(BackgroundOptions {
        idle_delay: Duration::from_millis(500),
        debounce: Duration::from_millis(300),
        chunk_frames: 30,
        cores: 0,
    });
    engine.seek_frame(100); // in the plain stretch: nothing rendered by playback
    engine.set_background_render(BackgroundRender::Smart);
    engine.pause_render_queue(); // choose, but do not render yet
    // 0.5 s idle is 60 ticks at 120 fps: nothing is queued before.
    for _ in 0..50 {
        engine.tick();
    }
    assert!(
        engine.render_tasks().is_empty(),
        "queued before the idle delay"
    );
    let mut ticks = 50;
    while engine.render_tasks().is_empty() {
        engine.tick();
        ticks += 1;
        assert!(ticks < 150, "never queued: {:?}", engine.performance_map());
    }
    assert!(ticks >= 60, "queued after {ticks} ticks");
    let map = engine.performance_map();
    let red: Vec<std::ops::Range<u64>> = map
        .iter()
        .filter(|s| s.status == framelock::SegmentStatus::NeedsOptimization)
        .flat_map(|s| framelock::chunks(s.start..s.end, 30))
        .collect();
    assert!(!red.is_empty(), "the graded stretch is red: {map:?}");
    assert!(
        map.iter()
            .any(|s| s.status == framelock::SegmentStatus::Smooth),
        "{map:?}"
    );
    let mut tasks: Vec<_> = engine
        .render_tasks()
        .into_iter()
        .inspect(|t| assert_eq!(t.class, PriorityClass::Smart))
        .map(|t| t.range)
        .collect();
    tasks.sort_by_key(|r| r.start);
    assert_eq!(tasks, red);
    // The host's range goes ahead of Smart's.
    engine.prioritize_render(90..120);
    assert_eq!(engine.render_tasks()[0].range, 90..120);
    assert_eq!(engine.render_tasks()[0].class, PriorityClass::Host);
    // Red where the map says so and nothing is rendered; yellow elsewhere.
    assert_eq!(
        colors(&mut engine, 0..120),
        vec![(0..60, BarColor::Red), (60..120, BarColor::Yellow)]
    );
}

#[test]
fn edits_invalidate_only_what_they_touch_and_old_work_never_lands() {
    let (mut engine, _) = open(&project(RATE, grade(0.05)));
    engine.set_background_render(BackgroundRender::Manual);
    engine.seek_frame(110);
    engine.prioritize_render(0..120);
    tick_until(&mut engine, "render 0..120", rendered_all);
    assert_eq!(colors(&mut engine, 0..120), vec![(0..120, BarColor::Green)]);

    // Moving the graded clip keeps its pictures: their content keys did not change.
    engine
        .edit(&Edit::MoveClip {
            clip: ClipRef { track: 0, start: 0 },
            track: 0,
            start: 120,
        })
        .expect("move");
    assert_eq!(
        colors(&mut engine, 60..180),
        vec![(60..180, BarColor::Green)],
        "a moved clip keeps its rendered frames"
    );

    // A new look for it: only its frames need rendering again.
    let frames_before = engine.background_stats().frames;
    engine
        .edit(&Edit::SetEffects {
            clip: ClipRef {
                track: 0,
                start: 120,
            },
            effects: grade(0.2),
        })
        .expect("effects");
    let bar = colors(&mut engine, 60..180);
    assert_eq!(bar[0], (60..120, BarColor::Green), "{bar:?}");
    assert!(
        bar[1..].iter().all(|(_, c)| *c != BarColor::Green),
        "{bar:?}"
    );

    // Render it, and change it again while its chunk is in flight: the old generation's
    // pictures are thrown away, never kept.
    engine.prioritize_render(120..180);
    let stale_before = engine.background_stats().stale;
    let deadline = Instant::now() + WAIT;
    while !engine
        .render_tasks()
        .iter()
        .any(|t| matches!(t.state, TaskState::Rendering { .. }))
    {
        engine.tick();
        assert!(Instant::now() < deadline);
    }
    // The worker reports a frame; no tick collects it before the edit.
    while engine.background_reports_waiting() == 0 {
        assert!(Instant::now() < deadline, "the worker reported nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    engine
        .edit(&Edit::SetEffects {
            clip: ClipRef {
                track: 0,
                start: 120,
            },
            effects: grade(-0.1),
        })
        .expect("effects");
    tick_until(&mut engine, "render the new look", rendered_all);
    let stats = engine.background_stats();
    assert!(stats.stale > stale_before, "{stats:?}");
    assert_eq!(
        colors(&mut engine, 60..180),
        vec![(60..180, BarColor::Green)]
    );
    // Only the edited clip's 60 frames were rendered again (plus any of the withdrawn
    // chunk's before the edit landed, which were kept: they were of the generation then).
    assert!(
        stats.frames - frames_before <= 120,
        "{} frames rendered after the edits",
        stats.frames - frames_before
    );
    // Removing the clip: its frames are a gap now, never its pictures.
    engine
        .edit(&Edit::RemoveClip {
            clip: ClipRef {
                track: 0,
                start: 120,
            },
        })
        .expect("remove");
    assert_eq!(engine.playhead().duration, 120);
}

#[test]
fn background_pictures_survive_a_restart_on_the_disk_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = project(RATE, grade(0.05));
    {
        let (mut engine, _) = open_with(&project, Some(dir.path()));
        engine.set_background_render(BackgroundRender::Manual);
        engine.seek_frame(100);
        engine.prioritize_render(0..60);
        tick_until(&mut engine, "render 0..60", rendered_all);
        engine.flush_disk_cache();
    }
    // A new engine on the same folder: the frames are rendered (the disk tier has them), and
    // playback reads them instead of rendering.
    let (mut engine, shown) = open_with(&project, Some(dir.path()));
    assert_eq!(colors(&mut engine, 0..60), vec![(0..60, BarColor::Green)]);
    play_to(&mut engine, 40);
    let s = engine.render_stats();
    assert_eq!(s.cpu_frames + s.gpu_frames, 0, "{s:?}");
    assert_eq!(
        engine.metrics().decoded,
        0,
        "every frame came from the disk tier"
    );
    assert_exact_frames(&shown.lock().unwrap(), 30);
}

/// The worker's budget is a quarter of the engine's, and so is the engine's RAM tier of
/// rendered frames, where the worker's pictures are kept: counted in the worker's budget while
/// the engine kept them, they filled it until the worker could not decode (the 4K three-track
/// scene stalled mid-timeline, 'no progress for 60 s'). They are counted in the keeper's pool.
#[test]
fn background_pictures_count_in_the_budget_of_the_engine_that_keeps_them() {
    let media = common::clip("background-720.mp4", 1280, 720, RATE, 90, 30);
    let mut p = Project::new(RATE, 1280, 720);
    // Two layers (the Y'CbCr compositor's pictures, taken from the worker's pool); the
    // second starts once the pictures before it fill 64 MiB, so its decoder needs room then.
    for (name, opacity, start, source_in) in [("base", 1.0, 0, 0), ("over", 0.5, 50, 30)] {
        p.tracks.push(TrackDef {
            name: name.into(),
            opacity,
            clips: vec![common::clip_def(
                &media,
                start,
                60 - start,
                source_in,
                EffectStack::default(),
            )],
        });
    }
    // 64 MiB for the worker and for the RAM tier: 46 pictures (1.4 MB each) fill either.
    let (mut engine, _) = open_budget(&p, None, 256 << 20);
    engine.set_background_render(BackgroundRender::Manual);
    engine.prioritize_render(0..60);
    tick_until(&mut engine, "render 0..60", |e| {
        let p = e.render_progress();
        p.queued == 0 && p.rendering == 0
    });
    let progress = engine.render_progress();
    let stats = engine.background_stats();
    assert_eq!(progress.cancelled, 0, "{progress:?} {stats:?}");
    assert_eq!(progress.done, 60, "{progress:?} {stats:?}");
    assert_eq!(stats.frames, 60, "{stats:?}");
    // What the engine keeps is counted in its own pool (it decoded nothing itself).
    let cache = engine.cache_stats();
    assert!(cache.ram_rendered.entries >= 40, "{:?}", cache.ram_rendered);
    assert!(
        cache.memory.class(PoolClass::Frames).in_use_bytes >= cache.ram_rendered.bytes,
        "{:?} {:?}",
        cache.memory,
        cache.ram_rendered
    );
}
