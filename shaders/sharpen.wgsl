// Sharpen: unsharp mask over a 3×3 box, `x + amount * (x - mean)`, edges clamped, RGB
// clamped to 0..1, alpha kept. Each invocation writes a column run of RUN pixels, sliding
// the box down it: each source pixel of the run's 3 × (RUN + 2) window is read once (a
// software adapter pays per load; see blur.wgsl).

const RUN: u32 = 8u;

struct Params {
    // width, height
    size: vec4<u32>,
    // amount
    a: vec4<f32>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

// Row `y` (clamped) of the box around column x: the sum of its three pixels, and the middle.
fn row(xl: u32, x: u32, xr: u32, y: i32) -> array<vec4<f32>, 2> {
    let base = u32(clamp(y, 0, i32(p.size.y) - 1)) * p.size.x;
    let mid = ld(base + x);
    return array<vec4<f32>, 2>(ld(base + xl) + mid + ld(base + xr), mid);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let y0 = id.y * RUN;
    if id.x >= p.size.x || y0 >= p.size.y {
        return;
    }
    let x = id.x;
    let xl = u32(max(i32(x) - 1, 0));
    let xr = min(x + 1u, p.size.x - 1u);
    var above = row(xl, x, xr, i32(y0) - 1);
    var here = row(xl, x, xr, i32(y0));
    let end = min(y0 + RUN, p.size.y);
    // Tested at the bottom (y0 < end): a software adapter would run a top-tested loop's body
    // once more.
    var y = y0;
    loop {
        let below = row(xl, x, xr, i32(y) + 1);
        let px = here[1];
        let sum = above[0] + here[0] + below[0];
        let c = px.rgb + p.a.x * (px.rgb - sum.rgb / 9.0);
        st(y * p.size.x + x, vec4<f32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), px.a));
        y++;
        if y >= end {
            break;
        }
        above = here;
        here = below;
    }
}
