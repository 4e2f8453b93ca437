//! The render path: pictures are made off the tick (a slow effect never makes a tick wait),
//! the measured CPU/GPU choice, and the offline renderer (every frame, in order, exact and
//! deterministic) on a 3-track project with cuts and effects.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framelock::{
    BlendMode, ClipDef, CpuRenderer, Effect, EffectStack, EngineOptions, GpuStatus, GpuUse,
    OfflineRenderer, PixelFormat, PlaybackEngine, PresentedFrame, Project, QualitySettings,
    Rational, ReferenceCpu, RenderPath, TrackDef, VirtualClock, Work, testcard,
};

const WAIT: Duration = Duration::from_secs(120);

fn skip_gpu() -> bool {
    std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some()
}

fn media() -> (PathBuf, PathBuf) {
    (
        common::clip("render_a.mp4", 320, 180, Rational::integer(30), 300, 30),
        common::clip("render_b.mp4", 320, 180, Rational::integer(30), 120, 30),
    )
}

fn clip(
    media: &std::path::Path,
    start: u64,
    duration: u64,
    source_in: u64,
    fx: EffectStack,
) -> ClipDef {
    common::clip_def(media, start, duration, source_in, fx)
}

fn stack(effects: Vec<Effect>) -> EffectStack {
    EffectStack {
        effects,
        ..EffectStack::default()
    }
}

fn grade(brightness: f32) -> Effect {
    Effect::Grade {
        brightness,
        contrast: 1.0,
        saturation: 1.0,
        gamma: 1.0,
        lift: 0.0,
        gain: 1.0,
    }
}

/// 300 frames, three tracks:
/// - bottom: A[0..150) at 0..150 (grade), cut to B[0..120) at 150..270 (sharpen), cut to
///   A[150..180) at 270..300 (no effects);
/// - middle, opaque: A[200..260) at 60..120, graded (darker, more contrast, less saturated);
/// - top, 30% opacity, screen-blended and blurred: B[0..30) at 200..230.
fn three_tracks() -> Project {
    let (a, b) = media();
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "bottom".into(),
        opacity: 1.0,
        clips: vec![
            clip(&a, 0, 150, 0, stack(vec![grade(0.05)])),
            clip(
                &b,
                150,
                120,
                0,
                stack(vec![Effect::Sharpen { amount: 0.3 }]),
            ),
            clip(&a, 270, 30, 150, EffectStack::default()),
        ],
    });
    p.tracks.push(TrackDef {
        name: "middle".into(),
        opacity: 1.0,
        clips: vec![clip(
            &a,
            60,
            60,
            200,
            stack(vec![Effect::Grade {
                brightness: -0.05,
                contrast: 1.2,
                saturation: 0.8,
                gamma: 1.0,
                lift: 0.0,
                gain: 1.0,
            }]),
        )],
    });
    p.tracks.push(TrackDef {
        name: "top".into(),
        opacity: 0.3,
        clips: vec![clip(
            &b,
            200,
            30,
            0,
            EffectStack {
                effects: vec![Effect::Blur { radius: 3 }],
                blend: BlendMode::Screen,
                dissolve_in: 0,
            },
        )],
    });
    p
}

/// The source frame the timeline shows at `t` (the top opaque layer's), and whether the
/// picture keeps it readable (not under the blurred top track).
fn expected(t: u64) -> (u64, bool) {
    let source = match t {
        60..120 => 200 + t - 60,
        0..150 => t,
        150..270 => t - 150,
        _ => 150 + t - 270,
    };
    (source, !(200..230).contains(&t))
}

fn index_of(f: &PresentedFrame) -> Option<u64> {
    let p = &f.picture;
    match p.format {
        PixelFormat::Rgba8 => testcard::read_index_rgba(&p.planes[0], p.width, p.height),
        _ => testcard::read_index(p),
    }
}

fn offline(gpu: bool) -> EngineOptions {
    EngineOptions {
        workers: 2,
        render_workers: 2,
        gpu: if gpu { Some(Default::default()) } else { None },
        gpu_use: GpuUse::Always,
        ..EngineOptions::default()
    }
}

fn render_all(options: EngineOptions, range: std::ops::Range<u64>) -> Vec<PresentedFrame> {
    let mut r = OfflineRenderer::open(&three_tracks(), options).expect("open");
    let mut frames = Vec::new();
    let report = r.render(range.clone(), |f| frames.push(f)).expect("render");
    assert_eq!(report.frames, range.end - range.start);
    let m = r.engine().metrics();
    assert_eq!((m.dropped, m.held), (0, 0), "offline drops nothing");
    frames
}

fn hash(f: &PresentedFrame) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    f.picture.format.hash(&mut h);
    for p in &f.picture.planes {
        p[..].hash(&mut h);
    }
    h.finish()
}

#[test]
fn offline_render_is_every_frame_in_order_exact_and_deterministic() {
    let first = render_all(offline(false), 0..300);
    let order: Vec<u64> = first.iter().map(|f| f.timeline_frame).collect();
    assert_eq!(
        order,
        (0..300).collect::<Vec<_>>(),
        "every frame once, in order"
    );
    for f in &first {
        let (source, readable) = expected(f.timeline_frame);
        assert_eq!((f.picture.width, f.picture.height), (320, 180));
        if readable {
            assert_eq!(
                index_of(f),
                Some(source),
                "timeline frame {} shows another source frame",
                f.timeline_frame
            );
        }
    }
    // Frames without effects stay Y'CbCr; frames with effects are RGBA.
    assert_eq!(first[280].picture.format, PixelFormat::Yuv420p);
    assert_eq!(first[10].picture.format, PixelFormat::Rgba8);
    let second = render_all(offline(false), 0..300);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(
            hash(a),
            hash(b),
            "frame {} differs between runs",
            a.timeline_frame
        );
    }
    // A range in the middle is the same pictures as the whole run's.
    let part = render_all(offline(false), 195..235);
    for f in &part {
        assert_eq!(hash(f), hash(&first[f.timeline_frame as usize]));
    }
    if skip_gpu() {
        return;
    }
    // The GPU path (lavapipe in CI) agrees within the GPU tests' tolerance.
    let gpu = render_all(offline(true), 50..130);
    for g in &gpu {
        let c = &first[g.timeline_frame as usize];
        assert_eq!(g.picture.format, c.picture.format);
        let max = c.picture.planes[0]
            .iter()
            .zip(g.picture.planes[0].iter())
            .map(|(x, y)| x.abs_diff(*y))
            .max();
        assert!(
            max <= Some(2),
            "frame {}: CPU and GPU differ by {max:?}",
            g.timeline_frame
        );
    }
}

#[test]
fn offline_range_outside_the_timeline_is_a_clear_error() {
    let mut r = OfflineRenderer::open(&three_tracks(), offline(false)).expect("open");
    let e = r.render(290..301, |_| {}).expect_err("beyond the end");
    assert!(e.to_string().contains("0..300"), "{e}");
}

/// Renders effects like the reference, three frame periods (100 ms at 30 fps) late.
#[derive(Debug)]
struct SlowEffects;

impl CpuRenderer for SlowEffects {
    fn render(
        &self,
        work: &Work,
        pool: Option<&framelock::BufferPool>,
    ) -> Result<Arc<framelock::Picture>, framelock_engine::effects::RenderError> {
        if matches!(work, Work::Effects(_)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        ReferenceCpu.render(work, pool)
    }
}

#[test]
fn a_slow_effect_never_makes_a_tick_wait() {
    let (a, _) = media();
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "v".into(),
        opacity: 1.0,
        clips: vec![clip(&a, 0, 300, 0, stack(vec![grade(0.0)]))],
    });
    let shown: Arc<Mutex<BTreeMap<u64, PresentedFrame>>> = Arc::default();
    let sink = shown.clone();
    let mut engine = PlaybackEngine::open(
        &p,
        EngineOptions {
            workers: 2,
            render_workers: 2,
            gpu: None,
            cpu_renderer: Arc::new(SlowEffects),
            quality: QualitySettings {
                adaptive_effect_lod: false,
                ..QualitySettings::default()
            },
            ..EngineOptions::default()
        },
        Arc::new(VirtualClock::new()),
        move |f: PresentedFrame| {
            sink.lock().unwrap().insert(f.timeline_frame, f);
        },
    )
    .expect("open");
    engine.tick();
    assert!(engine.wait_decodes(WAIT));
    engine.play();
    // 60 ticks on the virtual clock: each takes far less than one slow render (the tick
    // budget is 33 ms; one render takes 100 ms), so no tick waited on a render.
    for _ in 0..60 {
        engine.tick();
    }
    let m = engine.metrics();
    assert!(
        m.tick_ms_max < 100.0,
        "a tick took {:.1} ms: it waited on a render",
        m.tick_ms_max
    );
    assert!(
        m.tick_ms_p50 < 1e3 / 30.0,
        "median tick {:.1} ms",
        m.tick_ms_p50
    );
    assert!(m.render_late > 0, "late pictures are counted: {m:?}");
    // Each late tick either drops its frame or shows the newest finished earlier one (marked
    // late) in its place.
    let stand_ins = shown.lock().unwrap().values().filter(|f| f.late).count() as u64;
    assert!(
        m.dropped + stand_ins >= m.render_late,
        "late pictures are dropped or stood in for: {m:?}, {stand_ins} stand-ins"
    );
    // The renders finish later and are shown when their frames come round.
    engine.pause();
    let t = engine.playhead().frame;
    engine.seek_frame(t);
    for _ in 0..8 {
        assert!(engine.wait_idle(WAIT));
        engine.tick();
    }
    let rendered = engine.render_stats();
    assert!(rendered.cpu_frames > 0, "{rendered:?}");
    let shown = shown.lock().unwrap();
    assert!(!shown.is_empty());
    for (&t, f) in shown.iter() {
        assert_eq!(index_of(f), Some(t), "timeline frame {t}");
    }
}

#[test]
fn the_default_picks_the_measured_faster_path() {
    if skip_gpu() {
        return;
    }
    let (a, _) = media();
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "v".into(),
        opacity: 1.0,
        clips: vec![clip(&a, 0, 300, 0, stack(vec![Effect::Blur { radius: 4 }]))],
    });
    let mut engine = PlaybackEngine::open(
        &p,
        EngineOptions {
            workers: 2,
            ..EngineOptions::default()
        },
        Arc::new(VirtualClock::new()),
        |_| {},
    )
    .expect("open");
    // The GPU opens on its own thread (on lavapipe, shader compilation takes a while on a
    // busy machine), and the first effects frame after it opened is measured on both paths:
    // wait (bounded) until it has opened, then step through frames.
    let deadline = std::time::Instant::now() + WAIT;
    while matches!(
        engine.gpu_status(),
        GpuStatus::NotStarted | GpuStatus::Opening
    ) && std::time::Instant::now() < deadline
    {
        engine.tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut choice = None;
    for t in 0..40 {
        engine.seek_frame(t);
        engine.tick();
        assert!(engine.wait_idle(WAIT));
        engine.tick();
        if let GpuStatus::Active {
            choice: Some(c), ..
        } = engine.gpu_status()
        {
            choice = Some(c);
            break;
        }
        if let GpuStatus::Unavailable { reason } = engine.gpu_status() {
            eprintln!("skipped: no GPU adapter ({reason})");
            return;
        }
    }
    let c = choice.expect("the paths were measured");
    let gpu_ms = c.gpu_ms.expect("the GPU rendered the frame");
    let faster = if gpu_ms < c.cpu_ms {
        RenderPath::Gpu
    } else {
        RenderPath::Cpu
    };
    assert_eq!(c.path, faster, "{c:?}");
    assert!(c.reason.contains("faster"), "{}", c.reason);
    // From then on effects go to the chosen path.
    let before = engine.render_stats();
    for t in 100..104 {
        engine.seek_frame(t);
        for _ in 0..4 {
            engine.tick();
            assert!(engine.wait_idle(WAIT));
        }
    }
    let after = engine.render_stats();
    let (gpu, cpu) = (
        after.gpu_frames - before.gpu_frames,
        after.cpu_frames - before.cpu_frames,
    );
    match c.path {
        RenderPath::Gpu => assert!(gpu >= 4 && cpu == 0, "gpu {gpu} cpu {cpu}"),
        RenderPath::Cpu => assert!(cpu >= 4 && gpu == 0, "gpu {gpu} cpu {cpu}"),
    }
    match engine.gpu_status() {
        GpuStatus::Active { effects_on, .. } => assert_eq!(effects_on, c.path),
        other => panic!("{other:?}"),
    }
}
