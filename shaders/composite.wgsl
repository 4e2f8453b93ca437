// Track composite: blends a layer (`src`) onto the tracks beneath (`dst`, in place).
// a = src.alpha * opacity; rgb = mix(dst, f(dst, src), a); alpha = a + dst.alpha * (1 - a).
// f: 0 over (src), 1 add, 2 multiply, 3 screen.

struct Params {
    // width, height, mode
    size: vec4<u32>,
    // opacity
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    let d = dst[i];
    let s = src[i];
    var f = s.rgb;
    switch p.size.z {
        case 1u: {
            f = min(d.rgb + s.rgb, vec3<f32>(1.0));
        }
        case 2u: {
            f = d.rgb * s.rgb;
        }
        case 3u: {
            f = vec3<f32>(1.0) - (vec3<f32>(1.0) - d.rgb) * (vec3<f32>(1.0) - s.rgb);
        }
        default: {}
    }
    let a = s.a * p.a.x;
    dst[i] = vec4<f32>(mix(d.rgb, f, a), a + d.a * (1.0 - a));
}
