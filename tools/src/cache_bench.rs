//! `framelock cache-bench`: the disk tier's write and read throughput against a plain
//! sequential read of the same files, uncompressed and with LZ4, on decoded frames.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use framelock::{
    BufferPool, CacheKind, Compression, DecoderRegistry, DiskCacheOptions, Picture, VideoReader,
};
use framelock::{DiskCache, decoded_key};

/// Arguments of `cache-bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Frames from this file (default: the 1080p bench clip, generated if missing).
    #[arg(long)]
    source: Option<PathBuf>,
    /// Frames to store.
    #[arg(long, default_value_t = 120)]
    frames: u64,
    /// Add film-grain-like noise to the pictures (camera footage: LZ4 finds little to
    /// squeeze), instead of the clean generated test card.
    #[arg(long)]
    noise: bool,
    /// Where the tiers are made (removed afterwards).
    #[arg(long, default_value = "bench-media")]
    dir: PathBuf,
    /// Read passes (the median is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn add_noise(f: &mut Picture, seed: u64) {
    let mut s = seed | 1;
    for p in &mut f.planes {
        for v in p.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = v.saturating_add((s & 7) as u8).saturating_sub(4);
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let source = match &args.source {
        Some(s) => s.clone(),
        None => crate::scene::clip(&args.dir, "hd-10s", 1920, 1080, 10.0)?,
    };
    let registry = DecoderRegistry::new();
    let mut reader = VideoReader::open(&source, &registry)
        .with_context(|| format!("opening {}", source.display()))?;
    let n = args.frames.min(reader.frame_count());
    let mut frames = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut f = reader.frame(i)?;
        if args.noise {
            add_noise(&mut f, i + 1);
        }
        frames.push(f);
    }
    let raw: u64 = frames.iter().map(|f| f.size_bytes() as u64).sum();
    let gb = raw as f64 / 1e9;
    let mut rows = Vec::new();
    for compression in [Compression::None, Compression::Lz4] {
        let dir =
            tempfile::tempdir_in(std::fs::canonicalize(&args.dir).unwrap_or(args.dir.clone()))?;
        let mut options = DiskCacheOptions::new(dir.path(), raw * 2);
        options.compression = compression;
        let cache = DiskCache::open(options)?;
        let keys: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| decoded_key(0xbe_7c, i as u64, f.width, f.height))
            .collect();
        let start = Instant::now();
        for (k, f) in keys.iter().zip(&frames) {
            cache.put(*k, CacheKind::Decoded, f)?;
        }
        cache.flush()?;
        let write = gb / start.elapsed().as_secs_f64();
        let stored = cache.stats().tier.bytes as f64;
        let pool = BufferPool::new(usize::MAX);
        let mut copy = Vec::new();
        let mut view = Vec::new();
        let mut plain = Vec::new();
        let segments: Vec<PathBuf> = std::fs::read_dir(dir.path())?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "slots"))
            .collect();
        let seg_bytes: u64 = segments
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        for _ in 0..args.passes {
            // Through the tier, into pooled frames (what a worker does for playback).
            let t = Instant::now();
            for (i, k) in keys.iter().enumerate() {
                let f = cache
                    .get(*k)
                    .and_then(|v| v.to_frame(Some(&pool)))
                    .with_context(|| format!("frame {i} missing from the tier"))?;
                anyhow::ensure!(f.planes[0] == frames[i].planes[0], "frame {i} differs");
            }
            copy.push(gb / t.elapsed().as_secs_f64());
            // Zero-copy views (the checksum is the only pass over the bytes).
            let t = Instant::now();
            let mut sum = 0u64;
            for k in &keys {
                let v = cache.get(*k).context("missing")?;
                sum = sum.wrapping_add(u64::from(v.stored()[0]));
            }
            std::hint::black_box(sum);
            view.push(gb / t.elapsed().as_secs_f64());
            // A plain sequential read of the same files into one reused buffer.
            let t = Instant::now();
            let mut buf = vec![0u8; 8 << 20];
            for p in &segments {
                let mut f = std::fs::File::open(p)?;
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    std::hint::black_box(&buf[..n]);
                }
            }
            plain.push(seg_bytes as f64 / 1e9 / t.elapsed().as_secs_f64());
        }
        rows.push(serde_json::json!({
            "compression": format!("{compression:?}"),
            "frames": n,
            "raw_bytes": raw,
            "stored_bytes": stored,
            "ratio": raw as f64 / stored.max(1.0),
            "write_gb_s": write,
            "read_copy_gb_s": median(copy),
            "read_view_gb_s": median(view),
            "plain_read_gb_s": median(plain),
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "source": source, "noise": args.noise, "tiers": rows })
        );
    } else {
        println!(
            "source {} ({} frames, {:.1} MB raw{})",
            source.display(),
            n,
            raw as f64 / 1e6,
            if args.noise { ", with noise" } else { "" }
        );
        println!(
            "compression  ratio  write GB/s  read→frame GB/s  read view GB/s  plain read GB/s"
        );
        for r in &rows {
            println!(
                "{:<11} {:>6.2}  {:>10.2}  {:>15.2}  {:>14.2}  {:>15.2}",
                r["compression"].as_str().unwrap_or(""),
                r["ratio"].as_f64().unwrap_or(0.0),
                r["write_gb_s"].as_f64().unwrap_or(0.0),
                r["read_copy_gb_s"].as_f64().unwrap_or(0.0),
                r["read_view_gb_s"].as_f64().unwrap_or(0.0),
                r["plain_read_gb_s"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(())
}
