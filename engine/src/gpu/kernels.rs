//! The compute pipelines, one per shader entry point, built once per device. Every shader
//! binds the same layout: params (uniform, dynamic offset), source (read), destination
//! (read-write), and `scale.wgsl` a fourth buffer of weights.

/// The WGSL sources, by file name (the naga test validates every file in `shaders/`).
pub const SHADERS: &[(&str, &str)] = &[
    (
        "yuv_to_rgba",
        include_str!("../../../shaders/yuv_to_rgba.wgsl"),
    ),
    ("scale", include_str!("../../../shaders/scale.wgsl")),
    ("grade", include_str!("../../../shaders/grade.wgsl")),
    ("blur", include_str!("../../../shaders/blur.wgsl")),
    (
        "blur_tiled",
        include_str!("../../../shaders/blur_tiled.wgsl"),
    ),
    ("sharpen", include_str!("../../../shaders/sharpen.wgsl")),
    ("transform", include_str!("../../../shaders/transform.wgsl")),
    ("dissolve", include_str!("../../../shaders/dissolve.wgsl")),
    ("composite", include_str!("../../../shaders/composite.wgsl")),
    (
        "pack_rgba8",
        include_str!("../../../shaders/pack_rgba8.wgsl"),
    ),
];

/// Bytes of one params slot (every shader's `Params` fits; a multiple of the uniform offset
/// alignment).
pub const PARAMS_SLOT: u64 = 512;

/// Workgroup edge of the 2D kernels.
pub const GROUP: u32 = 16;

/// A pipeline per entry point.
pub struct Kernels {
    pub layout3: wgpu::BindGroupLayout,
    pub layout4: wgpu::BindGroupLayout,
    pub yuv: wgpu::ComputePipeline,
    pub scale_h: wgpu::ComputePipeline,
    pub scale_v: wgpu::ComputePipeline,
    pub grade: wgpu::ComputePipeline,
    pub blur_h: wgpu::ComputePipeline,
    pub blur_v: wgpu::ComputePipeline,
    pub blur_tiled: wgpu::ComputePipeline,
    pub sharpen: wgpu::ComputePipeline,
    pub transform: wgpu::ComputePipeline,
    pub dissolve: wgpu::ComputePipeline,
    pub composite: wgpu::ComputePipeline,
    pub pack: wgpu::ComputePipeline,
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
        let module = |name: &str| {
            let src = SHADERS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, s)| s);
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
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
        let scale = module("scale");
        let blur = module("blur");
        Self {
            yuv: pipe(&module("yuv_to_rgba"), &pl3, "main"),
            scale_h: pipe(&scale, &pl4, "horizontal"),
            scale_v: pipe(&scale, &pl4, "vertical"),
            grade: pipe(&module("grade"), &pl3, "main"),
            blur_h: pipe(&blur, &pl3, "horizontal"),
            blur_v: pipe(&blur, &pl3, "vertical"),
            blur_tiled: pipe(&module("blur_tiled"), &pl3, "main"),
            sharpen: pipe(&module("sharpen"), &pl3, "main"),
            transform: pipe(&module("transform"), &pl3, "main"),
            dissolve: pipe(&module("dissolve"), &pl3, "main"),
            composite: pipe(&module("composite"), &pl3, "main"),
            pack: pipe(&module("pack_rgba8"), &pl3, "main"),
            layout3,
            layout4,
        }
    }
}
