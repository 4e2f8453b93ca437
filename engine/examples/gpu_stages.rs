//! The GPU effects path on whatever adapter wgpu finds (lavapipe here, a real GPU when one is
//! lent), one table: for each effect case and size, the time of one frame from submit to the
//! RGBA8 bytes in host memory (upload, effects, pack, readback: median of N), the time per
//! frame with three in flight, the GPU's own time for the frame's passes (timestamp queries,
//! where the adapter has them), and the largest difference from the fast CPU path (which the
//! tests hold within 1/255 of the reference, 2/255 for wide blurs). Then upload and readback
//! throughput against a memcpy of the same bytes.
//!
//! `cargo run --release -p framelock-engine --example gpu_stages [--quick] [--sizes 1080p,4k]
//! [--n N] [--case PREFIX] [--passes] [--blur separable|tiled]`. The criterion figures come from `cargo bench --bench effects`;
//! this is the short run that fits a lent GPU's minutes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    clippy::print_stdout,
    reason = "a measuring tool"
)]
use std::time::Instant;

use framelock_components::Effect;
use framelock_engine::effects::fast;
use framelock_engine::effects::samples::{card, full_stack, grade, hundred, job, transform};
use framelock_engine::gpu::{BlurKernel, Gpu, GpuOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = arg("--n")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 3 } else { 20 });
    let only = arg("--case");
    let sizes: Vec<(&str, u32, u32)> = arg("--sizes")
        .unwrap_or_else(|| {
            if quick {
                "1080p".into()
            } else {
                "1080p,4k".into()
            }
        })
        .split(',')
        .filter_map(|s| match s {
            "720p" => Some(("720p", 1280, 720)),
            "1080p" => Some(("1080p", 1920, 1080)),
            "4k" => Some(("4k", 3840, 2160)),
            _ => None,
        })
        .collect();
    let mut gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            println!("no GPU: {e}");
            return;
        }
    };
    match arg("--blur").as_deref() {
        Some("separable") => gpu.set_blur_kernel(BlurKernel::Separable),
        Some("tiled") => gpu.set_blur_kernel(BlurKernel::Tiled),
        _ => {}
    }
    println!(
        "adapter: {:?} (software: {}, timestamps: {})",
        gpu.device_names(),
        gpu.is_software(),
        gpu.has_timestamps()
    );
    let cases: Vec<(&str, Vec<Effect>, bool)> = vec![
        ("none", vec![], false),
        ("grade", vec![grade()], false),
        ("blur_r4", vec![Effect::Blur { radius: 4 }], false),
        ("blur_r20", vec![Effect::Blur { radius: 20 }], false),
        ("sharpen", vec![Effect::Sharpen { amount: 0.5 }], false),
        ("transform", vec![transform()], false),
        ("full_stack_2_layers", full_stack(), true),
        ("hundred_effects", hundred(), false),
    ];
    println!(
        "{:6} {:22} {:>10} {:>12} {:>10} {:>9} {:>9}",
        "size", "case", "frame ms", "pipelined ms", "gpu ms", "dispatch", "max diff"
    );
    for (res, w, h) in &sizes {
        let frame = card(7, *w, *h);
        for (name, fx, two) in &cases {
            if only.as_ref().is_some_and(|o| !name.starts_with(o.as_str())) {
                continue;
            }
            let j = job(&frame, fx.clone(), *two);
            // Warm-up (pipelines, buffers, staging and readback rings).
            let first = gpu.render(&j).expect("gpu");
            let _ = gpu.render(&j).expect("gpu");
            let reference = fast::render(&j).expect("cpu");
            let diff = first
                .rgba
                .iter()
                .zip(&reference.rgba)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            let d0 = gpu.stats()[0].dispatches;
            let times: Vec<f64> = (0..n)
                .map(|_| {
                    let t = Instant::now();
                    let r = gpu.render(&j).expect("gpu");
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    // As the engine's GPU thread does once it has copied the frame out.
                    gpu.recycle(r.rgba);
                    ms
                })
                .collect();
            let dispatches = (gpu.stats()[0].dispatches - d0) / n as u64;
            let gpu_ms = gpu.stats()[0]
                .pass_ms
                .as_ref()
                .map(|p| p.iter().map(|(_, ms)| ms).sum::<f64>());
            let t = Instant::now();
            for _ in 0..n {
                gpu.submit(&j).expect("submit");
                if gpu.in_flight() >= 3 {
                    let r = gpu.receive().expect("frame").1.expect("ok");
                    gpu.recycle(r.rgba);
                }
            }
            while let Some((_, r)) = gpu.receive() {
                gpu.recycle(r.expect("ok").rgba);
            }
            let pipelined = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            println!(
                "{:6} {:22} {:10.2} {:12.2} {:>10} {:9} {:9}",
                res,
                name,
                median(times),
                pipelined,
                gpu_ms.map_or("-".into(), |m| format!("{m:.2}")),
                dispatches,
                diff
            );
            if std::env::args().any(|a| a == "--passes")
                && let Some(p) = &gpu.stats()[0].pass_ms
            {
                for (k, ms) in p {
                    println!("         {k:30} {ms:8.3} ms");
                }
            }
        }
        // Streaming: what a frame moves, both ways, against a memcpy of the same bytes.
        let bytes = (*w * *h * 4) as usize;
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
        let _ = gpu.transfer(&data).expect("transfer");
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for _ in 0..n.max(5) {
            let (u, d) = gpu.transfer(&data).expect("transfer");
            up.push(u.as_secs_f64());
            down.push(d.as_secs_f64());
        }
        let mut dst = vec![0u8; bytes];
        let copies: Vec<f64> = (0..n.max(5))
            .map(|_| {
                let t = Instant::now();
                dst.copy_from_slice(std::hint::black_box(&data));
                std::hint::black_box(&dst);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let gbs = |s: f64| bytes as f64 / s / 1e9;
        let (u, d, m) = (median(up), median(down), median(copies));
        println!(
            "{res:6} streaming {:.1} MB: upload {:.2} ms ({:.1} GB/s, {:.2}x memcpy), readback {:.2} ms ({:.1} GB/s, {:.2}x memcpy), memcpy {:.2} ms ({:.1} GB/s)",
            bytes as f64 / 1e6,
            u * 1e3,
            gbs(u),
            m / u,
            d * 1e3,
            gbs(d),
            m / d,
            m * 1e3,
            gbs(m)
        );
    }
}
