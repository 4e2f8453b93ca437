//! Variable frame rate (phone footage): a clip whose frames are 1/30 s, then 1/15 s, then
//! 1/60 s apart, made by Debian's ffmpeg from test-card pictures (each carries its index). It
//! probes at its real duration and average rate (as ffprobe reports them), and plays its real
//! duration: at every timeline frame the picture shown is the one whose timestamp covers that
//! time (ffprobe's packet times are the reference), not the one a frame count would pick.

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
    DecoderRegistry, EngineOptions, PlayState, PlaybackEngine, PlayerError, PresentedFrame,
    Project, Rational, TrackDef, VirtualClock, probe, testcard,
};

const FRAMES: u64 = 180;

/// 60 frames at 30 fps, 60 at 15 fps, 60 at 60 fps: 1 + 4 + 1 = 6 s of pictures plus the last
/// frame's duration.
fn vfr_clip() -> PathBuf {
    common::cached("vfr.mp4", |path| {
        common::ffmpeg_testcard(
            path,
            320,
            180,
            FRAMES,
            &[
                "-vf",
                "settb=1/60,setpts='if(lt(N,60),2*N,if(lt(N,120),120+4*(N-60),360+(N-120)))'",
                "-fps_mode",
                "passthrough",
                "-enc_time_base",
                "1/60",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-bf",
                "0",
                "-g",
                "30",
            ],
        );
    })
}

/// ffprobe's view: (time base denominator, packet pts in presentation order, duration s,
/// average frame rate).
fn reference(path: &std::path::Path) -> (u64, Vec<i64>, f64, Rational) {
    let streams = common::ffprobe_json(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=time_base,duration,avg_frame_rate",
        ],
    );
    let s = &streams["streams"][0];
    let tb = s["time_base"].as_str().unwrap();
    let den: u64 = tb.split_once('/').unwrap().1.parse().unwrap();
    let duration: f64 = s["duration"].as_str().unwrap().parse().unwrap();
    let avg = Rational::parse(s["avg_frame_rate"].as_str().unwrap()).unwrap();
    let packets = common::ffprobe_json(
        path,
        &["-select_streams", "v:0", "-show_entries", "packet=pts"],
    );
    let mut pts: Vec<i64> = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts"].as_i64().unwrap())
        .collect();
    pts.sort_unstable();
    (den, pts, duration, avg)
}

/// The frame ffprobe's times show at timeline frame `t` of a 30 fps timeline: the last one
/// whose time is at or before `t / 30` s.
fn covering(den: u64, pts: &[i64], t: u64) -> u64 {
    let at = (t * den / 30) as i64 + pts[0];
    (pts.partition_point(|&p| p <= at) - 1) as u64
}

fn project(duration: u64) -> Project {
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: vec![common::clip_def(
            &vfr_clip(),
            0,
            duration,
            0,
            Default::default(),
        )],
    });
    p
}

fn options() -> EngineOptions {
    EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 1,
        gpu: None,
        ..EngineOptions::default()
    }
}

#[test]
fn a_vfr_clip_probes_at_its_real_duration_and_average_rate() {
    let path = vfr_clip();
    let (_, pts, duration, avg) = reference(&path);
    assert_eq!(pts.len() as u64, FRAMES);
    let info = probe(&path, &DecoderRegistry::openh264_only()).expect("probe");
    let v = &info.video;
    assert_eq!(v.frame_count, FRAMES);
    assert!(v.frame_times.is_some(), "the frame rate varies");
    assert!(
        (v.duration_secs - duration).abs() < 1e-3,
        "{} s, ffprobe says {duration} s (counting frames at the median rate gives 6 s)",
        v.duration_secs
    );
    assert_eq!(
        v.frame_rate, avg,
        "the average rate, as ffprobe's avg_frame_rate"
    );
    // A constant-rate clip keeps its exact rate and no table.
    let cfr = common::clip(
        "cfr.mp4",
        320,
        180,
        Rational::new(30000, 1001).unwrap(),
        30,
        10,
    );
    let c = probe(&cfr, &DecoderRegistry::openh264_only()).expect("probe");
    assert_eq!(c.video.frame_rate, Rational::new(30000, 1001).unwrap());
    assert!(c.video.frame_times.is_none());
}

#[test]
fn a_vfr_clip_plays_its_real_duration_with_the_frame_that_covers_each_time() {
    let path = vfr_clip();
    let (den, pts, duration, _) = reference(&path);
    // The whole clip: every timeline frame whose time is before its end.
    let frames = (duration * 30.0).ceil() as u64;
    assert_eq!(frames, 211);
    // One frame more reaches past the media.
    match PlaybackEngine::open(
        &project(frames + 1),
        options(),
        Arc::new(VirtualClock::new()),
        |_| {},
    ) {
        Err(PlayerError::ClipBeyondMedia { .. }) => {}
        other => panic!("a clip past the media's end must be refused: {other:?}"),
    }

    let shown: Arc<Mutex<Vec<PresentedFrame>>> = Arc::default();
    let sink = shown.clone();
    let mut engine = PlaybackEngine::open(
        &project(frames),
        options(),
        Arc::new(VirtualClock::new()),
        move |f| sink.lock().unwrap().push(f),
    )
    .expect("open");
    engine.tick();
    assert!(engine.wait_decodes(Duration::from_secs(30)));
    engine.play();
    let mut ticks = 0;
    while engine.playhead().state == PlayState::Playing && ticks < 400 {
        engine.tick();
        assert!(engine.wait_decodes(Duration::from_secs(30)));
        ticks += 1;
    }
    engine.tick();
    assert!(
        (frames - 1..=frames + 1).contains(&ticks),
        "{ticks} ticks of playback for {frames} timeline frames"
    );
    let shown = shown.lock().unwrap();
    let mut seen: Vec<u64> = shown.iter().map(|f| f.timeline_frame).collect();
    seen.dedup();
    assert_eq!(
        seen,
        (0..frames).collect::<Vec<_>>(),
        "every timeline frame"
    );
    for f in shown.iter() {
        let want = covering(den, &pts, f.timeline_frame);
        assert_eq!(
            f.layers[0].source_frame, want,
            "t={}: the source frame whose time covers it",
            f.timeline_frame
        );
        assert_eq!(
            testcard::read_index(&f.picture),
            Some(want),
            "t={}: the picture",
            f.timeline_frame
        );
    }
}

#[test]
fn a_vfr_clip_seeks_to_the_frame_that_covers_the_time() {
    let path = vfr_clip();
    let (den, pts, _, _) = reference(&path);
    let shown: Arc<Mutex<Vec<PresentedFrame>>> = Arc::default();
    let sink = shown.clone();
    let mut engine = PlaybackEngine::open(
        &project(211),
        options(),
        Arc::new(VirtualClock::new()),
        move |f| sink.lock().unwrap().push(f),
    )
    .expect("open");
    for t in [209, 0, 61, 62, 63, 150, 180, 181, 30, 119, 120] {
        common::show(&mut engine, t);
        let last = shown.lock().unwrap().last().cloned().expect("shown");
        assert_eq!(last.timeline_frame, t);
        assert_eq!(
            testcard::read_index(&last.picture),
            Some(covering(den, &pts, t)),
            "t={t}"
        );
    }
}
