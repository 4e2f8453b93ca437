//! The compute pipelines, one per shader entry point, built once per device. Every shader
//! binds the same layout: params (uniform, dynamic offset), source (read), destination
//! (read-write), and `scale.wgsl` a fourth buffer of weights.

use crate::effects::table::{EFFECTS, Kernel, image_kernel, kernel_with};

/// The fixed kernels' WGSL, by file name: conversion in and out, resizing, blending. The
/// effects' shaders come from the effect table ([`crate::effects::table::EFFECTS`]). The
/// first and last passes of a frame declare their own bindings and fuse the grades and the
/// blend next to them.
const FIXED: &[(&str, &str)] = &[
    ("yuv_to_rgba", kernel_with!("yuv_to_rgba", "grade", "blend")),
    ("scale", image_kernel!("scale")),
    ("dissolve", image_kernel!("dissolve")),
    ("composite", image_kernel!("composite", "blend")),
    ("pack_rgba8", kernel_with!("pack_rgba8", "grade", "blend")),
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

/// A pipeline per entry point.
pub struct Kernels {
    pub layout3: wgpu::BindGroupLayout,
    pub layout4: wgpu::BindGroupLayout,
    /// A frame's last pass: params, source (1), the tracks beneath (3), RGBA8 out (4).
    pub layout_frame: wgpu::BindGroupLayout,
    pub yuv: wgpu::ComputePipeline,
    /// A whole one-layer frame in one pass (`yuv_to_rgba.wgsl` `to_frame`).
    pub yuv_frame: wgpu::ComputePipeline,
    pub scale_h: wgpu::ComputePipeline,
    pub scale_v: wgpu::ComputePipeline,
    pub dissolve: wgpu::ComputePipeline,
    pub composite: wgpu::ComputePipeline,
    pub pack: wgpu::ComputePipeline,
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
        let yuv = fixed("yuv_to_rgba");
        Self {
            yuv: pipe(&yuv, &pl3, "main"),
            yuv_frame: pipe(&yuv, &pl_frame, "to_frame"),
            scale_h: pipe(&scale, &pl4, "horizontal"),
            scale_v: pipe(&scale, &pl4, "vertical"),
            dissolve: pipe(&fixed("dissolve"), &pl3, "main"),
            composite: pipe(&fixed("composite"), &pl3, "main"),
            pack: pipe(&fixed("pack_rgba8"), &pl_frame, "main"),
            effects,
            layout3,
            layout4,
            layout_frame,
        }
    }
}
