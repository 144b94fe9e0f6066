// Casts between f32 and f16 tensors (mixed-precision training: src/engine/ops/convert.ts castF16 / castF32).
// An f16 tensor is packed two elements per 32-bit word, the even index in the low half (little-endian), padded
// to a whole word. Needs the device's shader-f16 feature.
//   f32_to_f16  one invocation per output WORD (two elements), so no two invocations write the same word.
//   f16_to_f32  one invocation per element; widening is exact.
// Workgroup index linearised as wid.x + wid.y * nwg.x (large tensors).
//
// f32 → f16 rounds in integer arithmetic rather than with f16(x): WGSL lets an implementation pick either
// neighbour for a value between two f16s and leaves values beyond the f16 range indeterminate, while mixed
// precision needs round-to-nearest-even (so the CPU reference, src/files/f16.ts, matches bit for bit) and an
// overflow that becomes ±Inf (that is how the loss scaler sees a scale that is too large).
enable f16;

struct Params {
  n: u32, // elements
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

//#include "common/half_bits.wgsl"

// f32 read as bits: a load through f32 may flush subnormals or quiet NaNs on some drivers.
@group(0) @binding(1) var<storage, read> src_bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst_words: array<u32>;

@compute @workgroup_size(WG)
fn f32_to_f16(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * nwg.x) * WG + lid;
  let i = 2u * w;
  if (i >= p.n) { return; }
  let lo = f16_bits(src_bits[i]);
  var hi = 0u;
  if (i + 1u < p.n) { hi = f16_bits(src_bits[i + 1u]); }
  dst_words[w] = lo | (hi << 16u);
}

@group(0) @binding(1) var<storage, read> src_half: array<f16>;
@group(0) @binding(2) var<storage, read_write> dst_f32: array<f32>;

@compute @workgroup_size(WG)
fn f16_to_f32(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  dst_f32[i] = f32(src_half[i]);
}
