// Sharpen: unsharp mask over a 3×3 box, `x + amount * (x - mean)`, edges clamped, RGB
// clamped to 0..1, alpha kept. Each invocation writes a block of COLS columns by RUN rows,
// sliding the boxes down it: each source pixel of the block's (COLS + 2) × (RUN + 2) window
// is read once (a software adapter pays per load; see blur.wgsl).

const RUN: u32 = 8u;
const COLS: u32 = 4u;

struct Params {
    // width, height
    size: vec4<u32>,
    // amount
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

// Row `y` (clamped) of the block's columns x0 .. x0 + 3: each column's three-pixel sum
// (`s`) and its middle pixel (`m`).
struct Row {
    s0: vec4<f32>,
    s1: vec4<f32>,
    s2: vec4<f32>,
    s3: vec4<f32>,
    m0: vec4<f32>,
    m1: vec4<f32>,
    m2: vec4<f32>,
    m3: vec4<f32>,
}

fn row(x0: u32, y: i32) -> Row {
    let base = u32(clamp(y, 0, i32(p.size.y) - 1)) * p.size.x;
    let last = p.size.x - 1u;
    let l = ld(base + u32(max(i32(x0) - 1, 0)));
    let a = ld(base + min(x0, last));
    let b = ld(base + min(x0 + 1u, last));
    let c = ld(base + min(x0 + 2u, last));
    let d = ld(base + min(x0 + 3u, last));
    let r = ld(base + min(x0 + 4u, last));
    var o: Row;
    o.s0 = l + a + b;
    o.s1 = a + b + c;
    o.s2 = b + c + d;
    o.s3 = c + d + r;
    o.m0 = a;
    o.m1 = b;
    o.m2 = c;
    o.m3 = d;
    return o;
}

fn sharpened(px: vec4<f32>, sum: vec4<f32>) -> vec4<f32> {
    let c = px.rgb + p.a.x * (px.rgb - sum.rgb / 9.0);
    return vec4<f32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), px.a);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x0 = id.x * COLS;
    let y0 = id.y * RUN;
    if x0 >= p.size.x || y0 >= p.size.y {
        return;
    }
    let left = p.size.x - x0;
    var above = row(x0, i32(y0) - 1);
    var here = row(x0, i32(y0));
    let end = min(y0 + RUN, p.size.y);
    // Tested at the bottom (y0 < end): a software adapter would run a top-tested loop's body
    // once more.
    var y = y0;
    loop {
        let below = row(x0, i32(y) + 1);
        let i = y * p.size.x + x0;
        st(i, sharpened(here.m0, above.s0 + here.s0 + below.s0));
        if left > 1u {
            st(i + 1u, sharpened(here.m1, above.s1 + here.s1 + below.s1));
        }
        if left > 2u {
            st(i + 2u, sharpened(here.m2, above.s2 + here.s2 + below.s2));
        }
        if left > 3u {
            st(i + 3u, sharpened(here.m3, above.s3 + here.s3 + below.s3));
        }
        y++;
        if y >= end {
            break;
        }
        above = here;
        here = below;
    }
}
