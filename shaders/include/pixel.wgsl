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

// Kernels that work pixel by pixel make four pixels an invocation, the picture's pixels
// taken as one line (a quad may wrap from one row to the next), reading and writing them
// as whole `vec4<u32>`s: a software adapter pays per load and store instruction. The host
// rounds every image buffer up to whole quads, so the last quad's spare pixels land in
// padding. The dispatch grid is QUAD_ROW quads wide (the host's `quad_grid`).
const QUAD_ROW: u32 = 1024u;

// The first pixel of invocation `id`'s quad (past the picture's end for spare invocations).
fn quad_first(id: vec3<u32>) -> u32 {
    return (id.y * QUAD_ROW + id.x) * 4u;
}
