//! The GPU's own thread: opens the devices (off the tick), renders effects frames pipelined
//! (submits while frames are in flight, waits for the oldest only when it has nothing else to
//! do), re-renders a failed frame on the CPU path, and measures both paths once to choose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::service::{Task, cpu_render, lock};
use super::{CpuRenderer, GpuState, PathChoice, RenderDone, RenderPath, Work, rgba_picture};
use crate::effects::{RenderError, RenderJob, RenderedRgba};
use crate::gpu::{DeviceStats, Gpu, GpuOptions};
use crate::memory::BufferPool;
use crate::signal::Progress;

/// What the service sends the GPU thread.
pub(super) enum GpuMsg {
    /// Render this effects frame.
    Render(Task),
    /// Measure both paths on this frame and record the choice.
    Calibrate(RenderJob),
    /// Drop the uploaded planes held in VRAM.
    ClearVram,
}

/// What the GPU thread publishes.
#[derive(Debug)]
pub(super) struct GpuShared {
    pub state: GpuState,
    pub choice: Option<PathChoice>,
    pub calibrating: bool,
    pub stats: Vec<DeviceStats>,
}

impl GpuShared {
    pub fn new(enabled: bool) -> Self {
        Self {
            state: if enabled {
                GpuState::NotStarted
            } else {
                GpuState::Disabled
            },
            choice: None,
            calibrating: false,
            stats: Vec::new(),
        }
    }
}

/// The thread's inputs.
pub(super) struct Context {
    pub options: GpuOptions,
    pub shared: Arc<Mutex<GpuShared>>,
    pub done: Sender<RenderDone>,
    pub cpu: Arc<dyn CpuRenderer>,
    pub pool: Option<BufferPool>,
    pub running: Arc<AtomicUsize>,
    pub progress: Progress,
}

impl Context {
    fn finish(&self, done: RenderDone) {
        let _ = self.done.send(done);
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.progress.bump();
    }
}

/// The thread's body.
pub(super) fn run(ctx: Context, rx: &Receiver<GpuMsg>) {
    crate::profile::set_thread_name("framelock-gpu");
    let mut gpu = match Gpu::new(&ctx.options) {
        Ok(mut g) => {
            if let Some(pool) = &ctx.pool {
                g.count_host_memory_in(pool);
            }
            g
        }
        Err(e) => {
            lock(&ctx.shared).state = GpuState::Unavailable(e.to_string());
            // Work sent before the failure was seen still gets an answer, from the CPU path.
            for msg in rx.iter() {
                match msg {
                    GpuMsg::Render(task) => ctx.finish(cpu_render(
                        &*ctx.cpu,
                        task,
                        ctx.pool.as_ref(),
                        Some(e.to_string()),
                    )),
                    GpuMsg::Calibrate(_) => lock(&ctx.shared).calibrating = false,
                    GpuMsg::ClearVram => {}
                }
            }
            return;
        }
    };
    {
        let mut shared = lock(&ctx.shared);
        shared.state = GpuState::Open {
            devices: gpu.device_names(),
            software: gpu.is_software(),
        };
        shared.stats = gpu.stats();
    }
    let mut pending: HashMap<u64, (Task, Instant)> = HashMap::new();
    loop {
        let msg = if gpu.in_flight() > 0 {
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => {
                    // Nothing new: wait for the oldest frame.
                    if let Some((t, r)) = gpu.receive() {
                        finish_gpu(&ctx, &mut gpu, &mut pending, t, r);
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => None,
            }
        } else {
            rx.recv().ok()
        };
        let Some(msg) = msg else { break };
        match msg {
            GpuMsg::Render(task) => {
                let submitted = match &task.work {
                    Work::Effects(job) => gpu.submit(job),
                    Work::Ycbcr(_) => Err(RenderError::Invalid("Y'CbCr work on the GPU".into())),
                };
                match submitted {
                    Ok(t) => {
                        pending.insert(t, (task, Instant::now()));
                    }
                    Err(e) => ctx.finish(cpu_render(
                        &*ctx.cpu,
                        task,
                        ctx.pool.as_ref(),
                        Some(e.to_string()),
                    )),
                }
            }
            GpuMsg::Calibrate(job) => {
                while let Some((t, r)) = gpu.receive() {
                    finish_gpu(&ctx, &mut gpu, &mut pending, t, r);
                }
                let choice = calibrate(&mut gpu, &*ctx.cpu, &job, ctx.pool.as_ref());
                let mut shared = lock(&ctx.shared);
                shared.choice = Some(choice);
                shared.calibrating = false;
                shared.stats = gpu.stats();
                drop(shared);
                ctx.progress.bump();
            }
            GpuMsg::ClearVram => {
                gpu.clear_vram();
                lock(&ctx.shared).stats = gpu.stats();
            }
        }
    }
    while let Some((t, r)) = gpu.receive() {
        finish_gpu(&ctx, &mut gpu, &mut pending, t, r);
    }
}

fn finish_gpu(
    ctx: &Context,
    gpu: &mut Gpu,
    pending: &mut HashMap<u64, (Task, Instant)>,
    ticket: u64,
    result: Result<RenderedRgba, RenderError>,
) {
    let Some((task, start)) = pending.remove(&ticket) else {
        return;
    };
    let done = match result {
        Ok(mut rgba) => {
            let pool = ctx.pool.as_ref();
            let picture = task
                .output
                .convert(Arc::new(rgba_picture(&rgba, pool)), pool);
            // On the host's device the frame is in a texture too, kept for the host to draw
            // when this picture is presented.
            if let (Some(texture), Some(host)) = (rgba.texture.take(), &ctx.options.host) {
                host.textures.insert(&picture, texture);
            }
            gpu.recycle(rgba.rgba);
            RenderDone {
                ticket: task.ticket,
                tag: task.work.tag(),
                result: Ok(picture),
                path: RenderPath::Gpu,
                secs: start.elapsed().as_secs_f64(),
                gpu_error: None,
            }
        }
        Err(e) => cpu_render(&*ctx.cpu, task, ctx.pool.as_ref(), Some(e.to_string())),
    };
    lock(&ctx.shared).stats = gpu.stats();
    ctx.finish(done);
}

/// `job` at a quarter of its width and height (a sixteenth of the pixels), pixel-sized
/// effect parameters scaled with it; `None` when it is too small to shrink or a layer cannot
/// be scaled.
fn reduced(job: &RenderJob) -> Option<RenderJob> {
    const DIVISOR: u32 = 4;
    let (w, h) = (job.width / DIVISOR, job.height / DIVISOR);
    if w < 64 || h < 36 {
        return None;
    }
    let mut small = job.clone();
    small.width = w;
    small.height = h;
    for layer in &mut small.layers {
        let (lw, lh) = (
            (layer.frame.width / DIVISOR).max(1),
            (layer.frame.height / DIVISOR).max(1),
        );
        layer.frame = Arc::new(layer.frame.scaled_yuv420p(lw, lh)?);
        layer.key = 0;
        layer.effects = layer
            .effects
            .iter()
            .map(|e| (crate::effects::table::def_of(e).at_lod)(e, DIVISOR as f32))
            .collect();
    }
    Some(small)
}

/// Best-of-`rounds` milliseconds of each path on `job`, after one warm-up frame on each (the
/// GPU's first frame allocates buffers; the CPU path's builds its curve tables and scratch
/// pictures); stops after a round that shows one path over twice as slow.
fn measure(
    gpu: &mut Gpu,
    cpu: &dyn CpuRenderer,
    job: &RenderJob,
    pool: Option<&BufferPool>,
    rounds: usize,
) -> (f64, f64, Option<RenderError>) {
    let work = Work::Effects(job.clone());
    let mut cpu_best = f64::INFINITY;
    let mut gpu_best = f64::INFINITY;
    let _ = cpu.render(&work, pool);
    let mut gpu_error = gpu.render(job).err();
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = cpu.render(&work, pool);
        cpu_best = cpu_best.min(t.elapsed().as_secs_f64() * 1e3);
        if gpu_error.is_none() {
            let t = Instant::now();
            match gpu.render(job) {
                Ok(_) => gpu_best = gpu_best.min(t.elapsed().as_secs_f64() * 1e3),
                Err(e) => gpu_error = Some(e),
            }
        }
        if gpu_error.is_some() || gpu_best > 2.0 * cpu_best || cpu_best > 2.0 * gpu_best {
            break;
        }
    }
    (cpu_best, gpu_best, gpu_error)
}

/// How much slower the GPU must be on the reduced copy for the CPU path to be kept without a
/// full-size measurement. Below 2x because playback runs beside the measurement and slows the
/// CPU path's timing (measured here: lavapipe is 3-4x slower on the copy, 2-3x when playing).
const SMALL_MARGIN: f64 = 1.5;

/// Measures both paths and picks the faster. First on a reduced copy of `job` (a sixteenth
/// of the pixels): a GPU over [`SMALL_MARGIN`] times slower than the CPU path there — a
/// software adapter — is
/// not the default, decided in a few tens of milliseconds instead of seconds of every core
/// while playback waits. (Fixed costs per frame weigh more on the small copy and favour the
/// CPU path, so only a clear CPU win is taken from it.) Otherwise both paths are measured on
/// `job` itself, alternately, best of two.
fn calibrate(
    gpu: &mut Gpu,
    cpu: &dyn CpuRenderer,
    job: &RenderJob,
    pool: Option<&BufferPool>,
) -> PathChoice {
    crate::profile_function!();
    let names = gpu.device_names().join(", ");
    if let Some(small) = reduced(job) {
        let (cpu_ms, gpu_ms, err) = measure(gpu, cpu, &small, pool, 2);
        if err.is_none() && gpu_ms > SMALL_MARGIN * cpu_ms {
            let (w, h) = (small.width, small.height);
            return PathChoice {
                path: RenderPath::Cpu,
                cpu_ms,
                gpu_ms: Some(gpu_ms),
                width: w,
                height: h,
                reason: format!(
                    "a {w}x{h} copy of a {}x{} effects frame took {gpu_ms:.1} ms on the GPU ({names}) and {cpu_ms:.1} ms on the CPU path: the CPU path is faster",
                    job.width, job.height
                ),
            };
        }
    }
    let (cpu_best, gpu_best, gpu_error) = measure(gpu, cpu, job, pool, 2);
    let (w, h) = (job.width, job.height);
    if let Some(e) = gpu_error {
        return PathChoice {
            path: RenderPath::Cpu,
            cpu_ms: cpu_best,
            gpu_ms: None,
            width: w,
            height: h,
            reason: format!(
                "the GPU ({names}) failed a {w}x{h} frame: {e}; effects use the CPU path"
            ),
        };
    }
    let path = if gpu_best < cpu_best {
        RenderPath::Gpu
    } else {
        RenderPath::Cpu
    };
    let faster = match path {
        RenderPath::Gpu => "the GPU is faster",
        RenderPath::Cpu => "the CPU path is faster",
    };
    PathChoice {
        path,
        cpu_ms: cpu_best,
        gpu_ms: Some(gpu_best),
        width: w,
        height: h,
        reason: format!(
            "a {w}x{h} effects frame took {gpu_best:.1} ms on the GPU ({names}) and {cpu_best:.1} ms on the CPU path: {faster}"
        ),
    }
}
