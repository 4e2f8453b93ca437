//! The compute pipelines, one per shader entry point, built once per device. Every shader
//! binds the same layout: params (uniform, dynamic offset), source (read), destination
//! (read-write), and `scale.wgsl` a fourth buffer of weights.

use std::collections::HashMap;

use crate::effects::table::{EFFECTS, Kernel, image_kernel, kernel_with, pointwise_kernel};

/// The fixed kernels' WGSL, by file name: conversion in and out, resizing, blending. The
/// effects' shaders come from the effect table ([`crate::effects::table::EFFECTS`]). The
/// first and last passes of a frame declare their own bindings and fuse the grades and the
/// blend next to them.
const FIXED: &[(&str, &str)] = &[
    (
        "yuv_to_rgba",
        kernel_with!("yuv_to_rgba", "grade", "blend", "pixel"),
    ),
    ("scale", image_kernel!("scale")),
    ("dissolve", pointwise_kernel!("dissolve")),
    ("composite", pointwise_kernel!("composite", "blend")),
    (
        "pack_rgba8",
        kernel_with!("pack_rgba8", "grade", "blend", "pixel"),
    ),
    (
        "output_texture",
        include_str!("../../../shaders/output_texture.wgsl"),
    ),
    (
        "packed_to_texture",
        include_str!("../../../shaders/packed_to_texture.wgsl"),
    ),
];

/// Grades one pass can run as a chain: `grade.wgsl`, `yuv_to_rgba.wgsl` and `pack_rgba8.wgsl`
/// (the length of their `g` arrays).
pub const GRADE_CHAIN: usize = 15;
/// See [`GRADE_CHAIN`].
pub const YUV_CHAIN: usize = 12;
/// See [`GRADE_CHAIN`].
pub const PACK_CHAIN: usize = 14;

/// Every shader the pipelines are built from, by file name (`shaders/<name>.wgsl`), with its
/// WGSL as compiled (the shared bindings appended): the fixed kernels, then each effect's
/// kernels in table order. The naga test validates exactly these against `shaders/`.
pub fn shaders() -> Vec<(&'static str, &'static str)> {
    let mut all = FIXED.to_vec();
    for d in EFFECTS {
        all.push((d.kernel.file, d.kernel.source));
        if let Some((t, _)) = d.tiled {
            all.push((t.file, t.source));
        }
    }
    all
}

/// Bytes of one params slot (every shader's `Params` fits; a multiple of the uniform offset
/// alignment).
pub const PARAMS_SLOT: u64 = 512;

/// Workgroup edge of the 2D kernels.
pub const GROUP: u32 = 16;

/// Quads per row of the grid of the kernels that make four pixels an invocation with the
/// picture taken as one line: a frame's first and last passes, grade chains, composite and
/// dissolve (`QUAD_ROW` in `shaders/include/pixel.wgsl`).
pub const QUAD_ROW: u32 = 1024;

/// The dispatch grid (invocations) of a quad kernel ([`QUAD_ROW`]) over a `w`×`h` picture.
pub fn quad_grid(w: u32, h: u32) -> (u32, u32) {
    let quads = (w * h).div_ceil(4);
    (QUAD_ROW, quads.div_ceil(QUAD_ROW))
}

/// A frame's first or last pass: the kernels built per [`Ends`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// `yuv_to_rgba.wgsl` `main`: a layer's conversion (and the grades after it).
    Yuv,
    /// `yuv_to_rgba.wgsl` `to_frame`: a whole one-layer frame.
    YuvFrame,
    /// `pack_rgba8.wgsl`: the finished picture to RGBA8.
    Pack,
}

/// What a frame's first or last pass does, as its WGSL override constants: a pipeline is
/// built for each one in use, on first use. A software adapter (lavapipe) runs every branch
/// with its lanes masked off and a loop's body once more than it repeats, so work a frame
/// does not have is compiled out, not branched around: at 1080p on lavapipe an empty grade
/// loop cost a pack 7 of its 17 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ends {
    /// The pass runs a chain of at least one grade (`GRADED`).
    pub graded: bool,
    /// Samples are two bytes (`WIDE`; the conversion only).
    pub wide: bool,
    /// The width is a multiple of 4, so a quad's samples are read a word at a time
    /// (`ROWS4`; the conversion only).
    pub rows4: bool,
    /// What the last layer is blended onto (`ONTO`; `UNDER` for `to_frame`): 0 nothing (the
    /// picture is packed as it is), 1 black, 2 the tracks beneath.
    pub onto: u8,
}

impl Ends {
    fn constants(self, end: End) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut c = vec![("GRADED", flag(self.graded))];
        match end {
            End::Yuv => {
                c.push(("WIDE", flag(self.wide)));
                c.push(("ROWS4", flag(self.rows4)));
            }
            End::YuvFrame => {
                c.push(("WIDE", flag(self.wide)));
                c.push(("ROWS4", flag(self.rows4)));
                c.push(("UNDER", flag(self.onto == 2)));
            }
            End::Pack => c.push(("ONTO", f64::from(self.onto))),
        }
        c
    }
}

/// A pipeline per entry point.
pub struct Kernels {
    pub layout3: wgpu::BindGroupLayout,
    pub layout4: wgpu::BindGroupLayout,
    /// A frame's last pass: params, source (1), the tracks beneath (3), RGBA8 out (4).
    pub layout_frame: wgpu::BindGroupLayout,
    pub scale_h: wgpu::ComputePipeline,
    pub scale_v: wgpu::ComputePipeline,
    pub dissolve: wgpu::ComputePipeline,
    pub composite: wgpu::ComputePipeline,
    /// The first and last passes built so far, per [`Ends`].
    ends: HashMap<(End, Ends), wgpu::ComputePipeline>,
    yuv_module: wgpu::ShaderModule,
    pack_module: wgpu::ShaderModule,
    pl3: wgpu::PipelineLayout,
    pl_frame: wgpu::PipelineLayout,
    /// Per table effect: its kernel's passes, and its tiled kernel's.
    pub effects: Vec<(Vec<wgpu::ComputePipeline>, Vec<wgpu::ComputePipeline>)>,
}

fn entry(binding: u32, ty: wgpu::BufferBindingType, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: dynamic,
            min_binding_size: None,
        },
        count: None,
    }
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
        let base = [
            entry(0, wgpu::BufferBindingType::Uniform, true),
            entry(1, storage(true), false),
            entry(2, storage(false), false),
        ];
        let layout3 = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("framelock 3 buffers"),
            entries: &base,
        });
        let mut four = base.to_vec();
        four.push(entry(3, storage(true), false));
        let layout4 = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("framelock 4 buffers"),
            entries: &four,
        });
        let frame = [
            entry(0, wgpu::BufferBindingType::Uniform, true),
            entry(1, storage(true), false),
            entry(3, storage(true), false),
            entry(4, storage(false), false),
        ];
        let layout_frame = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("framelock frame out"),
            entries: &frame,
        });
        let pl_frame = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout_frame)],
            immediate_size: 0,
        });
        let pl3 = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout3)],
            immediate_size: 0,
        });
        let pl4 = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout4)],
            immediate_size: 0,
        });
        let module = |name: &str, src: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let fixed = |name: &str| {
            let src = FIXED
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, s)| s);
            module(name, src)
        };
        let pipe = |m: &wgpu::ShaderModule, layout: &wgpu::PipelineLayout, ep: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(ep),
                layout: Some(layout),
                module: m,
                entry_point: Some(ep),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let passes = |k: &Kernel| {
            let m = module(k.file, k.source);
            k.passes
                .iter()
                .map(|ep| pipe(&m, &pl3, ep))
                .collect::<Vec<_>>()
        };
        let effects = EFFECTS
            .iter()
            .map(|d| {
                let tiled = d.tiled.map(|(t, _)| passes(&t)).unwrap_or_default();
                (passes(&d.kernel), tiled)
            })
            .collect();
        let scale = fixed("scale");
        Self {
            scale_h: pipe(&scale, &pl4, "horizontal"),
            scale_v: pipe(&scale, &pl4, "vertical"),
            dissolve: pipe(&fixed("dissolve"), &pl3, "main"),
            composite: pipe(&fixed("composite"), &pl3, "main"),
            ends: HashMap::new(),
            yuv_module: fixed("yuv_to_rgba"),
            pack_module: fixed("pack_rgba8"),
            effects,
            layout3,
            layout4,
            layout_frame,
            pl3,
            pl_frame,
        }
    }

    /// The pipeline of `end` specialised as `ends`, built the first time it is asked for.
    pub fn end(&mut self, device: &wgpu::Device, end: End, ends: Ends) -> wgpu::ComputePipeline {
        if let Some(p) = self.ends.get(&(end, ends)) {
            return p.clone();
        }
        let (module, layout, ep) = match end {
            End::Yuv => (&self.yuv_module, &self.pl3, "main"),
            End::YuvFrame => (&self.yuv_module, &self.pl_frame, "to_frame"),
            End::Pack => (&self.pack_module, &self.pl_frame, "main"),
        };
        let constants = ends.constants(end);
        let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(ep),
            layout: Some(layout),
            module,
            entry_point: Some(ep),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        self.ends.insert((end, ends), p.clone());
        p
    }
}
