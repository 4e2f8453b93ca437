//! Micro-benchmarks of the media layer's per-frame work: YUV → RGBA conversion, YUV scaling,
//! drawing the test card. Scene and decode benchmarks live in `tools/` (`framelock decode-bench`).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use framelock::{YuvFrame, testcard};

fn card(w: u32, h: u32) -> YuvFrame {
    let mut f = YuvFrame::black(w, h);
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
    let mut f = YuvFrame::black(1920, 1080);
    c.bench_function("testcard_draw/1080p", |b| {
        b.iter(|| {
            let [y, u, v] = &mut f.planes;
            testcard::draw_i420(42, 1920, 1080, y, u, v);
        })
    });
}

criterion_group!(benches, convert, draw);
criterion_main!(benches);
