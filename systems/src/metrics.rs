//! Playback metrics: counters and rolling timings, summarised as percentiles on demand.

use std::collections::VecDeque;
use std::time::Duration;

use bevy_ecs::prelude::*;

const WINDOW: usize = 1024;

/// Counters and recent timings. Systems write it; hosts read a [`MetricsSnapshot`].
#[derive(Resource, Debug, Default, Clone)]
pub struct Metrics {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks skipped because the loop was behind.
    pub skipped_ticks: u64,
    /// Frames handed to the sink (new pictures).
    pub presented: u64,
    /// Ticks whose frame was not ready and was dropped.
    pub dropped: u64,
    /// Ticks whose frame was not ready and the previous one was shown again.
    pub held: u64,
    /// Decode jobs that failed.
    pub decode_errors: u64,
    /// Decode jobs asked again because their decoder had no room in the memory budget yet.
    pub decoder_waits: u64,
    /// Pictures shown after their own tick in place of a late one (the newest decoded or
    /// rendered since the last picture: the picture moves at the rate work finishes instead
    /// of freezing). Counted among `presented`.
    pub late_shown: u64,
    /// Ticks the playhead waited for its frame (`allow_drop_frames` off: every frame shown,
    /// slower than real time).
    pub waited: u64,
    /// Requests dropped undecoded while playing because the playhead had left their GOP (a
    /// decoder slower than real time jumps to the playhead's keyframe).
    pub gave_up: u64,
    /// Decode jobs withdrawn while playing because nothing wanted their source any more (a
    /// quality step moved the layer to another candidate, a clip ended): the worker skips
    /// them, so the new candidate's frames do not queue behind them.
    pub withdrawn: u64,
    /// Pictures shown in place of the exact frame after a seek while it decodes (the nearest
    /// decoded frame of the same source: the keyframe, a cached frame).
    pub approximate: u64,
    /// The longest tick (running the schedule) so far.
    pub tick_max: Duration,
    /// Ticks whose picture was still rendering at the deadline (counted among the dropped or
    /// held ones, like a late decode).
    pub render_late: u64,
    /// Frames needed on screen this tick that were already decoded when first looked for.
    pub cache_hits: u64,
    /// Frames needed on screen this tick that were not.
    pub cache_misses: u64,
    /// Frames decoded.
    pub decoded: u64,
    /// Decode jobs queued or running now.
    pub decode_queue_depth: usize,
    /// Frames held in memory now.
    pub frames_in_memory: usize,
    /// Bytes of decoded frames held now.
    pub bytes_in_memory: usize,
    /// Bytes of frames requested or decoding (not yet held).
    pub bytes_requested: usize,
    /// Live pool bytes outside the caches (outputs on screen, decoders' frames in flight,
    /// frames queued for the disk writer): what the prefetch window must leave room for.
    pub bytes_outside_caches: usize,
    /// Frames answered from the disk tier instead of decoding.
    pub disk_reads: u64,
    /// Frames evicted from RAM.
    pub evicted: u64,
    /// Evicted frames sent to the disk tier (write-back), and rendered frames written through.
    pub disk_writes_queued: u64,
    /// Recent tick durations (schedule run time).
    pub tick_times: VecDeque<Duration>,
    /// Recent decode times per frame (worker time).
    pub decode_times: VecDeque<Duration>,
    /// Seconds the decode workers spent on the jobs collected so far (their own time: with
    /// several workers it can exceed wall time).
    pub decode_seconds: f64,
    /// Wall time of the first and the latest tick.
    pub span: Option<(Duration, Duration)>,
    /// Recent frame times: the clock time between two new pictures reaching the screen
    /// (what the viewer sees; a dropped frame makes one interval longer).
    pub frame_times: VecDeque<Duration>,
    /// Clock time the last new picture was presented.
    pub last_presented_at: Option<Duration>,
    /// Clock time spent playing: between two ticks that were both playing (paused time,
    /// and the gap before the first tick of a play, are not counted).
    pub playing_time: Duration,
    /// New pictures presented in that time.
    pub playing_presented: u64,
    /// The previous tick's clock time, if it was playing.
    pub last_playing_tick: Option<Duration>,
}

fn push(q: &mut VecDeque<Duration>, d: Duration) {
    if q.len() == WINDOW {
        q.pop_front();
    }
    q.push_back(d);
}

fn percentile_ms(q: &VecDeque<Duration>, p: f64) -> f64 {
    if q.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = q.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

impl Metrics {
    /// Records one tick's schedule run time, at clock time `at`, whether it was playing, its
    /// deadline `due`, and whether it presented a new picture (on screen at `due`). Rates and
    /// frame times count playing time only: a frame interval across a pause would measure
    /// the host. The picture on screen when playing starts counts as shown at the first
    /// playing tick's deadline, so a stall right after play is one long frame time.
    pub fn record_tick(
        &mut self,
        took: Duration,
        at: Duration,
        playing: bool,
        due: Duration,
        presented: bool,
    ) {
        push(&mut self.tick_times, took);
        self.tick_max = self.tick_max.max(took);
        self.span = Some(self.span.map_or((at, at), |(first, _)| (first, at)));
        match (playing, self.last_playing_tick) {
            (true, Some(prev)) => {
                self.playing_time += at.saturating_sub(prev);
                self.playing_presented += u64::from(presented);
                if presented {
                    self.record_present(due);
                }
            }
            (true, None) => self.last_presented_at = Some(due),
            (false, _) => self.last_presented_at = None,
        }
        self.last_playing_tick = playing.then_some(at);
    }

    /// Records that a new picture was presented at clock time `at` (its tick's deadline).
    pub fn record_present(&mut self, at: Duration) {
        if let Some(prev) = self.last_presented_at {
            push(&mut self.frame_times, at.saturating_sub(prev));
        }
        self.last_presented_at = Some(at);
    }

    /// Records one decode's worker time.
    pub fn record_decode(&mut self, took: Duration) {
        self.decoded += 1;
        self.decode_seconds += took.as_secs_f64();
        push(&mut self.decode_times, took);
    }

    /// A summary.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            ticks: self.ticks,
            skipped_ticks: self.skipped_ticks,
            presented: self.presented,
            dropped: self.dropped,
            held: self.held,
            decode_errors: self.decode_errors,
            decoder_waits: self.decoder_waits,
            late_shown: self.late_shown,
            waited: self.waited,
            approximate: self.approximate,
            sink_late: 0,
            render_late: self.render_late,
            tick_ms_max: self.tick_max.as_secs_f64() * 1e3,
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            tick_ms_last: self
                .tick_times
                .back()
                .map_or(0.0, |d| d.as_secs_f64() * 1e3),
            cache_hit_rate: if self.cache_hits + self.cache_misses > 0 {
                self.cache_hits as f64 / (self.cache_hits + self.cache_misses) as f64
            } else {
                0.0
            },
            decoded: self.decoded,
            decode_queue_depth: self.decode_queue_depth,
            frames_in_memory: self.frames_in_memory,
            bytes_in_memory: self.bytes_in_memory,
            presented_fps: if self.playing_time > Duration::ZERO {
                self.playing_presented as f64 / self.playing_time.as_secs_f64()
            } else {
                0.0
            },
            frame_ms_last: self
                .frame_times
                .back()
                .map_or(0.0, |d| d.as_secs_f64() * 1e3),
            frame_ms_p50: percentile_ms(&self.frame_times, 0.5),
            frame_ms_p95: percentile_ms(&self.frame_times, 0.95),
            frame_ms_p99: percentile_ms(&self.frame_times, 0.99),
            tick_ms_p50: percentile_ms(&self.tick_times, 0.5),
            tick_ms_p95: percentile_ms(&self.tick_times, 0.95),
            tick_ms_p99: percentile_ms(&self.tick_times, 0.99),
            decode_ms_p50: percentile_ms(&self.decode_times, 0.5),
            decode_ms_p95: percentile_ms(&self.decode_times, 0.95),
        }
    }
}

/// A point-in-time summary of [`Metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks skipped (loop behind).
    pub skipped_ticks: u64,
    /// New frames presented.
    pub presented: u64,
    /// Late frames dropped.
    pub dropped: u64,
    /// Late frames replaced by the previous one.
    pub held: u64,
    /// Failed decodes.
    pub decode_errors: u64,
    /// Decode jobs asked again: no room for their decoder in the memory budget yet.
    pub decoder_waits: u64,
    /// Pictures shown after their tick in place of a late one (among `presented`).
    pub late_shown: u64,
    /// Ticks the playhead waited for its frame (every frame shown).
    pub waited: u64,
    /// Approximate pictures shown after a seek while the exact frame decoded.
    pub approximate: u64,
    /// Frames the host's sink got late or never: replaced by a newer one while it was busy
    /// with an older one (filled in by `Player`, whose sink runs on a thread of its own).
    pub sink_late: u64,
    /// Ticks whose picture was still rendering at the deadline (among the dropped or held).
    pub render_late: u64,
    /// Layers (or whole rendered frames) found ready when the tick needed them.
    pub cache_hits: u64,
    /// Layers not ready when the tick needed them.
    pub cache_misses: u64,
    /// The last tick, ms.
    pub tick_ms_last: f64,
    /// The longest tick so far, ms.
    pub tick_ms_max: f64,
    /// Share of on-screen frames that were already decoded when the tick needed them.
    pub cache_hit_rate: f64,
    /// Frames decoded.
    pub decoded: u64,
    /// Decode jobs in flight.
    pub decode_queue_depth: usize,
    /// Frames in memory.
    pub frames_in_memory: usize,
    /// Bytes in memory.
    pub bytes_in_memory: usize,
    /// New pictures per second of playing time (paused time is not counted).
    pub presented_fps: f64,
    /// The last frame time (clock time between the last two new pictures), ms.
    pub frame_ms_last: f64,
    /// Frame time percentiles over the recent window, ms.
    pub frame_ms_p50: f64,
    /// 95th percentile.
    pub frame_ms_p95: f64,
    /// 99th percentile.
    pub frame_ms_p99: f64,
    /// Tick time percentiles (the schedule's own run time), ms.
    pub tick_ms_p50: f64,
    /// 95th percentile.
    pub tick_ms_p95: f64,
    /// 99th percentile.
    pub tick_ms_p99: f64,
    /// Decode time per frame, median, ms.
    pub decode_ms_p50: f64,
    /// 95th percentile.
    pub decode_ms_p95: f64,
}
