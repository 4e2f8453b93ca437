//! Live timeline edits: what a host changes while the timeline plays, applied to a
//! [`Project`] all or nothing, each answering with the edit that undoes it.
//!
//! A clip is named by where it is ([`ClipRef`]: its track and first frame; clips of a track
//! never overlap, so that names one). [`Project::apply_edit`] works on a copy and keeps it only
//! when the result passes [`Project::validate`]: an edit that would overlap two clips, leave a
//! clip empty or name what is not there changes nothing and says why ([`EditError`]). Undo is
//! applying the returned inverse; redo is applying the edit again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ClipDef, EffectStack, Project, ProjectError, TrackDef};

/// Where a clip is: its track and the first timeline frame it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClipRef {
    /// Track index (0 = bottom).
    pub track: usize,
    /// First timeline frame.
    pub start: u64,
}

impl ClipRef {
    /// The clip on `track` starting at `start`.
    pub fn new(track: usize, start: u64) -> Self {
        Self { track, start }
    }
}

/// One change to the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Edit {
    /// Puts `clip` on `track`.
    InsertClip {
        /// The track.
        track: usize,
        /// The clip (its `start` places it).
        clip: ClipDef,
    },
    /// Takes a clip off the timeline.
    RemoveClip {
        /// The clip.
        clip: ClipRef,
    },
    /// Moves a clip to `track` at `start`, showing the same source frames.
    MoveClip {
        /// The clip.
        clip: ClipRef,
        /// The track it goes to.
        track: usize,
        /// Its new first frame.
        start: u64,
    },
    /// Sets a clip's placement: it covers `start..start + duration` and shows source frame
    /// `source_in` at `start` (trimming the head by `k` frames of a source at the project's
    /// rate moves `start` and `source_in` by `k`; trimming the tail changes `duration` alone).
    TrimClip {
        /// The clip.
        clip: ClipRef,
        /// New first frame.
        start: u64,
        /// New length in frames.
        duration: u64,
        /// Source frame shown at `start`.
        source_in: u64,
    },
    /// Cuts a clip in two at timeline frame `at` (strictly inside it): the left part keeps
    /// the clip's start, the right part starts at `at` showing the frame the clip showed
    /// there, with the same effects (its cross-dissolve, if any, stays on the left part).
    SplitClip {
        /// The clip.
        clip: ClipRef,
        /// The first frame of the right part.
        at: u64,
    },
    /// Shows another media file (or another part of the same one) in the clip's place.
    SetMedia {
        /// The clip.
        clip: ClipRef,
        /// The file.
        media: PathBuf,
        /// Source frame shown at the clip's start.
        source_in: u64,
    },
    /// Replaces a clip's effects, blend mode and transition.
    SetEffects {
        /// The clip.
        clip: ClipRef,
        /// The new stack (empty: shown as decoded).
        effects: EffectStack,
    },
    /// Shows or hides a clip (a hidden clip keeps its place).
    SetEnabled {
        /// The clip.
        clip: ClipRef,
        /// Shown.
        enabled: bool,
    },
    /// Sets a video track's opacity (0 hides it).
    SetTrackOpacity {
        /// The track.
        track: usize,
        /// 0.0..=1.0.
        opacity: f32,
    },
    /// Mutes or unmutes an audio track.
    SetAudioTrackMute {
        /// The audio track.
        track: usize,
        /// Muted.
        mute: bool,
    },
    /// Inserts a video track at `index` (the tracks from `index` up move one up).
    AddTrack {
        /// Its stack position, at most the number of tracks.
        index: usize,
        /// The track, with any clips.
        track: TrackDef,
    },
    /// Removes a video track and its clips (the tracks above move one down).
    RemoveTrack {
        /// The track.
        index: usize,
    },
    /// Several edits applied in order as one: all of them or none.
    Batch {
        /// The edits, first applied first.
        edits: Vec<Edit>,
    },
}

/// Why an edit was refused (the project is unchanged).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// No clip starts at that frame of that track.
    #[error("no clip starts at frame {} of track {}", .0.start, .0.track)]
    NoSuchClip(ClipRef),
    /// No such track (video or audio, as the edit names).
    #[error("no track {0}")]
    NoSuchTrack(usize),
    /// A split outside the clip (or on its first frame).
    #[error("frame {at} is not inside clip {start}..{end} (a split needs a frame after its start)")]
    SplitOutside {
        /// The split frame asked for.
        at: u64,
        /// The clip's first frame.
        start: u64,
        /// One past its last frame.
        end: u64,
    },
    /// The result would not be a valid timeline (clips overlapping, an empty clip, an
    /// opacity outside 0..=1).
    #[error("{0}")]
    Invalid(String),
    /// The result would have no clips left (an empty timeline cannot be played).
    #[error("the edit would leave the timeline empty")]
    EmptyTimeline,
}

impl From<ProjectError> for EditError {
    fn from(e: ProjectError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl Edit {
    /// Every media file the edit puts on the timeline (the engine probes them first).
    pub fn media(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        self.media_into(&mut out);
        out
    }

    fn media_into(&self, out: &mut Vec<PathBuf>) {
        match self {
            Self::InsertClip { clip, .. } => out.push(clip.media.clone()),
            Self::SetMedia { media, .. } => out.push(media.clone()),
            Self::AddTrack { track, .. } => out.extend(track.clips.iter().map(|c| c.media.clone())),
            Self::Batch { edits } => edits.iter().for_each(|e| e.media_into(out)),
            _ => {}
        }
    }
}

impl Project {
    /// Applies `edit` if the result is a valid, non-empty timeline, and returns the edit that
    /// undoes it; otherwise changes nothing. `source_frame(clip, t)` is the source frame
    /// `clip` shows at timeline frame `t` (the media's rate decides it: splits ask).
    pub fn apply_edit(
        &mut self,
        edit: &Edit,
        source_frame: &dyn Fn(&ClipDef, u64) -> u64,
    ) -> Result<Edit, EditError> {
        let mut next = self.clone();
        let inverse = next.apply_unchecked(edit, source_frame)?;
        next.validate()?;
        if next.tracks.iter().all(|t| t.clips.is_empty()) && next.audio_tracks.is_empty() {
            return Err(EditError::EmptyTimeline);
        }
        *self = next;
        Ok(inverse)
    }

    fn clip_index(&self, at: ClipRef) -> Result<usize, EditError> {
        self.tracks
            .get(at.track)
            .and_then(|t| t.clips.iter().position(|c| c.start == at.start))
            .ok_or(EditError::NoSuchClip(at))
    }

    fn clip_mut(&mut self, at: ClipRef) -> Result<&mut ClipDef, EditError> {
        let i = self.clip_index(at)?;
        Ok(&mut self.tracks[at.track].clips[i])
    }

    fn apply_unchecked(
        &mut self,
        edit: &Edit,
        source_frame: &dyn Fn(&ClipDef, u64) -> u64,
    ) -> Result<Edit, EditError> {
        Ok(match edit {
            Edit::InsertClip { track, clip } => {
                self.tracks
                    .get_mut(*track)
                    .ok_or(EditError::NoSuchTrack(*track))?
                    .clips
                    .push(clip.clone());
                Edit::RemoveClip {
                    clip: ClipRef::new(*track, clip.start),
                }
            }
            Edit::RemoveClip { clip } => {
                let i = self.clip_index(*clip)?;
                let removed = self.tracks[clip.track].clips.remove(i);
                Edit::InsertClip {
                    track: clip.track,
                    clip: removed,
                }
            }
            Edit::MoveClip { clip, track, start } => {
                let i = self.clip_index(*clip)?;
                if *track >= self.tracks.len() {
                    return Err(EditError::NoSuchTrack(*track));
                }
                let mut moved = self.tracks[clip.track].clips.remove(i);
                moved.start = *start;
                self.tracks[*track].clips.push(moved);
                Edit::MoveClip {
                    clip: ClipRef::new(*track, *start),
                    track: clip.track,
                    start: clip.start,
                }
            }
            Edit::TrimClip {
                clip,
                start,
                duration,
                source_in,
            } => {
                let c = self.clip_mut(*clip)?;
                let inverse = Edit::TrimClip {
                    clip: ClipRef::new(clip.track, *start),
                    start: c.start,
                    duration: c.duration,
                    source_in: c.source_in,
                };
                c.start = *start;
                c.duration = *duration;
                c.source_in = *source_in;
                inverse
            }
            Edit::SplitClip { clip, at } => {
                let c = self.clip_mut(*clip)?;
                if *at <= c.start || *at >= c.end() {
                    return Err(EditError::SplitOutside {
                        at: *at,
                        start: c.start,
                        end: c.end(),
                    });
                }
                let mut right = c.clone();
                right.start = *at;
                right.duration = c.end() - at;
                right.source_in = source_frame(c, *at);
                right.effects.dissolve_in = 0;
                let inverse = Edit::Batch {
                    edits: vec![
                        Edit::RemoveClip {
                            clip: ClipRef::new(clip.track, *at),
                        },
                        Edit::TrimClip {
                            clip: *clip,
                            start: c.start,
                            duration: c.duration,
                            source_in: c.source_in,
                        },
                    ],
                };
                c.duration = at - c.start;
                self.tracks[clip.track].clips.push(right);
                inverse
            }
            Edit::SetMedia {
                clip,
                media,
                source_in,
            } => {
                let c = self.clip_mut(*clip)?;
                Edit::SetMedia {
                    clip: *clip,
                    media: std::mem::replace(&mut c.media, media.clone()),
                    source_in: std::mem::replace(&mut c.source_in, *source_in),
                }
            }
            Edit::SetEffects { clip, effects } => {
                let c = self.clip_mut(*clip)?;
                Edit::SetEffects {
                    clip: *clip,
                    effects: std::mem::replace(&mut c.effects, effects.clone()),
                }
            }
            Edit::SetEnabled { clip, enabled } => {
                let c = self.clip_mut(*clip)?;
                Edit::SetEnabled {
                    clip: *clip,
                    enabled: std::mem::replace(&mut c.enabled, *enabled),
                }
            }
            Edit::SetTrackOpacity { track, opacity } => {
                let t = self
                    .tracks
                    .get_mut(*track)
                    .ok_or(EditError::NoSuchTrack(*track))?;
                Edit::SetTrackOpacity {
                    track: *track,
                    opacity: std::mem::replace(&mut t.opacity, *opacity),
                }
            }
            Edit::SetAudioTrackMute { track, mute } => {
                let t = self
                    .audio_tracks
                    .get_mut(*track)
                    .ok_or(EditError::NoSuchTrack(*track))?;
                Edit::SetAudioTrackMute {
                    track: *track,
                    mute: std::mem::replace(&mut t.mute, *mute),
                }
            }
            Edit::AddTrack { index, track } => {
                if *index > self.tracks.len() {
                    return Err(EditError::NoSuchTrack(*index));
                }
                self.tracks.insert(*index, track.clone());
                Edit::RemoveTrack { index: *index }
            }
            Edit::RemoveTrack { index } => {
                if *index >= self.tracks.len() {
                    return Err(EditError::NoSuchTrack(*index));
                }
                Edit::AddTrack {
                    index: *index,
                    track: self.tracks.remove(*index),
                }
            }
            Edit::Batch { edits } => {
                let mut inverses = Vec::with_capacity(edits.len());
                for e in edits {
                    inverses.push(self.apply_unchecked(e, source_frame)?);
                }
                inverses.reverse();
                Edit::Batch { edits: inverses }
            }
        })
    }
}

#[cfg(test)]
mod tests;
