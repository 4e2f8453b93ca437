// The finished picture to RGBA8 for readback: each channel clamped to 0..1 and rounded
// (`pack4x8unorm`), alpha opaque (a finished frame), one u32 per pixel, rows tightly packed.
// As the frame's last pass it may also finish the last layer: the grades at the end of its
// stack (`shaders/include/grade.wgsl`), then its composite onto black or onto the tracks
// beneath (`shaders/include/blend.wgsl`), so that layer is never written back as an image.

struct Params {
    // width, height, grades in the chain (0..=14), 0 = pack `src` as it is, 1 = blend it
    // onto black, 2 = blend it onto `under`
    size: vec4<u32>,
    // blend mode
    mode: vec4<u32>,
    // opacity
    blend: vec4<f32>,
    g: array<Grade, 14>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> under: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    var c = src[i];
    for (var k = 0u; k < p.size.z; k++) {
        c = vec4<f32>(grade(c.rgb, p.g[k]), c.a);
    }
    if p.size.w != 0u {
        var d = vec4<f32>(0.0);
        if p.size.w == 2u {
            d = under[i];
        }
        c = blend(d, c, p.mode.x, p.blend.x);
    }
    out[i] = pack4x8unorm(vec4<f32>(c.rgb, 1.0));
}
