// Sharpen: unsharp mask over a 3×3 box, `x + amount * (x - mean)`, edges clamped, RGB
// clamped to 0..1, alpha kept.

struct Params {
    // width, height
    size: vec4<u32>,
    // amount
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let w = i32(p.size.x);
    let h = i32(p.size.y);
    var sum = vec3<f32>(0.0);
    for (var dy = -1; dy <= 1; dy++) {
        for (var dx = -1; dx <= 1; dx++) {
            let sx = u32(clamp(i32(id.x) + dx, 0, w - 1));
            let sy = u32(clamp(i32(id.y) + dy, 0, h - 1));
            sum += src[sy * p.size.x + sx].rgb;
        }
    }
    let px = src[id.y * p.size.x + id.x];
    let c = px.rgb + p.a.x * (px.rgb - sum / 9.0);
    dst[id.y * p.size.x + id.x] = vec4<f32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), px.a);
}
