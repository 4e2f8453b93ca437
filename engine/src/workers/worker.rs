//! One decode thread: its decoders (up to [`READERS_PER_ASSET`] per asset), the frames it
//! passed on the way to requested ones, and its jobs, taken in order off its channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::budget::{DecoderBytes, DecoderGuard};
use super::{DecodeDone, DecodeJob, InFlight, WALL_EPOCH, Withdrawn};
use crate::app::Clock;
use crate::cache::DiskCache;
use crate::media::{DecoderRegistry, MediaError, Picture, VideoReader};
use crate::memory::BufferPool;
use crate::signal::Progress;

/// Decoders a worker keeps per asset.
pub(super) const READERS_PER_ASSET: usize = 2;

/// How long a decoder waits for room in the budget before it opens over it (see
/// `Worker::reader_for`).
pub(super) const NO_ROOM_WAIT: Duration = Duration::from_millis(500);

/// A decoder used within this many of its worker's last decodes serves a lane still going.
pub(super) const BUSY_USES: u64 = 8;

/// An open decoder of a worker.
pub(super) struct Open {
    /// The worker's use count when it last decoded.
    pub(super) used: u64,
    /// The lane of the job it last decoded.
    pub(super) lane: u64,
    pub(super) reader: VideoReader,
    /// Its state, counted in the budget (`None` without a pool).
    pub(super) _counted: Option<DecoderGuard>,
}

pub(super) struct Worker {
    pub(super) registry: DecoderRegistry,
    /// Per asset, at most [`READERS_PER_ASSET`].
    pub(super) readers: HashMap<u64, Vec<Open>>,
    pub(super) uses: u64,
    pub(super) done: Sender<DecodeDone>,
    pub(super) generation: Arc<AtomicU64>,
    /// The generation of the job being decoded: its readers stop between two packets once
    /// the pool's generation is past it.
    pub(super) job_generation: Arc<AtomicU64>,
    pub(super) in_flight: InFlight,
    /// See [`DecodePoolOptions::clock`].
    pub(super) clock: Option<Arc<dyn Clock>>,
    pub(super) dropped_stale: Arc<AtomicU64>,
    pub(super) withdrawn: Withdrawn,
    /// Frames decoded on the way to requested ones, oldest first.
    pub(super) kept: VecDeque<(u64, Arc<Picture>)>,
    pub(super) kept_bytes: usize,
    pub(super) kept_budget: usize,
    /// Per asset, since when its decoder has found no room.
    pub(super) no_room: HashMap<u64, Instant>,
    pub(super) pool: Option<BufferPool>,
    pub(super) disk: Option<DiskCache>,
    pub(super) progress: Progress,
    /// See [`DecodePoolOptions::decoder_room`].
    pub(super) decoder_room: Option<usize>,
    /// Open decoders in the budget (with a pool).
    pub(super) decoder_bytes: Option<Arc<DecoderBytes>>,
}

impl Worker {
    pub(super) fn run(mut self, jobs: &Receiver<DecodeJob>) {
        if let Some(name) = std::thread::current().name() {
            crate::profile::set_thread_name(name);
        }
        loop {
            let job = match jobs.recv_timeout(Duration::from_millis(20)) {
                Ok(job) => job,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    // Idle: another worker may need room for a decoder.
                    self.shed_for_others(None);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            if job.generation < self.generation.load(Ordering::SeqCst) || self.withdrawn.take(&job)
            {
                self.dropped_stale.fetch_add(1, Ordering::SeqCst);
                self.in_flight.done();
                self.progress.bump();
                continue;
            }
            let start = self.now();
            let from_disk = match (&self.disk, job.cache_key) {
                (Some(disk), Some(key)) => {
                    crate::profile_scope!("disk read");
                    disk.get(key).and_then(|v| v.to_frame(self.pool.as_ref()))
                }
                _ => None,
            };
            let hit = from_disk.is_some();
            let result = match from_disk {
                Some(frame) => Ok(Arc::new(frame)),
                None => {
                    crate::profile_scope!("decode job");
                    self.job_generation.store(job.generation, Ordering::SeqCst);
                    self.decode(&job)
                }
            };
            // Made stale by a seek while it decoded: dropped like a stale queued job.
            if matches!(result, Err(MediaError::Cancelled)) {
                self.dropped_stale.fetch_add(1, Ordering::SeqCst);
                self.in_flight.done();
                self.progress.bump();
                continue;
            }
            let done = DecodeDone {
                asset_id: job.asset_id,
                frame: job.frame,
                generation: job.generation,
                result,
                decode_time: self.now().saturating_sub(start),
                from_disk: hit,
            };
            // Over the room after it (frames landed, other workers' decoders opened): this
            // worker's decoders of other assets go, least recently used first — and enough
            // of them for a decoder another worker waits to open.
            self.make_room(0, job.asset_id);
            self.shed_for_others(Some(job.asset_id));
            let sent = self.done.send(done);
            self.in_flight.done();
            self.progress.bump();
            if sent.is_err() {
                return;
            }
        }
    }

    /// Time on the pool's clock (see [`DecodePoolOptions::clock`]).
    fn now(&self) -> Duration {
        match &self.clock {
            Some(clock) => clock.now(),
            None => WALL_EPOCH.elapsed(),
        }
    }

    fn decode(&mut self, job: &DecodeJob) -> Result<Arc<Picture>, MediaError> {
        if let Some(pos) = self
            .kept
            .iter()
            .position(|(a, f)| *a == job.asset_id && f.index == job.frame)
            && let Some((_, frame)) = self.kept.remove(pos)
        {
            self.kept_bytes -= frame.size_bytes();
            return Ok(frame);
        }
        self.uses += 1;
        let reader = self.reader_for(job)?;
        let frame = reader.frame(job.frame).map(Arc::new);
        let skipped = reader.take_skipped();
        for skipped in skipped {
            self.kept_bytes += skipped.size_bytes();
            self.kept.push_back((job.asset_id, Arc::new(skipped)));
        }
        while self.kept_bytes > self.kept_budget {
            match self.kept.pop_front() {
                Some((_, f)) => self.kept_bytes -= f.size_bytes(),
                None => break,
            }
        }
        frame
    }

    /// The reader to decode `job` with: one of the asset's that continues to the frame, else
    /// a new one (a second one only when the budget has room for it), else the asset's least
    /// recently used one, which seeks. A new decoder first makes room: while it would take
    /// accounted bytes past the room, this worker closes its least recently used decoders of
    /// other assets.
    fn reader_for(&mut self, job: &DecodeJob) -> Result<&mut VideoReader, MediaError> {
        let uses = self.uses;
        let have = self.readers.get(&job.asset_id).map_or(0, Vec::len);
        let continuing = self
            .readers
            .get(&job.asset_id)
            .and_then(|rs| rs.iter().position(|o| o.reader.continues_to(job.frame)));
        let slot = match continuing {
            Some(i) => i,
            None if have == 0 => {
                let reader = self.open_reader(job, None)?;
                let counted = self.count_new(job, reader.state_bytes())?;
                self.insert(job.asset_id, reader, counted)
            }
            // Every decoder of the asset serves another lane now and is past this frame (two
            // layers of one file, this one behind): one more, as the budget's minimum counts
            // one per clip shown. Room is made first; without it, it opens over the room at
            // once (counted: evict then frees cached frames down to warning) — both lanes are
            // playing, and waiting would freeze one. (Seeking a busy decoder back instead made
            // the two lanes take turns, each turn a decode from the keyframe: 3x the decode of
            // a 4K export.) Not for a frame ahead of a busy decoder (the next GOP: the decoder
            // that finishes its GOP goes on there), nor for a frame its own lane asks again
            // (evicted under pressure: one seek back, no second decoder over the room).
            None if have < READERS_PER_ASSET
                && self.readers[&job.asset_id].iter().all(|o| {
                    o.lane != job.lane
                        && uses.saturating_sub(o.used) <= BUSY_USES
                        && o.reader.passed(job.frame)
                }) =>
            {
                let demux = self.readers[&job.asset_id][0].reader.demuxer().clone();
                let bytes = self.readers[&job.asset_id][0].reader.state_bytes();
                self.make_room(bytes, job.asset_id);
                let counted = self
                    .count(bytes)
                    .unwrap_or_else(|| self.count_anyway(bytes));
                let reader = self.open_reader(job, Some(demux))?;
                self.insert(job.asset_id, reader, counted)
            }
            None if have < READERS_PER_ASSET
                && let Some(counted) =
                    self.count(self.readers[&job.asset_id][0].reader.state_bytes()) =>
            {
                let demux = self.readers[&job.asset_id][0].reader.demuxer().clone();
                let reader = self.open_reader(job, Some(demux))?;
                self.insert(job.asset_id, reader, counted)
            }
            // All busy elsewhere (or no room for another): the least recently used one seeks.
            None => self.readers[&job.asset_id]
                .iter()
                .enumerate()
                .min_by_key(|(_, o)| o.used)
                .map_or(0, |(i, _)| i),
        };
        let open = self
            .readers
            .get_mut(&job.asset_id)
            .and_then(|rs| rs.get_mut(slot))
            .ok_or(MediaError::Decode {
                backend: "framelock",
                reason: "no decoder for the asset".into(),
            })?;
        open.used = uses;
        open.lane = job.lane;
        Ok(&mut open.reader)
    }

    fn open_reader(
        &self,
        job: &DecodeJob,
        demux: Option<Arc<crate::media::Mp4Demuxer>>,
    ) -> Result<VideoReader, MediaError> {
        let mut reader = match demux {
            Some(d) => VideoReader::from_demuxer(d, &self.registry)?,
            None => VideoReader::open(job.path.as_ref(), &self.registry)?,
        };
        reader.keep_skipped(self.kept_budget);
        let (job, pool) = (self.job_generation.clone(), self.generation.clone());
        reader.set_cancel(Some(Arc::new(move || {
            job.load(Ordering::SeqCst) < pool.load(Ordering::SeqCst)
        })));
        if let Some(pool) = &self.pool {
            reader.set_frame_pool(pool.clone());
        }
        Ok(reader)
    }

    fn insert(
        &mut self,
        asset_id: u64,
        reader: VideoReader,
        counted: Option<DecoderGuard>,
    ) -> usize {
        let readers = self.readers.entry(asset_id).or_default();
        readers.push(Open {
            used: self.uses,
            lane: u64::MAX,
            reader,
            _counted: counted,
        });
        readers.len() - 1
    }
}
