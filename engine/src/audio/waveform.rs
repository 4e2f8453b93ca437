//! Waveforms: min/max peaks of a file's audio (its channels mixed to mono, at its own rate)
//! at several zoom levels, computed on a background thread and kept on disk beside the frame
//! cache, keyed by the file's fingerprint, so an editor draws a waveform at once the next time.
//!
//! The file format (`<fingerprint>.peaks`) is a flat little-endian array: it holds nothing a
//! serializer would add value to (a magic, a version, the rate, per level its samples per
//! peak and count, then the min/max pairs as f32) and is read back in one `read`; an xxh3 of
//! everything before it closes the file, and a file that does not check out is recomputed.
//! Written atomically (temp + rename).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::xxh3_64;

use super::{AudioError, AudioSource};

/// Samples per peak of each level, finest first.
pub const LEVELS: [u32; 4] = [256, 1024, 4096, 16384];

const MAGIC: &[u8; 4] = b"FLPK";
const VERSION: u32 = 1;
/// Files waiting for the waveform thread at most.
const QUEUE: usize = 1024;

/// One zoom level: `(min, max)` over each run of `samples_per_peak` source samples.
#[derive(Clone, Debug, PartialEq)]
pub struct PeakLevel {
    /// Source samples (per channel) each peak covers.
    pub samples_per_peak: u32,
    /// The peaks, in order.
    pub peaks: Vec<(f32, f32)>,
}

/// A file's waveform.
#[derive(Clone, Debug, PartialEq)]
pub struct Peaks {
    /// The source's sample rate (peak `i` of a level starts at `i * samples_per_peak / rate`
    /// seconds).
    pub rate: u32,
    /// The levels, finest first.
    pub levels: Vec<PeakLevel>,
}

impl Peaks {
    /// Reads `path`'s audio through and computes every level.
    pub fn compute(path: &Path) -> Result<Self, AudioError> {
        crate::profile_function!();
        let mut src = AudioSource::open(path)?;
        let ch = src.channels();
        let rate = src.rate();
        let mut levels: Vec<PeakLevel> = LEVELS
            .iter()
            .map(|&n| PeakLevel {
                samples_per_peak: n,
                peaks: Vec::new(),
            })
            .collect();
        // The finest level from the samples; each coarser one from the finest (every level's
        // run is a whole number of finest runs).
        let fine = LEVELS[0] as usize;
        let block = fine * 256;
        let total = src.frames();
        let mut at = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let want = match total {
                Some(t) if at >= t => break,
                Some(t) => (t - at).min(block as u64) as usize,
                None => block,
            };
            src.read(at, want, &mut buf)?;
            for run in buf.chunks(fine * ch) {
                let mut lo = f32::INFINITY;
                let mut hi = f32::NEG_INFINITY;
                for frame in run.chunks_exact(ch) {
                    let v = frame.iter().sum::<f32>() / ch as f32;
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                levels[0].peaks.push((lo, hi));
            }
            at += want as u64;
            if total.is_none() && buf.iter().all(|v| *v == 0.0) {
                // No length in the container: stop at the first all-silent block past the
                // end (a read past the end is silence).
                break;
            }
        }
        for l in 1..levels.len() {
            let k = (LEVELS[l] / LEVELS[0]) as usize;
            let coarse = levels[0]
                .peaks
                .chunks(k)
                .map(|c| {
                    c.iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (lo, hi)| {
                            (a.min(*lo), b.max(*hi))
                        })
                })
                .collect();
            levels[l].peaks = coarse;
        }
        Ok(Self { rate, levels })
    }

    /// The level closest to `samples_per_peak` (at least as fine).
    pub fn level(&self, samples_per_peak: u32) -> Option<&PeakLevel> {
        self.levels
            .iter()
            .rev()
            .find(|l| l.samples_per_peak <= samples_per_peak)
            .or(self.levels.first())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.rate.to_le_bytes());
        b.extend_from_slice(&(self.levels.len() as u32).to_le_bytes());
        for l in &self.levels {
            b.extend_from_slice(&l.samples_per_peak.to_le_bytes());
            b.extend_from_slice(&(l.peaks.len() as u64).to_le_bytes());
        }
        for l in &self.levels {
            for (lo, hi) in &l.peaks {
                b.extend_from_slice(&lo.to_le_bytes());
                b.extend_from_slice(&hi.to_le_bytes());
            }
        }
        let sum = xxh3_64(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let (body, sum) = b.split_at_checked(b.len().checked_sub(8)?)?;
        if xxh3_64(body).to_le_bytes() != sum {
            return None;
        }
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = body.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        if take(4)? != MAGIC || u32_at(take(4)?) != VERSION {
            return None;
        }
        let rate = u32_at(take(4)?);
        let n = u32_at(take(4)?) as usize;
        let mut shape = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let spp = u32_at(take(4)?);
            let count = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
            shape.push((spp, count));
        }
        let mut levels = Vec::with_capacity(shape.len());
        for (spp, count) in shape {
            let raw = take(count.checked_mul(8)?)?;
            let peaks = raw
                .chunks_exact(8)
                .map(|c| {
                    let f = |s: &[u8]| f32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
                    (f(&c[..4]), f(&c[4..]))
                })
                .collect();
            levels.push(PeakLevel {
                samples_per_peak: spp,
                peaks,
            });
        }
        Some(Self { rate, levels })
    }
}

/// Where a waveform stands.
#[derive(Clone, Debug)]
pub enum WaveformState {
    /// Being computed.
    Pending,
    /// Ready.
    Ready(Arc<Peaks>),
    /// The file's audio cannot be read.
    Failed(String),
}

type States = Arc<Mutex<HashMap<PathBuf, WaveformState>>>;

/// Computes waveforms on one background thread, keeps them on disk when given a folder.
#[derive(Clone, Debug)]
pub struct Waveforms {
    states: States,
    queue: crossbeam_channel::Sender<(PathBuf, Option<PathBuf>)>,
    dir: Option<PathBuf>,
}

impl Waveforms {
    /// A service storing peaks in `dir` (`None`: in memory only).
    pub fn new(dir: Option<PathBuf>) -> Self {
        let (queue, jobs) = crossbeam_channel::bounded::<(PathBuf, Option<PathBuf>)>(QUEUE);
        let states: States = Arc::default();
        let s = states.clone();
        let _ = std::thread::Builder::new()
            .name("framelock-waveforms".into())
            .spawn(move || {
                crate::profile::set_thread_name("framelock-waveforms");
                for (path, file) in jobs {
                    let state = load_or_compute(&path, file.as_deref());
                    if let Ok(mut m) = s.lock() {
                        m.insert(path, state);
                    }
                }
            });
        Self { states, queue, dir }
    }

    /// Asks for `path`'s waveform (once; later calls are free). `fingerprint` names its
    /// file on disk.
    pub fn request(&self, path: &Path, fingerprint: u64) {
        let Ok(mut m) = self.states.lock() else {
            return;
        };
        if m.contains_key(path) {
            return;
        }
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{fingerprint:016x}.peaks")));
        // A full queue leaves it unrequested: asking again later queues it.
        if self.queue.try_send((path.to_path_buf(), file)).is_ok() {
            m.insert(path.to_path_buf(), WaveformState::Pending);
        }
    }

    /// `path`'s waveform: `None` when never requested.
    pub fn get(&self, path: &Path) -> Option<WaveformState> {
        self.states.lock().ok()?.get(path).cloned()
    }
}

fn load_or_compute(path: &Path, file: Option<&Path>) -> WaveformState {
    if let Some(f) = file
        && let Ok(bytes) = std::fs::read(f)
        && let Some(p) = Peaks::from_bytes(&bytes)
    {
        return WaveformState::Ready(Arc::new(p));
    }
    match Peaks::compute(path) {
        Ok(p) => {
            if let Some(f) = file {
                // A failed write only costs a recompute next time.
                let _ = store(f, &p);
            }
            WaveformState::Ready(Arc::new(p))
        }
        Err(e) => WaveformState::Failed(e.to_string()),
    }
}

fn store(file: &Path, peaks: &Peaks) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = crate::fs::AtomicFile::create(file)?;
    f.write_all(&peaks.to_bytes())?;
    f.commit()
}

/// Reads stored peaks (tests).
pub fn read_stored(file: &Path) -> Option<Peaks> {
    Peaks::from_bytes(&std::fs::read(file).ok()?)
}
