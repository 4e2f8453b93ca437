//! A track's presentation, whatever its container: samples in decode order with their
//! presentation times become frame indices, keyframes and a frame rate (or frame times when
//! the rate varies).

use framelock_components::{FrameTimes, Rational};

use super::demux::SampleRef;

/// A track's presentation: the order, keyframes and frame rate its samples' times give.
pub(super) struct Presented {
    /// Presentation index → decode index.
    pub(super) order: Vec<u32>,
    /// Presentation indices of sync samples.
    pub(super) keyframes: Vec<u64>,
    /// Presentation order differs from decode order.
    pub(super) has_reordering: bool,
    /// The common frame duration's rate, or the average.
    pub(super) frame_rate: Rational,
    /// Frame times when the rate varies.
    pub(super) frame_times: Option<FrameTimes>,
}

/// Orders `samples` (decode order, `pts` set) for presentation: samples presented before
/// `trim_before` get no frame index; the first presented is moved to `delay`; `duration`
/// (timescale units) and `last_duration(decode index)` give the rate when the steps do not.
/// The part of indexing every container shares.
pub(super) fn present(
    samples: &mut [SampleRef],
    timescale: u64,
    trim_before: i64,
    delay: i64,
    duration: u64,
    last_duration: impl Fn(usize) -> Option<i64>,
) -> Result<Presented, String> {
    let mut order: Vec<u32> = (0..samples.len() as u32)
        .filter(|&i| samples[i as usize].pts >= trim_before)
        .collect();
    order.sort_by_key(|&i| (samples[i as usize].pts, i));
    if order.is_empty() {
        return Err("the edit list leaves no frame to present".into());
    }
    let first_pts = samples[order[0] as usize].pts;
    for s in samples.iter_mut() {
        s.pts = s.pts - first_pts + delay;
    }
    for (n, &d) in order.iter().enumerate() {
        samples[d as usize].frame = Some(n as u64);
    }
    let keyframes = order
        .iter()
        .enumerate()
        .filter(|&(_, &d)| samples[d as usize].is_sync)
        .map(|(n, _)| n as u64)
        .collect();
    let has_reordering = samples.windows(2).any(|w| w[1].pts < w[0].pts);

    // Frame rate: the common sample duration when there is one, else the average.
    let mut deltas: Vec<i64> = order
        .windows(2)
        .map(|w| samples[w[1] as usize].pts - samples[w[0] as usize].pts)
        .collect();
    deltas.sort_unstable();
    let frame_rate = match deltas.get(deltas.len() / 2) {
        Some(&median) if median > 0 => Rational::new(timescale, median as u64),
        _ => None,
    }
    .or_else(|| Rational::new(order.len() as u64 * timescale, duration.max(1)))
    .unwrap_or(Rational::integer(30));
    // Variable frame rate (phones): frame times that differ by more than rounding. Then the
    // rate is the average and the times map the timeline to frames.
    let (frame_rate, frame_times) = match (deltas.first(), deltas.last()) {
        (Some(&lo), Some(&hi)) if vfr(lo, hi, deltas[deltas.len() / 2]) => {
            let pts: Vec<i64> = order.iter().map(|&d| samples[d as usize].pts).collect();
            let last = order[order.len() - 1] as usize;
            let last_duration = last_duration(last)
                .filter(|&d| d > 0)
                .unwrap_or(deltas[deltas.len() / 2]);
            let end = samples[last].pts + last_duration;
            match FrameTimes::new(timescale, pts, end) {
                Some(times) => (times.average_rate().unwrap_or(frame_rate), Some(times)),
                None => (frame_rate, None),
            }
        }
        _ => (frame_rate, None),
    };
    Ok(Presented {
        order,
        keyframes,
        has_reordering,
        frame_rate,
        frame_times,
    })
}

/// Whether presentation-time steps between `lo` and `hi` (median `median`) are a variable
/// frame rate rather than timestamp rounding (a tick either way, as 29.97 at timescale 600
/// writes 20 and 21): steps more than a quarter of the median apart.
fn vfr(lo: i64, hi: i64, median: i64) -> bool {
    hi - lo > (median / 4).max(1)
}
