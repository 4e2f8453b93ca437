//! The thread-safe [`Player`] on the wall clock: frames arrive in order and show the right
//! pictures; a burst of 1000 scrubs ends on the last one; seeks are frame-exact; a slow sink
//! never slows the clock (its late frames are counted) and the newest frame is there to pull;
//! the Performance API and live edits go through the player.
//! (No timing is asserted: waits are bounded, results are exact.)

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use framelock::{
    ClipDef, DecoderRegistry, EngineOptions, PlayState, Player, PresentedFrame, Project, Rational,
    TrackDef, testcard,
};

fn project() -> Project {
    let media = common::clip("player.mp4", 320, 180, Rational::integer(30), 120, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media,
            start: 0,
            duration: 100,
            source_in: 20,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    p
}

/// The player of [`project`] with `sink`.
fn open_with(sink: impl FnMut(PresentedFrame) + Send + 'static) -> Player {
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 2,
        ..EngineOptions::default()
    };
    Player::open(&project(), options, sink).expect("open")
}

fn open() -> (Player, Receiver<PresentedFrame>) {
    let (tx, rx) = sync_channel(4096);
    let player = open_with(move |f| {
        let _ = tx.try_send(f);
    });
    (player, rx)
}

/// Waits (bounded) for the exact picture of timeline frame `t` (a seek may show the nearest
/// decoded one first).
fn wait_for(rx: &Receiver<PresentedFrame>, t: u64) -> PresentedFrame {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx.recv_timeout(left).expect("frame {t} never came");
        if f.timeline_frame == t && !f.repeated && f.exact {
            return f;
        }
    }
}

#[test]
fn plays_in_order_with_the_right_pictures() {
    let (player, rx) = open();
    player.play();
    let last = wait_for(&rx, 99);
    assert_eq!(testcard::read_index(&last.picture), Some(119));
    player.pause();
    drop(player);
    let frames: Vec<PresentedFrame> = rx.try_iter().collect();
    let mut prev = None;
    for f in &frames {
        assert_eq!(
            testcard::read_index(&f.picture),
            Some(20 + f.timeline_frame)
        );
        if let Some(p) = prev {
            assert!(f.timeline_frame >= p, "frames go forward");
        }
        prev = Some(f.timeline_frame);
    }
}

#[test]
fn scrub_burst_ends_on_the_last_request_and_seek_is_exact() {
    let (player, rx) = open();
    for i in 0..1000u64 {
        player.scrub((i * 37 % 100) as f64 / 30.0);
    }
    player.scrub(42.5 / 30.0); // frame 42
    let f = wait_for(&rx, 42);
    assert_eq!(testcard::read_index(&f.picture), Some(62));
    player.seek(77.0 / 30.0);
    let f = wait_for(&rx, 77);
    assert_eq!(testcard::read_index(&f.picture), Some(97));
    let deadline = Instant::now() + Duration::from_secs(20);
    while player.metrics().decode_queue_depth > 0 {
        assert!(Instant::now() < deadline, "decode work left behind");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(player.playhead().expect("published").frame, 77);

    // a new sink receives the frames from then on
    let (tx2, rx2) = sync_channel(64);
    player.frame_sink(move |f| {
        let _ = tx2.try_send(f);
    });
    player.seek_frame(5);
    let f = wait_for(&rx2, 5);
    assert_eq!(testcard::read_index(&f.picture), Some(25));
}

#[test]
fn a_slow_sink_never_slows_the_clock_and_the_newest_frame_can_be_pulled() {
    // A sink that takes 100 ms a frame, three frame periods.
    let delivered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = delivered.clone();
    let player = open_with(move |f: PresentedFrame| {
        std::thread::sleep(Duration::from_millis(100));
        // Each picture shows the source frame it says; an exact one, the timeline's.
        let source = f.layers[0].source_frame;
        assert_eq!(testcard::read_index(&f.picture), Some(source));
        assert!(
            !f.exact || source == 20 + f.timeline_frame,
            "{source} at {}",
            f.timeline_frame
        );
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while player.current_frame().is_none() {
        assert!(Instant::now() < deadline, "no first frame");
        std::thread::sleep(Duration::from_millis(5));
    }
    player.play();
    // The 100 frames play to the end: a sink on the engine's thread would have held each
    // tick for 100 ms (10 s in all, and the last frame shown 7 s late).
    loop {
        let p = player.playhead().expect("published");
        if p.state == PlayState::Paused && p.frame == 99 {
            break;
        }
        assert!(Instant::now() < deadline, "playback did not end: {p:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pulled = player.current_frame().expect("a frame to pull");
    assert_eq!(pulled.timeline_frame, 99);
    assert_eq!(testcard::read_index(&pulled.picture), Some(119));
    // Every presented frame reached the sink or was counted late (the newest one may still
    // be on its way).
    loop {
        let m = player.metrics();
        let got = delivered.load(std::sync::atomic::Ordering::SeqCst);
        if got + m.sink_late == m.presented {
            assert!(m.sink_late > 0, "{m:?}");
            assert!(got >= 1);
            break;
        }
        assert!(Instant::now() < deadline, "{got} delivered, {m:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (n, _) = player.current_frame_numbered().expect("numbered");
    assert_eq!(n, player.metrics().presented);
}

/// `EngineOptions::puffin_server` serves the live profile while the player plays:
/// `puffin_viewer` connects to it (here a plain TCP client reads puffin_http's protocol
/// version, then frame data).
#[test]
fn the_player_serves_its_profile_to_puffin_viewer() {
    use std::io::Read;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let options = EngineOptions {
        puffin_server: Some(addr.clone()),
        ..EngineOptions::default()
    };
    let player = Player::open(&project(), options, |_| {}).expect("open");
    let mut client = std::net::TcpStream::connect(&addr).expect("connect to the puffin server");
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    player.play();
    let mut header = [0u8; 2];
    client
        .read_exact(&mut header)
        .expect("a frame from the server");
    assert_eq!(
        u16::from_le_bytes(header),
        2,
        "puffin_http protocol version"
    );
    let mut more = [0u8; 64];
    let n = client.read(&mut more).expect("frame data");
    assert!(n > 0);
    // A second engine cannot take the same address: a clear error.
    let again = Player::open(
        &project(),
        EngineOptions {
            puffin_server: Some(addr.clone()),
            ..EngineOptions::default()
        },
        |_| {},
    );
    assert!(matches!(
        again,
        Err(framelock::PlayerError::ProfileServer { .. })
    ));
}

#[test]
fn the_performance_api_is_on_the_player() {
    let (player, rx) = open();
    wait_for(&rx, 0);
    let m = player.get_metrics().expect("metrics");
    assert!(m.budget.max_memory > 0);
    let report = player.run_optimization().expect("report");
    // One clip: one stretch of the timeline, covering it.
    assert_eq!(
        report
            .timeline
            .iter()
            .map(|s| (s.start, s.end))
            .collect::<Vec<_>>(),
        [(0, 100)]
    );
    player
        .apply(framelock::OptimizationAction::SetMemoryBudget(300 << 20))
        .expect("applied");
    assert_eq!(
        player.get_metrics().expect("metrics").budget.max_memory,
        300 << 20
    );
    // Without proxies the proxy action is refused, as on the engine.
    assert!(
        player
            .apply(framelock::OptimizationAction::GenerateProxies(vec![]))
            .is_err()
    );
}

#[test]
fn edits_go_through_the_player_and_its_duration_follows() {
    let (player, rx) = open();
    wait_for(&rx, 0);
    // Trim the tail to 60 frames while paused: the length follows after the next tick.
    let undo = player
        .edit(framelock::Edit::TrimClip {
            clip: framelock::ClipRef::new(0, 0),
            start: 0,
            duration: 60,
            source_in: 20,
        })
        .expect("trim");
    let deadline = Instant::now() + Duration::from_secs(20);
    while player.duration_frames() != 60 {
        assert!(Instant::now() < deadline, "duration never followed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(player.project().expect("project").duration_frames(), 60);
    // A refused edit comes back as a value.
    let err = player
        .edit(framelock::Edit::RemoveClip {
            clip: framelock::ClipRef::new(0, 7),
        })
        .expect_err("refused");
    assert!(err.to_string().contains("no clip"), "{err}");
    // Undo, then the clip's other source frames are there again.
    player.edit(undo).expect("undo");
    player.seek_frame(90);
    let f = wait_for(&rx, 90);
    assert_eq!(testcard::read_index(&f.picture), Some(110));
}

#[test]
fn proxies_are_queued_without_waiting_and_reported_by_event() {
    let dir = tempfile::tempdir().expect("dir");
    let mut proxies = framelock::ProxyOptions::new(dir.path());
    proxies.auto_generate = false;
    proxies.strategy.generation.resolutions = vec![90];
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        proxies: Some(proxies),
        ..EngineOptions::default()
    };
    let project = project();
    let media = project.tracks[0].clips[0].media.clone();
    let player = Player::open(&project, options, |_| {}).expect("open");
    let events = player.events();
    let missing = common::media_dir().join("not-there.mp4");
    player
        .generate_proxies_later(vec![media.clone(), missing.clone()])
        .expect("returns at once");
    let (mut queued, mut failed, mut ready) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while queued.is_none() || failed.is_none() || ready.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left).expect("events came") {
            framelock::EngineEvent::ProxiesQueued {
                media: m,
                jobs,
                error,
            } if m == media => {
                assert!(error.is_none(), "{error:?}");
                queued = Some(jobs);
            }
            framelock::EngineEvent::ProxiesQueued {
                media: m,
                jobs,
                error,
            } if m == missing => {
                assert!(jobs.is_empty());
                failed = error;
            }
            framelock::EngineEvent::ProxyReady {
                media: m,
                height,
                proxy,
            } if m == media => {
                assert!(proxy.is_file());
                ready = Some(height);
            }
            _ => {}
        }
    }
    assert_eq!(queued.map(|j| j.len()), Some(1));
    assert!(failed.is_some_and(|e| e.contains("not-there.mp4")));
    assert_eq!(ready, Some(90));
}

/// A texture output on a device opened for the host (a host passes its own), and the project
/// with a second clip at 100..120 that has an effect (its pictures are RGBA8, the first
/// clip's Y'CbCr). `None` when `FRAMELOCK_SKIP_GPU_TESTS` is set.
fn texture_output_and_graded_project() -> Option<(framelock::TextureOutput, Project)> {
    if std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some() {
        eprintln!("FRAMELOCK_SKIP_GPU_TESTS is set: skipping a GPU test");
        return None;
    }
    let (device, queue) = framelock::TextureOutput::open_device(true).expect(
        "no wgpu adapter: install mesa-vulkan-drivers (lavapipe) or set FRAMELOCK_SKIP_GPU_TESTS=1",
    );
    let mut project = project();
    let mut graded = project.tracks[0].clips[0].clone();
    graded.start = 100;
    graded.duration = 20;
    graded
        .effects
        .effects
        .push(framelock::Effect::Sharpen { amount: 0.5 });
    project.tracks[0].clips.push(graded);
    Some((framelock::TextureOutput::new(device, queue), project))
}

#[test]
fn the_newest_frame_comes_as_a_texture_on_the_hosts_device() {
    let Some((mut output, project)) = texture_output_and_graded_project() else {
        return;
    };
    let (tx, rx) = sync_channel(4096);
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        ..EngineOptions::default()
    };
    let player = Player::open(&project, options, move |f| {
        let _ = tx.try_send(f);
    })
    .expect("open");
    for (t, format) in [
        (30, framelock::PixelFormat::Yuv420p),
        (110, framelock::PixelFormat::Rgba8),
    ] {
        player.seek_frame(t);
        wait_for(&rx, t);
        let (n, texture, frame) = player
            .current_texture(&mut output)
            .expect("a frame")
            .expect("uploaded");
        assert_eq!((frame.timeline_frame, frame.picture.format), (t, format));
        let cpu = frame.picture.to_rgba();
        let gpu = output.read_rgba(&texture);
        let max = gpu.iter().zip(&cpu).map(|(a, b)| a.abs_diff(*b)).max();
        assert_eq!(gpu.len(), cpu.len());
        assert!(max.is_some_and(|m| m <= 2), "frame {t}: differs by {max:?}");
        // Until the next frame, the same texture (not uploaded again).
        let (again, same, _) = player.current_texture(&mut output).unwrap().unwrap();
        if again == n {
            assert!(same == texture);
        }
    }
}

#[test]
fn effects_render_on_the_hosts_device_and_are_drawn_without_an_upload() {
    let Some((mut output, project)) = texture_output_and_graded_project() else {
        return;
    };
    let (tx, rx) = sync_channel(4096);
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        // The engine's effects run on the output's (the host's) device.
        gpu: Some(framelock::GpuOptions {
            host: Some(output.share()),
            ..framelock::GpuOptions::default()
        }),
        gpu_use: framelock::GpuUse::Always,
        ..EngineOptions::default()
    };
    let player = Player::open(&project, options, move |f| {
        let _ = tx.try_send(f);
    })
    .expect("open");
    // Effects go to the CPU path until the GPU thread has opened (it builds its pipelines):
    // wait for it, then an effects frame is the GPU's own texture, the same pixels as the
    // bytes read back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(
        player.get_metrics().expect("metrics").gpu,
        framelock::GpuStatus::Active {
            effects_on: framelock::RenderPath::Gpu,
            ..
        }
    ) {
        assert!(Instant::now() < deadline, "the GPU never opened");
        std::thread::sleep(Duration::from_millis(10));
    }
    player.seek_frame(110);
    wait_for(&rx, 110);
    let (_, texture, frame) = player
        .current_texture(&mut output)
        .expect("a frame")
        .expect("a texture");
    assert_eq!(frame.timeline_frame, 110);
    assert_eq!(frame.picture.format, framelock::PixelFormat::Rgba8);
    assert_eq!(
        output.counts(),
        framelock::OutputCounts {
            uploaded: 0,
            shared: 1
        },
        "the effects frame was uploaded instead of shared"
    );
    assert_eq!(output.read_rgba(&texture), frame.picture.to_rgba());
    assert_eq!(
        (texture.width(), texture.height()),
        (frame.picture.width, frame.picture.height)
    );
    // A plain frame has no engine texture: it is uploaded (as Y'CbCr planes).
    player.seek_frame(30);
    wait_for(&rx, 30);
    let (_, texture, frame) = player.current_texture(&mut output).unwrap().unwrap();
    assert_eq!(frame.picture.format, framelock::PixelFormat::Yuv420p);
    assert_eq!(output.counts().uploaded, 1);
    assert_eq!(
        output.read_rgba(&texture).len(),
        frame.picture.to_rgba().len()
    );
}
