// Cross-dissolve: `dst = mix(dst, src, t)` (the picture beneath, in `dst`, fades into the
// incoming layer as t goes 0 -> 1).

struct Params {
    // width, height
    size: vec4<u32>,
    // t
    a: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    dst[i] = mix(dst[i], src[i], p.a.x);
}
