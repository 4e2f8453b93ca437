// The finished picture to RGBA8 for readback: each channel clamped to 0..1 and rounded
// (`pack4x8unorm`), alpha opaque (a finished frame), one u32 per pixel, rows tightly packed.

struct Params {
    // width, height
    size: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    dst[i] = pack4x8unorm(vec4<f32>(src[i].rgb, 1.0));
}
