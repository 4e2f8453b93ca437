// Gaussian blur as two separable passes (`horizontal`, then `vertical`), edges clamped.
// Weights (radius + 1 of them, normalised over the whole kernel) come from the host.

struct Params {
    // width, height, radius, unused
    size: vec4<u32>,
    // weights[0..=radius], four per vec4
    w: array<vec4<f32>, 16>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

fn weight(k: u32) -> f32 {
    return p.w[k >> 2u][k & 3u];
}

@compute @workgroup_size(16, 16, 1)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = i32(p.size.x);
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let row = id.y * p.size.x;
    let x = i32(id.x);
    let r = i32(p.size.z);
    var acc = weight(0u) * src[row + id.x];
    for (var k = 1; k <= r; k++) {
        let left = u32(clamp(x - k, 0, w - 1));
        let right = u32(clamp(x + k, 0, w - 1));
        acc += weight(u32(k)) * (src[row + left] + src[row + right]);
    }
    dst[row + id.x] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn vertical(@builtin(global_invocation_id) id: vec3<u32>) {
    let h = i32(p.size.y);
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let y = i32(id.y);
    let r = i32(p.size.z);
    var acc = weight(0u) * src[id.y * p.size.x + id.x];
    for (var k = 1; k <= r; k++) {
        let up = u32(clamp(y - k, 0, h - 1));
        let down = u32(clamp(y + k, 0, h - 1));
        acc += weight(u32(k)) * (src[up * p.size.x + id.x] + src[down * p.size.x + id.x]);
    }
    dst[id.y * p.size.x + id.x] = acc;
}
