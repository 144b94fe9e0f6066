// Merge methods, per tensor (src/engine/merge/tensor-merge.ts; CPU reference src/engine/cpu/merge.ts; formulas
// in notes/algorithms.md §2). Experts are visited one dispatch at a time, accumulating into per-element buffers,
// so any number of experts works with at most 8 storage bindings per kernel:
//   mg_score    τ_t (or the curvature score τ²⊙F̂) for the top-k select (ops/select.ts)
//   mg_della_*  DELLA's per-row ranks of |τ| (a bitonic sort of (|τ| bits, column) pairs per row)
//   mg_vote     pass A per expert: the masked task vector's vote / weighted sum into acc0, Σθ (no base), signs
//   mg_elect    pass B per expert: agreeing entries' numerator and denominator (acc1, acc2); Fisher's too
//   mg_final    θ* and the per-workgroup stats partials
//   mg_dots, mg_reduce, mg_coef, mg_lincomb, mg_lin_final: the norm-based methods (slerp, multislerp,
//               model_stock) as θ* = c_base·θ₀ + c·Σ c_t (θ_t − θ₀): dot products, reduced, turned into
//               coefficients on the GPU (no read-back), then one linear combination
//   rm_*        RegMean: scaled Gram matrices, a one-workgroup Cholesky and per-row triangular solves
// Element-wise passes (mg_score, mg_vote, mg_elect, mg_final) also run over binding-sized chunks of a large
// tensor: buffers are indexed by the chunk-local i, hashes/rows/columns by the global p.base0 + i.
// Every element-wise pass has each invocation visit p.items elements (strided by WG, so loads stay coalesced) and
// reduces its stats once per workgroup: a software rasterizer (lavapipe) pays per workgroup and per barrier far
// more than per element, and 16K elements per workgroup still leave a large tensor thousands of workgroups.
// The accumulators are not cleared beforehand: the first expert's pass (p.first) writes them, the others add.
// Top-k trims (MASK_THR) compare each entry's score (the buffer ops/select.ts ranked) with the thresholds that
// kernels/select.wgsl found, as the same (|score| bits, ~index) keys: no mask buffer, no separate mask pass.
// Stats partials: part[g·F + f] for workgroup g: f = t kept count, E + t saliency, 2E + t non-finite count of
// expert t, 3E non-finite count of the base, 3E + 1 sign conflicts, 3E + 2 Σ(θ* − refv)².
//#include "common/finite.wgsl"

override WG: u32 = 256u;

const OP_LINEAR: u32 = 0u;
const OP_GTA: u32 = 1u;
const OP_CURV: u32 = 2u;
const OP_FISHER: u32 = 3u;
const OP_LIN: u32 = 4u;
const OP_STATS: u32 = 5u;   // out already written (regmean): stats only

const MASK_NONE: u32 = 0u;
const MASK_THR: u32 = 1u;   // ctl = the score select ranked (f32 bits); thresholds in aux at p.thrOff
const MASK_DARE: u32 = 2u;
const MASK_DELLA: u32 = 3u; // ctl = rank within the row

struct MgParams {
  n: u32,
  rows: u32,
  cols: u32,
  E: u32,
  t: u32,
  op: u32,
  maskMode: u32,
  hasBase: u32,
  consensus: u32,
  normalize: u32,
  subBase: u32,
  rowsC: u32,
  stride: u32,     // coefficients per row
  dareThr: u32,
  key: u32,
  loQ: u32,
  epsQ: u32,
  F: u32,          // stats fields
  writeOut: u32,
  hasStats: u32,
  chunks: u32,
  P: u32,          // della: padded row length (power of two)
  kk: u32,         // della: bitonic stage
  jj: u32,         // della: bitonic step
  G: u32,          // mg_reduce: partials per field
  sF: u32,
  sG: u32,
  off: u32,
  cnt: u32,        // mg_reduce: fields (workgroups past it, from folding, do nothing)
  base0: u32,      // chunked passes: global index of the chunk's first element (hashes, rows and columns)
  gbase: u32,      // chunked passes: global index of the chunk's first workgroup (stats partials)
  items: u32,      // element-wise passes: elements per invocation
  first: u32,      // mg_vote / mg_elect / mg_lincomb: the first expert writes the accumulators instead of adding
  thrOff: u32,     // MASK_THR: where the thresholds (lower hi, lo, upper hi, lo) start in aux
  band: u32,       // MASK_THR: the upper threshold is in use (breadcrumbs' band)
  w: f32,
  scale: f32,
  lambda: f32,
  floorv: f32,
  wsumInv: f32,
  dLo: f32,
  dEps: f32,
  eps: f32,
  alpha: f32,
  invE: f32,
}
@group(0) @binding(0) var<uniform> p: MgParams;

var<workgroup> red0: array<f32, WG>;
var<workgroup> red1: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;

fn lin_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn group_index(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// The chunk-local index of this invocation's e-th element (p.items per invocation, strided by WG).
fn elem_index(wid: vec3u, nwg: vec3u, lid: u32, e: u32) -> u32 {
  return group_index(wid, nwg) * WG * p.items + e * WG + lid;
}

// Whether this workgroup lies past the tensor (a grid folded into y): it writes no partials.
fn past_end(wid: vec3u, nwg: vec3u) -> bool {
  return group_index(wid, nwg) * WG * p.items >= p.n;
}

// ops/select.ts's key order in abs mode: (|score| bits, ~global index), compared as a 64-bit pair.
fn key_ge(hi: u32, lo: u32, th: u32, tl: u32) -> bool {
  return hi > th || (hi == th && lo >= tl);
}

// MASK_THR: entry i (global) with score bits `bits` lies in the kept range of the thresholds thr.
fn thr_keep(bits: u32, i: u32, thr: vec4u) -> bool {
  let hi = bits & 0x7fffffffu;
  let lo = ~i;
  var keep = key_ge(hi, lo, thr.x, thr.y);
  if (p.band != 0u) { keep = keep && !key_ge(hi, lo, thr.z, thr.w); }
  return keep;
}

// Three tree reductions at once; results in red0[0], red1[0], red2[0]. Uniform control flow only.
fn reduce3(lid: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red0[lid] += red0[lid + s];
      red1[lid] += red1[lid + s];
      red2[lid] += red2[lid + s];
    }
    workgroupBarrier();
  }
}

fn sgn(v: f32) -> f32 {
  return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0);
}

// ---- the shared RNG and DELLA's integer keep test (src/engine/merge/common.ts mirrors both) --------------------
//#include "common/hash.wgsl"

fn element_hash(key: u32, i: u32) -> u32 {
  return mix32(mix32(i ^ key) + key);
}

// a·b as a 64-bit (hi, lo) product from 16-bit limbs.
fn mul_wide(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xffffu; let a1 = a >> 16u;
  let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let lo = (p00 & 0xffffu) | (mid << 16u);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2u(hi, lo);
}

fn lt_wide(a: vec2u, b: vec2u) -> bool {
  return a.x < b.x || (a.x == b.x && a.y < b.y);
}

// DELLA's rank terms: r/D with D = cols − 1 (a one-column row: 1/2, i.e. p = density).
fn della_rd(rank: u32) -> vec2u {
  if (p.cols > 1u) { return vec2u(rank, p.cols - 1u); }
  return vec2u(1u, 2u);
}

// ---- per-element pieces -------------------------------------------------------------------------------------
// F̂ at entry i from R (aux[0..rows)), C (aux[rows..rows+cols)) and ΣR (aux[rows+cols]); 1 without statistics.
// (One function per binding: WGSL passes no pointers to storage buffers without an extension.)
fn fhat_idx(i: u32) -> vec3u {
  return vec3u(i / p.cols, p.rows + i % p.cols, p.rows + p.cols);
}

fn fhat_of(rv: f32, cv: f32, s: f32) -> f32 {
  if (p.hasStats == 0u) { return 1.0; }
  if (s <= 0.0) { return 0.0; }
  return sqrt(rv * cv / s);
}

fn fhat_sc(i: u32) -> f32 {
  if (p.hasStats == 0u) { return 1.0; }
  let k = fhat_idx(i);
  return fhat_of(sc_aux[k.x], sc_aux[k.y], sc_aux[k.z]);
}

fn fhat_va(i: u32) -> f32 {
  if (p.hasStats == 0u) { return 1.0; }
  let k = fhat_idx(i);
  return fhat_of(va_aux[k.x], va_aux[k.y], va_aux[k.z]);
}

fn fhat_eb(i: u32) -> f32 {
  if (p.hasStats == 0u) { return 1.0; }
  let k = fhat_idx(i);
  return fhat_of(eb_aux[k.x], eb_aux[k.y], eb_aux[k.z]);
}

// ---- mg_score --------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> sc_base: array<f32>;
@group(0) @binding(2) var<storage, read> sc_x: array<f32>;
@group(0) @binding(3) var<storage, read> sc_aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> sc_out: array<f32>;

@compute @workgroup_size(WG)
fn mg_score(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    let tau = sc_x[i] - sc_base[i];
    if (p.op == OP_CURV) {
      sc_out[i] = tau * tau * fhat_sc(p.base0 + i);
    } else {
      sc_out[i] = tau;
    }
  }
}

// ---- DELLA ranks: bitonic sort of (|τ| bits, column) per row, rows padded to P = 2^m -------------------------
@group(0) @binding(1) var<storage, read> dl_base: array<f32>;
@group(0) @binding(2) var<storage, read> dl_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dl_pairs: array<u32>;

@compute @workgroup_size(WG)
fn mg_della_init(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = lin_index(wid, nwg, lid);
  if (g >= p.rows * p.P) { return; }
  let r = g / p.P;
  let j = g % p.P;
  if (j < p.cols) {
    let i = r * p.cols + j;
    dl_pairs[2u * g] = bitcast<u32>(dl_x[i] - dl_base[i]) & 0x7fffffffu;
    dl_pairs[2u * g + 1u] = j;
  } else {
    dl_pairs[2u * g] = 0xffffffffu;
    dl_pairs[2u * g + 1u] = 0xffffffffu;
  }
}

@group(0) @binding(1) var<storage, read_write> ds_pairs: array<u32>;

@compute @workgroup_size(WG)
fn mg_della_step(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = lin_index(wid, nwg, lid);
  if (g >= p.rows * p.P) { return; }
  let r = g / p.P;
  let i = g % p.P;
  let l = i ^ p.jj;
  if (l <= i) { return; }
  let a = 2u * (r * p.P + i);
  let b = 2u * (r * p.P + l);
  let ka = ds_pairs[a]; let ia = ds_pairs[a + 1u];
  let kb = ds_pairs[b]; let ib = ds_pairs[b + 1u];
  let aGreater = ka > kb || (ka == kb && ia > ib);
  let ascending = (i & p.kk) == 0u;
  if (aGreater == ascending) {
    ds_pairs[a] = kb; ds_pairs[a + 1u] = ib;
    ds_pairs[b] = ka; ds_pairs[b + 1u] = ia;
  }
}

@group(0) @binding(1) var<storage, read> dr_pairs: array<u32>;
@group(0) @binding(2) var<storage, read_write> dr_rank: array<u32>;

@compute @workgroup_size(WG)
fn mg_della_rank(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = lin_index(wid, nwg, lid);
  if (g >= p.rows * p.P) { return; }
  let r = g / p.P;
  let j = g % p.P;
  if (j >= p.cols) { return; }
  dr_rank[r * p.cols + dr_pairs[2u * g + 1u]] = j;
}

// ---- mg_vote (pass A) -----------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> va_base: array<f32>;
@group(0) @binding(2) var<storage, read> va_x: array<f32>;
@group(0) @binding(3) var<storage, read> va_aux: array<f32>;
@group(0) @binding(4) var<storage, read> va_ctl: array<u32>;
@group(0) @binding(5) var<storage, read_write> va_acc0: array<f32>;
@group(0) @binding(6) var<storage, read_write> va_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> va_flags: array<u32>;
@group(0) @binding(8) var<storage, read_write> va_part: array<f32>;

// Whether expert t keeps entry i, and the factor its kept τ is rescaled by.
// ctl: the entry's score bits (MASK_THR) or rank (MASK_DELLA) word; thr: the thresholds (MASK_THR).
fn keep_scale(ctl: u32, i: u32, thr: vec4u) -> vec2f {
  switch p.maskMode {
    case MASK_THR: { return vec2f(select(0.0, 1.0, thr_keep(ctl, i, thr)), 1.0); }
    case MASK_DARE: { return vec2f(select(0.0, 1.0, element_hash(p.key, i) < p.dareThr), p.scale); }
    case MASK_DELLA: {
      let rd = della_rd(ctl);
      let u = element_hash(p.key, i);
      var keep = u < p.loQ;
      if (!keep) { keep = lt_wide(mul_wide(u - p.loQ, rd.y), mul_wide(p.epsQ, rd.x)); }
      let prob = p.dLo + p.dEps * (f32(rd.x) / f32(rd.y));
      return vec2f(select(0.0, 1.0, keep), 1.0 / prob);
    }
    default: { return vec2f(1.0, 1.0); }
  }
}

fn ctl_va(i: u32) -> u32 {
  if (p.maskMode == MASK_THR || p.maskMode == MASK_DELLA) { return va_ctl[i]; }
  return 0u;
}

fn ctl_eb(i: u32) -> u32 {
  if (p.maskMode == MASK_THR || p.maskMode == MASK_DELLA) { return eb_ctl[i]; }
  return 0u;
}

fn thr_va() -> vec4u {
  if (p.maskMode != MASK_THR) { return vec4u(0u); }
  let o = p.thrOff;
  return vec4u(bitcast<u32>(va_aux[o]), bitcast<u32>(va_aux[o + 1u]), bitcast<u32>(va_aux[o + 2u]), bitcast<u32>(va_aux[o + 3u]));
}

fn thr_eb() -> vec4u {
  if (p.maskMode != MASK_THR) { return vec4u(0u); }
  let o = p.thrOff;
  return vec4u(bitcast<u32>(eb_aux[o]), bitcast<u32>(eb_aux[o + 1u]), bitcast<u32>(eb_aux[o + 2u]), bitcast<u32>(eb_aux[o + 3u]));
}

@compute @workgroup_size(WG)
fn mg_vote(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var kept = 0.0;
  var sal = 0.0;
  var bad = 0.0;
  let thr = thr_va();
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    let xv = va_x[i];
    var tau = xv;
    if (p.hasBase != 0u) {
      tau = xv - va_base[i];
    } else if (p.first != 0u) {
      va_mean[i] = xv;
    } else {
      va_mean[i] += xv;
    }
    if (!is_finite(xv)) { bad += 1.0; }
    var md = tau;
    var k = 1.0;
    var add = 0.0;     // this expert's term of acc0
    var s = tau * tau; // its saliency
    switch p.op {
      case OP_GTA: {
        let ks = keep_scale(ctl_va(i), p.base0 + i, thr);
        k = ks.x;
        md = select(0.0, tau * ks.y, ks.x != 0.0);
        add = p.w * md;
      }
      case OP_CURV: {
        let fh = fhat_va(p.base0 + i);
        let ks = keep_scale(ctl_va(i), p.base0 + i, thr);
        k = ks.x;
        md = select(0.0, tau, ks.x != 0.0);
        add = select(0.0, sgn(tau) * fh, ks.x != 0.0);
        s = tau * tau * fh;
      }
      case OP_FISHER: { }
      default: { add = p.w * xv; }
    }
    if (p.op != OP_FISHER) {
      if (p.first != 0u) { va_acc0[i] = add; } else { va_acc0[i] += add; }
    }
    kept += k;
    if (p.hasBase != 0u) {
      // An expert of weight 0 takes no part in the merge, so none in its sign conflicts either.
      let bits = select(0u, select(0u, 1u, md > 0.0) | select(0u, 2u, md < 0.0), p.w != 0.0);
      if (p.first != 0u) { va_flags[i] = bits; } else { va_flags[i] = va_flags[i] | bits; }
      sal += s;
    }
  }
  red0[lid] = kept;
  red1[lid] = sal;
  red2[lid] = bad;
  reduce3(lid);
  if (lid == 0u) {
    if (past_end(wid, nwg)) { return; }
    let g = p.gbase + group_index(wid, nwg); // a binding-sized chunk's groups start at gbase
    va_part[g * p.F + p.t] = red0[0];
    va_part[g * p.F + p.E + p.t] = red1[0];
    va_part[g * p.F + 2u * p.E + p.t] = red2[0];
  }
}

// ---- mg_elect (pass B) --------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> eb_base: array<f32>;
@group(0) @binding(2) var<storage, read> eb_x: array<f32>;
@group(0) @binding(3) var<storage, read> eb_aux: array<f32>;
@group(0) @binding(4) var<storage, read> eb_ctl: array<u32>;
@group(0) @binding(5) var<storage, read> eb_vote: array<f32>;
@group(0) @binding(6) var<storage, read_write> eb_num: array<f32>;
@group(0) @binding(7) var<storage, read_write> eb_den: array<f32>;

@compute @workgroup_size(WG)
fn mg_elect(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let thr = thr_eb();
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    let xv = eb_x[i];
    var dn = 0.0; // this expert's terms of the numerator and the denominator
    var dd = 0.0;
    if (p.op == OP_FISHER) {
      let f = p.w * (eb_aux[i] + p.floorv);
      dn = f * xv;
      dd = f;
    } else {
      let tau = xv - eb_base[i];
      let s = select(-1.0, 1.0, eb_vote[i] >= 0.0);
      let ks = keep_scale(ctl_eb(i), p.base0 + i, thr);
      if (ks.x != 0.0) {
        if (p.op == OP_CURV) {
          if (sgn(tau) == s) {
            let fh = fhat_eb(p.base0 + i);
            dn = p.w * fh * tau;
            dd = p.w * fh;
          }
        } else {
          let wd = p.w * (tau * ks.y);
          if (sgn(wd) == s) {
            dn = wd;
            dd = p.w;
          }
        }
      }
    }
    if (p.first != 0u) {
      eb_num[i] = dn;
      eb_den[i] = dd;
    } else if (dd != 0.0 || dn != 0.0) {
      eb_num[i] += dn;
      eb_den[i] += dd;
    }
  }
}

// ---- mg_final ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> fi_base: array<f32>;
@group(0) @binding(2) var<storage, read> fi_acc0: array<f32>;
@group(0) @binding(3) var<storage, read> fi_num: array<f32>;
@group(0) @binding(4) var<storage, read> fi_den: array<f32>;
@group(0) @binding(5) var<storage, read> fi_mean: array<f32>;
@group(0) @binding(6) var<storage, read> fi_flags: array<u32>;
@group(0) @binding(7) var<storage, read_write> fi_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> fi_part: array<f32>;

fn write_final_stats(wid: vec3u, nwg: vec3u, lid: u32, bad: f32, conflict: f32, dsq: f32) {
  red0[lid] = bad;
  red1[lid] = conflict;
  red2[lid] = dsq;
  reduce3(lid);
  if (lid == 0u) {
    if (past_end(wid, nwg)) { return; }
    let g = p.gbase + group_index(wid, nwg); // a binding-sized chunk's groups start at gbase
    fi_part[g * p.F + 3u * p.E] = red0[0];
    fi_part[g * p.F + 3u * p.E + 1u] = red1[0];
    fi_part[g * p.F + 3u * p.E + 2u] = red2[0];
  }
}

@compute @workgroup_size(WG)
fn mg_final(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var bad = 0.0;
  var conflict = 0.0;
  var dsq = 0.0;
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    var b = 0.0;
    var refv = 0.0;
    if (p.hasBase != 0u) {
      b = fi_base[i];
      refv = b;
      if (!is_finite(b)) { bad += 1.0; }
      if (fi_flags[i] == 3u) { conflict += 1.0; }
    } else {
      refv = fi_mean[i] * p.invE;
    }
    var v = 0.0;
    switch p.op {
      case OP_GTA: {
        var mixed = fi_acc0[i] * p.wsumInv;
        if (p.consensus != 0u) {
          let den = select(fi_den[i], 1.0, fi_den[i] == 0.0);
          mixed = select(fi_num[i], fi_num[i] / den, p.normalize != 0u);
        }
        v = b + p.lambda * mixed;
      }
      case OP_CURV: {
        v = b + p.lambda * select(0.0, fi_num[i] / fi_den[i], fi_den[i] > 0.0);
      }
      case OP_FISHER: {
        // Without a base the mean is the fallback; with one, no mean was accumulated (0, as it always was).
        let m = select(0.0, fi_mean[i] * p.invE, p.hasBase == 0u);
        v = select(m, fi_num[i] / fi_den[i], fi_den[i] != 0.0);
      }
      case OP_STATS: { v = fi_out[i]; }
      default: { v = fi_acc0[i] * p.wsumInv; }
    }
    if (p.writeOut != 0u) { fi_out[i] = v; }
    dsq += (v - refv) * (v - refv);
  }
  write_final_stats(wid, nwg, lid, bad, conflict, dsq);
}

// ---- norm-based methods: dots, reductions, coefficients, linear combination --------------------------------
@group(0) @binding(1) var<storage, read> dt_base: array<f32>;
@group(0) @binding(2) var<storage, read> dt_x: array<f32>;
@group(0) @binding(3) var<storage, read> dt_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dt_part: array<f32>;

// Workgroup g = r·chunks + c sums u·v over columns [c·WG, (c+1)·WG) of row r (u = x − base when subBase).
@compute @workgroup_size(WG)
fn mg_dots(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  let r = g / p.chunks;
  let j = (g % p.chunks) * WG + lid;
  var s = 0.0;
  if (r < p.rows && j < p.cols) {
    let i = r * p.cols + j;
    var u = dt_x[i];
    var v = dt_y[i];
    if (p.subBase != 0u) { u -= dt_base[i]; v -= dt_base[i]; }
    s = u * v;
  }
  red0[lid] = s;
  red1[lid] = 0.0;
  red2[lid] = 0.0;
  reduce3(lid);
  if (lid == 0u && r < p.rows) { dt_part[p.off + g] = red0[0]; } // a row chunk's partials start at off
}

@group(0) @binding(1) var<storage, read> rd_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> rd_sums: array<f32>;

// Workgroup f: sums[off + f] = Σ_g part[f·sF + g·sG], g < G.
@compute @workgroup_size(WG)
fn mg_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let f = group_index(wid, nwg);
  if (f >= p.cnt) { return; }
  var s = 0.0;
  for (var g = lid; g < p.G; g += WG) { s += rd_part[f * p.sF + g * p.sG]; }
  red0[lid] = s;
  red1[lid] = 0.0;
  red2[lid] = 0.0;
  reduce3(lid);
  if (lid == 0u) { rd_sums[p.off + f] = red0[0]; }
}

const COEF_SLERP: u32 = 0u;
const COEF_MS1: u32 = 1u;
const COEF_MS2: u32 = 2u;
const COEF_STOCK: u32 = 3u;
const DOT_THRESHOLD: f32 = 0.9995;

@group(0) @binding(1) var<storage, read> cf_sums: array<f32>;
@group(0) @binding(2) var<storage, read> cf_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> cf_coef: array<f32>;

// Coefficients per row r (rowsC rows): [c_base, c_acc0, c_acc1, c_0 … c_{E−1} (into acc0), c'_0 … (into acc1)].
// p.op selects the method; errors set cf_coef[rowsC·stride] (read with the stats).
@compute @workgroup_size(WG)
fn mg_coef(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = lin_index(wid, nwg, lid);
  if (r >= p.rowsC) { return; }
  let o = r * p.stride;
  switch p.op {
    case COEF_SLERP: {
      let n0 = sqrt(cf_sums[0]);
      let n1 = sqrt(cf_sums[1]);
      let d = cf_sums[2] / (select(1.0, n0, n0 > p.eps) * select(1.0, n1, n1 > p.eps));
      var s0 = 1.0 - p.w;
      var s1 = p.w;
      if (abs(d) <= DOT_THRESHOLD) {
        let th = acos(d);
        let st = sin(th);
        s0 = sin((1.0 - p.w) * th) / st;
        s1 = sin(p.w * th) / st;
      }
      cf_coef[o] = s0;
      cf_coef[o + 1u] = 1.0;
      cf_coef[o + 2u] = 0.0;
      cf_coef[o + 3u] = s1;
    }
    case COEF_MS1: {
      for (var t = 0u; t < p.E; t++) {
        cf_coef[o + 3u + t] = cf_w[t] / (sqrt(cf_sums[t]) + p.eps);
        cf_coef[o + 3u + p.E + t] = cf_w[t];
      }
      cf_coef[o] = f32(p.hasBase);
    }
    case COEF_MS2: {
      let mn = sqrt(cf_sums[p.E]);
      if (mn < p.eps) {
        cf_coef[o + 1u] = 0.0;
        cf_coef[o + 2u] = select(0.0, 1.0, p.E == 2u);
        if (p.E != 2u) { cf_coef[p.rowsC * p.stride] = 1.0; }
      } else {
        var avg = 0.0;
        for (var t = 0u; t < p.E; t++) { avg += cf_w[t] * sqrt(cf_sums[t]); }
        cf_coef[o + 1u] = avg / mn;
        cf_coef[o + 2u] = 0.0;
      }
    }
    default: {
      // Model Stock. sums[q·rowsC + r] holds τ_a·τ_b for the pairs a ≤ b in order (q counts them).
      var cs = 0.0;
      for (var a = 0u; a < p.E; a++) {
        let na = sqrt(cf_sums[ms_pair(a, a) * p.rowsC + r]);
        for (var b = a + 1u; b < p.E; b++) {
          let nb = sqrt(cf_sums[ms_pair(b, b) * p.rowsC + r]);
          cs += cf_sums[ms_pair(a, b) * p.rowsC + r] / max(na * nb, p.eps);
        }
      }
      let pairs = f32(p.E * (p.E - 1u) / 2u);
      let c = clamp(cs / pairs, -1.0, 1.0);
      let den = 1.0 + f32(p.E - 1u) * c;
      cf_coef[o] = 1.0;
      cf_coef[o + 1u] = select(f32(p.E) * c / den, 0.0, abs(den) < 1e-12);
      cf_coef[o + 2u] = 0.0;
      for (var t = 0u; t < p.E; t++) { cf_coef[o + 3u + t] = p.invE; cf_coef[o + 3u + p.E + t] = 0.0; }
    }
  }
}

// Index of pair (a, b), a ≤ b, in the order (0,0) (0,1) … (0,E−1) (1,1) (1,2) …
fn ms_pair(a: u32, b: u32) -> u32 {
  return a * p.E - (a * (a - select(0u, 1u, a > 0u))) / 2u + (b - a);
}

@group(0) @binding(1) var<storage, read> lc_base: array<f32>;
@group(0) @binding(2) var<storage, read> lc_x: array<f32>;
@group(0) @binding(3) var<storage, read> lc_coef: array<f32>;
@group(0) @binding(4) var<storage, read_write> lc_acc0: array<f32>;
@group(0) @binding(5) var<storage, read_write> lc_acc1: array<f32>;
@group(0) @binding(6) var<storage, read_write> lc_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> lc_flags: array<u32>;
@group(0) @binding(8) var<storage, read_write> lc_part: array<f32>;

@compute @workgroup_size(WG)
fn mg_lincomb(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var cnt = 0.0;
  var sal = 0.0;
  var bad = 0.0;
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    cnt += 1.0;
    let xv = lc_x[i];
    if (!is_finite(xv)) { bad += 1.0; }
    var u = xv;
    if (p.hasBase != 0u) {
      let tau = xv - lc_base[i];
      sal += tau * tau;
      let bits = select(0u, select(0u, 1u, tau > 0.0) | select(0u, 2u, tau < 0.0), p.w != 0.0); // weight 0: no vote
      if (p.first != 0u) { lc_flags[i] = bits; } else { lc_flags[i] = lc_flags[i] | bits; }
      if (p.subBase != 0u) { u = tau; }
    } else if (p.first != 0u) {
      lc_mean[i] = xv;
    } else {
      lc_mean[i] += xv;
    }
    let o = select(0u, (p.base0 + i) / p.cols, p.rowsC > 1u) * p.stride; // a row chunk: global row
    let a0 = lc_coef[o + 3u + p.t] * u;
    let a1 = lc_coef[o + 3u + p.E + p.t] * u;
    if (p.first != 0u) {
      lc_acc0[i] = a0;
      lc_acc1[i] = a1;
    } else {
      lc_acc0[i] += a0;
      lc_acc1[i] += a1;
    }
  }
  red0[lid] = cnt;
  red1[lid] = sal;
  red2[lid] = bad;
  reduce3(lid);
  if (lid == 0u) {
    if (past_end(wid, nwg)) { return; }
    let g = p.gbase + group_index(wid, nwg); // a row chunk's groups start at gbase
    lc_part[g * p.F + p.t] = red0[0];
    lc_part[g * p.F + p.E + p.t] = red1[0];
    lc_part[g * p.F + 2u * p.E + p.t] = red2[0];
  }
}

@group(0) @binding(1) var<storage, read> lf_base: array<f32>;
@group(0) @binding(2) var<storage, read> lf_acc0: array<f32>;
@group(0) @binding(3) var<storage, read> lf_acc1: array<f32>;
@group(0) @binding(4) var<storage, read> lf_coef: array<f32>;
@group(0) @binding(5) var<storage, read> lf_mean: array<f32>;
@group(0) @binding(6) var<storage, read> lf_flags: array<u32>;
@group(0) @binding(7) var<storage, read_write> lf_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> lf_part: array<f32>;

@compute @workgroup_size(WG)
fn mg_lin_final(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var bad = 0.0;
  var conflict = 0.0;
  var dsq = 0.0;
  for (var e = 0u; e < p.items; e++) {
    let i = elem_index(wid, nwg, lid, e);
    if (i >= p.n) { break; }
    var b = 0.0;
    var refv = 0.0;
    if (p.hasBase != 0u) {
      b = lf_base[i];
      refv = b;
      if (!is_finite(b)) { bad += 1.0; }
      if (lf_flags[i] == 3u) { conflict += 1.0; }
    } else {
      refv = lf_mean[i] * p.invE;
    }
    let o = select(0u, (p.base0 + i) / p.cols, p.rowsC > 1u) * p.stride; // a row chunk: global row
    let v = lf_coef[o] * b + lf_coef[o + 1u] * lf_acc0[i] + lf_coef[o + 2u] * lf_acc1[i];
    lf_out[i] = v;
    dsq += (v - refv) * (v - refv);
  }
  red0[lid] = bad;
  red1[lid] = conflict;
  red2[lid] = dsq;
  reduce3(lid);
  if (lid == 0u) {
    if (past_end(wid, nwg)) { return; }
    let g = p.gbase + group_index(wid, nwg); // a row chunk's groups start at gbase
    lf_part[g * p.F + 3u * p.E] = red0[0];
    lf_part[g * p.F + 3u * p.E + 1u] = red1[0];
    lf_part[g * p.F + 3u * p.E + 2u] = red2[0];
  }
}

// ---- RegMean --------------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> rg_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> rg_out: array<f32>;

// out = w·G̃ with G̃ = G on the diagonal, α·G off it (p.cols = in).
@compute @workgroup_size(WG)
fn rm_gscale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let diag = (i / p.cols) == (i % p.cols);
  rg_out[i] = p.w * select(p.alpha, 1.0, diag) * rg_g[i];
}

@group(0) @binding(1) var<storage, read_write> ch_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> ch_status: array<u32>;

var<workgroup> ch_pivot: f32;

// In-place Cholesky of the [n, n] matrix (p.cols = n) in ONE workgroup: the diagonal raised by p.eps·mean(diag)
// first; column j: the pivot by a tree reduction, then the rows below in parallel. O(n³/6/WG) per invocation:
// meant for Gram matrices of a few thousand inputs at most. A non-positive pivot sets status = j + 1.
@compute @workgroup_size(WG)
fn rm_chol(@builtin(local_invocation_index) lid: u32) {
  let n = p.cols;
  var tr = 0.0;
  for (var k = lid; k < n; k += WG) { tr += ch_a[k * n + k]; }
  red0[lid] = tr; red1[lid] = 0.0; red2[lid] = 0.0;
  reduce3(lid);
  let jitter = p.eps * red0[0] / f32(n);
  workgroupBarrier();
  for (var k = lid; k < n; k += WG) { ch_a[k * n + k] += jitter; }
  if (lid == 0u) { ch_status[0] = 0u; }
  storageBarrier();
  workgroupBarrier();
  for (var j = 0u; j < n; j++) {
    var s = 0.0;
    for (var k = lid; k < j; k += WG) { let v = ch_a[j * n + k]; s += v * v; }
    red0[lid] = s; red1[lid] = 0.0; red2[lid] = 0.0;
    reduce3(lid);
    if (lid == 0u) {
      var d = ch_a[j * n + j] - red0[0];
      if (!(d > 0.0)) {
        if (ch_status[0] == 0u) { ch_status[0] = j + 1u; }
        d = 1e-30;
      }
      let l = sqrt(d);
      ch_a[j * n + j] = l;
      ch_pivot = l;
    }
    storageBarrier();
    workgroupBarrier();
    let l = ch_pivot;
    for (var i = j + 1u + lid; i < n; i += WG) {
      var t = ch_a[i * n + j];
      for (var k = 0u; k < j; k++) { t -= ch_a[i * n + k] * ch_a[j * n + k]; }
      ch_a[i * n + j] = t / l;
    }
    storageBarrier();
    workgroupBarrier();
  }
}

@group(0) @binding(1) var<storage, read> so_l: array<f32>;
@group(0) @binding(2) var<storage, read> so_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> so_x: array<f32>;

// Row r of X with X·L·Lᵀ = B: y·Lᵀ = b forward (y stored in x's row), then x·L = y backward in place.
@compute @workgroup_size(WG)
fn rm_solve(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = lin_index(wid, nwg, lid);
  if (r >= p.rows) { return; }
  let n = p.cols;
  let o = r * n;
  for (var i = 0u; i < n; i++) {
    var s = so_b[o + i];
    for (var k = 0u; k < i; k++) { s -= so_l[i * n + k] * so_x[o + k]; }
    so_x[o + i] = s / so_l[i * n + i];
  }
  for (var ii = 0u; ii < n; ii++) {
    let i = n - 1u - ii;
    var s = so_x[o + i];
    for (var k = i + 1u; k < n; k++) { s -= so_l[k * n + i] * so_x[o + k]; }
    so_x[o + i] = s / so_l[i * n + i];
  }
}
