//! Proxies: generation at import with state progression, names, sizes, frame counts and
//! frame indices; queue priority and cancellation; cancelled and killed jobs leave nothing;
//! a changed source invalidates its proxy; `use_proxy: auto` playback switches to proxies
//! when they are ready, by mode and by measured load, frame-exact throughout.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framelock::{
    ClipDef, DecoderRegistry, EngineOptions, GenerateOptions, PlaybackEngine, PresentedFrame,
    Project, Proxy, ProxyCodec, ProxyGeneration, ProxyManager, ProxyManagerOptions, ProxyOptions,
    ProxyPriority, ProxyState, Rational, TrackDef, UseProxy, VideoReader, VirtualClock,
    generate_test_clip, probe, testcard,
};
use framelock_components::{Lod, ProxyAssets};
use framelock_engine::proxy::{ProxyCheck, check_proxy, files::manifest_path};
use framelock_systems::DecodeLoad;

const WAIT: Duration = Duration::from_secs(120);

/// A 4K clip, 30 frames, a keyframe every 15.
fn clip_4k() -> PathBuf {
    common::clip("uhd.mp4", 3840, 2160, Rational::integer(30), 30, 15)
}

fn manager(dir: &Path, workers: usize, paused: bool) -> ProxyManager {
    ProxyManager::new(ProxyManagerOptions {
        dir: dir.to_path_buf(),
        workers,
        threads_per_job: 2,
        registry: DecoderRegistry::openh264_only(),
        paused,
    })
}

fn generation(codec: ProxyCodec, priority: ProxyPriority) -> ProxyGeneration {
    ProxyGeneration {
        resolutions: vec![720, 1080],
        codec,
        quality: 50,
        priority,
        fast_decode: true,
    }
}

/// Every frame of `path` decodes to its own index; returns the frame count.
fn assert_frames_carry_their_index(path: &Path) -> u64 {
    let mut reader = VideoReader::open(path, &DecoderRegistry::openh264_only()).expect("open");
    let n = reader.frame_count();
    for i in 0..n {
        let f = reader.frame(i).expect("decode");
        assert_eq!(
            testcard::read_index(&f),
            Some(i),
            "{}: frame {i}",
            path.display()
        );
    }
    n
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

fn project_4k(media: &Path) -> Project {
    let mut p = Project::new(Rational::integer(30), 1280, 720);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media: media.to_path_buf(),
            start: 0,
            duration: 30,
            source_in: 0,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    p
}

type Shown = Arc<Mutex<Vec<PresentedFrame>>>;

fn open_4k(proxies: ProxyOptions) -> (PlaybackEngine, Shown) {
    let shown: Shown = Arc::default();
    let sink = shown.clone();
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 2,
        proxies: Some(proxies),
        ..EngineOptions::default()
    };
    let engine = PlaybackEngine::open(
        &project_4k(&clip_4k()),
        options,
        Arc::new(VirtualClock::new()),
        move |f| sink.lock().unwrap().push(f),
    )
    .expect("open");
    (engine, shown)
}

fn proxy_states(
    engine: &mut PlaybackEngine,
) -> Vec<(u32, ProxyState, Option<bevy_ecs::entity::Entity>)> {
    let mut q = engine.world_mut().query::<&Proxy>();
    let mut v: Vec<_> = q
        .iter(engine.world())
        .map(|p| (p.height, p.state.clone(), p.asset))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

#[test]
fn import_4k_generates_proxies_that_progress_and_carry_the_right_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut proxies = ProxyOptions::with_manager(manager(dir.path(), 1, true));
    proxies.strategy.generation.codec = ProxyCodec::H264;
    let manager = proxies.manager.clone();
    let (mut engine, _) = open_4k(proxies);

    // Queued at import: registered as Proxy entities on the first tick.
    engine.tick();
    let states = proxy_states(&mut engine);
    assert_eq!(
        states
            .iter()
            .map(|s| (s.0, s.1.clone()))
            .collect::<Vec<_>>(),
        vec![(720, ProxyState::Queued), (1080, ProxyState::Queued)]
    );

    // Generating, with progress, then ready.
    manager.resume();
    let mut progress_seen = Vec::new();
    let start = Instant::now();
    while manager.progress().ready < 2 {
        assert!(
            start.elapsed() < WAIT,
            "proxies not ready: {:?}",
            manager.status()
        );
        // The world's Proxy entities follow the jobs tick by tick.
        engine.tick();
        for (height, state, _) in proxy_states(&mut engine) {
            if let ProxyState::Generating { done, total, .. } = state
                && done > 0
            {
                assert_eq!(total, 30);
                progress_seen.push((height, done));
            }
            assert!(!matches!(state, ProxyState::Failed(_)), "{state:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !progress_seen.is_empty(),
        "never saw a Proxy entity generating"
    );
    // Progress only goes forward.
    for h in [720, 1080] {
        let seen: Vec<u64> = progress_seen
            .iter()
            .filter(|p| p.0 == h)
            .map(|p| p.1)
            .collect();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{h}p: {seen:?}");
    }
    engine.tick();
    let states = proxy_states(&mut engine);
    assert!(
        states
            .iter()
            .all(|s| s.1 == ProxyState::Ready && s.2.is_some()),
        "{states:?}"
    );

    // The original lists both, shortest first.
    let mut q = engine.world_mut().query::<&ProxyAssets>();
    let lists: Vec<_> = q.iter(engine.world()).filter(|l| !l.0.is_empty()).collect();
    assert_eq!(lists.len(), 1);
    assert_eq!(
        lists[0].0.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![720, 1080]
    );

    // Files: names, sizes, frame counts, and the same frame indices as the source.
    let source_size = std::fs::metadata(clip_4k()).unwrap().len();
    for (h, w) in [(720u32, 1280u32), (1080, 1920)] {
        let path = dir.path().join(format!("uhd_{h}p.mp4"));
        assert!(path.is_file(), "{}", path.display());
        assert!(manifest_path(&path).is_file());
        let info = probe(&path, &DecoderRegistry::openh264_only()).unwrap();
        assert_eq!((info.video.width, info.video.height), (w, h));
        assert_eq!(info.video.frame_count, 30);
        assert_eq!(info.video.frame_rate, Rational::integer(30));
        assert!(std::fs::metadata(&path).unwrap().len() < source_size);
        assert_eq!(assert_frames_carry_their_index(&path), 30);
        assert!(matches!(
            check_proxy(&clip_4k(), &path),
            ProxyCheck::Ready(_)
        ));
        // An independent decoder agrees on the frame count.
        let raw = common::ffmpeg_decode_raw(&path, "yuv420p");
        assert_eq!(raw.len() as u64, u64::from(w * h * 3 / 2) * 30);
    }
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn all_intra_proxies_decode_every_frame_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("hd_intra_src.mp4", 1280, 720, Rational::integer(30), 40, 20);
    let m = manager(dir.path(), 1, false);
    let id = m.submit(
        &src,
        360,
        &generation(ProxyCodec::H264Intra, ProxyPriority::High),
    );
    assert!(m.wait_idle(WAIT));
    let status = m.job(id).unwrap();
    assert_eq!(status.state, ProxyState::Ready, "{status:?}");
    let info = status.info.unwrap();
    assert_eq!(
        (info.video.width, info.video.height, info.video.frame_count),
        (640, 360, 40)
    );
    assert_eq!(info.video.keyframes.len(), 40, "every frame a keyframe");
    assert_eq!(assert_frames_carry_their_index(&status.path), 40);
}

#[test]
fn queue_runs_high_before_normal_before_low_and_cancelled_jobs_never_start() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("queue_src.mp4", 640, 360, Rational::integer(30), 10, 5);
    let m = manager(dir.path(), 1, true);
    let g = |p| generation(ProxyCodec::H264, p);
    let low = m.submit(&src, 120, &g(ProxyPriority::Low));
    let normal_a = m.submit(&src, 144, &g(ProxyPriority::Normal));
    let high = m.submit(&src, 180, &g(ProxyPriority::High));
    let normal_b = m.submit(&src, 240, &g(ProxyPriority::Normal));
    let doomed = m.submit(&src, 288, &g(ProxyPriority::High));
    assert_eq!(
        m.queued_order(),
        vec![high, doomed, normal_a, normal_b, low]
    );
    assert!(m.cancel(doomed));
    assert!(!m.cancel(doomed), "already cancelled");
    assert_eq!(m.queued_order(), vec![high, normal_a, normal_b, low]);
    m.resume();
    assert!(m.wait_idle(WAIT));
    let started = |id| m.job(id).unwrap().started;
    assert_eq!(
        [high, normal_a, normal_b, low].map(started),
        [Some(0), Some(1), Some(2), Some(3)]
    );
    assert_eq!(started(doomed), None);
    assert_eq!(m.job(doomed).unwrap().state, ProxyState::Cancelled);
    assert!(!dir.path().join("queue_src_288p.mp4").exists());
    let p = m.progress();
    assert_eq!((p.ready, p.cancelled, p.queued, p.generating), (4, 1, 0, 0));

    // Cancel all of a source's queued jobs at once.
    m.pause();
    let a = m.submit(&src, 100, &g(ProxyPriority::Low));
    let b = m.submit(&src, 90, &g(ProxyPriority::Low));
    assert_eq!(m.cancel_source(&src), 2);
    assert!(
        [a, b]
            .iter()
            .all(|&id| m.job(id).unwrap().state == ProxyState::Cancelled)
    );
    let c = m.submit(&src, 80, &g(ProxyPriority::Low));
    assert_eq!(m.cancel_all(), 1);
    assert_eq!(m.job(c).unwrap().state, ProxyState::Cancelled);
}

#[test]
fn cancelled_or_killed_jobs_leave_nothing_and_never_replace_a_good_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("long_src.mp4", 1280, 720, Rational::integer(30), 150, 30);
    let m = manager(dir.path(), 1, false);
    let path = dir.path().join("long_src_360p.mp4");

    // A killed process left its temporary file: it is not a proxy, and the next job clears it.
    let leftover = dir.path().join(".long_src_360p.mp4.Zz9k.tmp");
    std::fs::write(&leftover, b"half a proxy").unwrap();

    // Cancel mid-job.
    let id = m.submit(
        &src,
        360,
        &generation(ProxyCodec::H264, ProxyPriority::Normal),
    );
    let start = Instant::now();
    loop {
        let s = m.job(id).unwrap();
        if let ProxyState::Generating { done, .. } = s.state
            && done > 0
        {
            break;
        }
        assert!(
            s.is_active(),
            "finished before it could be cancelled: {s:?}"
        );
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(m.cancel(id));
    assert!(m.wait_idle(WAIT));
    assert_eq!(m.job(id).unwrap().state, ProxyState::Cancelled);
    assert!(!path.exists(), "a cancelled job left a proxy");
    assert!(!manifest_path(&path).exists());
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );

    // Restart: regenerated, complete.
    let id = m.submit(
        &src,
        360,
        &generation(ProxyCodec::H264, ProxyPriority::Normal),
    );
    assert!(m.wait_idle(WAIT));
    assert_eq!(m.job(id).unwrap().state, ProxyState::Ready);
    assert_eq!(assert_frames_carry_their_index(&path), 150);
    let good = std::fs::read(&path).unwrap();

    // Asking again for the same proxy reuses it without encoding.
    let again = m.submit(
        &src,
        360,
        &generation(ProxyCodec::H264, ProxyPriority::Normal),
    );
    assert_eq!(m.job(again).unwrap().state, ProxyState::Ready);
    assert_eq!(m.job(again).unwrap().started, None);

    // A replacement (another codec) cancelled half way leaves the good proxy as it was.
    let replace = m.submit(
        &src,
        360,
        &generation(ProxyCodec::H264Intra, ProxyPriority::Normal),
    );
    loop {
        let s = m.job(replace).unwrap();
        if matches!(s.state, ProxyState::Generating { done, .. } if done > 0) {
            break;
        }
        assert!(s.is_active(), "{s:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    m.cancel(replace);
    assert!(m.wait_idle(WAIT));
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert!(matches!(check_proxy(&src, &path), ProxyCheck::Ready(_)));
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn failures_are_reported_and_other_jobs_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("fail_src.mp4", 640, 360, Rational::integer(30), 10, 5);
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"\0\0\0\x18ftypisom not really an mp4").unwrap();
    let m = manager(&dir.path().join("proxies"), 1, true);
    let g = generation(ProxyCodec::H264, ProxyPriority::Normal);
    let bad = m.submit(&corrupt, 180, &g);
    let missing = m.submit(&dir.path().join("missing.mp4"), 180, &g);
    let too_big = m.submit(&src, 720, &g);
    let good = m.submit(&src, 180, &g);
    m.resume();
    assert!(m.wait_idle(WAIT));
    for id in [bad, missing, too_big] {
        let s = m.job(id).unwrap();
        let ProxyState::Failed(why) = &s.state else {
            panic!("{s:?} should have failed");
        };
        assert!(!why.is_empty());
        assert!(!s.path.exists());
    }
    assert!(
        matches!(&m.job(too_big).unwrap().state, ProxyState::Failed(w) if w.contains("would not be smaller"))
    );
    assert!(
        matches!(&m.job(missing).unwrap().state, ProxyState::Failed(w) if w.contains("missing.mp4"))
    );
    assert_eq!(m.job(good).unwrap().state, ProxyState::Ready);
}

#[test]
fn a_changed_source_invalidates_its_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("changing.mp4");
    let make = |frames| {
        let mut o = GenerateOptions::new(640, 360, Rational::integer(30), 1.0);
        o.frames = frames;
        generate_test_clip(&src, &o, |_, _| {}).unwrap();
    };
    make(12);
    let m = manager(&dir.path().join("proxies"), 1, false);
    let g = generation(ProxyCodec::H264, ProxyPriority::Normal);
    let first = m.submit(&src, 180, &g);
    assert!(m.wait_idle(WAIT));
    let path = m.job(first).unwrap().path;
    assert!(matches!(check_proxy(&src, &path), ProxyCheck::Ready(_)));

    make(20);
    assert!(matches!(check_proxy(&src, &path), ProxyCheck::Stale(_)));
    let second = m.submit(&src, 180, &g);
    assert_ne!(second, first);
    assert!(
        m.job(second).unwrap().is_active(),
        "a stale proxy is regenerated"
    );
    assert!(m.wait_idle(WAIT));
    assert_eq!(m.job(second).unwrap().state, ProxyState::Ready);
    assert_eq!(assert_frames_carry_their_index(&path), 20);
    assert!(matches!(check_proxy(&src, &path), ProxyCheck::Ready(_)));
}

/// Ticks with the workers (decode, render) finishing between ticks.
fn play(engine: &mut PlaybackEngine, ticks: usize) {
    for _ in 0..ticks {
        engine.tick();
        assert!(engine.wait_idle(WAIT));
    }
}

fn check_exact(shown: &Shown) -> Vec<u64> {
    let shown = shown.lock().unwrap();
    for f in shown.iter() {
        let layer = f.layers.last().expect("one layer");
        assert_eq!(layer.source_frame, f.timeline_frame);
        assert_eq!(
            testcard::read_index(&f.picture),
            Some(f.timeline_frame),
            "t={} asset {}",
            f.timeline_frame,
            layer.asset_id
        );
    }
    shown.iter().map(|f| f.layers[0].asset_id).collect()
}

#[test]
fn auto_playback_switches_to_proxies_when_ready_frame_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut proxies = ProxyOptions::with_manager(manager(dir.path(), 1, true));
    proxies.strategy.auto_switch_thresholds.editing = 720;
    let manager = proxies.manager.clone();
    let (mut engine, shown) = open_4k(proxies);
    let events = engine.events();
    engine.set_use_proxy(UseProxy::Auto);
    // Frame 0 on screen (paused), then play.
    play(&mut engine, 1);
    engine.tick();
    let missed_before = engine.metrics().dropped + engine.metrics().held;
    engine.play();
    play(&mut engine, 9);
    assert!(
        check_exact(&shown).iter().all(|&a| a == 0),
        "no proxy yet: the original plays"
    );

    manager.resume();
    assert!(manager.wait_idle(WAIT));
    play(&mut engine, 15);
    let assets = check_exact(&shown);
    let mut frames: Vec<u64> = shown
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.timeline_frame)
        .collect();
    frames.dedup(); // frame 0 is shown paused, then again as play starts
    // In order, none repeated. Pictures are rendered off the tick (here: scaled to the 720p
    // output), so the pipeline's fill at play start and the first frame of the switch to the
    // (scaled) 1080p proxy may be late: at most those, and each one counted.
    assert!(
        frames.windows(2).all(|w| w[0] < w[1]),
        "no frame repeated or out of order: {frames:?}"
    );
    let missing = (0..24).filter(|t| !frames.contains(t)).count() as u64;
    assert!(missing <= 4, "only pipeline fills are late: {frames:?}");
    assert!(frames.contains(&23), "{frames:?}");
    let late = engine.metrics().dropped + engine.metrics().held - missed_before;
    assert!(
        late >= missing,
        "every late frame counted: {late} < {missing}"
    );
    let proxy_1080 = proxy_asset_id(&mut engine, 1080);
    assert_eq!(
        *assets.last().unwrap(),
        proxy_1080,
        "playback threshold 1080: the 1080p proxy"
    );
    let first_proxy = assets.iter().position(|&a| a != 0).expect("switched");
    assert!(assets[first_proxy..].iter().all(|&a| a == proxy_1080));
    // The host was told of each proxy as it became ready.
    let mut ready: Vec<u32> = events
        .try_iter()
        .filter_map(|e| match e {
            framelock::EngineEvent::ProxyReady { height, proxy, .. } => {
                assert!(proxy.is_file(), "{}", proxy.display());
                Some(height)
            }
            _ => None,
        })
        .collect();
    ready.sort_unstable();
    assert_eq!(ready, [720, 1080]);

    // Paused (editing, threshold 720): the 720p proxy.
    engine.pause();
    play(&mut engine, 2);
    let proxy_720 = proxy_asset_id(&mut engine, 720);
    assert_eq!(*check_exact(&shown).last().unwrap(), proxy_720);

    // never: back to the original, same frame.
    engine.set_use_proxy(UseProxy::Never);
    engine.seek_frame(5);
    play(&mut engine, 2);
    let last = shown.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.layers[0].asset_id, last.timeline_frame), (0, 5));
    check_exact(&shown);
}

fn proxy_asset_id(engine: &mut PlaybackEngine, height: u32) -> u64 {
    let mut q = engine.world_mut().query::<&Proxy>();
    let asset = q
        .iter(engine.world())
        .find(|p| p.height == height)
        .and_then(|p| p.asset)
        .expect("proxy asset");
    engine
        .world()
        .get::<framelock_components::MediaAsset>(asset)
        .unwrap()
        .id
}

#[test]
fn auto_switches_on_measured_load_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let mut proxies = ProxyOptions::with_manager(manager(dir.path(), 1, false));
    // 4K is within every threshold: only load can make `auto` pick a proxy.
    proxies.strategy.auto_switch_thresholds.playback = 2160;
    proxies.strategy.auto_switch_thresholds.editing = 2160;
    proxies.strategy.auto_switch_thresholds.effects = 2160;
    proxies.strategy.generation.resolutions = vec![720];
    let manager = proxies.manager.clone();
    // Thresholds at 2160 mean nothing is generated at import: ask explicitly.
    let (mut engine, _) = open_4k(proxies);
    assert!(manager.status().is_empty());
    engine.generate_proxies(&[clip_4k()]).unwrap();
    assert!(manager.wait_idle(WAIT));
    engine.play();
    play(&mut engine, 2);
    let lod = |engine: &mut PlaybackEngine| {
        let mut q = engine.world_mut().query::<&Lod>();
        *q.iter(engine.world()).next().unwrap()
    };
    // Measured: cheap enough (well under the 33 ms frame period with 2 workers).
    engine
        .world_mut()
        .resource_mut::<DecodeLoad>()
        .0
        .insert(0, 0.010);
    play(&mut engine, 1);
    assert_eq!(lod(&mut engine), Lod::Original);
    // Measured: 100 ms a frame, 2 workers, 33 ms per frame: cannot keep up. With the quality
    // controller on, load is its call (a rung that lowers the playback resolution, stepped
    // back up when there is headroom): the clip stays on its original until it steps.
    engine
        .world_mut()
        .resource_mut::<DecodeLoad>()
        .0
        .insert(0, 0.100);
    play(&mut engine, 1);
    assert_eq!(lod(&mut engine), Lod::Original);
    // Without the controller, the measured load itself switches to the proxy.
    engine.quality_mut().auto_reduce_quality = false;
    play(&mut engine, 1);
    assert!(matches!(lod(&mut engine), Lod::Proxy { height: 720, .. }));
}

/// Camera-like footage openh264 cannot decode (HEVC 10-bit 4:2:2 with B-frames, made by
/// Debian's ffmpeg): the proxy is made through libav, comes out as 8-bit 4:2:0 H.264 that
/// every backend plays, and frame N is still frame N.
#[cfg(feature = "ffmpeg")]
#[test]
fn hevc_10bit_422_camera_footage_gets_an_8bit_h264_proxy_frame_exact() {
    let src = common::cached("hevc_422_10.mp4", |path| {
        common::ffmpeg_testcard(
            path,
            640,
            360,
            24,
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error:keyint=12",
                "-pix_fmt",
                "yuv422p10le",
                "-tag:v",
                "hvc1",
            ],
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let m = ProxyManager::new(ProxyManagerOptions {
        dir: dir.path().to_path_buf(),
        workers: 1,
        threads_per_job: 2,
        registry: DecoderRegistry::fastest_first(),
        paused: false,
    });
    let id = m.submit(
        &src,
        180,
        &generation(ProxyCodec::H264, ProxyPriority::Normal),
    );
    assert!(m.wait_idle(WAIT));
    let s = m.job(id).unwrap();
    assert_eq!(s.state, ProxyState::Ready, "{s:?}");
    let info = s.info.unwrap();
    assert_eq!(info.video.codec, framelock::Codec::H264);
    assert_eq!(
        (info.video.width, info.video.height, info.video.frame_count),
        (320, 180, 24)
    );
    assert_eq!(assert_frames_carry_their_index(&s.path), 24);
}

/// The Performance API on a 4K project: the report suggests proxies (with evidence and an
/// action) until they exist, the timeline map follows the measured decode cost, the quality
/// modes change what `lod_select` picks, and the metrics name each source's decode cost.
#[test]
fn optimization_report_and_quality_modes_follow_measurements() {
    use framelock::{GpuStatus, OptimizationAction, QualityMode, SegmentStatus, SuggestionKind};
    let dir = tempfile::tempdir().unwrap();
    let mut proxies = ProxyOptions::with_manager(manager(dir.path(), 1, true));
    proxies.strategy.generation.resolutions = vec![720];
    let manager = proxies.manager.clone();
    let (mut engine, _) = open_4k(proxies);

    // No proxy yet: suggested, for this file, with the numbers behind it.
    let report = engine.run_optimization();
    let s = report
        .suggestions
        .iter()
        .find(|s| s.kind == SuggestionKind::Proxies)
        .expect("proxies suggested for 4K media without them");
    assert_eq!(
        s.action,
        OptimizationAction::GenerateProxies(vec![clip_4k()])
    );
    assert!(
        s.evidence
            .contains(&("tallest_source_height".into(), 2160.0))
    );

    // The timeline map follows the measured decode cost (2 workers, 33.3 ms a frame).
    engine
        .world_mut()
        .resource_mut::<DecodeLoad>()
        .0
        .insert(0, 0.100);
    let map = engine.performance_map();
    assert_eq!(map.len(), 1);
    assert_eq!((map[0].start, map[0].end, map[0].layers), (0, 30, 1));
    assert!((map[0].cost_ms - 50.0).abs() < 1e-6, "{map:?}");
    assert_eq!(map[0].status, SegmentStatus::NeedsOptimization);
    assert!(!map[0].estimated);
    assert!(
        engine
            .run_optimization()
            .suggests(SuggestionKind::QualityMode)
    );
    engine
        .world_mut()
        .resource_mut::<DecodeLoad>()
        .0
        .insert(0, 0.010);
    assert_eq!(engine.performance_map()[0].status, SegmentStatus::Smooth);
    assert!(
        !engine
            .run_optimization()
            .suggests(SuggestionKind::QualityMode)
    );

    // Apply the suggestion; once the proxy exists it is no longer suggested.
    engine.apply(&s.action).unwrap();
    manager.resume();
    assert!(manager.wait_idle(WAIT));
    play(&mut engine, 2);
    assert!(!engine.run_optimization().suggests(SuggestionKind::Proxies));

    // Quality modes change what lod_select picks.
    let lod = |engine: &mut PlaybackEngine| {
        let mut q = engine.world_mut().query::<&Lod>();
        *q.iter(engine.world()).next().unwrap()
    };
    engine.set_quality_mode(QualityMode::Performance);
    play(&mut engine, 1);
    assert!(matches!(lod(&mut engine), Lod::Proxy { height: 720, .. }));
    engine.set_quality_mode(QualityMode::Quality);
    play(&mut engine, 1);
    assert_eq!(lod(&mut engine), Lod::Original);

    let m = engine.get_metrics();
    assert_eq!(m.quality_mode, Some(QualityMode::Quality));
    // No clip has effects: the GPU was never needed, so never opened.
    assert!(matches!(m.gpu, GpuStatus::NotStarted));
    let original = m
        .decode_per_source
        .iter()
        .find(|d| d.path == clip_4k())
        .expect("the original is listed");
    assert_eq!(original.height, 2160);
    assert!(original.ms_per_frame.is_some());
    assert!(m.decode_per_source.iter().any(|d| d.height == 720));
    assert!(m.proxies.is_some());
}

/// `ffmpeg -f framemd5` of the first audio stream, copied: each packet's size and hash.
fn audio_packets(path: &Path) -> Vec<(String, String)> {
    let mut c = common::ffmpeg();
    c.arg("-i")
        .arg(path)
        .args(["-map", "0:a:0", "-c", "copy", "-f", "framemd5", "-"]);
    String::from_utf8(common::run(c))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[4].to_string(), f[5].to_string())
        })
        .collect()
}

/// Test-card video (60 frames of 640x360, frame indices) with an AAC track made by ffmpeg
/// beside it, in `dir`.
fn source_with_aac(dir: &Path) -> PathBuf {
    let video = common::clip("av_src_video.mp4", 640, 360, Rational::integer(30), 60, 30);
    let src = dir.join("av_src.mp4");
    let mut c = common::ffmpeg();
    c.arg("-i")
        .arg(&video)
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=2",
        ])
        .args([
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k",
        ])
        .arg(&src);
    common::run(c);
    src
}

#[test]
fn a_proxy_carries_its_sources_audio_packet_for_packet() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_with_aac(dir.path());
    let m = manager(dir.path(), 1, false);
    let id = m.submit(
        &src,
        180,
        &generation(ProxyCodec::H264, ProxyPriority::High),
    );
    assert!(m.wait_idle(WAIT));
    let status = m.job(id).unwrap();
    assert_eq!(status.state, ProxyState::Ready, "{status:?}");
    assert_eq!(assert_frames_carry_their_index(&status.path), 60);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path(&status.path)).unwrap()).unwrap();
    assert!(
        manifest["audio"]
            .as_str()
            .unwrap()
            .starts_with("AAC copied"),
        "{manifest}"
    );
    let theirs = audio_packets(&src);
    let ours = audio_packets(&status.path);
    assert!(theirs.len() > 80, "{} packets", theirs.len());
    assert_eq!(
        ours, theirs,
        "the proxy's audio is the source's, packet for packet"
    );
    // The same presentation: ffprobe reads the same rate, channels and duration.
    let probe_audio = |p: &Path| {
        let j = common::ffprobe_json(
            p,
            &[
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=codec_name,sample_rate,channels,duration",
            ],
        );
        let s = &j["streams"][0];
        (
            s["codec_name"].as_str().unwrap().to_string(),
            s["sample_rate"].as_str().unwrap().to_string(),
            s["channels"].as_i64().unwrap(),
            s["duration"].as_str().unwrap().parse::<f64>().unwrap(),
        )
    };
    let (a, b) = (probe_audio(&src), probe_audio(&status.path));
    assert_eq!((&a.0, &a.1, a.2), (&b.0, &b.1, b.2));
    assert!((a.3 - b.3).abs() < 1e-3, "durations {} vs {}", a.3, b.3);
    // framelock reads it as the source's sound, sample for sample.
    let mut x = framelock::AudioSource::open(&src).unwrap();
    let mut y = framelock::AudioSource::open(&status.path).unwrap();
    let (mut p, mut q) = (Vec::new(), Vec::new());
    x.read(0, 80_000, &mut p).unwrap();
    y.read(0, 80_000, &mut q).unwrap();
    assert_eq!(p, q);
}

/// Two managers (as two `framelock proxy` processes) making the same proxy in the same folder
/// at once: one makes it, the other waits for its claim and then keeps the proxy made; neither
/// deletes the other's temporary file, and the proxy is whole.
#[test]
fn two_jobs_making_the_same_proxy_at_once_both_end_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("same.mp4", 640, 360, Rational::integer(30), 90, 15);
    let proxies = dir.path().join("proxies");
    let g = generation(ProxyCodec::H264, ProxyPriority::Normal);
    let (a, b) = (manager(&proxies, 1, true), manager(&proxies, 1, true));
    let (ja, jb) = (a.submit(&src, 180, &g), b.submit(&src, 180, &g));
    // The second starts while the first is writing its temporary file.
    a.resume();
    let deadline = Instant::now() + WAIT;
    while temp_files(&proxies).is_empty() && a.job(ja).unwrap().is_active() {
        assert!(
            Instant::now() < deadline,
            "the first job never started writing"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    b.resume();
    assert!(a.wait_idle(WAIT) && b.wait_idle(WAIT));
    let (sa, sb) = (a.job(ja).unwrap(), b.job(jb).unwrap());
    assert_eq!(
        (sa.state.clone(), sb.state.clone()),
        (ProxyState::Ready, ProxyState::Ready),
        "{sa:?} {sb:?}"
    );
    assert_eq!(sa.path, sb.path);
    assert!(matches!(check_proxy(&src, &sa.path), ProxyCheck::Ready(_)));
    assert_eq!(assert_frames_carry_their_index(&sa.path), 90);
    assert!(
        temp_files(&proxies).is_empty(),
        "{:?}",
        temp_files(&proxies)
    );
}

/// A manifest that cannot be written (here its path is taken by a folder; a full disk does
/// the same) fails the job with the manifest's path, and the proxy goes with it: never a
/// proxy without its manifest.
#[test]
fn a_manifest_that_cannot_be_written_takes_its_proxy_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("manifest_src.mp4", 640, 360, Rational::integer(30), 10, 5);
    let proxies = dir.path().join("proxies");
    std::fs::create_dir_all(proxies.join("manifest_src_180p.json")).unwrap();
    std::fs::write(proxies.join("manifest_src_180p.json").join("x"), b"x").unwrap();
    let m = manager(&proxies, 1, false);
    let g = generation(ProxyCodec::H264, ProxyPriority::Normal);
    let id = m.submit(&src, 180, &g);
    assert!(m.wait_idle(WAIT));
    let s = m.job(id).unwrap();
    let ProxyState::Failed(why) = &s.state else {
        panic!("{s:?} should have failed");
    };
    assert!(
        why.contains("cannot write the manifest") && why.contains("manifest_src_180p.json"),
        "{why}"
    );
    assert!(!s.path.exists(), "a proxy was left without its manifest");
    assert!(
        temp_files(&proxies).is_empty(),
        "{:?}",
        temp_files(&proxies)
    );
}

/// A phone's portrait clip (its track header turns it a quarter): the proxy is made of the
/// upright pictures, and is upright itself.
#[test]
fn a_rotated_source_gets_an_upright_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::clip("rotated_src.mp4", 640, 360, Rational::integer(30), 10, 5);
    let turned = dir.path().join("portrait.mp4");
    let status = common::ffmpeg()
        .arg("-i")
        .arg(&src)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(&turned)
        .status()
        .unwrap();
    assert!(status.success());
    let info = probe(&turned, &DecoderRegistry::new()).unwrap();
    assert_eq!((info.video.width, info.video.height), (360, 640));
    let m = manager(&dir.path().join("proxies"), 1, false);
    let g = generation(ProxyCodec::H264, ProxyPriority::Normal);
    let id = m.submit(&turned, 320, &g);
    assert!(m.wait_idle(WAIT));
    let job = m.job(id).unwrap();
    assert_eq!(job.state, ProxyState::Ready, "{job:?}");
    let proxy = probe(&job.path, &DecoderRegistry::new()).unwrap();
    assert_eq!(proxy.video.rotation, 0);
    assert_eq!((proxy.video.width, proxy.video.height), (180, 320));
}

/// A manager decoding with libav (what builds with the `ffmpeg` feature use for proxies).
#[cfg(feature = "ffmpeg")]
fn libav_manager(dir: &Path) -> ProxyManager {
    ProxyManager::new(ProxyManagerOptions {
        dir: dir.to_path_buf(),
        workers: 1,
        threads_per_job: 2,
        registry: DecoderRegistry::fastest_first(),
        paused: false,
    })
}

/// Makes one proxy and returns its status once ready.
#[cfg(feature = "ffmpeg")]
fn make_proxy(
    m: &ProxyManager,
    src: &Path,
    height: u32,
    generation: &ProxyGeneration,
) -> framelock::ProxyJobStatus {
    let id = m.submit(src, height, generation);
    assert!(m.wait_idle(WAIT));
    let s = m.job(id).unwrap();
    assert_eq!(s.state, ProxyState::Ready, "{s:?}");
    s
}

/// ProRes proxies through libav's prores_ks: a QuickTime file each of the three profiles,
/// probed as ProRes 422 10-bit by framelock and by ffprobe (profile, sample entry code, pixel
/// format), frame N = source frame N decoded by framelock and by ffmpeg, and the source's AAC
/// copied packet for packet.
#[cfg(feature = "ffmpeg")]
#[test]
fn prores_proxies_are_422_10bit_frame_exact_and_carry_the_sound() {
    use framelock::{ChromaFormat, ProResProfile};
    let dir = tempfile::tempdir().unwrap();
    let src = source_with_aac(dir.path());
    let m = libav_manager(dir.path());
    let prores = |profile| generation(ProxyCodec::ProRes { profile }, ProxyPriority::Normal);

    let s = make_proxy(&m, &src, 180, &prores(ProResProfile::Proxy));
    assert!(s.path.ends_with("av_src_180p_prores.mov"), "{s:?}");
    let v = s.info.unwrap().video;
    assert_eq!(v.codec, framelock::Codec::ProRes);
    assert_eq!(v.profile.as_deref(), Some("422 Proxy"));
    assert_eq!((v.width, v.height, v.frame_count), (320, 180, 60));
    assert_eq!(
        (v.chroma, v.bit_depth),
        (Some(ChromaFormat::Yuv422), Some(10))
    );
    assert_eq!(v.keyframes.len(), 60, "every ProRes frame is a keyframe");

    // framelock decodes it (libav) to 10-bit 4:2:2, frame N showing source frame N.
    let mut reader = VideoReader::open(&s.path, &DecoderRegistry::fastest_first()).unwrap();
    for i in 0..60 {
        let f = reader.frame(i).unwrap();
        assert_eq!(f.format, framelock::PixelFormat::Yuv422p10);
        assert_eq!(testcard::read_index(&f), Some(i), "framelock, frame {i}");
    }
    // So does Debian's ffmpeg.
    let raw = common::ffmpeg_decode_raw(&s.path, "yuv422p10le");
    let frame_bytes = 320 * 180 * 2 * 2;
    assert_eq!(raw.len(), 60 * frame_bytes);
    for (i, frame) in raw.chunks_exact(frame_bytes).enumerate() {
        let luma: Vec<u8> = frame[..320 * 180 * 2]
            .chunks_exact(2)
            .map(|b| (u16::from_le_bytes([b[0], b[1]]) >> 2) as u8)
            .collect();
        assert_eq!(
            testcard::read_index_luma(&luma, 320, 180, 320),
            Some(i as u64),
            "ffmpeg, frame {i}"
        );
    }
    assert_eq!(
        audio_packets(&s.path),
        audio_packets(&src),
        "the sound, copied"
    );

    // Each profile is what ffprobe calls it, and each is bigger than the one before.
    let mut last = 0;
    for (profile, name, tag) in [
        (ProResProfile::Proxy, "Proxy", "apco"),
        (ProResProfile::Lt, "LT", "apcs"),
        (ProResProfile::Standard, "Standard", "apcn"),
    ] {
        let s = make_proxy(&m, &src, 180, &prores(profile));
        let j = common::ffprobe_json(
            &s.path,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,profile,codec_tag_string,pix_fmt,nb_frames",
            ],
        );
        let st = &j["streams"][0];
        let field = |k: &str| st[k].as_str().unwrap().to_string();
        assert_eq!(
            (
                field("codec_name"),
                field("profile"),
                field("codec_tag_string")
            ),
            ("prores".into(), name.into(), tag.into())
        );
        assert_eq!(
            (field("pix_fmt"), field("nb_frames")),
            ("yuv422p10le".into(), "60".into())
        );
        let bytes = std::fs::metadata(&s.path).unwrap().len();
        assert!(bytes > last, "{name}: {bytes} bytes after {last}");
        last = bytes;
    }
}

/// Skipping the deblocking filter when decoding for a proxy (libav, a shrink of at least 3x:
/// 540p → 180p here, as 4K → 720p) on camera-like H.264 (x264 High, B-frames, crf 20, one
/// 60-frame GOP, so skipped filtering drifts for two seconds): the proxy stays frame-exact and
/// within 0.5 dB (luma PSNR against the source's full decode, shrunk the same way) of the
/// proxy made from a full decode. Measured: 0.18 dB (35.40 vs 35.58); on a heavily
/// compressed source (crf 30) the loss is 1.4 dB.
#[cfg(feature = "ffmpeg")]
#[test]
fn a_skip_deblock_proxy_is_within_half_a_db_of_a_full_decode_proxy() {
    let src = common::cached("x264_high_gop60_540p_crf20.mp4", |path| {
        common::ffmpeg_testcard(
            path,
            960,
            540,
            60,
            &[
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-bf",
                "3",
                "-g",
                "60",
                "-crf",
                "20",
            ],
        );
    });
    let mut proxies = Vec::new();
    for fast_decode in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut g = generation(ProxyCodec::H264, ProxyPriority::Normal);
        g.fast_decode = fast_decode;
        let s = make_proxy(&libav_manager(dir.path()), &src, 180, &g);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(manifest_path(&s.path)).unwrap()).unwrap();
        let expected = if fast_decode {
            "ffmpeg, deblocking skipped"
        } else {
            "ffmpeg"
        };
        assert_eq!(manifest["decode"], expected);
        assert_eq!(assert_frames_carry_their_index(&s.path), 60);
        let mut r = VideoReader::open(&s.path, &DecoderRegistry::fastest_first()).unwrap();
        proxies.push((0..60).map(|i| r.frame(i).unwrap()).collect::<Vec<_>>());
        drop(dir);
    }
    let mut source = VideoReader::open(&src, &DecoderRegistry::fastest_first()).unwrap();
    let (mut fast, mut full) = (0.0, 0.0);
    for i in 0..60 {
        let reference = source.frame(i).unwrap().scaled_yuv420p(320, 180).unwrap();
        fast += proxies[0][i as usize].psnr_luma(&reference).unwrap() / 60.0;
        full += proxies[1][i as usize].psnr_luma(&reference).unwrap() / 60.0;
    }
    eprintln!(
        "luma PSNR against the shrunk full decode: skip-deblock {fast:.2} dB, full {full:.2} dB"
    );
    assert!(
        full - fast < 0.5,
        "skip-deblock {fast:.2} dB vs full {full:.2} dB"
    );
}
