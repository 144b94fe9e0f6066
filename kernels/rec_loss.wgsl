// Sampled recommender losses (loss/sampled.ts): per row, the positive (its target) and K negatives. One kernel
// family serves CCE− (arXiv 2509.09682), sampled softmax with logQ correction, BCE and gBCE (arXiv 2308.07192).
// The row's logits s [rows, 1 + K] are small (K ≪ V) and are the only per-row buffer: forward writes them,
// backward turns them into G in place. Column 0 is the positive, column j ≥ 1 negative j − 1.
//
//   rl_logits  one invocation per (row, column): s = x·E[item] + b[item], plus for softmax negatives the
//              correction corr − logq[item]. A masked column (the row ignored, the negative equal to the target
//              or outside [0, V)) gets MASKED (−huge): exp(MASKED − m) = 0 in the softmax and
//              softplus(MASKED) = σ(MASKED) = 0 in BCE, so it drops out with no branch downstream.
//              E may exceed one binding: one dispatch per row range [i0, i1) of E, each writing the columns
//              whose item it holds (masked columns are written by the first dispatch).
//   rl_rows    one invocation per row: softmax: LSE (saved) and loss LSE − s₀; bce: β·softplus(−s₀) + Σ softplus(sⱼ).
//              (The mean over counted rows is cross_entropy.wgsl's ce_reduce.)
//   rl_grad    backward, in place over s: G = coef·(softmax − onehot) or coef·(β(σ(s₀) − 1), σ(sⱼ)).
//   rl_dx      one invocation per (row, 4 columns of d): dX = Σⱼ G[row, j]·E[itemⱼ] (fixed order: deterministic).
//   rl_de      one invocation per (row, j), looping over d: dE[itemⱼ] += G[row, j]·x[row] and db[itemⱼ] += G, by
//              a compare-and-swap loop on atomic<u32> (WGSL has no float atomics). Cost: one CAS per
//              contribution, retried only when two rows hit the same item entry at once (rare for sampled
//              items, frequent only for very popular ones). The order of the additions is not fixed, so dE is
//              reproducible to rounding only (last bits may differ from run to run).
//   rl_sample  one invocation per (row, j): negative sampling, counter-based (a hash of seed, step, row, j,
//              attempt), so draws are deterministic by (seed, step) and independent of the launch layout.

struct Params {
  rows: u32,
  v: u32,
  d: u32,
  k: u32,          // negatives per row; columns = k + 1
  has_bias: u32,
  i0: u32,         // items of this dispatch: [i0, i1)
  i1: u32,
  e_r0: u32,       // E's (or dE's) binding starts at item e_r0, e_lead elements before it
  e_lead: u32,
  first: u32,      // rl_logits: the first dispatch (writes masked columns); rl_dx: 0 = overwrite, 1 = add
  mode: u32,       // 0 softmax, 1 bce
  use_logq: u32,   // softmax: subtract logq[item] from negatives
  corr: f32,       // softmax: added to every negative
  beta: f32,       // bce: the positive's exponent (gBCE)
  seed: u32,       // rl_sample
  step: u32,
  popularity: u32, // rl_sample: 1 = alias table, 0 = uniform
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//#include "common/logsumexp.wgsl"

override WG: u32 = 64u;
const MASKED: f32 = -1.0e30;

fn lin(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn valid_target(t: i32) -> bool {
  return t >= 0 && u32(t) < p.v;
}

fn cols() -> u32 {
  return p.k + 1u;
}

// ---- forward ------------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> l_x: array<f32>;
@group(0) @binding(2) var<storage, read> l_e: array<f32>;
@group(0) @binding(3) var<storage, read> l_b: array<f32>;
@group(0) @binding(4) var<storage, read> l_t: array<i32>;
@group(0) @binding(5) var<storage, read> l_neg: array<i32>;   // [rows, k]
@group(0) @binding(6) var<storage, read> l_logq: array<f32>;  // [V] (a dummy unless use_logq)
@group(0) @binding(7) var<storage, read_write> l_s: array<f32>; // [rows, k + 1]

/** The item of column j of a row, or −1 when the column is masked. */
fn column_item(row: u32, j: u32, t: i32) -> i32 {
  if (!valid_target(t)) { return -1; }
  if (j == 0u) { return t; }
  let n = l_neg[row * p.k + j - 1u];
  if (n == t || n < 0 || u32(n) >= p.v) { return -1; }
  return n;
}

@compute @workgroup_size(WG)
fn rl_logits(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * cols()) { return; }
  let row = i / cols();
  let j = i - row * cols();
  let item = column_item(row, j, l_t[row]);
  if (item < 0) {
    if (p.first != 0u) { l_s[i] = MASKED; }
    return;
  }
  let it = u32(item);
  if (it < p.i0 || it >= p.i1) { return; }
  let eo = p.e_lead + (it - p.e_r0) * p.d;
  let xo = row * p.d;
  var s = 0.0;
  for (var c = 0u; c < p.d; c++) { s += l_x[xo + c] * l_e[eo + c]; }
  if (p.has_bias != 0u) { s += l_b[it]; }
  if (j > 0u && p.mode == 0u) {
    s += p.corr;
    if (p.use_logq != 0u) { s -= l_logq[it]; }
  }
  l_s[i] = s;
}

@group(0) @binding(1) var<storage, read> r_s: array<f32>;
@group(0) @binding(2) var<storage, read> r_t: array<i32>;
@group(0) @binding(3) var<storage, read_write> r_lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> r_loss: array<f32>;

fn softplus(u: f32) -> f32 {
  // log(1 + e^u) without overflow for large u and without losing small values for very negative u.
  return max(u, 0.0) + log(1.0 + exp(-abs(u)));
}

fn sigmoid(u: f32) -> f32 {
  if (u >= 0.0) { return 1.0 / (1.0 + exp(-u)); }
  let z = exp(u);
  return z / (1.0 + z);
}

@compute @workgroup_size(WG)
fn rl_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = lin(wid, nwg, lid);
  if (row >= p.rows) { return; }
  let base = row * cols();
  var loss = 0.0;
  if (p.mode == 0u) {
    var ms = LSE_EMPTY;
    for (var j = 0u; j < cols(); j++) { ms = lse_push(ms, r_s[base + j]); }
    let lse = lse_value(ms);
    r_lse[row] = lse;
    loss = lse - r_s[base];
  } else {
    loss = p.beta * softplus(-r_s[base]);
    for (var j = 1u; j < cols(); j++) { loss += softplus(r_s[base + j]); }
    r_lse[row] = 0.0;
  }
  if (!valid_target(r_t[row])) { loss = 0.0; }
  r_loss[row] = loss;
}

// ---- backward -----------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> g_s: array<f32>; // logits in, G out
@group(0) @binding(2) var<storage, read> g_t: array<i32>;
@group(0) @binding(3) var<storage, read> g_lse: array<f32>;
@group(0) @binding(4) var<storage, read> g_g: array<f32>;     // [1]: the loss's gradient
@group(0) @binding(5) var<storage, read> g_count: array<f32>; // [1]: rows counted in forward

@compute @workgroup_size(WG)
fn rl_grad(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * cols()) { return; }
  let row = i / cols();
  let j = i - row * cols();
  if (!valid_target(g_t[row])) {
    g_s[i] = 0.0;
    return;
  }
  let coef = g_g[0] / g_count[0]; // count ≥ 1: this row is counted
  let s = g_s[i];
  var gv = 0.0;
  if (p.mode == 0u) {
    gv = exp(s - g_lse[row]) - select(0.0, 1.0, j == 0u);
  } else if (j == 0u) {
    gv = p.beta * (sigmoid(s) - 1.0);
  } else {
    gv = sigmoid(s);
  }
  g_s[i] = gv * coef;
}

@group(0) @binding(1) var<storage, read> x_g: array<f32>;
@group(0) @binding(2) var<storage, read> x_e: array<f32>;
@group(0) @binding(3) var<storage, read> x_t: array<i32>;
@group(0) @binding(4) var<storage, read> x_neg: array<i32>;
@group(0) @binding(5) var<storage, read_write> x_dx: array<f32>;

fn x_item(row: u32, j: u32, t: i32) -> i32 {
  if (!valid_target(t)) { return -1; }
  if (j == 0u) { return t; }
  let n = x_neg[row * p.k + j - 1u];
  if (n == t || n < 0 || u32(n) >= p.v) { return -1; }
  return n;
}

@compute @workgroup_size(WG)
fn rl_dx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // One invocation per (row, group of 4 columns): each column's item is looked up once per 4 columns, and the
  // four E values of a row are adjacent. Columns past d are clamped for the loads and not stored.
  let groups = (p.d + 3u) / 4u;
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * groups) { return; }
  let row = i / groups;
  let c = (i - row * groups) * 4u;
  let last = p.d - 1u;
  let t = x_t[row];
  var s = vec4f(0.0);
  for (var j = 0u; j < cols(); j++) {
    let item = x_item(row, j, t);
    if (item < 0) { continue; }
    let it = u32(item);
    if (it < p.i0 || it >= p.i1) { continue; }
    let eo = p.e_lead + (it - p.e_r0) * p.d;
    let gv = x_g[row * cols() + j];
    s += gv * vec4f(x_e[eo + c], x_e[eo + min(c + 1u, last)], x_e[eo + min(c + 2u, last)], x_e[eo + min(c + 3u, last)]);
  }
  for (var q = 0u; q < 4u; q++) {
    if (c + q < p.d) {
      let o = row * p.d + c + q;
      var v = s[q];
      if (p.first != 0u) { v += x_dx[o]; }
      x_dx[o] = v;
    }
  }
}

@group(0) @binding(1) var<storage, read> d_g: array<f32>;
@group(0) @binding(2) var<storage, read> d_x: array<f32>;
@group(0) @binding(3) var<storage, read> d_t: array<i32>;
@group(0) @binding(4) var<storage, read> d_neg: array<i32>;
@group(0) @binding(5) var<storage, read_write> d_de: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> d_db: array<atomic<u32>>;

fn d_item(row: u32, j: u32, t: i32) -> i32 {
  if (!valid_target(t)) { return -1; }
  if (j == 0u) { return t; }
  let n = d_neg[row * p.k + j - 1u];
  if (n == t || n < 0 || u32(n) >= p.v) { return -1; }
  return n;
}

fn add_de(i: u32, v: f32) {
  var old = atomicLoad(&d_de[i]);
  loop {
    let r = atomicCompareExchangeWeak(&d_de[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}

fn add_db(i: u32, v: f32) {
  var old = atomicLoad(&d_db[i]);
  loop {
    let r = atomicCompareExchangeWeak(&d_db[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}

@compute @workgroup_size(WG)
fn rl_de(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // One invocation per (row, j): the item and G are read once, then d adjacent compare-and-swap adds.
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * cols()) { return; }
  let row = i / cols();
  let j = i - row * cols();
  let item = d_item(row, j, d_t[row]);
  if (item < 0) { return; }
  let it = u32(item);
  if (it < p.i0 || it >= p.i1) { return; }
  let gv = d_g[i];
  if (gv == 0.0) { return; }
  let o = p.e_lead + (it - p.e_r0) * p.d;
  let xo = row * p.d;
  for (var c = 0u; c < p.d; c++) { add_de(o + c, gv * d_x[xo + c]); }
  if (p.has_bias != 0u) { add_db(it, gv); }
}

// ---- negative sampling --------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> n_t: array<i32>;
@group(0) @binding(2) var<storage, read> n_prob: array<f32>;  // alias table (dummies when uniform)
@group(0) @binding(3) var<storage, read> n_alias: array<i32>;
@group(0) @binding(4) var<storage, read_write> n_out: array<i32>; // [rows, k]

const MAX_ATTEMPTS: u32 = 32u;

//#include "common/hash.wgsl"

fn draw_hash(row: u32, j: u32, attempt: u32) -> u32 {
  var h = mix32(p.seed);
  h = mix32(h ^ p.step);
  h = mix32(h ^ row);
  return mix32(h ^ (j * 0x9e3779b9u + attempt));
}

/** ⌊h·m / 2³²⌋: an unbiased map of a uniform u32 onto [0, m), from 16-bit halves (WGSL has no u64). */
fn mulhi(h: u32, m: u32) -> u32 {
  let al = h & 0xffffu;
  let ah = h >> 16u;
  let bl = m & 0xffffu;
  let bh = m >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let carry = ((ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu)) >> 16u;
  return ah * bh + (lh >> 16u) + (hl >> 16u) + carry;
}

/** Uniform over 1..V−1 without t: draw among the V − 2 others and step over t (no rejection). */
fn uniform_item(t: i32, h: u32) -> i32 {
  if (t >= 1 && u32(t) < p.v) {
    let n = 1u + mulhi(h, p.v - 2u);
    return i32(select(n, n + 1u, n >= u32(t)));
  }
  return i32(1u + mulhi(h, p.v - 1u));
}

@compute @workgroup_size(WG)
fn rl_sample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.k) { return; }
  let row = i / p.k;
  let j = i - row * p.k;
  let t = n_t[row];
  var n = -1;
  if (p.popularity != 0u) {
    for (var a = 0u; a < MAX_ATTEMPTS; a++) {
      let h = draw_hash(row, j, a);
      let col = mulhi(h, p.v);
      let u = f32(mix32(h ^ 0x68e31da4u) >> 8u) / 16777216.0;
      let c = select(n_alias[col], i32(col), u < n_prob[col]);
      if (c != t && c != 0) {
        n = c;
        break;
      }
    }
    if (n < 0) { n = uniform_item(t, draw_hash(row, j, MAX_ATTEMPTS)); }
  } else {
    n = uniform_item(t, draw_hash(row, j, 0u));
  }
  n_out[i] = n;
}
