//! `effects` — reads [`Playhead`], [`OutputFormat`], [`QualitySettings`], [`Tick`],
//! [`Pressure`], [`TimelineIndex`], [`Clip`], [`Lod`], [`EffectsKey`], [`EffectStack`],
//! [`MediaAsset`], [`ProxyAssets`], [`FramePixels`], [`FrameIndex`], [`Memory`],
//! [`DiskTier`]; writes [`CacheEntry`] (marks used), [`Composited`], [`EffectsHandled`],
//! [`EffectsState`], [`GpuRenderer`], [`RenderedFrames`], [`Metrics`].
//!
//! Runs before `composite`. When a visible clip at the playhead has a non-empty
//! [`EffectStack`], this system makes the tick's picture (and `composite` stands aside): each
//! layer is converted, scaled, run through its effects and blended on the GPU (or on the CPU
//! path when there is no adapter, `gpu_acceleration` is off, or the GPU fails — the failure is
//! counted and the frame still shows). The result is an RGBA8 picture
//! ([`PixelFormat::Rgba8`]) kept in the rendered tiers under a key that includes every layer's
//! effect-stack hash and the effect LOD, and the presented frame says which LOD it was made at.
//!
//! Pipelining: while playing on the GPU, the next frames whose layers are already decoded are
//! submitted ahead (up to the device's frames in flight), so frame n+2 uploads while n+1
//! runs its effects and n is read back; finished frames land in the rendered RAM tier and are
//! shown from there when the playhead reaches them.
//!
//! Effect LOD: effects run at most at `QualitySettings::effect_lod`; with
//! `adaptive_effect_lod`, a frame that took over 3/4 of the frame period (or critical memory
//! pressure) moves one level lower, and one under 1/4 moves one level back up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::prelude::*;
use framelock_components::{
    CacheEntry, CacheKey, Clip, EffectLod, EffectStack, EffectsKey, Lod, OutputFormat, PlayState,
    Playhead, Pressure, QualitySettings,
};
#[cfg(doc)]
use framelock_components::{MediaAsset, ProxyAssets};
use framelock_engine::effects::{LayerJob, RenderJob, RenderedRgba, cpu};
use framelock_engine::gpu::{Gpu, GpuOptions};
use framelock_engine::media::{PixelFormat, YuvFrame};

use crate::cache::{Memory, RenderedFrames};
use crate::layers::{AssetQuery, LayerKey, RENDERED_ASSET_ID, candidates, rendered_key};
use crate::{
    Composited, DiskTier, FrameIndex, FramePixels, LayerSource, Metrics, PresentedFrame, Tick,
    TimelineIndex,
};

/// Whether `effects` made (or is waiting for) this tick's picture; `composite` then does
/// nothing.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct EffectsHandled(pub bool);

/// What the effects path did: the LOD it runs at, its cost, which path rendered.
#[derive(Resource, Debug, Default, Clone)]
pub struct EffectsState {
    /// The LOD effects run at now (adaptive, never above `QualitySettings::effect_lod`).
    pub lod: EffectLod,
    /// Seconds the last synchronously rendered frame took (wall clock, upload to readback).
    pub last_render_secs: f64,
    /// Frames rendered on the GPU.
    pub gpu_frames: u64,
    /// Frames rendered on the CPU path.
    pub cpu_frames: u64,
    /// Frames submitted ahead of the playhead (pipelining).
    pub rendered_ahead: u64,
    /// GPU failures (each frame was rendered on the CPU path instead).
    pub gpu_errors: u64,
    /// The last GPU failure.
    pub last_gpu_error: Option<String>,
}

/// The GPU, when there is one (`None`: the CPU path), and the frames in flight. The devices
/// open at the first frame with effects (a timeline without effects never starts one).
#[derive(Resource, Default)]
pub struct GpuRenderer {
    /// The devices, once open.
    pub gpu: Option<Gpu>,
    /// How to open them (taken when they are opened).
    pub options: Option<GpuOptions>,
    /// Why there is no GPU (no adapter, disabled), when there is none.
    pub unavailable: Option<String>,
    /// Frames in flight: ticket → (rendered key, timeline frame, whether the key describes
    /// the picture exactly and may be written to disk).
    in_flight: HashMap<u64, (CacheKey, u64, bool)>,
}

impl std::fmt::Debug for GpuRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuRenderer")
            .field("gpu", &self.gpu)
            .field("unavailable", &self.unavailable)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl GpuRenderer {
    /// A renderer over `gpu`.
    pub fn new(gpu: Gpu) -> Self {
        Self {
            gpu: Some(gpu),
            ..Self::default()
        }
    }

    /// A renderer that opens the GPU with `options` when the first frame with effects needs it.
    pub fn lazy(options: GpuOptions) -> Self {
        Self {
            options: Some(options),
            ..Self::default()
        }
    }

    /// Opens the GPU now if it is still to be opened; on failure the CPU path plays and
    /// [`GpuRenderer::unavailable`] says why.
    pub fn ensure_open(&mut self) {
        if self.gpu.is_some() {
            return;
        }
        if let Some(options) = self.options.take() {
            match Gpu::new(&options) {
                Ok(gpu) => self.gpu = Some(gpu),
                Err(e) => self.unavailable = Some(e.to_string()),
            }
        }
    }

    /// The CPU path only, saying why.
    pub fn cpu_only(reason: impl Into<String>) -> Self {
        Self {
            unavailable: Some(reason.into()),
            ..Self::default()
        }
    }

    fn key_in_flight(&self, key: CacheKey) -> Option<u64> {
        self.in_flight
            .iter()
            .find_map(|(&t, &(k, _, _))| (k == key).then_some(t))
    }
}

/// The next LOD: one level lower under load, one back up when there is room.
pub fn next_lod(
    current: EffectLod,
    highest: EffectLod,
    secs: f64,
    period: f64,
    pressure: Pressure,
) -> EffectLod {
    let clamp = |l: EffectLod| {
        if l.divisor() < highest.divisor() {
            highest
        } else {
            l
        }
    };
    if secs > 0.75 * period || pressure == Pressure::Critical {
        return clamp(current.lower());
    }
    if secs < 0.25 * period {
        let up = match current {
            EffectLod::Quarter => EffectLod::Half,
            _ => EffectLod::Full,
        };
        return clamp(up);
    }
    clamp(current)
}

/// One frame's layers as the effects path sees them.
struct Gathered {
    key: CacheKey,
    layers: Vec<LayerJob>,
    sources: Vec<LayerSource>,
    /// Layers not decoded yet.
    missing: u64,
    /// Every layer came from its preferred source (the key describes the picture exactly).
    exact: bool,
    /// Decoded frames used (their cache entries are marked used).
    used: Vec<Entity>,
    /// Whether any layer has a non-empty stack.
    any_stack: bool,
}

type ClipQuery<'w, 's> = Query<
    'w,
    's,
    (
        &'static Clip,
        &'static Lod,
        Option<&'static EffectsKey>,
        Option<&'static EffectStack>,
    ),
>;

#[allow(
    clippy::too_many_arguments,
    reason = "the frame's context: its time, size and the world's lookups"
)]
fn gather(
    t: u64,
    (w, h): (u32, u32),
    lod: EffectLod,
    output: &OutputFormat,
    timeline: &TimelineIndex,
    clips: &ClipQuery,
    assets: &AssetQuery,
    pixels: &Query<&FramePixels>,
    index: &FrameIndex,
) -> Option<Gathered> {
    let mut visible = Vec::new();
    timeline.visible_at(t, &mut visible);
    let mut sources = Vec::new();
    let mut keys = Vec::with_capacity(visible.len());
    let mut g = Gathered {
        key: CacheKey(0),
        layers: Vec::new(),
        sources: Vec::new(),
        missing: 0,
        exact: true,
        used: Vec::new(),
        any_stack: false,
    };
    for &(clip_entity, opacity) in &visible {
        let (clip, clip_lod, effects_key, stack) = clips.get(clip_entity).ok()?;
        candidates(clip, *clip_lod, assets, &mut sources);
        let first = *sources.first()?;
        let source = clip.source_frame(t, output.frame_rate);
        let stack = stack.filter(|s| !s.is_empty());
        g.any_stack |= stack.is_some();
        keys.push(LayerKey {
            fingerprint: first.fingerprint,
            source,
            opacity,
            effects: effects_key.map_or(0, |e| e.0),
        });
        let found = sources.iter().enumerate().find_map(|(i, c)| {
            let &e = index.0.get(&(c.id, source))?;
            Some((i, e, c, pixels.get(e).ok()?))
        });
        let Some((rank, e, c, px)) = found else {
            g.missing += 1;
            continue;
        };
        g.exact &= rank == 0;
        g.used.push(e);
        g.sources.push(LayerSource {
            track: clip.track,
            asset_id: c.id,
            source_frame: source,
        });
        let dissolve = stack
            .filter(|s| s.dissolve_in > 0)
            .map(|s| (t.saturating_sub(clip.start) + 1) as f32 / (s.dissolve_in + 1) as f32)
            .filter(|&d| d < 1.0);
        g.layers.push(LayerJob {
            frame: px.0.clone(),
            key: c.key(source).0,
            effects: stack.map(|s| s.effects.clone()).unwrap_or_default(),
            opacity,
            blend: stack.map(|s| s.blend).unwrap_or_default(),
            dissolve,
        });
    }
    g.key = rendered_key(w, h, Some(lod), &keys);
    Some(g)
}

fn picture(memory: &Memory, r: &RenderedRgba) -> Arc<YuvFrame> {
    let mut f = YuvFrame::alloc_in(Some(&memory.0), PixelFormat::Rgba8, r.width, r.height);
    f.planes[0].copy_from_slice(&r.rgba);
    f.index = r.tag;
    Arc::new(f)
}

/// The tick's frame: where, what size and quality, under what pressure.
type FrameParams<'w> = (
    Res<'w, Playhead>,
    Res<'w, OutputFormat>,
    Res<'w, QualitySettings>,
    Res<'w, Tick>,
    Option<Res<'w, Pressure>>,
);

/// The rendered-tier resources.
type Tiers<'w> = (
    Res<'w, Memory>,
    ResMut<'w, RenderedFrames>,
    Option<Res<'w, DiskTier>>,
);

/// The system.
#[allow(
    clippy::too_many_arguments,
    reason = "a system's parameters are its declared data access"
)]
pub fn effects(
    (playhead, output, quality, tick, pressure): FrameParams,
    timeline: Res<TimelineIndex>,
    clips: ClipQuery,
    assets: AssetQuery,
    pixels: Query<&FramePixels>,
    mut entries: Query<&mut CacheEntry>,
    index: Res<FrameIndex>,
    (mut composited, mut handled): (ResMut<Composited>, ResMut<EffectsHandled>),
    (memory, mut rendered, disk): Tiers,
    (mut state, mut renderer): (ResMut<EffectsState>, ResMut<GpuRenderer>),
    mut metrics: ResMut<Metrics>,
    mut counted: Local<Option<(u64, u64)>>,
) {
    framelock_engine::profile_function!();
    handled.0 = false;
    let renderer = &mut *renderer;
    let store = |ticket: u64,
                 r: Result<RenderedRgba, framelock_engine::effects::RenderError>,
                 renderer: &mut GpuRenderer,
                 rendered: &mut RenderedFrames,
                 state: &mut EffectsState,
                 metrics: &mut Metrics| {
        let Some((key, _, exact)) = renderer.in_flight.remove(&ticket) else {
            return;
        };
        match r {
            Ok(r) => {
                state.gpu_frames += 1;
                let pic = picture(&memory, &r);
                let disk = disk.as_deref().filter(|_| exact);
                metrics.disk_writes_queued += u64::from(rendered.keep(key, pic, disk));
            }
            Err(e) => {
                state.gpu_errors += 1;
                state.last_gpu_error = Some(e.to_string());
            }
        }
    };
    // Frames rendered ahead that finished.
    if let Some(gpu) = renderer.gpu.as_mut() {
        let mut done = Vec::new();
        while let Some(x) = gpu.try_receive() {
            done.push(x);
        }
        for (ticket, r) in done {
            store(ticket, r, renderer, &mut rendered, &mut state, &mut metrics);
        }
    }
    let t = playhead.frame;
    let (w, h) = output.preview_size(quality.preview_height);
    let period = 1.0 / output.frame_rate.as_f64().max(1e-9);
    if state.lod.divisor() < quality.effect_lod.divisor() || !quality.adaptive_effect_lod {
        state.lod = quality.effect_lod;
    }
    let lod = state.lod;
    let ctx = |t: u64| {
        gather(
            t,
            (w, h),
            lod,
            &output,
            &timeline,
            &clips,
            &assets,
            &pixels,
            &index,
        )
    };
    let Some(g) = ctx(t) else {
        return;
    };
    if !g.any_stack {
        return;
    }
    handled.0 = true;
    let first_count = *counted != Some((t, playhead.generation));
    if first_count {
        *counted = Some((t, playhead.generation));
    }
    let present = |pic: Arc<YuvFrame>, sources: Vec<LayerSource>, composited: &mut Composited| {
        composited.0 = Some(PresentedFrame {
            timeline_frame: t,
            tick: tick.index,
            picture: pic,
            layers: sources,
            repeated: false,
            effect_lod: Some(lod),
        });
    };
    if quality.gpu_acceleration {
        renderer.ensure_open();
    }
    let use_gpu = quality.gpu_acceleration && renderer.gpu.is_some();
    // In flight on the GPU already: wait for it (and everything before it).
    if use_gpu
        && let Some(ticket) = renderer.key_in_flight(g.key)
        && let Some(gpu) = renderer.gpu.as_mut()
    {
        let mut done = Vec::new();
        while let Some((tk, r)) = gpu.receive() {
            done.push((tk, r));
            if tk == ticket {
                break;
            }
        }
        for (tk, r) in done {
            store(tk, r, renderer, &mut rendered, &mut state, &mut metrics);
        }
    }
    // The rendered tiers: RAM, then a frame the disk tier answered.
    let hit = rendered.get(g.key).or_else(|| {
        let &e = index.0.get(&(RENDERED_ASSET_ID, g.key.0))?;
        let p = pixels.get(e).ok()?.0.clone();
        rendered.insert(g.key, p.clone());
        Some(p)
    });
    if let Some(pic) = hit {
        if first_count {
            metrics.cache_hits += 1;
        }
        present(pic, g.sources.clone(), &mut composited);
    } else {
        if first_count {
            metrics.cache_hits += g.layers.len() as u64;
            metrics.cache_misses += g.missing;
        }
        if g.missing > 0 {
            return; // still decoding: no output this tick
        }
        for &e in &g.used {
            if let Ok(mut entry) = entries.get_mut(e) {
                entry.last_use = tick.index;
            }
        }
        let job = RenderJob {
            width: w,
            height: h,
            lod,
            layers: g.layers,
            tag: t,
        };
        let start = Instant::now();
        let mut result = None;
        if use_gpu && let Some(gpu) = renderer.gpu.as_mut() {
            match gpu.render(&job) {
                Ok(r) => {
                    state.gpu_frames += 1;
                    result = Some(r);
                }
                Err(e) => {
                    state.gpu_errors += 1;
                    state.last_gpu_error = Some(e.to_string());
                }
            }
        }
        let r = match result {
            Some(r) => r,
            None => match cpu::render(&job) {
                Ok(r) => {
                    state.cpu_frames += 1;
                    r
                }
                Err(e) => {
                    state.last_gpu_error = Some(e.to_string());
                    return;
                }
            },
        };
        state.last_render_secs = start.elapsed().as_secs_f64();
        let pic = picture(&memory, &r);
        let to_disk = disk.as_deref().filter(|_| g.exact);
        metrics.disk_writes_queued += u64::from(rendered.keep(g.key, pic.clone(), to_disk));
        present(pic, g.sources, &mut composited);
        if quality.adaptive_effect_lod {
            let p = pressure.as_deref().copied().unwrap_or_default();
            state.lod = next_lod(lod, quality.effect_lod, state.last_render_secs, period, p);
        }
    }
    // Pipelining: submit the next frames whose layers are decoded.
    if !use_gpu || playhead.state != PlayState::Playing {
        return;
    }
    let dir = playhead.direction();
    let mut k = 1i64;
    while renderer.gpu.as_ref().is_some_and(Gpu::has_capacity) && k <= 8 {
        let t2 = t as i64 + dir * k * (playhead.rate.abs().ceil().max(1.0) as i64);
        k += 1;
        if t2 < 0 || t2 as u64 >= playhead.duration {
            break;
        }
        let Some(g2) = ctx(t2 as u64) else {
            break;
        };
        if !g2.any_stack || g2.missing > 0 {
            break;
        }
        if rendered.touch(g2.key) || renderer.key_in_flight(g2.key).is_some() {
            continue;
        }
        let job = RenderJob {
            width: w,
            height: h,
            lod,
            layers: g2.layers,
            tag: t2 as u64,
        };
        let Some(gpu) = renderer.gpu.as_mut() else {
            break;
        };
        match gpu.submit(&job) {
            Ok(ticket) => {
                state.rendered_ahead += 1;
                renderer
                    .in_flight
                    .insert(ticket, (g2.key, t2 as u64, g2.exact));
            }
            Err(e) => {
                state.gpu_errors += 1;
                state.last_gpu_error = Some(e.to_string());
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lod_moves_down_under_load_and_back_up() {
        let p = 1.0 / 30.0;
        let n = Pressure::Normal;
        assert_eq!(
            next_lod(EffectLod::Full, EffectLod::Full, 0.03, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Full, 0.03, p, n),
            EffectLod::Quarter
        );
        assert_eq!(
            next_lod(EffectLod::Quarter, EffectLod::Full, 0.03, p, n),
            EffectLod::Quarter
        );
        assert_eq!(
            next_lod(EffectLod::Quarter, EffectLod::Full, 0.001, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Full, 0.015, p, n),
            EffectLod::Half
        );
        // Never above the highest allowed.
        assert_eq!(
            next_lod(EffectLod::Half, EffectLod::Half, 0.001, p, n),
            EffectLod::Half
        );
        assert_eq!(
            next_lod(
                EffectLod::Full,
                EffectLod::Full,
                0.001,
                p,
                Pressure::Critical
            ),
            EffectLod::Half
        );
    }
}
