//! [`EngineEvent`]s: what a host needs to drive a UI without polling. Systems push them into
//! the [`Events`] resource during a tick; the engine hands them to the host after it.

use std::path::PathBuf;

use bevy_ecs::prelude::*;
use framelock_components::PlayState;

/// Something that happened in the engine.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// Playing or paused, by the host or by the engine (the end of the timeline).
    StateChanged {
        /// Before.
        from: PlayState,
        /// Now.
        to: PlayState,
    },
    /// The first picture after a seek (or scrub) reached the sink: `frame` is the frame it
    /// shows, `exact` whether that is the frame sought (playing on, a later one can come
    /// first when the sought one was not decoded in time). When the first picture is an
    /// approximate one (the nearest decoded frame, see `PresentedFrame::exact`), a second
    /// `SeekDone` with `exact: true` follows when the exact frame replaces it.
    SeekDone {
        /// The frame shown.
        frame: u64,
        /// It is the frame sought.
        exact: bool,
    },
    /// Playback reached the end of the timeline (the start, in reverse) and paused there.
    EndOfTimeline {
        /// The frame it stopped on.
        frame: u64,
    },
    /// A picture reached the sink (only with [`Events::frames`] on: one per tick).
    FramePresented {
        /// The timeline frame.
        frame: u64,
        /// The tick.
        tick: u64,
        /// It repeats the previous picture (the wanted one was late).
        repeated: bool,
    },
    /// Decoding a media file failed: reported once until it decodes again, with the
    /// decoder's text. The rest of the timeline plays on.
    Error {
        /// The media file.
        media: PathBuf,
        /// What failed.
        error: String,
    },
    /// A media file that failed decodes again.
    MediaRecovered {
        /// The media file.
        media: PathBuf,
    },
    /// The quality controller changed the playback quality (see
    /// [`framelock_components::AdaptiveQuality`]).
    QualityChanged {
        /// Rung before (0 = full quality).
        from: usize,
        /// Rung now.
        to: usize,
        /// The playback resolution now (`None`: the viewer's full size).
        preview_height: Option<u32>,
        /// The effect LOD cap now.
        effect_lod: framelock_components::EffectLod,
        /// Why, in words.
        reason: String,
    },
    /// A proxy of one of the project's media is ready, and playback may use it (also for a
    /// proxy found ready when the engine started).
    ProxyReady {
        /// The original media file.
        media: PathBuf,
        /// The proxy file.
        proxy: PathBuf,
        /// Its height.
        height: u32,
    },
    /// The outcome of `Player::generate_proxies_later` for one file: the proxy jobs queued
    /// (ids of `proxy_status()`; none when its proxies are all there or it is no taller than
    /// the strategy's heights), or why none could be (the file cannot be probed).
    ProxiesQueued {
        /// The media file asked for.
        media: PathBuf,
        /// The jobs queued.
        jobs: Vec<u64>,
        /// Why nothing was queued (`None`: it was).
        error: Option<String>,
    },
    /// Making a proxy failed; playback goes on from the original.
    ProxyFailed {
        /// The original media file.
        media: PathBuf,
        /// The proxy file it would have been (nothing was left there).
        proxy: PathBuf,
        /// Why.
        error: String,
    },
    /// A live edit changed the timeline (`PlaybackEngine::edit`): the frame on screen is
    /// made again from the new timeline at the next tick.
    TimelineEdited {
        /// Edits applied since the engine opened (the playhead's `edits`).
        edits: u64,
        /// The timeline's length now, in frames.
        duration: u64,
    },
    /// An export started with `PlaybackEngine::export` ended: the file is in place.
    ExportDone {
        /// The file written.
        output: PathBuf,
        /// Frames written.
        frames: u64,
    },
    /// An export started with `PlaybackEngine::export` ended without a file (failed or
    /// cancelled; an older file at `output` is untouched).
    ExportFailed {
        /// The file it would have written.
        output: PathBuf,
        /// Why.
        error: String,
    },
    /// A cache was emptied at the host's request (`Player::clear_cache_later`): what went,
    /// or why it could not.
    CacheCleared {
        /// Frames dropped from RAM.
        ram_entries: usize,
        /// Entries dropped from the disk tier.
        disk_entries: usize,
        /// Bytes dropped from VRAM.
        vram_bytes: usize,
        /// Proxy files deleted.
        proxy_files: usize,
        /// Why it failed (`None`: it did not).
        error: Option<String>,
    },
}

/// Events of the tick being run, and whether per-frame events are wanted.
#[derive(Resource, Debug, Default)]
pub struct Events {
    /// Pushed by the systems, taken by the engine after each tick.
    pub pending: Vec<EngineEvent>,
    /// Also send [`EngineEvent::FramePresented`] for every picture.
    pub frames: bool,
}

impl Events {
    /// Adds an event.
    pub fn push(&mut self, event: EngineEvent) {
        self.pending.push(event);
    }
}
