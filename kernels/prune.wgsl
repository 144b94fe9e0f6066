// Pruning (src/engine/prune/): scores, calibration statistics and masked weights, one tensor [rows, cols] per
// dispatch. CPU references: src/engine/cpu/prune.ts. Formulas: ../shared/notes/algorithms.md §3.
//
//   score_magnitude   s = |d|                    d = w, or τ = w − base (task vectors, p.flag = 1)
//   score_random      s = hash(i, seed, salt) / 2²⁴ (uniform [0, 1), bit-identical to pruneHash on the CPU)
//   score_curvature   s = d²·R_i·C_j/ΣR          R, C: row/column sums of AdamW's v; F̂ never stored densely
//   score_wanda       s = |d|·sqrt(Σ_r x_rj²)
//   col_sqsum         acc_j += Σ_r x_rj²          (Wanda's calibration pass; one invocation per column)
//   mask_threshold    out = s ≥ thr[row or 0] ? w : (base or 0)
//   mask_nm           out = (s among the N largest of its group of M in the row) ? w : (base or 0)
//   mask_select       out = mask[offset + i] ≠ 0 ? w : (base or 0)   (a u32 top-k mask from ops/select.ts)
//
// The masked kernels write the pruned weights into the live parameter view from a dense copy, so the sweep
// never copies the model: every point overwrites the same views (src/engine/prune/session.ts).

override WG: u32 = 256u;

struct PruneParams {
  n: u32,       // elements of the tensor
  cols: u32,
  rows: u32,
  flag: u32,    // 1: a base is bound (task vector)
  seed: u32,
  salt: u32,
  m: u32,       // N:M group size
  keep: u32,    // N:M kept per group; mask_threshold: 1 when thr holds one value per row
  scale: f32,   // curvature: 1/ΣR
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: PruneParams;

fn lin(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- scores --------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> sm_w: array<f32>;
@group(0) @binding(2) var<storage, read> sm_base: array<f32>;
@group(0) @binding(3) var<storage, read_write> sm_out: array<f32>;

fn delta(i: u32) -> f32 {
  if (p.flag == 1u) { return sm_w[i] - sm_base[i]; }
  return sm_w[i];
}

@compute @workgroup_size(WG)
fn score_magnitude(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  sm_out[i] = abs(delta(i));
}

fn hash3(i: u32, seed: u32, salt: u32) -> u32 {
  var h = (i * 0x9e3779b1u) ^ ((seed + 0x7f4a7c15u) * 0x85ebca77u) ^ ((salt + 0x165667b1u) * 0xc2b2ae3du);
  h = (h ^ (h >> 16u)) * 0x7feb352du;
  h = (h ^ (h >> 15u)) * 0x846ca68bu;
  return h ^ (h >> 16u);
}

@group(0) @binding(1) var<storage, read_write> sr_out: array<f32>;

@compute @workgroup_size(WG)
fn score_random(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  sr_out[i] = f32(hash3(i, p.seed, p.salt) >> 8u) / 16777216.0;
}

@group(0) @binding(1) var<storage, read> sc_w: array<f32>;
@group(0) @binding(2) var<storage, read> sc_base: array<f32>;
@group(0) @binding(3) var<storage, read> sc_row: array<f32>;
@group(0) @binding(4) var<storage, read> sc_col: array<f32>;
@group(0) @binding(5) var<storage, read_write> sc_out: array<f32>;

@compute @workgroup_size(WG)
fn score_curvature(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  var d = sc_w[i];
  if (p.flag == 1u) { d = d - sc_base[i]; }
  // The rank-1 second moment of the entry, from its row and column sums: never a dense [rows, cols] buffer.
  let f = sc_row[i / p.cols] * sc_col[i % p.cols] * p.scale;
  sc_out[i] = d * d * f;
}

@group(0) @binding(1) var<storage, read> sw_w: array<f32>;
@group(0) @binding(2) var<storage, read> sw_base: array<f32>;
@group(0) @binding(3) var<storage, read> sw_sq: array<f32>;
@group(0) @binding(4) var<storage, read_write> sw_out: array<f32>;

@compute @workgroup_size(WG)
fn score_wanda(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  var d = sw_w[i];
  if (p.flag == 1u) { d = d - sw_base[i]; }
  sw_out[i] = abs(d) * sqrt(sw_sq[i % p.cols]);
}

// ---- calibration: column sums of squares ------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> cs_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cs_acc: array<f32>;

@compute @workgroup_size(WG)
fn col_sqsum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = lin(wid, nwg, lid);
  if (j >= p.cols) { return; }
  // Consecutive invocations read consecutive columns of a row: coalesced.
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let x = cs_x[r * p.cols + j];
    s = s + x * x;
  }
  cs_acc[j] = cs_acc[j] + s;
}

// ---- masks -----------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> mt_dense: array<f32>;
@group(0) @binding(2) var<storage, read> mt_base: array<f32>;
@group(0) @binding(3) var<storage, read> mt_score: array<f32>;
@group(0) @binding(4) var<storage, read> mt_thr: array<f32>;
@group(0) @binding(5) var<storage, read_write> mt_out: array<f32>;

fn pruned_value(i: u32) -> f32 {
  if (p.flag == 1u) { return mt_base[i]; }
  return 0.0;
}

@compute @workgroup_size(WG)
fn mask_threshold(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  var t = mt_thr[0];
  if (p.keep == 1u) { t = mt_thr[i / p.cols]; }
  if (mt_score[i] >= t) { mt_out[i] = mt_dense[i]; } else { mt_out[i] = pruned_value(i); }
}

@compute @workgroup_size(WG)
fn mask_nm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  // Rank of this entry in its group of M (groups never straddle rows: cols is a multiple of M). Ties go to the
  // lower index, so exactly N of every M are kept.
  let g0 = (i / p.m) * p.m;
  let s = mt_score[i];
  var rank = 0u;
  for (var k = g0; k < g0 + p.m; k++) {
    let o = mt_score[k];
    if (o > s || (o == s && k < i)) { rank++; }
  }
  if (rank < p.keep) { mt_out[i] = mt_dense[i]; } else { mt_out[i] = pruned_value(i); }
}

// ---- mask_select: out = mask[offset + i] ≠ 0 ? w : (base or 0), with a u32 keep-mask (ops/select.ts topKMask) --
@group(0) @binding(1) var<storage, read> ms_dense: array<f32>;
@group(0) @binding(2) var<storage, read> ms_base: array<f32>;
@group(0) @binding(3) var<storage, read> ms_mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> ms_out: array<f32>;

@compute @workgroup_size(WG)
fn mask_select(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.n) { return; }
  // `salt` is the tensor's first element in the mask, so one mask over packed scores serves every tensor.
  if (ms_mask[p.salt + i] != 0u) {
    ms_out[i] = ms_dense[i];
  } else if (p.flag == 1u) {
    ms_out[i] = ms_base[i];
  } else {
    ms_out[i] = 0.0;
  }
}
