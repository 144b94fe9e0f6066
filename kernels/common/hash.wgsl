// Counter-based hashing shared by the kernels that draw random bits without state: dropout masks
// (kernels/dropout.wgsl, attention-weight dropout in kernels/attention.wgsl: element i is kept when
// keep_hash(seed, i) >= round(p · 2^32); cpu/dropout.ts mirrors it), the merge methods' element draws
// (kernels/merge.wgsl; src/engine/merge/common.ts mirrors them) and negative sampling (kernels/rec_loss.wgsl).

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
