// Causal multi-head self-attention on q, k, v [b, t, d]; head h is the column slice h·hd … (h+1)·hd - 1, so the
// output [b, t, d] needs no transposes. Flash-attention style: no [t, t] score matrix is stored.
// One invocation per (batch, head, query or key row); rows r = (bi·heads + h)·t + i, so neighbouring invocations
// share (batch, head) and read the same keys.
//   attn_forward:     per query row i: online softmax over keys 0..i (running max and sum), the output row, and
//                     the row's log-sum-exp L (saved for backward).
//   attn_backward_q:  per query row i: δ_i = dO_i·O_i (saved), dQ_i = scale Σ_j P_ij (dO_i·v_j - δ_i) k_j.
//   attn_backward_kv: per key row j: dV_j = Σ_{i≥j} P_ij dO_i, dK_j = scale Σ_{i≥j} P_ij (dO_i·v_j - δ_i) q_i.
// P_ij = exp(scale·q_i·k_j - L_i) is recomputed; no atomics. Head-dim loops are bounded by the uniform hd;
// per-invocation vectors have the fixed size {{MAX_HD}} (the host picks it ≥ hd).
//
// Attention-probability dropout (drop = 1, SASRec's): O_i = Σ_j Z_ij P_ij v_j with Z_ij = keep/(1 − p) from the
// dropout hash of (seed, row_i · t + j), regenerated in backward, never stored. The softmax itself is unchanged
// (L is the undropped log-sum-exp), and δ_i = dO_i·O_i still equals Σ_j P_ij dP_ij for dP_ij = Z_ij (dO_i·v_j), so
// backward only multiplies dO_i·v_j (and P_ij in dV) by Z_ij.

struct Params {
  batch: u32,
  t: u32,
  d: u32,
  heads: u32,
  hd: u32,
  rows: u32,  // batch · heads · t
  scale: f32, // 1 / sqrt(hd)
  drop: u32,      // 1: attention-probability dropout on
  seed: u32,
  threshold: u32, // round(p · 2^32): kept when keep_hash >= threshold
  keep_scale: f32, // 1 / (1 − p)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;

const MAX_HD: u32 = {{MAX_HD}}u;

//#include "common/logsumexp.wgsl"
//#include "common/hash.wgsl"

// Z_ij: the dropout factor of query row `qrow` (its global row index) and key j; 1 without dropout.
fn drop_z(qrow: u32, j: u32) -> f32 {
  if (p.drop == 0u) { return 1.0; }
  return select(0.0, p.keep_scale, keep_hash(p.seed, qrow * p.t + j) >= p.threshold);
}

// Offset of row i of head h in batch bi of a [b, t, d] tensor.
fn row_base(bi: u32, h: u32, i: u32) -> u32 {
  return (bi * p.t + i) * p.d + h * p.hd;
}

// ---- forward --------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>; // [b, heads, t]

@compute @workgroup_size(WG)
fn attn_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let i = r % p.t;
  let bh = r / p.t;
  let h = bh % p.heads;
  let bi = bh / p.heads;
  let qb = row_base(bi, h, i);
  var qs: array<f32, MAX_HD>;
  var acc: array<f32, MAX_HD>;
  for (var c = 0u; c < p.hd; c++) {
    qs[c] = q[qb + c] * p.scale;
    acc[c] = 0.0;
  }
  // The running (max, Σ exp) of the scores; key 0 is always visible, so the state is never empty at the end.
  var ms = LSE_EMPTY;
  for (var j = 0u; j <= i; j++) {
    let kb = row_base(bi, h, j);
    var s = 0.0;
    for (var c = 0u; c < p.hd; c++) { s += qs[c] * k[kb + c]; }
    // st.z rescales what was accumulated when s is a new maximum (else 1); st.w is this key's weight.
    let st = lse_step(ms, s);
    ms = st.xy;
    if (st.z != 1.0) {
      for (var c = 0u; c < p.hd; c++) { acc[c] *= st.z; }
    }
    let w = st.w * drop_z(r, j);
    for (var c = 0u; c < p.hd; c++) { acc[c] += w * v[kb + c]; }
  }
  let inv_l = 1.0 / ms.y;
  for (var c = 0u; c < p.hd; c++) { o[qb + c] = acc[c] * inv_l; }
  lse[r] = lse_value(ms);
}

// ---- backward: dQ and δ -----------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> bq_q: array<f32>;
@group(0) @binding(2) var<storage, read> bq_k: array<f32>;
@group(0) @binding(3) var<storage, read> bq_v: array<f32>;
@group(0) @binding(4) var<storage, read> bq_o: array<f32>;
@group(0) @binding(5) var<storage, read> bq_do: array<f32>;
@group(0) @binding(6) var<storage, read> bq_lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> bq_dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> bq_delta: array<f32>; // [b, heads, t]

@compute @workgroup_size(WG)
fn attn_backward_q(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let i = r % p.t;
  let bh = r / p.t;
  let h = bh % p.heads;
  let bi = bh / p.heads;
  let qb = row_base(bi, h, i);
  var qs: array<f32, MAX_HD>;
  var g: array<f32, MAX_HD>;
  var acc: array<f32, MAX_HD>;
  var delta = 0.0;
  for (var c = 0u; c < p.hd; c++) {
    qs[c] = bq_q[qb + c] * p.scale;
    g[c] = bq_do[qb + c];
    acc[c] = 0.0;
    delta += g[c] * bq_o[qb + c];
  }
  let L = bq_lse[r];
  for (var j = 0u; j <= i; j++) {
    let kb = row_base(bi, h, j);
    var s = 0.0;
    var dp = 0.0;
    for (var c = 0u; c < p.hd; c++) {
      s += qs[c] * bq_k[kb + c];
      dp += g[c] * bq_v[kb + c];
    }
    let ds = exp(s - L) * (drop_z(r, j) * dp - delta);
    for (var c = 0u; c < p.hd; c++) { acc[c] += ds * bq_k[kb + c]; }
  }
  for (var c = 0u; c < p.hd; c++) { bq_dq[qb + c] = acc[c] * p.scale; }
  bq_delta[r] = delta;
}

// ---- backward: dK and dV ----------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> bk_q: array<f32>;
@group(0) @binding(2) var<storage, read> bk_k: array<f32>;
@group(0) @binding(3) var<storage, read> bk_v: array<f32>;
@group(0) @binding(4) var<storage, read> bk_do: array<f32>;
@group(0) @binding(5) var<storage, read> bk_lse: array<f32>;
@group(0) @binding(6) var<storage, read> bk_delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> bk_dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> bk_dv: array<f32>;

@compute @workgroup_size(WG)
fn attn_backward_kv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let j = r % p.t;
  let bh = r / p.t;
  let h = bh % p.heads;
  let bi = bh / p.heads;
  let kb = row_base(bi, h, j);
  var ks: array<f32, MAX_HD>;
  var vs: array<f32, MAX_HD>;
  var dk: array<f32, MAX_HD>;
  var dv: array<f32, MAX_HD>;
  for (var c = 0u; c < p.hd; c++) {
    ks[c] = bk_k[kb + c] * p.scale;
    vs[c] = bk_v[kb + c];
    dk[c] = 0.0;
    dv[c] = 0.0;
  }
  let rb = r - j; // row index of query 0 in this (batch, head)
  for (var i = j; i < p.t; i++) {
    let qb = row_base(bi, h, i);
    var s = 0.0;
    var dp = 0.0;
    for (var c = 0u; c < p.hd; c++) {
      s += ks[c] * bk_q[qb + c];
      dp += bk_do[qb + c] * vs[c];
    }
    let pij = exp(s - bk_lse[rb + i]);
    let z = drop_z(rb + i, j);
    let ds = pij * (z * dp - bk_delta[rb + i]);
    let pz = pij * z;
    for (var c = 0u; c < p.hd; c++) {
      dv[c] += pz * bk_do[qb + c];
      dk[c] += ds * bk_q[qb + c];
    }
  }
  for (var c = 0u; c < p.hd; c++) {
    bk_dk[kb + c] = dk[c] * p.scale;
    bk_dv[kb + c] = dv[c];
  }
}
