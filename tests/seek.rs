//! Random access: every request returns exactly that frame, on framelock's own clips and on
//! libx264 clips with B-frames (b-pyramid), and sequential reads after a seek continue without
//! going back to the keyframe.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use framelock::{DecoderRegistry, Rational, VideoReader, testcard};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_seeks(path: &std::path::Path, registry: &DecoderRegistry, requests: usize) {
    let mut reader = VideoReader::open(path, registry).expect("open");
    let frames = reader.frame_count();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..requests {
        let n = rng.below(frames);
        let f = reader.frame(n).expect("frame");
        assert_eq!(f.index, n);
        assert_eq!(
            testcard::read_index(&f),
            Some(n),
            "asked for {n} ({})",
            reader.backend()
        );
    }
}

fn sequential_after_seek(path: &std::path::Path, registry: &DecoderRegistry) {
    let mut reader = VideoReader::open(path, registry).expect("open");
    let f = reader.frame(47).expect("seek");
    assert_eq!(testcard::read_index(&f), Some(47));
    let seeks = reader.stats().seeks;
    let packets = reader.stats().packets_decoded;
    for n in 48..58 {
        let f = reader.frame(n).expect("next");
        assert_eq!(testcard::read_index(&f), Some(n));
    }
    assert_eq!(
        reader.stats().seeks,
        seeks,
        "sequential reads must not re-seek"
    );
    assert!(
        reader.stats().packets_decoded - packets <= 10,
        "10 sequential frames cost {} packets",
        reader.stats().packets_decoded - packets
    );
    // backwards: a new seek, still the right frame
    let f = reader.frame(12).expect("back");
    assert_eq!(testcard::read_index(&f), Some(12));
    assert_eq!(reader.stats().seeks, seeks + 1);
    // out of range is an error, not a panic
    assert!(reader.frame(reader.frame_count()).is_err());
}

fn x264_bframes() -> std::path::PathBuf {
    common::cached("x264_bpyramid.mp4", |path| {
        common::ffmpeg_testcard(
            path,
            640,
            360,
            90,
            &[
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-bf",
                "3",
                "-b_strategy",
                "0",
                "-x264-params",
                "b-pyramid=normal:keyint=30:min-keyint=30:scenecut=0",
                "-crf",
                "18",
            ],
        );
    })
}

#[test]
fn two_hundred_random_seeks_openh264_own_clip() {
    let path = common::clip("seek.mp4", 640, 360, Rational::integer(30), 150, 30);
    random_seeks(&path, &DecoderRegistry::openh264_only(), 200);
    sequential_after_seek(&path, &DecoderRegistry::openh264_only());
}

#[test]
fn two_hundred_random_seeks_openh264_bframes() {
    let path = x264_bframes();
    let info = framelock::probe(&path, &DecoderRegistry::openh264_only()).expect("probe");
    assert!(info.video.has_reordering, "the clip must have B-frames");
    random_seeks(&path, &DecoderRegistry::openh264_only(), 200);
    sequential_after_seek(&path, &DecoderRegistry::openh264_only());
}

#[cfg(feature = "ffmpeg")]
#[test]
fn two_hundred_random_seeks_ffmpeg_bframes() {
    let path = x264_bframes();
    let registry = DecoderRegistry::new();
    let reader = VideoReader::open(&path, &registry).expect("open");
    assert_eq!(
        reader.backend(),
        "ffmpeg",
        "B-frames prefer the exact backend"
    );
    random_seeks(&path, &registry, 200);
    sequential_after_seek(&path, &registry);
}

/// A decode asked to stop (a seek made it stale) stops between two packets with
/// `Cancelled`, having decoded only part of the GOP; the reader then continues from there to
/// the exact frame.
#[test]
fn a_cancelled_decode_stops_early_and_the_reader_continues() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let path = common::clip("cancel.mp4", 160, 90, Rational::integer(30), 60, 60);
    let mut reader = VideoReader::open(&path, &DecoderRegistry::openh264_only()).expect("open");
    let asked = Arc::new(AtomicU64::new(0));
    let count = asked.clone();
    reader.set_cancel(Some(Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst) >= 10
    })));
    assert!(matches!(
        reader.frame(50),
        Err(framelock::MediaError::Cancelled)
    ));
    let packets = reader.stats().packets_decoded;
    assert!(
        (1..=10).contains(&packets),
        "{packets} packets before the cancel"
    );
    reader.set_cancel(None);
    let f = reader.frame(50).expect("frame 50");
    assert_eq!(testcard::read_index(&f), Some(50));
    // Continued, not restarted: one seek to the keyframe in all.
    assert_eq!(reader.stats().seeks, 1, "{:?}", reader.stats());
}

/// A decode cancelled before its first picture came out (a seek into the second GOP, made
/// stale at once) leaves a session that has produced nothing: a request for a frame of the
/// *first* GOP must start again from its keyframe, not continue the second GOP's decode (it
/// used to, and failed with "frame 0 was skipped by the decoder (got 30)"). The same for
/// frames of the same GOP, which do continue.
#[test]
fn a_decode_cancelled_before_any_picture_does_not_pass_for_an_earlier_gop() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let path = common::clip("cancel_gops.mp4", 160, 90, Rational::integer(30), 90, 30);
    let mut reader = VideoReader::open(&path, &DecoderRegistry::openh264_only()).expect("open");
    let stop = Arc::new(AtomicBool::new(true));
    let flag = stop.clone();
    reader.set_cancel(Some(Arc::new(move || flag.load(Ordering::SeqCst))));
    assert!(matches!(
        reader.frame(40),
        Err(framelock::MediaError::Cancelled)
    ));
    stop.store(false, Ordering::SeqCst);
    for n in [0, 45, 31] {
        let f = reader.frame(n).expect("decode");
        assert_eq!(testcard::read_index(&f), Some(n), "frame {n}");
    }
    assert!(!reader.continues_to(5), "frame 5 is behind the session");
}

/// Frames decoded on the way to a requested one are kept for later requests (reverse
/// playback), but only the newest within the byte limit: a run-up through a long GOP never
/// holds more than that at once (it held the whole run-up before: 29 frames of 4K).
#[test]
fn a_run_up_keeps_only_the_newest_skipped_frames_within_the_limit() {
    let path = common::clip("runup.mp4", 160, 90, Rational::integer(30), 60, 60);
    let mut r = VideoReader::open(&path, &DecoderRegistry::openh264_only()).expect("open");
    let frame_bytes = 160 * 90 * 3 / 2;
    r.keep_skipped(3 * frame_bytes);
    assert_eq!(r.frame(40).expect("decode").index, 40);
    let kept: Vec<u64> = r.take_skipped().iter().map(|p| p.index).collect();
    assert_eq!(kept, [37, 38, 39]);
    assert!(r.take_skipped().is_empty(), "taken once");
    // 0 keeps none.
    let mut r = VideoReader::open(&path, &DecoderRegistry::openh264_only()).expect("open");
    r.keep_skipped(0);
    assert_eq!(r.frame(40).expect("decode").index, 40);
    assert!(r.take_skipped().is_empty());
}
