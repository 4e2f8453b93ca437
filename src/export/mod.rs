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
//! Audio: the timeline's mix over the whole range, on a thread of its own, encoded once (no
//! priming gaps at the seams) — AAC-LC with the `ffmpeg` feature, Opus otherwise (see
//! [`AudioCodec`]; PCM in a MOV on request) — and interleaved with the video by the muxer.
//! The encoder's delay is an edit list, so sample 0 of the file is the range's first sample.

mod audio;
#[cfg(feature = "farm")]
pub mod farm;
mod job;
mod plan;
mod task;
mod video;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framelock_components::Project;
use framelock_engine::audio::{AudioCodec, AudioError};
use framelock_engine::media::{Av1Encoder, Container, H264Encoder, WriteError};

use crate::offline::OfflineError;
use crate::playback::{EngineOptions, PlayerError};
use job::{Job, Shared, Status, encode_settings};
pub use plan::{Segment, SegmentPlan};

/// The video codec of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 (openh264), 8-bit 4:2:0, constant QP.
    #[default]
    H264,
    /// AV1 (rav1e), 8-bit 4:2:0, constant quantizer, at rav1e's speed preset `speed`
    /// (0 slowest ..= 10 fastest).
    Av1 {
        /// rav1e's speed preset.
        speed: u8,
    },
}

/// The audio of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportAudio {
    /// AAC-LC where this build has an encoder (`ffmpeg` feature), Opus otherwise; no audio
    /// track when nothing on the timeline makes a sound.
    #[default]
    Auto,
    /// No audio track.
    None,
    /// This codec (a track even if the timeline is silent).
    Codec(AudioCodec),
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
    /// The audio track.
    pub audio: ExportAudio,
    /// Frames per segment, each one closed GOP (0: at most two seconds of the project's rate,
    /// the range cut into a multiple of the workers' count of equal segments).
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
            audio: ExportAudio::Auto,
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
    /// Mixing or encoding the audio failed (a source that cannot be read, a codec this
    /// build lacks).
    #[error("audio: {0}")]
    Audio(#[from] AudioError),
    /// The request cannot be carried out as asked (PCM into an .mp4, …).
    #[error("{0}")]
    Settings(String),
    /// Encoding, muxing or writing failed (a full disk is an I/O error here).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The export was cancelled; nothing was written.
    #[error("the export was cancelled")]
    Cancelled,
    /// A worker thread could not start or died.
    #[error("export worker: {0}")]
    Worker(String),
    /// The farm failed the job (no node, a segment that failed every time, the server lost).
    #[cfg(feature = "farm")]
    #[error(transparent)]
    Farm(#[from] farm::FarmError),
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
    /// Frames encoded from pictures already in the disk tier (rendered by playback or
    /// background render) instead of rendered again.
    pub reused_frames: u64,
    /// Summed over the workers' decode threads: seconds decoding source frames (beside the
    /// render and encode, which it feeds: not a share of `render_seconds`).
    pub decode_seconds: f64,
    /// Summed over workers: seconds waiting for rendered frames (decode + composite +
    /// effects, the part not hidden behind encoding). Time paused is not counted.
    pub render_seconds: f64,
    /// Summed over workers: seconds encoding.
    pub encode_seconds: f64,
    /// Seconds muxing and writing (the coordinator), including the final verification.
    pub mux_seconds: f64,
    /// The audio codec (`None`: no audio track).
    pub audio: Option<AudioCodec>,
    /// Audio samples (per channel) presented.
    pub audio_samples: u64,
    /// Seconds the audio thread spent mixing and encoding (beside the video, not after it).
    pub audio_seconds: f64,
    /// What the farm did (`None`: rendered locally).
    #[cfg(feature = "farm")]
    pub farm: Option<farm::FarmReport>,
}

/// A running export (see the module doc). Dropping it cancels the export.
#[derive(Debug)]
pub struct Export {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Result<ExportReport, ExportError>>>,
}

impl Export {
    /// Checks the request, then starts the export on threads of its own and returns at once.
    pub fn start(project: &Project, request: ExportRequest) -> Result<Self, ExportError> {
        Self::start_with(
            project,
            request,
            #[cfg(feature = "farm")]
            None,
        )
    }

    /// Like [`Export::start`], but the segments are rendered by the render nodes of `farm`
    /// (see [`farm`]); audio and muxing stay here. `request.workers` is not used.
    #[cfg(feature = "farm")]
    pub fn start_on_farm(
        project: &Project,
        request: ExportRequest,
        farm: farm::Farm,
    ) -> Result<Self, ExportError> {
        Self::start_with(project, request, Some(farm))
    }

    /// What the farm has done so far (`None` for a local export, or before the first result).
    #[cfg(feature = "farm")]
    pub fn farm_progress(&self) -> Option<farm::FarmReport> {
        self.shared.farm_lock().clone()
    }

    fn start_with(
        project: &Project,
        request: ExportRequest,
        #[cfg(feature = "farm")] farm: Option<farm::Farm>,
    ) -> Result<Self, ExportError> {
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
        match request.codec {
            VideoCodec::H264 => drop(H264Encoder::new(settings)?),
            VideoCodec::Av1 { speed } => drop(Av1Encoder::new(video::av1_settings(
                &settings,
                request.quality,
                speed,
            ))?),
        }
        check_audio(&request)?;
        #[cfg(feature = "farm")]
        let local = farm.is_none();
        #[cfg(not(feature = "farm"))]
        let local = true;
        let mut workers = match request.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
        .max(1);
        if local {
            // Each segment worker opens its own engine on a share of the budget: no more
            // workers than shares that can show the busiest frame (one at the least,
            // refused when even that does not fit). Render nodes size their own.
            let need = crate::playback::budget::originals_need(project, &request.engine)?;
            workers = workers
                .min(request.engine.memory.max_memory / need.minimum.max(1))
                .max(1);
        }
        let plan = match request.segment_frames {
            // At most two seconds each, as many as a multiple of the workers: no worker is
            // left with a last segment while the others are idle.
            0 => SegmentPlan::balanced(
                range,
                (2 * project.frame_rate.num).div_ceil(project.frame_rate.den.max(1)),
                workers,
            ),
            n => SegmentPlan::new(range, n),
        };
        workers = workers.min(plan.segments.len()).max(1);
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
            #[cfg(feature = "farm")]
            farm: Mutex::new(None),
        });
        let job = Job {
            project: project.clone(),
            request,
            plan,
            settings,
            workers,
            shared: shared.clone(),
            #[cfg(feature = "farm")]
            farm,
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

/// Refuses, before anything starts, an audio codec this build lacks or a container the
/// output's extension contradicts (PCM needs a .mov).
fn check_audio(request: &ExportRequest) -> Result<(), ExportError> {
    let Some(codec) = audio::resolve(request.audio) else {
        return Ok(());
    };
    if !codec.available() {
        return Err(ExportError::Settings(format!(
            "{codec} needs a build with the `ffmpeg` feature (use opus or pcm)"
        )));
    }
    let ext = request
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match (codec.container(), ext.as_deref()) {
        (Container::Mov, Some("mov")) | (Container::Mp4, _) => Ok(()),
        (Container::Mov, _) => Err(ExportError::Settings(format!(
            "{codec} audio is written in a MOV: name the output .mov"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_onto_the_qp_range() {
        let mut r = ExportRequest::new("x.mp4");
        for (q, qp) in [(100, 12), (70, 22), (0, 45), (255, 12)] {
            r.quality = q;
            assert_eq!(r.qp(), qp, "quality {q}");
        }
    }

    #[test]
    fn the_rendering_priority_sets_the_encoders_effort() {
        use framelock_components::{QualitySettings, Rational, RenderPriority};
        use framelock_engine::media::EncodeSpeed;
        let mut project = Project::new(Rational::integer(30), 320, 180);
        let mut r = ExportRequest::new("x.mp4");
        assert_eq!(encode_settings(&project, &r).speed, EncodeSpeed::Balanced);
        r.engine.quality.priority = RenderPriority::Speed;
        assert_eq!(encode_settings(&project, &r).speed, EncodeSpeed::Fast);
        // The project's saved settings win over the request's.
        project.quality = Some(QualitySettings {
            priority: RenderPriority::Quality,
            ..QualitySettings::default()
        });
        assert_eq!(encode_settings(&project, &r).speed, EncodeSpeed::Best);
    }
}
