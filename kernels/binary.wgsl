// Binary elementwise ops (add, sub, mul, div) with NumPy broadcasting.
// The host collapses the broadcast into at most 6 dims (adjacent dims with the same broadcast pattern merge,
// size-1 dims drop out), so a bias add [N, D] + [D] reaches here as rank 2. Dim slot 0 is the innermost;
// sa*/sb* are the element strides of a and b in each slot, 0 where that operand is broadcast.

struct Params {
  n: u32,
  rank: u32,
  d0: u32, d1: u32, d2: u32, d3: u32, d4: u32, d5: u32,
  sa0: u32, sa1: u32, sa2: u32, sa3: u32, sa4: u32, sa5: u32,
  sb0: u32, sb1: u32, sb2: u32, sb3: u32, sb4: u32, sb5: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 256u;
override OP: u32 = 0u; // 0 add, 1 sub, 2 mul, 3 div

fn apply(x: f32, z: f32) -> f32 {
  switch OP {
    case 1u: { return x - z; }
    case 2u: { return x * z; }
    case 3u: { return x / z; }
    default: { return x + z; }
  }
}

// Same shapes (or both operands contiguous over the whole output): no index arithmetic.
@compute @workgroup_size(WG)
fn binary_same(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { y[i] = apply(a[i], b[i]); }
}

// (size, a stride, b stride) of a dim slot. Uniform arrays would need a 16-byte element stride, so the dims
// travel as scalars and are picked here.
fn dim(slot: u32) -> vec3u {
  switch slot {
    case 0u: { return vec3u(p.d0, p.sa0, p.sb0); }
    case 1u: { return vec3u(p.d1, p.sa1, p.sb1); }
    case 2u: { return vec3u(p.d2, p.sa2, p.sb2); }
    case 3u: { return vec3u(p.d3, p.sa3, p.sb3); }
    case 4u: { return vec3u(p.d4, p.sa4, p.sb4); }
    default: { return vec3u(p.d5, p.sa5, p.sb5); }
  }
}

@compute @workgroup_size(WG)
fn binary_bcast(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var k = 0u; k < p.rank; k++) {
    let s = dim(k);
    let c = rem % s.x;
    rem = rem / s.x;
    ia += c * s.y;
    ib += c * s.z;
  }
  y[i] = apply(a[ia], b[ib]);
}
