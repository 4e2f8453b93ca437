//! `framelock decode-bench`: whole-file decode throughput and per-frame latency.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use framelock::{DecoderRegistry, VideoReader, parallel_decode};

/// Arguments of `decode-bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The media file.
    file: PathBuf,
    /// Decoder instances working on separate GOP ranges (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Backend: `auto` (the registry's pick), `openh264` or `ffmpeg` (with the feature).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Check every frame's burned-in index (files made by gen-media).
    #[arg(long)]
    verify: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn registry(name: &str) -> anyhow::Result<DecoderRegistry> {
    Ok(match name {
        "auto" => DecoderRegistry::new(),
        "openh264" => DecoderRegistry::openh264_only(),
        #[cfg(feature = "ffmpeg")]
        "ffmpeg" => {
            let mut r = DecoderRegistry::empty();
            r.register(std::sync::Arc::new(framelock::FfmpegBackend::new()));
            r
        }
        other => bail!("unknown backend {other:?} in this build"),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let registry = registry(&args.backend)?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));

    // 1. Sequential: one reader, frame after frame, timing each request (playback latency).
    let mut reader = VideoReader::open(&args.file, &registry)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let total = reader.frame_count();
    let backend = reader.backend();
    let bar = crate::progress_bar(total, "sequential");
    let mut times = Vec::with_capacity(total as usize);
    let start = Instant::now();
    let mut bad = 0u64;
    for n in 0..total {
        let t = Instant::now();
        let frame = reader.frame(n)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if args.verify && framelock::testcard::read_index(&frame) != Some(n) {
            bad += 1;
        }
        bar.set_position(n + 1);
    }
    let seq_secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    times.sort_by(f64::total_cmp);

    // 2. Parallel: several decoder instances over GOP ranges (throughput work).
    let bar = crate::progress_bar(total, "parallel");
    let mut par_bad = 0u64;
    let mut done = 0;
    let report = parallel_decode(&args.file, &registry, workers, |frame| {
        if args.verify && framelock::testcard::read_index(&frame) != Some(frame.index) {
            par_bad += 1;
        }
        done += 1;
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let par_secs = report.elapsed.as_secs_f64();

    let seq_fps = total as f64 / seq_secs;
    let par_fps = report.frames as f64 / par_secs;
    if args.json {
        let v = serde_json::json!({
            "file": args.file,
            "backend": backend,
            "frames": total,
            "sequential_fps": seq_fps,
            "frame_ms_p50": percentile(&times, 0.5),
            "frame_ms_p95": percentile(&times, 0.95),
            "frame_ms_p99": percentile(&times, 0.99),
            "frame_ms_max": percentile(&times, 1.0),
            "parallel_workers": report.workers,
            "parallel_fps": par_fps,
            "verified": args.verify,
            "wrong_frames": bad + par_bad,
        });
        println!("{v}");
    } else {
        println!("file        {}", args.file.display());
        println!("backend     {backend}");
        println!("frames      {total}");
        println!(
            "sequential  {seq_fps:.1} fps  frame ms p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 0.99),
            percentile(&times, 1.0)
        );
        println!(
            "parallel    {par_fps:.1} fps  ({} decoder instances over GOP ranges)",
            report.workers
        );
        if args.verify {
            println!("verified    {} wrong frames", bad + par_bad);
        }
    }
    if bad + par_bad > 0 {
        bail!("{} frames carried the wrong index", bad + par_bad);
    }
    Ok(())
}
