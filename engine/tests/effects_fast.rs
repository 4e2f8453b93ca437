//! The fast CPU path against the reference twins: every effect, fused chains, a 100-effect
//! stack, blends, dissolves, LODs and every input format, on random pictures of odd sizes;
//! within 1/255 per channel (2/255 where a blur is involved), and bit-identical whatever the
//! number of threads.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;

use common::{diff, layer, random_frame};
use framelock_components::{BlendMode, Effect, EffectLod};
use framelock_engine::effects::{LayerJob, RenderJob, cpu, fast, samples};
use framelock_engine::media::{Picture, PixelFormat, testcard};

/// The test card: hard edges (the worst case for the box cascades) and burned-in digits.
fn card(i: u64, w: u32, h: u32) -> Arc<Picture> {
    let mut f = Picture::black(w, h);
    let [y, u, v] = &mut f.planes;
    testcard::draw_i420(i, w, h, y, u, v);
    Arc::new(f)
}

/// A job whose tag is not the default, so the tests see it carried through.
fn job(width: u32, height: u32, layers: Vec<LayerJob>) -> RenderJob {
    RenderJob {
        tag: 7,
        ..common::job(width, height, layers)
    }
}

fn check(what: &str, job: &RenderJob, tolerance: u8) {
    let f = fast::render(job).unwrap_or_else(|e| panic!("{what}: fast render failed: {e}"));
    let r = cpu::render(job).unwrap_or_else(|e| panic!("{what}: reference failed: {e}"));
    assert_eq!(f.tag, r.tag, "{what}: tag");
    let (max, n) = diff(&f, &r);
    eprintln!("{what}: max difference {max}/255, {n} bytes differ");
    assert!(
        max <= tolerance,
        "{what}: fast path off the reference by {max}/255 (tolerance {tolerance}) in {n} bytes"
    );
}

fn grade(brightness: f32, contrast: f32, saturation: f32, gamma: f32) -> Effect {
    Effect::Grade {
        brightness,
        contrast,
        saturation,
        gamma,
        lift: 0.02,
        gain: 0.97,
    }
}

fn transform() -> Effect {
    Effect::Transform {
        scale: 0.8,
        x: 40.0,
        y: -25.0,
        rotation: 17.0,
    }
}

#[test]
fn conversion_of_every_format_matches_the_reference() {
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
        let f = random_frame(10 + i as u64, format, 321, 179);
        check(
            &format!("{format:?}"),
            &job(321, 179, vec![layer(f.clone(), vec![])]),
            1,
        );
        // The only layer, graded, blended onto black: converted, graded, blended and packed
        // band by band.
        let mut graded = layer(
            f,
            vec![grade(0.02, 1.1, 1.2, 1.1), grade(0.0, 0.9, 1.0, 1.2)],
        );
        graded.opacity = 0.8;
        graded.blend = BlendMode::Screen;
        check(
            &format!("{format:?} graded, screen 0.8"),
            &job(321, 179, vec![graded]),
            1,
        );
    }
    let rgba = Arc::new(card(3, 322, 180).to_rgba8_in(None));
    check(
        "rgba8 layer",
        &job(322, 180, vec![layer(rgba.clone(), vec![])]),
        1,
    );
    check(
        "rgba8 layer graded",
        &job(
            322,
            180,
            vec![layer(rgba, vec![grade(0.02, 1.1, 1.2, 1.1)])],
        ),
        1,
    );
}

/// At LOD ½ an even-sized Y'CbCr frame is converted straight to half size (a 2×2 mean in the
/// conversion pass): the reference converts, then shrinks with its box filter.
#[test]
fn half_size_conversion_matches_the_reference_shrink() {
    for (i, format) in [
        PixelFormat::Yuv420p,
        PixelFormat::Yuv422p,
        PixelFormat::Yuv444p,
        PixelFormat::Yuv420p10,
    ]
    .into_iter()
    .enumerate()
    {
        let f = random_frame(30 + i as u64, format, 642, 362);
        for effects in [vec![], vec![grade(0.02, 1.1, 1.2, 1.1)]] {
            let mut j = job(642, 362, vec![layer(f.clone(), effects)]);
            j.lod = EffectLod::Half;
            check(&format!("{format:?} at LOD 1/2"), &j, 1);
        }
    }
}

#[test]
fn each_effect_matches_the_reference_on_random_pictures() {
    let (w, h) = (1918, 1082);
    let f = random_frame(1, PixelFormat::Yuv420p, w, h);
    let cases: Vec<(&str, Effect, u8)> = vec![
        ("grade (one curve)", grade(0.05, 1.2, 1.0, 1.3), 1),
        ("grade (saturation mix)", grade(-0.03, 1.1, 1.4, 0.8), 1),
        ("grade (steep gamma)", grade(0.0, 1.0, 0.6, 2.4), 1),
        ("blur r4", Effect::Blur { radius: 4 }, 1),
        ("blur r20 (cascade)", Effect::Blur { radius: 20 }, 2),
        ("sharpen", Effect::Sharpen { amount: 0.7 }, 1),
        ("transform", transform(), 1),
    ];
    for (what, e, tol) in cases {
        check(what, &job(w, h, vec![layer(f.clone(), vec![e])]), tol);
    }
}

#[test]
fn blurs_of_every_kind_match_on_hard_edges_and_noise() {
    let (w, h) = (643, 361);
    let edges = card(42, w, h);
    let noise = random_frame(5, PixelFormat::Yuv420p, w, h);
    for radius in [1, 2, 7, 12, 13, 16, 33, 60] {
        let tol = if radius <= fast::blur::DIRECT_MAX {
            1
        } else {
            2
        };
        for (name, f) in [("edges", &edges), ("noise", &noise)] {
            check(
                &format!("blur r{radius} on {name}"),
                &job(w, h, vec![layer(f.clone(), vec![Effect::Blur { radius }])]),
                tol,
            );
        }
    }
}

#[test]
fn sharpen_and_transform_edges_match() {
    let f = random_frame(8, PixelFormat::Yuv420p, 215, 121);
    for amount in [0.0, 0.4, 3.0] {
        check(
            &format!("sharpen {amount}"),
            &job(
                215,
                121,
                vec![layer(f.clone(), vec![Effect::Sharpen { amount }])],
            ),
            1,
        );
    }
    for (scale, rotation, x, y) in [
        (1.0, 0.0, 0.5, 0.25),
        (2.5, 33.0, -60.0, 10.0),
        (0.3, -90.0, 0.0, 0.0),
        (1.0, 180.0, 0.0, 0.0),
        (8.0, 45.0, 3.0, -7.0),
        (1.0, 0.0, -214.6, 120.4),
        (1e-6, 0.0, 0.0, 0.0),
        (1.0, 0.0, 1e9, -1e9),
        (1e6, 10.0, 0.0, 0.0),
    ] {
        let e = Effect::Transform {
            scale,
            x,
            y,
            rotation,
        };
        check(
            &format!("transform {e:?}"),
            &job(215, 121, vec![layer(f.clone(), vec![e])]),
            1,
        );
    }
}

#[test]
fn fused_chains_and_a_hundred_effects_match() {
    let (w, h) = (641, 359);
    let f = random_frame(2, PixelFormat::Yuv420p, w, h);
    let chain = vec![
        grade(0.02, 1.1, 1.0, 1.1),
        grade(-0.01, 0.95, 1.0, 0.9),
        grade(0.0, 1.05, 1.3, 1.0),
        grade(0.01, 1.0, 1.0, 1.2),
    ];
    check(
        "four grades fused",
        &job(w, h, vec![layer(f.clone(), chain.clone())]),
        1,
    );
    // Grades after each neighbourhood effect run on its bands as it finishes them (the
    // direct blur, the box cascade, sharpen, transform).
    for first in [
        Effect::Blur { radius: 3 },
        Effect::Blur { radius: 20 },
        Effect::Sharpen { amount: 0.7 },
        transform(),
    ] {
        let stack = vec![
            first,
            chain[1],
            chain[2],
            Effect::Sharpen { amount: 0.2 },
            chain[3],
        ];
        let tol = if first == (Effect::Blur { radius: 20 }) {
            2
        } else {
            1
        };
        check(
            &format!("{first:?} then grades"),
            &job(w, h, vec![layer(f.clone(), stack)]),
            tol,
        );
    }
    // The benchmarks' stack (one definition: `effects::samples`).
    let hundred = samples::hundred();
    check("a hundred effects", &job(w, h, vec![layer(f, hundred)]), 2);
}

#[test]
fn blends_dissolves_and_lods_match() {
    let (w, h) = (645, 363);
    let a = random_frame(20, PixelFormat::Yuv420p, w, h);
    let b = card(9, 321, 181); // another size: resized up to the work size
    for mode in [
        BlendMode::Over,
        BlendMode::Add,
        BlendMode::Multiply,
        BlendMode::Screen,
    ] {
        let mut top = layer(b.clone(), vec![transform()]);
        top.opacity = 0.6;
        top.blend = mode;
        let mut base = layer(a.clone(), vec![grade(0.0, 1.1, 1.2, 1.0)]);
        base.opacity = 0.9;
        check(&format!("{mode:?}"), &job(w, h, vec![base, top]), 1);
    }
    let mut first = layer(a.clone(), vec![]);
    first.dissolve = Some(0.3);
    let mut second = layer(b.clone(), vec![Effect::Sharpen { amount: 0.5 }]);
    second.dissolve = Some(0.55);
    check("dissolves", &job(w, h, vec![first, second]), 1);
    for lod in [EffectLod::Half, EffectLod::Quarter] {
        let mut j = job(
            w,
            h,
            vec![layer(
                a.clone(),
                vec![Effect::Blur { radius: 8 }, grade(0.0, 1.2, 1.0, 1.0)],
            )],
        );
        j.lod = lod;
        check(&format!("{lod:?}"), &j, 1);
    }
    // The only layer ending in a transform (then grades): the transform writes the bytes,
    // blended onto black on the way.
    for (opacity, mode) in [(0.6, BlendMode::Multiply), (0.8, BlendMode::Screen)] {
        let mut only = layer(a.clone(), vec![transform(), grade(0.02, 1.1, 1.2, 0.9)]);
        only.opacity = opacity;
        only.blend = mode;
        check(
            &format!("only layer, transformed, {mode:?}"),
            &job(w, h, vec![only]),
            1,
        );
        // The same as the last of two layers: blended onto the first band by band.
        let mut last = layer(a.clone(), vec![transform(), grade(0.02, 1.1, 1.2, 0.9)]);
        last.opacity = opacity;
        last.blend = mode;
        let under = layer(b.clone(), vec![Effect::Sharpen { amount: 0.3 }]);
        check(
            &format!("last layer, transformed, {mode:?}"),
            &job(w, h, vec![under, last]),
            1,
        );
    }
    // An even size at LOD ½: the composite is enlarged and packed in one pass.
    let even = random_frame(21, PixelFormat::Yuv420p, 646, 364);
    let mut top = layer(b.clone(), vec![transform()]);
    top.blend = BlendMode::Screen;
    top.opacity = 0.7;
    for layers in [
        vec![layer(even.clone(), vec![Effect::Sharpen { amount: 0.4 }])],
        vec![layer(even.clone(), vec![transform()])],
        vec![layer(even, vec![grade(0.0, 1.1, 1.2, 1.0)]), top],
    ] {
        let n = layers.len();
        let mut j = job(646, 364, layers);
        j.lod = EffectLod::Half;
        check(&format!("646x364 at LOD 1/2, {n} layers"), &j, 1);
    }
    check("no layers", &job(w, h, vec![]), 0);
}

#[test]
fn pictures_do_not_depend_on_the_thread_count() {
    let f = random_frame(30, PixelFormat::Yuv420p, 963, 541);
    let j = job(
        963,
        541,
        vec![layer(
            f,
            vec![
                grade(0.02, 1.1, 1.3, 1.2),
                Effect::Blur { radius: 25 },
                Effect::Sharpen { amount: 0.5 },
                transform(),
            ],
        )],
    );
    let many = fast::render(&j).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| fast::render(&j).unwrap());
    assert!(
        many.rgba == one.rgba,
        "the picture changed with the thread count"
    );
    assert!(
        fast::render(&j).unwrap().rgba == many.rgba,
        "not deterministic"
    );
}

/// A render's working images are counted in the pool's effect-scratch class while it runs
/// (the pool's peak holds them next to the output picture) and given back after.
#[test]
fn render_scratch_is_counted_while_it_runs() {
    use framelock_engine::memory::{BufferPool, PoolClass};
    let pool = BufferPool::new(1 << 30);
    let frame = random_frame(7, PixelFormat::Yuv420p, 640, 360);
    let j = common::job(
        1280,
        720,
        vec![
            layer(frame.clone(), vec![Effect::Blur { radius: 3 }]),
            layer(frame, vec![]),
        ],
    );
    let picture = fast::render_picture(&j, Some(&pool)).expect("render");
    let stats = pool.stats();
    let (scratch_at_peak, _) = stats.peak_classes[2];
    assert_eq!(scratch_at_peak, fast::scratch_bytes(&j));
    assert!(
        fast::scratch_bytes(&j) >= 3 * 1280 * 720 * 8,
        "{}",
        fast::scratch_bytes(&j)
    );
    assert_eq!(stats.class(PoolClass::EffectScratch).in_use_bytes, 0);
    assert_eq!(
        stats.class(PoolClass::Frames).in_use_bytes,
        picture.size_bytes()
    );
}

/// The working images' buffers a render keeps for the next one stay in the pool that the
/// render was given, counted in its budget as idle effect scratch: the next render reuses
/// them (same pictures, no new buffers), pressure frees them, and a pool too small to keep
/// them frees them at once.
#[test]
fn kept_working_images_are_counted_in_the_pool_and_trimmed_with_it() {
    use framelock_engine::memory::{BufferPool, PoolClass};
    let frame = random_frame(11, PixelFormat::Yuv420p, 322, 182);
    let j = common::job(
        322,
        182,
        vec![
            layer(frame.clone(), vec![Effect::Blur { radius: 3 }, transform()]),
            layer(frame, vec![Effect::Sharpen { amount: 0.4 }]),
        ],
    );
    let image = 322 * 182 * 4 * size_of::<u16>();
    let pool = BufferPool::new(1 << 30);
    let first = fast::render_picture(&j, Some(&pool)).expect("render");
    let after_first = pool.stats().class(PoolClass::EffectScratch);
    assert_eq!(after_first.in_use_bytes, 0);
    assert!(after_first.allocations >= 2, "{after_first:?}");
    assert!(
        after_first.idle_bytes >= 2 * image && after_first.idle_bytes.is_multiple_of(image),
        "{after_first:?}"
    );
    assert_eq!(
        pool.accounted_bytes(),
        after_first.idle_bytes + first.size_bytes()
    );

    let second = fast::render_picture(&j, Some(&pool)).expect("render");
    let after_second = pool.stats().class(PoolClass::EffectScratch);
    assert_eq!(after_second.allocations, after_first.allocations);
    assert!(after_second.reuses >= after_first.allocations);
    assert_eq!(after_second.idle_bytes, after_first.idle_bytes);
    assert_eq!(second.planes[0], first.planes[0]);
    let without_pool = fast::render_picture(&j, None).expect("render");
    assert_eq!(without_pool.planes[0], first.planes[0]);

    // Pressure: the pool trims its idle buffers, these included.
    pool.trim_to(first.size_bytes() + second.size_bytes());
    assert_eq!(pool.stats().class(PoolClass::EffectScratch).idle_bytes, 0);

    // A limit below one working image: nothing is kept, the picture is the same.
    let small = BufferPool::new(image - 1);
    let tight = fast::render_picture(&j, Some(&small)).expect("render");
    let s = small.stats().class(PoolClass::EffectScratch);
    assert_eq!((s.idle_bytes, s.in_use_bytes), (0, 0));
    assert!(s.frees >= 2, "{s:?}");
    assert_eq!(tight.planes[0], first.planes[0]);
}
