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
}
