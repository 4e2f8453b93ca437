//! Where the mix is heard: an [`AudioSink`] pulls from the engine's ring ([`AudioPull`]) on
//! its own thread or device callback, and reports its latency, which makes the audio clock.
//!
//! - A host with its own audio callback (a webview, its own cpal stream) calls
//!   [`AudioPull::pull`] from it directly, or wraps that as a sink with [`CallbackSink`].
//! - [`NullSink`] plays to nowhere at the wall clock's pace (optionally a little fast or slow,
//!   like a real device's crystal): benchmarks, headless hosts, tests.
//! - [`CpalSink`] (cargo feature `cpal`, needs `libasound2-dev` on Linux) plays on the
//!   system's default output device.
//!
//! A sink stops pulling when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framelock_components::AudioFormat;

use super::AudioPull;

/// Why a sink cannot play.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// There is no output device (a server, a container, no sound card).
    #[error("no audio output device: {0}")]
    NoDevice(String),
    /// The device cannot play the mixer's format.
    #[error("the audio device {device} cannot play {format}: {reason}")]
    Unsupported {
        /// The device.
        device: String,
        /// The mixer's format, in words.
        format: String,
        /// What the device said.
        reason: String,
    },
    /// The project has no audio to play.
    #[error("the project has no audio to play")]
    NothingToPlay,
    /// The device or the sink's thread failed.
    #[error("audio output failed: {0}")]
    Failed(String),
}

/// An audio output the engine drives: it pulls the mix from `pull` at its own pace.
pub trait AudioSink: Send {
    /// What it plays to, in words (for messages: "default device (ALSA)", "null").
    fn name(&self) -> String;

    /// Starts pulling `format` samples from `pull` (from a thread or callback of its own; it
    /// never blocks the caller) and telling it its latency ([`AudioPull::set_latency`]).
    fn start(&mut self, pull: AudioPull, format: AudioFormat) -> Result<(), SinkError>;
}

impl std::fmt::Debug for dyn AudioSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioSink({})", self.name())
    }
}

/// A host's own output as a sink: `start` hands the pull end to the closure, which keeps it
/// and calls [`AudioPull::pull`] from its audio callback.
pub struct CallbackSink<F> {
    name: String,
    start: F,
}

impl<F> CallbackSink<F>
where
    F: FnMut(AudioPull, AudioFormat) -> Result<(), SinkError> + Send,
{
    /// A sink named `name` started by `start`.
    pub fn new(name: impl Into<String>, start: F) -> Self {
        Self {
            name: name.into(),
            start,
        }
    }
}

impl<F> AudioSink for CallbackSink<F>
where
    F: FnMut(AudioPull, AudioFormat) -> Result<(), SinkError> + Send,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&mut self, pull: AudioPull, format: AudioFormat) -> Result<(), SinkError> {
        (self.start)(pull, format)
    }
}

/// Plays to nowhere, in real time: a thread pulls a period of samples every period of wall
/// time (times `speed`), like a device with that buffer. Counts what it pulled.
#[derive(Debug)]
pub struct NullSink {
    period: Duration,
    speed: f64,
    pulled: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Default for NullSink {
    fn default() -> Self {
        Self::new()
    }
}

impl NullSink {
    /// A sink pulling every 10 ms at exactly the wall clock's rate.
    pub fn new() -> Self {
        Self {
            period: Duration::from_millis(10),
            speed: 1.0,
            pulled: Arc::default(),
            stop: Arc::default(),
            thread: None,
        }
    }

    /// Plays `speed` times as fast as the wall clock (1.001: a device 0.1% fast).
    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        self
    }

    /// Pulls every `period` (its latency: one period).
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(1));
        self
    }

    /// A counter of the frames of real mix it has pulled (not silence).
    pub fn pulled(&self) -> Arc<AtomicU64> {
        self.pulled.clone()
    }
}

impl AudioSink for NullSink {
    fn name(&self) -> String {
        "null (no device, real time)".into()
    }

    fn start(&mut self, pull: AudioPull, format: AudioFormat) -> Result<(), SinkError> {
        if self.thread.is_some() {
            return Err(SinkError::Failed("the null sink is already playing".into()));
        }
        let rate = f64::from(format.sample_rate) * self.speed;
        let channels = usize::from(format.channels.max(1));
        let period = self.period;
        let (pulled, stop) = (self.pulled.clone(), self.stop.clone());
        pull.set_latency((period.as_secs_f64() * f64::from(format.sample_rate)) as u64);
        let thread = std::thread::Builder::new()
            .name("framelock-audio-null".into())
            .spawn(move || {
                let started = Instant::now();
                let mut done = 0u64;
                let mut buf = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    // Frames due by now, in whole periods' worth at most per pull.
                    let due = (started.elapsed().as_secs_f64() * rate) as u64;
                    let n = due.saturating_sub(done) as usize;
                    if n > 0 {
                        buf.resize(n * channels, 0.0);
                        let real = pull.pull(&mut buf);
                        pulled.fetch_add(real as u64, Ordering::AcqRel);
                        done += n as u64;
                    }
                    std::thread::sleep(period);
                }
            })
            .map_err(|e| SinkError::Failed(format!("cannot start the null sink's thread: {e}")))?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "cpal")]
pub use device::CpalSink;

#[cfg(feature = "cpal")]
mod device {
    use std::sync::mpsc;

    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

    use super::*;

    /// The system's default output device (cpal: ALSA on Linux, CoreAudio, WASAPI). The
    /// stream lives on a thread of its own (cpal streams are not `Send` everywhere); its
    /// callback pulls from the ring and reports the device's latency from cpal's playback
    /// timestamps.
    #[derive(Debug, Default)]
    pub struct CpalSink {
        device: Option<String>,
        stop: Option<mpsc::SyncSender<()>>,
        thread: Option<JoinHandle<()>>,
        errors: Arc<AtomicU64>,
    }

    impl CpalSink {
        /// The default output device (opened by [`AudioSink::start`]).
        pub fn new() -> Self {
            Self::default()
        }

        /// Errors the device reported while playing (an xrun, a device unplugged).
        pub fn errors(&self) -> u64 {
            self.errors.load(Ordering::Relaxed)
        }

        /// Whether the system has a default output device at all.
        pub fn device_available() -> bool {
            cpal::default_host().default_output_device().is_some()
        }
    }

    fn open(
        pull: AudioPull,
        format: AudioFormat,
        errors: Arc<AtomicU64>,
    ) -> Result<(cpal::Stream, String), SinkError> {
        let host = cpal::default_host();
        let device = host.default_output_device().ok_or_else(|| {
            SinkError::NoDevice(format!("{} has no default output", host.id().name()))
        })?;
        let name = device.name().unwrap_or_else(|_| "default".into());
        let name = format!("{name} ({})", host.id().name());
        let words = format!("{} Hz, {} channels", format.sample_rate, format.channels);
        let unsupported = |reason: String| SinkError::Unsupported {
            device: name.clone(),
            format: words.clone(),
            reason,
        };
        let channels = format.channels;
        let configs = match device.supported_output_configs() {
            Ok(c) => c,
            // ALSA names a "default" device even where there is no card.
            Err(cpal::SupportedStreamConfigsError::DeviceNotAvailable) => {
                return Err(SinkError::NoDevice(format!(
                    "{name} is not available (no sound card?)"
                )));
            }
            Err(e) => return Err(unsupported(e.to_string())),
        };
        let fits = configs
            .filter(|c| c.channels() == channels && c.sample_format() == cpal::SampleFormat::F32)
            .any(|c| (c.min_sample_rate().0..=c.max_sample_rate().0).contains(&format.sample_rate));
        if !fits {
            return Err(unsupported("no f32 configuration at that rate".into()));
        }
        let config = cpal::StreamConfig {
            channels,
            sample_rate: cpal::SampleRate(format.sample_rate),
            buffer_size: cpal::BufferSize::Default,
        };
        let rate = f64::from(format.sample_rate);
        let stream = device
            .build_output_stream(
                &config,
                move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
                    let t = info.timestamp();
                    if let Some(ahead) = t.playback.duration_since(&t.callback) {
                        pull.set_latency((ahead.as_secs_f64() * rate) as u64);
                    }
                    pull.pull(data);
                },
                move |_| {
                    errors.fetch_add(1, Ordering::Relaxed);
                },
                None,
            )
            .map_err(|e| unsupported(e.to_string()))?;
        stream
            .play()
            .map_err(|e| SinkError::Failed(format!("{name}: {e}")))?;
        Ok((stream, name))
    }

    impl AudioSink for CpalSink {
        fn name(&self) -> String {
            self.device
                .clone()
                .unwrap_or_else(|| "default output device".into())
        }

        fn start(&mut self, pull: AudioPull, format: AudioFormat) -> Result<(), SinkError> {
            if self.thread.is_some() {
                return Err(SinkError::Failed("the device is already playing".into()));
            }
            let (opened_tx, opened_rx) = mpsc::sync_channel(1);
            let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
            let errors = self.errors.clone();
            let thread = std::thread::Builder::new()
                .name("framelock-audio-device".into())
                .spawn(move || match open(pull, format, errors) {
                    Ok((stream, name)) => {
                        let _ = opened_tx.send(Ok(name));
                        // Until stopped (or the sink is dropped): the stream plays from
                        // its own callback thread.
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                })
                .map_err(|e| SinkError::Failed(format!("cannot start the device thread: {e}")))?;
            // Opening a device takes milliseconds; this is the host's call, not a tick.
            let opened = opened_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| SinkError::Failed("the audio device did not open in 5 s".into()))?;
            match opened {
                Ok(name) => {
                    self.device = Some(name);
                    self.stop = Some(stop_tx);
                    self.thread = Some(thread);
                    Ok(())
                }
                Err(e) => {
                    let _ = thread.join();
                    Err(e)
                }
            }
        }
    }

    impl Drop for CpalSink {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
