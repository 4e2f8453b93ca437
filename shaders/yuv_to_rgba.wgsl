// Planar Y'CbCr (8- or 10-bit; 4:2:0, 4:2:2 or 4:4:4) -> RGBA (f32, alpha 1): a frame's first
// pass, with the grades that follow the conversion fused in (`shaders/include/grade.wgsl`).
// The planes are uploaded as-is, one after another, each at a 4-byte-aligned offset.
// Chroma is replicated over its block (nearest), as the CPU path's converter does.
// `main` writes the image; `to_frame` is the whole frame in one pass when the frame's last
// layer has nothing but grades: it blends the layer onto black or onto the tracks beneath
// (`shaders/include/blend.wgsl`) and packs RGBA8 as `pack_rgba8.wgsl` does.

// Specialised per pipeline (override constants, engine/src/gpu/kernels.rs): a software adapter
// (lavapipe) runs every branch's body with its lanes masked off and every loop's body once
// more than it repeats, so work a frame does not have is compiled out rather than skipped.
// The chain has grades (at least one).
override GRADED: bool = true;
// Two bytes per sample (else one).
override WIDE: bool = false;
// `to_frame` blends onto `under` (else onto black).
override UNDER: bool = false;

struct Params {
    // width, height, chroma width, grades in the chain (0..=12; at least 1 when GRADED)
    size: vec4<u32>,
    // byte offsets of Y, U, V; bytes per sample (1 or 2, as WIDE says)
    offsets: vec4<u32>,
    // chroma shift x, chroma shift y, unused (UNDER says onto what), blend mode
    shift: vec4<u32>,
    // luma offset, luma scale, chroma offset, chroma scale (sample -> normalised)
    range: vec4<f32>,
    // R from Cr, G from Cb, G from Cr, B from Cb
    matrix: vec4<f32>,
    // to_frame: the layer's opacity
    blend: vec4<f32>,
    g: array<Grade, 12>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> under: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn sample_at(offset: u32, index: u32) -> f32 {
    if WIDE {
        let b = offset + index * 2u;
        return f32(byte_at(b) | (byte_at(b + 1u) << 8u));
    }
    return f32(byte_at(offset + index));
}

// The pixel at (x, y), converted and graded.
fn pixel(x: u32, y: u32) -> vec3<f32> {
    let c = (y >> p.shift.y) * p.size.z + (x >> p.shift.x);
    let luma = (sample_at(p.offsets.x, y * p.size.x + x) - p.range.x) * p.range.y;
    let cb = (sample_at(p.offsets.y, c) - p.range.z) * p.range.w;
    let cr = (sample_at(p.offsets.z, c) - p.range.z) * p.range.w;
    let r = luma + p.matrix.x * cr;
    let g = luma - p.matrix.y * cb - p.matrix.z * cr;
    let b = luma + p.matrix.w * cb;
    var rgb = clamp(vec3<f32>(r, g, b), vec3<f32>(0.0), vec3<f32>(1.0));
    if GRADED {
        var k = 0u;
        loop {
            rgb = grade(rgb, p.g[k]);
            k++;
            if k >= p.size.w {
                break;
            }
        }
    }
    return rgb;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    dst[id.y * p.size.x + id.x] = pack_px(vec4<f32>(pixel(id.x, id.y), 1.0));
}

@compute @workgroup_size(16, 16, 1)
fn to_frame(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    var d = vec4<f32>(0.0);
    if UNDER {
        d = unpack_px(under[i]);
    }
    let c = blend(d, vec4<f32>(pixel(id.x, id.y), 1.0), p.shift.w, p.blend.x);
    out[i] = pack4x8unorm(vec4<f32>(c.rgb, 1.0));
}
