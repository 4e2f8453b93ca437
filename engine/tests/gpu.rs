//! The GPU path against the CPU path, on the adapter this machine has (Mesa's lavapipe in CI:
//! `.ci/run` installs `mesa-vulkan-drivers`). Every shader is validated by naga; every effect
//! runs on random pictures of odd sizes with the GPU's buffers poisoned first, and must match
//! its CPU twin within 1/255 per channel (2/255 for blur).
//!
//! Set `FRAMELOCK_SKIP_GPU_TESTS=1` to skip the tests that need an adapter on a machine
//! without Vulkan; nothing skips them silently.

mod common;

use common::{diff, job, layer, random_frame};

use std::sync::Arc;

use framelock_components::{BlendMode, Effect, EffectLod};
use framelock_engine::effects::{LayerJob, RenderJob, cpu};
use framelock_engine::gpu::{BlurKernel, Gpu, GpuError, GpuOptions};
use framelock_engine::media::{Picture, PixelFormat, testcard};

fn gpu(options: GpuOptions) -> Option<Gpu> {
    if std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some() {
        eprintln!("FRAMELOCK_SKIP_GPU_TESTS is set: skipping a GPU test");
        return None;
    }
    match Gpu::new(&options) {
        Ok(g) => Some(g),
        Err(GpuError::NoAdapter) => panic!(
            "no wgpu adapter: install mesa-vulkan-drivers (lavapipe) or set FRAMELOCK_SKIP_GPU_TESTS=1"
        ),
        Err(e) => panic!("GPU device failed: {e}"),
    }
}

fn poisoned() -> GpuOptions {
    GpuOptions {
        poison: true,
        ..GpuOptions::default()
    }
}

fn check(gpu: &mut Gpu, what: &str, job: &RenderJob, tolerance: u8) {
    let g = gpu
        .render(job)
        .unwrap_or_else(|e| panic!("{what}: GPU render failed: {e}"));
    let c = cpu::render(job).unwrap_or_else(|e| panic!("{what}: CPU render failed: {e}"));
    let (max, n) = diff(&g, &c);
    eprintln!("{what}: max difference {max}/255, {n} bytes differ");
    assert!(
        max <= tolerance,
        "{what}: GPU and CPU differ by {max}/255 (tolerance {tolerance}) in {n} bytes"
    );
}

const W: u32 = 1918;
const H: u32 = 1082;

#[test]
fn shaders_parse_and_validate_with_naga() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).expect("name");
        // As compiled: the file with the shared bindings appended (line numbers unchanged).
        let src = framelock_engine::gpu::shader_source(name)
            .unwrap_or_else(|| panic!("{} is not built into a pipeline", path.display()));
        if let Err(msg) = validate(src, &path.display().to_string()) {
            panic!("{msg}");
        }
        files.push(name.to_string());
    }
    assert!(
        files.len() >= 10,
        "expected every effect's shader, found {files:?}"
    );
    // The engine builds its pipelines from exactly these files.
    let mut built: Vec<_> = framelock_engine::gpu::shader_names()
        .into_iter()
        .map(String::from)
        .collect();
    built.sort();
    files.sort();
    assert_eq!(built, files);
    // A broken shader is reported with its line and column.
    let broken = "@compute @workgroup_size(1)\nfn main() {\n    let x: f32 = 1u;\n}\n";
    let err = validate(broken, "broken.wgsl").expect_err("a type error must fail");
    assert!(err.contains("broken.wgsl:3:"), "no line:column in {err}");
    let syntax = "fn main( {\n";
    let err = validate(syntax, "syntax.wgsl").expect_err("a syntax error must fail");
    assert!(err.contains("syntax.wgsl:1:"), "no line:column in {err}");
}

/// Parses and validates like wgpu does; errors name `file:line:column`.
fn validate(src: &str, name: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| {
        let loc = e
            .location(src)
            .map(|l| format!("{name}:{}:{}", l.line_number, l.line_position))
            .unwrap_or_else(|| name.to_owned());
        format!("{loc}: {}", e.emit_to_string(src))
    })?;
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    v.validate(&module).map(|_| ()).map_err(|e| {
        let loc = e
            .location(src)
            .map(|l| format!("{name}:{}:{}", l.line_number, l.line_position))
            .unwrap_or_else(|| name.to_owned());
        format!("{loc}: {}", e.emit_to_string(src))
    })
}

#[test]
fn each_shader_matches_its_cpu_twin_on_random_pictures() {
    let Some(mut gpu) = gpu(poisoned()) else {
        return;
    };
    let f = random_frame(1, PixelFormat::Yuv420p, W, H);
    // Colour conversion for each format, matrix and range.
    for (i, format) in [
        PixelFormat::Yuv420p,
        PixelFormat::Yuv422p,
        PixelFormat::Yuv444p,
        PixelFormat::Yuv420p10,
        PixelFormat::Yuv422p10,
    ]
    .into_iter()
    .enumerate()
    {
        for matrix in [
            framelock_engine::media::MatrixCoefficients::Bt601,
            framelock_engine::media::MatrixCoefficients::Bt709,
        ] {
            for range in [
                framelock_engine::media::YuvRange::Limited,
                framelock_engine::media::YuvRange::Full,
            ] {
                // An odd width (quads wrap rows) and whole quads (words read whole).
                for (w, h) in [(321, 179), (320, 178)] {
                    let mut fr = (*random_frame(10 + i as u64, format, w, h)).clone();
                    fr.color.matrix = matrix;
                    fr.color.range = range;
                    let what = format!("yuv_to_rgba {format:?} {matrix:?} {range:?} {w}x{h}");
                    check(
                        &mut gpu,
                        &what,
                        &job(w, h, vec![layer(Arc::new(fr), vec![])]),
                        1,
                    );
                }
            }
        }
    }
    let effects = [
        (
            "grade",
            Effect::Grade {
                brightness: 0.05,
                contrast: 1.2,
                saturation: 1.3,
                gamma: 1.1,
                lift: 0.02,
                gain: 0.95,
            },
        ),
        ("blur r3", Effect::Blur { radius: 3 }),
        ("blur r20", Effect::Blur { radius: 20 }),
        ("sharpen", Effect::Sharpen { amount: 0.8 }),
        (
            "transform",
            Effect::Transform {
                scale: 0.7,
                x: 33.5,
                y: -20.25,
                rotation: 17.0,
            },
        ),
    ];
    for (name, e) in effects {
        let tol = if name.starts_with("blur") { 2 } else { 1 };
        check(
            &mut gpu,
            name,
            &job(W, H, vec![layer(f.clone(), vec![e])]),
            tol,
        );
    }
    // The tiled and separable blur kernels agree with the CPU alike.
    gpu.set_blur_kernel(BlurKernel::Tiled);
    check(
        &mut gpu,
        "blur r3 tiled",
        &job(
            W,
            H,
            vec![layer(f.clone(), vec![Effect::Blur { radius: 3 }])],
        ),
        2,
    );
    check(
        &mut gpu,
        "blur r8 tiled",
        &job(
            W,
            H,
            vec![layer(f.clone(), vec![Effect::Blur { radius: 8 }])],
        ),
        2,
    );
    gpu.set_blur_kernel(BlurKernel::Separable);
    check(
        &mut gpu,
        "blur r3 separable",
        &job(
            W,
            H,
            vec![layer(f.clone(), vec![Effect::Blur { radius: 3 }])],
        ),
        2,
    );
    gpu.set_blur_kernel(BlurKernel::Auto);
    // Scale: area down, bilinear up.
    check(
        &mut gpu,
        "scale down",
        &job(1280, 720, vec![layer(f.clone(), vec![])]),
        1,
    );
    let small = random_frame(2, PixelFormat::Yuv420p, 641, 359);
    check(
        &mut gpu,
        "scale up",
        &job(W, H, vec![layer(small.clone(), vec![])]),
        1,
    );
    // Track composite: every blend mode at a track opacity, over a transformed (partly
    // transparent) layer.
    for blend in [
        BlendMode::Over,
        BlendMode::Add,
        BlendMode::Multiply,
        BlendMode::Screen,
    ] {
        let bottom = layer(f.clone(), vec![]);
        let mut top = layer(
            small.clone(),
            vec![Effect::Transform {
                scale: 0.9,
                x: 10.0,
                y: 5.0,
                rotation: -8.0,
            }],
        );
        top.opacity = 0.6;
        top.blend = blend;
        check(
            &mut gpu,
            &format!("composite {blend:?}"),
            &job(W, H, vec![bottom, top]),
            1,
        );
    }
    // Cross-dissolve.
    let mut top = layer(small, vec![]);
    top.dissolve = Some(0.3);
    check(
        &mut gpu,
        "dissolve",
        &job(W, H, vec![layer(f.clone(), vec![]), top]),
        1,
    );
    // Effect LOD: half and quarter resolution, scaled back up.
    for lod in [EffectLod::Half, EffectLod::Quarter] {
        let mut j = job(
            W,
            H,
            vec![layer(f.clone(), vec![Effect::Blur { radius: 8 }])],
        );
        j.lod = lod;
        let g = gpu.render(&j).expect("gpu");
        assert_eq!(g.lod, lod);
        check(&mut gpu, &format!("lod {lod:?}"), &j, 2);
    }
}

#[test]
fn a_stack_of_100_effects_stays_within_tolerance() {
    let Some(mut gpu) = gpu(poisoned()) else {
        return;
    };
    let f = random_frame(3, PixelFormat::Yuv420p, 515, 289);
    let mut effects = Vec::new();
    for i in 0..100 {
        effects.push(match i % 5 {
            0 => Effect::Grade {
                brightness: 0.01,
                contrast: 1.02,
                saturation: 0.98,
                gamma: 1.01,
                lift: 0.0,
                gain: 0.99,
            },
            1 => Effect::Blur {
                radius: 1 + (i % 3),
            },
            2 => Effect::Sharpen { amount: 0.3 },
            3 => Effect::Transform {
                scale: 1.0,
                x: 0.25,
                y: -0.25,
                rotation: 0.1,
            },
            _ => Effect::Grade {
                brightness: -0.01,
                contrast: 0.98,
                saturation: 1.02,
                gamma: 0.99,
                lift: 0.0,
                gain: 1.01,
            },
        });
    }
    check(
        &mut gpu,
        "100 effects",
        &job(515, 289, vec![layer(f, effects)]),
        2,
    );
}

/// The GPU fuses per-pixel work into the passes next to it (grades into the conversion, runs
/// of grades into one chain, the last layer's trailing grades and composite into the pack);
/// every way a frame can be cut into fused passes gives the CPU's picture.
#[test]
fn fused_grade_chains_and_final_passes_match_the_cpu() {
    let Some(mut gpu) = gpu(poisoned()) else {
        return;
    };
    let grades = |n: usize, seed: f32| -> Vec<Effect> {
        (0..n)
            .map(|i| {
                let t = (i as f32 + seed) / n as f32;
                Effect::Grade {
                    brightness: 0.02 * (t - 0.5),
                    contrast: 1.0 + 0.04 * (0.5 - t),
                    saturation: if i % 3 == 0 { 1.05 } else { 1.0 },
                    gamma: 1.0 + 0.03 * (t - 0.5),
                    lift: 0.01 * t,
                    gain: 1.0 - 0.01 * t,
                }
            })
            .collect()
    };
    // An odd width (the first and last passes' quads wrap rows) and a width of whole quads
    // (they read each plane's samples a word at a time).
    for (w, h) in [(517, 291), (516, 292)] {
        let f = random_frame(11, PixelFormat::Yuv420p, w, h);
        let small = random_frame(12, PixelFormat::Yuv422p, 301, 157);
        let blur = Effect::Blur { radius: 2 };
        // Longer than one pass's chain (12 in the conversion, 15 in a chain, 14 in the pack).
        let long = |a: usize, b: usize| {
            let mut fx = grades(a, 0.0);
            fx.push(blur);
            fx.extend(grades(b, 0.5));
            fx
        };
        let cases: Vec<(&str, Vec<LayerJob>)> = vec![
            (
                "grades only (one pass)",
                vec![layer(f.clone(), grades(5, 0.0))],
            ),
            ("40 grades only", vec![layer(f.clone(), grades(40, 0.0))]),
            (
                "30 grades, blur, 30 grades",
                vec![layer(f.clone(), long(30, 30))],
            ),
            (
                "a resized layer's grades",
                vec![layer(small.clone(), long(3, 20))],
            ),
            (
                "grades over a graded layer",
                vec![
                    layer(f.clone(), long(2, 2)),
                    LayerJob {
                        opacity: 0.6,
                        blend: BlendMode::Screen,
                        ..layer(f.clone(), grades(4, 0.3))
                    },
                ],
            ),
            (
                "a blurred top layer multiplied",
                vec![
                    layer(small.clone(), grades(3, 0.1)),
                    LayerJob {
                        opacity: 0.8,
                        blend: BlendMode::Multiply,
                        ..layer(f.clone(), long(1, 16))
                    },
                ],
            ),
            (
                "a dissolving last layer",
                vec![
                    layer(f.clone(), grades(2, 0.0)),
                    LayerJob {
                        dissolve: Some(0.4),
                        ..layer(small.clone(), grades(2, 0.7))
                    },
                ],
            ),
        ];
        for (what, layers) in cases {
            check(&mut gpu, what, &job(w, h, layers.clone()), 1);
            let mut half = job(w, h, layers);
            half.lod = EffectLod::Half;
            check(&mut gpu, &format!("{what}, half LOD"), &half, 2);
        }
    }
}

#[test]
fn two_devices_share_100_frames_in_order() {
    let Some(mut gpu) = gpu(GpuOptions {
        devices: 2,
        frames_in_flight: 2,
        ..GpuOptions::default()
    }) else {
        return;
    };
    let (w, h) = (320, 180);
    let frame = |i: u64| {
        let mut f = Picture::alloc_in(None, PixelFormat::Yuv420p, w, h);
        let [y, u, v] = &mut f.planes;
        testcard::draw_i420(i, w, h, y, u, v);
        f.index = i;
        Arc::new(f)
    };
    let mut received = Vec::new();
    for i in 0..100u64 {
        let mut j = job(w, h, vec![layer(frame(i), vec![Effect::identity_grade()])]);
        j.tag = i;
        gpu.submit(&j).expect("submit");
        // Read back whatever finished, in order, without waiting.
        while let Some((_, r)) = gpu.try_receive() {
            received.push(r.expect("frame"));
        }
    }
    while let Some((_, r)) = gpu.receive() {
        received.push(r.expect("frame"));
    }
    assert_eq!(received.len(), 100);
    for (i, r) in received.iter().enumerate() {
        assert_eq!(r.tag, i as u64, "results out of order");
        assert_eq!(
            testcard::read_index_rgba(&r.rgba, w, h),
            Some(i as u64),
            "frame {i} shows another frame"
        );
    }
    let stats = gpu.stats();
    assert_eq!(stats.len(), 2);
    eprintln!(
        "frames per device: {:?}",
        stats.iter().map(|s| s.frames).collect::<Vec<_>>()
    );
    assert!(
        stats.iter().all(|s| s.frames >= 20),
        "a device was left idle: {stats:?}"
    );
    assert_eq!(stats.iter().map(|s| s.frames).sum::<u64>(), 100);
}

#[test]
fn steady_state_streaming_creates_no_buffers_and_vram_keeps_uploads() {
    let Some(mut gpu) = gpu(GpuOptions {
        frames_in_flight: 3,
        // Room for 4 frames of 640×360 4:2:0 planes (345,600 bytes each).
        vram_budget: 4 * 345_600,
        ..GpuOptions::default()
    }) else {
        return;
    };
    let memory = framelock_engine::memory::BufferPool::new(1 << 30);
    gpu.count_host_memory_in(&memory);
    let counted = || {
        memory
            .stats()
            .class(framelock_engine::memory::PoolClass::EffectScratch)
            .in_use_bytes
    };
    let frames: Vec<_> = (0..8)
        .map(|i| random_frame(100 + i, PixelFormat::Yuv420p, 640, 360))
        .collect();
    let mk = |i: usize| {
        let mut l = layer(frames[i % 8].clone(), vec![Effect::Blur { radius: 2 }]);
        l.key = 1000 + (i % 8) as u64;
        let mut j = job(1280, 720, vec![l]);
        j.tag = i as u64;
        j
    };
    // Pipelined: keep three frames in flight.
    let mut created_after_warmup = 0;
    for i in 0..60 {
        gpu.submit(&mk(i)).expect("submit");
        if gpu.in_flight() >= 3 {
            let (_, r) = gpu.receive().expect("in flight");
            r.expect("frame");
        }
        if i == 19 {
            created_after_warmup = gpu.stats()[0].buffers_created;
        }
    }
    while gpu.receive().is_some() {}
    // The mapped staging and readback buffers are host memory, counted in the budget: at
    // least two staging slots of a frame's planes and one readback of a 1280×720 frame.
    assert!(
        gpu.host_bytes() >= 2 * 345_600 + 1280 * 720 * 4,
        "{}",
        gpu.host_bytes()
    );
    assert_eq!(counted(), gpu.host_bytes());
    let s = &gpu.stats()[0];
    assert_eq!(
        s.buffers_created, created_after_warmup,
        "buffers were created in steady state: {s:?}"
    );
    // 8 distinct frames cycling through a 4-frame VRAM budget: every upload evicts.
    assert!(s.vram_entries <= 4 && s.vram_bytes <= 4 * 345_600, "{s:?}");
    assert!(s.vram_evictions > 0);
    // The same frame again while it is in VRAM is not uploaded again.
    let before = gpu.stats()[0].clone();
    gpu.render(&mk(59)).expect("frame");
    let after = gpu.stats()[0].clone();
    assert_eq!(
        after.uploads, before.uploads,
        "a VRAM-resident frame was uploaded again"
    );
    assert_eq!(after.vram_hits, before.vram_hits + 1);
    // Same picture as the CPU path either way.
    check(&mut gpu, "vram hit", &mk(59), 2);
}

#[test]
fn passes_are_timed_with_timestamp_queries_or_reported_unavailable() {
    let Some(mut gpu) = gpu(GpuOptions::default()) else {
        return;
    };
    let f = random_frame(7, PixelFormat::Yuv420p, 640, 360);
    // Two layers: the first is composited on its own, the second inside the final pack.
    gpu.render(&job(
        640,
        360,
        vec![
            layer(f.clone(), vec![Effect::Blur { radius: 3 }]),
            layer(f, vec![Effect::Blur { radius: 3 }]),
        ],
    ))
    .expect("render");
    let stats = &gpu.stats()[0];
    if gpu.has_timestamps() {
        let passes = stats.pass_ms.as_ref().expect("timed passes");
        eprintln!("pass times: {passes:?}");
        let blur = if gpu.is_software() {
            "blur.horizontal"
        } else {
            "blur_tiled"
        };
        for name in ["yuv_to_rgba", blur, "composite", "pack_rgba8"] {
            assert!(
                passes.iter().any(|(n, _)| *n == name),
                "{name} not timed: {passes:?}"
            );
        }
        assert!(passes.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0));
        assert!(passes.iter().map(|(_, ms)| ms).sum::<f64>() > 0.0);
    } else {
        assert_eq!(stats.pass_ms, None, "no timestamp queries: no numbers");
    }
}

/// The texture output on a host's device: every picture format the engine presents, in both
/// matrices and ranges, as the same pixels as the CPU conversion (`Picture::to_rgba`).
#[test]
fn the_texture_output_matches_the_cpu_conversion() {
    use framelock_engine::gpu::TextureOutput;
    use framelock_engine::media::{ColorSpace, MatrixCoefficients, YuvRange};
    if std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some() {
        eprintln!("FRAMELOCK_SKIP_GPU_TESTS is set: skipping a GPU test");
        return;
    }
    let (device, queue) = TextureOutput::open_device(true).expect(
        "no wgpu adapter: install mesa-vulkan-drivers (lavapipe) or set FRAMELOCK_SKIP_GPU_TESTS=1",
    );
    let mut out = TextureOutput::new(device, queue);
    let colors = [
        ColorSpace::default(),
        ColorSpace {
            matrix: MatrixCoefficients::Bt601,
            range: YuvRange::Full,
        },
    ];
    let formats = [
        PixelFormat::Yuv420p,
        PixelFormat::Yuv422p,
        PixelFormat::Yuv444p,
        PixelFormat::Rgba8,
        PixelFormat::Yuv420p10,
    ];
    let mut seed = 0;
    for format in formats {
        for color in colors {
            seed += 1;
            let mut picture = (*random_frame(seed, format, 318, 182)).clone();
            picture.color = color;
            let texture = out.upload(&picture).expect("upload");
            assert_eq!((texture.width(), texture.height()), (318, 182));
            let gpu = out.read_rgba(&texture);
            let cpu = picture.to_rgba();
            assert_eq!(gpu.len(), cpu.len(), "{format:?} {color:?}");
            let max = gpu
                .iter()
                .zip(&cpu)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            eprintln!("{format:?} {color:?}: max difference {max}/255");
            assert!(max <= 2, "{format:?} {color:?}: differs by {max}/255");
        }
    }
    // The ring: three textures in turn, then the first again.
    let p = random_frame(99, PixelFormat::Yuv420p, 64, 36);
    let t: Vec<_> = (0..4).map(|_| out.upload(&p).expect("upload")).collect();
    assert!(t[0] != t[1] && t[1] != t[2] && t[3] == t[0]);
    // A picture whose planes are short is refused, not read past.
    let mut short = (*p).clone();
    short.height = 200;
    assert!(out.upload(&short).is_err());
}

/// On the host's device every frame is also left in a texture there, with the very pixels
/// read back, at any width (rows not padded), and nothing else about the frame changes.
#[test]
fn on_the_hosts_device_each_frame_is_also_a_texture() {
    use framelock_engine::gpu::{HostDevice, TextureOutput};
    if std::env::var_os("FRAMELOCK_SKIP_GPU_TESTS").is_some() {
        eprintln!("FRAMELOCK_SKIP_GPU_TESTS is set: skipping a GPU test");
        return;
    }
    let (device, queue) = TextureOutput::open_device(true).expect(
        "no wgpu adapter: install mesa-vulkan-drivers (lavapipe) or set FRAMELOCK_SKIP_GPU_TESTS=1",
    );
    let out = TextureOutput::new(device.clone(), queue.clone());
    let mut gpu = Gpu::new(&GpuOptions {
        host: Some(HostDevice::new(device, queue)),
        ..poisoned()
    })
    .expect("a GPU on the host's device");
    let mut own = self::gpu(poisoned()).expect("a GPU");
    for (w, h) in [(317, 181), (64, 36)] {
        let j = job(
            w,
            h,
            vec![layer(
                random_frame(w as u64, PixelFormat::Yuv420p, w, h),
                vec![Effect::Sharpen { amount: 0.7 }],
            )],
        );
        let shared = gpu.render(&j).expect("render on the host's device");
        let texture = shared
            .texture
            .clone()
            .expect("a texture on the host's device");
        assert_eq!((texture.width(), texture.height()), (w, h));
        assert_eq!(out.read_rgba(&texture), shared.rgba, "{w}x{h}");
        // The same frame as on a device of the engine's own, which leaves no texture.
        let alone = own.render(&j).expect("render");
        assert!(alone.texture.is_none());
        assert_eq!(alone.rgba, shared.rgba, "{w}x{h}");
    }
}
