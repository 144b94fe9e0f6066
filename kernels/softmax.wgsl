// Softmax and log-softmax over the last axis (rows of length d), forward and backward.
//   *_small: one invocation per row (no workgroup memory, no barriers).
//   *_rows:  one workgroup per row (long rows on GPUs, e.g. a 50k vocabulary).
// rowLayout in ops/reduce.ts picks one by adapter and shape.
// Forward keeps a running (max, sum of exp(x - max)) per invocation ("online softmax", Milakov & Gimelshein
// 2018), merges those pairs across the workgroup, then writes: two reads of x instead of three.
// LOG selects log-softmax.
//#include "common/logsumexp.wgsl"

struct Params {
  rows: u32,
  d: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;
override LOG: bool = false;

fn finish(v: f32, ms: vec2f, inv_sum: f32, log_sum: f32) -> f32 {
  if (LOG) { return v - ms.x - log_sum; }
  return exp(v - ms.x) * inv_sum;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn softmax_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  // Blocks of 64 merged into the total: one running sum over a 50k row would lose precision that log-softmax
  // and its backward then expose.
  var ms = vec2f(LSE_LOWEST, 0.0);
  var part = vec2f(LSE_LOWEST, 0.0);
  for (var j = 0u; j < p.d; j++) {
    part = lse_push(part, x[base + j]);
    if ((j & 63u) == 63u) {
      ms = lse_merge(ms, part);
      part = vec2f(LSE_LOWEST, 0.0);
    }
  }
  ms = lse_merge(ms, part);
  let inv_sum = 1.0 / ms.y;
  let log_sum = log(ms.y);
  for (var j = 0u; j < p.d; j++) { y[base + j] = finish(x[base + j], ms, inv_sum, log_sum); }
}

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup
  let base = row * p.d;
  var ms = vec2f(LSE_LOWEST, 0.0);
  for (var j = lid; j < p.d; j += WG) { ms = lse_push(ms, x[base + j]); }
  sh_m[lid] = ms.x;
  sh_s[lid] = ms.y;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let r = lse_merge(vec2f(sh_m[lid], sh_s[lid]), vec2f(sh_m[lid + s], sh_s[lid + s]));
      sh_m[lid] = r.x;
      sh_s[lid] = r.y;
    }
    workgroupBarrier();
  }
  let total = vec2f(sh_m[0], sh_s[0]);
  let inv_sum = 1.0 / total.y;
  let log_sum = log(total.y);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = finish(x[base + j], total, inv_sum, log_sum); }
}

// ---- backward --------------------------------------------------------------------------------------------
// softmax:     dx = y * (g - Σ g·y)
// log-softmax: dx = g - exp(y) * Σ g        (y is the log-probability)
@group(0) @binding(1) var<storage, read> b_g: array<f32>;
@group(0) @binding(2) var<storage, read> b_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> b_dx: array<f32>;

fn row_term(g: f32, yv: f32) -> f32 {
  if (LOG) { return g; }
  return g * yv;
}

fn grad(g: f32, yv: f32, total: f32) -> f32 {
  if (LOG) { return g - exp(yv) * total; }
  return yv * (g - total);
}

@compute @workgroup_size(WG)
fn softmax_backward_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  var total = 0.0;
  var part = 0.0;
  for (var j = 0u; j < p.d; j++) {
    part += row_term(b_g[base + j], b_y[base + j]);
    if ((j & 63u) == 63u) {
      total += part;
      part = 0.0;
    }
  }
  total += part;
  for (var j = 0u; j < p.d; j++) { b_dx[base + j] = grad(b_g[base + j], b_y[base + j], total); }
}

@compute @workgroup_size(WG)
fn softmax_backward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  var part = 0.0;
  for (var j = lid; j < p.d; j += WG) { part += row_term(b_g[base + j], b_y[base + j]); }
  sh_s[lid] = part;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { sh_s[lid] += sh_s[lid + s]; }
    workgroupBarrier();
  }
  let total = sh_s[0];
  for (var j = lid; j < p.d; j += WG) { b_dx[base + j] = grad(b_g[base + j], b_y[base + j], total); }
}
