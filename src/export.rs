//! [`Export`]: a timeline range rendered to an H.264 MP4 in the background, segment-parallel.
//!
//! ```text
//!  SegmentPlan (closed GOPs, deterministic)
//!     │ segment i (at most workers + 1 out at once)
//!     ├──► worker 1: OfflineRenderer (own decode + render thread) → H264Encoder (own) ─┐
//!     └──► worker 2: …                                                                 │
//!                                                  (i, encoded pictures) in any order ◄┘
//!  coordinator: reorder by segment → H264Mp4Muxer (temp file) → verify → rename
//! ```
//!
//! The range is cut into segments of whole GOPs ([`SegmentPlan`]: a pure function of the
//! range and the segment length, never of the worker count, and serialisable — distributed
//! render ships the same plan). Each segment is rendered by a worker's own
//! [`OfflineRenderer`] and encoded by an encoder of its own that starts with an IDR, so
//! segments are independent; all encoders share the settings, so their SPS/PPS are the same
//! and the samples join into one track without re-encoding. Only compressed pictures wait in
//! the reorder buffer. Decode, render and encode overlap: while a worker encodes frame N its
//! render thread renders the next frames and its decode thread decodes ahead.
//!
//! The file appears only when complete and verified (frame count, first sample a keyframe);
//! a cancelled or failed export removes its temporary file and leaves an older file at the
//! destination as it was. On the CPU path the output is byte-identical run after run,
//! whatever the number of workers.
//!
//! Audio is not exported yet (the video track only).

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framelock_components::{Project, UseProxy};
use framelock_engine::media::{
    EncodeSettings, EncodeSpeed, EncodedPicture, H264Encoder, H264Mp4Muxer, RateControl,
    WriteError, verify_video,
};
use framelock_engine::render::OutputPixels;

use crate::offline::{OfflineError, OfflineRenderer};
use crate::playback::{EngineOptions, PlayerError};

/// The video codec of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 (openh264), 8-bit 4:2:0, constant QP.
    #[default]
    H264,
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// The MP4 to write (replaced only when the export succeeds).
    pub output: PathBuf,
    /// Timeline frames (`None`: the whole timeline).
    pub range: Option<Range<u64>>,
    /// The video codec.
    pub codec: VideoCodec,
    /// 0 (smallest) ..= 100 (best): see [`ExportRequest::qp`].
    pub quality: u8,
    /// Frames per segment, each one closed GOP (0: two seconds of the project's rate).
    pub segment_frames: u64,
    /// Segments rendered and encoded at once (0: one per core).
    pub workers: usize,
    /// How each worker's renderer runs (GPU, CPU renderer, memory budget — divided among
    /// the workers). Decode and render threads, proxies, audio and the output pixel format
    /// are set by the export.
    pub engine: EngineOptions,
}

impl ExportRequest {
    /// An H.264 export of the whole timeline to `output` at quality 70.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        Self {
            output: output.into(),
            range: None,
            codec: VideoCodec::H264,
            quality: 70,
            segment_frames: 0,
            workers: 0,
            engine: EngineOptions::default(),
        }
    }

    /// The H.264 quantiser `quality` maps to: 100 → 12, 70 → 22, 0 → 45 (linear).
    pub fn qp(&self) -> u8 {
        let q = u32::from(self.quality.min(100));
        (12 + ((100 - q) * 33 + 50) / 100) as u8
    }
}

/// One segment of a [`SegmentPlan`]: timeline frames `start..end`, one closed GOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Position in the plan (and in the output).
    pub index: usize,
    /// First timeline frame.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

impl Segment {
    /// Frames in the segment.
    pub fn frames(&self) -> u64 {
        self.end - self.start
    }
}

/// How a range is cut into segments: deterministic (the range and the segment length only)
/// and serialisable, so distributed render can ship the very plan a local export uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentPlan {
    /// Timeline frames exported.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// Frames per segment (the last may be shorter).
    pub segment_frames: u64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

impl SegmentPlan {
    /// Cuts `range` into segments of `segment_frames` (at least 1).
    pub fn new(range: Range<u64>, segment_frames: u64) -> Self {
        let len = segment_frames.max(1);
        let mut segments = Vec::new();
        let mut start = range.start;
        while start < range.end {
            let end = (start + len).min(range.end);
            segments.push(Segment {
                index: segments.len(),
                start,
                end,
            });
            start = end;
        }
        Self {
            start: range.start,
            end: range.end,
            segment_frames: len,
            segments,
        }
    }

    /// Frames in the plan.
    pub fn frames(&self) -> u64 {
        self.end - self.start
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The range is empty or beyond the timeline.
    #[error("frames {start}..{end} are not inside the timeline's 0..{duration}")]
    Range {
        /// First frame asked for.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// Timeline frames.
        duration: u64,
    },
    /// The project could not be opened for rendering.
    #[error(transparent)]
    Open(#[from] PlayerError),
    /// Rendering a frame failed.
    #[error(transparent)]
    Render(#[from] OfflineError),
    /// Encoding, muxing or writing failed (a full disk is an I/O error here).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The export was cancelled; nothing was written.
    #[error("the export was cancelled")]
    Cancelled,
    /// A worker thread could not start or died.
    #[error("export worker: {0}")]
    Worker(String),
}

/// Where an export stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportState {
    /// Rendering and encoding.
    Running,
    /// Paused by the host (workers wait between frames).
    Paused,
    /// Done; the file is in place.
    Finished,
    /// Cancelled; nothing was written.
    Cancelled,
    /// Failed; nothing was written.
    Failed,
}

/// Progress of an export.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportProgress {
    /// State.
    pub state: ExportState,
    /// Frames written to the file so far (in order).
    pub frames_done: u64,
    /// Frames encoded so far (any segment).
    pub frames_encoded: u64,
    /// Frames in the export.
    pub frames_total: u64,
    /// Frames encoded per second of wall time so far.
    pub fps: f64,
    /// Seconds left at that rate (`None` until a frame is encoded).
    pub eta_seconds: Option<f64>,
}

/// What a finished export did.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Keyframes (one per segment).
    pub keyframes: u64,
    /// Segments.
    pub segments: usize,
    /// Workers used.
    pub workers: usize,
    /// File size.
    pub bytes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Frames per second.
    pub fps: f64,
    /// Summed over workers: seconds waiting for rendered frames (decode + composite +
    /// effects, the part not hidden behind encoding).
    pub render_seconds: f64,
    /// Summed over workers: seconds encoding.
    pub encode_seconds: f64,
    /// Seconds muxing and writing (the coordinator), including the final verification.
    pub mux_seconds: f64,
}

#[derive(Debug)]
struct Status {
    state: ExportState,
    next_segment: usize,
    muxed_segments: usize,
    frames_done: u64,
    frames_encoded: u64,
}

#[derive(Debug)]
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
    cancel: AtomicBool,
    paused: AtomicBool,
    started: Instant,
    total: u64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stop(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Waits while paused; returns `false` once cancelled.
    fn wait_while_paused(&self) -> bool {
        let mut s = self.lock();
        while self.paused.load(Ordering::SeqCst) && !self.stopped() {
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(100))
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        !self.stopped()
    }
}

/// A running export (see the module doc). Dropping it cancels the export.
#[derive(Debug)]
pub struct Export {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Result<ExportReport, ExportError>>>,
}

struct SegmentDone {
    index: usize,
    pictures: Vec<EncodedPicture>,
    render_seconds: f64,
    encode_seconds: f64,
}

impl Export {
    /// Checks the request, then starts the export on threads of its own and returns at once.
    pub fn start(project: &Project, request: ExportRequest) -> Result<Self, ExportError> {
        let duration = project.duration_frames();
        let range = request.range.clone().unwrap_or(0..duration);
        if range.start >= range.end || range.end > duration {
            return Err(ExportError::Range {
                start: range.start,
                end: range.end,
                duration,
            });
        }
        let settings = encode_settings(project, &request);
        // The encoder refuses bad settings here, before any thread starts.
        H264Encoder::new(settings)?;
        let segment_frames = match request.segment_frames {
            0 => (2 * project.frame_rate.num).div_ceil(project.frame_rate.den.max(1)),
            n => n,
        };
        let plan = SegmentPlan::new(range, segment_frames);
        let workers = match request.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
        .min(plan.segments.len())
        .max(1);
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                state: ExportState::Running,
                next_segment: 0,
                muxed_segments: 0,
                frames_done: 0,
                frames_encoded: 0,
            }),
            changed: Condvar::new(),
            cancel: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            started: Instant::now(),
            total: plan.frames(),
        });
        let job = Job {
            project: project.clone(),
            request,
            plan,
            settings,
            workers,
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("framelock-export".into())
            .spawn(move || {
                let result = job.run();
                let mut s = job.shared.lock();
                s.state = match &result {
                    Ok(_) => ExportState::Finished,
                    Err(ExportError::Cancelled) => ExportState::Cancelled,
                    Err(_) => ExportState::Failed,
                };
                drop(s);
                job.shared.changed.notify_all();
                result
            })
            .map_err(|e| ExportError::Worker(e.to_string()))?;
        Ok(Self {
            shared,
            handle: Some(handle),
        })
    }

    /// Progress now.
    pub fn progress(&self) -> ExportProgress {
        let s = self.shared.lock();
        let secs = self.shared.started.elapsed().as_secs_f64();
        let fps = s.frames_encoded as f64 / secs.max(1e-9);
        let state = if s.state == ExportState::Running && self.shared.paused.load(Ordering::SeqCst)
        {
            ExportState::Paused
        } else {
            s.state
        };
        ExportProgress {
            state,
            frames_done: s.frames_done,
            frames_encoded: s.frames_encoded,
            frames_total: self.shared.total,
            fps,
            eta_seconds: (s.frames_encoded > 0)
                .then(|| (self.shared.total - s.frames_encoded) as f64 / fps),
        }
    }

    /// Pauses: workers stop after the frame they are on.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
    }

    /// Resumes a paused export.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        self.shared.changed.notify_all();
    }

    /// Cancels: workers stop after the frame they are on, the temporary file is removed;
    /// [`Export::wait`] then returns [`ExportError::Cancelled`].
    pub fn cancel(&self) {
        self.shared.stop();
    }

    /// Whether the export has ended (finished, failed or cancelled).
    pub fn is_done(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Blocks until the export ends, or `timeout` passes; returns whether it ended.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        while s.state == ExportState::Running {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, left.min(Duration::from_millis(100)))
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        true
    }

    /// Blocks until the export ends and returns its report.
    pub fn wait(mut self) -> Result<ExportReport, ExportError> {
        let Some(h) = self.handle.take() else {
            return Err(ExportError::Worker("already waited".into()));
        };
        h.join()
            .unwrap_or_else(|_| Err(ExportError::Worker("the export thread panicked".into())))
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.shared.stop();
            let _ = h.join();
        }
    }
}

/// Everything the coordinator thread owns.
struct Job {
    project: Project,
    request: ExportRequest,
    plan: SegmentPlan,
    settings: EncodeSettings,
    workers: usize,
    shared: Arc<Shared>,
}

impl Job {
    fn run(&self) -> Result<ExportReport, ExportError> {
        let mut muxer = H264Mp4Muxer::create(&self.request.output, self.settings)?;
        let (tx, rx) =
            crossbeam_channel::bounded::<Result<SegmentDone, ExportError>>(self.workers + 1);
        let mut options = self.request.engine.clone();
        options.workers = 1;
        options.render_workers = 1;
        options.output_pixels = OutputPixels::Yuv420p;
        options.audio = false;
        options.proxies = None;
        options.quality.use_proxy = UseProxy::Never;
        options.memory.max_memory /= self.workers;
        let mut handles = Vec::new();
        for i in 0..self.workers {
            let worker = Worker {
                project: self.project.clone(),
                options: options.clone(),
                plan: self.plan.clone(),
                settings: self.settings,
                window: self.workers + 1,
                shared: self.shared.clone(),
            };
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("framelock-export-{i}"))
                .spawn(move || worker.run(&tx));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    self.shared.stop();
                    return Err(ExportError::Worker(e.to_string()));
                }
            }
        }
        drop(tx);
        let result = self.mux(&rx, &mut muxer);
        self.shared.stop();
        // Unblock workers waiting to send.
        while rx.try_recv().is_ok() {}
        for h in handles {
            if h.join().is_err() && result.is_ok() {
                return Err(ExportError::Worker("an export worker panicked".into()));
            }
        }
        let (render_seconds, encode_seconds, mut mux_seconds) = result?;
        if self.shared.stopped() && self.shared.lock().frames_done < self.plan.frames() {
            return Err(ExportError::Cancelled);
        }
        let t = Instant::now();
        let total = self.plan.frames();
        let summary = muxer.finish_verified(|tmp| verify_video(tmp, total))?;
        mux_seconds += t.elapsed().as_secs_f64();
        let seconds = self.shared.started.elapsed().as_secs_f64();
        Ok(ExportReport {
            path: summary.path,
            frames: summary.frames,
            keyframes: summary.keyframes,
            segments: self.plan.segments.len(),
            workers: self.workers,
            bytes: summary.bytes,
            seconds,
            fps: summary.frames as f64 / seconds.max(1e-9),
            render_seconds,
            encode_seconds,
            mux_seconds,
        })
    }

    /// Writes segments in order as they arrive; returns (render, encode, mux) seconds.
    fn mux(
        &self,
        rx: &crossbeam_channel::Receiver<Result<SegmentDone, ExportError>>,
        muxer: &mut H264Mp4Muxer,
    ) -> Result<(f64, f64, f64), ExportError> {
        let mut waiting: BTreeMap<usize, SegmentDone> = BTreeMap::new();
        let (mut render, mut encode, mut mux) = (0.0, 0.0, 0.0);
        let mut next = 0;
        while next < self.plan.segments.len() {
            if self.shared.stopped() {
                return Err(ExportError::Cancelled);
            }
            let done = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(done) => done?,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(if self.shared.stopped() {
                        ExportError::Cancelled
                    } else {
                        ExportError::Worker("the export workers stopped early".into())
                    });
                }
            };
            render += done.render_seconds;
            encode += done.encode_seconds;
            waiting.insert(done.index, done);
            while let Some(seg) = waiting.remove(&next) {
                let t = Instant::now();
                let frames = seg.pictures.len() as u64;
                for p in &seg.pictures {
                    muxer.write_picture(p)?;
                }
                mux += t.elapsed().as_secs_f64();
                next += 1;
                let mut s = self.shared.lock();
                s.muxed_segments = next;
                s.frames_done += frames;
                drop(s);
                self.shared.changed.notify_all();
            }
        }
        Ok((render, encode, mux))
    }
}

/// One segment worker: its own renderer (decode and render threads), an encoder per segment.
struct Worker {
    project: Project,
    options: EngineOptions,
    plan: SegmentPlan,
    settings: EncodeSettings,
    window: usize,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(self, tx: &crossbeam_channel::Sender<Result<SegmentDone, ExportError>>) {
        let mut renderer = match OfflineRenderer::open(&self.project, self.options.clone()) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                self.shared.stop();
                return;
            }
        };
        while let Some(segment) = self.take() {
            let done = self.segment(&mut renderer, segment);
            let failed = done.is_err();
            if tx.send(done).is_err() || failed {
                self.shared.stop();
                return;
            }
        }
    }

    /// The next segment to do, waiting while the reorder window is full.
    fn take(&self) -> Option<Segment> {
        let mut s = self.shared.lock();
        loop {
            if self.shared.stopped() || s.next_segment >= self.plan.segments.len() {
                return None;
            }
            if s.next_segment < s.muxed_segments + self.window {
                let seg = self.plan.segments[s.next_segment];
                s.next_segment += 1;
                return Some(seg);
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, Duration::from_millis(100))
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }

    fn segment(
        &self,
        renderer: &mut OfflineRenderer,
        segment: Segment,
    ) -> Result<SegmentDone, ExportError> {
        let mut settings = self.settings;
        settings.gop = u32::try_from(segment.frames()).unwrap_or(u32::MAX);
        let mut encoder = H264Encoder::new(settings)?;
        let mut pictures = Vec::with_capacity(segment.frames() as usize);
        let mut encode_seconds = 0.0;
        let mut error = None;
        let started = Instant::now();
        let report = renderer.render_while(segment.start..segment.end, |frame| {
            if !self.shared.wait_while_paused() {
                return ControlFlow::Break(());
            }
            let t = Instant::now();
            match encoder.encode(&frame.picture) {
                Ok(p) => pictures.push(p),
                Err(e) => {
                    error = Some(e);
                    return ControlFlow::Break(());
                }
            }
            encode_seconds += t.elapsed().as_secs_f64();
            self.shared.lock().frames_encoded += 1;
            ControlFlow::Continue(())
        })?;
        if let Some(e) = error {
            return Err(e.into());
        }
        if report.frames < segment.frames() {
            return Err(ExportError::Cancelled);
        }
        Ok(SegmentDone {
            index: segment.index,
            pictures,
            render_seconds: started.elapsed().as_secs_f64() - encode_seconds,
            encode_seconds,
        })
    }
}

fn encode_settings(project: &Project, request: &ExportRequest) -> EncodeSettings {
    EncodeSettings {
        width: project.width,
        height: project.height,
        frame_rate: project.frame_rate,
        rate: RateControl::ConstantQp(request.qp()),
        gop: 0,
        speed: EncodeSpeed::Balanced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_range_in_order_and_round_trip() {
        let plan = SegmentPlan::new(10..135, 60);
        assert_eq!(
            plan.segments
                .iter()
                .map(|s| (s.start, s.end))
                .collect::<Vec<_>>(),
            [(10, 70), (70, 130), (130, 135)]
        );
        assert_eq!(plan.frames(), 125);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<SegmentPlan>(&json).unwrap(), plan);
        assert!(SegmentPlan::new(5..5, 60).segments.is_empty());
    }

    #[test]
    fn quality_maps_onto_the_qp_range() {
        let mut r = ExportRequest::new("x.mp4");
        for (q, qp) in [(100, 12), (70, 22), (0, 45), (255, 12)] {
            r.quality = q;
            assert_eq!(r.qp(), qp, "quality {q}");
        }
    }
}
