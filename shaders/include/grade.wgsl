// One colour grade (lift/gain, brightness, contrast, saturation, gamma; RGB clamped to 0..1),
// shared by every kernel that runs a chain of them: `grade.wgsl` on an image, and the first
// and last passes of a frame (`yuv_to_rgba.wgsl`, `pack_rgba8.wgsl`), which fuse the grades
// next to them. The engine appends this file to those kernels.

struct Grade {
    // brightness, contrast, saturation, 1/gamma
    a: vec4<f32>,
    // lift, gain
    b: vec4<f32>,
}

fn grade(rgb: vec3<f32>, g: Grade) -> vec3<f32> {
    var c = rgb;
    c = (c + g.b.x * (vec3<f32>(1.0) - c)) * g.b.y;
    c = c + vec3<f32>(g.a.x);
    c = (c - vec3<f32>(0.5)) * g.a.y + vec3<f32>(0.5);
    let luma = dot(c, vec3<f32>(0.2126, 0.7152, 0.0722));
    c = vec3<f32>(luma) + (c - vec3<f32>(luma)) * g.a.z;
    return pow(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), vec3<f32>(g.a.w));
}

// The first `n` grades (at least one) of the kernel's chain, `p.g` (every kernel this file is
// appended to declares it). The loop is tested at the bottom: a software adapter (lavapipe)
// runs a top-tested loop's body once more than it repeats.
fn grades(rgb: vec3<f32>, n: u32) -> vec3<f32> {
    var c = rgb;
    var k = 0u;
    loop {
        c = grade(c, p.g[k]);
        k++;
        if k >= n {
            break;
        }
    }
    return c;
}
