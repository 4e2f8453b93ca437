//! The background renderer's thread, at a lowered OS priority (nice +10 on Linux, inherited by
//! the threads its engine starts): an [`OfflineRenderer`] of its own (own decoders, one
//! render worker, the CPU path) that renders the runs of frames it is sent, in order, and
//! reports each picture with its content key. Between frames — never inside a tick of
//! either engine — it holds while the gate is shut (playback needs the machine) and stops a
//! run as soon as its token is withdrawn (an edit, a clear).

use std::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use framelock_components::{CacheKey, Project};
use framelock_engine::media::Picture;
use framelock_engine::memory::BufferPool;

use crate::EngineOptions;
use crate::offline::OfflineRenderer;

/// A chunk's runs of frames to render.
pub(super) struct Job {
    /// Withdrawn (the shared token moves on) when the work is no longer wanted.
    pub token: u64,
    /// The timeline generation the frames belong to.
    pub generation: u64,
    /// The timeline, when it changed since the last job.
    pub project: Option<Project>,
    /// Frames to render, in order.
    pub runs: Vec<Range<u64>>,
}

/// What the thread says.
pub(super) enum Report {
    /// One picture.
    Frame {
        token: u64,
        generation: u64,
        key: Option<CacheKey>,
        picture: Arc<Picture>,
    },
    /// The job's runs are rendered (or it was withdrawn: `complete` false).
    Done { token: u64, complete: bool },
    /// The job failed (its project would not open, a frame would not render).
    Failed { token: u64, error: String },
}

/// The thread and its controls.
pub(super) struct Worker {
    pub jobs: Sender<Job>,
    pub reports: Receiver<Report>,
    /// The token of the job that may run; anything else stops.
    pub token: Arc<AtomicU64>,
    /// Shut: hold before the next frame.
    pub gate: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// How often a held worker looks at its gate again.
const HOLD_POLL: Duration = Duration::from_millis(2);

impl Worker {
    /// Starts the thread; its engines open with `options`. The pictures it reports are
    /// counted in `home` (the keeping engine's pool) before they are sent, so the keeper's
    /// budget holds them and the thread's own budget is free for the next ones.
    pub fn spawn(options: EngineOptions, home: BufferPool) -> std::io::Result<Self> {
        let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(1);
        let (report_tx, reports) = crossbeam_channel::bounded::<Report>(64);
        let token = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(AtomicBool::new(false));
        let (t, g) = (token.clone(), gate.clone());
        let handle = std::thread::Builder::new()
            .name("framelock-background".into())
            .spawn(move || run(&options, &home, &job_rx, &report_tx, &t, &g))?;
        Ok(Self {
            jobs,
            reports,
            token,
            gate,
            handle: Some(handle),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Withdraw the job and open the gate so a held frame loop sees it; closing the job
        // channel ends the thread.
        self.token.fetch_add(1, Ordering::SeqCst);
        self.gate.store(true, Ordering::SeqCst);
        let (closed, _) = crossbeam_channel::bounded(1);
        self.jobs = closed;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    options: &EngineOptions,
    home: &BufferPool,
    jobs: &Receiver<Job>,
    reports: &Sender<Report>,
    token: &AtomicU64,
    gate: &AtomicBool,
) {
    framelock_engine::profile::set_thread_name("framelock-background");
    // Below playback: the threads its engine starts (decoders, render worker) inherit the
    // lowered priority, so the OS runs playback's first when both want a core.
    let _ = framelock_engine::workers::lower_thread_priority();
    // Its effects on a one-thread pool of its own, started here (so at the lowered priority):
    // on the global pool its effects queued beside playback's and took them a core at a time
    // (1080p grade: 5 dropped without the queue, 54 with it working alongside).
    let mut options = options.clone();
    if let Ok(pool) = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "framelock-background-fx".into())
        .build()
    {
        options.cpu_renderer = Arc::new(framelock_engine::render::PooledCpu(pool));
    }
    let options = &options;
    let mut renderer: Option<OfflineRenderer> = None;
    for job in jobs.iter() {
        if let Some(project) = &job.project {
            renderer = None;
            match OfflineRenderer::open(project, options.clone()) {
                Ok(r) => renderer = Some(r),
                Err(e) => {
                    let _ = reports.send(Report::Failed {
                        token: job.token,
                        error: e.to_string(),
                    });
                    continue;
                }
            }
        }
        let Some(r) = renderer.as_mut() else {
            let _ = reports.send(Report::Failed {
                token: job.token,
                error: "no timeline to render".into(),
            });
            continue;
        };
        let wanted = || token.load(Ordering::SeqCst) == job.token;
        let mut complete = true;
        let mut failed = None;
        for run in &job.runs {
            let result = r.render_while(run.clone(), |f| {
                while !gate.load(Ordering::SeqCst) && wanted() {
                    std::thread::sleep(HOLD_POLL);
                }
                if !wanted() {
                    return ControlFlow::Break(());
                }
                let report = Report::Frame {
                    token: job.token,
                    generation: job.generation,
                    key: f.content_key,
                    picture: rehome(f.picture, home),
                };
                if send(reports, report, &wanted) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            });
            if let Err(e) = result {
                failed = Some(e.to_string());
                break;
            }
            if !wanted() {
                complete = false;
                break;
            }
        }
        let report = match failed {
            Some(error) => Report::Failed {
                token: job.token,
                error,
            },
            None => Report::Done {
                token: job.token,
                complete,
            },
        };
        if !send(reports, report, &wanted) && wanted() {
            return;
        }
    }
}

/// `picture` counted in `home`: its buffers moved there when nothing else holds them, else a
/// copy taken from `home`. (Kept in the other engine's tiers while counted in this one's, the
/// pictures filled this budget until the thread could not decode: the 4K three-track scene
/// stalled at frame 150, 'no progress for 60 s'.)
fn rehome(picture: Arc<Picture>, home: &BufferPool) -> Arc<Picture> {
    Arc::new(match Arc::try_unwrap(picture) {
        Ok(p) => p.rehome(home),
        Err(shared) => shared.clone_in(Some(home)),
    })
}

/// Sends `report`, waiting while the engine has not read the ones before, unless the job is
/// withdrawn meanwhile. `false` when it was not sent.
fn send(reports: &Sender<Report>, mut report: Report, wanted: &impl Fn() -> bool) -> bool {
    loop {
        match reports.send_timeout(report, Duration::from_millis(50)) {
            Ok(()) => return true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(r)) if wanted() => report = r,
            Err(_) => return false,
        }
    }
}
