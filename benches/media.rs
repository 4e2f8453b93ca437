//! Micro-benchmarks of the media layer's per-frame work: YUV → RGBA conversion, YUV scaling,
//! drawing the test card. Scene and decode benchmarks live in `tools/` (`framelock decode-bench`).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use framelock::{
    DecoderRegistry, GenerateOptions, Picture, Rational, generate_test_clip, probe, testcard,
};

fn card(w: u32, h: u32) -> Picture {
    let mut f = Picture::black(w, h);
    let [y, u, v] = &mut f.planes;
    testcard::draw_i420(7, w, h, y, u, v);
    f
}

fn convert(c: &mut Criterion) {
    for (name, w, h) in [("1080p", 1920, 1080), ("4k", 3840, 2160)] {
        let f = card(w, h);
        let mut rgba = vec![0u8; (w * h * 4) as usize];
        c.bench_function(&format!("i420_to_rgba/{name}"), |b| {
            b.iter(|| f.write_rgba(&mut rgba))
        });
        c.bench_function(&format!("scale_yuv_quarter/{name}"), |b| {
            b.iter(|| f.scaled(w / 4, h / 4))
        });
    }
}

fn draw(c: &mut Criterion) {
    let mut f = Picture::black(1920, 1080);
    c.bench_function("testcard_draw/1080p", |b| {
        b.iter(|| {
            let [y, u, v] = &mut f.planes;
            testcard::draw_i420(42, 1920, 1080, y, u, v);
        })
    });
}

/// A one-hour clip (108 000 frames at 30 fps, 1 s GOPs). Probing reads only the sample
/// tables, whose size depends on the frame count, not the picture size: a small picture keeps
/// the one-off generation short. Kept in the system temp dir between runs.
fn hour_clip() -> PathBuf {
    let path = std::env::temp_dir().join("framelock-bench-1h-64x36.mp4");
    if !path.exists() {
        let mut o = GenerateOptions::new(64, 36, Rational::integer(30), 3600.0);
        o.rate = Some(framelock::RateControl::ConstantQp(40));
        generate_test_clip(&path, &o, |_, _| {}).expect("generate the one-hour clip");
    }
    path
}

fn probe_hour(c: &mut Criterion) {
    let path = hour_clip();
    let registry = DecoderRegistry::new();
    let info = probe(&path, &registry).expect("probe");
    assert_eq!(info.video.frame_count, 108_000);
    c.bench_function("probe/1h-108000-frames", |b| {
        b.iter(|| probe(&path, &registry).expect("probe"))
    });
}

criterion_group!(benches, convert, draw, probe_hour);
criterion_main!(benches);
