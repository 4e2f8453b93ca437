//! The memory budget: accounted bytes track real allocations (RSS), a long scene never goes
//! over a small budget, steady playback recycles frame buffers instead of allocating, and the
//! pressure levels do what the docs say.
//!
//! Tests here measure the process's RSS, so they run one at a time (a lock), and the binary
//! holds nothing else.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framelock::{
    BufferPool, ClipDef, EngineOptions, MemoryBudget, Picture, PixelFormat, PlaybackEngine,
    PlayerError, PoolClass, PresentedFrame, Pressure, Project, QualitySettings, Rational, TrackDef,
    VirtualClock, testcard,
};
use framelock_components::{Frame, FrameState};

const WAIT: Duration = Duration::from_secs(60);
static SERIAL: Mutex<()> = Mutex::new(());

/// Resident set size of this process, bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

fn long_clip() -> PathBuf {
    // 10 s of 640x360 (345,600 bytes a frame).
    common::clip("long_360p.mp4", 640, 360, Rational::integer(30), 300, 30)
}

fn project(frames: u64) -> Project {
    let mut p = Project::new(Rational::integer(30), 640, 360);
    p.tracks.push(TrackDef {
        name: "v".into(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media: long_clip(),
            start: 0,
            duration: frames,
            source_in: 0,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    p
}

type Shown = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

fn engine(budget: usize) -> (PlaybackEngine, Shown) {
    try_engine(budget).expect("open")
}

fn try_engine(budget: usize) -> Result<(PlaybackEngine, Shown), PlayerError> {
    try_engine_with(MemoryBudget::new(budget))
}

fn try_engine_with(memory: MemoryBudget) -> Result<(PlaybackEngine, Shown), PlayerError> {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let options = EngineOptions {
        workers: 2,
        memory,
        quality: QualitySettings {
            drop_late_frames: true,
            ..QualitySettings::default()
        },
        ..EngineOptions::default()
    };
    let engine = PlaybackEngine::open(
        &project(300),
        options,
        Arc::new(VirtualClock::new()),
        move |f: PresentedFrame| {
            // Check the picture now and let it go (the pool gets its planes back).
            // (A stand-in while the exact picture decodes says so; only exact ones count.)
            let idx = testcard::read_index(&f.picture);
            if f.exact {
                sink.lock().unwrap().push((f.timeline_frame, idx));
            }
        },
    )?;
    Ok((engine, shown))
}

#[test]
fn rss_growth_matches_accounted_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = BufferPool::new(4 << 30);
    let before_rss = rss();
    let before = pool.accounted_bytes();
    let mut frames = Vec::new();
    for i in 0..80 {
        let mut f = Picture::alloc_in(Some(&pool), PixelFormat::Yuv420p, 1920, 1080);
        let [y, u, v] = &mut f.planes;
        testcard::draw_i420(i, 1920, 1080, y, u, v);
        frames.push(f);
    }
    let grew = rss() as f64 - before_rss as f64;
    let accounted = (pool.accounted_bytes() - before) as f64;
    assert_eq!(accounted, 80.0 * 1920.0 * 1080.0 * 1.5);
    let ratio = grew / accounted;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "RSS grew {grew} bytes for {accounted} accounted (ratio {ratio:.3})"
    );
    // Dropped frames stay accounted while idle on the shelves, and are reused.
    drop(frames);
    assert_eq!(pool.accounted_bytes() as f64, accounted);
    let again = Picture::alloc_in(Some(&pool), PixelFormat::Yuv420p, 1920, 1080);
    let s = pool.stats().class(PoolClass::Frames);
    assert_eq!((s.allocations, s.reuses), (240, 3));
    drop(again);
    pool.purge_idle();
    assert_eq!(pool.accounted_bytes(), 0);
}

#[test]
fn a_long_scene_never_exceeds_a_small_budget() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 24 MB: the warning level (18 MB) holds ~52 frames of the 300-frame scene.
    let budget = 24 << 20;
    let (mut engine, shown) = engine(budget);
    let base_rss = rss();
    let mut peak_rss = base_rss;
    let mut saw_warning = false;
    engine.play();
    for _ in 0..300 {
        engine.tick();
        assert!(engine.wait_decodes(WAIT));
        let stats = engine.cache_stats();
        assert!(
            stats.memory.accounted_bytes() <= budget,
            "accounted {} > budget {budget}",
            stats.memory.accounted_bytes()
        );
        saw_warning |= stats.pressure >= Pressure::Warning;
        peak_rss = peak_rss.max(rss());
    }
    let stats = engine.cache_stats();
    assert!(stats.memory.peak_bytes <= budget, "{:?}", stats.memory);
    assert!(saw_warning && stats.evicted > 0, "{stats:?}");
    // RSS: within the budget plus a fixed overhead (decoder state, the world, the allocator).
    let overhead = 48 << 20;
    assert!(
        peak_rss - base_rss <= budget + overhead,
        "RSS grew {} MiB with a {} MiB budget",
        (peak_rss - base_rss) >> 20,
        budget >> 20
    );
    // And playback was right: every shown frame is the one its tick wanted.
    let shown = shown.lock().unwrap();
    assert!(shown.len() > 250, "{} frames shown", shown.len());
    for &(t, idx) in shown.iter() {
        assert_eq!(idx, Some(t), "timeline frame {t}");
    }
}

#[test]
fn steady_playback_recycles_frame_buffers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 24 MB: the two workers' decoders count ~6.5 MB of it (openh264 at 640x360).
    let (mut engine, shown) = engine(24 << 20);
    engine.play();
    let mut step = |n: usize| {
        for _ in 0..n {
            engine.tick();
            assert!(engine.wait_decodes(WAIT));
        }
        engine.cache_stats().memory.class(PoolClass::Frames)
    };
    let warm = step(100);
    let steady = step(150);
    assert!(
        warm.allocations > 0 && steady.reuses > warm.reuses + 100,
        "{steady:?}"
    );
    // The pool recycles: 150 more frames shown take (almost) no new buffer. "Almost":
    // how many buffers are in flight at once (decode-ahead, render-ahead, the presented
    // frame) depends on thread timing, so a later peak may need a few more than the warm-up's
    // — a handful, never one per frame (seen: 3 on a loaded machine).
    assert!(
        steady.allocations - warm.allocations <= 8,
        "{} new frame buffers after warm-up ({} reuses)",
        steady.allocations - warm.allocations,
        steady.reuses - warm.reuses
    );
    assert!(shown.lock().unwrap().iter().all(|&(t, i)| i == Some(t)));
}

#[test]
fn critical_pressure_prefetches_only_the_current_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The least budget that opens (~4.8 MB): the decoder counts ~3.2 MB (openh264 at
    // 640x360), two pictures 0.7 MB and the output frame 0.9 MB; with the critical level at
    // 80 % of it (3.9 MB), the decoder and a frame in flight are over it already.
    let minimum = match try_engine(1 << 20) {
        Err(PlayerError::BudgetTooSmall { minimum, .. }) => minimum,
        _ => panic!("1 MB was not refused"),
    };
    let (mut engine, shown) = try_engine_with(MemoryBudget {
        warning_threshold: 0.7,
        critical_threshold: 0.8,
        ..MemoryBudget::new(minimum)
    })
    .expect("open");
    engine.play();
    let mut critical_ticks = 0;
    for _ in 0..60 {
        engine.tick();
        assert!(engine.wait_decodes(WAIT));
        if engine.cache_stats().pressure == Pressure::Critical {
            critical_ticks += 1;
        }
        // Requests in flight or held: never the 13-frame window.
        let mut q = engine.world_mut().query::<&Frame>();
        let live = q
            .iter(engine.world())
            .filter(|f| f.state != FrameState::Failed)
            .count();
        assert!(
            live <= 4,
            "{live} frames live under a {minimum}-byte budget"
        );
    }
    assert!(critical_ticks > 0);
    // It still plays (the current frame is always asked for), right frames only.
    let shown = shown.lock().unwrap();
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|&(t, i)| i == Some(t)), "{shown:?}");
}

#[test]
fn a_budget_that_cannot_show_one_frame_is_refused_saying_the_minimum() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Before, 1 MB was accepted and showed 1 frame of 181 (issue 17).
    let Err(e) = try_engine(1 << 20) else {
        panic!("a 1 MB budget was accepted");
    };
    let PlayerError::BudgetTooSmall {
        budget,
        minimum,
        frame,
    } = e
    else {
        panic!("{e}");
    };
    assert_eq!((budget, frame), (1 << 20, 0));
    // One openh264 decoder at 640x360 (~3.2 MB), one decoded picture and the RGBA output.
    assert!((4 << 20..6 << 20).contains(&minimum), "{minimum}");
    let text = e.to_string();
    assert!(text.contains("at least 5 MiB"), "{text}");
    // At the minimum it opens and shows the right frames.
    let (mut engine, shown) = engine(minimum);
    engine.play();
    for _ in 0..30 {
        engine.tick();
        assert!(engine.wait_decodes(WAIT));
    }
    let shown = shown.lock().unwrap();
    assert!(shown.len() >= 10, "{} shown", shown.len());
    assert!(shown.iter().all(|&(t, i)| i == Some(t)), "{shown:?}");
}
