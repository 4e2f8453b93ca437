//! MP4s written by framelock are accepted by ffprobe, have the right duration and frame count,
//! and decode in ffmpeg without errors to the right pictures.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::Path;

use framelock::{
    DecoderRegistry, EncodeSettings, EncodeSpeed, GenerateOptions, Mp4VideoWriter, Picture,
    RateControl, Rational, generate_test_clip, probe, testcard,
};

fn ffprobe(path: &Path) -> serde_json::Value {
    let mut c = std::process::Command::new("ffprobe");
    c.args([
        "-v",
        "error",
        "-count_frames",
        "-show_streams",
        "-show_format",
        "-of",
        "json",
    ])
    .arg(path);
    serde_json::from_slice(&common::run(c)).expect("ffprobe json")
}

fn ffmpeg_decodes_cleanly(path: &Path) {
    let mut c = common::ffmpeg();
    c.args(["-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]);
    let out = c.output().expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffmpeg complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffprobe_accepts_and_ffmpeg_decodes_the_right_frames() {
    let path = common::clip("mux.mp4", 640, 360, Rational::integer(25), 50, 25);
    let v = ffprobe(&path);
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(s["width"], 640);
    assert_eq!(s["height"], 360);
    assert_eq!(s["nb_read_frames"], "50");
    assert_eq!(s["r_frame_rate"], "25/1");
    let duration: f64 = v["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .expect("f64");
    assert!((duration - 2.0).abs() < 0.001, "duration {duration}");
    ffmpeg_decodes_cleanly(&path);

    // An independent decoder sees every frame's own index.
    let raw = common::ffmpeg_decode_raw(&path, "yuv420p");
    let frame_size = 640 * 360 * 3 / 2;
    assert_eq!(raw.len(), 50 * frame_size);
    for (i, chunk) in raw.chunks_exact(frame_size).enumerate() {
        assert_eq!(
            testcard::read_index_luma(&chunk[..640 * 360], 640, 360, 640),
            Some(i as u64)
        );
    }
}

#[test]
fn ntsc_all_intra_constant_qp() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("intra.mp4");
    let mut o = GenerateOptions::new(320, 240, Rational::new(30000, 1001).expect("rate"), 1.0);
    o.frames = 30;
    o.gop = 1;
    o.rate = Some(RateControl::ConstantQp(24));
    let summary = generate_test_clip(&path, &o, |_, _| {}).expect("generate");
    assert_eq!(summary.frames, 30);
    assert_eq!(
        summary.keyframes, 30,
        "all-intra: every frame is a keyframe"
    );
    let info = probe(&path, &DecoderRegistry::new()).expect("probe");
    assert_eq!(info.video.keyframes.len(), 30);
    let v = ffprobe(&path);
    assert_eq!(v["streams"][0]["r_frame_rate"], "30000/1001");
    let duration: f64 = v["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .expect("f64");
    assert!(
        (duration - 30.0 * 1001.0 / 30000.0).abs() < 0.001,
        "duration {duration}"
    );
    ffmpeg_decodes_cleanly(&path);
}

#[test]
fn qp_changes_size_and_bitrate_is_respected() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sizes = Vec::new();
    for rate in [RateControl::ConstantQp(20), RateControl::ConstantQp(40)] {
        let path = dir.path().join(format!("{rate:?}.mp4"));
        let mut o = GenerateOptions::new(320, 180, Rational::integer(30), 1.0);
        o.rate = Some(rate);
        sizes.push(generate_test_clip(&path, &o, |_, _| {}).expect("gen").bytes);
    }
    assert!(sizes[0] > sizes[1] * 2, "QP 20 vs 40: {sizes:?}");

    // 2 Mb/s over 4 s is ~1 MB; openh264's default (120 kb/s) would give ~60 kB.
    let path = dir.path().join("rate.mp4");
    let mut o = GenerateOptions::new(640, 360, Rational::integer(30), 4.0);
    o.rate = Some(RateControl::Bitrate(2_000_000));
    let bytes = generate_test_clip(&path, &o, |_, _| {}).expect("gen").bytes as f64;
    assert!(
        (0.5e6..1.5e6).contains(&bytes),
        "{bytes} bytes for 2 Mb/s x 4 s"
    );
    let summary = probe(&path, &DecoderRegistry::new()).expect("probe");
    assert_eq!(summary.video.frame_count, 120, "no frame skipped");
}

#[test]
fn writer_takes_frames_from_the_decoder() {
    // decode → re-encode: the path proxies and export will take
    let src = common::clip("src.mp4", 320, 180, Rational::integer(30), 15, 15);
    let mut reader = framelock::VideoReader::open(&src, &DecoderRegistry::new()).expect("open");
    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("half.mp4");
    let settings = EncodeSettings {
        width: 160,
        height: 90,
        frame_rate: Rational::integer(30),
        rate: RateControl::ConstantQp(18),
        gop: 5,
        speed: EncodeSpeed::Balanced,
    };
    let mut w = Mp4VideoWriter::create(&dest, settings).expect("create");
    while let Some(f) = reader.next_frame() {
        let f: Picture = f.expect("decode");
        w.write_frame(&f.scaled(160, 90).expect("scale"))
            .expect("write");
    }
    w.finish().expect("finish");
    let mut out = framelock::VideoReader::open(&dest, &DecoderRegistry::new()).expect("open");
    for n in 0..15 {
        assert_eq!(testcard::read_index(&out.frame(n).expect("frame")), Some(n));
    }
}
