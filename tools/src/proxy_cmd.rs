//! `framelock proxy`: makes proxies of media files, with a progress bar per job.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framelock::{
    ProxyCodec, ProxyGeneration, ProxyManager, ProxyManagerOptions, ProxyPriority, ProxyState,
    probe,
};

/// Arguments of `proxy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Media files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Proxy heights (aspect kept, even widths), comma separated: 720, 1080, 540, …
    #[arg(long, value_delimiter = ',', default_value = "720")]
    res: Vec<u32>,
    /// `h264` (long GOP, small), `h264-intra` (every frame a keyframe: instant scrubbing), or
    /// ProRes 422 in a `.mov` (builds with the `ffmpeg` feature): `prores` (Proxy),
    /// `prores-lt`, `prores-standard`.
    #[arg(long, default_value = "h264")]
    codec: String,
    /// 0 (smallest) to 100 (best); see `ProxyCodec::qp` for the QP it maps to.
    #[arg(long, default_value_t = 50)]
    quality: u8,
    /// `low`, `normal` or `high`.
    #[arg(long, default_value = "normal")]
    priority: String,
    /// Proxy folder (default: `Proxies/` beside the first file).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Jobs at once (default: cores − 1, at least 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Decode/encode threads per job (default: the cores shared among the jobs, at least 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Decoder backend: `auto` (fastest built), `openh264` or `ffmpeg` (with the feature).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Decode every picture in full, even for proxies at most half the source's height (by
    /// default those skip libav's deblocking filter: faster, and invisible after the shrink).
    #[arg(long)]
    full_decode: bool,
    /// Print one JSON object per job instead of text (no progress bars).
    #[arg(long)]
    json: bool,
}

fn codec(s: &str) -> anyhow::Result<ProxyCodec> {
    match s {
        "intra" => Ok(ProxyCodec::H264Intra),
        other => ProxyCodec::from_name(other).with_context(|| {
            format!(
                "unknown proxy codec {other:?} (h264, h264-intra, prores, prores-lt, \
                 prores-standard)"
            )
        }),
    }
}

fn priority(s: &str) -> anyhow::Result<ProxyPriority> {
    Ok(match s {
        "low" => ProxyPriority::Low,
        "normal" => ProxyPriority::Normal,
        "high" => ProxyPriority::High,
        other => bail!("unknown priority {other:?} (low, normal, high)"),
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let generation = ProxyGeneration {
        resolutions: args.res.clone(),
        codec: codec(&args.codec)?,
        quality: args.quality.min(100),
        priority: priority(&args.priority)?,
        fast_decode: !args.full_decode,
    };
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => args
            .files
            .first()
            .and_then(|f| f.parent())
            .map_or_else(|| PathBuf::from("Proxies"), |p| p.join("Proxies")),
    };
    let mut options = ProxyManagerOptions::new(&dir);
    if args.backend != "auto" {
        options.registry = crate::bench::registry(&args.backend)?;
    }
    if let Some(w) = args.workers {
        options.workers = w.max(1);
    }
    if let Some(t) = args.threads {
        options.threads_per_job = t.max(1);
    }
    let registry = options.registry.clone();
    let manager = ProxyManager::new(options);
    let start = Instant::now();
    let mut jobs = Vec::new();
    for file in &args.files {
        let info = probe(file, &registry).with_context(|| file.display().to_string())?;
        for &h in &args.res {
            if h >= info.video.height {
                eprintln!(
                    "{}: skipping {h}p, not smaller than the source ({}p)",
                    file.display(),
                    info.video.height
                );
                continue;
            }
            jobs.push(manager.submit(file, h, &generation));
        }
    }
    let bars = indicatif::MultiProgress::new();
    if args.json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let job_bars: Vec<_> = jobs
        .iter()
        .filter_map(|&id| manager.job(id))
        .map(|s| {
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The engine's own measured rate and ETA (ProxyState::Generating's fps).
            let bar = indicatif::ProgressBar::new(0).with_prefix(name);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix:>12} [{bar:40}] {pos}/{len} frames {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            (s.id, bars.add(bar))
        })
        .collect();
    loop {
        let idle = manager.wait_idle(Duration::from_millis(100));
        for (id, bar) in &job_bars {
            let Some(s) = manager.job(*id) else { continue };
            match s.state {
                ProxyState::Generating { done, total, fps } => {
                    bar.set_length(total);
                    bar.set_position(done);
                    if fps > 0.0 {
                        let eta = total.saturating_sub(done) as f64 / fps;
                        bar.set_message(format!("{fps:.1} fps, eta {eta:.0} s"));
                    }
                }
                ProxyState::Ready if !bar.is_finished() => bar.finish(),
                ProxyState::Failed(_) | ProxyState::Cancelled if !bar.is_finished() => {
                    bar.abandon();
                }
                _ => {}
            }
        }
        if idle {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut failed = 0;
    for id in jobs {
        let Some(s) = manager.job(id) else { continue };
        let manifest = framelock::proxy_manifest_path(&s.path);
        let seconds = std::fs::read(&manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["seconds"].as_f64());
        let frames = s.info.as_ref().map_or(0, |i| i.video.frame_count);
        let (state, error) = match &s.state {
            ProxyState::Ready => ("ready", None),
            ProxyState::Failed(why) => ("failed", Some(why.clone())),
            ProxyState::Cancelled => ("cancelled", None),
            _ => ("unfinished", None),
        };
        failed += usize::from(state != "ready");
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "source": s.source,
                    "proxy": s.path,
                    "height": s.height,
                    "codec": s.codec.name(),
                    "state": state,
                    "error": error,
                    "frames": frames,
                    "bytes": std::fs::metadata(&s.path).map(|m| m.len()).ok(),
                    "seconds": seconds,
                    "fps": seconds.map(|t| frames as f64 / t),
                    "total_seconds": elapsed,
                })
            );
        } else {
            match &error {
                Some(why) => println!("{}: {state}: {why}", s.path.display()),
                None => println!(
                    "{}: {state}, {frames} frames{}",
                    s.path.display(),
                    seconds.map_or(String::new(), |t| format!(
                        " in {t:.2} s ({:.1} fps)",
                        frames as f64 / t
                    ))
                ),
            }
        }
    }
    if failed > 0 {
        bail!("{failed} proxy job(s) did not finish");
    }
    Ok(())
}
