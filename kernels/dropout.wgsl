// Dropout: y = x * keep / (1 - p), keep drawn from a stateless hash of (seed, element index). Backward runs
// the same kernel on the gradient with the same seed, which regenerates the mask instead of storing it.
// An element is kept when hash >= threshold = round(p * 2^32), so P(keep) = 1 - p to within 2^-32.
// cpu/dropout.ts mirrors the hash bit for bit.

struct Params {
  n: u32,
  seed: u32,
  threshold: u32,
  scale: f32, // 1 / (1 - p)
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

//#include "common/hash.wgsl"

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  let keep = keep_hash(p.seed, i) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}
