//! Times each stage of the fast CPU effects path alone on a 1080p test card, a profiling aid
//! for `perf record` (the benchmark figures come from `cargo bench --bench effects`):
//! `cargo run --release -p framelock-engine --example fast_stages [STAGE-PREFIX]`.

#![allow(
    clippy::unwrap_used,
    missing_docs,
    clippy::print_stdout,
    reason = "scratch"
)]
use framelock_components::{BlendMode, Effect};
use framelock_engine::effects::fast::{
    self, Image16, blend, blur, convert, point::PointChain, sharpen, transform,
};
use framelock_engine::effects::samples;
use std::time::Instant;

fn time(name: &str, mut f: impl FnMut()) {
    if let Some(only) = std::env::args().nth(1)
        && !name.starts_with(&only)
    {
        return;
    }
    f();
    // The best of five rounds of five: this shared machine's neighbours add noise, never
    // subtract it.
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..5 {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / 5.0
        })
        .fold(f64::INFINITY, f64::min);
    println!("{name:24} {best:7.2} ms");
}

fn main() {
    // `FRAMELOCK_STAGES_4K=1` for 3840x2160.
    let (w, h) = if std::env::var_os("FRAMELOCK_STAGES_4K").is_some() {
        (3840, 2160)
    } else {
        (1920, 1080)
    };
    let f = samples::card(1, w, h);
    let grade = samples::grade();
    // The same grade without its saturation: one curve.
    let grade1 = Effect::Grade {
        brightness: 0.02,
        contrast: 1.1,
        saturation: 1.0,
        gamma: 1.05,
        lift: 0.01,
        gain: 0.98,
    };
    time("convert", || {
        let _ = convert::convert(&f, None);
    });
    let img = convert::convert(&f, None);
    let mut out = vec![0u8; (w * h * 4) as usize];
    time("pack", || img.pack_rgba8(&mut out));
    let mut a = img.clone();
    time("over_black", || {
        blend::over_black(&mut a, 1.0, BlendMode::Over)
    });
    let b = img.clone();
    time("composite screen", || {
        blend::composite(&mut a, &b, 0.7, BlendMode::Screen)
    });
    // Chains as frames use them: fitted (see `PointChain::of`).
    let c = PointChain::of(&[grade]);
    time("grade mix", || c.apply(&mut a.px));
    let c1 = PointChain::of(&[grade1]);
    time("grade curve", || c1.apply(&mut a.px));
    time("blur r4", || blur::blur(&mut a, 4, None));
    time("blur r20", || blur::blur(&mut a, 20, None));
    time("sharpen", || sharpen::sharpen(&mut a, 0.5, None));
    let t = Effect::Transform {
        scale: 1.05,
        x: 3.0,
        y: -2.0,
        rotation: 1.5,
    };
    time("transform", || transform::transform(&mut a, &t, None));
    // Whole frames, as playback renders them (output from a pool).
    let pool = framelock_engine::memory::BufferPool::new(1 << 30);
    for (name, effects, two) in [
        ("frame none", vec![], false),
        ("frame grade", vec![grade], false),
        ("frame transform", vec![samples::transform()], false),
        ("frame full stack", samples::full_stack(), true),
        ("frame hundred", samples::hundred(), false),
    ] {
        let j = samples::job(&f, effects, two);
        time(name, || {
            let _ = fast::render_picture(&j, Some(&pool)).unwrap();
        });
    }
    // The full stack at half effect LOD (effects at half size, then scaled up).
    let mut j = samples::job(&f, samples::full_stack(), true);
    j.lod = framelock_components::EffectLod::Half;
    time("frame full stack, LOD 1/2", || {
        let _ = fast::render_picture(&j, Some(&pool)).unwrap();
    });
    time("clone", || {
        let _ = a.clone();
    });
    time("scratch", || {
        let _ = Image16::scratch(w, h);
    });
}
