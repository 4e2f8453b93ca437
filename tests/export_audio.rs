//! Export with audio: the timeline's mix, encoded once over the range (Opus; AAC with the
//! `ffmpeg` feature; PCM in a MOV), lands in the file where the timeline has it. A click at
//! every second of a 44.1 kHz source (resampled to 48 kHz by the mixer) is found, by decoding
//! the exported file with Debian's ffmpeg, within 1 ms of the video frame the timeline shows
//! with it; the file is faststart (`moov` before `mdat`), ffprobe reads the right codec, rate
//! and duration, and an export with audio is byte-identical run after run.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};

use framelock::{
    AudioClipDef, AudioCodec, AudioTrackDef, EngineOptions, Export, ExportAudio, ExportError,
    ExportRequest, Project, Rational, TrackDef,
};

const RATE: u64 = 30;
/// The audio clip starts at timeline frame 10 (1/3 s): its clicks are at 1/3 + k seconds.
const AUDIO_START: u64 = 10;
/// The export covers timeline frames 40..160: file time t is timeline time t + 4/3 s, so
/// the clicks are at file times 0, 1, 2, 3 — the first on the file's very first sample.
const RANGE: std::ops::Range<u64> = 40..160;

/// A mono click (one sample at 0.9) at the start of every second, 44.1 kHz, 8 s.
fn clicks() -> PathBuf {
    common::cached("export_clicks.wav", |path| {
        let ok = common::ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg("aevalsrc='if(eq(mod(n\\,44100)\\,0)\\,0.9\\,0)':s=44100:d=8")
            .args(["-c:a", "pcm_s16le"])
            .arg(path)
            .status()
            .expect("ffmpeg");
        assert!(ok.success());
    })
}

fn project() -> Project {
    let video = common::clip("export_a.mp4", 320, 180, Rational::integer(30), 300, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: vec![common::clip_def(&video, 0, 200, 0, Default::default())],
    });
    p.audio_tracks
        .push(AudioTrackDef::new(vec![AudioClipDef::new(
            clicks(),
            AUDIO_START,
            190,
        )]));
    p
}

fn export(output: &Path, audio: ExportAudio) -> framelock::ExportReport {
    let mut r = ExportRequest::new(output);
    r.range = Some(RANGE);
    r.segment_frames = 30;
    r.workers = 2;
    r.audio = audio;
    r.engine = EngineOptions {
        gpu: None,
        ..EngineOptions::default()
    };
    Export::start(&project(), r)
        .expect("start")
        .wait()
        .expect("export")
}

fn ffprobe(path: &Path, args: &[&str]) -> serde_json::Value {
    common::ffprobe_json(path, args)
}

fn stream(path: &Path, kind: &str) -> serde_json::Value {
    let v = ffprobe(path, &["-show_streams", "-select_streams", kind]);
    v["streams"][0].clone()
}

fn seconds(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).expect("a time")
}

/// The file's audio as ffmpeg decodes it: mono f32 at 48 kHz, from the stream's start.
fn decoded_audio(path: &Path) -> Vec<f32> {
    let mut c = common::ffmpeg();
    c.arg("-i").arg(path).args([
        "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
    ]);
    common::run(c)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Each click's time in the file (the loudest sample within 50 ms of each second) against
/// the presentation time of the video frame the timeline shows with it.
fn check_sync(path: &Path, codec_name: &str) {
    let audio = stream(path, "a");
    let video = stream(path, "v");
    assert_eq!(audio["codec_name"], codec_name, "{audio}");
    assert_eq!(audio["sample_rate"], "48000");
    assert_eq!(audio["channels"], 2);
    let length = (RANGE.end - RANGE.start) as f64 / RATE as f64;
    let a_dur = seconds(&audio["duration"]);
    assert!((a_dur - length).abs() < 0.001, "audio lasts {a_dur} s");
    let a_start = seconds(&audio["start_time"]);
    let packets = ffprobe(
        path,
        &["-select_streams", "v", "-show_entries", "packet=pts_time"],
    );
    let pts: Vec<f64> = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| seconds(&p["pts_time"]))
        .collect();
    assert_eq!(pts.len() as u64, RANGE.end - RANGE.start);
    assert_eq!(video["nb_frames"], "120");
    // The edit list gives the exact duration (ffprobe's, above); ffmpeg's decoder drops the
    // encoder delay at the start but plays the last packet's padding out to its end.
    let samples = decoded_audio(path);
    let exact = (length * 48_000.0) as usize;
    assert!(
        (exact..=exact + 2048).contains(&samples.len()),
        "{} samples decoded, {exact} presented",
        samples.len()
    );
    for k in 0..4u64 {
        let expect = k as usize * 48_000;
        let (lo, hi) = (
            expect.saturating_sub(2400),
            (expect + 2400).min(samples.len()),
        );
        let (peak, value) = (lo..hi)
            .map(|i| (i, samples[i].abs()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            value > 0.2,
            "{codec_name}: no click near {k} s (peak {value})"
        );
        let click = a_start + peak as f64 / 48_000.0;
        let frame = pts[(k * RATE) as usize];
        eprintln!(
            "{codec_name}: click {k} at {click:.6} s, frame at {frame:.6} s ({:+.3} ms)",
            (click - frame) * 1000.0
        );
        assert!(
            (click - frame).abs() <= 0.001,
            "{codec_name}: the click of second {k} is at {click:.5} s, its frame at {frame:.5} s"
        );
    }
}

/// The top-level boxes of an MP4, in order.
fn boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0usize;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        if size < 8 {
            break;
        }
        at += size;
    }
    out
}

#[test]
fn opus_clicks_land_on_their_frames_and_exports_repeat_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opus.mp4");
    let report = export(&out, ExportAudio::Codec(AudioCodec::OPUS));
    assert_eq!(report.audio, Some(AudioCodec::OPUS));
    assert_eq!(report.audio_samples, 4 * 48_000);
    assert_eq!(boxes(&out), ["ftyp", "moov", "mdat"], "faststart");
    check_sync(&out, "opus");
    let again = dir.path().join("again.mp4");
    export(&again, ExportAudio::Codec(AudioCodec::OPUS));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap(),
        "two exports differ"
    );
}

#[test]
fn pcm_in_a_mov_is_sample_exact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pcm.mov");
    export(&out, ExportAudio::Codec(AudioCodec::Pcm16));
    assert_eq!(boxes(&out), ["ftyp", "moov", "mdat"]);
    check_sync(&out, "pcm_s16le");
    // Lossless: the first click is on the very first sample.
    let samples = decoded_audio(&out);
    let first = (0..2400)
        .max_by(|&a, &b| samples[a].abs().total_cmp(&samples[b].abs()))
        .unwrap();
    assert!(first <= 1, "the first click is at sample {first}");
    // PCM must go into a MOV: asking for an .mp4 is refused before anything starts.
    let mut r = ExportRequest::new(dir.path().join("pcm.mp4"));
    r.audio = ExportAudio::Codec(AudioCodec::Pcm16);
    let err = Export::start(&project(), r).expect_err("pcm in mp4");
    assert!(
        matches!(err, ExportError::Settings(_)),
        "{err}: a settings error"
    );
    assert!(!dir.path().join("pcm.mp4").exists());
}

#[test]
fn auto_audio_is_aac_with_ffmpeg_and_none_on_a_silent_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("auto.mp4");
    let report = export(&out, ExportAudio::Auto);
    if cfg!(feature = "ffmpeg") {
        assert!(matches!(report.audio, Some(AudioCodec::Aac { .. })));
        check_sync(&out, "aac");
    } else {
        assert_eq!(report.audio, Some(AudioCodec::OPUS));
        check_sync(&out, "opus");
    }
    // Without an audio clip (and video media without sound) there is no audio track.
    let mut silent = project();
    silent.audio_tracks.clear();
    let mut r = ExportRequest::new(dir.path().join("silent.mp4"));
    r.range = Some(0..30);
    r.engine.gpu = None;
    let report = Export::start(&silent, r).unwrap().wait().unwrap();
    assert_eq!(report.audio, None);
    let streams = ffprobe(&report.path, &["-show_streams"]);
    assert_eq!(streams["streams"].as_array().unwrap().len(), 1);
}
