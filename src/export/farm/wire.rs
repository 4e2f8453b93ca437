//! What goes over NATS: the names of the streams, buckets and subjects, the messages (JSON:
//! small, and readable with the `nats` CLI), the project snapshot (JSON, lz4) and the segment
//! results (postcard: the encoded pictures are binary, and JSON would inflate them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use framelock_components::Project;
use xxhash_rust::xxh3::xxh3_64;

use super::super::video::Encoded;
use super::super::{Segment, SegmentPlan, VideoCodec};
use super::FarmError;

/// The work-queue stream: one message per segment, removed when acknowledged.
pub(super) const WORK_STREAM: &str = "FRAMELOCK_WORK";
/// The stream of results (done / failed), kept an hour.
pub(super) const DONE_STREAM: &str = "FRAMELOCK_DONE";
/// Snapshots and segment results.
pub(super) const OBJECTS: &str = "FRAMELOCK";
/// Node heartbeats (a key per node; entries expire).
pub(super) const NODES: &str = "framelock_nodes";
/// How long a node's announcement lives without a heartbeat.
pub(super) const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node announces itself.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);

/// A subject token for a build (build ids hold dots and spaces).
pub(super) fn build_token(build: &str) -> String {
    format!("b{:016x}", xxh3_64(build.as_bytes()))
}

/// The subject a build's work is published on (one job: add `.JOB`).
pub(super) fn work_subject(build: &str, job: &str) -> String {
    format!("framelock.work.{}.{job}", build_token(build))
}

/// The durable consumer all nodes of a build share.
pub(super) fn consumer_name(build: &str) -> String {
    format!("render-{}", build_token(build))
}

/// A job's results.
pub(super) fn done_subject(job: &str) -> String {
    format!("framelock.done.{job}")
}

/// One segment of a job, as queued.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct WorkItem {
    pub(super) job: String,
    pub(super) build: String,
    /// xxh3 of the snapshot, the plan and the settings: results are keyed by it.
    pub(super) plan_hash: String,
    /// The snapshot's object name, and its xxh3 (of the JSON, before compression).
    pub(super) snapshot: String,
    pub(super) snapshot_hash: String,
    pub(super) codec: VideoCodec,
    pub(super) quality: u8,
    pub(super) segment: Segment,
    /// The consumer's settings for this job: heartbeats go at a third of `ack_wait`, and
    /// delivery `max_deliver` is the last.
    pub(super) ack_wait_ms: u64,
    pub(super) max_deliver: i64,
}

/// What a node says of a segment.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Outcome {
    pub(super) plan_hash: String,
    pub(super) index: usize,
    pub(super) node: super::NodeInfo,
    /// Which delivery of the segment this was (1: the first).
    pub(super) delivered: u64,
    pub(super) result: Result<Done, Failed>,
}

/// A segment rendered: its result object.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Done {
    pub(super) object: String,
    pub(super) frames: u64,
    /// As stored, and before lz4 (equal when it is not compressed).
    pub(super) bytes: u64,
    pub(super) raw_bytes: u64,
    /// The object is lz4 (size-prepended) of the postcard bytes.
    pub(super) lz4: bool,
    pub(super) render_seconds: f64,
    pub(super) encode_seconds: f64,
    /// Decode thread time (absent from nodes before it was reported).
    #[serde(default)]
    pub(super) decode_seconds: f64,
    /// Frames taken from the node's disk tier (absent from older nodes).
    #[serde(default)]
    pub(super) reused_frames: u64,
    /// Serialise + upload + publish.
    pub(super) ship_seconds: f64,
}

/// A try that failed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Failed {
    pub(super) error: String,
    /// No delivery is left: the job fails.
    pub(super) last: bool,
}

/// The project as nodes get it: media paths made absolute, each with its fingerprint.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Snapshot {
    pub(super) project: Project,
    /// Media path → fingerprint (size and modification time) on the coordinator.
    pub(super) media: BTreeMap<PathBuf, u64>,
}

impl Snapshot {
    /// The project with absolute media paths and their fingerprints (a file the coordinator
    /// cannot read is left out: the node's own open reports it).
    pub(super) fn of(project: &Project) -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        let mut project = project.clone();
        let mut media = BTreeMap::new();
        let mut note = |p: &Path| {
            if let Ok(f) = framelock_engine::cache::fingerprint(p) {
                media.insert(p.to_path_buf(), f);
            }
        };
        for clip in project.tracks.iter_mut().flat_map(|t| t.clips.iter_mut()) {
            abs(&mut clip.media);
            note(&clip.media);
        }
        for clip in project
            .audio_tracks
            .iter_mut()
            .flat_map(|t| t.clips.iter_mut())
        {
            abs(&mut clip.media);
            note(&clip.media);
        }
        Self { project, media }
    }

    /// Checks that this node sees the coordinator's files.
    pub(super) fn check_media(&self) -> Result<(), String> {
        for (path, want) in &self.media {
            match framelock_engine::cache::fingerprint(path) {
                Ok(got) if got == *want => {}
                Ok(_) => {
                    return Err(format!(
                        "{} differs on this node from the coordinator's (size or time)",
                        path.display()
                    ));
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(())
    }
}

/// The hash results are keyed by.
pub(super) fn plan_hash(
    snapshot_hash: &str,
    plan: &SegmentPlan,
    codec: VideoCodec,
    quality: u8,
    build: &str,
) -> String {
    let key = format!(
        "{snapshot_hash}|{}|{codec:?}|{quality}|{build}",
        serde_json::to_string(plan).unwrap_or_default()
    );
    format!("{:016x}", xxh3_64(key.as_bytes()))
}

/// A segment's result as shipped.
pub(super) fn encode_result(encoded: &Encoded) -> Result<Vec<u8>, FarmError> {
    postcard::to_allocvec(encoded)
        .map_err(|e| FarmError::Protocol(format!("encoding a segment: {e}")))
}

/// A shipped result read back.
pub(super) fn decode_result(bytes: &[u8], lz4: bool) -> Result<Encoded, FarmError> {
    let raw;
    let bytes = if lz4 {
        raw = lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| FarmError::Protocol(format!("a segment result: {e}")))?;
        &raw[..]
    } else {
        bytes
    };
    postcard::from_bytes(bytes).map_err(|e| FarmError::Protocol(format!("a segment result: {e}")))
}

/// A JSON message read back.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, FarmError> {
    serde_json::from_slice(bytes).map_err(|e| FarmError::Protocol(format!("{what}: {e}")))
}

/// A JSON message.
pub(super) fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Connects to `url` as `name`, waiting at most `timeout` for the server.
pub(super) async fn connect(
    url: &str,
    name: String,
    timeout: Duration,
) -> Result<async_nats::Client, FarmError> {
    let server = |message: String| FarmError::Server {
        url: url.to_string(),
        message,
    };
    tokio::time::timeout(
        timeout,
        async_nats::ConnectOptions::new().name(name).connect(url),
    )
    .await
    .map_err(|_| server(format!("no answer in {timeout:.0?}")))?
    .map_err(|e| server(e.to_string()))
}

/// The hash that names content (the snapshot's JSON): xxh3, hex.
pub(super) fn content_hash(bytes: &[u8]) -> String {
    format!("{:016x}", xxh3_64(bytes))
}

/// Creates (or opens) the streams, the object store and the node bucket. Every party calls
/// it, so whoever comes first sets the farm up. Only 2.9-level features are used (Debian's
/// nats-server).
pub(super) async fn ensure(
    js: &jetstream::Context,
) -> Result<(jetstream::object_store::ObjectStore, jetstream::kv::Store), FarmError> {
    use jetstream::stream::{Config, RetentionPolicy, StorageType};
    js.get_or_create_stream(Config {
        name: WORK_STREAM.into(),
        subjects: vec!["framelock.work.>".into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| FarmError::JetStream(format!("creating stream FRAMELOCK_WORK: {e}")))?;
    js.get_or_create_stream(Config {
        name: DONE_STREAM.into(),
        subjects: vec!["framelock.done.>".into()],
        storage: StorageType::File,
        max_age: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .map_err(|e| FarmError::JetStream(format!("creating stream FRAMELOCK_DONE: {e}")))?;
    let objects = match js.get_object_store(OBJECTS).await {
        Ok(o) => o,
        Err(_) => js
            .create_object_store(jetstream::object_store::Config {
                bucket: OBJECTS.into(),
                storage: StorageType::File,
                max_age: Duration::from_secs(24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| FarmError::JetStream(format!("creating object store FRAMELOCK: {e}")))?,
    };
    // The node bucket's stream, made as `create_key_value` would make it: that call first
    // asks for the account's info, and async-nats 0.51 cannot read a 2.9 server's answer (no
    // `reserved_memory`), though it uses nothing of it for a 2.9-level bucket.
    js.get_or_create_stream(Config {
        name: format!("KV_{NODES}"),
        subjects: vec![format!("$KV.{NODES}.>")],
        max_messages_per_subject: 1,
        max_age: NODE_TTL,
        storage: StorageType::Memory,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| FarmError::JetStream(format!("creating KV {NODES}: {e}")))?;
    let nodes = js
        .get_key_value(NODES)
        .await
        .map_err(|e| FarmError::JetStream(format!("opening KV {NODES}: {e}")))?;
    Ok((objects, nodes))
}

/// The durable pull consumer of a build's work. Nodes open it (creating it with the
/// defaults if it is not there); a coordinator (`settle`) sets its `ack_wait` and
/// `max_deliver` to the job's, which the work messages also carry.
pub(super) async fn work_consumer(
    js: &jetstream::Context,
    build: &str,
    settle: Option<(Duration, i64)>,
) -> Result<jetstream::consumer::PullConsumer, FarmError> {
    let stream = js.get_stream(WORK_STREAM).await.map_err(FarmError::js)?;
    let name = consumer_name(build);
    let defaults = super::Farm::new("");
    let (ack_wait, max_deliver) = settle.unwrap_or((defaults.ack_wait, defaults.max_deliver));
    let config = jetstream::consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: format!("framelock.work.{}.>", build_token(build)),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver,
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&name, config.clone())
        .await
        .map_err(|e| FarmError::JetStream(format!("consumer {name}: {e}")))?;
    let current = &consumer.cached_info().config;
    if settle.is_some() && (current.ack_wait != ack_wait || current.max_deliver != max_deliver) {
        // A 2.9 server updates a durable's editable fields on create (`update_consumer`
        // needs 2.10's API).
        return stream
            .create_consumer(config)
            .await
            .map_err(|e| FarmError::JetStream(format!("updating consumer {name}: {e}")));
    }
    Ok(consumer)
}

/// Reads a whole object.
pub(super) async fn get_object(
    store: &jetstream::object_store::ObjectStore,
    name: &str,
) -> Result<Vec<u8>, FarmError> {
    use tokio::io::AsyncReadExt;
    let mut object = store.get(name).await.map_err(FarmError::js)?;
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| FarmError::JetStream(format!("reading {name}: {e}")))?;
    Ok(bytes)
}

/// Why a node could not use a job's snapshot.
pub(super) enum Fetch {
    /// The snapshot is not there: the job ended (or was never whole).
    Gone,
    /// It is there but unusable, or this node cannot see the media.
    Bad(String),
}

/// Fetches, checks (xxh3 of the JSON) and reads a job's snapshot, and checks the media.
pub(super) async fn fetch_snapshot(
    objects: &jetstream::object_store::ObjectStore,
    item: &WorkItem,
) -> Result<Arc<Snapshot>, Fetch> {
    let stored = get_object(objects, &item.snapshot)
        .await
        .map_err(|_| Fetch::Gone)?;
    let json = lz4_flex::decompress_size_prepended(&stored)
        .map_err(|e| Fetch::Bad(format!("the project snapshot: {e}")))?;
    if content_hash(&json) != item.snapshot_hash {
        return Err(Fetch::Bad(
            "the project snapshot's hash does not match".into(),
        ));
    }
    let snapshot: Snapshot =
        parse("the project snapshot", &json).map_err(|e| Fetch::Bad(e.to_string()))?;
    snapshot.check_media().map_err(Fetch::Bad)?;
    Ok(Arc::new(snapshot))
}
