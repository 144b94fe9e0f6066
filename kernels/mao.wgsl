// mao: momentum-aware optimization with a low-rank momentum and a factored second moment, one tensor per dispatch
// (src/engine/optim/mao.ts; the formulas and the CPU reference: src/engine/cpu/mao.ts).
//
// A factored tensor W [rows, cols] keeps U [rows, r], an r×r core S, V [cols, r] (its momentum ≈ U·S·Vᵀ), the
// row/column means R [rows], C [cols] of g², and with error feedback a dense E. All factors of all tensors live in
// ONE `state` buffer at per-tensor offsets; `work` is a scratch buffer sized for the largest tensor:
//   W1 [rows, r] = U·S (the step's low-rank momentum, one dot of length r per element), Y [rows, r], A [rows, r],
//   Z [cols, r], T1, T2, Gm [r, r], rowpart [rows] (per-row partial sums of u²).
// Step of a factored tensor:
//   mao_rows, mao_cols (R, C) → mao_meanr → [residual: A = g·V (mao_mul), T1 = Uᵀ·A (mao_atb), K (mao_kcore)] →
//   mao_us (W1 = U·S, or U·K) → mao_sumsq (per row Σu²) → mao_total → mao_update
//   then either the projection S ← β1·S + (1−β1)·Uᵀ·g·V (mao_mul, mao_atb as needed, mao_core)
//   or the refit (subspace iteration, mao_omega / mao_atb / mao_small / mao_mul / CholQR2 = mao_atb + mao_chol +
//   mao_trsm, twice) ending with mao_commit; with error feedback mao_us + mao_ef (E ← M̃ − U·S·Vᵀ).
// The low-rank operator is never formed: M̃·X = β1·U·(S·(Vᵀ·X)) + (1−β1)·s·g·X (with error feedback E holds M̃
// dense after mao_update, and M̃·X = E·X). Vectors and small matrices: mao_adam_scalars + mao_adam_update.
// Dispatches in one pass are ordered, so each kernel sees the previous one's writes. Every kernel that writes
// state returns at once when the step is skipped (non-finite gradient), so a skipped step changes nothing.
//#include "common/finite.wgsl"

override WG: u32 = 256u;

const USE_SKIP: u32 = 1u;
const USE_CLIP: u32 = 2u;

struct MaoParams {
  rows: u32,
  cols: u32,
  r: u32,
  mode: u32,
  numTensors: u32,
  tensor: u32,       // slot in `scalars`
  uOff: u32,         // state offsets (elements)
  sOff: u32,
  vOff: u32,
  rOff: u32,
  cOff: u32,
  amOff: u32,        // dense Adam m, v (unfactored tensors)
  avOff: u32,
  kind: u32,         // 0: update with M̃; 1: M̃ with error feedback (E); 2: residual (low-rank momentum + g outside it)
  w1Off: u32,        // work offsets
  rowpartOff: u32,
  // operands of the generic kernels (mao_atb, mao_mul, mao_small, mao_core, mao_trsm, mao_chol, mao_commit):
  aSel: u32,         // 0: state, 1: work
  aOff: u32,
  bSel: u32,
  bOff: u32,
  oOff: u32,         // output (work)
  len: u32,          // rows of the operands of mao_atb / mao_trsm
  flag: u32,         // mao_mul: 1 = Mᵀ·X; mao_small: 1 = Sᵀ; mao_mul: bit 1 = D is E (else g)
  seed: u32,
  xOff: u32,         // mao_commit: source of V; mao_small: T operand
  maxNorm: f32,
  beta1: f32,
  beta2: f32,
  bc1: f32,          // 1 − β1ᵗ
  bc2: f32,          // 1 − β2ᵗ
  eps: f32,
  pMax: f32,
  clip: f32,
  lr: f32,
  decayKeep: f32,    // 1 − lr·λ (1 without decay)
  cL: f32,           // mao_mul: coefficient of the low-rank part; mao_core: of S
  cD: f32,           // mao_mul: coefficient of the dense part (times the gradient scale when D is g); mao_core: of T
  omegaScale: f32,
}
@group(0) @binding(0) var<uniform> p: MaoParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
@group(0) @binding(5) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(6) var<storage, read_write> ef: array<f32>;
@group(0) @binding(7) var<storage, read> norms: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> shared_floor: f32;

// The gradient scale of this step: the clipping factor, or −1 when the step is skipped (non-finite gradient).
fn grad_scale() -> f32 {
  if (p.mode == 0u) { return 1.0; }
  let total = norms[p.numTensors];
  if ((p.mode & USE_SKIP) != 0u && !is_finite(total)) { return -1.0; }
  if ((p.mode & USE_CLIP) != 0u) { return min(1.0, p.maxNorm / (sqrt(total) + 1e-6)); }
  return 1.0;
}

fn linear_wg(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

fn reduce_wg(lid: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
}

fn ld(sel: u32, i: u32) -> f32 {
  if (sel == 0u) { return state[i]; }
  return work[i];
}

fn precond(vhat: f32) -> f32 { return min(inverseSqrt(vhat + p.eps), p.pMax); }

// ---------------- second moment ----------------

fn row_col_mean(start: u32, stride: u32, count: u32, lid: u32, s: f32) -> f32 {
  var acc = 0.0;
  for (var k = lid; k < count; k = k + WG) {
    let g = grad[start + k * stride] * s;
    acc = acc + g * g;
  }
  red[lid] = acc;
  reduce_wg(lid);
  return red[0] / f32(count);
}

@compute @workgroup_size(WG)
fn mao_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = linear_wg(wid, nwg);
  let s = grad_scale();
  if (row >= p.rows || s < 0.0) { return; }
  let mean = row_col_mean(row * p.cols, 1u, p.cols, lid, s);
  if (lid == 0u) { state[p.rOff + row] = p.beta2 * state[p.rOff + row] + (1.0 - p.beta2) * mean; }
}

@compute @workgroup_size(WG)
fn mao_cols(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = linear_wg(wid, nwg);
  let s = grad_scale();
  if (col >= p.cols || s < 0.0) { return; }
  let mean = row_col_mean(col, p.cols, p.rows, lid, s);
  if (lid == 0u) { state[p.cOff + col] = p.beta2 * state[p.cOff + col] + (1.0 - p.beta2) * mean; }
}

// scalars[4·tensor] = max(mean(R), 1e-30).
@compute @workgroup_size(WG)
fn mao_meanr(@builtin(local_invocation_index) lid: u32) {
  let s = grad_scale();
  if (s < 0.0) { return; }
  var acc = 0.0;
  for (var i = lid; i < p.rows; i = i + WG) { acc = acc + state[p.rOff + i]; }
  red[lid] = acc;
  reduce_wg(lid);
  if (lid == 0u) { scalars[p.tensor * 4u] = max(red[0] / f32(p.rows), 1e-30); }
}

// ---------------- the update ----------------

// W1 [rows, r] = U·S (flag 1: U·K with K = work[xOff]) into work (the low-rank momentum's left factor).
@compute @workgroup_size(WG)
fn mao_us(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.rows * p.r || grad_scale() < 0.0) { return; }
  let i = idx / p.r;
  let a = idx % p.r;
  var acc = 0.0;
  let fromWork = (p.flag & 1u) != 0u;
  for (var c = 0u; c < p.r; c = c + 1u) {
    var k = state[p.sOff + c * p.r + a];
    if (fromWork) { k = work[p.xOff + c * p.r + a]; }
    acc = acc + state[p.uOff + i * p.r + c] * k;
  }
  work[p.w1Off + idx] = acc;
}

// K = (β1·S + (1−β1)·T1) / (1 − β1ᵗ) − T1 into work[oOff], T1 = Uᵀ·(s·g)·V = work[xOff] (residual kind): then
// U·K·Vᵀ + s·g = the bias-corrected low-rank momentum plus the part of g outside the subspaces.
@compute @workgroup_size(WG)
fn mao_kcore(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.r * p.r || grad_scale() < 0.0) { return; }
  let t1 = work[p.xOff + idx];
  work[p.oOff + idx] = (p.beta1 * state[p.sOff + idx] + (1.0 - p.beta1) * t1) / p.bc1 - t1;
}

// The momentum at (i, j): kinds 0, 1: M̃ = β1·(W1[i]·V[j] (+ E)) + (1−β1)·s·g; kind 2: W1[i]·V[j] + s·g (W1 = U·K,
// bias corrected already).
fn momentum_at(i: u32, j: u32, k: u32, s: f32) -> f32 {
  var low = 0.0;
  for (var c = 0u; c < p.r; c = c + 1u) { low = low + work[p.w1Off + i * p.r + c] * state[p.vOff + j * p.r + c]; }
  if (p.kind == 2u) { return low + s * grad[k]; }
  if (p.kind == 1u) { low = low + ef[k]; }
  return p.beta1 * low + (1.0 - p.beta1) * s * grad[k];
}

fn direction(i: u32, j: u32, mt: f32, meanR: f32) -> f32 {
  let vhat = state[p.rOff + i] * state[p.cOff + j] / meanR / p.bc2;
  var bc = p.bc1;
  if (p.kind == 2u) { bc = 1.0; }
  return precond(vhat) * mt / bc;
}

// rowpart[row] = Σ_j u², one workgroup per row.
@compute @workgroup_size(WG)
fn mao_sumsq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = linear_wg(wid, nwg);
  let s = grad_scale();
  if (row >= p.rows || s < 0.0) { return; }
  let meanR = scalars[p.tensor * 4u];
  var acc = 0.0;
  for (var j = lid; j < p.cols; j = j + WG) {
    let k = row * p.cols + j;
    let u = direction(row, j, momentum_at(row, j, k, s), meanR);
    acc = acc + u * u;
  }
  red[lid] = acc;
  reduce_wg(lid);
  if (lid == 0u) { work[p.rowpartOff + row] = red[0]; }
}

// scalars[4·tensor + 1] = Σ rowpart (= Σu² over the tensor).
@compute @workgroup_size(WG)
fn mao_total(@builtin(local_invocation_index) lid: u32) {
  if (grad_scale() < 0.0) { return; }
  var acc = 0.0;
  for (var i = lid; i < p.rows; i = i + WG) { acc = acc + work[p.rowpartOff + i]; }
  red[lid] = acc;
  reduce_wg(lid);
  if (lid == 0u) { scalars[p.tensor * 4u + 1u] = red[0]; }
}

@compute @workgroup_size(WG)
fn mao_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = linear_wg(wid, nwg) * WG + lid;
  let n = p.rows * p.cols;
  let s = grad_scale();
  if (k >= n || s < 0.0) { return; }
  let i = k / p.cols;
  let j = k % p.cols;
  let meanR = scalars[p.tensor * 4u];
  let denom = max(1.0, sqrt(scalars[p.tensor * 4u + 1u] / f32(n)) / p.clip);
  let mt = momentum_at(i, j, k, s);
  let u = direction(i, j, mt, meanR) / denom;
  param[k] = param[k] * p.decayKeep - p.lr * u;
  if (p.kind == 1u) { ef[k] = mt; } // E holds M̃ until mao_ef subtracts the new factors
}

// ---------------- dense Adam (vectors, small matrices) ----------------

// m, v updated in place; scalars[4·tensor + 1] = Σu². One workgroup.
@compute @workgroup_size(WG)
fn mao_adam_scalars(@builtin(local_invocation_index) lid: u32) {
  let s = grad_scale();
  if (s < 0.0) { return; }
  let n = p.rows * p.cols;
  var acc = 0.0;
  for (var k = lid; k < n; k = k + WG) {
    let g = grad[k] * s;
    let m = p.beta1 * state[p.amOff + k] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state[p.avOff + k] + (1.0 - p.beta2) * g * g;
    state[p.amOff + k] = m;
    state[p.avOff + k] = v;
    let u = precond(v / p.bc2) * m / p.bc1;
    acc = acc + u * u;
  }
  red[lid] = acc;
  reduce_wg(lid);
  if (lid == 0u) { scalars[p.tensor * 4u + 1u] = red[0]; }
}

@compute @workgroup_size(WG)
fn mao_adam_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = linear_wg(wid, nwg) * WG + lid;
  let n = p.rows * p.cols;
  if (k >= n || grad_scale() < 0.0) { return; }
  let denom = max(1.0, sqrt(scalars[p.tensor * 4u + 1u] / f32(n)) / p.clip);
  let u = precond(state[p.avOff + k] / p.bc2) * state[p.amOff + k] / p.bc1;
  param[k] = param[k] * p.decayKeep - p.lr * u / denom;
}

// ---------------- the momentum factors: projection and refit ----------------

fn pcg(v: u32) -> u32 {
  let st = v * 747796405u + 2891336453u;
  let word = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in [−1, 1), a multiple of 2⁻²³ (exact in f32; the CPU reference draws the same numbers).
fn mao_rand(seed: u32, index: u32) -> f32 {
  return f32(pcg(index ^ pcg(seed)) >> 8u) * (1.0 / 8388608.0) - 1.0;
}

// work[oOff] [cols, r] = V + omegaScale·rand: the start of the subspace iteration (warm, perturbed so that a zero
// or stale subspace can leave).
@compute @workgroup_size(WG)
fn mao_omega(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.cols * p.r || grad_scale() < 0.0) { return; }
  work[p.oOff + idx] = state[p.vOff + idx] + p.omegaScale * mao_rand(p.seed, idx);
}

// work[oOff] [r, r] = Aᵀ·B, A and B [len, r] (A from aSel/aOff, B from bSel/bOff). One invocation per entry.
@compute @workgroup_size(WG)
fn mao_atb(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.r * p.r || grad_scale() < 0.0) { return; }
  let a = idx / p.r;
  let b = idx % p.r;
  var acc = 0.0;
  for (var k = 0u; k < p.len; k = k + 1u) { acc = acc + ld(p.aSel, p.aOff + k * p.r + a) * ld(p.bSel, p.bOff + k * p.r + b); }
  work[p.oOff + idx] = acc;
}

// work[oOff] [r, r] = S·T (flag 1: Sᵀ·T), S the state's core, T = work[xOff].
@compute @workgroup_size(WG)
fn mao_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.r * p.r || grad_scale() < 0.0) { return; }
  let a = idx / p.r;
  let b = idx % p.r;
  var acc = 0.0;
  for (var c = 0u; c < p.r; c = c + 1u) {
    var sv = state[p.sOff + a * p.r + c];
    if ((p.flag & 1u) != 0u) { sv = state[p.sOff + c * p.r + a]; }
    acc = acc + sv * work[p.xOff + c * p.r + b];
  }
  work[p.oOff + idx] = acc;
}

// The operator applied to X (bSel/bOff), into work[oOff]:
//   flag bit 0 clear: out [rows, r] = cL·U·T2 + cD·D·X        (X [cols, r])
//   flag bit 0 set:   out [cols, r] = cL·V·T2 + cD·Dᵀ·X       (X [rows, r])
// D is the gradient (times the step's scale) or, with flag bit 1, E; T2 = work[xOff] [r, r] (unused when cL = 0).
@compute @workgroup_size(WG)
fn mao_mul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  let s = grad_scale();
  let trans = (p.flag & 1u) != 0u;
  let useE = (p.flag & 2u) != 0u;
  var outRows = p.rows;
  if (trans) { outRows = p.cols; }
  if (idx >= outRows * p.r || s < 0.0) { return; }
  let i = idx / p.r;
  let a = idx % p.r;
  var low = 0.0;
  if (p.cL != 0.0) {
    var lOff = p.uOff;
    if (trans) { lOff = p.vOff; }
    for (var c = 0u; c < p.r; c = c + 1u) { low = low + state[lOff + i * p.r + c] * work[p.xOff + c * p.r + a]; }
  }
  var dense = 0.0;
  if (trans) {
    for (var k = 0u; k < p.rows; k = k + 1u) {
      var d = 0.0;
      if (useE) { d = ef[k * p.cols + i]; } else { d = grad[k * p.cols + i]; }
      dense = dense + d * ld(p.bSel, p.bOff + k * p.r + a);
    }
  } else {
    for (var k = 0u; k < p.cols; k = k + 1u) {
      var d = 0.0;
      if (useE) { d = ef[i * p.cols + k]; } else { d = grad[i * p.cols + k]; }
      dense = dense + d * ld(p.bSel, p.bOff + k * p.r + a);
    }
  }
  var cD = p.cD;
  if (!useE) { cD = cD * s; }
  work[p.oOff + idx] = p.cL * low + cD * dense;
}

// S ← cL·S + cD·T (T = work[xOff]), the projection step (S ← β1·S + (1−β1)·Uᵀ·g·V, or Uᵀ·E·V with error feedback).
@compute @workgroup_size(WG)
fn mao_core(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (idx >= p.r * p.r || grad_scale() < 0.0) { return; }
  state[p.sOff + idx] = p.cL * state[p.sOff + idx] + p.cD * work[p.xOff + idx];
}

// In-place Cholesky of the Gram matrix work[oOff] [r, r] (lower triangle), pivots floored at 1e-6·trace/r + 1e-30
// so that a rank-deficient block gives finite columns. One workgroup; storage barriers between the r stages.
@compute @workgroup_size(WG)
fn mao_chol(@builtin(local_invocation_index) lid: u32) {
  if (grad_scale() < 0.0) { return; }
  let r = p.r;
  let g = p.oOff;
  if (lid == 0u) {
    var tr = 0.0;
    for (var a = 0u; a < r; a = a + 1u) { tr = tr + work[g + a * r + a]; }
    shared_floor = 1e-6 * tr / f32(r) + 1e-30;
  }
  workgroupBarrier();
  let fl = shared_floor;
  for (var k = 0u; k < r; k = k + 1u) {
    if (lid == 0u) { work[g + k * r + k] = sqrt(max(work[g + k * r + k], fl)); }
    storageBarrier();
    let d = work[g + k * r + k];
    for (var i = k + 1u + lid; i < r; i = i + WG) { work[g + i * r + k] = work[g + i * r + k] / d; }
    storageBarrier();
    let m = r - k - 1u;
    for (var t = lid; t < m * m; t = t + WG) {
      let i = k + 1u + t / m;
      let j = k + 1u + t % m;
      if (j <= i) { work[g + i * r + j] = work[g + i * r + j] - work[g + i * r + k] * work[g + j * r + k]; }
    }
    storageBarrier();
  }
}

// work[aOff] [len, r] ← Y·L⁻ᵀ with L = work[oOff] (forward substitution per row, in place). One invocation per row.
@compute @workgroup_size(WG)
fn mao_trsm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_wg(wid, nwg) * WG + lid;
  if (i >= p.len || grad_scale() < 0.0) { return; }
  let r = p.r;
  let y = p.aOff + i * r;
  for (var b = 0u; b < r; b = b + 1u) {
    var acc = work[y + b];
    for (var a = 0u; a < b; a = a + 1u) { acc = acc - work[y + a] * work[p.oOff + b * r + a]; }
    work[y + b] = acc / work[p.oOff + b * r + b];
  }
}

// New factors into the state: U ← work[aOff] [rows, r], V ← work[xOff] [cols, r], S ← work[bOff] [r, r].
@compute @workgroup_size(WG)
fn mao_commit(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = linear_wg(wid, nwg) * WG + lid;
  if (grad_scale() < 0.0) { return; }
  let nu = p.rows * p.r;
  let nv = p.cols * p.r;
  if (idx < nu) { state[p.uOff + idx] = work[p.aOff + idx]; }
  if (idx < nv) { state[p.vOff + idx] = work[p.xOff + idx]; }
  if (idx < p.r * p.r) { state[p.sOff + idx] = work[p.bOff + idx]; }
}

// E ← E − W1·Vᵀ with W1 = U·S of the NEW factors (mao_us ran after the refit or projection).
@compute @workgroup_size(WG)
fn mao_ef(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = linear_wg(wid, nwg) * WG + lid;
  if (k >= p.rows * p.cols || grad_scale() < 0.0) { return; }
  let i = k / p.cols;
  let j = k % p.cols;
  var low = 0.0;
  for (var c = 0u; c < p.r; c = c + 1u) { low = low + work[p.w1Off + i * p.r + c] * state[p.vOff + j * p.r + c]; }
  ef[k] = ef[k] - low;
}
