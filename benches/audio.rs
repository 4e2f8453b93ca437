//! Audio: the mixer's cost per second of output for 8 stereo tracks at 48 kHz (sources at
//! 48 kHz, and at 44.1 kHz so every block is resampled), decode and resampling included as
//! playback meets them, against a memcpy of the same output bytes; and decode + resample
//! throughput of one file against Debian's `ffmpeg -i x -ar 48000 -f null -` on it, in the
//! same run.
//!
//! Then, once, on an hour of AAC: waveform peaks and decode + resample, each against ffmpeg
//! decoding the same file.
//!
//! `cargo bench --bench audio`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "tests and benches fail loudly; the ffmpeg ratio is printed"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use framelock::{
    AudioClipDef, AudioSource, AudioTrackDef, Mixer, Project, Rational, ResampledSource,
};

const SECONDS: u64 = 20;

/// Makes `path` with Debian's ffmpeg: a stereo sine (`lavfi` source `sine`) encoded with
/// `codec` arguments.
fn sine(path: &Path, frequency: usize, rate: u32, seconds: u64, codec: &[&str]) {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!(
            "sine=frequency={frequency}:sample_rate={rate}:duration={seconds}"
        ))
        .args(["-ac", "2"])
        .args(codec)
        .arg(path)
        .status()
        .expect("Debian's ffmpeg makes the bench media");
    assert!(status.success());
}

fn tone(dir: &Path, i: usize, rate: u32) -> PathBuf {
    let path = dir.join(format!("t{i}-{rate}.wav"));
    sine(&path, 220 + 110 * i, rate, SECONDS, &["-c:a", "pcm_s16le"]);
    path
}

fn project(files: &[PathBuf]) -> Project {
    let mut p = Project::new(Rational::integer(30), 64, 36);
    for f in files {
        p.audio_tracks.push(AudioTrackDef {
            gain_db: -18.0,
            ..AudioTrackDef::new(vec![AudioClipDef {
                fade_in: 15,
                fade_out: 15,
                ..AudioClipDef::new(f.clone(), 0, SECONDS * 30)
            }])
        });
    }
    p
}

fn mix(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("mix_8_stereo_tracks_1s");
    g.sample_size(10);
    for rate in [48_000u32, 44_100] {
        let files: Vec<PathBuf> = (0..8).map(|i| tone(dir.path(), i, rate)).collect();
        let p = project(&files);
        g.bench_with_input(BenchmarkId::new("source_rate", rate), &p, |b, p| {
            let mut mixer = Mixer::new(p).expect("mixer");
            let mut out = vec![0.0f32; 48_000 * 2];
            let mut second = 0u64;
            b.iter(|| {
                mixer.render(second * 48_000, &mut out).expect("renders");
                second = (second + 1) % SECONDS;
            });
        });
    }
    let src = vec![0.25f32; 48_000 * 2];
    let mut dst = vec![0.0f32; 48_000 * 2];
    g.bench_function("memcpy_same_bytes", |b| {
        b.iter(|| dst.copy_from_slice(std::hint::black_box(&src)))
    });
    g.finish();

    // Decode + resample one 44.1 kHz file against ffmpeg on the same file.
    let file = tone(dir.path(), 9, 44_100);
    let t = Instant::now();
    let mut r = ResampledSource::new(AudioSource::open(&file).expect("opens"), 48_000, 2)
        .expect("resampler");
    let mut out = vec![0.0f32; 48_000 * 2];
    for s in 0..SECONDS {
        r.mix_into(s * 48_000, &mut out, |_| 1.0).expect("reads");
    }
    let ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&file)
        .args(["-ar", "48000", "-f", "null", "-"])
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let theirs = t.elapsed().as_secs_f64();
    println!(
        "decode+resample {SECONDS} s of 44.1 kHz stereo: framelock {:.1} ms, ffmpeg {:.1} ms (process start included), ratio {:.2}",
        ours * 1e3,
        theirs * 1e3,
        ours / theirs
    );
}

/// One hour of 44.1 kHz stereo AAC (what an editor imports): waveform peaks (every level,
/// as computed at import) and decode + resample to 48 kHz, each against Debian's ffmpeg
/// decoding the same file (`-f null`, and `-ar 48000 -f null`) in the same run. Once, not
/// sampled: each takes seconds. `FRAMELOCK_BENCH_HOUR_SECONDS` shortens the file.
fn hour(_: &mut Criterion) {
    let seconds: u64 = std::env::var("FRAMELOCK_BENCH_HOUR_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hour.m4a");
    sine(
        &file,
        440,
        44_100,
        seconds,
        &["-c:a", "aac", "-b:a", "128k"],
    );
    let ffmpeg = |extra: &[&str]| {
        let t = Instant::now();
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(&file)
            .args(extra)
            .args(["-f", "null", "-"])
            .status()
            .expect("ffmpeg");
        assert!(status.success());
        t.elapsed().as_secs_f64()
    };
    let t = Instant::now();
    let peaks = framelock::Peaks::compute(&file).expect("peaks");
    let ours = t.elapsed().as_secs_f64();
    let theirs = ffmpeg(&[]);
    println!(
        "waveform peaks of {seconds} s of AAC ({} levels): framelock {ours:.2} s, ffmpeg decode alone {theirs:.2} s, ratio {:.2}",
        peaks.levels.len(),
        ours / theirs
    );
    let t = Instant::now();
    let mut r = ResampledSource::new(AudioSource::open(&file).expect("opens"), 48_000, 2)
        .expect("resampler");
    let mut out = vec![0.0f32; 48_000 * 2];
    for s in 0..seconds {
        out.fill(0.0);
        r.mix_into(s * 48_000, &mut out, |_| 1.0).expect("reads");
    }
    let ours = t.elapsed().as_secs_f64();
    let theirs = ffmpeg(&["-ar", "48000"]);
    println!(
        "decode+resample {seconds} s of 44.1 kHz AAC to 48 kHz: framelock {ours:.2} s, ffmpeg {theirs:.2} s, ratio {:.2}",
        ours / theirs
    );
}

criterion_group!(benches, mix, hour);
criterion_main!(benches);
