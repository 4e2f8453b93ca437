//! Independent reference: clips made by Debian's ffmpeg (libx264, libx265), decoded by
//! framelock and by ffmpeg (`-f rawvideo`), compared frame by frame.
//!
//! - libav backend: every frame bit-identical, in the stream's own pixel format (10-bit and
//!   4:2:2 are compared as `yuv420p10le` / `yuv422p`: converting them to `yuv420p` would test
//!   swscale's dithering, not decoding).
//! - openh264 alone: Baseline and B-free High bit-identical; B-frame streams >= 45 dB per frame
//!   in the exact order; HEVC, 4:2:2 and 10-bit refused with a typed error.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};

use framelock::{DecoderRegistry, MediaError, Picture, VideoReader};

struct Clip {
    name: &'static str,
    size: &'static str,
    seconds: f64,
    args: &'static [&'static str],
    pix_fmt: &'static str,
    /// What openh264 alone does with it.
    openh264: Expect,
}

#[derive(PartialEq, Debug)]
enum Expect {
    Exact,
    Psnr45,
    Refused,
}

const CLIPS: &[Clip] = &[
    Clip {
        name: "x264_constrained_baseline_gop1s",
        size: "640x360",
        seconds: 2.0,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ],
        pix_fmt: "yuv420p",
        openh264: Expect::Exact,
    },
    Clip {
        name: "x264_main_bframes_gop2s",
        size: "640x360",
        seconds: 2.5,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "main",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
        ],
        pix_fmt: "yuv420p",
        openh264: Expect::Psnr45,
    },
    Clip {
        name: "x264_high_bpyramid_gop1s",
        size: "640x360",
        seconds: 2.0,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-x264-params",
            "b-pyramid=normal",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ],
        pix_fmt: "yuv420p",
        openh264: Expect::Psnr45,
    },
    Clip {
        name: "x264_high_no_b_odd_1918x1080",
        size: "1918x1080",
        seconds: 1.0,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "0",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ],
        pix_fmt: "yuv420p",
        openh264: Expect::Exact,
    },
    Clip {
        name: "x264_high422",
        size: "640x360",
        seconds: 1.0,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high422",
            "-pix_fmt",
            "yuv422p",
        ],
        pix_fmt: "yuv422p",
        openh264: Expect::Refused,
    },
    Clip {
        name: "x264_high10",
        size: "640x360",
        seconds: 1.0,
        args: &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high10",
            "-pix_fmt",
            "yuv420p10le",
        ],
        pix_fmt: "yuv420p10le",
        openh264: Expect::Refused,
    },
    Clip {
        name: "x265_main",
        size: "640x360",
        seconds: 1.0,
        args: &[
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error",
            "-tag:v",
            "hvc1",
            "-pix_fmt",
            "yuv420p",
        ],
        pix_fmt: "yuv420p",
        openh264: Expect::Refused,
    },
    Clip {
        name: "x265_main10",
        size: "640x360",
        seconds: 1.0,
        args: &[
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error",
            "-pix_fmt",
            "yuv420p10le",
        ],
        pix_fmt: "yuv420p10le",
        openh264: Expect::Refused,
    },
];

fn make(clip: &Clip) -> PathBuf {
    common::cached(&format!("{}.mp4", clip.name), |path| {
        common::ffmpeg_testsrc(path, clip.size, clip.seconds, clip.args);
    })
}

fn decode_all(path: &Path, registry: &DecoderRegistry) -> Result<Vec<Picture>, MediaError> {
    let mut reader = VideoReader::open(path, registry)?;
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame() {
        frames.push(f?);
    }
    Ok(frames)
}

fn reference(path: &Path, pix_fmt: &str, frames: &[Picture]) -> Vec<Picture> {
    let first = frames.first().expect("at least one frame");
    common::ffmpeg_frames_like(path, pix_fmt, first)
}

fn pix_fmt_of(f: &Picture) -> &'static str {
    f.format.ffmpeg_name()
}

#[test]
fn openh264_against_ffmpeg() {
    let registry = DecoderRegistry::openh264_only();
    for clip in CLIPS {
        let path = make(clip);
        let result = decode_all(&path, &registry);
        if clip.openh264 == Expect::Refused {
            match result {
                Err(MediaError::Unsupported { codec, reason }) => {
                    assert!(!codec.is_empty() && !reason.is_empty(), "{}", clip.name);
                }
                other => panic!(
                    "{}: expected Unsupported, got {:?}",
                    clip.name,
                    other.map(|f| f.len())
                ),
            }
            continue;
        }
        let ours = result.unwrap_or_else(|e| panic!("{}: {e}", clip.name));
        let info = framelock::probe(&path, &registry).expect("probe");
        assert_eq!(
            info.video.has_reordering,
            clip.openh264 == Expect::Psnr45,
            "{}: B-frames as intended",
            clip.name
        );
        assert_eq!(pix_fmt_of(&ours[0]), clip.pix_fmt);
        let theirs = reference(&path, clip.pix_fmt, &ours);
        assert_eq!(ours.len(), theirs.len(), "{}: frame count", clip.name);
        let (w, h) = framelock_size(clip.size);
        assert_eq!(
            (ours[0].width, ours[0].height),
            (w, h),
            "{}: cropped size",
            clip.name
        );
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            match clip.openh264 {
                Expect::Exact => assert!(a.planes == b.planes, "{} frame {i} differs", clip.name),
                Expect::Psnr45 => {
                    let psnr = a.psnr_luma(b).expect("same size");
                    assert!(psnr >= 45.0, "{} frame {i}: {psnr:.1} dB", clip.name);
                }
                Expect::Refused => unreachable!(),
            }
        }
    }
}

fn framelock_size(s: &str) -> (u32, u32) {
    let (w, h) = s.split_once('x').expect("WxH");
    (w.parse().expect("w"), h.parse().expect("h"))
}

#[cfg(feature = "ffmpeg")]
#[test]
fn ffmpeg_backend_is_bit_identical() {
    let registry = DecoderRegistry::new();
    for clip in CLIPS {
        let path = make(clip);
        let ours = decode_all(&path, &registry).unwrap_or_else(|e| panic!("{}: {e}", clip.name));
        let expected = match clip.pix_fmt {
            "yuv422p" => framelock::PixelFormat::Yuv422p,
            "yuv420p10le" => framelock::PixelFormat::Yuv420p10,
            _ => framelock::PixelFormat::Yuv420p,
        };
        assert_eq!(ours[0].format, expected, "{}", clip.name);
        let theirs = reference(&path, clip.pix_fmt, &ours);
        assert_eq!(ours.len(), theirs.len(), "{}: frame count", clip.name);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(a.planes == b.planes, "{} frame {i} differs", clip.name);
        }
    }
}

#[cfg(feature = "ffmpeg")]
#[test]
fn probe_names_the_backend_that_will_decode() {
    let registry = DecoderRegistry::new();
    for clip in CLIPS {
        let info = framelock::probe(make(clip), &registry).expect("probe");
        let want = match clip.openh264 {
            Expect::Exact => "openh264",
            _ => "ffmpeg",
        };
        assert_eq!(info.video.backend.as_deref(), Some(want), "{}", clip.name);
    }
}

/// A clip whose track header turns it (as a phone's portrait clip does) comes out turned, as
/// ffmpeg shows it (its autorotation is the reference), and probe says so with the display
/// size.
#[test]
fn rotated_clips_come_out_upright_as_ffmpeg_shows_them() {
    let registry = DecoderRegistry::openh264_only();
    let src = common::clip(
        "rotation-src.mp4",
        160,
        90,
        framelock::Rational::integer(30),
        6,
        3,
    );
    let dir = tempfile::tempdir().expect("tmp");
    for rotate in [90u16, 180, 270] {
        let path = dir.path().join(format!("rotated-{rotate}.mp4"));
        let status = common::ffmpeg()
            .arg("-i")
            .arg(&src)
            .args(["-c", "copy", "-metadata:s:v:0", &format!("rotate={rotate}")])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let info = framelock::probe(&path, &registry).expect("probe");
        let size = if rotate == 180 { (160, 90) } else { (90, 160) };
        // ffmpeg's `rotate` tag turns counter-clockwise; framelock counts clockwise.
        assert_eq!(
            (info.video.rotation, info.video.width, info.video.height),
            ((360 - rotate) % 360, size.0, size.1)
        );
        let ours = decode_all(&path, &registry).expect("decodes");
        assert_eq!((ours[0].width, ours[0].height), size, "rotate={rotate}");
        let theirs = reference(&path, "yuv420p", &ours);
        assert_eq!(ours.len(), theirs.len());
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                a.planes == b.planes,
                "rotate={rotate}: frame {i} differs from ffmpeg's"
            );
        }
    }
}
