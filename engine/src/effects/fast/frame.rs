//! A whole frame on the fast path: each layer's stack planned into fused steps, converted,
//! run, blended onto the layers beneath, and packed to RGBA8 — the last layer band by band
//! where its effects allow (see [`render_into`]).

use std::sync::Arc;

use framelock_components::Effect;

use super::point::PointChain;
use super::{Image16, ONE, blend, blur, convert, resize, sharpen, transform};
use crate::effects::{RenderError, RenderJob, RenderedRgba};
use crate::media::{Picture, PixelFormat};
use crate::memory::BufferPool;

/// One operation of a layer's effect stack, after fusion.
enum Step<'a> {
    /// Consecutive per-pixel effects as one pass.
    Point(Arc<PointChain>),
    /// A neighbourhood effect.
    Effect(&'a Effect),
}

fn plan<'a>(effects: &'a [Effect]) -> Vec<Step<'a>> {
    let mut steps: Vec<Step<'a>> = Vec::new();
    let mut rest = effects;
    while let Some(first) = rest.first() {
        if PointChain::takes(first) {
            let n = rest.iter().take_while(|e| PointChain::takes(e)).count();
            steps.push(Step::Point(PointChain::of(&rest[..n])));
            rest = &rest[n..];
        } else {
            steps.push(Step::Effect(first));
            rest = &rest[1..];
        }
    }
    steps
}

/// Applies one effect (not fused) in place: the fast twin of [`crate::effects::cpu::apply`].
pub fn apply(img: &mut Image16, e: &Effect) {
    apply_then(img, e, None);
}

/// Applies one effect in place, then `then` on each band of its result as the effect
/// finishes it (a neighbourhood effect's band is still in cache).
fn apply_then(img: &mut Image16, e: &Effect, then: Option<&PointChain>) {
    match *e {
        Effect::Grade { .. } => {
            let mut chain = PointChain::default();
            chain.push(e);
            chain.apply(&mut img.px);
            if let Some(then) = then {
                then.apply(&mut img.px);
            }
        }
        Effect::Blur { radius } => blur::blur(img, radius, then),
        Effect::Sharpen { amount } => sharpen::sharpen(img, amount, then),
        Effect::Transform { .. } => transform::transform(img, e, then),
    }
}

/// Whether the last of `effects` that is not a per-pixel effect is a transform (then
/// [`layer_image`] can end in [`transform::transform_into`]).
fn ends_in_transform(effects: &[Effect]) -> bool {
    effects
        .iter()
        .rfind(|e| !PointChain::takes(e))
        .is_some_and(|e| matches!(e, Effect::Transform { .. }))
}

/// One layer's picture at the work size with its effects applied. With `sink` (the frame's
/// bytes and what the layer is blended onto) and a layer whose effects end in a transform
/// ([`ends_in_transform`]), the transform writes the frame's bytes band by band and there
/// is no picture (`None`).
fn layer_image(
    job: &RenderJob,
    layer: &crate::effects::LayerJob,
    mut sink: Option<(&mut [u8], transform::Sink)>,
) -> Option<Image16> {
    let (ww, wh) = job.work_size();
    let effects: Vec<Effect> = layer.effects.iter().map(|e| job.effect_at_lod(e)).collect();
    let mut steps = plan(&effects);
    // A point chain right after the conversion runs inside it when no resize comes between.
    let same_size = (layer.frame.width, layer.frame.height) == (ww, wh);
    let fused = match steps.first() {
        Some(Step::Point(_)) if same_size => match steps.remove(0) {
            Step::Point(c) => Some(c),
            Step::Effect(_) => None,
        },
        _ => None,
    };
    // Half size in each direction (LOD ½ on an even-sized frame): converted and shrunk in
    // one pass, without the full-size image (full stack at LOD ½: 4K 117 → 91 ms, 1080p
    // 27 → 19.6).
    let half = (layer.frame.width, layer.frame.height) == (2 * ww, 2 * wh);
    let mut img = if same_size {
        convert::convert(&layer.frame, fused.as_deref())
    } else {
        half.then(|| convert::convert_half(&layer.frame))
            .flatten()
            .unwrap_or_else(|| resize::resize(&convert::convert(&layer.frame, None), ww, wh))
    };
    let mut steps = steps.iter().peekable();
    while let Some(step) = steps.next() {
        match step {
            Step::Point(chain) => chain.apply(&mut img.px),
            // The per-pixel effects after a neighbourhood effect run in its pass.
            Step::Effect(e) => {
                let then = steps.next_if(|s| matches!(s, Step::Point(_)));
                let then = match then {
                    Some(Step::Point(chain)) => Some(&**chain),
                    _ => None,
                };
                if steps.peek().is_none()
                    && matches!(e, Effect::Transform { .. })
                    && let Some((out, sink)) = sink.take()
                {
                    transform::transform_into(img, e, then, out, sink);
                    return None;
                }
                apply_then(&mut img, e, then);
            }
        }
    }
    Some(img)
}

/// Renders a whole frame: the fast twin of [`crate::effects::cpu::render`].
pub fn render(job: &RenderJob) -> Result<RenderedRgba, RenderError> {
    job.validate()?;
    let mut rgba = vec![0u8; job.width as usize * job.height as usize * 4];
    render_into(job, &mut rgba)?;
    Ok(RenderedRgba {
        width: job.width,
        height: job.height,
        rgba,
        lod: job.lod,
        tag: job.tag,
        texture: None,
    })
}

/// Bytes a render of `job` holds besides its output at its busiest: the 16-bit working
/// images (the composite so far, the layer being made, and one more while a conversion,
/// resize or dissolve makes a new image from an old one), and the output-size image when
/// the work size differs. (Per-row and blur-window scratch is below 1 % of that.)
pub fn scratch_bytes(job: &RenderJob) -> usize {
    let (ww, wh) = job.work_size();
    let image = |w: u32, h: u32| w as usize * h as usize * 4 * size_of::<u16>();
    let resized = (ww, wh) != (job.width, job.height);
    3 * image(ww, wh)
        + if resized {
            image(job.width, job.height)
        } else {
            0
        }
}

/// Renders a whole frame into an RGBA8 picture from `pool`, indexed by the job's tag. Its
/// working images are counted in the pool's effect-scratch class while it runs
/// ([`scratch_bytes`]), and their buffers come from the pool and go back to it
/// ([`super::with_pool`]), counted there as idle effect scratch until the next render.
pub fn render_picture(job: &RenderJob, pool: Option<&BufferPool>) -> Result<Picture, RenderError> {
    job.validate()?;
    let _scratch = pool.map(|p| {
        let mut counted = p.account(crate::memory::PoolClass::EffectScratch);
        counted.set(scratch_bytes(job));
        counted
    });
    let mut f = Picture::alloc_in(pool, PixelFormat::Rgba8, job.width, job.height);
    super::with_pool(pool, || render_into(job, &mut f.planes[0]))?;
    f.index = job.tag;
    Ok(f)
}

/// Renders a validated job into `out`.
fn render_into(job: &RenderJob, out: &mut [u8]) -> Result<(), RenderError> {
    crate::profile_function!();
    if out.len() < job.width as usize * job.height as usize * 4 {
        return Err(RenderError::Invalid("the output buffer is short".into()));
    }
    let (ww, wh) = job.work_size();
    // The only layer at the output size, its effects ending in a transform: the transform
    // writes the bytes (1080p transform: 9.1 → 8.x ms).
    if let [layer] = job.layers.as_slice()
        && (ww, wh) == (job.width, job.height)
        && layer.dissolve.is_none_or(|t| t >= 1.0)
        && ends_in_transform(&layer.effects)
    {
        let k = blend::over_black_factor(layer.opacity, layer.blend);
        let sink = transform::Sink::OntoBlack(k);
        if let Some(img) = layer_image(job, layer, Some((&mut *out, sink))) {
            img.pack_rgba8_over_black(out, k);
        }
        return Ok(());
    }
    // The only layer at the output size, its effects all per-pixel (they run in the
    // conversion): converted, graded and packed band by band (1080p grade: 6.4 → 5.x ms).
    if let [layer] = job.layers.as_slice()
        && (layer.frame.width, layer.frame.height) == (job.width, job.height)
        && (ww, wh) == (job.width, job.height)
        && layer.dissolve.is_none_or(|t| t >= 1.0)
        && layer.effects.iter().all(PointChain::takes)
    {
        let effects: Vec<Effect> = layer.effects.iter().map(|e| job.effect_at_lod(e)).collect();
        let chain = PointChain::of(&effects);
        let unchanged = blend::over_black_is_identity(layer.opacity, layer.blend);
        let onto_black = (!unchanged).then(|| blend::over_black_factor(layer.opacity, layer.blend));
        convert::convert_pack(
            &layer.frame,
            (!chain.is_empty()).then_some(&*chain),
            out,
            onto_black,
        );
        return Ok(());
    }
    let mut acc: Option<Image16> = None;
    // The factor of a blend onto black left to the pack (see below).
    let mut onto_black = None;
    for (i, layer) in job.layers.iter().enumerate() {
        // The last layer at the output size, its effects ending in a transform: blended
        // onto the layers beneath and packed band by band as the transform makes it.
        if i + 1 == job.layers.len()
            && (ww, wh) == (job.width, job.height)
            && layer.dissolve.is_none_or(|t| t >= 1.0)
            && ends_in_transform(&layer.effects)
            && let Some(under) = acc.as_mut()
        {
            let sink = transform::Sink::Onto {
                under,
                opacity: layer.opacity,
                mode: layer.blend,
            };
            if let Some(img) = layer_image(job, layer, Some((&mut *out, sink)))
                && let Some(under) = acc.as_mut()
            {
                blend::composite(under, &img, layer.opacity, layer.blend);
                under.pack_rgba8(out);
            }
            return Ok(());
        }
        let Some(img) = layer_image(job, layer, None) else {
            continue;
        };
        acc = Some(match acc {
            // The first layer onto opaque black, without reading a black picture.
            None => {
                let mut img = img;
                // Opaque (no transform made it transparent anywhere) at full opacity, the
                // layer is its own blend onto black: nothing to compute.
                let opaque = !layer
                    .effects
                    .iter()
                    .any(|e| matches!(e, Effect::Transform { .. }));
                let identity = opaque
                    && blend::over_black_is_identity(layer.opacity, layer.blend)
                    && layer.dissolve.is_none_or(|t| t >= 1.0);
                match layer.dissolve {
                    _ if identity => {}
                    Some(t) if t < 1.0 => {
                        blend::over_black(&mut img, layer.opacity, layer.blend);
                        blend::dissolve_from_black(&mut img, t.max(0.0));
                    }
                    // The only layer, at the output size: its blend onto black runs inside
                    // the pack (one pass over the frame less: 1080p transform 1.7 ms).
                    _ if job.layers.len() == 1 && (ww, wh) == (job.width, job.height) => {
                        onto_black = Some(blend::over_black_factor(layer.opacity, layer.blend));
                    }
                    _ => blend::over_black(&mut img, layer.opacity, layer.blend),
                }
                img
            }
            Some(mut acc) => {
                match layer.dissolve {
                    Some(t) if t < 1.0 => {
                        let mut over = acc.clone();
                        blend::composite(&mut over, &img, layer.opacity, layer.blend);
                        blend::dissolve(&mut acc, &over, t.max(0.0));
                    }
                    _ => blend::composite(&mut acc, &img, layer.opacity, layer.blend),
                }
                acc
            }
        });
    }
    let acc = acc.unwrap_or_else(|| Image16::filled(ww, wh, [0, 0, 0, ONE]));
    // LOD ½ at an even output size: enlarged and packed in one pass (4K full stack at LOD ½:
    // the 66 MB enlarged image is never made).
    if onto_black.is_none() && (2 * acc.width, 2 * acc.height) == (job.width, job.height) {
        resize::enlarge2_pack_rgba8(&acc, out);
        return Ok(());
    }
    let acc = if (acc.width, acc.height) == (job.width, job.height) {
        acc
    } else {
        resize::resize(&acc, job.width, job.height)
    };
    match onto_black {
        Some(k) => acc.pack_rgba8_over_black(out, k),
        None => acc.pack_rgba8(out),
    }
    Ok(())
}
