// Planar Y'CbCr (8- or 10-bit; 4:2:0, 4:2:2 or 4:4:4) -> RGBA (alpha 1): a frame's first
// pass, with the grades that follow the conversion fused in (`shaders/include/grade.wgsl`).
// The planes are uploaded as-is, one after another, each at a 4-byte-aligned offset.
// Chroma is replicated over its block (nearest), as the CPU path's converter does.
// `main` writes the work image; `to_frame` is the whole frame in one pass when the frame's
// last layer has nothing but grades: it blends the layer onto black or onto the tracks
// beneath (`shaders/include/blend.wgsl`) and packs RGBA8 as `pack_rgba8.wgsl` does.
// Each invocation makes a quad of four pixels (`shaders/include/pixel.wgsl`).

// Specialised per pipeline (override constants, engine/src/gpu/kernels.rs): a software adapter
// (lavapipe) runs every branch's body with its lanes masked off and every loop's body once
// more than it repeats, so work a frame does not have is compiled out rather than skipped.
// The chain has grades (at least one).
override GRADED: bool = true;
// Two bytes per sample (else one).
override WIDE: bool = false;
// `to_frame` blends onto `under` (else onto black).
override UNDER: bool = false;
// The width is a multiple of 4: a quad never wraps, its samples of each plane lie in one
// aligned word (two for 10-bit luma and 10-bit 4:4:4 chroma), read whole.
override ROWS4: bool = false;

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
// Work image and tracks beneath: two packed pixels (`shaders/include/pixel.wgsl`) each.
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> under: array<vec4<u32>>;
// RGBA8: four pixels each.
@group(0) @binding(4) var<storage, read_write> out: array<vec4<u32>>;

// Sample `index` of the plane at byte `offset` (a 16-bit sample never straddles a word: the
// planes start at multiples of 4 and its byte is even).
fn sample_at(offset: u32, index: u32) -> f32 {
    if WIDE {
        let b = offset + index * 2u;
        return f32((src[b >> 2u] >> ((b & 2u) * 8u)) & 0xffffu);
    }
    let b = offset + index;
    return f32((src[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu);
}

// Four samples of the plane at byte `offset` from sample `first`, `first + step[k]` for sample
// k (ROWS4: they lie in the word of `first` and, for 8 bytes, the next one).
fn run_at(offset: u32, first: u32, step: vec4<u32>) -> vec4<f32> {
    var bytes = 1u;
    var mask = 0xffu;
    if WIDE {
        bytes = 2u;
        mask = 0xffffu;
    }
    let b = offset + first * bytes;
    let w0 = src[b >> 2u];
    var w1 = w0;
    if WIDE {
        w1 = src[(b >> 2u) + 1u];
    }
    let at = vec4<u32>(b & 3u) + step * bytes;
    let lo = (vec4<u32>(w0) >> ((at & vec4<u32>(3u)) * 8u)) & vec4<u32>(mask);
    let hi = (vec4<u32>(w1) >> ((at & vec4<u32>(3u)) * 8u)) & vec4<u32>(mask);
    return vec4<f32>(select(lo, hi, at >= vec4<u32>(4u)));
}

// Samples of the four pixels from `i0` (in the picture's pixels as one line): luma, Cb, Cr.
struct Quad {
    y: vec4<f32>,
    cb: vec4<f32>,
    cr: vec4<f32>,
}

fn quad(i0: u32) -> Quad {
    var q: Quad;
    let w = p.size.x;
    if ROWS4 {
        let x = i0 % w;
        let c = ((i0 / w) >> p.shift.y) * p.size.z + (x >> p.shift.x);
        let k = vec4<u32>(0u, 1u, 2u, 3u);
        let ck = k >> vec4<u32>(p.shift.x);
        q.y = run_at(p.offsets.x, i0, k);
        q.cb = run_at(p.offsets.y, c, ck);
        q.cr = run_at(p.offsets.z, c, ck);
    } else {
        let s0 = samples(i0);
        let s1 = samples(i0 + 1u);
        let s2 = samples(i0 + 2u);
        let s3 = samples(i0 + 3u);
        q.y = vec4<f32>(s0.x, s1.x, s2.x, s3.x);
        q.cb = vec4<f32>(s0.y, s1.y, s2.y, s3.y);
        q.cr = vec4<f32>(s0.z, s1.z, s2.z, s3.z);
    }
    return q;
}

// Luma, Cb and Cr of pixel `i` alone.
fn samples(i: u32) -> vec3<f32> {
    let x = i % p.size.x;
    let c = ((i / p.size.x) >> p.shift.y) * p.size.z + (x >> p.shift.x);
    return vec3<f32>(
        sample_at(p.offsets.x, i),
        sample_at(p.offsets.y, c),
        sample_at(p.offsets.z, c),
    );
}

// One pixel from its samples, converted and graded.
fn pixel(ys: f32, cbs: f32, crs: f32) -> vec3<f32> {
    let luma = (ys - p.range.x) * p.range.y;
    let cb = (cbs - p.range.z) * p.range.w;
    let cr = (crs - p.range.z) * p.range.w;
    let r = luma + p.matrix.x * cr;
    let g = luma - p.matrix.y * cb - p.matrix.z * cr;
    let b = luma + p.matrix.w * cb;
    var rgb = clamp(vec3<f32>(r, g, b), vec3<f32>(0.0), vec3<f32>(1.0));
    if GRADED {
        rgb = grades(rgb, p.size.w);
    }
    return rgb;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i0 = quad_first(id);
    if i0 >= p.size.x * p.size.y {
        return;
    }
    let q = quad(i0);
    let c0 = pack_px(vec4<f32>(pixel(q.y.x, q.cb.x, q.cr.x), 1.0));
    let c1 = pack_px(vec4<f32>(pixel(q.y.y, q.cb.y, q.cr.y), 1.0));
    let c2 = pack_px(vec4<f32>(pixel(q.y.z, q.cb.z, q.cr.z), 1.0));
    let c3 = pack_px(vec4<f32>(pixel(q.y.w, q.cb.w, q.cr.w), 1.0));
    dst[i0 / 2u] = vec4<u32>(c0, c1);
    dst[i0 / 2u + 1u] = vec4<u32>(c2, c3);
}

// Pixel `k` of the quad blended onto `d` (packed), as RGBA8.
fn onto(d: vec2<u32>, c: vec3<f32>) -> u32 {
    var under_px = vec4<f32>(0.0);
    if UNDER {
        under_px = unpack_px(d);
    }
    let o = blend(under_px, vec4<f32>(c, 1.0), p.shift.w, p.blend.x);
    return pack4x8unorm(vec4<f32>(o.rgb, 1.0));
}

@compute @workgroup_size(16, 16, 1)
fn to_frame(@builtin(global_invocation_id) id: vec3<u32>) {
    let i0 = quad_first(id);
    if i0 >= p.size.x * p.size.y {
        return;
    }
    let q = quad(i0);
    var d0 = vec4<u32>(0u);
    var d1 = vec4<u32>(0u);
    if UNDER {
        d0 = under[i0 / 2u];
        d1 = under[i0 / 2u + 1u];
    }
    out[i0 / 4u] = vec4<u32>(
        onto(d0.xy, pixel(q.y.x, q.cb.x, q.cr.x)),
        onto(d0.zw, pixel(q.y.y, q.cb.y, q.cr.y)),
        onto(d1.xy, pixel(q.y.z, q.cb.z, q.cr.z)),
        onto(d1.zw, pixel(q.y.w, q.cb.w, q.cr.w)),
    );
}
