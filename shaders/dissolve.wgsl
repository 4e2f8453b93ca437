// Cross-dissolve: `dst = mix(dst, src, t)` (the picture beneath, in `dst`, fades into the
// incoming layer as t goes 0 -> 1).

struct Params {
    // width, height
    size: vec4<u32>,
    // t
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    st(i, mix(ld_dst(i), ld(i), p.a.x));
}
