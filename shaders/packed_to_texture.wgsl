// The shared-device output (`engine/src/gpu/host.rs`): a finished effects frame's packed RGBA8
// pixels (the last pass's storage buffer, one u32 a pixel, R in the low byte) copied into an
// RGBA8 texture on the same device, the host's, in the frame's own submission: the host
// draws the engine's result with no readback, upload or conversion. (A buffer-to-texture
// copy would need rows padded to 256 bytes; this pass takes any width.)

@group(0) @binding(0) var<storage, read> packed: array<u32>;
@group(0) @binding(1) var out: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(out);
    if (id.x >= size.x || id.y >= size.y) {
        return;
    }
    // unpack4x8unorm gives k / 255 per byte, which the rgba8unorm store turns back into k.
    textureStore(out, vec2<i32>(id.xy), unpack4x8unorm(packed[id.y * size.x + id.x]));
}
