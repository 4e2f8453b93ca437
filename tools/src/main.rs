//! `framelock`: the command line. `gen-media` writes test clips, `probe` describes a file,
//! `decode-bench` measures decode throughput, `bench` plays a scene, `monitor` shows a live
//! dashboard, `proxy` makes proxies, `render` exports (here or on a NATS farm), `worker` is a
//! farm node, `cache-bench` measures the disk tier.
#![recursion_limit = "256"]
#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

mod background_bench;
mod bench;
mod cache_bench;
mod export_bench;
mod gen_media;
mod monitor;
mod probe_cmd;
mod proxy_cmd;
mod render_cmd;
mod report;
mod scene;
mod worker_cmd;

use clap::{Parser, Subcommand};

/// framelock: the real-time playback core of a video editor, on the command line. Makes test
/// media, probes and decodes files, plays benchmark scenes and projects (with a live
/// dashboard), makes proxies, and exports projects here or on a NATS render farm.
#[derive(Parser, Debug)]
#[command(name = "framelock", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Writes an H.264 MP4 whose pictures carry their own frame index.
    GenMedia(gen_media::Args),
    /// Describes a media file without decoding it.
    Probe(probe_cmd::Args),
    /// Decodes a whole file and reports frames/s and per-frame latency.
    DecodeBench(bench::Args),
    /// Makes proxies (smaller H.264 copies) of media files, with progress bars.
    Proxy(proxy_cmd::Args),
    /// Plays a benchmark scene end to end on the wall clock and reports how it went.
    Bench(scene::Args),
    /// Measures the disk tier of the frame cache against a plain read of the same files.
    CacheBench(cache_bench::Args),
    /// Exports a project (or a range of it) to an H.264 or AV1 MP4, segment-parallel, here
    /// or on a NATS render farm (`--nats`).
    Render(render_cmd::Args),
    /// A render node of a NATS render farm: renders export segments until stopped.
    Worker(worker_cmd::Args),
    /// Plays a project with a live terminal dashboard (FPS, RAM, cache, timeline, suggestions).
    Monitor(monitor::Args),
}

/// The CLI's logger: records at `FRAMELOCK_LOG` (`error`, `warn`, `info`, `debug`, `trace`;
/// default `error`) or above, one line each on stderr. The codecs' chatter (openh264's
/// warnings) goes through it, so progress bars stay whole unless asked for more.
struct StderrLog(log::LevelFilter);

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_log() {
    let level = std::env::var("FRAMELOCK_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Error);
    let logger = Box::leak(Box::new(StderrLog(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

fn main() -> anyhow::Result<()> {
    init_log();
    let cli = Cli::parse();
    match cli.command {
        Command::GenMedia(args) => gen_media::run(&args),
        Command::Probe(args) => probe_cmd::run(&args),
        Command::DecodeBench(args) => bench::run(&args),
        Command::Bench(args) => scene::run(&args),
        Command::CacheBench(args) => cache_bench::run(&args),
        Command::Monitor(args) => monitor::run(&args),
        Command::Proxy(args) => proxy_cmd::run(&args),
        Command::Render(args) => render_cmd::run(&args),
        Command::Worker(args) => worker_cmd::run(&args),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(crate) fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
