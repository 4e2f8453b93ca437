//! Effects per frame on the GPU path (whatever adapter wgpu finds: lavapipe on the
//! development machine, a real GPU when one is lent) against the CPU path, at 1080p and 4K:
//! each effect alone (`none` is the frame's fixed cost: upload, conversion, composite, pack,
//! readback), the full stack, and the full stack pipelined (three frames in flight). Then the
//! streaming speed: upload and readback against a plain memcpy of the same bytes.
//!
//! `cargo bench --bench effects` (set `FRAMELOCK_BENCH_QUICK=1` for 1080p only,
//! `FRAMELOCK_BENCH_NO_GPU=1` for the CPU paths only). Each size's group also times a memcpy
//! of one RGBA16 frame (what one pass of the fast CPU path reads or writes) as the baseline.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use framelock::Effect;
use framelock_engine::effects::samples::{card, full_stack, hundred, job};
use framelock_engine::effects::{cpu, fast};
use framelock_engine::gpu::{BlurKernel, Gpu, GpuOptions};
use framelock_engine::memory::BufferPool;

fn sizes() -> Vec<(&'static str, u32, u32)> {
    if std::env::var_os("FRAMELOCK_BENCH_QUICK").is_some() {
        vec![("1080p", 1920, 1080)]
    } else {
        vec![("1080p", 1920, 1080), ("4k", 3840, 2160)]
    }
}

fn effects(c: &mut Criterion) {
    let mut gpu = if std::env::var_os("FRAMELOCK_BENCH_NO_GPU").is_some() {
        None
    } else {
        Gpu::new(&GpuOptions::default()).ok()
    };
    if let Some(g) = &gpu {
        eprintln!("GPU path on: {:?}", g.device_names());
    } else {
        eprintln!("no adapter: CPU path only");
    }
    let cases: Vec<(&str, Vec<Effect>, bool)> = vec![
        ("none", vec![], false),
        ("grade", vec![full_stack()[0]], false),
        ("blur_r4", vec![Effect::Blur { radius: 4 }], false),
        ("blur_r20", vec![Effect::Blur { radius: 20 }], false),
        ("sharpen", vec![Effect::Sharpen { amount: 0.5 }], false),
        ("transform", vec![full_stack()[3]], false),
        ("full_stack_2_layers", full_stack(), true),
        ("hundred_effects", hundred(), false),
    ];
    for (res, w, h) in sizes() {
        let frame = card(1, w, h);
        let mut group = c.benchmark_group(format!("effects_{res}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        for (name, fx, two) in &cases {
            let j = job(&frame, fx.clone(), *two);
            if let Some(g) = gpu.as_mut() {
                g.set_blur_kernel(BlurKernel::Auto);
                // The frame's bytes go back to the GPU for the next readback, as the engine's
                // GPU thread does once it has copied them out.
                group.bench_with_input(BenchmarkId::new("gpu", name), &j, |b, j| {
                    b.iter(|| {
                        let r = g.render(j).expect("gpu");
                        g.recycle(r.rgba);
                    })
                });
                if name.starts_with("blur_r4") {
                    for (label, kernel) in [
                        ("gpu_separable", BlurKernel::Separable),
                        ("gpu_tiled", BlurKernel::Tiled),
                    ] {
                        g.set_blur_kernel(kernel);
                        group.bench_with_input(BenchmarkId::new(label, name), &j, |b, j| {
                            b.iter(|| {
                                let r = g.render(j).expect("gpu");
                                g.recycle(r.rgba);
                            })
                        });
                    }
                    g.set_blur_kernel(BlurKernel::Auto);
                }
            }
            if *name != "hundred_effects" {
                group.bench_with_input(BenchmarkId::new("cpu", name), &j, |b, j| {
                    b.iter(|| cpu::render(j).expect("cpu"))
                });
            }
            // As playback runs it: the output picture from a pool (a fresh 8 MB buffer a frame
            // would add ~2 ms of page faults).
            let pool = BufferPool::new(1 << 30);
            group.bench_with_input(BenchmarkId::new("cpu_fast", name), &j, |b, j| {
                b.iter(|| fast::render_picture(j, Some(&pool)).expect("fast"))
            });
        }
        let src = vec![1u16; w as usize * h as usize * 4];
        let mut dst = vec![0u16; src.len()];
        group.bench_function("memcpy_rgba16", |b| {
            b.iter(|| {
                dst.copy_from_slice(std::hint::black_box(&src));
                std::hint::black_box(&dst);
            })
        });
        // Throughput with three frames in flight (upload n+2 / effects n+1 / readback n).
        if let Some(g) = gpu.as_mut() {
            let j = job(&frame, full_stack(), true);
            group.bench_function("gpu_pipelined/full_stack_2_layers", |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        g.submit(&j).expect("submit");
                        if g.in_flight() >= 3 {
                            let r = g.receive().expect("frame").1.expect("ok");
                            g.recycle(r.rgba);
                        }
                    }
                    while let Some((_, r)) = g.receive() {
                        g.recycle(r.expect("ok").rgba);
                    }
                    start.elapsed()
                })
            });
        }
        group.finish();
    }
}

fn streaming(c: &mut Criterion) {
    let Ok(mut gpu) = Gpu::new(&GpuOptions::default()) else {
        return;
    };
    for (res, w, h) in sizes() {
        // What a frame moves: its 4:2:0 planes up, RGBA8 down; the same bytes both ways here.
        let bytes = (w * h * 4) as usize;
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
        let mut group = c.benchmark_group(format!("streaming_{res}"));
        group.sample_size(10);
        group.throughput(criterion::Throughput::Bytes(bytes as u64));
        group.bench_function("upload", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| gpu.transfer(&data).expect("transfer").0)
                    .sum()
            })
        });
        group.bench_function("readback", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| gpu.transfer(&data).expect("transfer").1)
                    .sum()
            })
        });
        let mut dst = vec![0u8; bytes];
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                dst.copy_from_slice(std::hint::black_box(&data));
                std::hint::black_box(&dst);
            })
        });
        group.finish();
    }
}

/// An effects frame to a texture a GPU host can draw: rendered on a device of the engine's
/// own, read back, uploaded to the host's device (`own_device_then_upload`), against rendered
/// on the host's device, whose texture comes with the frame (`host_device_texture`). Both
/// wait until the texture is written. Baseline: a memcpy of the frame's RGBA8 bytes.
fn host_texture(c: &mut Criterion) {
    use framelock_engine::gpu::{HostDevice, TextureOutput};
    if std::env::var_os("FRAMELOCK_BENCH_NO_GPU").is_some() {
        return;
    }
    let (Ok(mut own), Ok((device, queue))) = (
        Gpu::new(&GpuOptions::default()),
        TextureOutput::open_device(true),
    ) else {
        return;
    };
    let mut output = TextureOutput::new(device.clone(), queue.clone());
    let mut shared = Gpu::new(&GpuOptions {
        host: Some(HostDevice::new(device.clone(), queue)),
        ..GpuOptions::default()
    })
    .expect("the host's device");
    let wait = || {
        let _ = device.poll(framelock::wgpu::PollType::wait_indefinitely());
    };
    for (res, w, h) in sizes() {
        let frame = card(1, w, h);
        let j = job(&frame, vec![full_stack()[0]], false);
        let mut group = c.benchmark_group(format!("host_texture_{res}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("own_device_then_upload", |b| {
            b.iter(|| {
                let r = own.render(&j).expect("gpu");
                let picture = framelock_engine::render::rgba_picture(&r, None);
                let t = output.upload(&picture).expect("upload");
                wait();
                own.recycle(r.rgba);
                t
            })
        });
        group.bench_function("host_device_texture", |b| {
            b.iter(|| {
                let r = shared.render(&j).expect("gpu");
                let t = r.texture.expect("a texture");
                wait();
                shared.recycle(r.rgba);
                t
            })
        });
        let src = vec![1u8; w as usize * h as usize * 4];
        let mut dst = vec![0u8; src.len()];
        group.bench_function("memcpy_rgba8", |b| {
            b.iter(|| {
                dst.copy_from_slice(std::hint::black_box(&src));
                std::hint::black_box(&dst);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, effects, streaming, host_texture);
criterion_main!(benches);
