// A pixel of a work image: RGBA as four 16-bit unorm values in two words, R | G << 16 then
// B | A << 16 (every value a kernel writes is in 0..1). Half the bytes of `vec4<f32>`, and
// on a software adapter (lavapipe) half the per-lane loads and stores, which are what it pays
// for; 1/65535 steps are far inside the 1/255 the GPU path is held to. The engine appends
// this file to every kernel that reads or writes work images.

fn unpack_px(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16unorm(w.x), unpack2x16unorm(w.y));
}

fn pack_px(c: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(pack2x16unorm(c.xy), pack2x16unorm(c.zw));
}
