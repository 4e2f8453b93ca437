//! `framelock render`: exports a project (or a range of it) to an H.264 MP4, segment-parallel,
//! with a progress bar; `--json` prints the report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use framelock::{EngineOptions, Export, ExportRequest, Project, VideoCodec};

/// Arguments of `framelock render`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The project JSON (clip media paths as written in it: absolute, or relative to the
    /// current directory).
    project: PathBuf,
    /// The MP4 to write (replaced only when the export succeeds).
    #[arg(short, long)]
    output: PathBuf,
    /// Timeline frames `A..B` (end exclusive; default: the whole timeline).
    #[arg(long)]
    range: Option<String>,
    /// Video codec: h264.
    #[arg(long, default_value = "h264")]
    codec: String,
    /// 0 (smallest) to 100 (best): H.264 QP 45 down to 12.
    #[arg(long, default_value_t = 70)]
    quality: u8,
    /// Frames per segment (one closed GOP each; default two seconds).
    #[arg(long, default_value_t = 0)]
    segment_frames: u64,
    /// Segments rendered and encoded at once (default: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Run the effects on the CPU path even when there is a GPU.
    #[arg(long)]
    cpu_effects: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_range(s: &str) -> anyhow::Result<std::ops::Range<u64>> {
    let Some((a, b)) = s.split_once("..") else {
        bail!("--range {s:?}: expected A..B");
    };
    let a: u64 = a
        .trim()
        .parse()
        .with_context(|| format!("--range start {a:?}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .with_context(|| format!("--range end {b:?}"))?;
    Ok(a..b)
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let json = std::fs::read_to_string(&args.project)
        .with_context(|| format!("reading {}", args.project.display()))?;
    let project =
        Project::from_json(&json).with_context(|| format!("reading {}", args.project.display()))?;
    let codec = match args.codec.as_str() {
        "h264" => VideoCodec::H264,
        other => bail!("--codec {other:?}: this build exports h264"),
    };
    if args.quality > 100 {
        bail!("--quality {}: 0 to 100", args.quality);
    }
    let mut request = ExportRequest::new(&args.output);
    request.range = args.range.as_deref().map(parse_range).transpose()?;
    request.codec = codec;
    request.quality = args.quality;
    request.segment_frames = args.segment_frames;
    request.workers = args.workers;
    request.engine = EngineOptions {
        gpu: (!args.cpu_effects).then(Default::default),
        ..EngineOptions::default()
    };
    let export = Export::start(&project, request)?;
    let bar = crate::progress_bar(export.progress().frames_total, "render");
    while !export.wait_timeout(Duration::from_millis(100)) {
        bar.set_position(export.progress().frames_encoded);
    }
    bar.finish_and_clear();
    let report = export
        .wait()
        .with_context(|| format!("exporting to {}", args.output.display()))?;
    if args.json {
        let v = serde_json::json!({
            "path": report.path,
            "frames": report.frames,
            "keyframes": report.keyframes,
            "segments": report.segments,
            "workers": report.workers,
            "bytes": report.bytes,
            "seconds": report.seconds,
            "fps": report.fps,
            "render_seconds": report.render_seconds,
            "encode_seconds": report.encode_seconds,
            "mux_seconds": report.mux_seconds,
        });
        println!("{v}");
    } else {
        println!(
            "{}: {} frames in {:.1} s ({:.1} fps), {} segments on {} workers, {:.1} MB; render {:.1} s, encode {:.1} s, mux {:.2} s (summed over workers)",
            report.path.display(),
            report.frames,
            report.seconds,
            report.fps,
            report.segments,
            report.workers,
            report.bytes as f64 / 1e6,
            report.render_seconds,
            report.encode_seconds,
            report.mux_seconds
        );
    }
    Ok(())
}
