// Half-precision decoding on the GPU: a model file's F16 or BF16 bytes are uploaded as they are (two values per
// u32 word, little-endian: the element at the even index in the low half) and widened to f32 here, so a merge
// reads half the bytes from disk and never decodes on the host.
// The other way, f32_to_f16_words and f32_to_bf16_words narrow a merged f32 tensor on the GPU before it is read
// back (half the bytes over the bus, no encoding on the host): one invocation per output word (two elements), so
// no two invocations write the same word; an odd count leaves a zero high half in the last word.
// Entries: f16_to_f32, bf16_to_f32, f32_to_f16_words, f32_to_bf16_words. Workgroup index linearised as
// wid.x + wid.y * nwg.x (large tensors).

struct Params {
  n: u32, // f32 elements to write (decode) or read (encode)
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

fn half_bits(i: u32) -> u32 {
  let w = src[i >> 1u];
  return select(w & 0xffffu, w >> 16u, (i & 1u) == 1u);
}

@compute @workgroup_size(WG)
fn f16_to_f32(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  // unpack2x16float decodes IEEE binary16 exactly (subnormals, ±Inf and NaN included).
  dst[i] = unpack2x16float(half_bits(i)).x;
}

@compute @workgroup_size(WG)
fn bf16_to_f32(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  // bfloat16 is the top half of a float32.
  dst[i] = bitcast<f32>(half_bits(i) << 16u);
}

//#include "common/half_bits.wgsl"

// Encoding reads src as the f32's bits (a load through f32 may flush subnormals or quiet NaNs on some drivers).
@group(0) @binding(2) var<storage, read_write> dst_words: array<u32>;

fn half_of(b: u32, bf16: bool) -> u32 {
  if (bf16) { return bf16_bits(b); }
  return f16_bits(b);
}

fn word_of(w: u32, bf16: bool) -> u32 {
  let i = 2u * w;
  var hi = 0u;
  if (i + 1u < p.n) { hi = half_of(src[i + 1u], bf16); }
  return half_of(src[i], bf16) | (hi << 16u);
}

@compute @workgroup_size(WG)
fn f32_to_f16_words(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * nwg.x) * WG + lid;
  if (2u * w >= p.n) { return; }
  dst_words[w] = word_of(w, false);
}

@compute @workgroup_size(WG)
fn f32_to_bf16_words(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * nwg.x) * WG + lid;
  if (2u * w >= p.n) { return; }
  dst_words[w] = word_of(w, true);
}
