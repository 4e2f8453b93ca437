//! `framelock probe`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use framelock::{DecoderRegistry, MediaInfo, probe};

/// Arguments of `probe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The media file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let info = probe(&args.file, &DecoderRegistry::new())
        .with_context(|| format!("probing {}", args.file.display()))?;
    let elapsed = start.elapsed();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &info)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &info)?;
        writeln!(out, "probed in  {:.2} ms", elapsed.as_secs_f64() * 1e3)?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, info: &MediaInfo) -> std::io::Result<()> {
    let v = &info.video;
    writeln!(
        out,
        "file       {} ({} bytes, brand {})",
        info.path.display(),
        info.file_size,
        info.container.trim()
    )?;
    writeln!(
        out,
        "video      {} {} {} level {}  {}x{}  {} {}",
        v.codec,
        v.codec_string.as_deref().unwrap_or(""),
        v.profile.as_deref().unwrap_or("?"),
        v.level.as_deref().unwrap_or("?"),
        v.width,
        v.height,
        v.chroma.map(|c| c.to_string()).unwrap_or_default(),
        v.bit_depth.map(|b| format!("{b}-bit")).unwrap_or_default(),
    )?;
    writeln!(
        out,
        "timing     {} fps, {} frames, {:.3} s, B-frames: {}",
        v.frame_rate,
        v.frame_count,
        v.duration_secs,
        if v.has_reordering { "yes" } else { "no" }
    )?;
    let gaps: Vec<u64> = v.keyframes.windows(2).map(|w| w[1] - w[0]).collect();
    writeln!(
        out,
        "keyframes  {} (max GOP {} frames)",
        v.keyframes.len(),
        gaps.iter().max().copied().unwrap_or(v.frame_count)
    )?;
    match (&v.backend, &v.unsupported) {
        (Some(b), _) => writeln!(out, "decoder    {b}")?,
        (None, Some(why)) => writeln!(out, "decoder    none: {why}")?,
        (None, None) => writeln!(out, "decoder    none")?,
    }
    match &info.audio {
        Some(a) => writeln!(
            out,
            "audio      {} {} {} Hz, {} channels, {:.3} s",
            a.codec,
            a.codec_string.as_deref().unwrap_or(""),
            a.sample_rate,
            a.channels,
            a.duration_secs
        )?,
        None => writeln!(out, "audio      none")?,
    }
    Ok(())
}
