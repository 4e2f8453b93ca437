//! `index_timeline` — reads [`Clip`], [`Track`]; writes [`TimelineIndex`].
//!
//! Keeps a per-track, start-sorted index of the clips, rebuilt only when clips or tracks are
//! added, changed or removed, so that prefetch and composite find the layers at a frame with
//! a binary search per track instead of sorting every clip every tick.

use bevy_ecs::prelude::*;
use framelock_components::{Clip, Track};

/// One track's clips, sorted by start.
#[derive(Debug, Default, Clone)]
pub struct TrackIndex {
    /// Track opacity.
    pub opacity: f32,
    /// (start, end, clip entity), sorted by start, non-overlapping.
    pub clips: Vec<(u64, u64, Entity)>,
}

/// The timeline's clips by track, bottom first.
#[derive(Resource, Debug, Default, Clone)]
pub struct TimelineIndex {
    /// Tracks by index.
    pub tracks: Vec<TrackIndex>,
}

impl TimelineIndex {
    /// The clips visible at `t`, bottom first: from the topmost opaque layer up, skipping
    /// invisible tracks. Returns (clip entity, opacity).
    pub fn visible_at(&self, t: u64, out: &mut Vec<(Entity, f32)>) {
        out.clear();
        for track in &self.tracks {
            let i = track.clips.partition_point(|&(start, _, _)| start <= t);
            if i == 0 {
                continue;
            }
            let (start, end, e) = track.clips[i - 1];
            if start <= t && t < end {
                if track.opacity >= 1.0 {
                    out.clear(); // an opaque layer hides everything below it
                }
                if track.opacity > 0.0 {
                    out.push((e, track.opacity));
                }
            }
        }
    }
}

/// Clips or tracks added or changed since the system last ran.
type TimelineChanged = Or<(Changed<Clip>, Changed<Track>)>;

/// The system.
pub fn index_timeline(
    mut index: ResMut<TimelineIndex>,
    clips: Query<(Entity, &Clip)>,
    tracks: Query<&Track>,
    changed: Query<(), TimelineChanged>,
    mut removed_clips: RemovedComponents<Clip>,
    mut removed_tracks: RemovedComponents<Track>,
    mut built: Local<bool>,
) {
    framelock_engine::profile_function!();
    let removed = removed_clips.read().count() + removed_tracks.read().count() > 0;
    if *built && changed.is_empty() && !removed {
        return;
    }
    *built = true;
    let count = tracks.iter().map(|t| t.index + 1).max().unwrap_or(0);
    let mut new = vec![TrackIndex::default(); count];
    for t in &tracks {
        new[t.index].opacity = t.opacity;
    }
    for (e, c) in &clips {
        if c.enabled && c.track < new.len() {
            new[c.track].clips.push((c.start, c.start + c.duration, e));
        }
    }
    for t in &mut new {
        t.clips.sort_unstable_by_key(|&(start, _, _)| start);
    }
    index.tracks = new;
}
