//! Export: a 3-track, 10 s project with cuts and effects, exported segment-parallel to an
//! H.264 MP4. ffprobe agrees on codec, size, frame count and duration; decoding the output
//! with framelock and with Debian's ffmpeg gives, at output frame N, the burned-in index the
//! timeline shows at frame N; timestamps are continuous across every segment seam; the file
//! is byte-identical whatever the number of workers; cancelling leaves nothing behind.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use framelock::{
    ClipDef, DecoderRegistry, Effect, EffectStack, EngineOptions, Export, ExportError,
    ExportRequest, ExportState, Project, Rational, TrackDef, VideoCodec, VideoReader, testcard,
};

fn clip(media: &Path, start: u64, duration: u64, source_in: u64, effects: Vec<Effect>) -> ClipDef {
    let effects = EffectStack {
        effects,
        ..EffectStack::default()
    };
    common::clip_def(media, start, duration, source_in, effects)
}

fn grade(brightness: f32) -> Effect {
    Effect::Grade {
        brightness,
        contrast: 1.1,
        saturation: 0.9,
        gamma: 1.0,
        lift: 0.0,
        gain: 1.0,
    }
}

/// 300 frames (10 s at 30 fps), 320x180, three tracks:
/// - bottom: A[0..150) graded at 0..150, cut to B[0..120) at 150..270, cut to A[150..180);
/// - middle, opaque: A[200..260) at 60..120;
/// - top, opaque, graded: B[30..60) at 200..230.
fn project() -> Project {
    let a = common::clip("export_a.mp4", 320, 180, Rational::integer(30), 300, 30);
    let b = common::clip("export_b.mp4", 320, 180, Rational::integer(30), 120, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    let track = |name: &str, clips| TrackDef {
        name: name.into(),
        opacity: 1.0,
        clips,
    };
    p.tracks.push(track(
        "bottom",
        vec![
            clip(&a, 0, 150, 0, vec![grade(0.05)]),
            clip(&b, 150, 120, 0, vec![]),
            clip(&a, 270, 30, 150, vec![]),
        ],
    ));
    p.tracks
        .push(track("middle", vec![clip(&a, 60, 60, 200, vec![])]));
    p.tracks.push(track(
        "top",
        vec![clip(&b, 200, 30, 30, vec![grade(-0.05)])],
    ));
    p
}

/// The source frame (its burned-in index) the timeline shows at `t`.
fn expected(t: u64) -> u64 {
    match t {
        200..230 => 30 + t - 200,
        60..120 => 200 + t - 60,
        0..150 => t,
        150..270 => t - 150,
        _ => 150 + t - 270,
    }
}

fn request(output: &Path, workers: usize) -> ExportRequest {
    let mut r = ExportRequest::new(output);
    r.segment_frames = 45;
    r.workers = workers;
    r.engine = EngineOptions {
        gpu: None,
        ..EngineOptions::default()
    };
    r
}

fn export(output: &Path, workers: usize) -> framelock::ExportReport {
    Export::start(&project(), request(output, workers))
        .expect("start")
        .wait()
        .expect("export")
}

fn ffprobe(path: &Path, args: &[&str]) -> serde_json::Value {
    common::ffprobe_json(path, args)
}

fn out_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect()
}

#[test]
fn export_is_every_frame_exact_continuous_and_deterministic() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let report = export(&out, 2);
    assert_eq!(
        (report.frames, report.segments, report.keyframes),
        (300, 7, 7)
    );
    assert_eq!(report.bytes, std::fs::metadata(&out).unwrap().len());
    // Every stage's time is reported (decode on the workers' decode threads).
    assert!(report.decode_seconds > 0.0 && report.render_seconds > 0.0);
    assert!(report.encode_seconds > 0.0 && report.mux_seconds > 0.0);

    // ffprobe: codec, size, frames, duration.
    let v = ffprobe(&out, &["-count_frames", "-show_streams", "-show_format"]);
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(s["codec_tag_string"], "avc1");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(s["nb_read_frames"], "300");
    assert_eq!(s["r_frame_rate"], "30/1");
    let duration: f64 = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 10.0).abs() < 1e-3, "duration {duration}");

    // Seams: every packet's timestamp is the one after the last, keyframes exactly at the
    // segment starts.
    let p = ffprobe(
        &out,
        &[
            "-show_entries",
            "packet=pts,duration,flags",
            "-select_streams",
            "v",
        ],
    );
    let packets = p["packets"].as_array().unwrap();
    assert_eq!(packets.len(), 300);
    let step = packets[0]["duration"].as_i64().unwrap();
    for (i, pk) in packets.iter().enumerate() {
        assert_eq!(pk["pts"].as_i64(), Some(i as i64 * step), "packet {i}");
        let key = pk["flags"].as_str().unwrap().starts_with('K');
        assert_eq!(
            key,
            i % 45 == 0,
            "packet {i}: keyframe only at segment starts"
        );
    }

    // ffmpeg's decode: output frame N carries the index the timeline shows at N.
    let raw = common::ffmpeg_decode_raw(&out, "yuv420p");
    let size = 320 * 180 * 3 / 2;
    assert_eq!(raw.len(), 300 * size);
    for (t, bytes) in raw.chunks_exact(size).enumerate() {
        let y = &bytes[..320 * 180];
        assert_eq!(
            testcard::read_index_luma(y, 320, 180, 320),
            Some(expected(t as u64)),
            "ffmpeg, output frame {t}"
        );
    }

    // framelock's own decode agrees.
    let mut reader = VideoReader::open(&out, &DecoderRegistry::new()).expect("open");
    let mut t = 0;
    while let Some(frame) = reader.next_frame() {
        let frame = frame.expect("decode");
        assert_eq!(
            testcard::read_index(&frame),
            Some(expected(t)),
            "framelock, frame {t}"
        );
        t += 1;
    }
    assert_eq!(t, 300);

    // Determinism, and independent of the worker count.
    let again = dir.path().join("again.mp4");
    export(&again, 1);
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap(),
        "two exports (2 workers, 1 worker) differ"
    );
    assert!(leftovers(dir.path()).is_empty());
}

/// AV1 (rav1e, speed 10): two segments encoded apart join into one `av01` track that ffprobe
/// reads with the right size, frame count and duration; ffmpeg's decode (dav1d) gives, at
/// output frame N, the index the timeline shows at N; with the `ffmpeg` feature framelock's
/// libav backend decodes it too; exports repeat byte for byte.
#[test]
fn av1_export_is_every_frame_exact_across_its_seams() {
    let dir = out_dir();
    let out = dir.path().join("av1.mp4");
    let range = 40..130;
    let mut r = request(&out, 2);
    r.range = Some(range.clone());
    r.codec = VideoCodec::Av1 { speed: 10 };
    let report = Export::start(&project(), r.clone())
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((report.frames, report.segments), (90, 2));
    assert!(report.keyframes >= 2, "a keyframe at each segment start");

    let v = ffprobe(&out, &["-count_frames", "-show_streams", "-show_format"]);
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "av1");
    assert_eq!(s["codec_tag_string"], "av01");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(s["nb_read_frames"], "90");
    let duration: f64 = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 3.0).abs() < 1e-3, "duration {duration}");
    let p = ffprobe(
        &out,
        &["-show_entries", "packet=pts,flags", "-select_streams", "v"],
    );
    let packets = p["packets"].as_array().unwrap();
    for start in [0, 45] {
        assert!(
            packets[start]["flags"].as_str().unwrap().starts_with('K'),
            "packet {start} starts a segment"
        );
    }

    let raw = common::ffmpeg_decode_raw(&out, "yuv420p");
    let size = 320 * 180 * 3 / 2;
    assert_eq!(raw.len(), 90 * size);
    for (i, bytes) in raw.chunks_exact(size).enumerate() {
        let t = range.start + i as u64;
        assert_eq!(
            testcard::read_index_luma(&bytes[..320 * 180], 320, 180, 320),
            Some(expected(t)),
            "ffmpeg, output frame {i}"
        );
    }
    if cfg!(feature = "ffmpeg") {
        let mut reader = VideoReader::open(&out, &DecoderRegistry::new()).expect("open");
        let mut i = 0;
        while let Some(frame) = reader.next_frame() {
            let frame = frame.expect("decode");
            assert_eq!(
                testcard::read_index(&frame),
                Some(expected(range.start + i)),
                "framelock, frame {i}"
            );
            i += 1;
        }
        assert_eq!(i, 90);
    }

    let again = dir.path().join("again.mp4");
    r.output = again.clone();
    Export::start(&project(), r).unwrap().wait().unwrap();
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap(),
        "two AV1 exports differ"
    );
}

#[test]
fn a_range_exports_just_those_frames() {
    let dir = out_dir();
    let out = dir.path().join("range.mp4");
    let mut r = request(&out, 2);
    r.range = Some(100..160);
    let report = Export::start(&project(), r).unwrap().wait().unwrap();
    assert_eq!((report.frames, report.segments), (60, 2));
    let raw = common::ffmpeg_decode_raw(&out, "yuv420p");
    let size = 320 * 180 * 3 / 2;
    assert_eq!(raw.len(), 60 * size);
    for (i, bytes) in raw.chunks_exact(size).enumerate() {
        let t = 100 + i as u64;
        assert_eq!(
            testcard::read_index_luma(&bytes[..320 * 180], 320, 180, 320),
            Some(expected(t)),
            "output frame {i} = timeline frame {t}"
        );
    }
}

#[test]
fn cancelling_leaves_no_file_and_keeps_the_old_one() {
    let dir = out_dir();
    let out = dir.path().join("cancel.mp4");
    std::fs::write(&out, b"an older export").unwrap();
    let mut r = request(&out, 2);
    r.segment_frames = 15;
    let export = Export::start(&project(), r).unwrap();
    while export.progress().frames_encoded == 0 && !export.is_done() {
        std::thread::sleep(Duration::from_millis(1));
    }
    export.pause();
    // Paused: the workers stop after the frame they are on.
    std::thread::sleep(Duration::from_millis(300));
    let p = export.progress();
    assert_eq!(p.state, ExportState::Paused);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(export.progress().frames_encoded, p.frames_encoded, "paused");
    export.resume();
    export.cancel();
    assert!(export.wait_timeout(Duration::from_secs(60)));
    assert_eq!(export.progress().state, ExportState::Cancelled);
    assert!(matches!(export.wait(), Err(ExportError::Cancelled)));
    assert_eq!(std::fs::read(&out).unwrap(), b"an older export");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = out_dir();
    let mut r = request(&dir.path().join("x.mp4"), 1);
    r.range = Some(250..400);
    let e = Export::start(&project(), r).expect_err("beyond the timeline");
    assert!(
        matches!(
            e,
            ExportError::Range {
                end: 400,
                duration: 300,
                ..
            }
        ),
        "{e}"
    );

    // A directory that does not exist: a write error naming it, no panic.
    let r = request(&dir.path().join("missing").join("x.mp4"), 1);
    let e = Export::start(&project(), r)
        .unwrap()
        .wait()
        .expect_err("no directory");
    assert!(e.to_string().contains("missing"), "{e}");

    // Missing media: refused at start (its media are probed to size the workers' budget).
    let mut p = project();
    p.tracks[0].clips[0].media = dir.path().join("gone.mp4");
    let Err(e) = Export::start(&p, request(&dir.path().join("y.mp4"), 1)) else {
        panic!("missing media was not refused at start");
    };
    assert!(e.to_string().contains("gone.mp4"), "{e}");
    assert!(!dir.path().join("y.mp4").exists());
}

/// An export started from a playing engine is a task of it (`RenderTask`, class `Export`),
/// listed first, with its progress mirrored each tick; the background queue holds while it
/// renders; it ends `Done` with `ExportDone`, and its report is the file's (every frame the
/// timeline's). A cancelled one ends `Cancelled` with `ExportFailed` and writes nothing.
#[test]
fn an_export_is_a_render_task_of_the_engine() {
    use framelock::{
        BackgroundRender, EngineEvent, PlaybackEngine, PriorityClass, TaskState, VirtualClock,
    };
    let dir = out_dir();
    let out = dir.path().join("task.mp4");
    let mut engine = PlaybackEngine::open(
        &project(),
        EngineOptions {
            gpu: None,
            audio: false,
            ..EngineOptions::default()
        },
        std::sync::Arc::new(VirtualClock::new()),
        |_| {},
    )
    .expect("open");
    let events = engine.events();
    engine.set_background_render(BackgroundRender::Manual);
    assert_eq!(engine.prioritize_render(0..300), 10);
    let mut r = request(&out, 2);
    r.audio = framelock::ExportAudio::None;
    let task = engine.export(r).expect("start");
    let tasks = engine.render_tasks();
    assert_eq!(tasks.len(), 11);
    assert_eq!(tasks[0].class, PriorityClass::Export, "exports go first");
    assert_eq!(tasks[0].range, 0..300);
    let start = std::time::Instant::now();
    let mut seen_done = Vec::new();
    loop {
        engine.tick();
        let t = engine
            .render_tasks()
            .into_iter()
            .find(|t| t.class == PriorityClass::Export)
            .expect("the export task");
        if let TaskState::Rendering { done } = t.state {
            seen_done.push(done);
            // Held while the export renders: no background chunk handed out.
            assert_eq!(engine.background_stats().chunks, 0, "the queue holds");
        } else {
            assert_eq!(t.state, TaskState::Done);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the export ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!seen_done.is_empty(), "seen rendering");
    assert!(
        seen_done.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows"
    );
    let p = engine.export_progress(task).expect("an export task");
    assert_eq!((p.state, p.frames_total), (ExportState::Finished, 300));
    let report = engine
        .take_export_report(task)
        .expect("ended")
        .expect("exported");
    assert_eq!((report.frames, report.path.clone()), (300, out.clone()));
    assert!(
        engine.export_progress(task).is_none(),
        "taken: the task is gone"
    );
    assert!(events.try_iter().any(|e| matches!(
        e,
        EngineEvent::ExportDone { ref output, frames: 300 } if *output == out
    )));
    let mut reader = VideoReader::open(&out, &DecoderRegistry::openh264_only()).unwrap();
    for t in [0, 61, 149, 215, 299] {
        let f = reader.frame(t).unwrap();
        assert_eq!(testcard::read_index(&f), Some(expected(t)), "frame {t}");
    }
    // The background queue runs once the export is over.
    for _ in 0..3 {
        engine.tick();
    }
    assert!(engine.background_stats().chunks > 0, "the queue went on");

    // Cancelled: Cancelled, an event, no file.
    let gone = dir.path().join("cancelled.mp4");
    let task = engine.export(request(&gone, 1)).expect("start");
    assert!(engine.cancel_export(task));
    let start = std::time::Instant::now();
    while engine.export_progress(task).expect("a task").state != ExportState::Cancelled {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the cancel landed"
        );
        engine.tick();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        engine.take_export_report(task),
        Some(Err(ExportError::Cancelled))
    ));
    assert!(
        events
            .try_iter()
            .any(|e| matches!(e, EngineEvent::ExportFailed { .. }))
    );
    assert!(!gone.exists());
}

/// Frames the background queue rendered into the disk tier are encoded from there by an
/// export started from the engine (as they are, or converted from their RGBA: not rendered
/// again), and the
/// file is byte-identical to an export that rendered everything (CPU path).
#[test]
fn an_export_reuses_background_rendered_frames_bit_exactly() {
    use framelock::{BackgroundRender, PlaybackEngine, TaskState, VirtualClock};
    let dir = out_dir();
    let cache = tempfile::tempdir().unwrap();
    let mut engine = PlaybackEngine::open(
        &project(),
        EngineOptions {
            registry: DecoderRegistry::openh264_only(),
            gpu: None,
            audio: false,
            disk_cache: Some(framelock::DiskCacheOptions::new(cache.path(), 256 << 20)),
            ..EngineOptions::default()
        },
        std::sync::Arc::new(VirtualClock::new()),
        |_| {},
    )
    .expect("open");
    engine.set_background_render(BackgroundRender::Manual);
    engine.prioritize_render(0..300);
    let start = std::time::Instant::now();
    while engine.render_progress().done < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "background render: {:?}",
            engine.render_progress()
        );
        engine.tick();
        std::thread::sleep(Duration::from_millis(5));
    }
    let rendered = engine.background_stats().frames;
    assert!(
        rendered >= 100,
        "{rendered} frames rendered in the background"
    );
    engine.flush_disk_cache();

    let reused_out = dir.path().join("reused.mp4");
    let mut r = request(&reused_out, 2);
    r.audio = framelock::ExportAudio::None;
    let task = engine.export(r.clone()).expect("start");
    let start = std::time::Instant::now();
    while engine.export_progress(task).expect("a task").state == ExportState::Running {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the export ended"
        );
        engine.tick();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.render_tasks()[0].state, TaskState::Done);
    let reused = engine
        .take_export_report(task)
        .expect("ended")
        .expect("exported");
    // Every frame the background rendered: the 120 with a visible effect (0..60, 120..150,
    // 200..230) kept as RGBA and converted, the plain composites as they are.
    assert!(
        reused.reused_frames >= 280,
        "{} of {rendered} frames encoded from the disk tier",
        reused.reused_frames
    );

    let plain_out = dir.path().join("plain.mp4");
    r.output = plain_out.clone();
    let plain = Export::start(&project(), r).unwrap().wait().unwrap();
    assert_eq!(plain.reused_frames, 0);
    assert!(
        std::fs::read(&reused_out).unwrap() == std::fs::read(&plain_out).unwrap(),
        "byte-identical to rendering every frame"
    );
}
