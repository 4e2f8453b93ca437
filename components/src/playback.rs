//! ECS components and resources of playback. Data only: systems (in `framelock-systems`)
//! read and write them once per output frame.

use std::path::PathBuf;

use bevy_ecs::prelude::{Component, Entity, Resource};

use crate::{CacheKey, CacheTier, EffectLod, FrameTimes, MediaInfo, Rational, UseProxy};

/// A media file the project uses (one entity per distinct file).
#[derive(Component, Clone, Debug)]
pub struct MediaAsset {
    /// Stable id the decode workers key their decoders by.
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// The file's fingerprint (size, mtime, first and last MiB hashed): cache keys of its
    /// frames start from it, so a changed file never hits an old cached frame.
    pub fingerprint: u64,
    /// What probing found.
    pub info: MediaInfo,
}

/// A track of the timeline (index 0 is the bottom).
#[derive(Component, Clone, Debug)]
pub struct Track {
    /// Stack position.
    pub index: usize,
    /// 0.0..=1.0.
    pub opacity: f32,
}

/// A clip: a range of an asset placed on a track.
#[derive(Component, Clone, Debug)]
pub struct Clip {
    /// The asset entity.
    pub asset: Entity,
    /// Stack position of its track.
    pub track: usize,
    /// First timeline frame.
    pub start: u64,
    /// Timeline frames covered.
    pub duration: u64,
    /// Source frame at `start`.
    pub source_in: u64,
    /// The source's frame rate.
    pub source_rate: Rational,
    /// Frames in the source.
    pub source_frames: u64,
    /// The source's frame times when its frame rate is variable: then time, not frame
    /// count, picks the source frame.
    pub source_times: Option<FrameTimes>,
    /// Shown at all.
    pub enabled: bool,
}

impl Clip {
    /// The project's clip `def` on track `track`, placed on asset entity `asset` whose video
    /// is `video`.
    pub fn placed(
        asset: Entity,
        video: &crate::VideoStreamInfo,
        track: usize,
        def: &crate::ClipDef,
    ) -> Self {
        Self {
            asset,
            track,
            start: def.start,
            duration: def.duration,
            source_in: def.source_in,
            source_rate: video.frame_rate,
            source_frames: video.frame_count,
            source_times: video.frame_times.clone(),
            enabled: def.enabled,
        }
    }

    /// Whether timeline frame `t` is inside the clip.
    pub fn covers(&self, t: u64) -> bool {
        self.enabled && self.start <= t && t < self.start + self.duration
    }

    /// Source frame shown at timeline frame `t` in a project of `project_rate`, clamped to the
    /// source's last frame.
    pub fn source_frame(&self, t: u64, project_rate: Rational) -> u64 {
        self.source_frame_unclamped(t, project_rate)
            .min(self.source_frames.saturating_sub(1))
    }

    /// The source frame timeline frame `t` asks for, which may lie past the source's end (a
    /// clip longer than its media). A variable-frame-rate source's frame is the one whose
    /// time covers the clip's time (its times from `source_in`'s); a constant-rate
    /// source's is counted at its rate.
    pub fn source_frame_unclamped(&self, t: u64, project_rate: Rational) -> u64 {
        let offset = t.saturating_sub(self.start);
        if let Some(times) = &self.source_times {
            return times.frame_after(self.source_in, offset, project_rate);
        }
        let offset = u128::from(offset);
        let num = offset * u128::from(project_rate.den) * u128::from(self.source_rate.num);
        let den = u128::from(project_rate.num) * u128::from(self.source_rate.den);
        self.source_in + (num / den.max(1)) as u64
    }
}

/// The level of detail a clip is decoded at (`lod_select` writes it every tick).
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lod {
    /// The original media.
    #[default]
    Original,
    /// A proxy of it: frame N of the proxy asset is frame N of the original.
    Proxy {
        /// The proxy's asset entity.
        asset: Entity,
        /// Its picture height.
        height: u32,
    },
}

impl Lod {
    /// The asset entity to decode for `clip` at this level.
    pub fn asset(self, clip: &Clip) -> Entity {
        match self {
            Self::Original => clip.asset,
            Self::Proxy { asset, .. } => asset,
        }
    }
}

/// Where a frame is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameState {
    /// Wanted; not yet handed to a decoder.
    Requested,
    /// A decode worker has it.
    Decoding,
    /// Decoded, in memory.
    Ready,
    /// Decoding failed (the error is counted in metrics).
    Failed,
}

/// A source frame the engine wants, is decoding or holds.
#[derive(Component, Clone, Debug)]
pub struct Frame {
    /// The asset entity.
    pub asset: Entity,
    /// The asset's id.
    pub asset_id: u64,
    /// Source frame index.
    pub index: u64,
    /// Life state.
    pub state: FrameState,
    /// The request generation (seeks and scrubs bump it; stale work is dropped).
    pub generation: u64,
    /// Distance from the playhead when last requested (0 = needed now): decode order.
    pub priority: u64,
}

/// Bookkeeping for anything held in a cache tier that eviction may free (a [`Frame`] in
/// RAM today; VRAM entries join with the GPU issue).
#[derive(Component, Clone, Copy, Debug)]
pub struct CacheEntry {
    /// The tier holding it.
    pub tier: CacheTier,
    /// What produced it (the disk tier stores it under this key).
    pub key: CacheKey,
    /// Bytes held.
    pub bytes: usize,
    /// The tick that last used it.
    pub last_use: u64,
    /// Pinned entries are never evicted (the frame on screen).
    pub pinned: bool,
}

/// Play state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayState {
    /// Not advancing.
    Paused,
    /// Advancing by `rate` frames per tick.
    Playing,
}

/// Where the timeline is.
#[derive(Resource, Clone, Copy, Debug)]
pub struct Playhead {
    /// The timeline frame shown this tick.
    pub frame: u64,
    /// Fractional position (for rates that are not whole frames per tick).
    pub position: f64,
    /// Frames per tick: 1 normal, 2 double speed, -1 reverse, 0.5 slow motion.
    pub rate: f64,
    /// Playing or paused.
    pub state: PlayState,
    /// Bumped by every seek and scrub: frame requests of older generations are stale.
    pub generation: u64,
    /// Timeline length in frames.
    pub duration: u64,
    /// The current frame was just set (seek, open): show it before advancing.
    pub fresh: bool,
    /// Bumped by every live edit of the timeline: the picture of the frame on screen may
    /// have changed, so it is made and presented again even while paused.
    pub edits: u64,
}

impl Playhead {
    /// (frame, generation, edits): what the picture on screen answers to. A seek changes
    /// the generation and a live edit the edit count, so either makes the frame due again.
    pub fn picture_key(&self) -> (u64, u64, u64) {
        (self.frame, self.generation, self.edits)
    }

    /// Paused at frame 0 of a `duration`-frame timeline.
    pub fn new(duration: u64) -> Self {
        Self {
            frame: 0,
            position: 0.0,
            rate: 1.0,
            state: PlayState::Paused,
            generation: 0,
            duration,
            fresh: true,
            edits: 0,
        }
    }

    /// Jumps to `frame` (clamped), starting a new request generation.
    pub fn seek(&mut self, frame: u64) {
        self.frame = frame.min(self.duration.saturating_sub(1));
        self.position = self.frame as f64;
        self.generation += 1;
        self.fresh = true;
    }

    /// +1 playing forward or paused, -1 playing in reverse.
    pub fn direction(&self) -> i64 {
        if self.rate < 0.0 { -1 } else { 1 }
    }
}

/// The project's output format.
#[derive(Resource, Clone, Copy, Debug)]
pub struct OutputFormat {
    /// Frames per second.
    pub frame_rate: Rational,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What the host wants when the machine cannot keep up. Saved with a project
/// ([`crate::Project::quality`]); every field has a default, so a file may name only some.
#[derive(Resource, Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct QualitySettings {
    /// A frame not ready by its deadline is skipped (`true`) or the last one is shown again
    /// (`false`). Both are counted. (With `allow_drop_frames` off no frame is late.)
    pub drop_late_frames: bool,
    /// `false`: every frame is shown, playing slower than real time when the machine cannot
    /// keep up (Resolve's "show all frames"): the playhead waits for the frame on screen, the
    /// audio clock is not master, and the waits are counted (`Metrics::waited`).
    pub allow_drop_frames: bool,
    /// The quality controller steps the playback quality down a ladder under load (effect
    /// LOD ½, then playback resolution ½, ¼, …, proxies when ready) and back up with
    /// headroom; see [`crate::quality_ladder`].
    pub auto_reduce_quality: bool,
    /// The controller never takes the playback resolution below this picture height.
    pub min_resolution: u32,
    /// Present at most this many frames per second (a 60 fps project played at 30 shows
    /// every second frame, exactly); `None` or a rate at or above the project's: every frame.
    pub target_fps: Option<Rational>,
    /// What offline renders (export, background render) favour.
    pub priority: crate::RenderPriority,
    /// How many frames ahead of the playhead to request (scaled by the play rate).
    pub prefetch_frames: u64,
    /// Paused and still, the frames after the playhead (in the play direction, at most
    /// `prefetch_frames`) that are decoded and, with effects, rendered ahead: a pre-roll, so
    /// pressing play starts from pictures made instead of an empty pipeline. 0: none (only
    /// the frame at the playhead is made while paused).
    pub preroll_frames: u64,
    /// A failed frame request is forgotten after this many ticks unwanted (decoded frames
    /// stay cached until memory pressure evicts them).
    pub keep_unused_ticks: u64,
    /// Whether clips play from proxies.
    pub use_proxy: UseProxy,
    /// Playback resolution: the viewer picture is at most this tall (aspect kept, even
    /// width), like an editor's "playback resolution 1/2, 1/4"; `None` composites at the
    /// output size. Pairs with proxies: a 720p proxy in a 720p viewer is passed through without
    /// scaling or a copy.
    pub preview_height: Option<u32>,
    /// Run effects, scaling and compositing on the GPU when there is one (`false` forces the
    /// CPU path).
    pub gpu_acceleration: bool,
    /// The highest resolution effects run at.
    pub effect_lod: EffectLod,
    /// Under load (the render time per frame while playing, a slow moving average, over 9/10
    /// of the frame period, or critical memory pressure) effects go one [`EffectLod`] lower;
    /// they come back up when that average is under a quarter of the period.
    pub adaptive_effect_lod: bool,
}

impl QualitySettings {
    /// Timeline frames per presented frame for `target_fps` on a project at `rate`: 1 for
    /// every frame, 2 for 30 on a 60 fps project (the nearest whole ratio, at least 1).
    pub fn frame_stride(&self, rate: Rational) -> u64 {
        match self.target_fps {
            Some(t) if t.num > 0 && t.den > 0 => {
                (rate.as_f64() / t.as_f64()).round().max(1.0) as u64
            }
            _ => 1,
        }
    }
}

impl OutputFormat {
    /// The picture size presented for `preview_height` (see [`QualitySettings`]).
    pub fn preview_size(&self, preview_height: Option<u32>) -> (u32, u32) {
        match preview_height {
            Some(h) if h >= 2 && h < self.height => {
                let h = h & !1;
                let w = (f64::from(self.width) * f64::from(h) / f64::from(self.height) / 2.0)
                    .round() as u32
                    * 2;
                (w.max(2), h)
            }
            _ => (self.width, self.height),
        }
    }
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            drop_late_frames: true,
            allow_drop_frames: true,
            auto_reduce_quality: true,
            min_resolution: 360,
            target_fps: None,
            priority: crate::RenderPriority::Balanced,
            prefetch_frames: 12,
            preroll_frames: 4,
            keep_unused_ticks: 30,
            use_proxy: UseProxy::Auto,
            preview_height: None,
            gpu_acceleration: true,
            effect_lod: EffectLod::Full,
            adaptive_effect_lod: true,
        }
    }
}

#[cfg(test)]
mod preview_tests {
    use super::*;

    #[test]
    fn preview_size_keeps_aspect_and_never_upscales() {
        let out = OutputFormat {
            frame_rate: Rational::integer(30),
            width: 3840,
            height: 2160,
        };
        assert_eq!(out.preview_size(None), (3840, 2160));
        assert_eq!(out.preview_size(Some(720)), (1280, 720));
        assert_eq!(out.preview_size(Some(4320)), (3840, 2160));
        assert_eq!(out.preview_size(Some(541)), (960, 540));
    }
}
