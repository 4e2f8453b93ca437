//! `framelock render`: exports a project (or a range of it) to an H.264 or AV1 MP4 with its audio,
//! segment-parallel, with a progress bar; `--json` prints the report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use framelock::{
    AudioCodec, EngineOptions, Export, ExportAudio, ExportRequest, Project, VideoCodec,
};

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
    /// Video codec: h264 (openh264) or av1 (rav1e).
    #[arg(long, default_value = "h264")]
    codec: String,
    /// AV1: rav1e's speed preset, 0 (slowest, smallest) to 10 (fastest).
    #[arg(long, default_value_t = 6)]
    speed: u8,
    /// 0 (smallest) to 100 (best): H.264 QP 45 down to 12.
    #[arg(long, default_value_t = 70)]
    quality: u8,
    /// Audio: aac (builds with the `ffmpeg` feature), opus, pcm (16-bit, needs a .mov
    /// output) or none; default: aac where available, else opus, and no track when the
    /// timeline is silent.
    #[arg(long)]
    audio: Option<String>,
    /// Audio bits per second for aac and opus (default 192000 aac, 160000 opus).
    #[arg(long)]
    audio_bitrate: Option<u32>,
    /// Frames per segment (one closed GOP each; default two seconds).
    #[arg(long, default_value_t = 0)]
    segment_frames: u64,
    /// Segments rendered and encoded at once (default: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Run the effects on the CPU path even when there is a GPU.
    #[arg(long)]
    cpu_effects: bool,
    /// Memory budget in MiB for the whole export (divided among the workers; default 1024).
    #[arg(long, value_name = "MIB")]
    budget: Option<usize>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Render the segments on the render nodes (`framelock worker`) of this NATS server
    /// (`nats://host:4222`); audio and muxing stay here.
    #[arg(long)]
    nats: Option<String>,
    /// Farm: seconds a node may hold a segment without a heartbeat before it is redelivered.
    #[arg(long, default_value_t = 10.0)]
    ack_wait: f64,
    /// Farm: deliveries of a segment before the job fails.
    #[arg(long, default_value_t = 3)]
    max_deliver: i64,
    /// Farm: seconds to wait for a render node of this build.
    #[arg(long, default_value_t = 10.0)]
    discovery: f64,
    /// Farm: seconds the server may be unreachable before the job fails.
    #[arg(long, default_value_t = 30.0)]
    server_timeout: f64,
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{name} {s}: seconds, 0 or more"))
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
        "av1" if args.speed <= 10 => VideoCodec::Av1 { speed: args.speed },
        "av1" => bail!("--speed {}: 0 to 10", args.speed),
        other => bail!("--codec {other:?}: h264 or av1"),
    };
    if args.quality > 100 {
        bail!("--quality {}: 0 to 100", args.quality);
    }
    let audio = match (args.audio.as_deref(), args.audio_bitrate) {
        (None, None) => ExportAudio::Auto,
        (Some("none"), _) => ExportAudio::None,
        (Some("pcm"), _) => ExportAudio::Codec(AudioCodec::Pcm16),
        (Some("opus"), b) => ExportAudio::Codec(AudioCodec::Opus {
            bitrate: b.unwrap_or(160_000),
        }),
        (Some("aac"), b) => ExportAudio::Codec(AudioCodec::Aac {
            bitrate: b.unwrap_or(192_000),
        }),
        (None, Some(b)) if AudioCodec::AAC.available() => {
            ExportAudio::Codec(AudioCodec::Aac { bitrate: b })
        }
        (None, Some(b)) => ExportAudio::Codec(AudioCodec::Opus { bitrate: b }),
        (Some(other), _) => bail!("--audio {other:?}: aac, opus, pcm or none"),
    };
    let mut request = ExportRequest::new(&args.output);
    request.audio = audio;
    request.range = args.range.as_deref().map(parse_range).transpose()?;
    request.codec = codec;
    request.quality = args.quality;
    request.segment_frames = args.segment_frames;
    request.workers = args.workers;
    let defaults = EngineOptions::default();
    request.engine = EngineOptions {
        gpu: (!args.cpu_effects).then(Default::default),
        memory: framelock::MemoryBudget {
            max_memory: args
                .budget
                .map_or(defaults.memory.max_memory, |mib| mib << 20),
            ..defaults.memory
        },
        ..defaults
    };
    let export = match &args.nats {
        None => Export::start(&project, request)?,
        Some(url) => {
            let mut farm = framelock::farm::Farm::new(url);
            farm.ack_wait = seconds("ack-wait", args.ack_wait)?;
            farm.max_deliver = args.max_deliver;
            farm.discovery = seconds("discovery", args.discovery)?;
            farm.server_timeout = seconds("server-timeout", args.server_timeout)?;
            Export::start_on_farm(&project, request, farm)?
        }
    };
    let bar = crate::progress_bar(export.progress().frames_total, "render");
    while !export.wait_timeout(Duration::from_millis(100)) {
        bar.set_position(export.progress().frames_encoded);
        if let Some(farm) = export.farm_progress() {
            // Per node: segments delivered.
            let nodes: Vec<String> = farm
                .nodes
                .iter()
                .map(|n| format!("{} {}", n.node.id, n.segments))
                .collect();
            bar.set_message(nodes.join(" · "));
        }
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
            "decode_seconds": report.decode_seconds,
            "reused_frames": report.reused_frames,
            "render_seconds": report.render_seconds,
            "encode_seconds": report.encode_seconds,
            "mux_seconds": report.mux_seconds,
            "audio": report.audio.map(|a| a.to_string()),
            "audio_samples": report.audio_samples,
            "audio_seconds": report.audio_seconds,
            "farm": report.farm,
        });
        println!("{v}");
    } else {
        println!(
            "{}: {} frames in {:.1} s ({:.1} fps), {} segments on {} workers, {:.1} MB, audio {}; decode {:.1} s, render {:.1} s, encode {:.1} s, mux {:.2} s (summed over workers)",
            report.path.display(),
            report.frames,
            report.seconds,
            report.fps,
            report.segments,
            report.workers,
            report.bytes as f64 / 1e6,
            report
                .audio
                .map_or_else(|| "none".to_string(), |a| a.to_string()),
            report.decode_seconds,
            report.render_seconds,
            report.encode_seconds,
            report.mux_seconds
        );
        if let Some(farm) = &report.farm {
            for n in &farm.nodes {
                println!(
                    "  node {} ({}, {} cores, {}): {} segments, {} frames",
                    n.node.id,
                    n.node.host,
                    n.node.cores,
                    n.node.gpu.as_deref().unwrap_or("no GPU"),
                    n.segments,
                    n.frames
                );
            }
            for n in &farm.refused {
                println!("  refused {}: build {:?}", n.id, n.build);
            }
            println!(
                "  redeliveries {}, failed tries {}, duplicates {}; snapshot {} B as {} B (lz4); results {:.2} MB ({:.2} MB before lz4), messages {} B; shipping {:.1} ms per segment",
                farm.redeliveries,
                farm.failed_tries,
                farm.duplicates,
                farm.snapshot_bytes,
                farm.snapshot_stored,
                farm.result_bytes as f64 / 1e6,
                farm.result_raw_bytes as f64 / 1e6,
                farm.message_bytes,
                farm.overhead_ms_per_segment
            );
        }
    }
    Ok(())
}
