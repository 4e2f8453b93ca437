//! [`RenderNode`]: a render node. It announces itself, fetches one segment at a time from its
//! build's work queue, renders it through the export's own segment function on a thread of
//! its own while heartbeats keep the message, ships the result, then acknowledges.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;

use super::super::job::{SegmentDone, render_segment, worker_options};
use super::super::{ExportError, ExportRequest};
use super::wire::{
    self, Done, Failed, HEARTBEAT, Outcome, Snapshot, WorkItem, done_subject, encode_result,
};
use super::{FarmError, NodeInfo, build_id};
use crate::offline::OfflineRenderer;
use crate::playback::EngineOptions;

/// How a render node runs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The NATS server.
    pub url: String,
    /// The node's id (default: host name and process id).
    pub id: Option<String>,
    /// A pause after each frame: stands in for a slow node (tests, demonstrations).
    pub frame_delay: Duration,
    /// The renderer's options (the GPU is not used: see the module doc).
    pub engine: EngineOptions,
    /// Stop, as [`RenderNode::stop_handle`] would, on SIGINT or SIGTERM (a command-line node).
    pub stop_on_signals: bool,
    /// Segments rendered at once, each with its own renderer and encoder, like a local
    /// export's workers (0: one per core).
    pub slots: usize,
}

impl NodeOptions {
    /// The defaults for a node on `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            id: None,
            frame_delay: Duration::ZERO,
            engine: EngineOptions::default(),
            stop_on_signals: false,
            slots: 0,
        }
    }
}

/// What a node did, when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Segments rendered and shipped.
    pub segments: u64,
    /// Frames in them.
    pub frames: u64,
    /// Tries that failed.
    pub failed: u64,
}

/// What a node tells its host as it goes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Connected and announced.
    Ready(NodeInfo),
    /// A segment was taken (`delivered`: its delivery count, 1 the first time).
    Started {
        /// The job.
        job: String,
        /// The segment.
        index: usize,
        /// Which delivery.
        delivered: u64,
    },
    /// A segment was shipped.
    Done {
        /// The job.
        job: String,
        /// The segment.
        index: usize,
        /// Frames.
        frames: u64,
        /// Seconds from taking it to shipping it.
        seconds: f64,
    },
    /// A try failed (`last`: no delivery is left, the job fails).
    Failed {
        /// The job.
        job: String,
        /// The segment.
        index: usize,
        /// Why.
        error: String,
        /// No delivery is left.
        last: bool,
    },
    /// A message was dropped unrendered (its job is gone, or it cannot be read).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The server could not be reached; the node keeps trying.
    Waiting(String),
}

/// A render node (see the module doc). [`RenderNode::run`] blocks until
/// [`RenderNode::stop_handle`] is set.
#[derive(Debug)]
pub struct RenderNode {
    options: NodeOptions,
    info: NodeInfo,
    stop: Arc<AtomicBool>,
}

/// What a node's slots share.
#[derive(Clone, Copy)]
struct Slot<'a> {
    js: &'a jetstream::Context,
    objects: &'a jetstream::object_store::ObjectStore,
    consumer: &'a jetstream::consumer::PullConsumer,
    segments: &'a AtomicU64,
    report: &'a std::cell::RefCell<NodeReport>,
}

/// A segment for the render thread.
struct RenderJob {
    item: WorkItem,
    snapshot: Arc<Snapshot>,
    reply: tokio::sync::oneshot::Sender<Result<SegmentDone, String>>,
}

impl RenderNode {
    /// A node with `options` (nothing connects until [`RenderNode::run`]).
    pub fn new(options: NodeOptions) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let id = options
            .id
            .clone()
            .unwrap_or_else(|| format!("{host}-{}", std::process::id()));
        let info = NodeInfo {
            id: id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
            host,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gpu: framelock_engine::gpu::adapters()
                .into_iter()
                .find(|a| a.device_type != "Cpu")
                .map(|a| a.name),
            build: build_id(),
            segments: 0,
        };
        Self {
            options,
            info,
            stop: Arc::default(),
        }
    }

    /// How the node announces itself.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Set it to stop the node after the segment it is on (that segment is then redelivered).
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Connects and renders until stopped; `on_event` hears what happens.
    pub fn run(&self, on_event: impl FnMut(NodeEvent)) -> Result<NodeReport, FarmError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FarmError::Protocol(format!("tokio: {e}")))?;
        let slots = self.slots();
        let options = worker_options(
            &EngineOptions {
                gpu: None,
                ..self.options.engine.clone()
            },
            slots,
        );
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..slots {
            let (tx, rx) = crossbeam_channel::bounded::<RenderJob>(1);
            let (options, delay, stop) =
                (options.clone(), self.options.frame_delay, self.stop.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("framelock-node-render-{i}"))
                .spawn(move || render_thread(&rx, &options, delay, &stop));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.stop.store(true, Ordering::SeqCst);
                    return Err(FarmError::Protocol(format!("render thread: {e}")));
                }
            }
            senders.push(tx);
        }
        let result = runtime.block_on(self.serve(senders, on_event));
        for t in threads {
            let _ = t.join();
        }
        result
    }

    /// Segments rendered at once.
    fn slots(&self) -> usize {
        match self.options.slots {
            0 => self.info.cores,
            n => n,
        }
        .max(1)
    }

    async fn serve(
        &self,
        render: Vec<crossbeam_channel::Sender<RenderJob>>,
        on_event: impl FnMut(NodeEvent),
    ) -> Result<NodeReport, FarmError> {
        let on_event = std::cell::RefCell::new(on_event);
        let event = |e: NodeEvent| (on_event.borrow_mut())(e);
        let client = wire::connect(
            &self.options.url,
            format!("framelock node {}", self.info.id),
            Duration::from_secs(10),
        )
        .await?;
        let js = jetstream::new(client);
        let (objects, nodes) = wire::ensure(&js).await?;
        let consumer = wire::work_consumer(&js, &self.info.build, None).await?;
        let segments = Arc::new(AtomicU64::new(0));
        let heartbeat = {
            let (info, segments, stop) = (self.info.clone(), segments.clone(), self.stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let mut info = info.clone();
                    info.segments = segments.load(Ordering::SeqCst);
                    let _ = nodes.put(&info.id, wire::json(&info).into()).await;
                    for _ in 0..(HEARTBEAT.as_millis() / 100) {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                let _ = nodes.delete(&info.id).await;
            })
        };
        if self.options.stop_on_signals {
            let stop = self.stop.clone();
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            tokio::spawn(async move {
                match term {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => drop(tokio::signal::ctrl_c().await),
                }
                stop.store(true, Ordering::SeqCst);
            });
        }
        event(NodeEvent::Ready(self.info.clone()));
        let report = std::cell::RefCell::new(NodeReport::default());
        let slot = Slot {
            js: &js,
            objects: &objects,
            consumer: &consumer,
            segments: &segments,
            report: &report,
        };
        let results =
            futures_util::future::join_all(render.iter().map(|tx| self.slot(&slot, tx, &event)))
                .await;
        drop(render);
        self.stop.store(true, Ordering::SeqCst);
        let _ = heartbeat.await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, FarmError>>()?;
        Ok(report.into_inner())
    }

    /// One slot: fetch a segment when idle, render it on this slot's render thread, ship it.
    async fn slot(
        &self,
        ctx: &Slot<'_>,
        render: &crossbeam_channel::Sender<RenderJob>,
        on_event: &dyn Fn(NodeEvent),
    ) -> Result<(), FarmError> {
        let Slot {
            js,
            objects,
            consumer,
            segments,
            report,
        } = *ctx;
        let mut snapshot: Option<(String, Arc<Snapshot>)> = None;
        while !self.stop.load(Ordering::SeqCst) {
            // One message, only now that the node is idle: no prefetch.
            let batch = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    on_event(NodeEvent::Waiting(e.to_string()));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(msg) = batch.next().await {
                let Ok(msg) = msg else { break };
                let delivered = msg.info().map_or(1, |i| i.delivered.max(1) as u64);
                let item: WorkItem = match wire::parse("a work message", &msg.payload) {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = msg.ack_with(AckKind::Term).await;
                        on_event(NodeEvent::Skipped {
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                on_event(NodeEvent::Started {
                    job: item.job.clone(),
                    index: item.segment.index,
                    delivered,
                });
                let started = Instant::now();
                let snap = match &snapshot {
                    Some((name, s)) if *name == item.snapshot => Ok(s.clone()),
                    _ => wire::fetch_snapshot(objects, &item).await,
                };
                let snap = match snap {
                    Ok(s) => s,
                    Err(wire::Fetch::Gone) => {
                        let _ = msg.ack_with(AckKind::Term).await;
                        on_event(NodeEvent::Skipped {
                            reason: format!("job {} is gone", item.job),
                        });
                        continue;
                    }
                    Err(wire::Fetch::Bad(e)) => {
                        self.fail(js, &msg, &item, delivered, e, report, on_event)
                            .await;
                        continue;
                    }
                };
                snapshot = Some((item.snapshot.clone(), snap.clone()));
                let (reply, done) = tokio::sync::oneshot::channel();
                let sent = render.send(RenderJob {
                    item: item.clone(),
                    snapshot: snap,
                    reply,
                });
                if sent.is_err() {
                    self.stop.store(true, Ordering::SeqCst);
                    return Err(FarmError::Protocol("the render thread stopped".into()));
                }
                // Heartbeats while the segment renders, so the server keeps it ours.
                let beat =
                    (Duration::from_millis(item.ack_wait_ms) / 3).max(Duration::from_millis(100));
                tokio::pin!(done);
                let result = loop {
                    tokio::select! {
                        r = &mut done => break r.unwrap_or_else(|_| Err("the render thread stopped".into())),
                        () = tokio::time::sleep(beat) => {
                            let _ = msg.ack_with(AckKind::Progress).await;
                        }
                    }
                };
                match result {
                    Ok(done) => {
                        let frames = done.encoded.frames();
                        match self.ship(js, objects, &item, delivered, done).await {
                            Ok(()) => {
                                // Acknowledged only once the result is stored: a node that
                                // dies before this leaves the segment to be redelivered.
                                let _ = msg.double_ack().await;
                                report.borrow_mut().segments += 1;
                                report.borrow_mut().frames += frames;
                                segments.fetch_add(1, Ordering::SeqCst);
                                on_event(NodeEvent::Done {
                                    job: item.job.clone(),
                                    index: item.segment.index,
                                    frames,
                                    seconds: started.elapsed().as_secs_f64(),
                                });
                            }
                            Err(e) => on_event(NodeEvent::Waiting(format!(
                                "segment {} not shipped ({e}); it will be redelivered",
                                item.segment.index
                            ))),
                        }
                    }
                    Err(_) if self.stop.load(Ordering::SeqCst) => {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                    }
                    Err(error) => {
                        self.fail(js, &msg, &item, delivered, error, report, on_event)
                            .await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reports a failed try: the segment is retried a second later (NAK) while deliveries
    /// are left, and ends the job (TERM, "last") on the last one.
    #[allow(clippy::too_many_arguments, reason = "a slot's state, passed through")]
    async fn fail(
        &self,
        js: &jetstream::Context,
        msg: &jetstream::Message,
        item: &WorkItem,
        delivered: u64,
        error: String,
        report: &std::cell::RefCell<NodeReport>,
        on_event: &dyn Fn(NodeEvent),
    ) {
        let last = delivered >= item.max_deliver.max(1) as u64;
        let outcome = self.outcome(
            item,
            delivered,
            Err(Failed {
                error: error.clone(),
                last,
            }),
        );
        let _ = publish(js, &item.job, &outcome).await;
        let ack = if last {
            AckKind::Term
        } else {
            AckKind::Nak(Some(Duration::from_secs(1)))
        };
        let _ = msg.ack_with(ack).await;
        report.borrow_mut().failed += 1;
        on_event(NodeEvent::Failed {
            job: item.job.clone(),
            index: item.segment.index,
            error,
            last,
        });
    }

    fn outcome(&self, item: &WorkItem, delivered: u64, result: Result<Done, Failed>) -> Outcome {
        let mut node = self.info.clone();
        node.segments = 0;
        Outcome {
            plan_hash: item.plan_hash.clone(),
            index: item.segment.index,
            node,
            delivered,
            result,
        }
    }

    /// Stores the result under a name of its own (node and delivery: two deliveries never
    /// write one object), then publishes "done" and waits for the server to store it.
    async fn ship(
        &self,
        js: &jetstream::Context,
        objects: &jetstream::object_store::ObjectStore,
        item: &WorkItem,
        delivered: u64,
        done: SegmentDone,
    ) -> Result<(), FarmError> {
        let t = Instant::now();
        let raw = encode_result(&done.encoded)?;
        // H.264/AV1 is compressed already, but not always tightly (openh264's CAVLC on
        // flat pictures): lz4 is kept where it saves a tenth or more.
        let packed = lz4_flex::compress_prepend_size(&raw);
        let lz4 = packed.len() * 10 <= raw.len() * 9;
        let raw_bytes = raw.len() as u64;
        let bytes = if lz4 { packed } else { raw };
        let object = format!(
            "seg.{}.{}.{}.{delivered}",
            item.plan_hash, item.segment.index, self.info.id
        );
        objects
            .put(object.as_str(), &mut bytes.as_slice())
            .await
            .map_err(FarmError::js)?;
        let mut outcome = self.outcome(
            item,
            delivered,
            Ok(Done {
                object,
                frames: done.encoded.frames(),
                bytes: bytes.len() as u64,
                raw_bytes,
                lz4,
                render_seconds: done.render_seconds,
                encode_seconds: done.encode_seconds,
                decode_seconds: done.decode_seconds,
                reused_frames: done.reused_frames,
                ship_seconds: 0.0,
            }),
        );
        if let Ok(d) = &mut outcome.result {
            d.ship_seconds = t.elapsed().as_secs_f64();
        }
        publish(js, &item.job, &outcome).await
    }
}

/// Publishes an outcome and waits for the server's acknowledgement.
async fn publish(js: &jetstream::Context, job: &str, outcome: &Outcome) -> Result<(), FarmError> {
    js.publish(done_subject(job), wire::json(outcome).into())
        .await
        .map_err(FarmError::js)?
        .await
        .map_err(FarmError::js)?;
    Ok(())
}

/// Renders segments one at a time, keeping the renderer of the last snapshot open.
fn render_thread(
    rx: &crossbeam_channel::Receiver<RenderJob>,
    options: &EngineOptions,
    delay: Duration,
    stop: &AtomicBool,
) {
    let mut open: Option<(String, OfflineRenderer)> = None;
    while let Ok(job) = rx.recv() {
        if open
            .as_ref()
            .is_none_or(|(h, _)| *h != job.item.snapshot_hash)
        {
            open = None;
            match OfflineRenderer::open(&job.snapshot.project, options.clone()) {
                Ok(r) => open = Some((job.item.snapshot_hash.clone(), r)),
                Err(e) => {
                    let _ = job.reply.send(Err(e.to_string()));
                    continue;
                }
            }
        }
        let Some((_, renderer)) = open.as_mut() else {
            continue;
        };
        let mut request = ExportRequest::new("");
        request.quality = job.item.quality;
        request.codec = job.item.codec;
        let settings = super::super::job::encode_settings(&job.snapshot.project, &request);
        let result = render_segment(
            renderer,
            job.item.segment,
            job.item.codec,
            &settings,
            job.item.quality,
            || {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                !stop.load(Ordering::SeqCst)
            },
        );
        let result = result.map_err(|e| match e {
            ExportError::Cancelled => "the node is stopping".to_string(),
            e => e.to_string(),
        });
        if result.is_err() {
            // A failed render may leave the renderer mid-range: open it afresh next time.
            open = None;
        }
        let _ = job.reply.send(result);
    }
}
