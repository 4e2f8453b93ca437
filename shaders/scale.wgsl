// Separable resampling with precomputed weights (bilinear for upscaling, area / box for
// downscaling: the host computes them exactly as the CPU path's resizer does).
// `horizontal` resamples rows (src w -> dst w, same height), `vertical` columns.
//
// Weights buffer: per output index, `window + 2` words: first source index, tap count, then
// `window` f32 weights (as bits).

struct Params {
    // src width, src height, dst width, dst height
    size: vec4<u32>,
    // window, unused...
    window: vec4<u32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).
@group(0) @binding(3) var<storage, read> weights: array<u32>;

@compute @workgroup_size(16, 16, 1)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if x >= p.size.z || y >= p.size.y {
        return;
    }
    let rec = x * (p.window.x + 2u);
    let first = weights[rec];
    let count = weights[rec + 1u];
    var acc = vec4<f32>(0.0);
    // Tested at the bottom (see sharpen.wgsl); an output with no taps adds its record's first
    // weight word, 0.
    var k = 0u;
    loop {
        acc += bitcast<f32>(weights[rec + 2u + k]) * ld(y * p.size.x + first + k);
        k++;
        if k >= count {
            break;
        }
    }
    st(y * p.size.z + x, acc);
}

@compute @workgroup_size(16, 16, 1)
fn vertical(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if x >= p.size.z || y >= p.size.w {
        return;
    }
    let rec = y * (p.window.x + 2u);
    let first = weights[rec];
    let count = weights[rec + 1u];
    var acc = vec4<f32>(0.0);
    // Tested at the bottom (see sharpen.wgsl); an output with no taps adds its record's first
    // weight word, 0.
    var k = 0u;
    loop {
        acc += bitcast<f32>(weights[rec + 2u + k]) * ld((first + k) * p.size.x + x);
        k++;
        if k >= count {
            break;
        }
    }
    st(y * p.size.z + x, acc);
}
