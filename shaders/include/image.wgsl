// The bindings every image kernel shares; the engine appends this file to each of them
// (after its body, so line numbers in errors stay those of the kernel's own file: WGSL
// declarations may come in any order). Each kernel declares its own `struct Params`.
// Images are `array<vec2<u32>>`, one packed pixel each (`shaders/include/pixel.wgsl`), rows
// tightly packed (see engine/src/gpu/mod.rs); kernels read them with `ld` and write `st`.
// The two conversion kernels (yuv_to_rgba reads bytes, pack_rgba8 writes them) declare
// their own bindings instead.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<u32>>;

// Source pixel `i`.
fn ld(i: u32) -> vec4<f32> {
    return unpack_px(src[i]);
}

// Destination pixel `i` (kernels that blend in place read it back).
fn ld_dst(i: u32) -> vec4<f32> {
    return unpack_px(dst[i]);
}

fn st(i: u32, c: vec4<f32>) {
    dst[i] = pack_px(c);
}
