// The bindings of the kernels that work pixel by pixel (grade chains, composite, dissolve);
// the engine appends this file to each of them. They make a quad of four pixels an
// invocation (`shaders/include/pixel.wgsl`), so an image is `array<vec4<u32>>`, two packed
// pixels each. Each kernel declares its own `struct Params` (`size.xy` the picture's size).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;
