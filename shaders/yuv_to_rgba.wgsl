// Planar Y'CbCr (8- or 10-bit; 4:2:0, 4:2:2 or 4:4:4) -> RGBA (f32, alpha 1).
// The planes are uploaded as-is, one after another, each at a 4-byte-aligned offset.
// Chroma is replicated over its block (nearest), as the CPU path's converter does.

struct Params {
    // width, height, chroma width, unused
    size: vec4<u32>,
    // byte offsets of Y, U, V; bytes per sample (1 or 2)
    offsets: vec4<u32>,
    // chroma shift x, chroma shift y, unused, unused
    shift: vec4<u32>,
    // luma offset, luma scale, chroma offset, chroma scale (sample -> normalised)
    range: vec4<f32>,
    // R from Cr, G from Cb, G from Cr, B from Cb
    matrix: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn sample_at(offset: u32, index: u32) -> f32 {
    if p.offsets.w == 2u {
        let b = offset + index * 2u;
        return f32(byte_at(b) | (byte_at(b + 1u) << 8u));
    }
    return f32(byte_at(offset + index));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if x >= p.size.x || y >= p.size.y {
        return;
    }
    let c = (y >> p.shift.y) * p.size.z + (x >> p.shift.x);
    let luma = (sample_at(p.offsets.x, y * p.size.x + x) - p.range.x) * p.range.y;
    let cb = (sample_at(p.offsets.y, c) - p.range.z) * p.range.w;
    let cr = (sample_at(p.offsets.z, c) - p.range.z) * p.range.w;
    let r = luma + p.matrix.x * cr;
    let g = luma - p.matrix.y * cb - p.matrix.z * cr;
    let b = luma + p.matrix.w * cb;
    dst[y * p.size.x + x] = vec4<f32>(clamp(vec3<f32>(r, g, b), vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
