// Gaussian blur as two separable passes (`horizontal`, then `vertical`), edges clamped.
// Weights (radius + 1 of them, normalised over the whole kernel) come from the host.
// Each invocation writes a run of RUN pixels along its pass's axis and reads each source
// pixel of the run's window once, adding it to every output it reaches: RUN + 2r loads for
// RUN outputs instead of RUN * (2r + 1). Loads are what a software adapter (lavapipe) pays
// for; a GPU's caches do not mind either way.

const RUN: i32 = 8;

struct Params {
    // width, height, radius, unused
    size: vec4<u32>,
    // weights[0..=radius], four per vec4
    w: array<vec4<f32>, 16>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

// The weight of a tap `d` pixels from the output (0 beyond the radius).
fn wt(d: i32) -> f32 {
    let k = abs(d);
    if k > i32(p.size.z) {
        return 0.0;
    }
    return p.w[u32(k) >> 2u][u32(k) & 3u];
}

// The run of outputs `o + j * step` (j < RUN, before `n` along the axis) from the source
// pixels `o + s * step`, s in -r .. RUN + r, the axis's index clamped to 0..n-1.
fn run(base: u32, at: i32, n: i32, step: u32) {
    let r = i32(p.size.z);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    // The weights of this source pixel for outputs 0..7, `wt(d - j)`: each step shifts them
    // along and reads one new weight (a weight read costs a software adapter a gather).
    var w0 = wt(-r);
    var w1 = 0.0;
    var w2 = 0.0;
    var w3 = 0.0;
    var w4 = 0.0;
    var w5 = 0.0;
    var w6 = 0.0;
    var w7 = 0.0;
    // Tested at the bottom: a software adapter would run a top-tested loop's body once more.
    var d = -r;
    loop {
        let v = ld(base + u32(clamp(at + d, 0, n - 1)) * step);
        a0 += w0 * v;
        a1 += w1 * v;
        a2 += w2 * v;
        a3 += w3 * v;
        a4 += w4 * v;
        a5 += w5 * v;
        a6 += w6 * v;
        a7 += w7 * v;
        d++;
        if d >= RUN + r {
            break;
        }
        w7 = w6;
        w6 = w5;
        w5 = w4;
        w4 = w3;
        w3 = w2;
        w2 = w1;
        w1 = w0;
        w0 = wt(d);
    }
    let left = n - at;
    let o = base + u32(at) * step;
    st(o, a0);
    if left > 1 { st(o + step, a1); }
    if left > 2 { st(o + 2u * step, a2); }
    if left > 3 { st(o + 3u * step, a3); }
    if left > 4 { st(o + 4u * step, a4); }
    if left > 5 { st(o + 5u * step, a5); }
    if left > 6 { st(o + 6u * step, a6); }
    if left > 7 { st(o + 7u * step, a7); }
}

@compute @workgroup_size(16, 16, 1)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = i32(id.x) * RUN;
    if x >= i32(p.size.x) || id.y >= p.size.y {
        return;
    }
    run(id.y * p.size.x, x, i32(p.size.x), 1u);
}

@compute @workgroup_size(16, 16, 1)
fn vertical(@builtin(global_invocation_id) id: vec3<u32>) {
    let y = i32(id.y) * RUN;
    if id.x >= p.size.x || y >= i32(p.size.y) {
        return;
    }
    run(id.x, y, i32(p.size.y), p.size.x);
}
