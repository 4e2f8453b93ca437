//! The coordinator: queues an export's segments on the farm and feeds the results to the
//! export's own mux loop (as a local worker would), in whatever order they come.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use futures_util::{FutureExt, StreamExt};
use xxhash_rust::xxh3::xxh3_64;

use super::super::job::{Msg, SegmentDone, Shared};
use super::super::{ExportError, SegmentPlan, VideoCodec};
use super::wire::{
    self, DONE_STREAM, Outcome, Snapshot, WORK_STREAM, WorkItem, consumer_name, decode_result,
    done_subject, work_subject,
};
use super::{Farm, FarmError, FarmReport, NodeInfo, NodeShare, build_id};
use framelock_components::Project;

/// What the coordinator needs of the export.
pub(in crate::export) struct Order {
    pub(in crate::export) project: Project,
    pub(in crate::export) plan: SegmentPlan,
    pub(in crate::export) codec: VideoCodec,
    pub(in crate::export) quality: u8,
    pub(in crate::export) farm: Farm,
}

/// Starts the coordinator on a thread of its own; it sends [`Msg::Segment`]s on `tx` (an
/// error fails the export) and keeps [`Shared::farm`] up to date.
pub(in crate::export) fn spawn(
    order: Order,
    tx: crossbeam_channel::Sender<Msg>,
    shared: Arc<Shared>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("framelock-farm".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt.block_on(run(&order, &tx, &shared)),
                Err(e) => Err(FarmError::Protocol(format!("tokio: {e}"))),
            };
            if let Err(e) = result {
                let _ = tx.send(Msg::Segment(Err(ExportError::Farm(e))));
            }
        })
}

async fn run(
    order: &Order,
    tx: &crossbeam_channel::Sender<Msg>,
    shared: &Shared,
) -> Result<(), FarmError> {
    let farm = &order.farm;
    let client = wire::connect(
        &farm.url,
        "framelock coordinator".into(),
        farm.discovery.max(Duration::from_secs(2)),
    )
    .await?;
    let js = jetstream::new(client.clone());
    let (objects, nodes) = wire::ensure(&js).await?;
    let build = build_id();
    wire::work_consumer(&js, &build, Some((farm.ack_wait, farm.max_deliver))).await?;

    // Discovery: wait for a node of this build; list the others as refused.
    let started = Instant::now();
    let (mut seen, refused) = loop {
        let (ours, others) = list_nodes(&nodes, &build).await;
        if !ours.is_empty() || started.elapsed() >= farm.discovery {
            break (ours, others);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if seen.is_empty() {
        let refused = refused
            .iter()
            .map(|n| format!("{} (build {:?})", n.id, n.build))
            .collect::<Vec<_>>();
        return Err(FarmError::NoNodes {
            url: farm.url.clone(),
            build,
            waited: started.elapsed(),
            refused: if refused.is_empty() {
                String::new()
            } else {
                format!("; refused: {}", refused.join(", "))
            },
        });
    }

    // The snapshot, then one message per segment.
    let snapshot = wire::json(&Snapshot::of(&order.project));
    let snapshot_hash = wire::content_hash(&snapshot);
    let stored = lz4_flex::compress_prepend_size(&snapshot);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let plan_hash = wire::plan_hash(
        &snapshot_hash,
        &order.plan,
        order.codec,
        order.quality,
        &build,
    );
    let job = format!(
        "j{:016x}",
        xxh3_64(format!("{plan_hash}|{nanos}|{}", std::process::id()).as_bytes())
    );
    let snapshot_name = format!("snap.{job}");
    objects
        .put(snapshot_name.as_str(), &mut stored.as_slice())
        .await
        .map_err(FarmError::js)?;
    let mut report = FarmReport {
        refused,
        snapshot_bytes: snapshot.len() as u64,
        snapshot_stored: stored.len() as u64,
        ..FarmReport::default()
    };
    let done_stream = js.get_stream(DONE_STREAM).await.map_err(FarmError::js)?;
    let results = done_stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(job.clone()),
            filter_subject: done_subject(&job),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            inactive_threshold: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .map_err(FarmError::js)?;
    let mut advisories = client
        .subscribe(format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{WORK_STREAM}.{}",
            consumer_name(&build)
        ))
        .await
        .map_err(|e| FarmError::Server {
            url: farm.url.clone(),
            message: e.to_string(),
        })?;
    let mut by_sequence = HashMap::new();
    for segment in &order.plan.segments {
        let item = WorkItem {
            job: job.clone(),
            build: build.clone(),
            plan_hash: plan_hash.clone(),
            snapshot: snapshot_name.clone(),
            snapshot_hash: snapshot_hash.clone(),
            codec: order.codec,
            quality: order.quality,
            segment: *segment,
            ack_wait_ms: farm.ack_wait.as_millis() as u64,
            max_deliver: farm.max_deliver,
        };
        let payload = wire::json(&item);
        report.message_bytes += payload.len() as u64;
        let ack = js
            .publish(work_subject(&build, &job), payload.into())
            .await
            .map_err(FarmError::js)?
            .await
            .map_err(FarmError::js)?;
        by_sequence.insert(ack.sequence, segment.index);
    }

    let result = collect(
        order,
        &Collect {
            objects: &objects,
            results: &results,
            plan_hash: &plan_hash,
            tx,
            shared,
        },
        &mut report,
        &mut seen,
        &mut advisories,
        &by_sequence,
    )
    .await;
    // Whatever happened: no node renders this job any more, and nothing of it is kept.
    if let Ok(work) = js.get_stream(WORK_STREAM).await {
        let _ = work.purge().filter(work_subject(&build, &job)).await;
    }
    let _ = done_stream.delete_consumer(&job).await;
    let _ = objects.delete(&snapshot_name).await;
    result
}

struct Collect<'a> {
    objects: &'a jetstream::object_store::ObjectStore,
    results: &'a jetstream::consumer::PullConsumer,
    plan_hash: &'a str,
    tx: &'a crossbeam_channel::Sender<Msg>,
    shared: &'a Shared,
}

/// Reads outcomes until every segment is in (or the job fails, or is cancelled).
async fn collect(
    order: &Order,
    c: &Collect<'_>,
    report: &mut FarmReport,
    seen: &mut Vec<NodeInfo>,
    advisories: &mut async_nats::Subscriber,
    by_sequence: &HashMap<u64, usize>,
) -> Result<(), FarmError> {
    let farm = &order.farm;
    let total = order.plan.segments.len();
    let mut have = vec![false; total];
    let mut received = 0;
    let mut shares: BTreeMap<String, NodeShare> = seen
        .drain(..)
        .map(|n| {
            (
                n.id.clone(),
                NodeShare {
                    node: n,
                    ..NodeShare::default()
                },
            )
        })
        .collect();
    let mut last_error: HashMap<usize, (String, String, u64)> = HashMap::new();
    let mut overhead = 0.0;
    let mut download = 0.0;
    let mut last_contact = Instant::now();
    while received < total {
        if c.shared.stopped() {
            return Ok(());
        }
        // Segments the server gave up on (a node died on the last delivery, say).
        while let Some(Some(msg)) = advisories.next().now_or_never() {
            #[derive(serde::Deserialize)]
            struct MaxDeliveries {
                stream_seq: u64,
                deliveries: u64,
            }
            if let Ok(a) = wire::parse::<MaxDeliveries>("an advisory", &msg.payload)
                && let Some(&index) = by_sequence.get(&a.stream_seq)
                && !have[index]
            {
                let (node, error, _) = last_error.remove(&index).unwrap_or_else(|| {
                    (
                        "?".into(),
                        "no node finished it (killed or stalled on every delivery)".into(),
                        0,
                    )
                });
                return Err(FarmError::Segment {
                    index,
                    tries: a.deliveries,
                    node,
                    error,
                });
            }
        }
        let batch = c
            .results
            .fetch()
            .max_messages(16)
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => {
                last_contact = Instant::now();
                b
            }
            Err(e) => {
                if last_contact.elapsed() > farm.server_timeout {
                    return Err(FarmError::Server {
                        url: farm.url.clone(),
                        message: format!(
                            "lost for {:.0?} ({e}); the job is abandoned and nothing was written",
                            last_contact.elapsed()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        while let Some(Ok(msg)) = batch.next().await {
            let _ = msg.ack().await;
            report.message_bytes += msg.payload.len() as u64;
            let Ok(outcome) = wire::parse::<Outcome>("an outcome", &msg.payload) else {
                continue;
            };
            if outcome.plan_hash != c.plan_hash || outcome.index >= total {
                continue;
            }
            let index = outcome.index;
            match outcome.result {
                Err(failed) => {
                    report.failed_tries += 1;
                    if failed.last && !have[index] {
                        return Err(FarmError::Segment {
                            index,
                            tries: outcome.delivered,
                            node: outcome.node.id,
                            error: failed.error,
                        });
                    }
                    last_error.insert(index, (outcome.node.id, failed.error, outcome.delivered));
                }
                Ok(done) if have[index] => {
                    report.duplicates += 1;
                    let _ = c.objects.delete(&done.object).await;
                }
                Ok(done) => {
                    let t = Instant::now();
                    let bytes = wire::get_object(c.objects, &done.object).await?;
                    let encoded = decode_result(&bytes, done.lz4)?;
                    let segment = order.plan.segments[index];
                    if encoded.frames() != segment.frames() || done.frames != segment.frames() {
                        return Err(FarmError::Protocol(format!(
                            "segment {index} from {}: {} frames, the plan has {}",
                            outcome.node.id,
                            encoded.frames(),
                            segment.frames()
                        )));
                    }
                    let _ = c.objects.delete(&done.object).await;
                    let fetched = t.elapsed().as_secs_f64();
                    overhead += done.ship_seconds + fetched;
                    download += fetched;
                    report.result_bytes += bytes.len() as u64;
                    report.result_raw_bytes += done.raw_bytes;
                    report.redeliveries += u64::from(outcome.delivered > 1);
                    have[index] = true;
                    received += 1;
                    let share =
                        shares
                            .entry(outcome.node.id.clone())
                            .or_insert_with(|| NodeShare {
                                node: outcome.node.clone(),
                                ..NodeShare::default()
                            });
                    share.segments += 1;
                    share.frames += segment.frames();
                    c.shared.lock().frames_encoded += segment.frames();
                    let sent = c.tx.send(Msg::Segment(Ok(SegmentDone {
                        index,
                        encoded,
                        render_seconds: done.render_seconds,
                        encode_seconds: done.encode_seconds,
                        decode_seconds: done.decode_seconds,
                        reused_frames: done.reused_frames,
                    })));
                    if sent.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        report.nodes = shares.values().cloned().collect();
        report.overhead_ms_per_segment = overhead * 1000.0 / received.max(1) as f64;
        report.download_ms_per_segment = download * 1000.0 / received.max(1) as f64;
        *c.shared.farm_lock() = Some(report.clone());
    }
    Ok(())
}

/// The announced nodes: this build's, and the others.
async fn list_nodes(nodes: &jetstream::kv::Store, build: &str) -> (Vec<NodeInfo>, Vec<NodeInfo>) {
    let mut ours = Vec::new();
    let mut others = Vec::new();
    let Ok(mut keys) = nodes.keys().await else {
        return (ours, others);
    };
    let mut names = Vec::new();
    while let Some(Ok(k)) = keys.next().await {
        names.push(k);
    }
    for k in names {
        if let Ok(Some(v)) = nodes.get(&k).await
            && let Ok(info) = wire::parse::<NodeInfo>("a node", &v)
        {
            if info.build == build {
                ours.push(info);
            } else {
                others.push(info);
            }
        }
    }
    (ours, others)
}
