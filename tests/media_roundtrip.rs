//! gen-media → probe → decode every frame: each frame's burned-in index equals its position.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use framelock::{DecoderRegistry, Rational, VideoReader, parallel_decode, probe, testcard};

fn check_all_frames(path: &std::path::Path, frames: u64, registry: &DecoderRegistry) {
    let info = probe(path, registry).expect("probe");
    assert_eq!(info.video.frame_count, frames);
    let mut reader = VideoReader::open(path, registry).expect("open");
    let mut n = 0;
    while let Some(frame) = reader.next_frame() {
        let frame = frame.expect("decode");
        assert_eq!(frame.index, n);
        assert_eq!(testcard::read_index(&frame), Some(n), "frame {n}");
        n += 1;
    }
    assert_eq!(n, frames);
    assert_eq!(
        reader.stats().seeks,
        1,
        "sequential decode seeks once, at the start"
    );
    assert_eq!(reader.stats().packets_decoded, frames);
}

#[test]
fn hd_1080p_every_frame_is_the_right_frame() {
    let path = common::clip("hd.mp4", 1920, 1080, Rational::integer(30), 60, 30);
    let info = probe(&path, &DecoderRegistry::new()).expect("probe");
    assert_eq!((info.video.width, info.video.height), (1920, 1080));
    assert_eq!(info.video.frame_rate, Rational::integer(30));
    assert_eq!(info.video.keyframes, vec![0, 30]);
    assert!((info.video.duration_secs - 2.0).abs() < 1e-9);
    assert_eq!(info.video.backend.as_deref(), Some("openh264"));
    check_all_frames(&path, 60, &DecoderRegistry::openh264_only());
}

#[test]
fn uhd_4k_every_frame_is_the_right_frame_and_survives_eighth_scale() {
    let path = common::clip("uhd.mp4", 3840, 2160, Rational::integer(30), 12, 6);
    check_all_frames(&path, 12, &DecoderRegistry::openh264_only());
    let mut reader = VideoReader::open(&path, &DecoderRegistry::new()).expect("open");
    let frame = reader.frame(9).expect("frame 9");
    let small = frame.scaled(480, 270).expect("scale");
    assert_eq!(testcard::read_index(&small), Some(9));
    let rgba = small.to_rgba();
    assert_eq!(testcard::read_index_rgba(&rgba, 480, 270), Some(9));
}

#[test]
fn parallel_decode_yields_every_frame_once() {
    let path = common::clip("par.mp4", 640, 360, Rational::integer(30), 95, 10);
    let mut seen = vec![0u32; 95];
    let report = parallel_decode(&path, &DecoderRegistry::openh264_only(), 2, |f| {
        assert_eq!(testcard::read_index(&f), Some(f.index));
        seen[f.index as usize] += 1;
    })
    .expect("parallel decode");
    assert_eq!(report.frames, 95);
    assert_eq!(report.workers, 2);
    assert!(
        seen.iter().all(|&c| c == 1),
        "every frame exactly once: {seen:?}"
    );
}

#[test]
fn ntsc_rate_is_exact() {
    let path = common::clip(
        "ntsc.mp4",
        320,
        180,
        Rational::new(30000, 1001).expect("rate"),
        30,
        15,
    );
    let info = probe(&path, &DecoderRegistry::new()).expect("probe");
    assert_eq!(
        info.video.frame_rate,
        Rational::new(30000, 1001).expect("rate")
    );
    assert!((info.video.duration_secs - 30.0 * 1001.0 / 30000.0).abs() < 1e-9);
    let mut reader = VideoReader::open(&path, &DecoderRegistry::new()).expect("open");
    let f = reader.frame(29).expect("frame");
    assert!((f.time_secs - 29.0 * 1001.0 / 30000.0).abs() < 1e-9);
}
