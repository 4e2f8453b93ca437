//! Effects through the engine: clips with effect stacks play through the render path on
//! the GPU (lavapipe in CI) and, with no adapter (forced), on the CPU path: the right frames
//! either way (the test media carry their frame number in the picture), the two paths agree,
//! the effect LOD is applied and reported, and the optimization report suggests the GPU when
//! effects run on the CPU while an adapter is there.

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
    BlendMode, ClipDef, Effect, EffectLod, EffectStack, EngineOptions, GpuStatus, GpuUse,
    PixelFormat, PlaybackEngine, PresentedFrame, Project, QualitySettings, Rational,
    SuggestionKind, TrackDef, VirtualClock, testcard,
};

const WAIT: Duration = Duration::from_secs(120);

fn skip_gpu() -> bool {
    std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some()
}

fn media() -> PathBuf {
    common::clip("fx.mp4", 320, 180, Rational::integer(30), 40, 10)
}

/// One track: the clip with `stack`; above it, optionally, the same clip at half opacity,
/// screen-blended and blurred.
fn project(stack: EffectStack, second: bool) -> Project {
    let m = media();
    let clip = |effects| ClipDef {
        media: m.clone(),
        start: 0,
        duration: 40,
        source_in: 0,
        enabled: true,
        effects,
        audio: Default::default(),
    };
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![clip(stack)],
    });
    if second {
        p.tracks.push(TrackDef {
            name: "v2".into(),
            opacity: 0.5,
            clips: vec![clip(EffectStack {
                effects: vec![Effect::Blur { radius: 4 }],
                blend: BlendMode::Screen,
                dissolve_in: 0,
            })],
        });
    }
    p
}

type Shown = Arc<Mutex<BTreeMap<u64, PresentedFrame>>>;

/// Waits (polling, in a test) until the GPU thread has opened the devices or failed to.
fn wait_gpu_open(engine: &PlaybackEngine) {
    let start = std::time::Instant::now();
    while matches!(
        engine.gpu_status(),
        GpuStatus::Opening | GpuStatus::NotStarted
    ) && start.elapsed() < WAIT
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn engine(project: &Project, options: EngineOptions) -> (PlaybackEngine, Shown) {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let engine = PlaybackEngine::open(
        project,
        options,
        Arc::new(VirtualClock::new()),
        move |f: PresentedFrame| {
            sink.lock().unwrap().insert(f.timeline_frame, f);
        },
    )
    .expect("open");
    (engine, shown)
}

/// Seeks to each frame and ticks, letting the workers finish between ticks, until it is shown
/// (decode, then render: a picture made off the tick lands a tick or two later).
fn step_through(engine: &mut PlaybackEngine, frames: impl Iterator<Item = u64>) {
    for t in frames {
        common::show(engine, t);
    }
}

fn identity() -> EffectStack {
    EffectStack {
        effects: vec![Effect::identity_grade()],
        ..EffectStack::default()
    }
}

/// `gpu`: effects on the GPU always (the path under test), else the CPU path.
fn options(gpu: bool) -> EngineOptions {
    EngineOptions {
        workers: 2,
        gpu_use: GpuUse::Always,
        quality: QualitySettings {
            gpu_acceleration: gpu,
            adaptive_effect_lod: false,
            // No pre-roll: the tests count where the frames they step through were rendered
            // (paused, a pre-roll renders the next ones on whichever path is active then).
            preroll_frames: 0,
            ..QualitySettings::default()
        },
        ..EngineOptions::default()
    }
}

/// Every frame shows its own source frame, as an RGBA picture made by the effects path.
fn assert_right_frames(shown: &Shown, frames: impl Iterator<Item = u64>) {
    let shown = shown.lock().unwrap();
    for t in frames {
        let f = shown
            .get(&t)
            .unwrap_or_else(|| panic!("frame {t} not shown"));
        assert_eq!(f.picture.format, PixelFormat::Rgba8);
        assert_eq!(f.effect_lod, Some(EffectLod::Full));
        assert_eq!(
            testcard::read_index_rgba(&f.picture.planes[0], f.picture.width, f.picture.height),
            Some(t),
            "timeline frame {t} shows another frame"
        );
    }
}

#[test]
fn effects_play_on_the_gpu_with_the_right_frames() {
    if skip_gpu() {
        return;
    }
    let (mut engine, shown) = engine(&project(identity(), false), options(true));
    wait_gpu_open(&engine);
    step_through(&mut engine, 0..12);
    assert_right_frames(&shown, 0..12);
    match engine.gpu_status() {
        GpuStatus::Active {
            devices,
            gpu_frames,
            cpu_frames,
            ..
        } => {
            assert!(!devices.is_empty());
            assert!(gpu_frames >= 12, "{gpu_frames} frames on the GPU");
            assert_eq!(cpu_frames, 0);
        }
        other => panic!("the GPU is not in use: {other:?}"),
    }
}

#[test]
fn with_no_adapter_the_cpu_path_plays_the_same_pictures() {
    // No GPU at all (as on a machine without an adapter).
    let no_gpu = EngineOptions {
        gpu: None,
        ..options(true)
    };
    // One track: the right frames, on the CPU path.
    let (mut one, one_shown) = engine(&project(identity(), false), no_gpu.clone());
    step_through(&mut one, 0..8);
    assert_right_frames(&one_shown, 0..8);
    let fx = one.render_stats();
    assert_eq!((fx.gpu_frames, fx.cpu_frames >= 8), (0, true), "{fx:?}");
    // Two tracks (blurred, screen-blended at half opacity on top).
    let (mut cpu, cpu_shown) = engine(&project(identity(), true), no_gpu);
    step_through(&mut cpu, 0..8);
    assert!(matches!(cpu.gpu_status(), GpuStatus::Unavailable { .. }));
    {
        let shown = cpu_shown.lock().unwrap();
        assert_eq!(shown.len(), 8);
        assert!(
            shown
                .values()
                .all(|f| f.picture.format == PixelFormat::Rgba8)
        );
    }
    if skip_gpu() {
        return;
    }
    let (mut gpu, gpu_shown) = engine(&project(identity(), true), options(true));
    wait_gpu_open(&gpu);
    step_through(&mut gpu, 0..8);
    let (c, g) = (cpu_shown.lock().unwrap(), gpu_shown.lock().unwrap());
    for t in 0..8 {
        let (a, b) = (&c[&t].picture.planes[0], &g[&t].picture.planes[0]);
        let max = a.iter().zip(b.iter()).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(max <= Some(2), "frame {t}: CPU and GPU differ by {max:?}");
    }
}

#[test]
fn the_report_suggests_the_gpu_and_applying_it_moves_effects_there() {
    if skip_gpu() {
        return;
    }
    let (mut engine, shown) = engine(&project(identity(), false), options(false));
    step_through(&mut engine, 0..4);
    let report = engine.run_optimization();
    let s = report
        .suggestions
        .iter()
        .find(|s| s.kind == SuggestionKind::Gpu)
        .expect("a GPU suggestion");
    assert!(
        s.evidence
            .iter()
            .any(|(k, v)| k == "cpu_frames" && *v >= 4.0)
    );
    engine.apply(&s.action.clone()).expect("apply");
    wait_gpu_open(&engine);
    step_through(&mut engine, 4..8);
    assert_right_frames(&shown, 0..8);
    assert!(matches!(engine.gpu_status(), GpuStatus::Active { gpu_frames, .. } if gpu_frames >= 4));
}

#[test]
fn effect_lod_is_applied_and_reported() {
    let mut o = options(!skip_gpu());
    o.quality.effect_lod = EffectLod::Half;
    let stack = EffectStack {
        effects: vec![Effect::Blur { radius: 6 }],
        ..EffectStack::default()
    };
    let (mut engine, shown) = engine(&project(stack, false), o);
    step_through(&mut engine, 0..3);
    let shown = shown.lock().unwrap();
    for f in shown.values() {
        assert_eq!(f.effect_lod, Some(EffectLod::Half));
        assert_eq!((f.picture.width, f.picture.height), (320, 180));
    }
}

#[test]
fn editing_a_stack_changes_the_picture_and_plays_ahead_while_playing() {
    if skip_gpu() {
        return;
    }
    let (mut engine, shown) = engine(&project(identity(), false), options(true));
    step_through(&mut engine, 0..1);
    let before = shown.lock().unwrap()[&0].picture.clone();
    assert!(engine.set_clip_effects(
        0,
        0,
        EffectStack {
            effects: vec![Effect::Grade {
                brightness: 0.2,
                contrast: 1.0,
                saturation: 1.0,
                gamma: 1.0,
                lift: 0.0,
                gain: 1.0,
            }],
            ..EffectStack::default()
        }
    ));
    step_through(&mut engine, 0..1);
    let after = shown.lock().unwrap()[&0].picture.clone();
    let mean = |p: &[u8]| p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64;
    assert!(
        mean(&after.planes[0]) > mean(&before.planes[0]) + 20.0,
        "brightness +0.2 did not brighten the frame"
    );
    // Playing: frames ahead are submitted while the current one shows.
    engine.play();
    for _ in 0..30 {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
    }
    let state = engine.render_stats();
    assert!(
        state.rendered_ahead > 0,
        "nothing was rendered ahead: {state:?}"
    );
}

#[test]
fn rendered_effect_frames_survive_a_restart_on_the_disk_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_disk = || EngineOptions {
        disk_cache: Some(framelock::DiskCacheOptions::new(dir.path(), 256 << 20)),
        gpu: None,
        ..options(true)
    };
    let stack = EffectStack {
        effects: vec![Effect::Sharpen { amount: 0.4 }, Effect::identity_grade()],
        ..EffectStack::default()
    };
    let first: BTreeMap<u64, Vec<u8>> = {
        // The whole timeline (prefetch looks ahead of the playhead: every frame it may want
        // must be on disk for the restart to decode nothing).
        let (mut engine, shown) = engine(&project(stack.clone(), false), with_disk());
        step_through(&mut engine, 0..40);
        engine.flush_disk_cache();
        let disk = engine.cache_stats().disk.expect("disk tier");
        assert!(disk.tier.entries >= 40, "{disk:?}");
        let shown = shown.lock().unwrap();
        shown
            .iter()
            .map(|(&t, f)| (t, f.picture.planes[0].to_vec()))
            .collect()
    };
    // A restart: the RGBA frames come back from disk, nothing decoded, bit-exact.
    let (mut engine, shown) = engine(&project(stack, false), with_disk());
    step_through(&mut engine, 0..10);
    assert_eq!(
        engine.metrics().decoded,
        0,
        "every frame came from the disk tier"
    );
    let shown = shown.lock().unwrap();
    for t in 0..10 {
        assert_eq!(shown[&t].picture.format, PixelFormat::Rgba8);
        assert_eq!(shown[&t].picture.planes[0].to_vec(), first[&t], "frame {t}");
    }
}
