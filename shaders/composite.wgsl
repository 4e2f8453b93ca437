// Track composite: blends a layer (`src`) onto the tracks beneath (`dst`, in place); the
// blend itself is `shaders/include/blend.wgsl`.

struct Params {
    // width, height, mode
    size: vec4<u32>,
    // opacity
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    st(i, blend(ld_dst(i), ld(i), p.size.z, p.a.x));
}
