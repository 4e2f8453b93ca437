//! Exports as [`RenderTask`] entities of the engine that started them: the model the
//! background queue and the farm share — a range of the timeline, a priority class
//! ([`PriorityClass::Export`], ahead of every background task), a state with exact progress —
//! so a host lists, pauses, resumes and cancels exports and background renders alike.
//!
//! The export renders on its own workers (see [`Export`]) from the timeline as it was when it
//! started: later edits do not change it. Each tick only reads its progress (nothing waits)
//! and mirrors it into the task; while it renders, the background queue holds. When it ends
//! the engine sends [`EngineEvent::ExportDone`] or [`EngineEvent::ExportFailed`] and keeps
//! the report for [`PlaybackEngine::take_export_report`].

use bevy_ecs::prelude::*;
use framelock_components::{PriorityClass, RenderTask, TaskState};
use framelock_systems::EngineEvent;

use super::{Export, ExportError, ExportProgress, ExportReport, ExportRequest, ExportState};
use crate::playback::PlaybackEngine;

/// The export behind an export task: its handle while it runs, its outcome once it ended.
#[derive(Component, Debug)]
pub(crate) struct ExportJob {
    running: Option<Export>,
    ended: Option<Result<ExportReport, ExportError>>,
    output: std::path::PathBuf,
    /// Progress at the last tick.
    progress: ExportProgress,
}

impl PlaybackEngine {
    /// Starts exporting the timeline as it is now (edits so far included) with `request`,
    /// on the export's own workers, and returns its task: a [`RenderTask`] of class
    /// [`PriorityClass::Export`] listed first by [`PlaybackEngine::render_tasks`]. The
    /// background queue holds while it renders. Bad requests are refused here, before
    /// anything starts.
    pub fn export(&mut self, mut request: ExportRequest) -> Result<Entity, ExportError> {
        // The export's renderers read (and add to) this engine's disk tier: frames rendered
        // in the background are encoded from there (see `FrameLayers::rgba_twin_key`).
        if request.engine.shared_disk_cache.is_none()
            && let Some(disk) = self.world.get_resource::<framelock_systems::DiskTier>()
        {
            request.engine.shared_disk_cache = Some(disk.cache.clone());
            request.engine.disk_cache = None;
        }
        let duration = self.playhead().duration;
        let range = request.range.clone().unwrap_or(0..duration);
        let output = request.output.clone();
        let export = Export::start(&self.project, request)?;
        let progress = export.progress();
        let generation = self.playhead().edits;
        let mut task = RenderTask::queued(range, PriorityClass::Export, generation);
        task.state = TaskState::Rendering { done: 0 };
        Ok(self
            .world
            .spawn((
                task,
                ExportJob {
                    running: Some(export),
                    ended: None,
                    output,
                    progress,
                },
            ))
            .id())
    }

    /// The export task's progress at the last tick (`None`: not an export task).
    pub fn export_progress(&self, task: Entity) -> Option<ExportProgress> {
        self.world.get::<ExportJob>(task).map(|j| j.progress)
    }

    /// Pauses an export task (its workers stop after the frame they are on). Returns whether
    /// `task` is a running export.
    pub fn pause_export(&mut self, task: Entity) -> bool {
        self.with_export(task, Export::pause)
    }

    /// Resumes a paused export task.
    pub fn resume_export(&mut self, task: Entity) -> bool {
        self.with_export(task, Export::resume)
    }

    /// Cancels an export task: nothing is written (an older file stays), and the task ends
    /// [`TaskState::Cancelled`] at a later tick.
    pub fn cancel_export(&mut self, task: Entity) -> bool {
        self.with_export(task, Export::cancel)
    }

    /// An ended export task's outcome, once: the task is removed. `None` while it runs (or
    /// when `task` is not an export task).
    pub fn take_export_report(
        &mut self,
        task: Entity,
    ) -> Option<Result<ExportReport, ExportError>> {
        let ended = self.world.get_mut::<ExportJob>(task)?.ended.take()?;
        self.world.despawn(task);
        Some(ended)
    }

    fn with_export(&mut self, task: Entity, f: impl FnOnce(&Export)) -> bool {
        match self
            .world
            .get::<ExportJob>(task)
            .and_then(|j| j.running.as_ref())
        {
            Some(export) => {
                f(export);
                true
            }
            None => false,
        }
    }

    /// Once per tick: mirrors each export's progress into its task, collects the ones that
    /// ended (their thread has finished: joining does not wait), and tells the background
    /// queue whether an export is rendering. Never waits.
    pub(crate) fn export_tick(&mut self) {
        let mut rendering = false;
        let mut ended = Vec::new();
        let mut q = self.world.query::<(&mut RenderTask, &mut ExportJob)>();
        for (mut task, mut job) in q.iter_mut(&mut self.world) {
            let Some(export) = job.running.take() else {
                continue;
            };
            job.progress = export.progress();
            if !export.is_done() {
                rendering |= job.progress.state == ExportState::Running;
                task.state = TaskState::Rendering {
                    done: job.progress.frames_encoded,
                };
                job.running = Some(export);
                continue;
            }
            let outcome = export.wait();
            let (state, task_state, event) = match &outcome {
                Ok(report) => (
                    ExportState::Finished,
                    TaskState::Done,
                    EngineEvent::ExportDone {
                        output: report.path.clone(),
                        frames: report.frames,
                    },
                ),
                Err(e) => (
                    if matches!(e, ExportError::Cancelled) {
                        ExportState::Cancelled
                    } else {
                        ExportState::Failed
                    },
                    TaskState::Cancelled,
                    EngineEvent::ExportFailed {
                        output: job.output.clone(),
                        error: e.to_string(),
                    },
                ),
            };
            job.progress.state = state;
            task.state = task_state;
            ended.push(event);
            job.ended = Some(outcome);
        }
        self.background.export_running = rendering;
        for event in ended {
            self.emit(event);
        }
    }
}
