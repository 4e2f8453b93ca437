//! The decode worker pool: threads that own their decoders, fed and drained over bounded
//! crossbeam channels, so that the playback tick never blocks on decoding.
//!
//! - Each worker keeps up to two [`VideoReader`](crate::media::VideoReader)s per asset it has seen (sharing one parsed
//!   demuxer), so sequential frames of an asset sent to the same worker continue one decode
//!   without re-seeking — even when two clips show two places of the same asset at once (an
//!   overlay of a clip over itself) and their lanes land on one worker: each place keeps its
//!   own decoder instead of both seeking on every frame. Jobs are routed by
//!   a caller-chosen lane (the decode system uses asset + GOP), so a GOP stays on one worker
//!   while different GOPs (prefetch far ahead, several clips) decode in parallel.
//! - [`DecodePool::try_submit`] never blocks: a full queue hands the job back.
//! - Seeks and scrubs bump the pool's generation; workers drop queued jobs of older
//!   generations without decoding them, so a scrub storm leaves no orphan work behind, and a
//!   job that goes stale while it decodes (a long GOP) stops between two packets.
//! - A worker keeps the frames its decoders pass on the way to a requested frame (from the
//!   keyframe up to it), within a byte budget, and answers later jobs from them: reverse
//!   playback and backward scrubbing then decode each GOP once instead of once per frame.
//! - With a [`BufferPool`], decoders write into recycled plane buffers (counted against the
//!   memory budget); with a [`DiskCache`], a job whose frame has a cache key is answered from
//!   the disk tier when it is there (a copy out of the mapping, no decode). (Rendered frames
//!   have their own reader: the disk tier's, in `framelock-systems`.)
//! - Every finished job bumps the pool's [`Progress`], which drivers outside the tick (the
//!   offline renderer, tests) wait on.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use framelock_components::CacheKey;

use crate::app::Clock;
use crate::cache::DiskCache;
use crate::media::{DecoderRegistry, MediaError, Picture};
use crate::memory::BufferPool;
use crate::signal::Progress;
use budget::DecoderBytes;
use worker::Worker;

mod budget;
mod worker;

/// A frame to decode.
#[derive(Clone, Debug)]
pub struct DecodeJob {
    /// The asset's id (workers key their decoders by it).
    pub asset_id: u64,
    /// The asset's file.
    pub path: Arc<PathBuf>,
    /// Source frame index.
    pub frame: u64,
    /// Request generation; jobs older than the pool's generation are dropped.
    pub generation: u64,
    /// Routing key: jobs with the same lane go to the same worker.
    pub lane: u64,
    /// The frame's cache key: looked up in the disk tier before decoding.
    pub cache_key: Option<CacheKey>,
}

/// A finished job.
#[derive(Debug)]
pub struct DecodeDone {
    /// The asset's id.
    pub asset_id: u64,
    /// Source frame index.
    pub frame: u64,
    /// The job's generation.
    pub generation: u64,
    /// The picture, or why not.
    pub result: Result<Arc<Picture>, MediaError>,
    /// Time the worker spent on it.
    pub decode_time: Duration,
    /// It came from the disk tier.
    pub from_disk: bool,
}

/// How to start a [`DecodePool`].
#[derive(Clone, Debug)]
pub struct DecodePoolOptions {
    /// Threads.
    pub workers: usize,
    /// Backends.
    pub registry: DecoderRegistry,
    /// Jobs queued per worker.
    pub queue: usize,
    /// Bytes per worker for frames decoded on the way to requested ones.
    pub skip_cache_bytes: usize,
    /// Where decoded planes come from (`None`: plain allocations).
    pub pool: Option<BufferPool>,
    /// The disk tier to answer from first.
    pub disk: Option<DiskCache>,
    /// Bumped after every finished (or dropped) job.
    pub progress: Progress,
    /// Decoders are opened while the pool's accounted bytes (decoder state included, see
    /// [`VideoReader::state_bytes`](crate::media::VideoReader::state_bytes)) stay at or under this: past it, a worker closes its
    /// least recently used decoders first, and opens a second one for an asset only if it
    /// fits. `None`: no limit. (Needs `pool`: decoders are counted in its
    /// [`PoolClass::Decoders`](crate::memory::PoolClass::Decoders) class.)
    pub decoder_room: Option<usize>,
    /// Route every job of an asset to one worker (assets spread over the workers as they
    /// first come) instead of by the job's lane: each asset then has its decoders on one
    /// worker only, not on every worker its GOPs land on — for a budget that cannot hold a
    /// decoder per asset per worker.
    pub by_asset: bool,
    /// Decoder bytes the caller expects the pool to open (the clips shown at once): counted
    /// in the pool from the start, as a reservation that open decoders use up, so that what
    /// is admitted before the first decoder opens leaves room for it.
    pub decoders_expected: usize,
    /// The clock a job's [`DecodeDone::decode_time`] is measured on (`None`: the wall
    /// clock). The quality controller models the machine from these times; a test with a
    /// decoder double that simulates its cost sets a clock the double advances, so the
    /// costs are exact whatever the test machine's speed.
    pub clock: Option<Arc<dyn Clock>>,
}

/// Jobs handed to one worker and not finished, and to all of them.
#[derive(Clone)]
struct InFlight {
    all: Arc<AtomicUsize>,
    mine: Arc<AtomicUsize>,
}

impl InFlight {
    fn add(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
        self.mine.fetch_add(1, Ordering::SeqCst);
    }

    fn done(&self) {
        self.mine.fetch_sub(1, Ordering::SeqCst);
        self.all.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The wall clock's zero for workers without a clock of their own.
static WALL_EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Jobs the caller no longer wants, (asset, frame, generation), newest last: a worker that
/// reaches one drops it undecoded. Bounded: a withdrawal older than the last
/// [`WITHDRAWN_KEPT`] is forgotten (its job, if still queued, is decoded after all; the
/// result then goes unused).
#[derive(Clone, Default)]
struct Withdrawn(Arc<std::sync::Mutex<VecDeque<(u64, u64, u64)>>>);

/// Lanes whose worker is remembered (far more GOPs than prefetch reaches).
const LANES_KEPT: usize = 1024;

/// Withdrawals remembered (many times the jobs a worker queues).
const WITHDRAWN_KEPT: usize = 256;

impl Withdrawn {
    fn add(&self, job: (u64, u64, u64)) {
        if let Ok(mut w) = self.0.lock() {
            if w.len() == WITHDRAWN_KEPT {
                w.pop_front();
            }
            w.push_back(job);
        }
    }

    /// Whether `job` was withdrawn (forgetting it: a job is reached once).
    fn take(&self, job: &DecodeJob) -> bool {
        let Ok(mut w) = self.0.lock() else {
            return false;
        };
        let key = (job.asset_id, job.frame, job.generation);
        match w.iter().position(|&k| k == key) {
            Some(i) => {
                w.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Decode threads.
pub struct DecodePool {
    jobs: Vec<Sender<DecodeJob>>,
    done: Receiver<DecodeDone>,
    generation: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    /// Per worker, its share of `in_flight`.
    worker_in_flight: Vec<InFlight>,
    dropped_stale: Arc<AtomicU64>,
    withdrawn: Withdrawn,
    progress: Progress,
    handles: Vec<JoinHandle<()>>,
    /// With [`DecodePoolOptions::by_asset`]: the worker of each asset seen.
    by_asset: Option<std::sync::Mutex<HashMap<u64, usize>>>,
    /// Each lane's worker, and the lanes in the order they were first seen.
    lanes: std::sync::Mutex<(HashMap<u64, usize>, VecDeque<u64>)>,
}

impl std::fmt::Debug for DecodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodePool")
            .field("workers", &self.jobs.len())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl DecodePool {
    /// Starts `workers` threads decoding with `registry`, each with a queue of `queue` jobs
    /// and 128 MiB for frames decoded on the way to requested ones.
    pub fn new(workers: usize, registry: DecoderRegistry, queue: usize) -> Self {
        Self::with_skip_cache(workers, registry, queue, 128 << 20)
    }

    /// Like [`DecodePool::new`], with `skip_cache_bytes` per worker for frames decoded on the
    /// way to requested ones (0 disables it).
    pub fn with_skip_cache(
        workers: usize,
        registry: DecoderRegistry,
        queue: usize,
        skip_cache_bytes: usize,
    ) -> Self {
        Self::with_options(DecodePoolOptions {
            workers,
            registry,
            queue,
            skip_cache_bytes,
            pool: None,
            disk: None,
            progress: Progress::default(),
            decoder_room: None,
            by_asset: false,
            decoders_expected: 0,
            clock: None,
        })
    }

    /// Starts the pool as `options` say.
    pub fn with_options(options: DecodePoolOptions) -> Self {
        let DecodePoolOptions {
            workers,
            registry,
            queue,
            skip_cache_bytes,
            pool,
            disk,
            progress,
            decoder_room,
            by_asset,
            decoders_expected,
            clock,
        } = options;
        let decoder_bytes = pool
            .as_ref()
            .map(|p| DecoderBytes::new(p.clone(), decoders_expected));
        let workers = workers.max(1);
        let (done_tx, done) = crossbeam_channel::bounded(workers * queue.max(1) * 2 + 8);
        let generation = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let dropped_stale = Arc::new(AtomicU64::new(0));
        let withdrawn = Withdrawn::default();
        let mut jobs = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut worker_in_flight = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<DecodeJob>(queue.max(1));
            jobs.push(tx);
            let counted = InFlight {
                all: in_flight.clone(),
                mine: Arc::new(AtomicUsize::new(0)),
            };
            worker_in_flight.push(counted.clone());
            let worker = Worker {
                registry: registry.clone(),
                readers: HashMap::new(),
                uses: 0,
                done: done_tx.clone(),
                generation: generation.clone(),
                job_generation: Arc::new(AtomicU64::new(0)),
                in_flight: counted,
                clock: clock.clone(),
                dropped_stale: dropped_stale.clone(),
                withdrawn: withdrawn.clone(),
                kept: VecDeque::new(),
                kept_bytes: 0,
                kept_budget: skip_cache_bytes,
                no_room: HashMap::new(),
                pool: pool.clone(),
                disk: disk.clone(),
                progress: progress.clone(),
                decoder_room: decoder_room.filter(|_| pool.is_some()),
                decoder_bytes: decoder_bytes.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("framelock-decode-{i}"))
                .spawn(move || worker.run(&rx));
            if let Ok(h) = spawned {
                handles.push(h);
            }
        }
        Self {
            jobs,
            done,
            generation,
            in_flight,
            worker_in_flight,
            dropped_stale,
            withdrawn,
            progress,
            handles,
            by_asset: by_asset.then(Default::default),
            lanes: Default::default(),
        }
    }

    /// The worker `job` goes to: by its lane, or by its asset (see
    /// [`DecodePoolOptions::by_asset`]): an asset seen first goes to the worker with the
    /// fewest assets.
    fn worker_for(&self, job: &DecodeJob) -> usize {
        let n = self.jobs.len();
        let Some(Ok(mut map)) = self.by_asset.as_ref().map(std::sync::Mutex::lock) else {
            return self.lane_worker(job.lane);
        };
        if let Some(&w) = map.get(&job.asset_id) {
            return w;
        }
        let mut load = vec![0usize; n];
        for &w in map.values() {
            load[w] += 1;
        }
        let w = (0..n).min_by_key(|&w| load[w]).unwrap_or(0);
        map.insert(job.asset_id, w);
        w
    }

    /// The worker of `lane`: the one it was given when first seen, so a GOP's frames continue
    /// one decoder. A new lane goes to the worker with the fewest jobs in flight (ties: by
    /// the lane's number), so a worker never idles while another's queue holds a GOP that
    /// has not started — two layers on one worker would decode at half the rate the machine
    /// has. The last [`LANES_KEPT`] lanes are remembered.
    fn lane_worker(&self, lane: u64) -> usize {
        let n = self.jobs.len();
        let by_number = (lane % n as u64) as usize;
        let Ok(mut lanes) = self.lanes.lock() else {
            return by_number;
        };
        if let Some(&w) = lanes.0.get(&lane) {
            return w;
        }
        let load = |w: usize| self.worker_in_flight[w].mine.load(Ordering::SeqCst);
        let w = (0..n)
            .map(|k| (by_number + k) % n)
            .min_by_key(|&w| load(w))
            .unwrap_or(by_number);
        if lanes.1.len() == LANES_KEPT
            && let Some(old) = lanes.1.pop_front()
        {
            lanes.0.remove(&old);
        }
        lanes.0.insert(lane, w);
        lanes.1.push_back(lane);
        w
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.jobs.len()
    }

    /// Queues a job without blocking; a full queue (or a stopped pool) hands it back. So does
    /// a result channel without room for every job out plus this one: a worker then never
    /// waits to hand a result over (jobs answered at once from kept frames could otherwise
    /// outrun a tick's collection, and [`DecodePool::wait_idle`] would never see the pool
    /// idle).
    pub fn try_submit(&self, job: DecodeJob) -> Result<(), DecodeJob> {
        let worker = self.worker_for(&job);
        let room = self.done.capacity().unwrap_or(usize::MAX);
        if self.in_flight() + self.done.len() >= room {
            return Err(job);
        }
        let counted = &self.worker_in_flight[worker];
        counted.add();
        match self.jobs[worker].try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                counted.done();
                Err(job)
            }
        }
    }

    /// Like [`DecodePool::try_submit`] for work ahead of need (prefetch beyond the current
    /// frame): refused unless the target queue keeps a free slot afterwards, so a frame
    /// needed now always finds room even behind a burst of speculative jobs.
    pub fn try_submit_ahead(&self, job: DecodeJob) -> Result<(), DecodeJob> {
        let worker = self.worker_for(&job);
        let q = &self.jobs[worker];
        if q.capacity().is_some_and(|cap| q.len() + 1 >= cap) {
            return Err(job);
        }
        self.try_submit(job)
    }

    /// Everything finished since the last call, without blocking.
    pub fn try_collect(&self) -> impl Iterator<Item = DecodeDone> + '_ {
        self.done.try_iter()
    }

    /// Marks every job of an older generation stale.
    pub fn set_generation(&self, generation: u64) {
        self.generation.fetch_max(generation, Ordering::SeqCst);
    }

    /// Withdraws a queued job (frame `frame` of asset `asset_id`, of `generation`): the
    /// worker drops it undecoded and sends no result; it counts as
    /// [`DecodePool::dropped_stale`]. One already being decoded finishes (its result comes
    /// as usual).
    pub fn withdraw(&self, asset_id: u64, frame: u64, generation: u64) {
        self.withdrawn.add((asset_id, frame, generation));
    }

    /// Jobs queued or being decoded.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Workers with a job queued or being decoded (the others wait for work).
    pub fn busy_workers(&self) -> usize {
        self.worker_in_flight
            .iter()
            .filter(|w| w.mine.load(Ordering::SeqCst) > 0)
            .count()
    }

    /// The counter every finished job bumps.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Jobs dropped undecoded because a seek made them stale.
    pub fn dropped_stale(&self) -> u64 {
        self.dropped_stale.load(Ordering::SeqCst)
    }

    /// Blocks until no job is queued or running, or `timeout` passes; returns whether idle.
    /// For tests and offline rendering: never call it from a playback tick.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.progress.wait_until(timeout, || self.in_flight() == 0)
    }
}

impl Drop for DecodePool {
    /// Disconnects the queues so the workers exit after their current job, and waits up to
    /// two seconds for them; a worker stuck inside a decoder is left to finish on its own
    /// (its result goes nowhere) rather than hanging the caller.
    fn drop(&mut self) {
        self.jobs.clear();
        let deadline = Instant::now() + Duration::from_secs(2);
        for h in self.handles.drain(..) {
            // A worker blocked on a full result channel is released by draining it.
            while !h.is_finished() && Instant::now() < deadline {
                while self.done.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_micros(100));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority (nice +10 on Linux) so background work
/// (proxy generation) yields the CPU to playback's decode workers and loop. Elsewhere a no-op.
/// Returns the thread's nice value afterwards, when known.
pub fn lower_thread_priority() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // On Linux the nice value is per thread; `who = 0` is the calling thread.
        // SAFETY: setpriority/getpriority take plain integers and touch no memory of ours.
        unsafe {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            Some(libc::getpriority(libc::PRIO_PROCESS, 0))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests;
