// Cut Cross-Entropy (CCE, Wijmans et al., arXiv 2411.09009): softmax cross-entropy of the logits X·Eᵀ + b over
// every item, without ever writing the [rows, V] logits. X: hidden states [rows, d]; E: the item table [V, d]
// (the output head's weight); b: the head's bias [V] (optional).
//
// A tile is TB = 16 tokens × TI = 64 items. A workgroup has 64 invocations; invocation lid computes the 4 × 4
// logits of tokens 4·(lid % 4) + a (a < 4) and items (lid / 4) + 16·q (q < 4) of the tile: per step of the d loop
// it loads 4 values of X and 4 of E for 16 multiply-adds (register blocking, as kernels/matmul.wgsl does, which
// is also what a software adapter runs fastest). Logits are recomputed wherever they are needed.
//
//   cce_partial  forward. A workgroup owns (token block, item split): it walks the split's item tiles keeping one
//                running (max, Σexp) per token and invocation (the tile-local log-sum-exp, common/logsumexp.wgsl),
//                merges the 16 invocations of each token in workgroup memory and writes ONE partial (max, sum) per
//                (token, split) to partial[rows, total_splits]. Splits exist only to fill the GPU when there are few
//                token blocks (split-K, as in flash-decoding); no atomics: every partial has one writer. The tile
//                holding a token's target also writes that logit (exactly one invocation in the grid does).
//   cce_finish   per token: merges its partials into the LSE (saved for backward) and its loss LSE − logit[y].
//                (The mean over counted rows is cross_entropy.wgsl's ce_reduce.)
//   cce_dx       backward, dX = G·E with G = (softmax − onehot)·g/count: a workgroup owns a token block and walks
//                every item tile: recomputes the tile's G into workgroup memory, then adds G_tile·E_tile into its
//                [16, DC] accumulator in workgroup memory, in 4 × 4 register blocks (each invocation always owns
//                the same blocks: no races, no atomics). Columns beyond DC are done in further passes (c0, cw).
//   cce_de       backward, dE = Gᵀ·X and db = colsum G: a workgroup owns an item block (64 items) and walks every
//                token tile, the mirror image of cce_dx ([64, DC] accumulator). Backward therefore recomputes each
//                logit twice (once per kernel): the price of needing no float atomics (WGSL only has
//                atomic<u32/i32>), and of a deterministic result (every sum has a fixed order).
// Gradient filter (p.grad_filter > 0): a tile whose probabilities are all below the threshold and that holds no
// target skips its accumulation (the recompute of its logits is still paid). Its contribution, each
// |G| < threshold·g/count, is dropped: approximate, which is why the default is 0 (off, exact).
//
// E may be larger than one storage binding: the host dispatches once per row range of E (and of dE), each
// dispatch covering the items [i0, i1); e_r0/e_lead (o_r0/o_lead) locate item i in the bound range at element
// e_lead + (i − e_r0)·d. Targets outside [0, V) (−1 = padding) take no loss and no gradient and are not counted.

struct Params {
  rows: u32,
  v: u32,
  d: u32,
  has_bias: u32,
  i0: u32,          // items of this dispatch: [i0, i1)
  i1: u32,
  e_r0: u32,        // E's binding starts at item e_r0, e_lead elements before it
  e_lead: u32,
  o_r0: u32,        // dE's binding (cce_de)
  o_lead: u32,
  splits: u32,      // cce_partial: item splits of this dispatch
  split_base: u32,  // cce_partial: its first partial column
  total_splits: u32,
  accumulate: u32,  // backward: add into the outputs (1) or overwrite them (0)
  c0: u32,          // backward: the column pass [c0, c0 + cw)
  cw: u32,
  grad_filter: f32, // backward: gradient filter threshold (0 = off)
}

@group(0) @binding(0) var<uniform> p: Params;

//#include "common/logsumexp.wgsl"

const TB: u32 = 16u;
const TI: u32 = 64u;
const WG: u32 = 64u;
/** Columns of the backward accumulators per pass (a multiple of 4; the host sizes it to workgroup memory). */
override DC: u32 = 64u;

fn lin_group(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn valid_target(t: i32) -> bool {
  return t >= 0 && u32(t) < p.v;
}

fn e_index(item: u32) -> u32 {
  return p.e_lead + (item - p.e_r0) * p.d;
}

// Shared by every entry point: hidden states, item table, bias, targets.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> e: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> tgt: array<i32>;

/**
 * The 4 × 4 logits of invocation lid in the tile of tokens [r0, r0 + 16) × items [it0, it1): acc[a][q] for token
 * r0 + 4·(lid % 4) + a and item it0 + lid / 4 + 16·q. Out-of-range tokens and items are clamped for the loads
 * (the caller drops them), so the loop has no branch.
 */
fn tile_logits(lid: u32, r0: u32, it0: u32, it1: u32) -> array<vec4f, 4> {
  let tg = lid % 4u;
  let lane = lid / 4u;
  let lastr = p.rows - 1u;
  let lasti = it1 - 1u;
  let x0 = min(r0 + tg * 4u, lastr) * p.d;
  let x1 = min(r0 + tg * 4u + 1u, lastr) * p.d;
  let x2 = min(r0 + tg * 4u + 2u, lastr) * p.d;
  let x3 = min(r0 + tg * 4u + 3u, lastr) * p.d;
  let j0 = min(it0 + lane, lasti);
  let j1 = min(it0 + lane + 16u, lasti);
  let j2 = min(it0 + lane + 32u, lasti);
  let j3 = min(it0 + lane + 48u, lasti);
  let e0 = e_index(j0);
  let e1 = e_index(j1);
  let e2 = e_index(j2);
  let e3 = e_index(j3);
  var acc = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var k = 0u; k < p.d; k++) {
    let ev = vec4f(e[e0 + k], e[e1 + k], e[e2 + k], e[e3 + k]);
    acc[0] += x[x0 + k] * ev;
    acc[1] += x[x1 + k] * ev;
    acc[2] += x[x2 + k] * ev;
    acc[3] += x[x3 + k] * ev;
  }
  if (p.has_bias != 0u) {
    let bv = vec4f(bias[j0], bias[j1], bias[j2], bias[j3]);
    for (var a = 0u; a < 4u; a++) { acc[a] += bv; }
  }
  return acc;
}

// ---- forward ----------------------------------------------------------------------------------------------
@group(0) @binding(5) var<storage, read_write> f_partial: array<vec2f>; // [rows, total_splits]
@group(0) @binding(6) var<storage, read_write> f_tlogit: array<f32>;    // [rows]: the target's logit

var<workgroup> sh_ms: array<vec2f, 256>; // [invocation][4 tokens]

@compute @workgroup_size(WG)
fn cce_partial(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = lin_group(wid, nwg);
  let tb = g / p.splits;
  let s = g - tb * p.splits;
  let r0 = tb * TB;
  let tg = lid % 4u;
  let lane = lid / 4u;
  let n = p.i1 - p.i0;
  let per = (n + p.splits - 1u) / p.splits;
  let start = p.i0 + min(n, s * per);
  let stop = p.i0 + min(n, (s + 1u) * per);
  var t: vec4i = vec4i(-1);
  for (var a = 0u; a < 4u; a++) {
    let row = r0 + tg * 4u + a;
    if (row < p.rows) { t[a] = tgt[row]; }
  }
  var ms = array<vec2f, 4>(LSE_EMPTY, LSE_EMPTY, LSE_EMPTY, LSE_EMPTY);
  for (var a = 0u; a < 4u; a++) { ms[a] = LSE_EMPTY; }
  for (var base = start; base < stop; base += TI) {
    let acc = tile_logits(lid, r0, base, stop);
    for (var q = 0u; q < 4u; q++) {
      let item = base + lane + 16u * q;
      if (item < stop) {
        for (var a = 0u; a < 4u; a++) {
          let z = acc[a][q];
          ms[a] = lse_push(ms[a], z);
          if (i32(item) == t[a]) { f_tlogit[r0 + tg * 4u + a] = z; }
        }
      }
    }
  }
  for (var a = 0u; a < 4u; a++) { sh_ms[lid * 4u + a] = ms[a]; }
  workgroupBarrier();
  if (lid < TB) {
    // Token lid = 4·tg' + a': held by the 16 invocations with lid % 4 = tg'.
    let tg2 = lid / 4u;
    let a2 = lid % 4u;
    var m = LSE_EMPTY;
    for (var l = 0u; l < 16u; l++) { m = lse_merge(m, sh_ms[(l * 4u + tg2) * 4u + a2]); }
    let row = r0 + lid;
    if (row < p.rows) { f_partial[row * p.total_splits + p.split_base + s] = m; }
  }
}

@group(0) @binding(1) var<storage, read> n_partial: array<vec2f>;
@group(0) @binding(2) var<storage, read> n_tlogit: array<f32>;
@group(0) @binding(3) var<storage, read> n_t: array<i32>;
@group(0) @binding(4) var<storage, read_write> n_lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> n_loss: array<f32>;

@compute @workgroup_size(WG)
fn cce_finish(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = lin_group(wid, nwg) * WG + lid;
  if (row >= p.rows) { return; }
  var ms = LSE_EMPTY;
  for (var s = 0u; s < p.total_splits; s++) { ms = lse_merge(ms, n_partial[row * p.total_splits + s]); }
  let lse = lse_value(ms);
  n_lse[row] = lse;
  var loss = 0.0;
  if (valid_target(n_t[row])) { loss = lse - n_tlogit[row]; }
  n_loss[row] = loss;
}

// ---- backward ---------------------------------------------------------------------------------------------
@group(0) @binding(5) var<storage, read> b_lse: array<f32>;
@group(0) @binding(6) var<storage, read> b_g: array<f32>;     // [1]: the loss's gradient
@group(0) @binding(7) var<storage, read> b_count: array<f32>; // [1]: rows counted in forward
@group(0) @binding(8) var<storage, read_write> b_out: array<f32>;  // dX [rows, d] or dE (range)
@group(0) @binding(9) var<storage, read_write> b_db: array<f32>;   // db [V] (cce_de only)

var<workgroup> sh_g: array<f32, 1024>;  // G tile [TB tokens][TI items]
var<workgroup> sh_acc: array<vec4f, 16u * DC>; // cce_de: [64 items][DC / 4]; cce_dx: [16 tokens][DC / 4]
var<workgroup> sh_keep: atomic<u32>;
var<workgroup> sh_keep_u: u32;

/**
 * Recompute the G tile of tokens [r0, r0 + 16) × items [it0, it1) into sh_g (0 outside rows, items and valid
 * targets) and say whether the tile must be accumulated (always, unless the gradient filter drops it).
 * Called by every invocation in uniform control flow (it contains barriers).
 */
fn g_tile(lid: u32, r0: u32, it0: u32, it1: u32) -> bool {
  let tg = lid % 4u;
  let lane = lid / 4u;
  let acc = tile_logits(lid, r0, it0, it1);
  var keep = p.grad_filter <= 0.0;
  let coef = b_g[0] / max(b_count[0], 1.0);
  for (var a = 0u; a < 4u; a++) {
    let tok = tg * 4u + a;
    let row = r0 + tok;
    var t = -1;
    var lse = 0.0;
    if (row < p.rows) {
      t = tgt[row];
      lse = b_lse[row];
    }
    let ok = valid_target(t);
    for (var q = 0u; q < 4u; q++) {
      let il = lane + 16u * q;
      let item = it0 + il;
      var gv = 0.0;
      if (ok && item < it1) {
        let prob = exp(acc[a][q] - lse);
        let hit = i32(item) == t;
        gv = (prob - select(0.0, 1.0, hit)) * coef;
        keep = keep || hit || prob >= p.grad_filter;
      }
      sh_g[tok * TI + il] = gv;
    }
  }
  // Without the filter one barrier publishes the tile (p.grad_filter is uniform, so both paths are uniform).
  if (p.grad_filter <= 0.0) {
    workgroupBarrier();
    return true;
  }
  if (lid == 0u) { atomicStore(&sh_keep, 0u); }
  workgroupBarrier();
  if (keep) { atomicOr(&sh_keep, 1u); }
  workgroupBarrier();
  if (lid == 0u) { sh_keep_u = atomicLoad(&sh_keep); }
  return workgroupUniformLoad(&sh_keep_u) != 0u;
}

/** Four adjacent values of row `base` from column c (columns ≥ lim are clamped for the load; not stored). */
fn e4(base: u32, c: u32, lim: u32) -> vec4f {
  return vec4f(e[base + c], e[base + min(c + 1u, lim)], e[base + min(c + 2u, lim)], e[base + min(c + 3u, lim)]);
}

fn x4(base: u32, c: u32, lim: u32) -> vec4f {
  return vec4f(x[base + c], x[base + min(c + 1u, lim)], x[base + min(c + 2u, lim)], x[base + min(c + 3u, lim)]);
}

@compute @workgroup_size(WG)
fn cce_dx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r0 = lin_group(wid, nwg) * TB;
  let cg = (p.cw + 3u) / 4u;  // column groups of 4 in this pass
  let blocks = 4u * cg;       // 4 × 4 blocks: (token group, column group)
  let lim = p.c0 + p.cw - 1u;
  for (var i = lid; i < TB * cg; i += WG) { sh_acc[i] = vec4f(0.0); }
  for (var it0 = p.i0; it0 < p.i1; it0 += TI) {
    let it1 = min(it0 + TI, p.i1);
    if (g_tile(lid, r0, it0, it1)) {
      let ni = it1 - it0;
      for (var blk = lid; blk < blocks; blk += WG) {
        let tg = blk % 4u;
        let c = p.c0 + (blk / 4u) * 4u;
        var s = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
        for (var i = 0u; i < ni; i++) {
          let ev = e4(e_index(it0 + i), c, lim);
          for (var a = 0u; a < 4u; a++) { s[a] += sh_g[(tg * 4u + a) * TI + i] * ev; }
        }
        for (var a = 0u; a < 4u; a++) { sh_acc[(tg * 4u + a) * cg + blk / 4u] += s[a]; }
      }
    }
    workgroupBarrier(); // sh_g is rewritten by the next tile
  }
  for (var i = lid; i < TB * cg; i += WG) {
    let tok = i / cg;
    let row = r0 + tok;
    let c = p.c0 + (i - tok * cg) * 4u;
    let v = sh_acc[i];
    if (row < p.rows) {
      for (var q = 0u; q < 4u; q++) {
        if (c + q <= lim) {
          let o = row * p.d + c + q;
          var w = v[q];
          if (p.accumulate != 0u) { w += b_out[o]; }
          b_out[o] = w;
        }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn cce_de(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let it0 = p.i0 + lin_group(wid, nwg) * TI;
  let it1 = min(it0 + TI, p.i1);
  let cg = (p.cw + 3u) / 4u;
  let blocks = 16u * cg;      // 4 × 4 blocks: (item group of 4, column group of 4)
  let lim = p.c0 + p.cw - 1u;
  for (var i = lid; i < TI * cg; i += WG) { sh_acc[i] = vec4f(0.0); }
  var db = 0.0; // invocation lid owns item it0 + lid's bias gradient
  for (var r0 = 0u; r0 < p.rows; r0 += TB) {
    if (g_tile(lid, r0, it0, max(it1, it0 + 1u))) {
      let nr = min(TB, p.rows - r0);
      for (var blk = lid; blk < blocks; blk += WG) {
        let ig = blk % 16u;
        let c = p.c0 + (blk / 16u) * 4u;
        var s = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
        for (var r = 0u; r < nr; r++) {
          let xv = x4((r0 + r) * p.d, c, lim);
          for (var a = 0u; a < 4u; a++) { s[a] += sh_g[r * TI + ig * 4u + a] * xv; }
        }
        for (var a = 0u; a < 4u; a++) { sh_acc[(ig * 4u + a) * cg + blk / 16u] += s[a]; }
      }
      var sb = 0.0;
      for (var r = 0u; r < nr; r++) { sb += sh_g[r * TI + lid]; }
      db += sb;
    }
    workgroupBarrier();
  }
  for (var i = lid; i < TI * cg; i += WG) {
    let il = i / cg;
    let item = it0 + il;
    let c = p.c0 + (i - il * cg) * 4u;
    let v = sh_acc[i];
    if (item < it1) {
      for (var q = 0u; q < 4u; q++) {
        if (c + q <= lim) {
          let o = p.o_lead + (item - p.o_r0) * p.d + c + q;
          var w = v[q];
          if (p.accumulate != 0u) { w += b_out[o]; }
          b_out[o] = w;
        }
      }
    }
  }
  if (p.has_bias != 0u && p.c0 == 0u && it0 + lid < it1) {
    let item = it0 + lid;
    var w = db;
    if (p.accumulate != 0u) { w += b_db[item]; }
    b_db[item] = w;
  }
}
