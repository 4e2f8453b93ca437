//! The proxy job queue and its workers.
//!
//! - Order: high before normal before low, first come first served within a priority. The
//!   order jobs will start in is observable ([`ProxyManager::queued_order`]) and the order
//!   they did start in is recorded ([`ProxyJobStatus::started`]).
//! - At most `workers` jobs run at once (default: cores − 1, at least 1); their threads run
//!   at a lower OS priority (nice 10) than playback's, so proxies never starve playback.
//! - A job is cancellable while queued (it never starts) or running (it stops within a
//!   frame and removes its temporary file). Cancel one, all of a source's, or all.
//! - A job whose proxy is already on disk, fresh and made with the same codec and quality,
//!   finishes at once as `Ready` without encoding anything; a stale one (the source changed)
//!   or one made otherwise is regenerated (and replaced only once the new one is verified).
//! - Status and progress are snapshots; [`ProxyManager::version`] changes whenever any job's
//!   status does, so a per-tick poll costs one atomic load when nothing happened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framelock_components::{MediaInfo, ProxyCodec, ProxyPriority, ProxyState, ProxyStrategy};

use super::ProxyError;
use super::files::{ProxyCheck, absolute, check_proxy};
use super::pipeline::{ProxyJobSpec, generate_proxy};
use crate::media::{DecoderRegistry, probe};

/// A job's id (unique within one manager).
pub type JobId = u64;

/// How the manager runs.
#[derive(Clone, Debug)]
pub struct ProxyManagerOptions {
    /// The proxy folder.
    pub dir: PathBuf,
    /// Jobs run at once.
    pub workers: usize,
    /// Decode/encode threads inside one job.
    pub threads_per_job: usize,
    /// Decoder backends (default: [`DecoderRegistry::fastest_first`]).
    pub registry: DecoderRegistry,
    /// Start with the queue paused ([`ProxyManager::resume`] starts it).
    pub paused: bool,
}

impl ProxyManagerOptions {
    /// Defaults for `dir`: cores − 1 workers (at least 1), the cores shared among them.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = cores.saturating_sub(1).max(1);
        Self {
            dir: dir.into(),
            workers,
            threads_per_job: (cores / workers).max(2),
            registry: DecoderRegistry::fastest_first(),
            paused: false,
        }
    }
}

/// A job, as seen from outside.
#[derive(Clone, Debug)]
pub struct ProxyJobStatus {
    /// Id.
    pub id: JobId,
    /// The original.
    pub source: PathBuf,
    /// The proxy file.
    pub path: PathBuf,
    /// Proxy height.
    pub height: u32,
    /// Codec.
    pub codec: ProxyCodec,
    /// Priority.
    pub priority: ProxyPriority,
    /// State (with frames done / total and fps while generating).
    pub state: ProxyState,
    /// Estimated seconds left, while generating.
    pub eta_secs: Option<f64>,
    /// The order in which workers started jobs (0 = first), once started.
    pub started: Option<u64>,
    /// The proxy's probe, once ready.
    pub info: Option<MediaInfo>,
    /// The proxy file's fingerprint as a number (cache keys of its frames start from it),
    /// once ready.
    pub fingerprint: Option<u64>,
}

impl ProxyJobStatus {
    /// Queued or generating.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            ProxyState::Queued | ProxyState::Generating { .. }
        )
    }
}

/// All jobs together.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProxyProgress {
    /// Jobs known.
    pub jobs: usize,
    /// Waiting.
    pub queued: usize,
    /// Running.
    pub generating: usize,
    /// Done.
    pub ready: usize,
    /// Failed.
    pub failed: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Frames encoded by running jobs.
    pub frames_done: u64,
    /// Frames of running and queued jobs whose size is known.
    pub frames_total: u64,
    /// Frames per second of the running jobs together.
    pub fps: f64,
    /// Seconds until the running jobs finish, at their current speed.
    pub eta_secs: Option<f64>,
}

struct Job {
    spec: ProxyJobSpec,
    status: ProxyJobStatus,
    cancel: Arc<AtomicBool>,
    seq: u64,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<JobId, Job>,
    /// (priority reversed, submission sequence, id): first is next.
    queue: BTreeSet<(std::cmp::Reverse<ProxyPriority>, u64, JobId)>,
    next_id: JobId,
    seq: u64,
    started: u64,
    paused: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    version: AtomicU64,
    registry: DecoderRegistry,
    threads_per_job: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

/// Proxy jobs and the workers that run them.
pub struct ProxyManager {
    shared: Arc<Shared>,
    dir: PathBuf,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ProxyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyManager")
            .field("dir", &self.dir)
            .field("workers", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl ProxyManager {
    /// Starts the workers.
    pub fn new(options: ProxyManagerOptions) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                paused: options.paused,
                ..State::default()
            }),
            wake: Condvar::new(),
            version: AtomicU64::new(0),
            registry: options.registry,
            threads_per_job: options.threads_per_job.max(1),
        });
        let mut handles = Vec::new();
        for i in 0..options.workers.max(1) {
            let shared = shared.clone();
            if let Ok(h) = std::thread::Builder::new()
                .name(format!("framelock-proxy-job-{i}"))
                .spawn(move || worker(&shared))
            {
                handles.push(h);
            }
        }
        Self {
            shared,
            dir: options.dir,
            handles,
        }
    }

    /// The proxy folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues a proxy of `source` at `height` (rounded down to even). A fresh proxy already
    /// on disk makes the job `Ready` at once; an active job for the same proxy is reused.
    pub fn submit(
        &self,
        source: &Path,
        height: u32,
        generation: &framelock_components::ProxyGeneration,
    ) -> JobId {
        let spec = ProxyJobSpec {
            source: absolute(source),
            dir: self.dir.clone(),
            height: height & !1,
            generation: generation.clone(),
        };
        let path = spec.path();
        let existing = match check_proxy(&spec.source, &path) {
            // Fresh, and made the way this request asks (one name per height: a request for
            // another codec or quality replaces it, atomically, once the new one is good).
            ProxyCheck::Ready(m)
                if m.codec == generation.codec && m.quality == generation.quality =>
            {
                probe(&path, &self.shared.registry).ok().map(|info| {
                    (
                        info,
                        crate::cache::fingerprint_from_hex(&m.proxy_fingerprint),
                    )
                })
            }
            _ => None,
        };
        let mut st = self.shared.lock();
        if existing.is_none()
            && let Some(job) = st.jobs.values().find(|j| {
                j.status.path == path
                    && j.status.is_active()
                    && j.spec.generation == spec.generation
            })
        {
            return job.status.id;
        }
        let id = st.next_id;
        st.next_id += 1;
        let seq = st.seq;
        st.seq += 1;
        let priority = generation.priority;
        let status = ProxyJobStatus {
            id,
            source: spec.source.clone(),
            path,
            height: spec.height,
            codec: generation.codec,
            priority,
            state: if existing.is_some() {
                ProxyState::Ready
            } else {
                ProxyState::Queued
            },
            eta_secs: None,
            started: None,
            fingerprint: existing.as_ref().map(|e| e.1),
            info: existing.map(|e| e.0),
        };
        let queued = status.state == ProxyState::Queued;
        st.jobs.insert(
            id,
            Job {
                spec,
                status,
                cancel: Arc::new(AtomicBool::new(false)),
                seq,
            },
        );
        if queued {
            st.queue.insert((std::cmp::Reverse(priority), seq, id));
        }
        drop(st);
        self.shared.bump();
        self.shared.wake.notify_all();
        id
    }

    /// Queues the proxies `strategy` wants for a source `source_height` tall (none when it is
    /// not above the lowest switch threshold). Returns the jobs.
    pub fn submit_for(
        &self,
        source: &Path,
        source_height: u32,
        strategy: &ProxyStrategy,
    ) -> Vec<JobId> {
        strategy
            .heights_for(source_height)
            .into_iter()
            .map(|h| self.submit(source, h, &strategy.generation))
            .collect()
    }

    /// Queues every resolution of `generation` below `source_height` (an explicit request:
    /// the switch thresholds do not apply). Returns the jobs.
    pub fn submit_below(
        &self,
        source: &Path,
        source_height: u32,
        generation: &framelock_components::ProxyGeneration,
    ) -> Vec<JobId> {
        generation
            .heights_below(source_height)
            .map(|h| self.submit(source, h, generation))
            .collect()
    }

    /// Cancels a job; returns whether it was active.
    pub fn cancel(&self, id: JobId) -> bool {
        let mut st = self.shared.lock();
        let cancelled = cancel_locked(&mut st, id);
        drop(st);
        self.shared.bump();
        cancelled
    }

    /// Cancels every active job of `source`; returns how many.
    pub fn cancel_source(&self, source: &Path) -> usize {
        let source = absolute(source);
        let mut st = self.shared.lock();
        let ids: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| j.status.source == source)
            .map(|j| j.status.id)
            .collect();
        let n = ids.iter().filter(|&&id| cancel_locked(&mut st, id)).count();
        drop(st);
        self.shared.bump();
        n
    }

    /// Forgets finished jobs (ready, failed, cancelled) whose status matches `which`, so they
    /// are no longer reported (their files are the caller's business). Returns how many.
    pub fn forget(&self, which: impl Fn(&ProxyJobStatus) -> bool) -> usize {
        let mut st = self.shared.lock();
        let before = st.jobs.len();
        st.jobs
            .retain(|_, j| j.status.is_active() || !which(&j.status));
        let n = before - st.jobs.len();
        drop(st);
        self.shared.bump();
        n
    }

    /// Cancels every active job; returns how many.
    pub fn cancel_all(&self) -> usize {
        let mut st = self.shared.lock();
        let ids: Vec<JobId> = st.jobs.keys().copied().collect();
        let n = ids.iter().filter(|&&id| cancel_locked(&mut st, id)).count();
        drop(st);
        self.shared.bump();
        n
    }

    /// Stops starting jobs (running ones go on).
    pub fn pause(&self) {
        self.shared.lock().paused = true;
    }

    /// Starts jobs again.
    pub fn resume(&self) {
        self.shared.lock().paused = false;
        self.shared.wake.notify_all();
    }

    /// Changes whenever a job's status does.
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::SeqCst)
    }

    /// Every job, by id.
    pub fn status(&self) -> Vec<ProxyJobStatus> {
        self.shared
            .lock()
            .jobs
            .values()
            .map(|j| j.status.clone())
            .collect()
    }

    /// One job.
    pub fn job(&self, id: JobId) -> Option<ProxyJobStatus> {
        self.shared.lock().jobs.get(&id).map(|j| j.status.clone())
    }

    /// Queued jobs in the order they will start.
    pub fn queued_order(&self) -> Vec<JobId> {
        self.shared
            .lock()
            .queue
            .iter()
            .map(|&(_, _, id)| id)
            .collect()
    }

    /// All jobs together.
    pub fn progress(&self) -> ProxyProgress {
        let st = self.shared.lock();
        let mut p = ProxyProgress {
            jobs: st.jobs.len(),
            ..ProxyProgress::default()
        };
        let mut eta: Option<f64> = None;
        for j in st.jobs.values() {
            match &j.status.state {
                ProxyState::Queued => p.queued += 1,
                ProxyState::Generating { done, total, fps } => {
                    p.generating += 1;
                    p.frames_done += done;
                    p.frames_total += total;
                    p.fps += fps;
                    if let Some(e) = j.status.eta_secs {
                        eta = Some(eta.map_or(e, |x: f64| x.max(e)));
                    }
                }
                ProxyState::Ready => p.ready += 1,
                ProxyState::Failed(_) => p.failed += 1,
                ProxyState::Cancelled => p.cancelled += 1,
            }
        }
        p.eta_secs = eta;
        p
    }

    /// Blocks until no job is queued or running, or `timeout` passes; returns whether idle.
    /// Never call it from a playback tick.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.shared.lock();
            let busy = st.jobs.values().any(|j| j.status.is_active());
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = self
                .shared
                .wake
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(20)));
        }
    }
}

fn cancel_locked(st: &mut State, id: JobId) -> bool {
    let Some(job) = st.jobs.get_mut(&id) else {
        return false;
    };
    match job.status.state {
        ProxyState::Queued => {
            let key = (std::cmp::Reverse(job.status.priority), job.seq, id);
            job.status.state = ProxyState::Cancelled;
            job.cancel.store(true, Ordering::SeqCst);
            st.queue.remove(&key);
            true
        }
        ProxyState::Generating { .. } => {
            // The worker sees the flag within a frame and reports Cancelled.
            job.cancel.store(true, Ordering::SeqCst);
            true
        }
        _ => false,
    }
}

impl Drop for ProxyManager {
    /// Cancels everything and waits for the workers (a running job stops within a frame and
    /// removes its temporary file).
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.shutdown = true;
            let ids: Vec<JobId> = st.jobs.keys().copied().collect();
            for id in ids {
                cancel_locked(&mut st, id);
            }
        }
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(shared: &Shared) {
    crate::workers::lower_thread_priority();
    if let Some(name) = std::thread::current().name() {
        crate::profile::set_thread_name(name);
    }
    loop {
        let (id, spec, cancel) = {
            let mut st = shared.lock();
            let id = loop {
                if st.shutdown {
                    return;
                }
                if !st.paused
                    && let Some(first) = st.queue.pop_first()
                {
                    break first.2;
                }
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            };
            let order = st.started;
            st.started += 1;
            let Some(j) = st.jobs.get_mut(&id) else {
                continue;
            };
            j.status.started = Some(order);
            j.status.state = ProxyState::Generating {
                done: 0,
                total: 0,
                fps: 0.0,
            };
            (id, j.spec.clone(), j.cancel.clone())
        };
        shared.bump();
        shared.wake.notify_all();
        let started = Instant::now();
        let mut last_update = Instant::now() - Duration::from_secs(1);
        let mut progress = |done: u64, total: u64| {
            // Status at most every 50 ms (and at the end): a lock per frame is cheap, but
            // waking every poller per frame is not.
            if done < total && last_update.elapsed() < Duration::from_millis(50) {
                return;
            }
            last_update = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
            let mut st = shared.lock();
            if let Some(j) = st.jobs.get_mut(&id) {
                j.status.state = ProxyState::Generating { done, total, fps };
                j.status.eta_secs = (fps > 0.0).then(|| (total - done) as f64 / fps);
            }
            drop(st);
            shared.bump();
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            generate_proxy(
                &spec,
                &shared.registry,
                shared.threads_per_job,
                &cancel,
                &mut progress,
            )
        }));
        let state_info = match outcome {
            Ok(Ok(out)) => (
                ProxyState::Ready,
                Some((
                    out.info,
                    crate::cache::fingerprint_from_hex(&out.manifest.proxy_fingerprint),
                )),
            ),
            Ok(Err(ProxyError::Cancelled)) => (ProxyState::Cancelled, None),
            Ok(Err(e)) => (ProxyState::Failed(e.to_string()), None),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                (ProxyState::Failed(format!("worker panicked: {why}")), None)
            }
        };
        let mut st = shared.lock();
        if let Some(j) = st.jobs.get_mut(&id) {
            j.status.state = state_info.0;
            j.status.fingerprint = state_info.1.as_ref().map(|r| r.1);
            j.status.info = state_info.1.map(|r| r.0);
            j.status.eta_secs = None;
        }
        drop(st);
        shared.bump();
        shared.wake.notify_all();
    }
}
