// Colour grades: a chain of consecutive grade effects in one pass (each is
// `shaders/include/grade.wgsl`), so a stack of grades reads and writes the image once.

struct Params {
    // width, height, grades in the chain (1..=15)
    size: vec4<u32>,
    g: array<Grade, 15>,
}

// Bindings: shaders/include/pointwise.wgsl (p, src, dst).

// One packed pixel graded.
fn graded(w: vec2<u32>) -> vec2<u32> {
    let px = unpack_px(w);
    return pack_px(vec4<f32>(grades(px.rgb, p.size.z), px.a));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i0 = quad_first(id);
    if i0 >= p.size.x * p.size.y {
        return;
    }
    let a = src[i0 / 2u];
    let b = src[i0 / 2u + 1u];
    dst[i0 / 2u] = vec4<u32>(graded(a.xy), graded(a.zw));
    dst[i0 / 2u + 1u] = vec4<u32>(graded(b.xy), graded(b.zw));
}
