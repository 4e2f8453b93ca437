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

use framelock::{DecoderRegistry, Picture, VideoReader, probe, testcard};

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
        args: &["-c:v", "libx265", "-x265-params", "log-level=error:keyint=24", "-f", "mpegts"],
        container: "mpegts",
        reordering: true,
    },
    Case {
        name: "vp9.webm",
        args: &["-c:v", "libvpx-vp9", "-g", "24", "-deadline", "realtime", "-f", "webm"],
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
        args: &["-c:v", "mpeg2video", "-q:v", "2", "-g", "12", "-bf", "0", "-f", "mxf"],
        container: "mxf",
        reordering: false,
    },
];

fn make(case: &Case) -> PathBuf {
    common::cached(case.name, |path| {
        common::ffmpeg_testcard(path, 320, 240, FRAMES, case.args);
    })
}

fn reference(case: &Case, first: &Picture) -> Vec<Picture> {
    let raw = common::ffmpeg_decode_raw(&make(case), first.format.ffmpeg_name());
    let size = first.size_bytes();
    assert_eq!(raw.len() % size, 0, "{}: raw output is not whole frames", case.name);
    raw.chunks_exact(size)
        .map(|chunk| {
            let mut f = first.clone();
            let mut off = 0;
            for p in &mut f.planes {
                let n = p.len();
                p.copy_from_slice(&chunk[off..off + n]);
                off += n;
            }
            f
        })
        .collect()
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
        assert!(info.video.unsupported.is_none(), "{}: {:?}", case.name, info.video);
        assert_eq!(info.video.keyframes.first(), Some(&0), "{}", case.name);

        let mut reader = VideoReader::open(&path, &registry).expect("open");
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame() {
            frames.push(f.expect("decode"));
        }
        assert_eq!(frames.len() as u64, FRAMES, "{}", case.name);
        let reference = reference(case, &frames[0]);
        assert_eq!(reference.len(), frames.len(), "{}", case.name);
        for (n, (ours, theirs)) in frames.iter().zip(&reference).enumerate() {
            assert!(ours.planes == theirs.planes, "{}: frame {n} differs from ffmpeg's", case.name);
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
            let f = reader.frame(n).unwrap_or_else(|e| panic!("{}: frame {n}: {e}", case.name));
            assert_eq!(testcard::read_index(&f), Some(n), "{}", case.name);
        }
        // Two readers of one file at once (the pool of libavformat contexts).
        let mut other = VideoReader::open(&path, &registry).expect("open");
        for n in [10, 50, 11, 51] {
            let f = if n % 2 == 0 { reader.frame(n) } else { other.frame(n) }.expect("decode");
            assert_eq!(testcard::read_index(&f), Some(n), "{}", case.name);
        }
    }
}
