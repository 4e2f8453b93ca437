//! `prefetch` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`MemoryBudget`],
//! [`Pressure`], [`Tick`], [`Clip`], [`Lod`], [`EffectsKey`], [`TimelineIndex`],
//! [`MediaAsset`], [`ProxyAssets`], [`RenderCost`], [`RenderState`], [`DiskTier`] (asks its
//! reader for rendered frames); writes [`Frame`] and
//! [`CacheEntry`] (spawns requests, marks the wanted ones used), [`FrameIndex`],
//! [`RenderedFrames`] (marks used); reads [`Metrics`] (bytes outside the caches).
//!
//! Predicts the timeline frames the next ticks will show and asks for what they need:
//!
//! | playhead | frames wanted, nearest first |
//! |---|---|
//! | playing at rate r (±, any speed) | the current frame and the next `prefetch_frames` ticks' frames, `r` apart, in the play direction |
//! | paused, scrubbing (moved within the last [`SCRUB_MEMORY_TICKS`] ticks) | the current frame, then the region scrubbed over (its lowest to highest frame, plus the last step either side), alternating outward from the playhead |
//! | paused, still | the current frame, then the next [`QualitySettings::preroll_frames`] ticks' frames in the play direction (a pre-roll: play starts from frames ready) |
//! | any, memory pressure critical | the current frame only |
//!
//! For each wanted frame (its layers gathered once, see `render::gather`): if its picture is
//! kept in the rendered tiers (clips with effects, or a slow composite), the rendered frame is
//! used from RAM or asked of the disk tier's reader and its layers are not requested. Otherwise each visible layer's source frame is requested from
//! the asset the clip's [`Lod`] names (only layers that can be seen). A wanted frame already
//! held is marked used this tick, so eviction keeps it; a request left over from an older
//! generation is renewed (its job kept when the move continues the last plan, see
//! [`DecodeGenerations`]). Decode workers answer requests from the disk tier before decoding.
//!
//! Memory: the wanted frames (held, in flight or new) must fit under the budget's warning
//! level less the live bytes outside the caches (pictures on screen, frames queued for the
//! disk writer), nearest first; `evict` keeps live bytes + bytes in flight under warning by evicting
//! every frame outside the window first, so the window always has room.
//!
//! (Cache hits and misses are counted by `render`, when the tick needs the frame.)

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use framelock_components::{
    AdaptiveQuality, CacheEntry, CacheTier, Frame, FrameState, MemoryBudget, OutputFormat,
    PlayState, Playhead, Pressure, QualitySettings,
};
#[cfg(doc)]
use framelock_components::{Clip, EffectStack, EffectsKey, Lod, MediaAsset, ProxyAssets};

use framelock_components::CacheKey;
use framelock_engine::cache::Cache;

use crate::cache::{DiskRead, RenderCost, RenderedFrames};
use crate::render::gather::{AssetQuery, Candidate, ClipQuery, FrameLayers};
use crate::render::{RenderMode, RenderState};
use crate::{
    BesideLane, DecodeGenerations, DiskTier, FrameIndex, Metrics, Pending, Tick, TimelineIndex,
    decode_lane,
};

/// How long (ticks) a paused playhead that moved counts as scrubbing.
pub const SCRUB_MEMORY_TICKS: u64 = 60;

/// What prefetch remembers between ticks.
#[derive(Debug, Default)]
pub struct PrefetchState {
    generation: Option<u64>,
    /// The playhead's frame last tick.
    last_frame: u64,
    /// (tick, frame) of recent playhead moves while paused.
    scrub: VecDeque<(u64, u64)>,
    plan: Vec<(u64, u64)>,
    frame: FrameLayers,
}

/// Frame requests and their cache entries.
type FrameQuery<'w, 's> = Query<'w, 's, (&'static mut Frame, &'static mut CacheEntry)>;

/// The memory side of prefetch's parameters.
type MemoryParams<'w> = (Res<'w, MemoryBudget>, Res<'w, Pressure>);

/// What prefetch reads of the render side.
type RenderParams<'w> = (
    Res<'w, Metrics>,
    Option<Res<'w, RenderState>>,
    Res<'w, AdaptiveQuality>,
    Option<Res<'w, RenderMode>>,
);

/// The system.
#[allow(
    clippy::too_many_arguments,
    reason = "a system's parameters are its declared data access"
)]
pub fn prefetch(
    mut commands: Commands,
    playhead: Res<Playhead>,
    output: Res<OutputFormat>,
    quality: Res<QualitySettings>,
    (budget, pressure): MemoryParams,
    tick: Res<Tick>,
    (timeline, clips, assets): (Res<TimelineIndex>, ClipQuery, AssetQuery),
    mut frames: FrameQuery,
    mut index: ResMut<FrameIndex>,
    (mut rendered, cost, disk, mut generations): (
        ResMut<RenderedFrames>,
        Res<RenderCost>,
        Option<Res<DiskTier>>,
        ResMut<DecodeGenerations>,
    ),
    (metrics, render_state, adaptive, mode): RenderParams,
    mut st: Local<PrefetchState>,
) {
    framelock_engine::profile_function!();
    let st = &mut *st;
    rendered.begin_frame(tick.index);
    // A new generation continues the last one when its frame is near the last tick's (within
    // a second: a scrub step, a frame step), whose window of requests it shares. (Not "inside
    // the last plan's span": with scrub memory that spans most of a timeline after a few
    // seeks, and a random seek then queued behind the old positions' GOP decodes.)
    if st.generation != Some(playhead.generation) {
        let reach = output.frame_rate.as_f64().ceil().max(1.0) as u64;
        generations.continuous =
            st.generation.is_some() && playhead.frame.abs_diff(st.last_frame) <= reach;
        st.generation = Some(playhead.generation);
    }
    st.last_frame = playhead.frame;
    // A jump moves the pool's cancellation floor to this generation (decode does it later in
    // this tick): a job of an older one is not alive, whatever the floor says yet.
    let floor = if generations.continuous {
        generations.floor
    } else {
        generations.floor.max(playhead.generation)
    };
    let stride = quality.frame_stride(output.frame_rate);
    plan(&playhead, &quality, *pressure, (tick.index, stride), st);
    // The window (frames wanted now and next, held or not) must fit under the warning
    // level; evict makes room for it by evicting everything else first.
    let mut window_bytes = budget
        .warning_bytes()
        .saturating_sub(metrics.bytes_outside_caches);
    let size = adaptive.preview_size(&output);
    let frame_period = 1.0 / output.frame_rate.as_f64().max(1e-9);
    let (lod, pixels_out) = render_state
        .as_ref()
        .map(|s| (s.counts.lod, s.output))
        .unwrap_or_default();
    let plan = std::mem::take(&mut st.plan);
    let frame = &mut st.frame;
    let offline = mode.is_some_and(|m| *m == RenderMode::Offline);
    // The key of the frame's composite where the rendered tiers keep it (clips with effects,
    // or a composite slower than half a frame). Offline (an export), any composite: background
    // render keeps every frame it renders, and reading one back costs less than decoding its
    // layers again.
    let kept_key = |frame: &FrameLayers| {
        (!frame.layers.is_empty()
            && (offline || frame.kept_rendered(cost.composite_secs, frame_period)))
        .then(|| frame.key(size, lod, pixels_out))
    };
    // Playing at a reduced size or effect LOD, the frame background render kept at full
    // quality is shown instead (see `render`): read from the disk tier like its own key.
    let full_size = (output.width, output.height);
    let full_key = |frame: &FrameLayers| {
        (!offline && !frame.layers.is_empty() && frame.any_stack)
            .then(|| frame.key(full_size, quality.effect_lod, pixels_out))
            .filter(|&k| Some(k) != kept_key(frame))
    };
    // Offline, an effects frame kept as the RGBA picture the effects path makes (by playback
    // or background render) is this frame too, once converted: see `render`.
    let twin_key = |frame: &FrameLayers| {
        offline
            .then(|| frame.rgba_twin_key(size, lod, pixels_out))
            .flatten()
    };
    // A seek (or a paused frame) on a long-GOP source: its keyframe is asked for first, on
    // the same lane, so a picture (render's nearest-decoded stand-in) is on screen after one
    // frame's decode while the decoder goes on from it to the exact frame. A ready proxy
    // that reaches the frame itself for less than half the work (an all-intra proxy: one
    // small frame) is asked for it too: its picture is the right frame, at a lower
    // resolution, until the original's is decoded.
    // (Asked before the plan, which may cover the keyframe too: it keeps rank 0.)
    // (Not when the rendered tiers have the whole frame: it comes from there.)
    let mut keyframes = Vec::new();
    if (playhead.state == PlayState::Paused || playhead.fresh)
        && *pressure != Pressure::Critical
        && frame.gather(playhead.frame, &output, &timeline, &clips, &assets)
        && !from_rendered(kept_key(frame), &mut rendered, disk.as_deref(), offline)
        && !from_rendered(full_key(frame), &mut rendered, disk.as_deref(), offline)
        && !from_rendered(twin_key(frame), &mut rendered, disk.as_deref(), offline)
    {
        let mut ask = Ask {
            commands: &mut commands,
            frames: &mut frames,
            index: &mut index,
            at: (&playhead, floor, tick.index),
        };
        for layer in &frame.layers {
            let first = layer.preferred();
            if ask.is_ready(first.id, layer.source) {
                continue;
            }
            let Some(key) = keyframe_of(&assets, &first, layer.source) else {
                continue;
            };
            if layer.source == key {
                continue;
            }
            let work = |c: &Candidate, key: u64| (layer.source - key + 1) * c.bytes as u64;
            let original = work(&first, key);
            let proxy = layer.candidates[1..]
                .iter()
                .filter(|c| c.height < first.height)
                .filter_map(|c| Some((c, keyframe_of(&assets, c, layer.source)?)))
                .filter(|&(c, k)| work(c, k) * 2 < original)
                .min_by_key(|&(c, k)| work(c, k));
            if let Some((c, _)) = proxy {
                let e = ask.frame(c, layer.source);
                // Not behind the original's GOP decode on its worker.
                let gop = assets
                    .get(first.entity)
                    .map_or(0, |(a, _)| a.info.video.gop_of(layer.source));
                if let Some(e) = e {
                    ask.commands
                        .entity(e)
                        .insert(BesideLane(decode_lane(first.id, gop)));
                }
                keyframes.extend(e);
            }
            keyframes.extend(ask.frame(&first, key));
        }
    }
    'plan: for &(k, t) in &plan {
        if !frame.gather(t, &output, &timeline, &clips, &assets) {
            continue;
        }
        // The rendered path: the whole frame from the rendered tiers.
        if from_rendered(kept_key(frame), &mut rendered, disk.as_deref(), offline)
            || from_rendered(full_key(frame), &mut rendered, disk.as_deref(), offline)
            || from_rendered(twin_key(frame), &mut rendered, disk.as_deref(), offline)
        {
            continue;
        }
        // The layers path.
        for layer in &frame.layers {
            let first = layer.preferred();
            let source = layer.source;
            if first.bytes > window_bytes && k > 0 {
                break 'plan;
            }
            window_bytes = window_bytes.saturating_sub(first.bytes);
            match index.0.get(&(first.id, source)) {
                Some(&e) => {
                    if let Ok((mut frame, mut entry)) = frames.get_mut(e) {
                        entry.last_use = tick.index;
                        frame.priority = k;
                        renew(&mut frame, &playhead, floor, e, &mut commands);
                    }
                }
                None => {
                    let e = commands
                        .spawn((
                            Frame {
                                asset: first.entity,
                                asset_id: first.id,
                                index: source,
                                state: FrameState::Requested,
                                generation: playhead.generation,
                                priority: k,
                            },
                            CacheEntry {
                                tier: CacheTier::Ram,
                                key: first.key(source),
                                bytes: first.bytes, // an estimate until decoded
                                last_use: tick.index,
                                pinned: false,
                            },
                            Pending,
                        ))
                        .id();
                    index.0.insert((first.id, source), e);
                }
            }
        }
    }
    for e in keyframes {
        if let Ok((mut frame, _)) = frames.get_mut(e) {
            frame.priority = 0;
        }
    }
    st.plan = plan;
}

/// Whether the whole frame comes from the rendered tiers: in RAM, or being read from disk.
/// Offline (an export), also a frame on disk whose read the busy reader could not take yet:
/// it is asked again next tick (a finished read wakes the driver), instead of decoded and
/// rendered again (which under load made an export reuse fewer of the frames background
/// render had made).
fn from_rendered(
    key: Option<CacheKey>,
    rendered: &mut RenderedFrames,
    disk: Option<&DiskTier>,
    offline: bool,
) -> bool {
    let Some(key) = key else {
        return false;
    };
    rendered.touch(key)
        || disk.is_some_and(|disk| {
            rendered.read_from_disk(key, disk) == DiskRead::Reading
                || (offline && disk.reads_in_flight() > 0 && rendered.on_disk(key, disk))
        })
}

/// The keyframe at or before `source` in candidate `c`'s file.
fn keyframe_of(assets: &AssetQuery, c: &Candidate, source: u64) -> Option<u64> {
    let (asset, _) = assets.get(c.entity).ok()?;
    asset.info.video.keyframe_at_or_before(source)
}

/// Asks for single frames ahead of the plan (a seek's first picture).
struct Ask<'a, 'w, 's, 'qw, 'qs> {
    commands: &'a mut Commands<'w, 's>,
    frames: &'a mut FrameQuery<'qw, 'qs>,
    index: &'a mut FrameIndex,
    /// The playhead, the pool's cancellation floor, the tick.
    at: (&'a Playhead, u64, u64),
}

impl Ask<'_, '_, '_, '_, '_> {
    /// Whether frame `n` of asset `id` is decoded.
    fn is_ready(&self, id: u64, n: u64) -> bool {
        self.index.0.get(&(id, n)).is_some_and(|&e| {
            self.frames
                .get(e)
                .is_ok_and(|(f, _)| f.state == FrameState::Ready)
        })
    }

    /// Frame `n` of `c`, asked for (or the request there renewed, or the frame kept); its
    /// entity, to be given rank 0 after the plan.
    fn frame(&mut self, c: &Candidate, n: u64) -> Option<Entity> {
        let (playhead, floor, tick) = self.at;
        if let Some(&e) = self.index.0.get(&(c.id, n)) {
            let (mut frame, mut entry) = self.frames.get_mut(e).ok()?;
            entry.last_use = tick;
            renew(&mut frame, playhead, floor, e, self.commands);
            return Some(e);
        }
        let e = self
            .commands
            .spawn((
                Frame {
                    asset: c.entity,
                    asset_id: c.id,
                    index: n,
                    state: FrameState::Requested,
                    generation: playhead.generation,
                    priority: 0,
                },
                CacheEntry {
                    tier: CacheTier::Ram,
                    key: c.key(n),
                    bytes: c.bytes,
                    last_use: tick,
                    pinned: false,
                },
                Pending,
            ))
            .id();
        self.index.0.insert((c.id, n), e);
        Some(e)
    }
}

/// Marks a held or requested frame wanted by this generation. A request of an older
/// generation is asked again — unless its job is still alive (decoding, at or above the
/// pool's cancellation floor), which a continuous move (scrub step) keeps.
fn renew(frame: &mut Frame, playhead: &Playhead, floor: u64, e: Entity, commands: &mut Commands) {
    if frame.generation == playhead.generation || frame.state == FrameState::Ready {
        return;
    }
    let alive = frame.state == FrameState::Decoding && frame.generation >= floor;
    frame.generation = playhead.generation;
    if !alive {
        frame.state = FrameState::Requested;
        commands.entity(e).insert(Pending);
    }
}

/// Fills `st.plan` with (rank, timeline frame), nearest first (see the module doc's table).
fn plan(
    playhead: &Playhead,
    quality: &QualitySettings,
    pressure: Pressure,
    (tick, stride): (u64, u64),
    st: &mut PrefetchState,
) {
    st.plan.clear();
    let duration = playhead.duration;
    if duration == 0 {
        return;
    }
    st.plan.push((0, playhead.frame));
    // Scrub memory: positions the paused playhead visited recently.
    if playhead.state == PlayState::Paused {
        if st.scrub.back().is_none_or(|&(_, f)| f != playhead.frame) {
            st.scrub.push_back((tick, playhead.frame));
        }
    } else {
        st.scrub.clear();
    }
    while st
        .scrub
        .front()
        .is_some_and(|&(at, _)| tick.saturating_sub(at) > SCRUB_MEMORY_TICKS)
    {
        st.scrub.pop_front();
    }
    if pressure == Pressure::Critical {
        return;
    }
    // Frames a tick moves, on the target rate's grid (every second frame for 30 fps on a
    // 60 fps project).
    let step = playhead.rate.abs().max(1.0) * stride as f64;
    match playhead.state {
        PlayState::Playing => {
            for k in 1..=quality.prefetch_frames {
                let offset = (k as f64 * step).round() as i64 * playhead.direction();
                let t = playhead.frame as i64 + offset;
                if t < 0 || t >= duration as i64 {
                    break;
                }
                st.plan.push((k, t as u64));
            }
        }
        PlayState::Paused if st.scrub.len() >= 2 => {
            let lo = st.scrub.iter().map(|&(_, f)| f).min().unwrap_or(0);
            let hi = st.scrub.iter().map(|&(_, f)| f).max().unwrap_or(0);
            let step = st
                .scrub
                .iter()
                .zip(st.scrub.iter().skip(1))
                .map(|(a, b)| a.1.abs_diff(b.1))
                .max()
                .unwrap_or(1);
            let lo = lo.saturating_sub(step);
            let hi = (hi + step).min(duration - 1);
            let p = playhead.frame;
            for d in 1..=(hi - lo) {
                let mut any = false;
                if let Some(t) = p.checked_add(d).filter(|&t| t <= hi) {
                    st.plan.push((d, t));
                    any = true;
                }
                if let Some(t) = p.checked_sub(d).filter(|&t| t >= lo) {
                    st.plan.push((d, t));
                    any = true;
                }
                if !any {
                    break;
                }
            }
        }
        PlayState::Paused => {
            for k in 1..=quality.preroll_frames.min(quality.prefetch_frames) {
                let offset = (k as f64 * step).round() as i64 * playhead.direction();
                let t = playhead.frame as i64 + offset;
                if t < 0 || t >= duration as i64 {
                    break;
                }
                st.plan.push((k, t as u64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(
        playhead: &Playhead,
        pressure: Pressure,
        st: &mut PrefetchState,
        tick: u64,
    ) -> Vec<u64> {
        let quality = QualitySettings {
            prefetch_frames: 3,
            ..QualitySettings::default()
        };
        plan(playhead, &quality, pressure, (tick, 1), st);
        st.plan.iter().map(|&(_, t)| t).collect()
    }

    #[test]
    fn plans_follow_direction_rate_scrubbing_and_pressure() {
        let mut p = Playhead::new(100);
        let mut st = PrefetchState::default();
        p.seek(50);
        p.state = PlayState::Playing;
        assert_eq!(
            planned(&p, Pressure::Normal, &mut st, 0),
            vec![50, 51, 52, 53]
        );
        p.rate = -2.0;
        assert_eq!(
            planned(&p, Pressure::Normal, &mut st, 1),
            vec![50, 48, 46, 44]
        );
        assert_eq!(planned(&p, Pressure::Critical, &mut st, 2), vec![50]);
        // Paused and still: the current frame, then a pre-roll in the play direction (the
        // test's window is 3 frames).
        p.state = PlayState::Paused;
        let mut st = PrefetchState::default();
        assert_eq!(
            planned(&p, Pressure::Normal, &mut st, 3),
            vec![50, 48, 46, 44]
        );
        p.rate = 1.0;
        let mut st = PrefetchState::default();
        assert_eq!(
            planned(&p, Pressure::Normal, &mut st, 3),
            vec![50, 51, 52, 53]
        );
        // Scrubbing 50 → 54 → 52: the region 50..=54 widened by the largest step (4).
        p.seek(54);
        planned(&p, Pressure::Normal, &mut st, 4);
        p.seek(52);
        let got = planned(&p, Pressure::Normal, &mut st, 5);
        assert_eq!(&got[..5], &[52, 53, 51, 54, 50]);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (46..=58).collect::<Vec<u64>>());
        // Long after the last move, scrubbing is over: the pre-roll again.
        let got = planned(&p, Pressure::Normal, &mut st, 5 + SCRUB_MEMORY_TICKS + 1);
        assert_eq!(got, vec![52, 53, 54, 55]);
        // Without a pre-roll: the current frame only.
        let quality = QualitySettings {
            preroll_frames: 0,
            ..QualitySettings::default()
        };
        plan(&p, &quality, Pressure::Normal, (200, 1), &mut st);
        assert_eq!(st.plan, vec![(0, 52)]);
    }
}
