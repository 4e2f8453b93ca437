//! [`Player`]: a thread-safe handle that plays a project on its own thread, on the wall clock.
//! Commands go over a bounded channel and are applied between ticks; `scrub` keeps only the
//! latest request of a burst (earlier ones are never started, their decodes are cancelled).
//! Frames reach the host's sink on a thread of their own ([`FrameDelivery`]) and are there to
//! pull ([`Player::current_frame`]): a slow host never slows the clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use framelock_components::{
    AudioFormat, ClearCache, PlayState, Playhead, Project, ProxyStrategy, QualitySettings,
    Rational, UseProxy,
};
use framelock_engine::app::WallClock;
use framelock_engine::audio::{AudioPull, AudioSink, SinkError};
use framelock_engine::proxy::{JobId, ProxyJobStatus, ProxyManager, ProxyProgress};
use framelock_systems::{EngineEvent, MetricsSnapshot, PresentedFrame};

use crate::output::{BoxedSink, FrameDelivery, FrameSlot};
use crate::playback::{CacheStats, ClearedCache, EngineOptions, PlaybackEngine, PlayerError};

type QualityEdit = Box<dyn FnOnce(&mut QualitySettings) + Send>;
/// Work done on the engine between two ticks (its answer goes back over a channel it owns).
type EngineCall = Box<dyn FnOnce(&mut PlaybackEngine) + Send>;

enum Command {
    Play,
    Pause,
    Seek(f64),
    SeekFrame(u64),
    Scrub(f64),
    Rate(f64),
    UseProxy(UseProxy),
    ClearCache(ClearCache, Sender<Result<ClearedCache, PlayerError>>),
    ClearCacheLater(ClearCache),
    Step(i64),
    Quality(QualityEdit),
    QualityMode(crate::QualityMode),
    Call(EngineCall),
    Stop,
}

#[derive(Debug, Default)]
struct Shared {
    metrics: MetricsSnapshot,
    playhead: Option<Playhead>,
    cache: Option<CacheStats>,
    adaptive: Option<framelock_components::AdaptiveQuality>,
    /// Playhead commands sent and not applied yet (while any is, the published playhead is
    /// the one they were expected to make).
    unapplied: u64,
}

/// Plays a project on a thread of its own. Cheap to call from a UI thread: every method only
/// sends a command or reads the last published state.
#[derive(Debug)]
pub struct Player {
    commands: Sender<Command>,
    shared: Arc<Mutex<Shared>>,
    proxies: Option<(Arc<ProxyManager>, ProxyStrategy)>,
    events: Receiver<EngineEvent>,
    /// The engine's event channel, for reports made off the loop's thread.
    event_sender: Sender<EngineEvent>,
    frame_rate: Rational,
    duration: u64,
    /// The mix's pull end and format, when the project has audio, and the sink playing it.
    audio: Option<(AudioPull, AudioFormat)>,
    audio_sink: Option<Box<dyn AudioSink>>,
    thread: Option<JoinHandle<()>>,
    /// Delivers the newest frame to the host's sink (dropped after the loop's thread).
    frames: FrameDelivery,
}

mod background;

impl Player {
    /// Opens `project` (probing its media: errors come back here) and starts its loop, paused
    /// on frame 0. `sink` receives each presented frame on a thread of its own
    /// (`framelock-frames`); while it is busy only the newest frame waits for it, and the ones
    /// replaced are counted in [`MetricsSnapshot::sink_late`].
    pub fn open(
        project: &Project,
        options: EngineOptions,
        sink: impl FnMut(PresentedFrame) + Send + 'static,
    ) -> Result<Self, PlayerError> {
        let strategy = options.proxies.as_ref().map(|p| p.strategy.clone());
        let slot = FrameSlot::new();
        let to_slot = slot.clone();
        let engine =
            PlaybackEngine::open(project, options, Arc::new(WallClock::new()), move |f| {
                to_slot.put(f)
            })?;
        let thread_error = |e: std::io::Error| PlayerError::Media {
            path: "<player thread>".into(),
            source: framelock_engine::media::MediaError::Decode {
                backend: "player",
                reason: e.to_string(),
            },
        };
        let frames = FrameDelivery::spawn(slot.clone(), Box::new(sink)).map_err(thread_error)?;
        let proxies = engine.proxy_manager().zip(strategy);
        let events = engine.events();
        let event_sender = engine.event_sender();
        let audio = engine.audio_output().map(|o| (o.pull_handle(), o.format()));
        let first = engine.playhead();
        let (commands, rx) = crossbeam_channel::bounded(1024);
        let shared = Arc::new(Mutex::new(Shared {
            playhead: Some(first),
            ..Shared::default()
        }));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("framelock-player".into())
            .spawn(move || run(engine, &rx, &thread_shared, &slot))
            .map_err(thread_error)?;
        Ok(Self {
            commands,
            shared,
            proxies,
            events,
            event_sender,
            frame_rate: project.frame_rate,
            duration: first.duration,
            audio,
            audio_sink: None,
            thread: Some(thread),
            frames,
        })
    }

    /// The host's end of the audio output, to call [`AudioPull::pull`] from its own audio
    /// callback; `None` when the project has no audio.
    pub fn audio_pull(&self) -> Option<AudioPull> {
        self.audio.as_ref().map(|(p, _)| p.clone())
    }

    /// Plays the mix on `sink` (e.g. `CpalSink` with the `cpal` feature, [`NullSink`](crate::NullSink))
    /// from now on, replacing the one before; returns its name. See
    /// [`PlaybackEngine::set_audio_sink`].
    pub fn set_audio_sink(&mut self, mut sink: Box<dyn AudioSink>) -> Result<String, SinkError> {
        let Some((pull, format)) = &self.audio else {
            return Err(SinkError::NothingToPlay);
        };
        self.audio_sink = None;
        sink.start(pull.clone(), *format)?;
        let name = sink.name();
        self.audio_sink = Some(sink);
        Ok(name)
    }

    fn send(&self, c: Command) {
        match self.commands.try_send(c) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            // 1024 commands unread means the loop is stuck; a UI must not block on it.
            Err(TrySendError::Full(_)) => {}
        }
    }

    /// The engine's events ([`EngineEvent`]: state changes, seeks done, the end of the
    /// timeline, media errors), sent from the player's thread after each tick; bounded, so a
    /// host that stops reading loses new ones, never slows playback. One reader.
    pub fn events(&self) -> Receiver<EngineEvent> {
        self.events.clone()
    }

    /// Sends a command that moves the playhead and changes the published playhead at once,
    /// so the next [`Player::playhead`] agrees with it; the player's thread publishes its own
    /// again once it has applied every such command.
    fn send_expecting(&self, c: Command, f: impl FnOnce(&mut Playhead)) {
        let mut sh = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        sh.unapplied += 1;
        if let Some(p) = sh.playhead.as_mut() {
            f(p);
        }
        if self.commands.try_send(c).is_err() {
            sh.unapplied -= 1;
        }
    }

    /// Starts playing.
    pub fn play(&self) {
        self.send_expecting(Command::Play, |p| p.state = PlayState::Playing);
    }

    /// Pauses.
    pub fn pause(&self) {
        self.send_expecting(Command::Pause, |p| p.state = PlayState::Paused);
    }

    /// Pauses and moves `frames` frames (negative: back), clamped to the timeline; the
    /// frame is shown exactly (the keys an editor binds to ← and →).
    pub fn step(&self, frames: i64) {
        self.send_expecting(Command::Step(frames), |p| {
            p.state = PlayState::Paused;
            p.frame = step_target(p, frames);
        });
    }

    /// The timeline's length in frames (as of the last tick: edits change it).
    pub fn duration_frames(&self) -> u64 {
        self.playhead().map_or(self.duration, |p| p.duration)
    }

    /// Applies a live edit between two ticks of the player's loop and returns the edit that
    /// undoes it (see [`PlaybackEngine::edit`]: all or nothing, a refused edit changes
    /// nothing and says why). Waits for the loop (about a tick, plus probing any new media
    /// file there); the outcome is also sent as [`EngineEvent::TimelineEdited`].
    pub fn edit(
        &self,
        edit: framelock_components::Edit,
    ) -> Result<framelock_components::Edit, PlayerError> {
        self.call(move |e| e.edit(&edit))?
    }

    /// The timeline with every edit applied so far (to save).
    pub fn project(&self) -> Result<Project, PlayerError> {
        self.call(|e| e.project().clone())
    }

    /// The timeline's frame rate.
    pub fn frame_rate(&self) -> Rational {
        self.frame_rate
    }

    /// `frame` as a non-drop-frame timecode, `HH:MM:SS:FF` (frames counted at the rate
    /// rounded up: 30 for 29.97).
    pub fn timecode(&self, frame: u64) -> String {
        timecode(frame, self.frame_rate)
    }

    /// Changes the quality settings (drop policy, proxies, GPU, effect LOD…) between two
    /// ticks of the player's loop.
    pub fn set_quality(&self, edit: impl FnOnce(&mut QualitySettings) + Send + 'static) {
        self.send(Command::Quality(Box::new(edit)));
    }

    /// Empties a cache between two ticks and returns at once; the outcome comes as
    /// [`EngineEvent::CacheCleared`].
    pub fn clear_cache_later(&self, what: ClearCache) {
        self.send(Command::ClearCacheLater(what));
    }

    /// Jumps to the frame shown at `seconds`, exactly.
    pub fn seek(&self, seconds: f64) {
        self.send(Command::Seek(seconds));
    }

    /// Jumps to timeline frame `frame`.
    pub fn seek_frame(&self, frame: u64) {
        self.send_expecting(Command::SeekFrame(frame), |p| {
            p.frame = frame.min(p.duration.saturating_sub(1));
        });
    }

    /// Scrubs to `seconds`: of several scrubs before the next tick only the last is applied
    /// (latest wins); paused, a short snippet of the sound there plays
    /// ([`EngineOptions::scrub_audio`]).
    pub fn scrub(&self, seconds: f64) {
        self.send(Command::Scrub(seconds));
    }

    /// Play rate: 1 normal, 2 double, -1 reverse.
    pub fn set_rate(&self, rate: f64) {
        self.send(Command::Rate(rate));
    }

    /// Replaces the frame sink (from the next frame on; returns at once, even while the sink is busy).
    pub fn frame_sink(&self, sink: impl FnMut(PresentedFrame) + Send + 'static) {
        self.frames.set_sink(Box::new(sink) as BoxedSink);
    }

    /// The newest presented frame, for a host that draws at its own vsync (pull output; the
    /// sink still gets frames too — pass `|_| {}` to [`Player::open`] to only pull). `None`
    /// before the first.
    pub fn current_frame(&self) -> Option<PresentedFrame> {
        self.frames.slot().latest()
    }

    /// [`Player::current_frame`] with its number (1 for the first frame presented): the
    /// numbers a host skipped between two draws are frames it never drew.
    pub fn current_frame_numbered(&self) -> Option<(u64, PresentedFrame)> {
        self.frames.slot().latest_numbered()
    }

    /// The newest presented frame as an RGBA8 texture on the host's own wgpu device (see
    /// [`TextureOutput`](crate::TextureOutput)): call it from the host's render thread at its
    /// vsync. A frame is uploaded once (Y'CbCr planes, converted on the host's GPU); later
    /// calls before the next frame return the same texture. When the player's effects render
    /// on the host's device ([`TextureOutput::share`](crate::TextureOutput::share) in
    /// [`GpuOptions::host`](crate::GpuOptions::host)), an effects frame is the GPU's own
    /// texture of it: nothing uploaded or read back on the way. With its number (as
    /// [`Player::current_frame_numbered`]) and the frame. `None` before the first frame.
    #[allow(
        clippy::type_complexity,
        reason = "a tuple the host destructures at once"
    )]
    pub fn current_texture(
        &self,
        output: &mut crate::TextureOutput,
    ) -> Option<Result<(u64, crate::wgpu::Texture, PresentedFrame), crate::TextureOutputError>>
    {
        let (n, frame) = self.current_frame_numbered()?;
        Some(output.show(n, &frame.picture).map(|t| (n, t, frame)))
    }

    /// Whether clips play from proxies (from the next tick on).
    pub fn set_use_proxy(&self, use_proxy: UseProxy) {
        self.send(Command::UseProxy(use_proxy));
    }

    /// Queues the strategy's proxy resolutions below each file's height for `files` (probing
    /// them on the calling thread: a UI calls [`Player::generate_proxies_later`]); playback
    /// picks each proxy up when it is ready.
    pub fn generate_proxies(
        &self,
        files: &[std::path::PathBuf],
    ) -> Result<Vec<JobId>, PlayerError> {
        let (manager, strategy) = self.proxies.as_ref().ok_or(PlayerError::ProxiesDisabled)?;
        crate::playback::queue_proxies(manager, &strategy.generation, files, |_| None)
    }

    /// Queues the strategy's proxy resolutions below each file's height for `files`, and
    /// returns at once: the files are probed on a thread of their own, each answers with an
    /// [`EngineEvent::ProxiesQueued`] (its job ids, or why none), and each proxy made sends
    /// [`EngineEvent::ProxyReady`] (or `ProxyFailed`) as playback picks it up. Only
    /// [`PlayerError::ProxiesDisabled`] comes back here.
    pub fn generate_proxies_later(
        &self,
        files: Vec<std::path::PathBuf>,
    ) -> Result<(), PlayerError> {
        let (manager, strategy) = self.proxies.clone().ok_or(PlayerError::ProxiesDisabled)?;
        let events = self.event_sender.clone();
        let spawned = std::thread::Builder::new()
            .name("framelock-proxy-probe".into())
            .spawn(move || {
                for file in files {
                    let (jobs, error) = match crate::playback::queue_proxies(
                        &manager,
                        &strategy.generation,
                        std::slice::from_ref(&file),
                        |_| None,
                    ) {
                        Ok(jobs) => (jobs, None),
                        Err(e) => (Vec::new(), Some(e.to_string())),
                    };
                    // Bounded: a host that does not read events loses this one, as any.
                    let _ = events.try_send(EngineEvent::ProxiesQueued {
                        media: file,
                        jobs,
                        error,
                    });
                }
            });
        spawned.map(drop).map_err(|e| PlayerError::Io {
            path: "<proxy probe thread>".into(),
            source: e,
        })
    }

    /// Every proxy job (empty without proxies).
    pub fn proxy_status(&self) -> Vec<ProxyJobStatus> {
        self.proxies
            .as_ref()
            .map(|(m, _)| m.status())
            .unwrap_or_default()
    }

    /// All proxy jobs together.
    pub fn proxy_progress(&self) -> ProxyProgress {
        self.proxies
            .as_ref()
            .map(|(m, _)| m.progress())
            .unwrap_or_default()
    }

    /// Cancels one proxy job; returns whether it was active.
    pub fn cancel_proxy(&self, id: JobId) -> bool {
        self.proxies.as_ref().is_some_and(|(m, _)| m.cancel(id))
    }

    /// The metrics as of the last tick.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .metrics
    }

    /// Every cache tier's statistics as of the last tick.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cache
    }

    /// The quality controller's rung, as of the last tick (see
    /// [`PlaybackEngine::adaptive_quality`]).
    pub fn adaptive_quality(&self) -> Option<framelock_components::AdaptiveQuality> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .adaptive
            .clone()
    }

    /// Applies a quality preset (see [`PlaybackEngine::set_quality_mode`]) between two ticks.
    pub fn set_quality_mode(&self, mode: crate::QualityMode) {
        self.send(Command::QualityMode(mode));
    }

    /// Empties a cache (see [`PlaybackEngine::clear_cache`]), between two ticks of the
    /// player's loop; waits for the answer (at most a few seconds).
    pub fn clear_cache(&self, what: ClearCache) -> Result<ClearedCache, PlayerError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::ClearCache(what, tx));
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| PlayerError::Stopped)?
    }

    /// Runs `f` on the engine between two ticks and returns its answer (waits at most a
    /// tick for it, ten seconds when the loop is stuck).
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PlaybackEngine) -> T + Send + 'static,
    ) -> Result<T, PlayerError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Call(Box::new(move |e| {
            let _ = tx.try_send(f(e));
        })));
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| PlayerError::Stopped)
    }

    /// The Performance API's metrics ([`PlaybackEngine::get_metrics`]): fps, frame times,
    /// decode cost per source, memory against the budget, GPU status, proxy progress.
    pub fn get_metrics(&self) -> Result<crate::PerformanceMetrics, PlayerError> {
        self.call(|e| e.get_metrics())
    }

    /// Suggestions from measurements and the timeline performance map
    /// ([`PlaybackEngine::run_optimization`]).
    pub fn run_optimization(&self) -> Result<crate::OptimizationReport, PlayerError> {
        self.call(|e| e.run_optimization())
    }

    /// Applies a suggestion's action ([`PlaybackEngine::apply`]); proxies are queued with
    /// [`Player::generate_proxies_later`] (returns at once, reports by event).
    pub fn apply(&self, action: crate::OptimizationAction) -> Result<(), PlayerError> {
        match action {
            crate::OptimizationAction::GenerateProxies(files) => self.generate_proxies_later(files),
            other => self.call(move |e| e.apply(&other))?,
        }
    }

    /// The playhead as of the last tick.
    pub fn playhead(&self) -> Option<Playhead> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .playhead
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self
            .commands
            .send_timeout(Command::Stop, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut engine: PlaybackEngine,
    rx: &Receiver<Command>,
    shared: &Mutex<Shared>,
    slot: &FrameSlot,
) {
    loop {
        let mut scrub = None;
        let mut applied = 0;
        for c in rx.try_iter() {
            if matches!(
                c,
                Command::Play | Command::Pause | Command::SeekFrame(_) | Command::Step(_)
            ) {
                applied += 1;
            }
            match c {
                Command::Play => engine.play(),
                Command::Pause => engine.pause(),
                Command::Seek(s) => engine.seek(s),
                Command::SeekFrame(f) => engine.seek_frame(f),
                Command::Scrub(s) => scrub = Some(s),
                Command::Rate(r) => engine.set_rate(r),
                Command::UseProxy(u) => engine.set_use_proxy(u),
                Command::ClearCache(what, reply) => {
                    let _ = reply.try_send(engine.clear_cache(what));
                }
                Command::ClearCacheLater(what) => {
                    let event = match engine.clear_cache(what) {
                        Ok(c) => EngineEvent::CacheCleared {
                            ram_entries: c.ram_entries,
                            disk_entries: c.disk_entries,
                            vram_bytes: c.vram_bytes,
                            proxy_files: c.proxy_files,
                            error: None,
                        },
                        Err(e) => EngineEvent::CacheCleared {
                            ram_entries: 0,
                            disk_entries: 0,
                            vram_bytes: 0,
                            proxy_files: 0,
                            error: Some(e.to_string()),
                        },
                    };
                    engine.emit(event);
                }
                Command::Step(n) => {
                    let to = step_target(&engine.playhead(), n);
                    engine.pause();
                    engine.seek_frame(to);
                }
                Command::Quality(edit) => edit(&mut engine.quality_mut()),
                Command::QualityMode(mode) => engine.set_quality_mode(mode),
                Command::Call(f) => f(&mut engine),
                Command::Stop => return,
            }
        }
        if let Some(s) = scrub {
            engine.scrub(s);
        }
        engine.tick();
        let mut sh = shared.lock().unwrap_or_else(PoisonError::into_inner);
        sh.metrics = engine.metrics();
        sh.metrics.sink_late = slot.late();
        sh.unapplied = sh.unapplied.saturating_sub(applied);
        if sh.unapplied == 0 {
            sh.playhead = Some(engine.playhead());
        }
        sh.cache = Some(engine.cache_stats());
        sh.adaptive = Some(engine.adaptive_quality());
    }
}

/// The frame `frames` away from the playhead's, inside the timeline.
fn step_target(p: &Playhead, frames: i64) -> u64 {
    let last = p.duration.saturating_sub(1);
    p.frame.saturating_add_signed(frames).min(last)
}

/// `frame` at `rate` as `HH:MM:SS:FF`, non-drop-frame (a nominal whole rate: 30 for 29.97).
fn timecode(frame: u64, rate: Rational) -> String {
    let fps = (rate.num.max(1)).div_ceil(rate.den.max(1)).max(1);
    let (ff, s) = (frame % fps, frame / fps);
    format!("{:02}:{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60, ff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timecodes_and_steps() {
        assert_eq!(timecode(0, Rational::integer(30)), "00:00:00:00");
        assert_eq!(
            timecode(30 * 3661 + 7, Rational::integer(30)),
            "01:01:01:07"
        );
        assert_eq!(
            timecode(29, Rational::new(30000, 1001).unwrap()),
            "00:00:00:29"
        );
        assert_eq!(timecode(48, Rational::integer(24)), "00:00:02:00");
        let mut p = Playhead::new(100);
        p.frame = 5;
        assert_eq!(step_target(&p, -10), 0);
        assert_eq!(step_target(&p, 3), 8);
        assert_eq!(step_target(&p, 1000), 99);
    }
}
