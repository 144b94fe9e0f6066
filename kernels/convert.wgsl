// Half-precision decoding on the GPU: a model file's F16 or BF16 bytes are uploaded as they are (two values per
// u32 word, little-endian: the element at the even index in the low half) and widened to f32 here, so a merge
// reads half the bytes from disk and never decodes on the host.
// Entries: f16_to_f32, bf16_to_f32. Workgroup index linearised as wid.x + wid.y * nwg.x (large tensors).

struct Params {
  n: u32, // f32 elements to write
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
