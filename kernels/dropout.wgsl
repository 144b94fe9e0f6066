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

// A 32-bit integer finaliser (xor-shift / multiply, the "lowbias32" constants from Chris Wellons' hash
// prospector): a bijection on u32 with good avalanche, so neighbouring indices get unrelated bits.
fn mix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn keep_hash(seed: u32, i: u32) -> u32 {
  // The seed is hashed into a key, and the key enters twice: with one round, seed s' would give seed s's mask
  // at xor-permuted positions; the second round breaks that relation.
  let key = mix32(seed + 0x9e3779b9u);
  return mix32(mix32(i ^ key) + key);
}

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  let keep = keep_hash(p.seed, i) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}
