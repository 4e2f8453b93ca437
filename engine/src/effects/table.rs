//! The effect table: every effect declared once — its name, its shader and entry points, how
//! its typed parameters ([`Effect`]) become the shader's uniform rows, how they scale with
//! the level of detail, and its CPU twin. The GPU builds one pipeline per entry point from
//! this table ([`crate::gpu`]), the CPU path runs the twins ([`super::cpu::apply`]), and the
//! shader list the naga test validates is derived from it ([`crate::gpu::shader_names`]).
//!
//! Adding an effect: a variant of [`Effect`] (its typed parameters), one shader in `shaders/`
//! (its `struct Params` and kernels; the bindings come from `shaders/include/image.wgsl`, or
//! `pointwise.wgsl` for a kernel that works pixel by pixel, four pixels an invocation), one
//! entry here, one CPU function in [`super::cpu`], and a GPU-vs-CPU test.

use framelock_components::Effect;

use super::cpu::{self, Image};
use super::ops;

/// A kernel's WGSL: `shaders/<name>.wgsl` followed by the shared functions it names
/// (`shaders/include/<include>.wgsl`), appended so that errors keep the kernel file's line
/// numbers (WGSL declarations may come in any order).
macro_rules! kernel_with {
    ($name:literal $(, $include:literal)*) => {
        concat!(
            include_str!(concat!("../../../shaders/", $name, ".wgsl"))
            $(, "\n", include_str!(concat!("../../../shaders/include/", $include, ".wgsl")))*
        )
    };
}
pub(crate) use kernel_with;

/// An image kernel's WGSL: [`kernel_with`] plus the shared image bindings and pixel packing
/// (`shaders/include/image.wgsl`, `shaders/include/pixel.wgsl`).
macro_rules! image_kernel {
    ($name:literal $(, $include:literal)*) => {
        crate::effects::table::kernel_with!($name $(, $include)*, "image", "pixel")
    };
}
pub(crate) use image_kernel;

/// A pixel-by-pixel kernel's WGSL: [`kernel_with`] plus the bindings of images as pairs of
/// pixels and the pixel packing (`shaders/include/pointwise.wgsl`,
/// `shaders/include/pixel.wgsl`); it makes four pixels an invocation (the GPU dispatches
/// it over a quad grid).
macro_rules! pointwise_kernel {
    ($name:literal $(, $include:literal)*) => {
        crate::effects::table::kernel_with!($name $(, $include)*, "pointwise", "pixel")
    };
}
pub(crate) use pointwise_kernel;

/// A shader and the entry points one run of it dispatches, in order: each pass reads the
/// previous one's result (the first reads the effect's input, the last writes its output).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The shader file's name (`shaders/<file>.wgsl`).
    pub file: &'static str,
    /// Its WGSL with the shared bindings.
    pub source: &'static str,
    /// Entry points, run in order over the same params.
    pub passes: &'static [&'static str],
    /// Pixels (x, y) one invocation of each pass writes (the dispatch covers the image
    /// divided by them); empty: one pixel each.
    pub runs: &'static [(u32, u32)],
}

/// Whether a kernel handles an effect's parameters.
pub type Fits = fn(&Effect) -> bool;

/// An effect's uniform rows at a work size (see [`EffectDef::params`]).
pub type Params = fn(&Effect, (u32, u32)) -> Option<Vec<[u32; 4]>>;

/// One effect as both paths run it.
#[derive(Clone, Copy, Debug)]
pub struct EffectDef {
    /// The effect's name: its `type` in project files and its shader's file name.
    pub name: &'static str,
    /// Whether an [`Effect`] is this one.
    pub is: fn(&Effect) -> bool,
    /// The kernel every adapter can run.
    pub kernel: Kernel,
    /// A faster single-pass kernel (a shared-memory tile) for hardware adapters, with the
    /// parameters it handles; the benchmarks compare it with `kernel`.
    pub tiled: Option<(Kernel, Fits)>,
    /// The uniform rows (16 bytes each) of the effect on a `width`×`height` image; `None`
    /// when it changes nothing (then it is skipped on both paths).
    pub params: Params,
    /// The effect with its pixel-sized parameters divided by an LOD divisor.
    pub at_lod: fn(&Effect, f32) -> Effect,
    /// The CPU twin: what the kernel computes, in place.
    pub cpu: fn(&mut Image, &Effect),
}

fn f(v: f32) -> u32 {
    v.to_bits()
}

/// A grade's two rows of `struct Grade` (`shaders/include/grade.wgsl`); `None` for another
/// effect.
pub fn grade_rows(e: &Effect) -> Option<[[u32; 4]; 2]> {
    let (a, b) = ops::grade_params(e)?;
    Some([a.map(f), [f(b[0]), f(b[1]), 0, 0]])
}

fn same(e: &Effect, _divisor: f32) -> Effect {
    *e
}

/// Every effect. The order is the table's index (the GPU's pipelines follow it).
pub static EFFECTS: &[EffectDef] = &[
    EffectDef {
        name: "grade",
        is: |e| matches!(e, Effect::Grade { .. }),
        kernel: Kernel {
            file: "grade",
            source: pointwise_kernel!("grade", "grade"),
            passes: &["main"],
            // Unused: the GPU runs grades only as chains, over a quad grid.
            runs: &[],
        },
        tiled: None,
        // A chain of one; the GPU runs consecutive grades as one chain ([`grade_rows`]).
        params: |e, (w, h)| {
            let mut rows = vec![[w, h, 1, 0]];
            rows.extend(grade_rows(e)?);
            Some(rows)
        },
        at_lod: same,
        cpu: cpu::grade,
    },
    EffectDef {
        name: "blur",
        is: |e| matches!(e, Effect::Blur { .. }),
        kernel: Kernel {
            file: "blur",
            source: image_kernel!("blur"),
            passes: &["horizontal", "vertical"],
            runs: &[(8, 1), (1, 8)],
        },
        // Measured on lavapipe (1080p, radius 4): separable 1.10 s, tiled 1.51 s a frame
        // (llvmpipe runs workgroup barriers as coroutine switches), so only hardware tiles.
        // On an NVIDIA H200, against the separable passes as runs of 8: 0.079 vs 0.081 ms at
        // 1080p, 0.30 vs 0.26 ms at 4K (one GPU's figures; the default is unchanged).
        tiled: Some((
            Kernel {
                file: "blur_tiled",
                source: image_kernel!("blur_tiled"),
                passes: &["main"],
                runs: &[],
            },
            |e| matches!(e, Effect::Blur { radius } if ops::gaussian_weights(*radius).len() <= 9),
        )),
        params: |e, (w, h)| {
            let Effect::Blur { radius } = *e else {
                return None;
            };
            let weights = ops::gaussian_weights(radius);
            let r = weights.len() as u32 - 1;
            if r == 0 {
                return None;
            }
            let mut rows = vec![[w, h, r, 0]];
            for c in weights.chunks(4) {
                let mut row = [0u32; 4];
                for (d, v) in row.iter_mut().zip(c) {
                    *d = f(*v);
                }
                rows.push(row);
            }
            Some(rows)
        },
        at_lod: |e, d| match *e {
            Effect::Blur { radius } => Effect::Blur {
                radius: ((radius as f32 / d).round() as u32).min(Effect::MAX_BLUR_RADIUS),
            },
            other => other,
        },
        cpu: |img, e| {
            if let Effect::Blur { radius } = *e {
                cpu::blur(img, radius);
            }
        },
    },
    EffectDef {
        name: "sharpen",
        is: |e| matches!(e, Effect::Sharpen { .. }),
        kernel: Kernel {
            file: "sharpen",
            source: image_kernel!("sharpen"),
            passes: &["main"],
            runs: &[(4, 8)],
        },
        tiled: None,
        params: |e, (w, h)| match *e {
            Effect::Sharpen { amount } => Some(vec![[w, h, 0, 0], [f(amount), 0, 0, 0]]),
            _ => None,
        },
        at_lod: same,
        cpu: |img, e| {
            if let Effect::Sharpen { amount } = *e {
                cpu::sharpen(img, amount);
            }
        },
    },
    EffectDef {
        name: "transform",
        is: |e| matches!(e, Effect::Transform { .. }),
        kernel: Kernel {
            file: "transform",
            source: image_kernel!("transform"),
            passes: &["main"],
            runs: &[],
        },
        tiled: None,
        params: |e, (w, h)| {
            let m = ops::transform_inverse(w, h, e)?;
            Some(vec![
                [w, h, 0, 0],
                [f(m[0][0]), f(m[0][1]), f(m[0][2]), 0],
                [f(m[1][0]), f(m[1][1]), f(m[1][2]), 0],
            ])
        },
        at_lod: |e, d| match *e {
            Effect::Transform {
                scale,
                x,
                y,
                rotation,
            } => Effect::Transform {
                scale,
                x: x / d,
                y: y / d,
                rotation,
            },
            other => other,
        },
        cpu: cpu::transform,
    },
];

/// The table index of `e`'s entry.
pub fn index_of(e: &Effect) -> usize {
    EFFECTS.iter().position(|d| (d.is)(e)).unwrap_or_else(|| {
        // Every variant has an entry (the table test checks each one).
        unreachable!("effect without a table entry: {e:?}")
    })
}

/// `e`'s entry.
pub fn def_of(e: &Effect) -> &'static EffectDef {
    &EFFECTS[index_of(e)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_effect_has_one_entry_and_a_distinct_name() {
        let samples = [
            Effect::identity_grade(),
            Effect::Blur { radius: 3 },
            Effect::Sharpen { amount: 0.5 },
            Effect::Transform {
                scale: 1.0,
                x: 0.0,
                y: 0.0,
                rotation: 0.0,
            },
        ];
        assert_eq!(samples.len(), EFFECTS.len());
        for e in &samples {
            assert_eq!(EFFECTS.iter().filter(|d| (d.is)(e)).count(), 1, "{e:?}");
            // The name is the project file's `type` tag.
            let json = serde_json::to_value(e).unwrap_or_default();
            assert_eq!(json["type"], def_of(e).name);
        }
        let mut names: Vec<_> = EFFECTS.iter().map(|d| d.name).collect();
        names.dedup();
        assert_eq!(names.len(), EFFECTS.len());
        // Params fit a uniform slot.
        for e in &samples {
            if let Some(rows) = (def_of(e).params)(e, (64, 32)) {
                assert!(rows.len() * 16 <= crate::gpu::PARAMS_SLOT as usize);
            }
        }
    }
}
