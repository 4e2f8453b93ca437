//! Distributed render on NATS JetStream (the `farm` feature): render nodes ([`RenderNode`])
//! and a coordinator ([`crate::Export::start_on_farm`]) that ships the export's
//! [`SegmentPlan`](super::SegmentPlan).
//!
//! ```text
//!  coordinator                        JetStream                         render nodes
//!  project snapshot (lz4) ──────► object store FRAMELOCK ◄───────────── fetch, check xxh3
//!  one message a segment  ──────► stream FRAMELOCK_WORK (work queue)
//!                                   durable pull consumer render-<build> ◄── fetch 1, no prefetch
//!                                                                          render + encode
//!                                                                          AckProgress heartbeats
//!  segments, in any order ◄─────── object store (postcard)  ◄──────────── put the segment
//!  mux in order (the export's own) ◄ stream FRAMELOCK_DONE  ◄──────────── "done" / "failed"
//!  list nodes, refuse other builds ◄ KV framelock_nodes (TTL) ◄─────────── heartbeat every 2 s
//! ```
//!
//! - **Load balancing**: one durable pull consumer for every node of a build; each node fetches
//!   one message at a time and only when idle, so the next segment goes to whoever is free.
//! - **Fault tolerance**: a node sends `AckProgress` while it renders; a killed or stalled
//!   node's segment is redelivered after `ack_wait`; `max_deliver` bounds the tries, and a
//!   segment that fails every time fails the job with the node's error. Results are keyed by
//!   the plan's hash and the segment index; the first one of each index is used and any
//!   later or duplicate one is dropped (a segment is the same bytes wherever it renders).
//! - **Same bytes as a local export**: nodes render through the very function local workers
//!   use, on the CPU path (GPUs differ in their last bits), with encoders of the same
//!   settings, and the coordinator muxes with the export's own muxer. Nodes of another build
//!   (which could encode differently) never see the work: the consumer and the subjects are
//!   per build, and the coordinator lists them as refused.
//! - **Media**: by shared path (a render farm mounts the same storage); the snapshot carries
//!   each media file's fingerprint (size and modification time), which a node checks before
//!   it renders, so a node that sees another file at the same path refuses the segment.
//!   Projects are small and go through the object store, lz4-compressed; media are large and
//!   already compressed, and copying them to every node per job would cost more than it saves.

mod coordinator;
mod node;
mod wire;

use std::time::Duration;

pub(super) use coordinator::{Order, spawn as spawn_coordinator};
pub use node::{NodeEvent, NodeOptions, NodeReport, RenderNode};

/// The build a node or coordinator is: only nodes of the coordinator's build render its
/// segments (another build may encode other bytes). `FRAMELOCK_FARM_BUILD` overrides it, so
/// tests can stand up a node of "another build".
pub fn build_id() -> String {
    std::env::var("FRAMELOCK_FARM_BUILD").unwrap_or_else(|_| {
        format!(
            "framelock {} ({})",
            env!("CARGO_PKG_VERSION"),
            if cfg!(feature = "ffmpeg") {
                "ffmpeg"
            } else {
                "default"
            }
        )
    })
}

/// Where and how an export is rendered on a farm.
#[derive(Clone, Debug)]
pub struct Farm {
    /// The NATS server (`nats://127.0.0.1:4222`).
    pub url: String,
    /// How long a node may hold a segment without a heartbeat before it is redelivered.
    pub ack_wait: Duration,
    /// Deliveries of a segment before the job fails.
    pub max_deliver: i64,
    /// How long to wait for a node of this build to announce itself.
    pub discovery: Duration,
    /// How long the server may be unreachable before the job fails.
    pub server_timeout: Duration,
}

impl Farm {
    /// The defaults: `ack_wait` 10 s, 3 deliveries, discovery 10 s, server timeout 30 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ack_wait: Duration::from_secs(10),
            max_deliver: 3,
            discovery: Duration::from_secs(10),
            server_timeout: Duration::from_secs(30),
        }
    }
}

/// A render node as it announces itself.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// Its id (unique on the farm).
    pub id: String,
    /// Host name.
    pub host: String,
    /// CPU cores.
    pub cores: usize,
    /// The GPU it has (it renders on the CPU path all the same, for identical bytes).
    pub gpu: Option<String>,
    /// Its build ([`build_id`]).
    pub build: String,
    /// Segments it has rendered since it started.
    pub segments: u64,
}

/// What a node did for one job, in [`FarmReport::nodes`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NodeShare {
    /// The node.
    pub node: NodeInfo,
    /// Segments of this job it delivered first (the ones used).
    pub segments: u64,
    /// Frames in them.
    pub frames: u64,
}

/// What the farm did for an export, in [`crate::ExportReport::farm`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FarmReport {
    /// The nodes of this build seen (announced or delivering), with their share.
    pub nodes: Vec<NodeShare>,
    /// Nodes of another build, refused.
    pub refused: Vec<NodeInfo>,
    /// Segments that were delivered more than once (a node died, stalled or failed).
    pub redeliveries: u64,
    /// Failed tries reported by nodes (each one retried while deliveries were left).
    pub failed_tries: u64,
    /// Results that came after the first one for their segment (dropped).
    pub duplicates: u64,
    /// The project snapshot as JSON, bytes.
    pub snapshot_bytes: u64,
    /// The snapshot as stored (lz4), bytes.
    pub snapshot_stored: u64,
    /// Bytes of all segment results, as shipped.
    pub result_bytes: u64,
    /// The same before lz4 (nodes compress a result when that saves a tenth or more).
    pub result_raw_bytes: u64,
    /// Bytes of work, done and failed messages.
    pub message_bytes: u64,
    /// Per segment: milliseconds spent shipping it (the node's serialise + upload + publish,
    /// and the coordinator's download + decode), mean.
    pub overhead_ms_per_segment: f64,
    /// Per segment: the coordinator's part of that (download + decode), mean: with the mux,
    /// the serial work that bounds how many nodes help.
    pub download_ms_per_segment: f64,
}

/// Why a farm operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FarmError {
    /// The server could not be reached or went away.
    #[error("NATS at {url}: {message}")]
    Server {
        /// The server.
        url: String,
        /// What happened.
        message: String,
    },
    /// A JetStream request failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// No node of this build is there.
    #[error("no render node of build {build:?} on {url} after {waited:.0?}{refused}")]
    NoNodes {
        /// The server.
        url: String,
        /// The coordinator's build.
        build: String,
        /// How long it waited.
        waited: Duration,
        /// The nodes of other builds, as text.
        refused: String,
    },
    /// A segment failed on every delivery.
    #[error("segment {index} failed {tries} times; last error (node {node}): {error}")]
    Segment {
        /// The segment.
        index: usize,
        /// Deliveries.
        tries: u64,
        /// The node that reported last.
        node: String,
        /// Its error.
        error: String,
    },
    /// Something a node or the coordinator received could not be used.
    #[error("farm: {0}")]
    Protocol(String),
}

impl FarmError {
    fn js(e: impl std::fmt::Display) -> Self {
        Self::JetStream(e.to_string())
    }
}
