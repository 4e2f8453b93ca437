//! The export's threads: the coordinator ([`Job`]: reorder, mux, verify) and the segment
//! workers ([`Worker`]: render and encode), and the state they share with the handle.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use framelock_components::{Project, RenderPriority, UseProxy};
use framelock_engine::audio::AudioPacket;
use framelock_engine::media::{
    Container, EncodeSettings, EncodeSpeed, RateControl, TrackId, verify_video,
};
use framelock_engine::render::OutputPixels;

use super::audio::{self, AudioTrackInfo};
use super::video::{Encoded, SegmentEncoder, VideoMux};
use super::{ExportError, ExportReport, ExportRequest, ExportState, Segment, SegmentPlan};
use crate::offline::OfflineRenderer;
use crate::playback::EngineOptions;

/// Progress and the segment queue, under [`Shared::status`].
#[derive(Debug)]
pub(super) struct Status {
    pub(super) state: ExportState,
    pub(super) next_segment: usize,
    pub(super) muxed_segments: usize,
    pub(super) frames_done: u64,
    pub(super) frames_encoded: u64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) status: Mutex<Status>,
    pub(super) changed: Condvar,
    pub(super) cancel: AtomicBool,
    pub(super) paused: AtomicBool,
    pub(super) started: Instant,
    pub(super) total: u64,
    /// What the farm has done so far (distributed exports).
    #[cfg(feature = "farm")]
    pub(super) farm: Mutex<Option<super::farm::FarmReport>>,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(feature = "farm")]
    pub(super) fn farm_lock(&self) -> std::sync::MutexGuard<'_, Option<super::farm::FarmReport>> {
        self.farm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn stop(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub(super) fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Waits while paused; returns `false` once cancelled.
    pub(super) fn wait_while_paused(&self) -> bool {
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

/// What the workers and the audio thread send the coordinator.
pub(super) enum Msg {
    /// A segment rendered and encoded (or why not).
    Segment(Result<SegmentDone, ExportError>),
    /// The audio track's description, before its first packet.
    AudioStart(AudioTrackInfo),
    /// Encoded audio, in order.
    Audio(Vec<AudioPacket>),
    /// Audio is done: samples presented and seconds spent, `None` for no audio track.
    AudioDone(Result<Option<(u64, f64)>, ExportError>),
}

/// What the coordinator measured.
#[derive(Default)]
struct Totals {
    reused: u64,
    decode: f64,
    render: f64,
    encode: f64,
    mux: f64,
    audio: Option<(AudioTrackInfo, f64)>,
}

/// A segment rendered and encoded, by a local worker or a render node.
pub(super) struct SegmentDone {
    pub(super) index: usize,
    pub(super) encoded: Encoded,
    pub(super) render_seconds: f64,
    pub(super) encode_seconds: f64,
    pub(super) decode_seconds: f64,
    pub(super) reused_frames: u64,
}

/// Everything the coordinator thread owns.
pub(super) struct Job {
    pub(super) project: Project,
    pub(super) request: ExportRequest,
    pub(super) plan: SegmentPlan,
    pub(super) settings: EncodeSettings,
    pub(super) workers: usize,
    pub(super) shared: Arc<Shared>,
    /// Render on this farm instead of local workers.
    #[cfg(feature = "farm")]
    pub(super) farm: Option<super::farm::Farm>,
}

impl Job {
    pub(super) fn run(&self) -> Result<ExportReport, ExportError> {
        let container =
            audio::resolve(self.request.audio).map_or(Container::Mp4, |c| c.container());
        let mut muxer = VideoMux::create(
            &self.request.output,
            self.request.codec,
            &self.settings,
            container,
        )?;
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(self.workers + 4);
        // A disk tier is opened once and shared by the workers (a folder is one open tier's):
        // frames rendered into it before (background render, an earlier session) are encoded
        // from there instead of being rendered again.
        let mut base = self.request.engine.clone();
        if base.shared_disk_cache.is_none()
            && let Some(o) = base.disk_cache.take()
        {
            let disk = framelock_engine::cache::DiskCache::open(o)
                .map_err(|e| ExportError::Open(crate::PlayerError::DiskCache(e)))?;
            base.shared_disk_cache = Some(disk);
        }
        let options = worker_options(&base, self.workers);
        let mut handles = Vec::new();
        #[cfg(feature = "farm")]
        let local = self.farm.is_none();
        #[cfg(not(feature = "farm"))]
        let local = true;
        #[cfg(feature = "farm")]
        if let Some(farm) = &self.farm {
            let order = super::farm::Order {
                project: self.project.clone(),
                plan: self.plan.clone(),
                codec: self.request.codec,
                quality: self.request.quality,
                farm: farm.clone(),
            };
            match super::farm::spawn_coordinator(order, tx.clone(), self.shared.clone()) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    self.shared.stop();
                    return Err(ExportError::Worker(e.to_string()));
                }
            }
        }
        for i in (0..self.workers).filter(|_| local) {
            let worker = Worker {
                project: self.project.clone(),
                options: options.clone(),
                plan: self.plan.clone(),
                settings: self.settings,
                codec: self.request.codec,
                quality: self.request.quality,
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
        {
            let (project, tx, shared) = (self.project.clone(), tx.clone(), self.shared.clone());
            let (range, choice) = (self.plan.range(), self.request.audio);
            let spawned = std::thread::Builder::new()
                .name("framelock-export-audio".into())
                .spawn(move || audio::run(&project, range, choice, &tx, &shared));
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
        let totals = result?;
        let t = Instant::now();
        let total = self.plan.frames();
        let summary = muxer.finish_verified(|tmp| verify_video(tmp, total))?;
        let mux_seconds = totals.mux + t.elapsed().as_secs_f64();
        let seconds = self.shared.started.elapsed().as_secs_f64();
        #[cfg(feature = "farm")]
        let farm = self.shared.farm_lock().take();
        Ok(ExportReport {
            #[cfg(feature = "farm")]
            workers: farm.as_ref().map_or(self.workers, |f| f.nodes.len()),
            #[cfg(feature = "farm")]
            farm,
            #[cfg(not(feature = "farm"))]
            workers: self.workers,
            path: summary.path,
            frames: summary.frames,
            keyframes: summary.keyframes,
            segments: self.plan.segments.len(),
            bytes: summary.bytes,
            seconds,
            fps: summary.frames as f64 / seconds.max(1e-9),
            decode_seconds: totals.decode,
            reused_frames: totals.reused,
            render_seconds: totals.render,
            encode_seconds: totals.encode,
            mux_seconds,
            audio: totals.audio.as_ref().map(|(a, _)| a.codec),
            audio_samples: totals.audio.as_ref().map_or(0, |(a, _)| a.frames),
            audio_seconds: totals.audio.as_ref().map_or(0.0, |(_, s)| *s),
        })
    }

    /// Writes segments in order and audio as they arrive, until every segment is written
    /// and the audio thread is done.
    fn mux(
        &self,
        rx: &crossbeam_channel::Receiver<Msg>,
        muxer: &mut VideoMux,
    ) -> Result<Totals, ExportError> {
        let mut waiting: BTreeMap<usize, SegmentDone> = BTreeMap::new();
        let mut totals = Totals::default();
        let mut audio_track: Option<(TrackId, AudioTrackInfo)> = None;
        let mut audio_done = false;
        let mut next = 0;
        while next < self.plan.segments.len() || !audio_done {
            if self.shared.stopped() {
                return Err(stopped_because(rx));
            }
            let msg = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(msg) => msg,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(if self.shared.stopped() {
                        stopped_because(rx)
                    } else {
                        ExportError::Worker("the export workers stopped early".into())
                    });
                }
            };
            let t = Instant::now();
            match msg {
                Msg::Segment(done) => {
                    let done = done?;
                    totals.decode += done.decode_seconds;
                    totals.reused += done.reused_frames;
                    totals.render += done.render_seconds;
                    totals.encode += done.encode_seconds;
                    waiting.insert(done.index, done);
                }
                Msg::AudioStart(info) => {
                    let m = muxer.muxer_mut();
                    let track = m.add_audio(info.rate, info.channels)?;
                    m.set_codec(track, info.track.clone())?;
                    m.set_edit(track, u64::from(info.delay), Some(info.frames))?;
                    audio_track = Some((track, info));
                }
                Msg::Audio(packets) => {
                    let Some((track, _)) = audio_track else {
                        return Err(ExportError::Worker("audio before its track".into()));
                    };
                    for p in &packets {
                        muxer
                            .muxer_mut()
                            .write_sample(track, &p.data, p.frames, true)?;
                    }
                }
                Msg::AudioDone(done) => {
                    audio_done = true;
                    if let (Some((frames, seconds)), Some((_, info))) = (done?, &audio_track) {
                        let mut info = info.clone();
                        info.frames = frames;
                        totals.audio = Some((info, seconds));
                    }
                }
            }
            while let Some(seg) = waiting.remove(&next) {
                let frames = seg.encoded.frames();
                muxer.write(&seg.encoded)?;
                next += 1;
                let mut s = self.shared.lock();
                s.muxed_segments = next;
                s.frames_done += frames;
                drop(s);
                self.shared.changed.notify_all();
            }
            totals.mux += t.elapsed().as_secs_f64();
        }
        Ok(totals)
    }
}

/// Why the export stopped: a worker (or the audio thread, or the farm) that failed stops
/// the others after sending its error, so an error still queued is the reason; otherwise the
/// host cancelled.
fn stopped_because(rx: &crossbeam_channel::Receiver<Msg>) -> ExportError {
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Segment(Err(e)) | Msg::AudioDone(Err(e))
                if !matches!(e, ExportError::Cancelled) =>
            {
                return e;
            }
            _ => {}
        }
    }
    ExportError::Cancelled
}

/// One segment worker: its own renderer (decode and render threads), an encoder per segment.
pub(super) struct Worker {
    project: Project,
    options: EngineOptions,
    plan: SegmentPlan,
    settings: EncodeSettings,
    codec: super::VideoCodec,
    quality: u8,
    window: usize,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(self, tx: &crossbeam_channel::Sender<Msg>) {
        let mut renderer = match OfflineRenderer::open(&self.project, self.options.clone()) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Msg::Segment(Err(e.into())));
                self.shared.stop();
                return;
            }
        };
        while let Some(segment) = self.take() {
            let done = self.segment(&mut renderer, segment);
            let failed = done.is_err();
            if tx.send(Msg::Segment(done)).is_err() || failed {
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
        render_segment(
            renderer,
            segment,
            self.codec,
            &self.settings,
            self.quality,
            || {
                if !self.shared.wait_while_paused() {
                    return false;
                }
                self.shared.lock().frames_encoded += 1;
                true
            },
        )
    }
}

/// Renders and encodes one segment with a fresh encoder (it starts with a keyframe).
/// `next_frame` runs before each frame is encoded; `false` stops the segment
/// ([`ExportError::Cancelled`]). Local workers and render nodes share this, so a segment is the
/// same bytes wherever it is rendered.
pub(super) fn render_segment(
    renderer: &mut OfflineRenderer,
    segment: Segment,
    codec: super::VideoCodec,
    settings: &EncodeSettings,
    quality: u8,
    mut next_frame: impl FnMut() -> bool,
) -> Result<SegmentDone, ExportError> {
    let mut encoder = SegmentEncoder::new(codec, settings, quality, segment.frames())?;
    let mut encode_seconds = 0.0;
    // Time in `next_frame` (waiting while the export is paused) is no stage's.
    let mut held_seconds = 0.0;
    let mut error = None;
    let started = Instant::now();
    let report = renderer.render_while(segment.start..segment.end, |frame| {
        let t = Instant::now();
        let go_on = next_frame();
        held_seconds += t.elapsed().as_secs_f64();
        if !go_on {
            return ControlFlow::Break(());
        }
        let t = Instant::now();
        if let Err(e) = encoder.encode(&frame.picture) {
            error = Some(e);
            return ControlFlow::Break(());
        }
        encode_seconds += t.elapsed().as_secs_f64();
        ControlFlow::Continue(())
    })?;
    if let Some(e) = error {
        return Err(e.into());
    }
    if report.frames < segment.frames() {
        return Err(ExportError::Cancelled);
    }
    let t = Instant::now();
    let encoded = encoder.finish()?;
    encode_seconds += t.elapsed().as_secs_f64();
    if encoded.frames() != segment.frames() {
        return Err(ExportError::Worker(format!(
            "segment {}: {} frames encoded, {} rendered",
            segment.index,
            encoded.frames(),
            segment.frames()
        )));
    }
    Ok(SegmentDone {
        index: segment.index,
        encoded,
        render_seconds: (started.elapsed().as_secs_f64() - encode_seconds - held_seconds).max(0.0),
        encode_seconds,
        decode_seconds: report.decode_seconds,
        reused_frames: report.reused_frames,
    })
}

/// A segment worker's renderer options from the request's: one decode and one render
/// thread, 4:2:0 output, no audio, no proxies, a share of the memory budget. Render nodes use
/// the same, so their segments are the local export's bytes.
pub(super) fn worker_options(base: &EngineOptions, workers: usize) -> EngineOptions {
    let mut options = base.clone();
    options.workers = 1;
    options.render_workers = 1;
    options.output_pixels = OutputPixels::Yuv420p;
    options.audio = false;
    options.proxies = None;
    options.quality.use_proxy = UseProxy::Never;
    options.memory.max_memory /= workers.max(1);
    options
}

pub(super) fn encode_settings(project: &Project, request: &ExportRequest) -> EncodeSettings {
    EncodeSettings {
        width: project.width,
        height: project.height,
        frame_rate: project.frame_rate,
        rate: RateControl::ConstantQp(request.qp()),
        gop: 0,
        speed: encode_speed(project, request),
    }
}

/// The H.264 encoder's effort for the rendering priority (`QualitySettings::priority`, the
/// project's settings where it has them, else the request's).
fn encode_speed(project: &Project, request: &ExportRequest) -> EncodeSpeed {
    match project.quality_or(request.engine.quality).priority {
        RenderPriority::Speed => EncodeSpeed::Fast,
        RenderPriority::Balanced => EncodeSpeed::Balanced,
        RenderPriority::Quality => EncodeSpeed::Best,
    }
}
