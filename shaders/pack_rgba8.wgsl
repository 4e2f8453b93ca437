// The finished picture to RGBA8 for readback: each channel clamped to 0..1 and rounded
// (`pack4x8unorm`), alpha opaque (a finished frame), one u32 per pixel, rows tightly packed.
// As the frame's last pass it may also finish the last layer: the grades at the end of its
// stack (`shaders/include/grade.wgsl`), then its composite onto black or onto the tracks
// beneath (`shaders/include/blend.wgsl`), so that layer is never written back as an image.
// Each invocation packs a quad of four pixels (`shaders/include/pixel.wgsl`).

// Specialised per pipeline (override constants, engine/src/gpu/kernels.rs): a software adapter
// (lavapipe) runs every branch's body with its lanes masked off and every loop's body once
// more than it repeats, so work a frame does not have is compiled out rather than skipped.
// The chain has grades (at least one).
override GRADED: bool = true;
// 0: pack `src` as it is; 1: blend it onto black; 2: blend it onto `under`.
override ONTO: u32 = 0u;

struct Params {
    // width, height, grades in the chain (0..=14; at least 1 when GRADED), unused
    size: vec4<u32>,
    // blend mode
    mode: vec4<u32>,
    // opacity
    blend: vec4<f32>,
    g: array<Grade, 14>,
}

@group(0) @binding(0) var<uniform> p: Params;
// Two packed pixels each (`shaders/include/pixel.wgsl`).
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> under: array<vec4<u32>>;
// RGBA8: four pixels each.
@group(0) @binding(4) var<storage, read_write> out: array<vec4<u32>>;

// One pixel (`s` packed, `u` the packed pixel beneath) finished as RGBA8.
fn finish(s: vec2<u32>, u: vec2<u32>) -> u32 {
    var c = unpack_px(s);
    if GRADED {
        c = vec4<f32>(grades(c.rgb, p.size.z), c.a);
    }
    if ONTO != 0u {
        var d = vec4<f32>(0.0);
        if ONTO == 2u {
            d = unpack_px(u);
        }
        c = blend(d, c, p.mode.x, p.blend.x);
    }
    return pack4x8unorm(vec4<f32>(c.rgb, 1.0));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i0 = quad_first(id);
    if i0 >= p.size.x * p.size.y {
        return;
    }
    let a = src[i0 / 2u];
    let b = src[i0 / 2u + 1u];
    var ua = vec4<u32>(0u);
    var ub = vec4<u32>(0u);
    if ONTO == 2u {
        ua = under[i0 / 2u];
        ub = under[i0 / 2u + 1u];
    }
    out[i0 / 4u] = vec4<u32>(
        finish(a.xy, ua.xy),
        finish(a.zw, ua.zw),
        finish(b.xy, ub.xy),
        finish(b.zw, ub.zw),
    );
}
