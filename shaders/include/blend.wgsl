// A layer (`s`) blended onto the tracks beneath (`d`), shared by `composite.wgsl` and the
// passes that fuse the last layer's composite into the frame's pack (`pack_rgba8.wgsl`,
// `yuv_to_rgba.wgsl`). The engine appends this file to those kernels.
// a = s.alpha * opacity; rgb = mix(d, f(d, s), a); alpha = a + d.alpha * (1 - a).
// f: 0 over (s), 1 add, 2 multiply, 3 screen.

fn blend(d: vec4<f32>, s: vec4<f32>, mode: u32, opacity: f32) -> vec4<f32> {
    var f = s.rgb;
    switch mode {
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
    let a = s.a * opacity;
    return vec4<f32>(mix(d.rgb, f, a), a + d.a * (1.0 - a));
}
