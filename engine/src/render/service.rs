//! [`RenderService`]: the CPU worker threads, the GPU thread, and the routing between them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use framelock_components::TierStats;

use super::gpu_thread::{self, GpuMsg, GpuShared};
use super::{
    CpuRenderer, FastCpu, GpuState, GpuUse, OutputPixels, PathChoice, RenderDone, RenderPath, Work,
};
use crate::cache::Cache;
use crate::gpu::{DeviceStats, GpuOptions};
use crate::memory::BufferPool;
use crate::signal::Progress;

/// How to start the service.
#[derive(Clone)]
pub struct RenderServiceOptions {
    /// CPU render threads. A job that starts while fewer jobs than workers are queued or
    /// running spreads its rows over rayon's pool (one frame soon: a seek, the first frame);
    /// one that starts while every worker has work keeps its rows on its own thread, so
    /// render-ahead and offline render run whole frames in parallel without the rows of two
    /// frames contending for the same pool.
    pub cpu_workers: usize,
    /// Jobs queued per CPU worker beyond the one it runs.
    pub queue_per_worker: usize,
    /// The GPU to open on its own thread (`None`: CPU only).
    pub gpu: Option<GpuOptions>,
    /// When effects use the GPU.
    pub gpu_use: GpuUse,
    /// Pictures come from these pools.
    pub pool: Option<BufferPool>,
    /// The CPU renderer (tests put a double here).
    pub cpu: Arc<dyn CpuRenderer>,
    /// Bumped after every finished job.
    pub progress: Progress,
}

impl std::fmt::Debug for RenderServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderServiceOptions")
            .field("cpu_workers", &self.cpu_workers)
            .field("gpu", &self.gpu)
            .field("gpu_use", &self.gpu_use)
            .finish_non_exhaustive()
    }
}

impl Default for RenderServiceOptions {
    fn default() -> Self {
        Self {
            cpu_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_per_worker: 1,
            gpu: None,
            gpu_use: GpuUse::Measured,
            pool: None,
            cpu: Arc::new(FastCpu),
            progress: Progress::default(),
        }
    }
}

/// A job on its way to a worker.
pub(super) struct Task {
    pub ticket: u64,
    pub work: Work,
    pub output: OutputPixels,
}

/// The render threads (see the module doc of [`crate::render`]).
pub struct RenderService {
    cpu: Option<Sender<Task>>,
    gpu: Option<Sender<GpuMsg>>,
    /// What the GPU thread needs, until it is started.
    gpu_start: Option<gpu_thread::Context>,
    done: Receiver<RenderDone>,
    shared: Arc<Mutex<GpuShared>>,
    gpu_use: GpuUse,
    /// Jobs submitted and not yet finished by a worker.
    running: Arc<AtomicUsize>,
    /// Every CPU job keeps its rows on its own worker (see [`RenderService::set_whole_frames`]).
    whole_frames: Arc<AtomicBool>,
    /// Jobs submitted and not yet collected.
    uncollected: usize,
    capacity: usize,
    cpu_workers: usize,
    frames_in_flight: usize,
    next_ticket: u64,
    progress: Progress,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RenderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderService")
            .field("cpu_workers", &self.cpu_workers)
            .field("gpu", &self.gpu_state())
            .field("uncollected", &self.uncollected)
            .finish_non_exhaustive()
    }
}

impl RenderService {
    /// Starts the CPU workers. The GPU thread (with GPU options) starts with
    /// [`RenderService::start_gpu`] or the first effects work.
    pub fn new(options: RenderServiceOptions) -> Self {
        let workers = options.cpu_workers.max(1);
        let queue = workers * (options.queue_per_worker + 1);
        let frames_in_flight = options
            .gpu
            .as_ref()
            .map_or(0, |g| g.frames_in_flight.max(1) * g.devices.max(1));
        let capacity = queue + frames_in_flight;
        let (done_tx, done) = crossbeam_channel::bounded(capacity + 2);
        let (cpu_tx, cpu_rx) = crossbeam_channel::bounded::<Task>(queue);
        let running = Arc::new(AtomicUsize::new(0));
        let whole_frames = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for i in 0..workers {
            let (rx, tx) = (cpu_rx.clone(), done_tx.clone());
            let (cpu, pool) = (options.cpu.clone(), options.pool.clone());
            let (running, progress) = (running.clone(), options.progress.clone());
            let whole_frames = whole_frames.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("framelock-render-{i}"))
                .spawn(move || {
                    if let Some(name) = std::thread::current().name() {
                        crate::profile::set_thread_name(name);
                    }
                    // A pool of this thread's own for jobs that run while the other workers
                    // are busy too: their rows stay on one core (see `RenderServiceOptions`).
                    let alone = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("framelock-render-{i}-rows"))
                        .build()
                        .ok();
                    for task in rx.iter() {
                        let busy = whole_frames.load(Ordering::Relaxed)
                            || running.load(Ordering::SeqCst) >= workers;
                        let done = match (&alone, busy) {
                            (Some(alone), true) => {
                                alone.install(|| cpu_render(&*cpu, task, pool.as_ref(), None))
                            }
                            _ => cpu_render(&*cpu, task, pool.as_ref(), None),
                        };
                        let sent = tx.send(done);
                        running.fetch_sub(1, Ordering::SeqCst);
                        progress.bump();
                        if sent.is_err() {
                            return;
                        }
                    }
                });
            if let Ok(h) = spawned {
                handles.push(h);
            }
        }
        let shared = Arc::new(Mutex::new(GpuShared::new(options.gpu.is_some())));
        Self {
            cpu: Some(cpu_tx),
            gpu: None,
            gpu_start: options.gpu.map(|gpu_options| gpu_thread::Context {
                options: gpu_options,
                shared: shared.clone(),
                done: done_tx,
                cpu: options.cpu,
                pool: options.pool,
                running: running.clone(),
                progress: options.progress.clone(),
            }),
            done,
            shared,
            gpu_use: options.gpu_use,
            running,
            whole_frames,
            uncollected: 0,
            capacity,
            cpu_workers: workers,
            frames_in_flight,
            next_ticket: 0,
            progress: options.progress,
            handles,
        }
    }

    /// Starts the GPU thread, which opens the devices itself (this returns at once), if the
    /// service has GPU options and it is not started yet. Effects work starts it too.
    pub fn start_gpu(&mut self) {
        let Some(ctx) = self.gpu_start.take() else {
            return;
        };
        lock(&self.shared).state = GpuState::Opening;
        let (tx, rx) = crossbeam_channel::bounded::<GpuMsg>(self.frames_in_flight + 2);
        let spawned = std::thread::Builder::new()
            .name("framelock-gpu".into())
            .spawn(move || gpu_thread::run(ctx, &rx));
        match spawned {
            Ok(h) => {
                self.handles.push(h);
                self.gpu = Some(tx);
            }
            Err(e) => {
                lock(&self.shared).state =
                    GpuState::Unavailable(format!("the GPU thread could not start: {e}"));
            }
        }
    }

    /// Throughput over latency: with `true` every CPU job keeps its rows on its own worker,
    /// whatever else is running, so the workers render whole frames side by side (the offline
    /// renderer, whose queue is always full). With `false` (playback) a job that starts while
    /// workers are idle spreads its rows over rayon's pool.
    pub fn set_whole_frames(&self, on: bool) {
        self.whole_frames.store(on, Ordering::Relaxed);
    }

    /// CPU render threads.
    pub fn cpu_workers(&self) -> usize {
        self.cpu_workers
    }

    /// Whether another job can be submitted now.
    pub fn has_capacity(&self) -> bool {
        self.uncollected < self.capacity
    }

    /// Jobs submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.uncollected
    }

    /// Where effects work goes now (`allow_gpu`: the host's `gpu_acceleration`).
    pub fn effects_path(&self, allow_gpu: bool) -> RenderPath {
        if !allow_gpu || self.gpu.is_none() {
            return RenderPath::Cpu;
        }
        let shared = lock(&self.shared);
        if !matches!(shared.state, GpuState::Open { .. }) {
            return RenderPath::Cpu;
        }
        match (self.gpu_use, &shared.choice) {
            (GpuUse::Always, _) => RenderPath::Gpu,
            (GpuUse::Measured, Some(c)) => c.path,
            (GpuUse::Measured, None) => RenderPath::Cpu,
        }
    }

    /// Queues `work` without blocking; `None` when the queue is full (or the service
    /// stopped). `allow_gpu` lets effects go to the GPU (the host's `gpu_acceleration`).
    /// Returns the job's ticket.
    pub fn try_submit(&mut self, work: Work, output: OutputPixels, allow_gpu: bool) -> Option<u64> {
        if !self.has_capacity() {
            return None;
        }
        let ticket = self.next_ticket;
        let is_effects = matches!(work, Work::Effects(_));
        if is_effects && allow_gpu {
            self.start_gpu();
        }
        let path = if is_effects {
            self.effects_path(allow_gpu)
        } else {
            RenderPath::Cpu
        };
        if is_effects && allow_gpu && self.gpu_use == GpuUse::Measured {
            self.maybe_calibrate(&work);
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        let task = Task {
            ticket,
            work,
            output,
        };
        let sent = match (path, &self.gpu, &self.cpu) {
            (RenderPath::Gpu, Some(gpu), _) => gpu.try_send(GpuMsg::Render(task)).is_ok(),
            (_, _, Some(cpu)) => cpu.try_send(task).is_ok(),
            (_, _, None) => false,
        };
        if !sent {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        self.next_ticket += 1;
        self.uncollected += 1;
        Some(ticket)
    }

    /// On the first effects frame after the GPU opened, asks the GPU thread to measure both
    /// paths on a copy of it.
    fn maybe_calibrate(&mut self, work: &Work) {
        let Some(gpu) = &self.gpu else { return };
        let Work::Effects(job) = work else { return };
        let mut shared = lock(&self.shared);
        if shared.choice.is_some()
            || shared.calibrating
            || !matches!(shared.state, GpuState::Open { .. })
        {
            return;
        }
        if gpu.try_send(GpuMsg::Calibrate(job.clone())).is_ok() {
            shared.calibrating = true;
        }
    }

    /// Every finished job since the last call, without blocking.
    pub fn try_collect(&mut self) -> Vec<RenderDone> {
        let done: Vec<RenderDone> = self.done.try_iter().collect();
        self.uncollected = self.uncollected.saturating_sub(done.len());
        done
    }

    /// Blocks until no job is queued or running (results may wait to be collected), or
    /// `timeout` passes; returns whether idle. Tests and the offline renderer, between ticks:
    /// never from a tick.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.progress
            .wait_until(timeout, || self.running() == 0 && !self.calibrating())
    }

    /// Jobs queued or running on a worker.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The GPU's state.
    pub fn gpu_state(&self) -> GpuState {
        lock(&self.shared).state.clone()
    }

    /// The measured path choice for effects, once made.
    pub fn choice(&self) -> Option<PathChoice> {
        lock(&self.shared).choice.clone()
    }

    /// Whether the GPU thread is measuring both paths now.
    pub fn calibrating(&self) -> bool {
        lock(&self.shared).calibrating
    }

    /// Per-device counters, as of the last frame the GPU finished.
    pub fn gpu_stats(&self) -> Vec<DeviceStats> {
        lock(&self.shared).stats.clone()
    }

    /// Frames per GPU device in flight at most, times devices (0 without a GPU).
    pub fn gpu_frames_in_flight(&self) -> usize {
        self.frames_in_flight
    }

    /// Asks the GPU thread to drop the uploaded planes it holds in VRAM; returns the bytes
    /// held before (as of its last report). Does not wait.
    pub fn clear_vram(&self) -> usize {
        let bytes = lock(&self.shared).stats.iter().map(|s| s.vram_bytes).sum();
        if let Some(gpu) = &self.gpu {
            let _ = gpu.try_send(GpuMsg::ClearVram);
        }
        bytes
    }
}

/// The VRAM tier as the tick sees it: the GPU thread's last report (sizes lag by up to one
/// frame); a purge asks the GPU thread to drop its uploaded planes. Empty without a GPU.
impl Cache for RenderService {
    fn begin_frame(&mut self, _tick: u64) {}

    fn purge_memory(&mut self) {
        self.clear_vram();
    }

    fn bytes_used(&self) -> usize {
        lock(&self.shared).stats.iter().map(|s| s.vram_bytes).sum()
    }

    fn stats(&self) -> TierStats {
        let s = lock(&self.shared).stats.clone();
        TierStats {
            entries: s.iter().map(|d| d.vram_entries).sum(),
            bytes: s.iter().map(|d| d.vram_bytes).sum(),
            limit_bytes: s.iter().map(|d| d.vram_limit).sum(),
            hits: s.iter().map(|d| d.vram_hits).sum(),
            misses: s.iter().map(|d| d.uploads).sum(),
        }
    }
}

impl Drop for RenderService {
    /// Disconnects the queues; workers finish their current job and exit. Waits up to two
    /// seconds for them, draining results so none blocks on a full channel.
    fn drop(&mut self) {
        self.cpu = None;
        self.gpu = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        for h in self.handles.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                while self.done.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_micros(200));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Renders `task` on the CPU path and converts the result to the format asked for.
pub(super) fn cpu_render(
    cpu: &dyn CpuRenderer,
    task: Task,
    pool: Option<&BufferPool>,
    gpu_error: Option<String>,
) -> RenderDone {
    crate::profile_scope!("cpu render");
    let start = Instant::now();
    let tag = task.work.tag();
    let result = cpu
        .render(&task.work, pool)
        .map(|p| task.output.convert(p, pool));
    RenderDone {
        ticket: task.ticket,
        tag,
        result,
        path: RenderPath::Cpu,
        secs: start.elapsed().as_secs_f64(),
        gpu_error,
    }
}
