// Embedding lookup: out[t, j] = table[idx[t], j], and its backward, a scatter-add into a [v, d] gradient.
// An index outside [0, v) reads as a zero row and scatters nothing: indices come from GPU data the host never
// sees, so this check in the kernel is the only guard against out-of-bounds access.
//
// A table (or gradient) larger than one storage binding is processed in row ranges (ops/embedding.ts): each
// dispatch binds rows [r0, r1) of it, starting `lead` elements into the binding (the binding's offset is rounded
// down to 256 bytes), and handles only the tokens whose index falls in that range. In the gather, the dispatch
// with writeAll = 1 (the first) also writes zeros for every other token, so each output element is written by
// exactly that dispatch or the later one that owns its row (dispatches run in order). A table that fits is one
// range [0, v) with lead 0.

struct Params {
  n: u32, // number of indices
  d: u32,
  v: u32,
  r0: u32, // rows [r0, r1) of the table are bound
  r1: u32,
  lead: u32, // elements from the binding's start to row r0
  writeAll: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn embedding_gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= p.n * p.d) { return; }
  let t = e / p.d;
  let j = e % p.d;
  let r = idx[t];
  // r1 ≤ v, so this also rejects indices outside [0, v).
  if (r >= 0 && u32(r) >= p.r0 && u32(r) < p.r1) {
    out[e] = table[p.lead + (u32(r) - p.r0) * p.d + j];
  } else if (p.writeAll != 0u) {
    out[e] = 0.0;
  }
}

// WGSL has no f32 atomics: add through a compare-exchange loop on the bits. Several tokens with the same index
// add into the same row in an unspecified order, so the low bits of such sums can differ between runs.
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> sidx: array<i32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn embedding_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= p.n * p.d) { return; }
  let t = e / p.d;
  let j = e % p.d;
  let r = sidx[t];
  let v = g[e];
  if (r < 0 || u32(r) < p.r0 || u32(r) >= p.r1 || v == 0.0) { return; }
  let k = p.lead + (u32(r) - p.r0) * p.d + j;
  var old = atomicLoad(&dtable[k]);
  loop {
    let res = atomicCompareExchangeWeak(&dtable[k], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (res.exchanged) { break; }
    old = res.old_value;
  }
}
