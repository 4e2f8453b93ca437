//! `framelock gen-media`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use framelock::{GenerateOptions, Rational, generate_test_clip};

/// Arguments of `gen-media`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output MP4.
    out: PathBuf,
    /// Picture size, WIDTHxHEIGHT (even).
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frame rate: 30, 29.97, 30000/1001, …
    #[arg(long, default_value = "30")]
    fps: String,
    /// Length in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Keyframe interval in frames (1 = all-intra). Default: one second.
    #[arg(long)]
    gop: Option<u32>,
    /// Target bitrate in kb/s. Default: 0.1 bit per pixel per frame.
    #[arg(long)]
    kbps: Option<u32>,
    /// Constant QP (0–51) instead of a bitrate.
    #[arg(long, conflicts_with = "kbps")]
    qp: Option<u8>,
    /// Add an AAC track: a 1 kHz tone that starts every second and lasts a tenth of it
    /// (encoded by Debian's `ffmpeg`, which must be on PATH: no maintained Rust AAC encoder).
    #[arg(long)]
    audio: bool,
}

pub(crate) fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size {s:?} is not WIDTHxHEIGHT"))?;
    Ok((w.trim().parse()?, h.trim().parse()?))
}

pub(crate) fn parse_fps(s: &str) -> anyhow::Result<Rational> {
    Rational::parse(s).with_context(|| format!("frame rate {s:?} is not a number or ratio"))
}

/// Refuses numbers that cannot make a clip (each error names the flag).
fn check(args: &Args, (width, height): (u32, u32), fps: Rational) -> anyhow::Result<()> {
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        bail!("--size {width}x{height}: width and height must be even and non-zero");
    }
    if width > 16_384 || height > 16_384 {
        bail!("--size {width}x{height}: at most 16384 on a side");
    }
    if fps.num == 0 || fps.den == 0 || fps.as_f64() > 1000.0 {
        bail!("--fps {}: a frame rate above 0 and at most 1000", args.fps);
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 || args.seconds > 86_400.0 {
        bail!(
            "--seconds {}: a length above 0 and at most a day",
            args.seconds
        );
    }
    if args.gop == Some(0) {
        bail!("--gop 0: the keyframe interval is at least 1 (1 = all-intra)");
    }
    if args.kbps == Some(0) {
        bail!("--kbps 0: the bitrate is at least 1");
    }
    if let Some(qp) = args.qp.filter(|&q| q > 51) {
        bail!("--qp {qp}: H.264's QP is 0–51");
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.size)?;
    let fps = parse_fps(&args.fps)?;
    check(args, (width, height), fps)?;
    let mut options = GenerateOptions::new(width, height, fps, args.seconds);
    if let Some(gop) = args.gop {
        options.gop = gop;
    }
    if let Some(kbps) = args.kbps {
        options.rate = Some(framelock::RateControl::Bitrate(kbps.saturating_mul(1000)));
    }
    if let Some(qp) = args.qp {
        options.rate = Some(framelock::RateControl::ConstantQp(qp));
    }
    let bar = crate::progress_bar(options.frames, "encoding");
    let summary = generate_test_clip(&args.out, &options, |done, _| bar.set_position(done))
        .with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish_and_clear();
    if args.audio {
        add_audio(&args.out, options.frames as f64 / fps.as_f64())?;
    }
    eprintln!(
        "wrote {}: {}x{} @ {} fps, {} frames, {} keyframes, {:.1} MB{}",
        summary.path.display(),
        width,
        height,
        fps,
        summary.frames,
        summary.keyframes,
        std::fs::metadata(&args.out)?.len() as f64 / 1e6,
        if args.audio { ", with AAC audio" } else { "" }
    );
    Ok(())
}

/// Muxes an AAC tone track into `path` with `ffmpeg` (video stream copied), atomically.
fn add_audio(path: &Path, seconds: f64) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = tempfile::Builder::new()
        .prefix(".framelock-audio.")
        .suffix(".mp4")
        .tempfile_in(dir.unwrap_or(Path::new(".")))?;
    // 1 kHz while the fractional second is under 0.1, silence otherwise.
    let tone =
        format!("aevalsrc=if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0):s=48000:d={seconds}");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(path)
        .args(["-f", "lavfi", "-i", &tone])
        .args([
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k",
        ])
        .args(["-f", "mp4"])
        .arg(tmp.path())
        .status()
        .context("--audio needs Debian's ffmpeg on PATH to encode AAC")?;
    if !status.success() {
        bail!("ffmpeg failed to add the audio track ({status})");
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
