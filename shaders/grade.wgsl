// Colour grade: lift/gain, brightness, contrast, saturation, gamma; RGB clamped to 0..1.

struct Params {
    // width, height
    size: vec4<u32>,
    // brightness, contrast, saturation, 1/gamma
    a: vec4<f32>,
    // lift, gain
    b: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    let px = src[i];
    var c = px.rgb;
    c = (c + p.b.x * (vec3<f32>(1.0) - c)) * p.b.y;
    c = c + vec3<f32>(p.a.x);
    c = (c - vec3<f32>(0.5)) * p.a.y + vec3<f32>(0.5);
    let luma = dot(c, vec3<f32>(0.2126, 0.7152, 0.0722));
    c = vec3<f32>(luma) + (c - vec3<f32>(luma)) * p.a.z;
    c = pow(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), vec3<f32>(p.a.w));
    dst[i] = vec4<f32>(c, px.a);
}
