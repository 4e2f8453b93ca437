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
    for (var d = -r; d < RUN + r; d++) {
        let v = src[base + u32(clamp(at + d, 0, n - 1)) * step];
        a0 += wt(d) * v;
        a1 += wt(d - 1) * v;
        a2 += wt(d - 2) * v;
        a3 += wt(d - 3) * v;
        a4 += wt(d - 4) * v;
        a5 += wt(d - 5) * v;
        a6 += wt(d - 6) * v;
        a7 += wt(d - 7) * v;
    }
    let left = n - at;
    let o = base + u32(at) * step;
    dst[o] = a0;
    if left > 1 { dst[o + step] = a1; }
    if left > 2 { dst[o + 2u * step] = a2; }
    if left > 3 { dst[o + 3u * step] = a3; }
    if left > 4 { dst[o + 4u * step] = a4; }
    if left > 5 { dst[o + 5u * step] = a5; }
    if left > 6 { dst[o + 6u * step] = a6; }
    if left > 7 { dst[o + 7u * step] = a7; }
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
