//! [`SegmentPlan`]: how an export's range is cut into closed-GOP segments.

use std::ops::Range;

/// One segment of a [`SegmentPlan`]: timeline frames `start..end`, one closed GOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Position in the plan (and in the output).
    pub index: usize,
    /// First timeline frame.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

impl Segment {
    /// Frames in the segment.
    pub fn frames(&self) -> u64 {
        self.end - self.start
    }
}

/// How a range is cut into segments: deterministic (the range and the segment length only)
/// and serialisable, so distributed render can ship the very plan a local export uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentPlan {
    /// Timeline frames exported.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// Frames per segment (the last may be shorter).
    pub segment_frames: u64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

impl SegmentPlan {
    /// Cuts `range` into segments of `segment_frames` (at least 1).
    pub fn new(range: Range<u64>, segment_frames: u64) -> Self {
        let len = segment_frames.max(1);
        let mut segments = Vec::new();
        let mut start = range.start;
        while start < range.end {
            let end = (start + len).min(range.end);
            segments.push(Segment {
                index: segments.len(),
                start,
                end,
            });
            start = end;
        }
        Self {
            start: range.start,
            end: range.end,
            segment_frames: len,
            segments,
        }
    }

    /// Cuts `range` into equal segments of at most `at_most` frames, as many as a multiple of
    /// `parts` (the workers that render them at once), so every worker has the same share to
    /// the end. Deterministic in its arguments.
    pub fn balanced(range: Range<u64>, at_most: u64, parts: usize) -> Self {
        let frames = range.end.saturating_sub(range.start);
        let parts = (parts.max(1) as u64).min(frames.max(1));
        let count = frames.div_ceil(at_most.max(1)).div_ceil(parts) * parts;
        Self::new(range, frames.div_ceil(count.max(1)).max(1))
    }

    /// Frames in the plan.
    pub fn frames(&self) -> u64 {
        self.end - self.start
    }

    /// The timeline frames exported.
    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_range_in_order_and_round_trip() {
        let plan = SegmentPlan::new(10..135, 60);
        assert_eq!(
            plan.segments
                .iter()
                .map(|s| (s.start, s.end))
                .collect::<Vec<_>>(),
            [(10, 70), (70, 130), (130, 135)]
        );
        assert_eq!(plan.frames(), 125);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<SegmentPlan>(&json).unwrap(), plan);
        assert!(SegmentPlan::new(5..5, 60).segments.is_empty());
    }

    #[test]
    fn balanced_plans_give_every_worker_the_same_share() {
        let lens = |p: &SegmentPlan| p.segments.iter().map(Segment::frames).collect::<Vec<_>>();
        // 300 frames, 2 s at most, 2 workers: 6 of 50 (not 5 of 60: 3 for one, 2 for the other).
        assert_eq!(lens(&SegmentPlan::balanced(0..300, 60, 2)), [50; 6]);
        assert_eq!(lens(&SegmentPlan::balanced(0..180, 60, 2)), [45; 4]);
        assert_eq!(lens(&SegmentPlan::balanced(0..120, 60, 2)), [60; 2]);
        assert_eq!(lens(&SegmentPlan::balanced(0..7, 60, 2)), [4, 3]);
        assert_eq!(lens(&SegmentPlan::balanced(0..3, 60, 8)), [1; 3]);
        assert!(SegmentPlan::balanced(5..5, 60, 2).segments.is_empty());
        assert_eq!(SegmentPlan::balanced(10..135, 60, 1).frames(), 125);
        assert_eq!(SegmentPlan::balanced(10..135, 60, 1).segments.len(), 3);
    }
}
