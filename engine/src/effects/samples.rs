//! The effect stacks the benchmarks measure (`benches/effects.rs`,
//! `engine/examples/gpu_stages.rs`) and the tests hold to the reference
//! (`engine/tests/effects_fast.rs`): one definition each, so a figure and its test are of
//! the same stack.

use std::sync::Arc;

use framelock_components::{BlendMode, Effect, EffectLod};

use super::{LayerJob, RenderJob};
use crate::media::{Picture, testcard};

/// Test card `index` (burned-in frame number, hard edges) as 4:2:0 planes.
pub fn card(index: u64, width: u32, height: u32) -> Arc<Picture> {
    let mut f = Picture::black(width, height);
    let [y, u, v] = &mut f.planes;
    testcard::draw_i420(index, width, height, y, u, v);
    Arc::new(f)
}

/// The benchmarks' frame: `frame` with `effects` at full LOD, and with `two_layers` a second
/// layer of it on top (half size, moved and turned, screen-blended at 70 %).
pub fn job(frame: &Arc<Picture>, effects: Vec<Effect>, two_layers: bool) -> RenderJob {
    let mut layers = vec![LayerJob {
        frame: frame.clone(),
        key: 0,
        effects,
        opacity: 1.0,
        blend: BlendMode::Over,
        dissolve: None,
    }];
    if two_layers {
        layers.push(LayerJob {
            frame: frame.clone(),
            key: 0,
            effects: vec![Effect::Transform {
                scale: 0.5,
                x: 100.0,
                y: 50.0,
                rotation: 10.0,
            }],
            opacity: 0.7,
            blend: BlendMode::Screen,
            dissolve: None,
        });
    }
    RenderJob {
        width: frame.width,
        height: frame.height,
        lod: EffectLod::Full,
        layers,
        tag: 0,
    }
}

/// A grade that moves every parameter (the benchmarks' `grade`).
pub fn grade() -> Effect {
    Effect::Grade {
        brightness: 0.02,
        contrast: 1.1,
        saturation: 1.2,
        gamma: 1.05,
        lift: 0.01,
        gain: 0.98,
    }
}

/// A slight zoom, move and turn (the benchmarks' `transform`).
pub fn transform() -> Effect {
    Effect::Transform {
        scale: 1.05,
        x: 3.0,
        y: -2.0,
        rotation: 1.5,
    }
}

/// Grade, blur r4, sharpen, transform: the full stack.
pub fn full_stack() -> Vec<Effect> {
    vec![
        grade(),
        Effect::Blur { radius: 4 },
        Effect::Sharpen { amount: 0.5 },
        transform(),
    ]
}

/// A stack of 100 effects: grades (most of them one curve, every third a saturation mix),
/// with a blur, a sharpen and a small transform in every 25.
pub fn hundred() -> Vec<Effect> {
    (0..100)
        .map(|i| {
            let t = i as f32 / 100.0;
            match i % 25 {
                7 => Effect::Blur { radius: 2 },
                13 => Effect::Sharpen { amount: 0.2 },
                19 => Effect::Transform {
                    scale: 1.0,
                    x: 1.0,
                    y: 0.0,
                    rotation: 0.5,
                },
                k if k % 3 == 0 => Effect::Grade {
                    brightness: 0.01 - 0.02 * t,
                    contrast: 1.0 + 0.01 * t,
                    saturation: 1.02,
                    gamma: 1.0,
                    lift: 0.0,
                    gain: 1.0,
                },
                _ => Effect::Grade {
                    brightness: 0.005 * t,
                    contrast: 1.01 - 0.02 * t,
                    saturation: 1.0,
                    gamma: 1.0 + 0.02 * (t - 0.5),
                    lift: 0.0,
                    gain: 1.0,
                },
            }
        })
        .collect()
}
