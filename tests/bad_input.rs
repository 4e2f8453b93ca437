//! Bad input gets a clear, typed error: no panic, no garbage frames, no partial output file.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::Path;

use framelock::{
    DecoderRegistry, EncodeSettings, EncodeSpeed, MediaError, Mp4VideoWriter, Picture, RateControl,
    Rational, VideoReader, WriteError, probe,
};

fn open(path: &Path) -> Result<VideoReader, MediaError> {
    VideoReader::open(path, &DecoderRegistry::new())
}

fn good_clip() -> std::path::PathBuf {
    common::clip("good.mp4", 320, 180, Rational::integer(30), 20, 10)
}

#[test]
fn missing_path_and_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        open(&dir.path().join("nope.mp4")),
        Err(MediaError::NotFound { .. })
    ));
    assert!(matches!(
        open(dir.path()),
        Err(MediaError::IsDirectory { .. })
    ));
}

#[test]
fn empty_file_and_random_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(open(&empty), Err(MediaError::Empty { .. })));

    let mut state = 0x1234_5678_u32;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let noise = dir.path().join("noise.mp4");
    std::fs::write(&noise, &random).expect("write");
    let err = open(&noise).expect_err("noise is not an mp4");
    assert!(
        matches!(
            err,
            MediaError::InvalidContainer { .. } | MediaError::Truncated { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn truncated_at_many_offsets() {
    let good = std::fs::read(good_clip()).expect("read");
    let dir = tempfile::tempdir().expect("tmp");
    let cut = dir.path().join("cut.mp4");
    for fraction in [0.001, 0.01, 0.1, 0.33, 0.5, 0.9, 0.99, 0.999] {
        let len = ((good.len() as f64) * fraction) as usize;
        std::fs::write(&cut, &good[..len]).expect("write");
        match open(&cut) {
            Err(MediaError::Truncated { size, .. }) => assert_eq!(size, len as u64),
            Err(MediaError::InvalidContainer { .. }) => {}
            Ok(_) => panic!("a file cut at {len} of {} bytes opened", good.len()),
            Err(other) => panic!("cut at {len}: unexpected {other:?}"),
        }
    }
}

#[test]
fn no_video_track() {
    let path = common::cached("audio_only.m4a", |path| {
        let mut c = common::ffmpeg();
        c.args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:a",
            "aac",
        ])
        .arg(path);
        common::run(c);
    });
    assert!(matches!(open(&path), Err(MediaError::NoVideoTrack { .. })));
}

#[test]
fn hevc_without_the_ffmpeg_backend_is_refused_up_front() {
    let path = common::cached("hevc.mp4", |path| {
        common::ffmpeg_testsrc(
            path,
            "320x180",
            0.5,
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error",
                "-tag:v",
                "hvc1",
            ],
        );
    });
    // DecoderRegistry::openh264_only() is exactly what a build without `ffmpeg` registers.
    let err = VideoReader::open(&path, &DecoderRegistry::openh264_only()).expect_err("refused");
    match err {
        MediaError::Unsupported { codec, reason } => {
            assert!(codec.starts_with("hevc"), "{codec}");
            assert!(reason.contains("openh264"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // probe still describes it, and says why nothing decodes it
    let info = probe(&path, &DecoderRegistry::openh264_only()).expect("probe");
    assert_eq!(info.video.backend, None);
    assert!(info.video.unsupported.is_some());
}

#[test]
fn unknown_sample_entry_is_refused() {
    let mut bytes = std::fs::read(good_clip()).expect("read");
    // rename the avc1 sample entry: no backend has a decoder for "zzz1"
    let stsd = bytes
        .windows(4)
        .position(|w| w == b"stsd")
        .expect("stsd box");
    let at = stsd
        + bytes[stsd..]
            .windows(4)
            .position(|w| w == b"avc1")
            .expect("avc1 sample entry");
    bytes[at..at + 4].copy_from_slice(b"zzz1");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("zzz1.mp4");
    std::fs::write(&path, &bytes).expect("write");
    match open(&path) {
        Err(MediaError::Unsupported { codec, .. }) => assert!(codec.contains("zzz1"), "{codec}"),
        other => panic!("{:?}", other.map(|r| r.backend())),
    }
}

#[test]
fn corrupt_sample_data_is_an_error_or_a_picture_never_a_panic() {
    let mut bytes = std::fs::read(good_clip()).expect("read");
    // scribble over the middle of the media data
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 2000] {
        *b = 0xff;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("scribbled.mp4");
    std::fs::write(&path, &bytes).expect("write");
    let mut reader = open(&path).expect("the container is intact");
    for n in 0..reader.frame_count() {
        if let Err(e) = reader.frame(n) {
            assert!(e.is_recoverable(), "{e:?}");
        }
    }
}

#[test]
fn failed_writes_leave_nothing_behind_and_keep_the_old_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("out.mp4");
    let settings = EncodeSettings {
        width: 64,
        height: 64,
        frame_rate: Rational::integer(25),
        rate: RateControl::ConstantQp(30),
        gop: 5,
        speed: EncodeSpeed::Balanced,
    };
    std::fs::write(&dest, b"the good file").expect("write");
    {
        let mut w = Mp4VideoWriter::create(&dest, settings).expect("create");
        w.write_frame(&Picture::black(64, 64)).expect("frame");
        let err = w
            .write_frame(&Picture::black(32, 32))
            .expect_err("wrong size");
        assert!(matches!(err, WriteError::FrameSize { .. }));
        // dropped without finish()
    }
    assert_eq!(std::fs::read(&dest).expect("read"), b"the good file");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "temporary files left: {names:?}");

    // a destination whose directory does not exist
    let err = Mp4VideoWriter::create(dir.path().join("no/such/dir/x.mp4"), settings)
        .expect_err("no directory");
    assert!(matches!(err, WriteError::Io { .. }));
    // odd sizes are refused before anything is written
    let odd = EncodeSettings {
        width: 63,
        ..settings
    };
    assert!(matches!(
        Mp4VideoWriter::create(dir.path().join("odd.mp4"), odd),
        Err(WriteError::InvalidSettings(_))
    ));
    assert!(!dir.path().join("odd.mp4").exists());
}

/// Files of other containers (made by Debian's ffmpeg) are refused naming what they are,
/// not as "truncated" MP4s, unless libavformat (feature `ffmpeg`) demuxes them.
#[test]
fn other_containers_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, args, found) in [
        (
            "a.mkv",
            &["-c:v", "mpeg4", "-f", "matroska"][..],
            "Matroska/WebM",
        ),
        (
            "a.ts",
            &["-c:v", "mpeg2video", "-f", "mpegts"][..],
            "MPEG transport stream",
        ),
        ("a.avi", &["-c:v", "mpeg4", "-f", "avi"][..], "AVI"),
        (
            "a.png",
            &["-frames:v", "1", "-f", "image2"][..],
            "a PNG image",
        ),
    ] {
        let path = dir.path().join(name);
        let mut c = common::ffmpeg();
        c.args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=30:duration=1",
        ])
        .args(args)
        .arg(&path);
        common::run(c);
        // With libav built in, libavformat demuxes the containers (tests/containers.rs
        // checks their frames); from bytes in memory, and without it, they are refused by
        // name.
        let demuxed = cfg!(feature = "ffmpeg") && found != "a PNG image";
        match open(&path) {
            Ok(reader) if demuxed => assert_eq!(reader.frame_count(), 30, "{name}"),
            Ok(_) => panic!("{name}: opened"),
            Err(err) => assert!(
                !demuxed
                    && matches!(&err, MediaError::InvalidContainer { reason, .. }
                        if reason.contains(found) && reason.contains("not an MP4/MOV")),
                "{name}: {err}"
            ),
        }
        let bytes = std::fs::read(&path).expect("read");
        let err = framelock::Mp4Demuxer::from_bytes(bytes, &path).expect_err("from bytes");
        assert!(
            matches!(&err, MediaError::InvalidContainer { reason, .. } if reason.contains(found)),
            "{name}: {err}"
        );
    }
}

#[test]
fn damaged_metadata_boxes_do_not_refuse_intact_samples() {
    // ffmpeg's remux writes a `udta` box (encoder tag, title) in `moov`.
    let dir = tempfile::tempdir().expect("tmp");
    let tagged = dir.path().join("tagged.mp4");
    let status = common::ffmpeg()
        .arg("-i")
        .arg(good_clip())
        .args(["-c", "copy", "-metadata", "title=framelock"])
        .arg(&tagged)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let mut bytes = std::fs::read(&tagged).expect("read");
    let udta = bytes
        .windows(4)
        .position(|w| w == b"udta")
        .expect("a udta box");
    // The first box inside it now claims 4 GB: the metadata cannot be parsed.
    bytes[udta + 4..udta + 8].copy_from_slice(&[0xff, 0xff, 0xff, 0x00]);
    let damaged = dir.path().join("damaged-udta.mp4");
    std::fs::write(&damaged, &bytes).expect("write");
    let mut reader = open(&damaged).expect("the samples are intact: the file opens");
    assert_eq!(reader.frame_count(), 20);
    for n in [0, 7, 19] {
        let f = reader.frame(n).expect("decodes");
        assert_eq!(framelock::testcard::read_index(&f), Some(n));
    }
    // Damage in the sample table still refuses the file.
    let stsz = bytes
        .windows(4)
        .position(|w| w == b"stsz")
        .expect("a stsz box");
    bytes[stsz + 12..stsz + 16].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    let broken = dir.path().join("damaged-stsz.mp4");
    std::fs::write(&broken, &bytes).expect("write");
    assert!(open(&broken).is_err());
}

/// 5K H.264 is beyond openh264 (level 5.2 at most): refused up front with a reason that names
/// the `ffmpeg` feature, never sent to openh264 to fail on every frame; with libav built it
/// plays.
#[test]
fn h264_beyond_openh264s_largest_picture_goes_to_libav_or_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("5k.mp4");
    let status = common::ffmpeg()
        .args(["-f", "lavfi", "-i", "testsrc=size=5120x2880:rate=30"])
        .args(["-frames:v", "2", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    match VideoReader::open(&path, &DecoderRegistry::openh264_only()) {
        Err(MediaError::Unsupported { reason, .. }) => {
            assert!(
                reason.contains("5120x2880") && reason.contains("ffmpeg"),
                "{reason}"
            );
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("5K H.264 was handed to openh264"),
    }
    #[cfg(feature = "ffmpeg")]
    {
        let mut reader = open(&path).expect("libav decodes it");
        let f = reader.frame(1).expect("a frame");
        assert_eq!((f.width, f.height), (5120, 2880));
    }
}

/// Open-GOP H.264 (x264's recovery points as key frames): refused for openh264 up front,
/// naming the reason and the `ffmpeg` feature; with libav built it plays. A closed-GOP clip
/// with B-frames is not mistaken for one.
#[test]
fn open_gop_h264_goes_to_libav_or_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let make = |name: &str, params: &str| {
        let path = dir.path().join(name);
        let status = common::ffmpeg()
            .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
            .args(["-frames:v", "40", "-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-bf", "2", "-x264-params", params, "-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        path
    };
    let open_gop = make("open.mp4", "keyint=10:min-keyint=10:open-gop=1:scenecut=0");
    let closed = make("closed.mp4", "keyint=10:min-keyint=10:scenecut=0");
    let only = DecoderRegistry::openh264_only();
    match VideoReader::open(&open_gop, &only) {
        Err(MediaError::Unsupported { reason, .. }) => {
            assert!(
                reason.contains("open GOP") && reason.contains("ffmpeg"),
                "{reason}"
            );
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("open-GOP H.264 was handed to openh264"),
    }
    let mut reader = VideoReader::open(&closed, &only).expect("closed GOP opens");
    reader.frame(25).expect("decodes");
    #[cfg(feature = "ffmpeg")]
    {
        let mut reader = open(&open_gop).expect("libav decodes it");
        reader.frame(25).expect("a frame after a recovery point");
    }
}

/// Inputs the fuzz targets (`fuzz/`) found: a zero-sized box inside a top-level `moof` made
/// `re_mp4` loop forever (the structure check walked only `moov`), an `avcC` whose lengths
/// underflow made it panic (contained), and three more made it go round in circles inside
/// `minf` and `avc1` (the cursor it reads through now has a budget of seeks). Each is now
/// refused with a reason, from the file and from its bytes, within a time limit.
#[test]
fn inputs_the_fuzzer_found_are_refused_in_time() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    for (name, says) in [
        ("moof-child-size-0.mp4", "has size 0"),
        ("avcc-length-underflow.mp4", "malformed sample table"),
        ("minf-loop.mp4", "keeps seeking"),
        ("avc1-loop.mp4", "keeps seeking"),
        ("avc1-loop-2.mp4", "keeps seeking"),
    ] {
        let path = dir.join(name);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let registry = DecoderRegistry::new();
            let from_file = probe(&path, &registry).map(|_| ());
            let bytes = std::fs::read(&path).expect("read the fixture");
            let from_bytes = framelock::probe_bytes(bytes, &path, &registry).map(|_| ());
            let _ = tx.send((from_file, from_bytes));
        });
        let (from_file, from_bytes) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name}: no answer in 30 s"));
        for r in [from_file, from_bytes] {
            let e = r.expect_err(name).to_string();
            assert!(e.contains(says), "{name}: {e}");
        }
    }
}
