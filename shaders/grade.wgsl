// Colour grades: a chain of consecutive grade effects in one pass (each is
// `shaders/include/grade.wgsl`), so a stack of grades reads and writes the image once.

struct Params {
    // width, height, grades in the chain (1..=15)
    size: vec4<u32>,
    g: array<Grade, 15>,
}

// Bindings: shaders/include/image.wgsl (p, src, dst).

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= p.size.x || id.y >= p.size.y {
        return;
    }
    let i = id.y * p.size.x + id.x;
    let px = ld(i);
    var c = px.rgb;
    // Tested at the bottom: a software adapter would run a top-tested loop's body once more.
    var k = 0u;
    loop {
        c = grade(c, p.g[k]);
        k++;
        if k >= p.size.z {
            break;
        }
    }
    st(i, vec4<f32>(c, px.a));
}
