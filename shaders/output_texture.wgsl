// The texture output (`engine/src/gpu/output.rs`): a presented picture's 8-bit Y'CbCr planes,
// uploaded as R8 textures on the host's own device, converted to the RGBA8 texture the host
// draws. Chroma is taken from the sample covering the pixel (no interpolation), as the CPU
// conversion (`Picture::to_rgba`) does.

struct Params {
    // Picture size in pixels.
    size: vec2<u32>,
    // log2 of the chroma subsampling (1, 1 for 4:2:0; 1, 0 for 4:2:2; 0, 0 for 4:4:4).
    chroma_shift: vec2<u32>,
    // Y offset, chroma offset, Y scale, chroma scale (8-bit code values to 0..1 / -0.5..0.5).
    range: vec4<f32>,
    // Cr to R, Cb to G, Cr to G, Cb to B.
    coeffs: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var y_plane: texture_2d<f32>;
@group(0) @binding(2) var u_plane: texture_2d<f32>;
@group(0) @binding(3) var v_plane: texture_2d<f32>;
@group(0) @binding(4) var out: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.size.x || id.y >= p.size.y) {
        return;
    }
    let at = vec2<i32>(id.xy);
    let c = vec2<i32>(id.xy >> p.chroma_shift);
    // Below-black codes read as black (the CPU conversion does the same).
    let y = max(textureLoad(y_plane, at, 0).r * 255.0 - p.range.x, 0.0) * p.range.z;
    let u = (textureLoad(u_plane, c, 0).r * 255.0 - p.range.y) * p.range.w;
    let v = (textureLoad(v_plane, c, 0).r * 255.0 - p.range.y) * p.range.w;
    let rgb = vec3<f32>(
        y + p.coeffs.x * v,
        y - p.coeffs.y * u - p.coeffs.z * v,
        y + p.coeffs.w * u,
    );
    textureStore(out, at, vec4<f32>(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0));
}
