// Gaussian blur in one pass with a shared-memory tile (the seed's tile cache, generalised:
// a 16×16 workgroup loads its (16 + 2r)² neighbourhood once, radius r <= 8), edges clamped.
// Rows are blurred into a second shared tile, then columns: the same separable sum as
// blur.wgsl, without the round trip through memory between the passes.

const TILE: u32 = 16u;
const MAX_R: u32 = 8u;
const SPAN: u32 = 32u; // TILE + 2 * MAX_R

struct Params {
    size: vec4<u32>,
    w: array<vec4<f32>, 16>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

// Input tile: SPAN rows of SPAN; after the row pass, its first TILE columns hold the rows
// blurred, reusing the same memory (16 KiB is the portable workgroup storage limit).
var<workgroup> tile: array<vec4<f32>, 1024>;

fn weight(k: u32) -> f32 {
    return p.w[k >> 2u][k & 3u];
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let w = i32(p.size.x);
    let h = i32(p.size.y);
    let r = i32(p.size.z);
    let origin = vec2<i32>(group.xy * TILE) - vec2<i32>(r, r);
    let span = TILE + 2u * u32(r);
    // Load the neighbourhood, clamped at the picture's edges.
    for (var ty = local.y; ty < span; ty += TILE) {
        for (var tx = local.x; tx < span; tx += TILE) {
            let sx = clamp(origin.x + i32(tx), 0, w - 1);
            let sy = clamp(origin.y + i32(ty), 0, h - 1);
            tile[ty * SPAN + tx] = ld(u32(sy) * p.size.x + u32(sx));
        }
    }
    workgroupBarrier();
    // Row pass: for every loaded row, the TILE output columns.
    var rows: array<vec4<f32>, 2>;
    var n = 0u;
    for (var ty = local.y; ty < span; ty += TILE) {
        let base = ty * SPAN + local.x + u32(r);
        var acc = weight(0u) * tile[base];
        for (var k = 1u; k <= u32(r); k++) {
            acc += weight(k) * (tile[base - k] + tile[base + k]);
        }
        rows[n] = acc;
        n++;
    }
    workgroupBarrier();
    n = 0u;
    for (var ty = local.y; ty < span; ty += TILE) {
        tile[ty * SPAN + local.x] = rows[n];
        n++;
    }
    workgroupBarrier();
    // Column pass.
    let x = group.x * TILE + local.x;
    let y = group.y * TILE + local.y;
    if x >= p.size.x || y >= p.size.y {
        return;
    }
    let base = (local.y + u32(r)) * SPAN + local.x;
    var acc = weight(0u) * tile[base];
    for (var k = 1u; k <= u32(r); k++) {
        acc += weight(k) * (tile[base - k * SPAN] + tile[base + k * SPAN]);
    }
    st(y * p.size.x + x, acc);
}
