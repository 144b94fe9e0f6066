// Reductions over one axis of a tensor viewed as [outer, len, inner], and their backward kernels.
//
// A long axis is cut into `nchunks` chunks of `chunk` elements; one pass writes the partial results as
// [outer, nchunks, inner] and the host reduces those again until one chunk remains (a tree over passes), so no
// single invocation walks a million elements.
//   reduce_cols: one invocation per (outer, chunk, inner) column, looping over its chunk. Neighbouring
//                invocations read neighbouring addresses when inner > 1; also rows (inner = 1) where rowLayout
//                (ops/reduce.ts) picks an invocation per row.
//   reduce_rows: rows (inner = 1) where rowLayout picks a workgroup per row: one workgroup per (row, chunk),
//                strided loads then a tree in workgroup memory.
// Sequential loops add in blocks of 64 (a partial per block, then the partials): one f32 accumulator over
// thousands of terms would lose about log2(len) bits more.
// OP: 0 sum (times `scale`, which makes mean), 1 max. argmax_* carry (value, index) pairs; in later passes the
// index comes from the previous pass (`has_idx`).

struct Params {
  outer: u32,
  len: u32,
  inner: u32,
  chunk: u32,
  nchunks: u32,
  scale: f32,
  has_idx: u32,
  // The reduction's identity: 0 for sum, -inf for max and argmax. It travels in the uniform because a WGSL
  // constant expression cannot hold an infinity.
  identity: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;
override OP: u32 = 0u;

// NaN never wins a max here (comparisons with NaN are false); sums propagate it.
fn combine(acc: f32, v: f32) -> f32 {
  if (OP == 1u) { return select(acc, v, v > acc); }
  return acc + v;
}

// ---- sum / max -------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn reduce_cols(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.outer * p.nchunks * p.inner) { return; }
  let i = t % p.inner;
  let r = t / p.inner;
  let c = r % p.nchunks;
  let o = r / p.nchunks;
  let start = c * p.chunk;
  let end = min(start + p.chunk, p.len);
  var k = (o * p.len + start) * p.inner + i;
  var acc = p.identity;
  var part = p.identity;
  for (var l = start; l < end; l++) {
    part = combine(part, x[k]);
    k += p.inner;
    if (((l - start) & 63u) == 63u) {
      acc = combine(acc, part);
      part = p.identity;
    }
  }
  y[t] = combine(acc, part) * p.scale;
}

var<workgroup> sh: array<f32, WG>;

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  // Uniform per workgroup (folded grids overshoot), so the barriers below stay in uniform control flow.
  if (g >= p.outer * p.nchunks) { return; }
  let o = g / p.nchunks;
  let c = g % p.nchunks;
  let start = c * p.chunk;
  let end = min(start + p.chunk, p.len);
  let base = o * p.len;
  var acc = p.identity;
  for (var l = start + lid; l < end; l += WG) {
    acc = combine(acc, x[base + l]);
  }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] = combine(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { y[g] = sh[0] * p.scale; }
}

// ---- argmax: first index of the largest value ------------------------------------------------------------
@group(0) @binding(1) var<storage, read> am_x: array<f32>;
@group(0) @binding(2) var<storage, read> am_xi: array<i32>; // indices from the previous pass (has_idx = 1)
@group(0) @binding(3) var<storage, read_write> am_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> am_yi: array<i32>;

// Should (v2, i2) replace (v1, i1)? Index -1 marks "nothing yet", so a row of -inf or NaN still names an
// element; equal values keep the lower index.
fn am_better(v1: f32, i1: i32, v2: f32, i2: i32) -> bool {
  if (i2 < 0) { return false; }
  if (i1 < 0) { return true; }
  return v2 > v1 || (v2 == v1 && i2 < i1);
}

fn am_index(k: u32, l: u32) -> i32 {
  if (p.has_idx != 0u) { return am_xi[k]; }
  return i32(l);
}

@compute @workgroup_size(WG)
fn argmax_cols(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.outer * p.nchunks * p.inner) { return; }
  let i = t % p.inner;
  let r = t / p.inner;
  let c = r % p.nchunks;
  let o = r / p.nchunks;
  let start = c * p.chunk;
  let end = min(start + p.chunk, p.len);
  var k = (o * p.len + start) * p.inner + i;
  var best = p.identity;
  var bi = -1;
  for (var l = start; l < end; l++) {
    let v = am_x[k];
    let vi = am_index(k, l);
    if (am_better(best, bi, v, vi)) {
      best = v;
      bi = vi;
    }
    k += p.inner;
  }
  am_y[t] = best;
  am_yi[t] = bi;
}

var<workgroup> sh_i: array<i32, WG>;

@compute @workgroup_size(WG)
fn argmax_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.outer * p.nchunks) { return; }
  let o = g / p.nchunks;
  let c = g % p.nchunks;
  let start = c * p.chunk;
  let end = min(start + p.chunk, p.len);
  let base = o * p.len;
  var best = p.identity;
  var bi = -1;
  for (var l = start + lid; l < end; l += WG) {
    let v = am_x[base + l];
    let vi = am_index(base + l, l);
    if (am_better(best, bi, v, vi)) {
      best = v;
      bi = vi;
    }
  }
  sh[lid] = best;
  sh_i[lid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s && am_better(sh[lid], sh_i[lid], sh[lid + s], sh_i[lid + s])) {
      sh[lid] = sh[lid + s];
      sh_i[lid] = sh_i[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    am_y[g] = sh[0];
    am_yi[g] = sh_i[0];
  }
}

// ---- backward --------------------------------------------------------------------------------------------
// expand_axis: dx[o, l, i] = g[o, i] * scale (sum, mean, and broadcasting a reduced gradient back).
@group(0) @binding(1) var<storage, read> ex_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> ex_dx: array<f32>;

@compute @workgroup_size(WG)
fn expand_axis(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.outer * p.len * p.inner) { return; }
  let i = t % p.inner;
  let o = t / (p.inner * p.len);
  ex_dx[t] = ex_g[o * p.inner + i] * p.scale;
}

// max_backward: the gradient goes to the element argmax picked (the first maximum), zero elsewhere.
@group(0) @binding(1) var<storage, read> mb_g: array<f32>;
@group(0) @binding(2) var<storage, read> mb_idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> mb_dx: array<f32>;

@compute @workgroup_size(WG)
fn max_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.outer * p.len * p.inner) { return; }
  let i = t % p.inner;
  let r = t / p.inner;
  let l = r % p.len;
  let o = r / p.len;
  let k = o * p.inner + i;
  mb_dx[t] = select(0.0, mb_g[k], mb_idx[k] == i32(l));
}
