//! The background render queue on [`Player`] (see [`PlaybackEngine::set_background_render`]):
//! each call runs on the engine's thread between ticks.

use super::{Command, Player, PlayerError};
use crate::PlaybackEngine;

impl Player {
    /// Whether and how the timeline renders in the background
    /// ([`PlaybackEngine::set_background_render`]).
    pub fn set_background_render(&self, mode: crate::BackgroundRender) {
        self.send(Command::Call(Box::new(move |e| {
            e.set_background_render(mode)
        })));
    }

    /// The background queue's idle delay, edit debounce and chunk length.
    pub fn set_background_options(&self, options: crate::BackgroundOptions) {
        self.send(Command::Call(Box::new(move |e| {
            e.set_background_options(options);
        })));
    }

    /// Queues `range` for background render ahead of Smart's tasks
    /// ([`PlaybackEngine::prioritize_render`]); returns the chunks queued.
    pub fn prioritize_render(&self, range: std::ops::Range<u64>) -> Result<usize, PlayerError> {
        self.call(move |e| e.prioritize_render(range))
    }

    /// Holds the background queue.
    pub fn pause_render_queue(&self) {
        self.send(Command::Call(Box::new(PlaybackEngine::pause_render_queue)));
    }

    /// Lets the background queue run again.
    pub fn resume_render_queue(&self) {
        self.send(Command::Call(Box::new(PlaybackEngine::resume_render_queue)));
    }

    /// Cancels and removes every background task; returns how many there were.
    pub fn clear_render_queue(&self) -> Result<usize, PlayerError> {
        self.call(PlaybackEngine::clear_render_queue)
    }

    /// The background queue's progress.
    pub fn render_progress(&self) -> Result<crate::QueueProgress, PlayerError> {
        self.call(PlaybackEngine::render_progress)
    }

    /// The background tasks in queue order.
    pub fn render_tasks(&self) -> Result<Vec<crate::RenderTask>, PlayerError> {
        self.call(PlaybackEngine::render_tasks)
    }

    /// The render bar over `range` ([`PlaybackEngine::render_bar`]).
    pub fn render_bar(
        &self,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<crate::BarSpan>, PlayerError> {
        self.call(move |e| e.render_bar(range))
    }

    /// Starts an export of the timeline as it is now as a task of the engine
    /// ([`PlaybackEngine::export`]).
    pub fn export(
        &self,
        request: crate::ExportRequest,
    ) -> Result<bevy_ecs::entity::Entity, PlayerError> {
        self.call(move |e| e.export(request))?
            .map_err(|e| PlayerError::Export(Box::new(e)))
    }

    /// An export task's progress at the engine's last tick.
    pub fn export_progress(
        &self,
        task: bevy_ecs::entity::Entity,
    ) -> Result<Option<crate::ExportProgress>, PlayerError> {
        self.call(move |e| e.export_progress(task))
    }

    /// Pauses an export task.
    pub fn pause_export(&self, task: bevy_ecs::entity::Entity) -> Result<bool, PlayerError> {
        self.call(move |e| e.pause_export(task))
    }

    /// Resumes a paused export task.
    pub fn resume_export(&self, task: bevy_ecs::entity::Entity) -> Result<bool, PlayerError> {
        self.call(move |e| e.resume_export(task))
    }

    /// Cancels an export task.
    pub fn cancel_export(&self, task: bevy_ecs::entity::Entity) -> Result<bool, PlayerError> {
        self.call(move |e| e.cancel_export(task))
    }

    /// An ended export task's report, once ([`PlaybackEngine::take_export_report`]).
    pub fn take_export_report(
        &self,
        task: bevy_ecs::entity::Entity,
    ) -> Result<Option<Result<crate::ExportReport, crate::ExportError>>, PlayerError> {
        self.call(move |e| e.take_export_report(task))
    }

    /// The background renderer's counters.
    pub fn background_stats(&self) -> Result<crate::BackgroundStats, PlayerError> {
        self.call(|e| e.background_stats())
    }
}
