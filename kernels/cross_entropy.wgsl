// Cross-entropy of logits [rows, c] against i32 class targets [rows], fused.
//   ce_forward_small: one invocation per row (no workgroup memory, no barriers).
//   ce_forward_rows:  one workgroup per row (a long vocabulary on GPUs, or few rows).
//     (rowLayout in ops/reduce.ts picks one by adapter and shape.)
//     One pass over the row keeps a running (max, sum of exp(x - max)) ("online softmax"), then writes
//     the row's loss = max + log(sum) - x[target] and saves (max, log(sum)) for backward.
//   ce_reduce: one workgroup sums the row losses and counts the valid rows; writes the scalar loss and the count
//     (the count stays on the GPU for backward, no read-back).
//   ce_backward: one invocation per logit: dx = (softmax(x) - onehot(target)) · g · (1/count for 'mean').
// A row whose target is ignore_index or outside [0, c) is ignored: loss 0, not counted, gradient 0.

struct Params {
  rows: u32,
  c: u32,
  ignore_index: i32,
  mean: u32, // 1: reduction 'mean', 0: 'sum'
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

//#include "common/logsumexp.wgsl"

fn valid_target(t: i32) -> bool {
  return t != p.ignore_index && t >= 0 && u32(t) < p.c;
}

// ---- forward: per-row loss and saved (max, log sum) ---------------------------------------------------------
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<i32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2f>; // (max, log Σ exp(x - max)) per row

fn finish_row(row: u32, ms: vec2f) {
  let log_sum = log(ms.y);
  stats[row] = vec2f(ms.x, log_sum);
  let t = tgt[row];
  var loss = 0.0;
  // (max - x[t]) is exact for nearby values, so logits ~1e4 keep the loss's precision.
  if (valid_target(t)) { loss = (ms.x - x[row * p.c + u32(t)]) + log_sum; }
  row_loss[row] = loss;
}

@compute @workgroup_size(WG)
fn ce_forward_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.c;
  // Blocks of 64 merged into the total keep a long row's sum precise.
  var ms = LSE_EMPTY;
  var part = LSE_EMPTY;
  for (var j = 0u; j < p.c; j++) {
    part = lse_push(part, x[base + j]);
    if ((j & 63u) == 63u) {
      ms = lse_merge(ms, part);
      part = LSE_EMPTY;
    }
  }
  finish_row(row, lse_merge(ms, part));
}

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;

@compute @workgroup_size(WG)
fn ce_forward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup
  let base = row * p.c;
  var ms = LSE_EMPTY;
  for (var j = lid; j < p.c; j += WG) { ms = lse_push(ms, x[base + j]); }
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
  if (lid == 0u) { finish_row(row, vec2f(sh_m[0], sh_s[0])); }
}

// ---- reduce: scalar loss and valid-row count (one workgroup) ------------------------------------------------
@group(0) @binding(1) var<storage, read> r_loss: array<f32>;
@group(0) @binding(2) var<storage, read> r_tgt: array<i32>;
@group(0) @binding(3) var<storage, read_write> r_out: array<f32>;   // [1]: the loss
@group(0) @binding(4) var<storage, read_write> r_count: array<f32>; // [1]: rows counted

var<workgroup> sh_acc: array<vec2f, WG>;

@compute @workgroup_size(WG)
fn ce_reduce(@builtin(local_invocation_index) lid: u32) {
  var acc = vec2f(0.0); // (Σ loss, count)
  var part = vec2f(0.0);
  var k = 0u;
  for (var r = lid; r < p.rows; r += WG) {
    let t = r_tgt[r];
    if (valid_target(t)) { part += vec2f(r_loss[r], 1.0); }
    k++;
    if ((k & 63u) == 0u) {
      acc += part;
      part = vec2f(0.0);
    }
  }
  sh_acc[lid] = acc + part;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { sh_acc[lid] += sh_acc[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let tot = sh_acc[0];
    var loss = tot.x;
    if (p.mean == 1u) { loss = select(0.0, tot.x / tot.y, tot.y > 0.0); }
    r_out[0] = loss;
    r_count[0] = tot.y;
  }
}

// ---- backward: dx = (softmax - onehot) · g · scale, one invocation per logit ---------------------------------
@group(0) @binding(1) var<storage, read> b_x: array<f32>;
@group(0) @binding(2) var<storage, read> b_tgt: array<i32>;
@group(0) @binding(3) var<storage, read> b_stats: array<vec2f>;
@group(0) @binding(4) var<storage, read> b_g: array<f32>;     // [1]: gradient of the loss
@group(0) @binding(5) var<storage, read> b_count: array<f32>; // [1]: rows counted in forward
@group(0) @binding(6) var<storage, read_write> b_dx: array<f32>;

@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * p.c) { return; }
  let row = i / p.c;
  let j = i - row * p.c;
  b_dx[i] = ce_grad(row, j, b_x[i]);
}

/** dloss/dx for logit x at (row, column j): (softmax − onehot) · g / count, 0 for an ignored row. */
fn ce_grad(row: u32, j: u32, x: f32) -> f32 {
  let t = b_tgt[row];
  if (!valid_target(t)) { return 0.0; }
  var coef = b_g[0];
  if (p.mean == 1u) { coef = coef / b_count[0]; } // count ≥ 1 here: this row is counted
  let st = b_stats[row];
  let prob = exp((x - st.x) - st.y);
  return (prob - select(0.0, 1.0, u32(t) == j)) * coef;
}

// ce_backward_inplace: the same gradient written over the logits (binding 1 read-write), for training steps that
// no longer need the logits after backward: saves a logits-sized buffer at the step's memory peak.
@group(0) @binding(1) var<storage, read_write> bi_x: array<f32>;

@compute @workgroup_size(WG)
fn ce_backward_inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * p.c) { return; }
  let row = i / p.c;
  let j = i - row * p.c;
  bi_x[i] = ce_grad(row, j, bi_x[i]);
}
