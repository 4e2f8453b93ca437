//! The memory budget counts each open decoder at what its backend estimates it holds
//! (`VideoReader::state_bytes`). This checks the estimates against the process's resident
//! memory: three decoders of one stream, each run 20 frames in, must grow RSS by their
//! estimate within a quarter — openh264 with one reference and with four (its picture count
//! follows the references), and libav with references and B-frames when built.
//!
//! One test in its own binary, so no other test allocates while it measures.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::Path;

use framelock::{DecoderRegistry, Rational, VideoReader};

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib << 10
}

/// RSS growth of three decoders of `path` run to frame 20, and the sum of their estimates.
/// The decoders stay open in `keep`: memory freed by one measurement would be reused by the
/// next and hide its growth.
fn measure(
    path: &Path,
    registry: &DecoderRegistry,
    keep: &mut Vec<VideoReader>,
) -> (usize, usize, &'static str) {
    // A first decoder loads the library and its one-time tables.
    let mut first = VideoReader::open(path, registry).expect("open");
    drop(first.frame(20).expect("decode"));
    let before = rss_bytes();
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut r = VideoReader::open(path, registry).expect("open");
        let picture = r.frame(20).expect("decode");
        assert_eq!(picture.index, 20);
        readers.push(r);
    }
    let grown = rss_bytes().saturating_sub(before);
    let estimated = readers.iter().map(VideoReader::state_bytes).sum();
    let backend = readers[0].backend();
    keep.push(first);
    keep.extend(readers);
    (grown, estimated, backend)
}

fn check(what: &str, (grown, estimated, backend): (usize, usize, &str)) {
    let ratio = estimated as f64 / grown.max(1) as f64;
    eprintln!(
        "{what} ({backend}): RSS grew {:.1} MiB, estimated {:.1} MiB (x{ratio:.2})",
        grown as f64 / 1048576.0,
        estimated as f64 / 1048576.0,
    );
    assert!(
        (0.8..=1.25).contains(&ratio),
        "{what} ({backend}): estimate {estimated} bytes vs {grown} bytes of RSS (x{ratio:.2})"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn decoder_estimates_match_what_the_decoders_hold() {
    let r30 = Rational::integer(30);
    let own = common::clip("own-1080p.mp4", 1920, 1080, r30, 30, 30);
    let x264 = common::cached("x264-refs4-b2-1080p.mp4", |p| {
        common::ffmpeg_testcard(
            p,
            1920,
            1080,
            30,
            &[
                "-c:v", "libx264", "-preset", "veryfast", "-refs", "4", "-bf", "2", "-g", "30",
            ],
        );
    });
    let openh264 = DecoderRegistry::openh264_only();
    let mut open = Vec::new();
    check("one reference", measure(&own, &openh264, &mut open));
    check("four references", measure(&x264, &openh264, &mut open));
    #[cfg(feature = "ffmpeg")]
    {
        let registry = DecoderRegistry::new();
        let m = measure(&x264, &registry, &mut open);
        assert_eq!(m.2, "ffmpeg", "B-frames go to libav when it is built");
        check("four references, two B-frames", m);
    }
}
