//! The background render queue's data: [`RenderTask`] entities (a chunk of the timeline, its
//! priority class, its state and the timeline generation it was queued for), the queue's
//! order, its progress and the render bar's colours. The engine's `background` module moves
//! them; nothing here runs work.

use std::ops::Range;

use bevy_ecs::prelude::*;

/// Whether and how the timeline is rendered in the background.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackgroundRender {
    /// Nothing renders in the background (the queue keeps its tasks, untouched).
    #[default]
    Off,
    /// Only what the host queues ([`PriorityClass::Host`]).
    Manual,
    /// What the host queues, and after the user has been idle for a while, every stretch
    /// the timeline performance map marks as unable to play in real time.
    Smart,
}

/// Which tasks go first: exports, then the host's background renders, then the ones Smart
/// mode chose; within a class, the nearest the playhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriorityClass {
    /// An export (`PlaybackEngine::export`): rendered by the export's own workers, not the
    /// background queue's, which holds while it runs.
    Export,
    /// Asked for by the host (`prioritize(range)`): ahead of everything Smart queued.
    Host,
    /// Chosen by Smart mode.
    Smart,
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting its turn.
    Queued,
    /// On the background renderer; `done` frames of it are rendered.
    Rendering {
        /// Frames of the task rendered (or found rendered already).
        done: u64,
    },
    /// Every frame of it is rendered.
    Done,
    /// Given up: cleared, or an edit made it moot.
    Cancelled,
}

/// One chunk of the timeline to render in the background.
#[derive(Component, Clone, Debug, PartialEq, Eq)]
pub struct RenderTask {
    /// Timeline frames.
    pub range: Range<u64>,
    /// Its class.
    pub class: PriorityClass,
    /// Its state.
    pub state: TaskState,
    /// The timeline generation (edits so far) it was queued for: work of an older one never
    /// lands.
    pub generation: u64,
}

impl RenderTask {
    /// A queued task.
    pub fn queued(range: Range<u64>, class: PriorityClass, generation: u64) -> Self {
        Self {
            range,
            class,
            state: TaskState::Queued,
            generation,
        }
    }

    /// Frames in it.
    pub fn frames(&self) -> u64 {
        self.range.end.saturating_sub(self.range.start)
    }

    /// Frames of it rendered.
    pub fn done_frames(&self) -> u64 {
        match self.state {
            TaskState::Queued | TaskState::Cancelled => 0,
            TaskState::Rendering { done } => done.min(self.frames()),
            TaskState::Done => self.frames(),
        }
    }

    /// Frames between it and `frame` (0 when it holds `frame`).
    pub fn distance(&self, frame: u64) -> u64 {
        if frame < self.range.start {
            self.range.start - frame
        } else if frame >= self.range.end {
            frame + 1 - self.range.end
        } else {
            0
        }
    }

    /// Its place in the queue when the playhead is at `frame` (lower goes first): class,
    /// then distance, then position.
    pub fn order(&self, frame: u64) -> (PriorityClass, u64, u64) {
        (self.class, self.distance(frame), self.range.start)
    }
}

/// `range` cut into chunks on the grid of `chunk` frames (a chunk boundary at every multiple
/// of `chunk`), each clipped to `range`.
pub fn chunks(range: Range<u64>, chunk: u64) -> Vec<Range<u64>> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = ((at / chunk + 1) * chunk).min(range.end);
        out.push(at..end);
        at = end;
    }
    out
}

/// The queue's progress, exact: frames of every task not cancelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueProgress {
    /// Frames of the tasks queued, rendering or done.
    pub frames: u64,
    /// Of which rendered.
    pub done: u64,
    /// Tasks waiting.
    pub queued: usize,
    /// Tasks on the renderer (0 or 1).
    pub rendering: usize,
    /// Tasks finished.
    pub finished: usize,
    /// Tasks cancelled.
    pub cancelled: usize,
    /// The queue is paused.
    pub paused: bool,
}

impl QueueProgress {
    /// Done over all, 0..=1 (1 for an empty queue).
    pub fn fraction(&self) -> f64 {
        if self.frames == 0 {
            1.0
        } else {
            self.done as f64 / self.frames as f64
        }
    }
}

/// A render bar colour, per timeline frame range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BarColor {
    /// Cannot play in real time, and not rendered.
    Red,
    /// May play in real time (not rendered).
    Yellow,
    /// Rendered: plays from the rendered tiers.
    Green,
}

/// One run of frames of one colour.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BarSpan {
    /// Timeline frames.
    pub range: Range<u64>,
    /// Its colour.
    pub color: BarColor,
}

/// Runs of equal colours from per-frame colours starting at `start`.
pub fn spans(start: u64, colors: impl IntoIterator<Item = BarColor>) -> Vec<BarSpan> {
    let mut out: Vec<BarSpan> = Vec::new();
    for (i, c) in colors.into_iter().enumerate() {
        let t = start + i as u64;
        match out.last_mut() {
            Some(s) if s.color == c && s.range.end == t => s.range.end = t + 1,
            _ => out.push(BarSpan {
                range: t..t + 1,
                color: c,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_sit_on_the_grid_and_are_clipped() {
        assert_eq!(chunks(0..90, 30), vec![0..30, 30..60, 60..90]);
        assert_eq!(chunks(25..70, 30), vec![25..30, 30..60, 60..70]);
        assert_eq!(chunks(5..5, 30), Vec::<Range<u64>>::new());
        assert_eq!(chunks(0..3, 0), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn order_is_class_then_distance() {
        let near = RenderTask::queued(90..120, PriorityClass::Smart, 0);
        let far = RenderTask::queued(300..330, PriorityClass::Smart, 0);
        let host_far = RenderTask::queued(600..630, PriorityClass::Host, 0);
        let behind = RenderTask::queued(30..60, PriorityClass::Smart, 0);
        assert_eq!(near.distance(100), 0);
        assert_eq!(behind.distance(100), 41);
        assert_eq!(far.distance(100), 200);
        let mut q = [&far, &behind, &near, &host_far];
        q.sort_by_key(|t| t.order(100));
        assert_eq!(q, [&host_far, &near, &behind, &far]);
    }

    #[test]
    fn progress_counts_frames() {
        let mut t = RenderTask::queued(0..30, PriorityClass::Host, 0);
        assert_eq!(t.done_frames(), 0);
        t.state = TaskState::Rendering { done: 12 };
        assert_eq!(t.done_frames(), 12);
        t.state = TaskState::Done;
        assert_eq!(t.done_frames(), 30);
        let p = QueueProgress {
            frames: 60,
            done: 15,
            ..QueueProgress::default()
        };
        assert!((p.fraction() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn spans_merge_runs() {
        use BarColor::*;
        let s = spans(10, [Red, Red, Green, Green, Green, Yellow]);
        assert_eq!(
            s,
            vec![
                BarSpan {
                    range: 10..12,
                    color: Red
                },
                BarSpan {
                    range: 12..15,
                    color: Green
                },
                BarSpan {
                    range: 15..16,
                    color: Yellow
                },
            ]
        );
    }
}
