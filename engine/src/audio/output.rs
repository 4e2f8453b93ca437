//! Real-time output: the [`Mixer`] runs on its own thread, ahead of the listener, into a
//! bounded ring of chunks; the host's audio callback pulls from it ([`AudioPull::pull`]),
//! which never blocks on the mixer (an empty ring reads as silence and is counted as an
//! underrun). A seek bumps a generation (as ffplay's packet serials do): chunks mixed for an
//! older position are dropped unheard, so the first sample pulled after a seek is the new
//! position's.
//!
//! [`AudioOutput::position`] is the frame the listener hears now: frames pulled, less the
//! latency the host reports for its device — the audio clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use framelock_components::AudioFormat;

use super::Mixer;
use crate::memory::{Accounted, BufferPool, PoolClass};

/// Frames the worker mixes at a time.
pub const CHUNK_FRAMES: usize = 1024;

struct Chunk {
    generation: u64,
    /// Output frame of its first sample.
    start: u64,
    data: Vec<f32>,
    /// Samples already pulled.
    read: usize,
}

#[derive(Default)]
struct Ring {
    chunks: VecDeque<Chunk>,
    frames: usize,
    /// Where the worker mixes next, and for which generation.
    next: u64,
    generation: u64,
    playing: bool,
    /// Frames that may still be heard while paused: a scrub's snippet.
    snippet: usize,
    stop: bool,
    error: Option<String>,
    /// A new timeline for the mixer to lay out before it mixes on ([`AudioOutput::relayout`]).
    layout: Option<Box<framelock_components::Project>>,
}

struct Shared {
    ring: Mutex<Ring>,
    wake: Condvar,
    channels: usize,
    capacity: usize,
    /// The frame after the last one pulled, and the device latency (frames) the host reports.
    pulled: AtomicU64,
    /// The frame of the last seek: the clock never reads before it (nothing of the new
    /// position is heard yet while the device's latency drains).
    base: AtomicU64,
    latency: AtomicU64,
    underruns: AtomicU64,
    /// Frames of real mix ever pulled (seeks do not move it): whether a device is pulling.
    heard: AtomicU64,
}

fn lock(s: &Shared) -> MutexGuard<'_, Ring> {
    s.ring
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The host's end: pull mixed samples from the audio callback.
#[derive(Clone)]
pub struct AudioPull(Arc<Shared>);

impl std::fmt::Debug for AudioPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioPull")
    }
}

impl AudioPull {
    /// Fills `out` (interleaved) with what plays next; silence where nothing is mixed yet
    /// (counted) or while paused. Never waits for the mixer. Returns the frames that were
    /// real mix, not silence.
    pub fn pull(&self, out: &mut [f32]) -> usize {
        let s = &self.0;
        let ch = s.channels;
        let mut ring = lock(s);
        out.fill(0.0);
        if !ring.playing && ring.snippet == 0 {
            return 0;
        }
        // Paused, a scrub's snippet plays to its end, then silence.
        let want = if ring.playing {
            out.len()
        } else {
            out.len().min(ring.snippet * ch)
        };
        let out = &mut out[..want];
        let mut done = 0usize;
        let mut position = s.pulled.load(Ordering::Acquire);
        while done < out.len() {
            let generation = ring.generation;
            let Some(front) = ring.chunks.front_mut() else {
                break;
            };
            if front.generation != generation {
                let n = (front.data.len() - front.read) / ch;
                ring.frames -= n;
                ring.chunks.pop_front();
                continue;
            }
            if front.read == 0 {
                position = front.start;
            }
            let n = (front.data.len() - front.read).min(out.len() - done);
            out[done..done + n].copy_from_slice(&front.data[front.read..front.read + n]);
            front.read += n;
            done += n;
            position += (n / ch) as u64;
            if front.read == front.data.len() {
                ring.chunks.pop_front();
            }
            ring.frames -= n / ch;
        }
        if done < out.len() {
            s.underruns.fetch_add(1, Ordering::Relaxed);
        }
        if !ring.playing {
            ring.snippet = ring.snippet.saturating_sub(done / ch);
        }
        s.pulled.store(position, Ordering::Release);
        s.heard.fetch_add((done / ch) as u64, Ordering::Release);
        drop(ring);
        s.wake.notify_all();
        done / ch
    }

    /// Tells the engine the device plays a pulled sample `frames` frames later (its
    /// buffer): the audio clock subtracts it.
    pub fn set_latency(&self, frames: u64) {
        self.0.latency.store(frames, Ordering::Release);
    }
}

/// The mixer on its own thread, and the ring the host pulls from.
pub struct AudioOutput {
    shared: Arc<Shared>,
    format: AudioFormat,
    /// The ring's bytes in the engine's pool, when counted.
    counted: Mutex<Option<Accounted>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AudioOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioOutput")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl AudioOutput {
    /// Starts the mixer thread with a ring of `ring_frames` frames (paused, at frame 0).
    pub fn start(mut mixer: Mixer, ring_frames: usize) -> Self {
        let format = mixer.format();
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring::default()),
            wake: Condvar::new(),
            channels: usize::from(format.channels),
            capacity: ring_frames.max(CHUNK_FRAMES),
            pulled: AtomicU64::new(0),
            base: AtomicU64::new(0),
            latency: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            heard: AtomicU64::new(0),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("framelock-audio-mix".into())
            .spawn(move || {
                crate::profile::set_thread_name("framelock-audio-mix");
                let ch = s.channels;
                loop {
                    let (start, generation, layout) = {
                        let mut ring = lock(&s);
                        while !ring.stop && ring.frames + CHUNK_FRAMES > s.capacity {
                            ring = s
                                .wake
                                .wait(ring)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                        if ring.stop {
                            return;
                        }
                        (ring.next, ring.generation, ring.layout.take())
                    };
                    // A timeline edit: opening new files happens here, on the mixer's
                    // thread, never on the engine's.
                    if let Some(project) = layout
                        && let Err(e) = mixer.relayout(&project)
                    {
                        lock(&s).error.get_or_insert(e.to_string());
                    }
                    let mut data = vec![0.0f32; CHUNK_FRAMES * ch];
                    // A decoder that panics on damaged data stops the sound, not the
                    // process: the error is kept and the ring plays silence from then on.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        mixer.render(start, &mut data)
                    }))
                    .unwrap_or_else(|_| {
                        Err(super::AudioError::Unsupported {
                            path: std::path::PathBuf::new(),
                            reason: "the audio decoder panicked on damaged data".into(),
                        })
                    });
                    let mut ring = lock(&s);
                    if let Err(e) = result {
                        ring.error.get_or_insert(e.to_string());
                    }
                    // A seek while mixing: this chunk is for the old position.
                    if ring.generation != generation {
                        continue;
                    }
                    ring.next = start + CHUNK_FRAMES as u64;
                    ring.frames += CHUNK_FRAMES;
                    ring.chunks.push_back(Chunk {
                        generation,
                        start,
                        data,
                        read: 0,
                    });
                }
            })
            .ok();
        Self {
            shared,
            format,
            counted: Mutex::new(None),
            worker,
        }
    }

    /// Counts the ring (its whole capacity: the mixer keeps it full) in `pool`'s audio
    /// class, in the memory budget.
    pub fn count_in(&self, pool: &BufferPool) {
        let mut counted = pool.account(PoolClass::Audio);
        counted.set(self.ring_bytes());
        *self
            .counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(counted);
    }

    /// Bytes of mixed samples the ring holds when full.
    pub fn ring_bytes(&self) -> usize {
        self.shared.capacity * self.shared.channels * size_of::<f32>()
    }

    /// The host's end.
    pub fn pull_handle(&self) -> AudioPull {
        AudioPull(self.shared.clone())
    }

    /// Starts or pauses what pulls return (paused: silence, the position holds).
    pub fn set_playing(&self, playing: bool) {
        lock(&self.shared).playing = playing;
    }

    /// Moves to output frame `frame`: what was mixed for the old position is never heard.
    /// Returns at once (the mixer catches up on its thread).
    pub fn seek(&self, frame: u64) {
        let s = &self.shared;
        let mut ring = lock(s);
        ring.generation += 1;
        ring.next = frame;
        ring.chunks.clear();
        ring.frames = 0;
        ring.snippet = 0;
        s.pulled.store(frame, Ordering::Release);
        s.base.store(frame, Ordering::Release);
        drop(ring);
        s.wake.notify_all();
    }

    /// Lays the mix out for `project` after a timeline edit, from the frame being heard on:
    /// what was mixed ahead from the old timeline is never heard, and the mixer's thread
    /// opens any new file. Returns at once. The clock does not move.
    pub fn relayout(&self, project: &framelock_components::Project) {
        let s = &self.shared;
        let mut ring = lock(s);
        ring.layout = Some(Box::new(project.clone()));
        ring.generation += 1;
        ring.next = s.pulled.load(Ordering::Acquire);
        ring.chunks.clear();
        ring.frames = 0;
        drop(ring);
        s.wake.notify_all();
    }

    /// A scrub: moves to output frame `frame` as [`AudioOutput::seek`] does, and while
    /// paused lets `frames` frames from there be heard (a snippet, as editors play under a
    /// dragged playhead); a later seek or scrub cuts it short. Playing, it is a seek.
    pub fn scrub(&self, frame: u64, frames: usize) {
        self.seek(frame);
        lock(&self.shared).snippet = frames;
    }

    /// The frame the listener hears now (the audio clock): frames pulled less the device
    /// latency, never before the last seek's frame.
    pub fn position(&self) -> u64 {
        let s = &self.shared;
        s.pulled
            .load(Ordering::Acquire)
            .saturating_sub(s.latency.load(Ordering::Acquire))
            .max(s.base.load(Ordering::Acquire))
    }

    /// Frames of mix ever pulled by the host (a seek does not change it): while it grows, a
    /// device is listening.
    pub fn frames_heard(&self) -> u64 {
        self.shared.heard.load(Ordering::Acquire)
    }

    /// The output format (the mixer's).
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames mixed and waiting in the ring.
    pub fn buffered(&self) -> usize {
        lock(&self.shared).frames
    }

    /// Pulls that found the ring short (silence was played).
    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }

    /// The first error the mixer met (a source that stopped reading), if any.
    pub fn error(&self) -> Option<String> {
        lock(&self.shared).error.clone()
    }

    /// Waits (on the caller's thread: tests, export, never a system) until the ring holds
    /// at least `frames` frames of the current position, or `timeout` passes.
    pub fn wait_buffered(&self, frames: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.buffered() < frames.min(self.shared.capacity - CHUNK_FRAMES) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }
}

impl Drop for AudioOutput {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
