//! Adaptive quality on the virtual clock, with a decoder double whose speed the test sets
//! (no timing asserts): a seek shows a picture at once and the exact frame after it; a
//! decoder slower than real time gives an evenly moving picture instead of a frozen one;
//! `target_fps` halves the presented rate exactly; "show all frames" waits instead of
//! dropping; presets set the ladder's limits; the settings are saved with the project.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use framelock::{
    DecoderRegistry, EngineEvent, EngineOptions, PlaybackEngine, PresentedFrame, Project,
    QualityMode, QualitySettings, Rational, TrackDef, VirtualClock, quality_ladder, testcard,
};

const WAIT: Duration = Duration::from_secs(10);

/// Decoding of non-keyframes takes a permit each; keyframes decode freely. `open` lets
/// everything through. Counts decoders waiting for a permit.
#[derive(Default)]
struct Permits {
    state: Mutex<(bool, u64, usize)>, // (open, permits, waiting)
    cv: Condvar,
}

impl Permits {
    fn set_open(&self, open: bool) {
        self.state.lock().unwrap().0 = open;
        self.cv.notify_all();
    }
    fn give(&self, n: u64) {
        self.state.lock().unwrap().1 += n;
        self.cv.notify_all();
    }
    /// Waits until the permits are used up and a decoder waits for more (or nothing is
    /// left to decode: `idle` says so).
    fn wait_used(&self, idle: impl Fn() -> bool) {
        let start = Instant::now();
        loop {
            {
                let s = self.state.lock().unwrap();
                if s.1 == 0 && (s.2 > 0 || idle()) {
                    return;
                }
            }
            if start.elapsed() > WAIT {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Permits {
    /// Before a packet: a non-keyframe waits for a permit (unless open).
    fn take(&self, is_sync: bool) {
        if is_sync {
            return;
        }
        let mut s = self.state.lock().unwrap();
        s.2 += 1;
        while !s.0 && s.1 == 0 {
            s = self.cv.wait(s).unwrap();
        }
        s.2 -= 1;
        if !s.0 {
            s.1 -= 1;
        }
    }
}

type Shown = Arc<Mutex<Vec<PresentedFrame>>>;

/// The `SeekDone` events received so far: (frame, exact).
fn seeks_done(events: &crossbeam_channel::Receiver<EngineEvent>) -> Vec<(u64, bool)> {
    events
        .try_iter()
        .filter_map(|e| match e {
            EngineEvent::SeekDone { frame, exact } => Some((frame, exact)),
            _ => None,
        })
        .collect()
}

fn project(media: &std::path::Path, frames: u64, rate: u64) -> Project {
    let mut p = Project::new(Rational::integer(rate), 160, 90);
    p.tracks.push(TrackDef {
        name: "v".into(),
        opacity: 1.0,
        clips: vec![common::clip_def(media, 0, frames, 0, Default::default())],
    });
    p
}

fn open(
    project: &Project,
    permits: &Arc<Permits>,
    quality: QualitySettings,
) -> (PlaybackEngine, Shown) {
    let options = EngineOptions {
        workers: 1,
        ..EngineOptions::default()
    };
    open_with(project, permits, quality, options)
}

/// [`open`] with other engine options (the registry, workers and quality are the test's).
fn open_with(
    project: &Project,
    permits: &Arc<Permits>,
    quality: QualitySettings,
    options: EngineOptions,
) -> (PlaybackEngine, Shown) {
    let mut registry = DecoderRegistry::empty();
    let p = permits.clone();
    registry.register(Arc::new(common::HookedBackend::new(
        "permits",
        move |sync| p.take(sync),
    )));
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let engine = PlaybackEngine::open(
        project,
        EngineOptions {
            registry,
            quality,
            ..options
        },
        Arc::new(VirtualClock::new()),
        move |f| sink.lock().unwrap().push(f),
    )
    .expect("open");
    (engine, shown)
}

#[test]
fn a_seek_shows_the_keyframe_at_once_then_the_exact_frame() {
    let clip = common::clip("gop300.mp4", 160, 90, Rational::integer(30), 420, 300);
    // 100 random targets, each on a fresh engine, so that no frame an earlier seek decoded
    // answers it (with one engine, most seeks land on frames decoded on the way to an
    // earlier one, and are exact at once).
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut approximate = 0;
    for _ in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let target = rng % 420;
        let permits = Arc::new(Permits::default());
        permits.set_open(true);
        let (mut engine, shown) = open(
            &project(&clip, 420, 30),
            &permits,
            QualitySettings::default(),
        );
        let events = engine.events();
        engine.tick();
        assert!(engine.wait_idle(WAIT));
        engine.tick();
        permits.set_open(false);
        shown.lock().unwrap().clear();
        engine.seek_frame(target);
        engine.tick();
        // The keyframe decodes; the exact frame waits for permits.
        permits.wait_used(|| engine.decodes_in_flight() == 0);
        engine.tick();
        let first = shown.lock().unwrap().first().cloned();
        let first = first.expect("a picture one tick after the seek");
        assert_eq!(first.timeline_frame, target);
        let source = first.layers[0].source_frame;
        assert_eq!(testcard::read_index(&first.picture), Some(source));
        let seeks_wanted: &[(u64, bool)] = if first.exact {
            // Decoded ahead of the playhead when the engine opened.
            assert_eq!(source, target);
            &[(target, true)]
        } else {
            // The nearest decoded frame of the GOP: its keyframe, or a frame decoded before.
            approximate += 1;
            let key = if target >= 300 { 300 } else { 0 };
            assert!((key..target).contains(&source), "{source} for {target}");
            &[(target, false), (target, true)]
        };
        // Then the exact frame replaces it.
        permits.set_open(true);
        assert!(engine.wait_idle(WAIT));
        engine.tick();
        let last = shown.lock().unwrap().last().cloned().expect("a picture");
        assert!(last.exact, "seek to {target}");
        assert_eq!(last.layers[0].source_frame, target);
        assert_eq!(testcard::read_index(&last.picture), Some(target));
        assert_eq!(engine.metrics().approximate, u64::from(!first.exact));
        // The approximate first picture is reported, then the exact one.
        let seeks = seeks_done(&events);
        assert_eq!(seeks, seeks_wanted);
    }
    assert!(
        approximate >= 80,
        "{approximate} of 100 seeks showed an approximate picture"
    );
}

/// A seek on a long-GOP original whose all-intra proxy is ready: the proxy's frame — the
/// right frame, at a lower resolution, one small frame's decode — is on screen first, marked
/// not exact; then the original's exact frame replaces it. (Two decode workers: the original's
/// GOP decode, held by the permits, does not hold up the proxy's frame.)
#[test]
fn a_seek_shows_the_all_intra_proxys_frame_first_then_the_original() {
    let clip = common::clip("gop300_180p.mp4", 320, 180, Rational::integer(30), 420, 300);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let target = rng % 420;
        if target.is_multiple_of(300) {
            continue; // a keyframe: exact at once
        }
        let permits = Arc::new(Permits::default());
        permits.set_open(true);
        let proxies = common::intra_proxies(dir.path(), 90);
        let options = EngineOptions {
            workers: 2,
            proxies: Some(proxies),
            ..EngineOptions::default()
        };
        let (mut engine, shown) = open_with(
            &project(&clip, 420, 30),
            &permits,
            QualitySettings::default(),
            options,
        );
        let events = engine.events();
        engine
            .generate_proxies(std::slice::from_ref(&clip))
            .unwrap();
        common::tick_until_proxy_ready(&mut engine, &events);
        permits.set_open(false);
        shown.lock().unwrap().clear();
        engine.seek_frame(target);
        engine.tick();
        // The proxy's frame and the original's keyframe decode; the original's frames after
        // its keyframe wait for permits, so a picture of frame `target` is the proxy's.
        let start = Instant::now();
        let first = loop {
            engine.tick();
            let found = shown
                .lock()
                .unwrap()
                .iter()
                .find(|f| f.layers[0].source_frame == target)
                .cloned();
            if let Some(f) = found {
                break f;
            }
            assert!(start.elapsed() < WAIT, "seek to {target}: no picture of it");
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(first.timeline_frame, target);
        assert!(
            !first.exact,
            "seek to {target}: a proxy picture is not exact"
        );
        assert_eq!(first.layers[0].source_frame, target, "the right frame");
        assert_eq!(testcard::read_index(&first.picture), Some(target));
        let proxy_id = first.layers[0].asset_id;
        permits.set_open(true);
        // The original's frame decodes (after the scrubbed region's frames asked before it),
        // then is scaled to the output on the render service. Ticking collects as it goes
        // (waiting for idle without ticking could fill the workers' result channel).
        let start = Instant::now();
        let last = loop {
            engine.tick();
            let last = shown.lock().unwrap().last().cloned().expect("a picture");
            if last.exact {
                break last;
            }
            assert!(start.elapsed() < WAIT, "seek to {target}: no exact picture");
            std::thread::sleep(Duration::from_millis(2));
        };
        assert!(last.exact, "seek to {target}");
        assert_ne!(
            last.layers[0].asset_id, proxy_id,
            "the original replaces the proxy"
        );
        assert_eq!(last.layers[0].source_frame, target);
        assert_eq!(testcard::read_index(&last.picture), Some(target));
        let seeks = seeks_done(&events);
        // The keyframe's picture may come first (approximate too), then the proxy's.
        assert_eq!(seeks.first(), Some(&(target, false)));
        assert_eq!(seeks.last(), Some(&(target, true)));
    }
}

/// A decoder at half real-time speed (one frame every second tick): the picture keeps
/// moving, evenly, instead of freezing on frames that are always late.
#[test]
fn a_slow_decoder_gives_an_evenly_moving_picture() {
    let clip = common::clip("slow.mp4", 160, 90, Rational::integer(30), 300, 30);
    let permits = Arc::new(Permits::default());
    permits.set_open(true);
    let quality = QualitySettings {
        auto_reduce_quality: false,
        ..QualitySettings::default()
    };
    let (mut engine, shown) = open(&project(&clip, 300, 30), &permits, quality);
    engine.tick();
    assert!(engine.wait_idle(WAIT));
    engine.tick();
    permits.set_open(false);
    shown.lock().unwrap().clear();
    engine.play();
    let mut at = Vec::new();
    for tick in 0..120u64 {
        engine.tick();
        if tick % 2 == 0 {
            permits.give(1);
        }
        permits.wait_used(|| engine.decodes_in_flight() == 0);
        at.push(shown.lock().unwrap().len());
    }
    let frames: Vec<PresentedFrame> = shown.lock().unwrap().clone();
    assert!(
        frames.len() >= 40,
        "{} pictures in 120 ticks: {at:?} {:?}",
        frames.len(),
        engine.metrics()
    );
    // Never backwards, every picture the frame it says.
    for w in frames.windows(2) {
        assert!(w[0].timeline_frame < w[1].timeline_frame);
    }
    for f in &frames {
        assert_eq!(
            testcard::read_index(&f.picture),
            Some(f.layers[0].source_frame)
        );
    }
    // No stretch of more than 3 ticks without a new picture (after the first second).
    let mut last_new = 30;
    for (tick, w) in at.windows(2).enumerate().skip(30) {
        if w[1] > w[0] {
            last_new = tick;
        }
        assert!(
            tick - last_new <= 3,
            "no new picture from tick {last_new} to {tick}: {at:?}"
        );
    }
    assert!(engine.metrics().late_shown > 0);
}

#[test]
fn target_fps_halves_the_presented_rate_exactly() {
    let clip = common::clip("r60.mp4", 160, 90, Rational::integer(60), 240, 60);
    let permits = Arc::new(Permits::default());
    permits.set_open(true);
    let quality = QualitySettings {
        target_fps: Some(Rational::integer(30)),
        ..QualitySettings::default()
    };
    let (mut engine, shown) = open(&project(&clip, 240, 60), &permits, quality);
    engine.tick();
    assert!(engine.wait_idle(WAIT));
    engine.tick();
    shown.lock().unwrap().clear();
    engine.play();
    let before = engine.metrics().presented;
    // 121 ticks: the play's first shows frame 0 (on screen already), 120 more move 120
    // frames.
    for _ in 0..121 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
    }
    let m = engine.metrics();
    assert_eq!(m.presented - before, 60, "{m:?}");
    assert_eq!(m.dropped, 0);
    let frames = shown.lock().unwrap().clone();
    assert_eq!(frames.len(), 60);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.timeline_frame, 2 * i as u64 + 2, "every second frame");
        assert!(!f.repeated);
        assert_eq!(testcard::read_index(&f.picture), Some(f.timeline_frame));
    }
}

#[test]
fn show_all_frames_waits_for_each_frame_instead_of_dropping() {
    let clip = common::clip("all.mp4", 160, 90, Rational::integer(30), 90, 30);
    let permits = Arc::new(Permits::default());
    permits.set_open(true);
    let quality = QualitySettings {
        allow_drop_frames: false,
        auto_reduce_quality: false,
        ..QualitySettings::default()
    };
    let (mut engine, shown) = open(&project(&clip, 90, 30), &permits, quality);
    engine.tick();
    assert!(engine.wait_idle(WAIT));
    engine.tick();
    shown.lock().unwrap().clear();
    permits.set_open(false);
    engine.play();
    for tick in 0..80u64 {
        engine.tick();
        if tick % 3 == 0 {
            permits.give(1);
        }
        permits.wait_used(|| engine.decodes_in_flight() == 0);
    }
    let m = engine.metrics();
    assert_eq!(m.dropped + m.held, 0, "{m:?}");
    assert!(m.waited > 0);
    let frames = shown.lock().unwrap().clone();
    assert!(frames.len() >= 20);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.timeline_frame, i as u64, "every frame, in order");
        assert_eq!(testcard::read_index(&f.picture), Some(f.timeline_frame));
    }
}

#[test]
fn presets_set_the_ladders_limits_and_settings_save_with_the_project() {
    let clip = common::clip("presets.mp4", 160, 90, Rational::integer(30), 30, 30);
    let permits = Arc::new(Permits::default());
    permits.set_open(true);
    let mut p = project(&clip, 30, 30);
    p.width = 3840;
    p.height = 2160;
    let (mut engine, _) = open(&p, &permits, QualitySettings::default());
    let out = framelock::OutputFormat {
        frame_rate: Rational::integer(30),
        width: 3840,
        height: 2160,
    };
    let ladder = |engine: &mut PlaybackEngine| {
        let q = *engine.quality_mut();
        (
            q.auto_reduce_quality,
            quality_ladder(&q, &out).len(),
            q.min_resolution,
        )
    };
    engine.set_quality_mode(QualityMode::Quality);
    assert!(
        !ladder(&mut engine).0,
        "quality mode never lowers the picture"
    );
    engine.set_quality_mode(QualityMode::Balanced);
    // full, effects ½, 1080, (540 is under the floor of 1080)
    assert_eq!(ladder(&mut engine), (true, 3, 1080));
    engine.set_quality_mode(QualityMode::Performance);
    // a 720 viewer: full, effects ½, 360, 180
    assert_eq!(ladder(&mut engine), (true, 4, 180));
    engine.tick();
    assert_eq!(engine.adaptive_quality().levels, 4);

    // Saved with the project, read back, used by the engine that opens it.
    let mut p = project(&clip, 30, 30);
    let q = QualitySettings {
        target_fps: Some(Rational::integer(15)),
        min_resolution: 240,
        allow_drop_frames: false,
        ..QualitySettings::default()
    };
    p.quality = Some(q);
    let back = Project::from_json(&p.to_json()).unwrap();
    assert_eq!(back.quality, Some(q));
    let (mut engine, _) = open(&back, &permits, QualitySettings::default());
    assert_eq!(*engine.quality_mut(), q);
    // A file naming only some fields gets defaults for the rest.
    let mut json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    json["quality"]
        .as_object_mut()
        .unwrap()
        .remove("min_resolution");
    let partial = Project::from_json(&json.to_string()).unwrap();
    assert_eq!(partial.quality.unwrap().min_resolution, 360);
}
