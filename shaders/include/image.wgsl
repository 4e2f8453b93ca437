// The bindings every image kernel shares; the engine appends this file to each of them
// (after its body, so line numbers in errors stay those of the kernel's own file: WGSL
// declarations may come in any order). Each kernel declares its own `struct Params`.
// Images are `array<vec4<f32>>`, rows tightly packed (see engine/src/gpu/mod.rs).
// The two conversion kernels (yuv_to_rgba reads bytes, pack_rgba8 writes them) declare
// their own bindings instead.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
