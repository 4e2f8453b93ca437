//! Containers other than MP4/MOV, demuxed through libavformat (feature `ffmpeg`): Matroska
//! and WebM, MPEG-TS (H.264 and HEVC as Annex B, rewritten to length prefixes), AVI and
//! MXF, all made by Debian's ffmpeg from test-card pictures. Each plays every frame in order
//! bit-identical to ffmpeg's own decode of the file, reaches random frames exactly (the
//! burned-in index), and probes with its container's name.
#![cfg(feature = "ffmpeg")]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::PathBuf;

use framelock::{DecoderRegistry, VideoReader, probe, testcard};

const FRAMES: u64 = 60;

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    container: &'static str,
    reordering: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "h264-bframes.mkv",
        args: &["-c:v", "libx264", "-bf", "2", "-g", "24", "-f", "matroska"],
        container: "matroska,webm",
        reordering: true,
    },
    Case {
        name: "h264-bframes.ts",
        args: &["-c:v", "libx264", "-bf", "2", "-g", "24", "-f", "mpegts"],
        container: "mpegts",
        reordering: true,
    },
    Case {
        name: "hevc.ts",
        args: &[
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error:keyint=24",
            "-f",
            "mpegts",
        ],
        container: "mpegts",
        reordering: true,
    },
    Case {
        name: "vp9.webm",
        args: &[
            "-c:v",
            "libvpx-vp9",
            "-g",
            "24",
            "-deadline",
            "realtime",
            "-f",
            "webm",
        ],
        container: "matroska,webm",
        reordering: false,
    },
    Case {
        name: "mpeg4.avi",
        args: &["-c:v", "mpeg4", "-q:v", "2", "-g", "24", "-f", "avi"],
        container: "avi",
        reordering: false,
    },
    Case {
        name: "mpeg2.mxf",
        args: &[
            "-c:v",
            "mpeg2video",
            "-q:v",
            "2",
            "-g",
            "12",
            "-bf",
            "0",
            "-f",
            "mxf",
        ],
        container: "mxf",
        reordering: false,
    },
];

fn make(case: &Case) -> PathBuf {
    common::cached(case.name, |path| {
        common::ffmpeg_testcard(path, 320, 240, FRAMES, case.args);
    })
}

#[test]
fn other_containers_play_every_frame_as_ffmpeg_decodes_them() {
    let registry = DecoderRegistry::default();
    for case in CASES {
        let path = make(case);
        let info = probe(&path, &registry).expect("probe");
        assert_eq!(info.container, case.container, "{}", case.name);
        assert_eq!(info.video.frame_count, FRAMES, "{}", case.name);
        assert_eq!(info.video.has_reordering, case.reordering, "{}", case.name);
        assert!(
            info.video.unsupported.is_none(),
            "{}: {:?}",
            case.name,
            info.video
        );
        assert_eq!(info.video.keyframes.first(), Some(&0), "{}", case.name);

        let mut reader = VideoReader::open(&path, &registry).expect("open");
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame() {
            frames.push(f.expect("decode"));
        }
        assert_eq!(frames.len() as u64, FRAMES, "{}", case.name);
        let reference =
            common::ffmpeg_frames_like(&path, frames[0].format.ffmpeg_name(), &frames[0]);
        assert_eq!(reference.len(), frames.len(), "{}", case.name);
        for (n, (ours, theirs)) in frames.iter().zip(&reference).enumerate() {
            assert!(
                ours.planes == theirs.planes,
                "{}: frame {n} differs from ffmpeg's",
                case.name
            );
            assert_eq!(testcard::read_index(ours), Some(n as u64), "{}", case.name);
        }
    }
}

#[test]
fn other_containers_reach_random_frames_exactly() {
    let registry = DecoderRegistry::default();
    for case in CASES {
        let path = make(case);
        let mut reader = VideoReader::open(&path, &registry).expect("open");
        // Backwards, across GOPs, the last frame, and within one GOP.
        for n in [45, 3, 59, 30, 0, 47, 25, 24] {
            let f = reader
                .frame(n)
                .unwrap_or_else(|e| panic!("{}: frame {n}: {e}", case.name));
            assert_eq!(testcard::read_index(&f), Some(n), "{}", case.name);
        }
        // Two readers of one file at once (the pool of libavformat contexts).
        let mut other = VideoReader::open(&path, &registry).expect("open");
        for n in [10, 50, 11, 51] {
            let f = if n % 2 == 0 {
                reader.frame(n)
            } else {
                other.frame(n)
            }
            .expect("decode");
            assert_eq!(testcard::read_index(&f), Some(n), "{}", case.name);
        }
    }
}

/// Truncated and bit-flipped files of each container: the frames that decode are the right
/// ones (but for concealed damage), the rest are errors with text, and nothing panics or
/// hangs (30 s per file).
#[test]
fn damaged_containers_give_errors_or_right_frames() {
    let dir = tempfile::tempdir().expect("tmp");
    for case in CASES {
        let bytes = std::fs::read(make(case)).expect("read");
        let n = bytes.len();
        let mut variants: Vec<(String, Vec<u8>)> = [n / 10, n / 2, n * 9 / 10]
            .iter()
            .map(|&cut| (format!("cut at {cut}"), bytes[..cut].to_vec()))
            .collect();
        for at in [n / 4, n / 2, n * 3 / 4] {
            let mut flipped = bytes.clone();
            for b in &mut flipped[at..(at + 64).min(n)] {
                *b ^= 0x5a;
            }
            variants.push((format!("64 bytes flipped at {at}"), flipped));
        }
        for (what, data) in variants {
            let path = dir.path().join(case.name);
            std::fs::write(&path, data).expect("write");
            let label = format!("{} {what}", case.name);
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            std::thread::spawn(move || {
                let registry = DecoderRegistry::default();
                let mut seen = Vec::new();
                let outcome = VideoReader::open(&path, &registry).map(|mut reader| {
                    // A packet lost in the middle leaves a gap in the frame times: the frames
                    // after it keep their times (the test card's index at 30 fps).
                    let times = reader.demuxer().video().frame_times.clone();
                    let card = |n: u64| {
                        times.as_ref().map_or(n, |t| {
                            (t.time_of(n) as f64 * 30.0 / t.timescale as f64).round() as u64
                        })
                    };
                    for n in 0..reader.frame_count() {
                        match reader.frame(n) {
                            Ok(f) => seen.push((card(n), testcard::read_index(&f))),
                            Err(e) => assert!(!e.to_string().is_empty()),
                        }
                    }
                });
                let _ = tx.send((outcome.map_err(|e| e.to_string()), seen));
            });
            let (outcome, seen) = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{label}: no answer in 30 s"));
            if let Err(e) = outcome {
                assert!(!e.is_empty(), "{label}");
            }
            // Damage may spoil pictures: the test card then reads as nothing, or a decoder
            // conceals a cut or damaged picture with its reference's content (one or two
            // frames). A demuxer that lost count would shift every frame after the damage.
            let wrong: Vec<_> = seen
                .iter()
                .filter(|(card, index)| index.is_some_and(|i| i != *card))
                .collect();
            assert!(wrong.len() <= 2, "{label}: (card, shown) {wrong:?}");
        }
    }
}
