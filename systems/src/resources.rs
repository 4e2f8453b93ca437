//! Components and resources the systems share beyond the data model: decoded pixels, the
//! worker pool, the frame lookup, this tick's output and the host's sink.

use std::collections::HashMap;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_engine::media::Picture;
use framelock_engine::workers::DecodePool;

/// A decoded frame's picture (shared: composite hands it to the sink without copying when a
/// single opaque layer fills the output).
#[derive(Component, Clone, Debug)]
pub struct FramePixels(pub Arc<Picture>);

/// The decode worker pool.
#[derive(Resource, Debug)]
pub struct Decoders(pub DecodePool);

/// (asset id, source frame) → its `Frame` entity. Kept by prefetch (spawn), decode and evict
/// (despawn).
#[derive(Resource, Debug, Default)]
pub struct FrameIndex(pub HashMap<(u64, u64), Entity>);

/// The loop's tick: index and ticks skipped to reach it. Set by the loop before each run.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct Tick {
    /// Tick number since playback started.
    pub index: u64,
    /// Ticks skipped just before this one (the loop was behind).
    pub skipped: u64,
}

/// Which source frame a layer of the output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSource {
    /// Track index (0 = bottom).
    pub track: usize,
    /// Asset id.
    pub asset_id: u64,
    /// Source frame.
    pub source_frame: u64,
}

/// One output frame.
#[derive(Clone, Debug)]
pub struct PresentedFrame {
    /// Timeline frame shown.
    pub timeline_frame: u64,
    /// Tick it was shown at.
    pub tick: u64,
    /// The picture (output size).
    pub picture: Arc<Picture>,
    /// The layers it was made of, bottom first (empty for a gap in the timeline: black).
    pub layers: Vec<LayerSource>,
    /// `true` when this repeats the previous output because the wanted frame was late.
    pub repeated: bool,
    /// `true` when this frame is shown after its own tick: the frame due now was still
    /// rendering, and this one, the newest finished since, stands in for it (playing under
    /// load: the picture keeps moving instead of freezing). Never offline.
    pub late: bool,
    /// `false` when this is not the frame's own picture at full resolution but a stand-in
    /// shown at once after a seek while the exact frame decodes, and replaced when it is
    /// ready: the nearest decoded frame (a long-GOP source's keyframe), or the right frame
    /// from a lower-resolution proxy (an all-intra proxy decodes it in one small frame's
    /// time). Its `layers` say which source frames, of which assets, it shows.
    pub exact: bool,
    /// The LOD the frame's effects ran at (`None`: no effects; the layers were composited
    /// as decoded).
    pub effect_lod: Option<framelock_components::EffectLod>,
    /// The content key its picture is kept under in the rendered tiers (a hash of what made
    /// it: sources, source frames, effects, size, LOD); a repeat carries its picture's.
    /// Background render hands its pictures to playback by it.
    pub content_key: Option<framelock_components::CacheKey>,
}

/// This tick's composite, if every layer was ready.
#[derive(Resource, Debug, Default)]
pub struct Composited(pub Option<PresentedFrame>);

/// Where presented frames go: a callback the host installs (a channel send, a texture upload).
#[derive(Resource)]
pub struct FrameSink(pub Box<dyn FnMut(PresentedFrame) + Send + Sync>);

impl std::fmt::Debug for FrameSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameSink")
    }
}

/// Marks a `Frame` in `Requested` state that is not yet handed to a worker, so the decode
/// system visits only those (not every frame in memory) each tick.
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct Pending;

/// What is on screen, as `present` last sent it: the timeline frame, the playhead generation
/// and edit count it was sent at, and whether it is that frame's exact picture (not a
/// stand-in). The loop wakes early while paused until the playhead's frame is on screen
/// exactly (see `PlaybackEngine::tick`).
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnScreen(pub Option<(u64, u64, u64, bool)>);

impl OnScreen {
    /// Whether the exact picture of `playhead`'s frame is on screen.
    pub fn shows(&self, playhead: &framelock_components::Playhead) -> bool {
        let (frame, generation, edits) = playhead.picture_key();
        self.0 == Some((frame, generation, edits, true))
    }
}

/// On a `Frame` request: route its decode to another worker than the one `lane` goes to (a
/// seek's proxy frame, so it is not queued behind the original's long GOP decode).
#[derive(Component, Clone, Copy, Debug)]
pub struct BesideLane(pub u64);

/// The decode pool lane of frames of GOP `gop` of asset `asset_id`: a GOP's frames share one
/// worker's decoder; different GOPs spread over the workers.
pub fn decode_lane(asset_id: u64, gop: u64) -> u64 {
    asset_id.wrapping_mul(0x9e37_79b9).wrapping_add(gop)
}

/// The proxy service, when the host enabled proxies: the job manager (shared with the host's
/// API), the strategy, and the originals by absolute path (jobs name their source by path).
#[derive(Resource, Debug, Clone)]
pub struct ProxyService {
    /// Jobs and workers.
    pub manager: Arc<framelock_engine::proxy::ProxyManager>,
    /// What to make and when to use it.
    pub strategy: framelock_components::ProxyStrategy,
    /// Original asset entities by absolute path.
    pub sources: HashMap<std::path::PathBuf, Entity>,
}

/// Allocates [`MediaAsset`](framelock_components::MediaAsset) ids (proxies become assets while
/// playing).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct AssetIds {
    /// The next id to hand out.
    pub next: u64,
}

impl AssetIds {
    /// A fresh id.
    pub fn allocate(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Measured decode cost per asset: an exponential moving average of worker seconds per frame
/// (weight 1/8 for each new sample). `lod_select` compares it with the frame budget.
#[derive(Resource, Debug, Default, Clone)]
pub struct DecodeLoad(pub HashMap<u64, f64>);

impl DecodeLoad {
    /// Adds one frame's decode time for `asset_id`.
    pub fn record(&mut self, asset_id: u64, seconds: f64) {
        let v = self.0.entry(asset_id).or_insert(seconds);
        *v += (seconds - *v) / 8.0;
    }

    /// Seconds per frame of `asset_id`, if it was ever decoded.
    pub fn seconds_per_frame(&self, asset_id: u64) -> Option<f64> {
        self.0.get(&asset_id).copied()
    }
}

/// How the decode pool's stale-work cancellation follows the playhead. `prefetch` says each
/// tick whether a new playhead generation *continues* the previous one (the new frame is within
/// a second of last tick's: a scrub step, a frame step), in which case `decode` keeps the
/// jobs already queued (they are still wanted) instead of cancelling them; only a jump moves
/// the pool's cancellation floor.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct DecodeGenerations {
    /// Jobs of generations below this were dropped by the workers.
    pub floor: u64,
    /// This tick's generation change continues the last plan.
    pub continuous: bool,
}

/// Assets a clip stopped decoding from this tick (`lod_select` moved it to another candidate:
/// a proxy for the original at a quality step, or back). `decode` withdraws their queued jobs
/// that nothing uses any more, so the new candidate's frames do not wait behind them.
#[derive(Resource, Debug, Default, Clone)]
pub struct SwitchedFrom(pub Vec<Entity>);
