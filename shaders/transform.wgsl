// Transform: scale, move and rotate about the picture's centre. Each output pixel maps back
// into the source through the inverse transform (the host passes its 2×3 matrix) and is
// sampled bilinearly; taps outside the source are transparent, so edges fade smoothly.

struct Params {
    // width, height
    size: vec4<u32>,
    // inverse matrix row 0: a, b, c  (sx = a*x + b*y + c, pixel centres)
    m0: vec4<f32>,
    // inverse matrix row 1: d, e, f
    m1: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

fn tap(x: i32, y: i32) -> vec4<f32> {
    if x < 0 || y < 0 || x >= i32(p.size.x) || y >= i32(p.size.y) {
        return vec4<f32>(0.0);
    }
    return ld(u32(y) * p.size.x + u32(x));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let x = f32(id.x) + 0.5;
    let y = f32(id.y) + 0.5;
    let sx = p.m0.x * x + p.m0.y * y + p.m0.z - 0.5;
    let sy = p.m1.x * x + p.m1.y * y + p.m1.z - 0.5;
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let top = mix(tap(ix, iy), tap(ix + 1, iy), fx);
    let bottom = mix(tap(ix, iy + 1), tap(ix + 1, iy + 1), fx);
    st(id.y * p.size.x + id.x, mix(top, bottom, fy));
}
