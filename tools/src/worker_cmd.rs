//! `framelock worker --nats URL`: a render node of a NATS JetStream render farm. It renders
//! export segments queued by `framelock render --nats URL` until it is stopped (Ctrl-C or
//! SIGTERM end it; the segment it was on is redelivered to another node).

use std::time::Duration;

use anyhow::Context;
use framelock::farm::{NodeEvent, NodeOptions, RenderNode};

/// Arguments of `framelock worker`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The NATS server (`nats://host:4222`).
    #[arg(long)]
    nats: String,
    /// The node's id (default: host name and process id).
    #[arg(long)]
    id: Option<String>,
    /// Segments rendered at once, each with its own renderer and encoder (default: one per
    /// core).
    #[arg(long, default_value_t = 0)]
    slots: usize,
    /// Milliseconds to pause after each frame: stands in for a slow node (tests, demos).
    #[arg(long, default_value_t = 0)]
    frame_delay_ms: u64,
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut options = NodeOptions::new(&args.nats);
    options.id = args.id.clone();
    options.frame_delay = Duration::from_millis(args.frame_delay_ms);
    options.stop_on_signals = true;
    options.slots = args.slots;
    let node = RenderNode::new(options);
    let id = node.info().id.clone();
    let report = node
        .run(|event| match event {
            NodeEvent::Ready(info) => eprintln!(
                "node {id}: ready on {} ({} cores, GPU {}, build {:?})",
                args.nats,
                info.cores,
                info.gpu.as_deref().unwrap_or("none"),
                info.build
            ),
            NodeEvent::Started {
                job,
                index,
                delivered,
            } => eprintln!("node {id}: job {job} segment {index} started (delivery {delivered})"),
            NodeEvent::Done {
                job,
                index,
                frames,
                seconds,
            } => eprintln!(
                "node {id}: job {job} segment {index} done ({frames} frames, {seconds:.2} s)"
            ),
            NodeEvent::Failed {
                job,
                index,
                error,
                last,
            } => eprintln!(
                "node {id}: job {job} segment {index} failed{}: {error}",
                if last { " (last delivery)" } else { "" }
            ),
            NodeEvent::Skipped { reason } => eprintln!("node {id}: skipped a message: {reason}"),
            NodeEvent::Waiting(why) => eprintln!("node {id}: waiting: {why}"),
            _ => {}
        })
        .with_context(|| format!("render node on {}", args.nats))?;
    eprintln!(
        "node {id}: stopped after {} segments ({} frames), {} failed tries",
        report.segments, report.frames, report.failed
    );
    Ok(())
}
