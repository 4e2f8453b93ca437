// Cross-dissolve: `dst = mix(dst, src, t)` (the picture beneath, in `dst`, fades into the
// incoming layer as t goes 0 -> 1).

struct Params {
    // width, height
    size: vec4<u32>,
    // t
    a: vec4<f32>,
}

// Bindings: shaders/include/pointwise.wgsl (p, src, dst).

fn blended(d: vec2<u32>, s: vec2<u32>) -> vec2<u32> {
    return pack_px(mix(unpack_px(d), unpack_px(s), p.a.x));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i0 = quad_first(id);
    if i0 >= p.size.x * p.size.y {
        return;
    }
    let s0 = src[i0 / 2u];
    let s1 = src[i0 / 2u + 1u];
    let d0 = dst[i0 / 2u];
    let d1 = dst[i0 / 2u + 1u];
    dst[i0 / 2u] = vec4<u32>(blended(d0.xy, s0.xy), blended(d0.zw, s0.zw));
    dst[i0 / 2u + 1u] = vec4<u32>(blended(d1.xy, s1.xy), blended(d1.zw, s1.zw));
}
