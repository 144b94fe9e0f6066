// Elementwise kernels over flat f32 arrays. Workgroup index is linearised as wid.x + wid.y * nwg.x because
// large arrays fold x past the 65,535-group limit into y.

struct Params {
  n: u32,
  a: f32,
  b: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

// ---- fill: y = a ----------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> fill_y: array<f32>;

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { fill_y[i] = p.a; }
}
