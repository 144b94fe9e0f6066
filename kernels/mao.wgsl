// mao: momentum-aware optimization with a low-rank momentum and a factored second moment
// (src/engine/optim/mao.ts; the formulas and the CPU reference: src/engine/cpu/mao.ts).
//
// A factored tensor W [rows, cols] keeps U [rows, r], an r×r core S, V [cols, r] (its momentum ≈ U·S·Vᵀ), the
// row/column means R [rows], C [cols] of g², and with error feedback a dense E. All factors of all tensors live in
// ONE `state` buffer at per-tensor offsets; `work` is scratch. E is stored as bfloat16, two per u32 (ef_get,
// ef_put_pair): 2 bytes per weight instead of 4, rounded to nearest even exactly as the CPU reference's bf16Round
// does; or, with the override EF_BF16 = 0, as f32.
// Every tensor of a batch (a span of the flat layout one binding covers) is served by the same dispatch: the step
// (mao_b_*: R, C, the projection S ← β1·S + (1−β1)·Uᵀ·g·V, the update; dense Adam for the vectors and small
// matrices) and every refitEvery steps the refit (mao_rb_*: subspace iteration from Ω = V + noise, CholQR2,
// S' = U'ᵀ·M̃·V'). The low-rank operator is never formed: M̃·X = β1·U·(S·(Vᵀ·X)) + (1−β1)·s·g·X. With error feedback
// (p.kind = 1) the same phases carry E: the step's dense part is D = β1·E + (1−β1)·s·g, the refit's operator is E
// (holding M̃ on refit steps), and two more refit phases (mao_rb_yg, mao_rb_ef) leave E = M̃ − U'·S'·V'ᵀ. Sections
// "batched step" and "batched refit" below say how.
// Dispatches in one pass are ordered, so each kernel sees the previous one's writes. Every kernel that writes
// state returns at once when the step is skipped (non-finite gradient), so a skipped step changes nothing.
//#include "common/finite.wgsl"

override WG: u32 = 256u;
// E's storage: 1 = bfloat16, two per u32 (the default); 0 = f32, one per u32 (errorFeedbackPrecision: f32).
override EF_BF16: u32 = 1u;

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
  kind: u32,         // 1 with error feedback (mao_b_*, mao_rb_mul; mao_b_energy: ‖M̃‖² = ‖S‖² + ‖E‖²), else 0
  w1Off: u32,        // (unused: the fields up to here that the batched kernels do not read are kept for the layout)
  rowpartOff: u32,
  // operands of the batched refit (mao_rb_*: slot ids RS_*):
  aSel: u32,         // (unused)
  aOff: u32,
  bSel: u32,         // (unused)
  bOff: u32,
  oOff: u32,         // output
  len: u32,          // mao_rb_atb, mao_rb_trsm: the reduction runs over rows (0) or cols (1)
  flag: u32,         // mao_rb_mul: 1 = M̃ᵀ·X; mao_rb_small: 1 = Sᵀ
  seed: u32,         // mao_rb_omega: the step t
  xOff: u32,         // mao_rb_small, mao_rb_mul: T operand
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
  cL: f32,           // mao_rb_mul: coefficient of the low-rank part
  cD: f32,           // mao_rb_mul: coefficient of the dense part (times the gradient scale when it is g)
  omegaScale: f32,   // (unused: per tensor in the table, T_OMEGA)
  // the batched kernels (mao_b_*): one dispatch for every tensor of a batch, each found in `table`
  nb: u32,           // tensors in the batch
  wgTotal: u32,      // workgroups of this dispatch (the 2-D fold may add a few past the end)
  refit: u32,        // 1: this step refits the factors, so mao_b_core leaves S for the refit (it needs the old S)
  rho: f32,          // weight ρ of the gradient's part outside the subspaces in m̂ (plain m̂ = M̃/(1 − β1ᵗ): (1−β1)/(1 − β1ᵗ))
}
@group(0) @binding(0) var<uniform> p: MaoParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
@group(0) @binding(5) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(6) var<storage, read_write> ef: array<u32>; // E, bf16 pairs: element k in word k/2, low half first
@group(0) @binding(7) var<storage, read> norms: array<f32>;
@group(0) @binding(8) var<storage, read> table: array<u32>;

// The gradient scale of this step: the clipping factor, or −1 when the step is skipped (non-finite gradient).
fn grad_scale() -> f32 {
  if (p.mode == 0u) { return 1.0; }
  let total = norms[p.numTensors];
  if ((p.mode & USE_SKIP) != 0u && !is_finite(total)) { return -1.0; }
  if ((p.mode & USE_CLIP) != 0u) { return min(1.0, p.maxNorm / (sqrt(total) + 1e-6)); }
  return 1.0;
}

fn linear_wg(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

fn ld(sel: u32, i: u32) -> f32 {
  if (sel == 0u) { return state[i]; }
  return work[i];
}

fn precond(vhat: f32) -> f32 { return min(inverseSqrt(vhat + p.eps), p.pMax); }

// bf16 of x (its upper 16 bits) rounded to nearest, ties to even; finite inputs only (a skipped step writes nothing).
fn bf16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return (b + 0x7FFFu + ((b >> 16u) & 1u)) >> 16u;
}

// Element k of E (an index into the bound E, which starts at an even element).
fn ef_get(k: u32) -> f32 {
  if (EF_BF16 == 0u) { return bitcast<f32>(ef[k]); }
  let w = ef[k >> 1u];
  return bitcast<f32>(select(w << 16u, w & 0xFFFF0000u, (k & 1u) == 1u));
}

// Elements 2q and 2q + 1 of the E that starts at element e0 (even) ← lo, hi (hi only where 2q + 1 < n).
fn ef_put_pair(e0: u32, q: u32, n: u32, lo: f32, hi: f32) {
  if (EF_BF16 == 0u) {
    ef[e0 + 2u * q] = bitcast<u32>(lo);
    if (2u * q + 1u < n) { ef[e0 + 2u * q + 1u] = bitcast<u32>(hi); }
    return;
  }
  ef[(e0 >> 1u) + q] = bf16_bits(lo) | (bf16_bits(hi) << 16u);
}

// ---------------- the refit's random start ----------------

fn pcg(v: u32) -> u32 {
  let st = v * 747796405u + 2891336453u;
  let word = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in [−1, 1), a multiple of 2⁻²³ (exact in f32; the CPU reference draws the same numbers).
fn mao_rand(seed: u32, index: u32) -> f32 {
  return f32(pcg(index ^ pcg(seed)) >> 8u) * (1.0 / 8388608.0) - 1.0;
}

// ---------------- batched step: every tensor of a batch in one dispatch per phase ----------------
//
// The step of the factored tensors in five dispatches for the whole batch (an earlier version took eleven per
// tensor), and the dense-Adam tensors in two. Why: on a software adapter (lavapipe) each
// dispatch costs about as much as a small kernel, and so does each workgroup barrier (the invocations of a
// workgroup run as coroutines switched at every barrier): the first version's one-workgroup-per-row reductions
// made R and C cost more than the whole AdamW step. So these kernels have no barriers: one invocation per output
// (a row's A, a column's C, an entry of the core, a row's Σu², an element), each looping over what it sums, with
// the partial sums a later phase adds up.
// A batch is a run of tensors whose span of the flat layout fits one binding (param and grad are bound over that
// span). `table` holds one record of TAB u32s per tensor; a workgroup finds its tensor by binary search over the
// first-workgroup column of its phase (the records are in layout order, so those columns ascend). Each tensor's
// scratch in `work` is its own (at T_SCR):
//   A [rows, r]   s·g·V (mao_b_stats), then W1 = U·K (mao_b_sumsq; mao_b_update reads it)
//   Vt [r, cols]  V transposed, so that the per-element products read V contiguously across invocations
//   K [r, r]      the core of m̂'s low-rank part (mao_b_core)
//   ep [r, r]     per core entry: β1²·S² + 2β1(1−β1)·S·T (for ‖M̃‖²)
//   g2 [rows]     Σ_j (s·g)² per row (for ‖M̃‖²)
//   up [rows]     Σ_j u² per row (mao_b_sumsq)
// Phases: mao_b_stats (R, A per row; C, Vt per column) → mao_b_core (T = Uᵀ·A, K, S, ep per entry; meanR) →
// mao_b_sumsq (W1, Σu² per row) → mao_b_total (Σu², ‖M̃‖² per tensor) → mao_b_update (per element).
// m̂ = U·K·Vᵀ + ρ·s·g with K = (β1·S + (1−β1)·T)/(1 − β1ᵗ) − ρ·T: the bias-corrected low-rank momentum plus ρ times the
// part of s·g outside its subspaces (ρ = 1: at full weight; ρ = (1−β1)/(1 − β1ᵗ) gives the plain m̂ = M̃/(1 − β1ᵗ),
// K = β1·S/(1 − β1ᵗ)).
// The dense-Adam tensors: mao_b_adam_scalars (one invocation per tensor) and mao_b_adam_update (per element).

const TAB: u32 = 24u;
const T_POFF: u32 = 0u;     // element offset of the tensor in the bound param/grad span (mao_b_energy: of E in ef)
const T_ROWS: u32 = 1u;     // factored: rows; dense: size
const T_COLS: u32 = 2u;
const T_U: u32 = 3u;        // factored: uOff; dense: amOff
const T_S: u32 = 4u;        // factored: sOff; dense: avOff
const T_V: u32 = 5u;
const T_R: u32 = 6u;
const T_C: u32 = 7u;
const T_SCR: u32 = 8u;      // scratch base in work
const T_IDX: u32 = 9u;      // the tensor's slot in scalars
const T_DECAY: u32 = 10u;   // 1: decoupled weight decay applies
// First workgroups of the phases (invocations per tensor in brackets):
const T_WG_STATS: u32 = 11u;  // mao_b_stats [rows·r + cols]; dense: mao_b_adam_update [size]
const T_WG_CORE: u32 = 12u;   // mao_b_core [r² + 1]
const T_WG_ROWS: u32 = 13u;   // mao_b_sumsq [rows]
const T_WG_ELEMS: u32 = 14u;  // mao_b_update [rows·cols]
// the batched refit (mao_rb_*): [rows·r], [cols·r], [r²], [rows], [cols], [1], [max(rows·r, cols·r, r²)]
const T_WG_MR: u32 = 15u;
const T_WG_NR: u32 = 16u;
const T_WG_RR: u32 = 17u;
const T_WG_M: u32 = 18u;
const T_WG_N: u32 = 19u;
const T_WG_ONE: u32 = 20u;
const T_WG_MAX: u32 = 21u;
const T_OMEGA: u32 = 22u;     // the refit start's noise scale (f32 bits; maoOmegaScale(cols))
const T_EOFF: u32 = 23u;      // error feedback: where the tensor's E starts in `ef` (bf16 elements, even)

// The record of the tensor that workgroup w of a phase belongs to: the last record whose first workgroup ≤ w.
fn find_tensor(w: u32, field: u32) -> u32 {
  var lo = 0u;
  var hi = p.nb - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (table[mid * TAB + field] <= w) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo * TAB;
}

struct Scratch { a: u32, vt: u32, k: u32, ep: u32, g2: u32, up: u32, w2: u32 }

fn scratch_of(b: u32) -> Scratch {
  let rows = table[b + T_ROWS];
  let r = p.r;
  var s: Scratch;
  s.a = table[b + T_SCR];
  s.vt = s.a + rows * r;
  s.k = s.vt + r * table[b + T_COLS];
  s.ep = s.k + r * r;
  s.g2 = s.ep + r * r;
  s.up = s.g2 + rows;
  s.w2 = s.up + rows; // error feedback only: W2 = U·T [rows, r]
  return s;
}

// Invocations [0, rows·r): A[row, a] = s·g[row, :]·V[:, a] (a = 0 also R[row] and g2[row]); then [0, cols): C[j],
// Vt[:, j].
@compute @workgroup_size(WG)
fn mao_b_stats(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  let s = grad_scale();
  if (w >= p.wgTotal || s < 0.0) { return; }
  let b = find_tensor(w, T_WG_STATS);
  let rows = table[b + T_ROWS];
  let cols = table[b + T_COLS];
  let off = table[b + T_POFF];
  let vOff = table[b + T_V];
  let r = p.r;
  let sc = scratch_of(b);
  let i = (w - table[b + T_WG_STATS]) * WG + lid;
  if (i < rows * r) {
    let row = i / r;
    let a = i % r;
    let g0 = off + row * cols;
    var dot = 0.0;
    if (p.kind == 1u) {
      // Error feedback: A = D·V with D = β1·E + (1−β1)·s·g, the dense part of M̃.
      let e0 = table[b + T_EOFF] + row * cols;
      for (var k = 0u; k < cols; k = k + 1u) {
        let dk = p.beta1 * ef_get(e0 + k) + (1.0 - p.beta1) * s * grad[g0 + k];
        dot = dot + dk * state[vOff + k * r + a];
      }
      work[sc.a + i] = dot;
    } else {
      for (var k = 0u; k < cols; k = k + 1u) { dot = dot + grad[g0 + k] * state[vOff + k * r + a]; }
      work[sc.a + i] = s * dot;
    }
    if (a == 0u) {
      var acc = 0.0;
      for (var k = 0u; k < cols; k = k + 1u) {
        let g = grad[g0 + k] * s;
        acc = acc + g * g;
      }
      let ri = table[b + T_R] + row;
      state[ri] = p.beta2 * state[ri] + (1.0 - p.beta2) * acc / f32(cols);
      work[sc.g2 + row] = acc;
    }
  } else if (i < rows * r + cols) {
    let j = i - rows * r;
    var acc = 0.0;
    for (var k = 0u; k < rows; k = k + 1u) {
      let g = grad[off + k * cols + j] * s;
      acc = acc + g * g;
    }
    let ci = table[b + T_C] + j;
    state[ci] = p.beta2 * state[ci] + (1.0 - p.beta2) * acc / f32(rows);
    for (var c = 0u; c < r; c = c + 1u) { work[sc.vt + c * cols + j] = state[vOff + j * r + c]; }
  }
}

// Invocations [0, r²): per core entry T = Uᵀ·A, K (see above), S ← β1·S + (1−β1)·T (not on refit steps: the refit
// needs the old S), ep; invocation r²: scalars[4·idx] = max(mean(R), 1e-30).
@compute @workgroup_size(WG)
fn mao_b_core(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  let s = grad_scale();
  if (w >= p.wgTotal || s < 0.0) { return; }
  let b = find_tensor(w, T_WG_CORE);
  let rows = table[b + T_ROWS];
  let r = p.r;
  let sc = scratch_of(b);
  let idx = (w - table[b + T_WG_CORE]) * WG + lid;
  if (idx == r * r) {
    var acc = 0.0;
    for (var i = 0u; i < rows; i = i + 1u) { acc = acc + state[table[b + T_R] + i]; }
    scalars[table[b + T_IDX] * 4u] = max(acc / f32(rows), 1e-30);
    return;
  }
  if (idx > r * r) { return; }
  let a = idx / r;
  let c = idx % r;
  let uOff = table[b + T_U];
  var t = 0.0;
  for (var i = 0u; i < rows; i = i + 1u) { t = t + state[uOff + i * r + a] * work[sc.a + i * r + c]; }
  let si = table[b + T_S] + idx;
  let sOld = state[si];
  if (p.kind == 1u) {
    // Error feedback, T = Uᵀ·D·V: m̂ = U·K·Vᵀ + D/(1 − β1ᵗ) with K = β1·S/(1 − β1ᵗ); the projection S' = Uᵀ·M̃·V =
    // β1·S + T (U, V orthonormal), and E' = M̃ − U·S'·Vᵀ = D − U·T·Vᵀ (mao_b_update_ef). On refit steps S stays:
    // E takes M̃ whole and the refit recomputes S from it.
    work[sc.k + idx] = p.beta1 * sOld / p.bc1;
    work[sc.ep + idx] = t;
    if (p.refit == 0u) { state[si] = p.beta1 * sOld + t; }
    return;
  }
  work[sc.k + idx] = (p.beta1 * sOld + (1.0 - p.beta1) * t) / p.bc1 - p.rho * t;
  // ‖M̃‖² = β1²‖S‖² + 2β1(1−β1)⟨S, T⟩ + (1−β1)²‖s·g‖² (mao_b_total adds the last term; derivation: mao.ts).
  work[sc.ep + idx] = p.beta1 * p.beta1 * sOld * sOld + 2.0 * p.beta1 * (1.0 - p.beta1) * sOld * t;
  if (p.refit == 0u) { state[si] = p.beta1 * sOld + (1.0 - p.beta1) * t; }
}

// W[row]·Vt[:, j] for a [rows, r] row W[row] at w (in work).
fn b_low(sc: Scratch, w: u32, j: u32, cols: u32) -> f32 {
  var low = 0.0;
  for (var c = 0u; c < p.r; c = c + 1u) { low = low + work[w + c] * work[sc.vt + c * cols + j]; }
  return low;
}

// u at (row, j) given W1[row] at w1 (in work) and the dense term (ρ·s·g; with error feedback D/(1 − β1ᵗ)):
// P ⊙ (W1[row]·Vt[:, j] + dense).
fn b_u(b: u32, sc: Scratch, w1: u32, row: u32, j: u32, cols: u32, dense: f32, meanR: f32) -> f32 {
  let vhat = state[table[b + T_R] + row] * state[table[b + T_C] + j] / meanR / p.bc2;
  return precond(vhat) * (b_low(sc, w1, j, cols) + dense);
}

// The dense term of u at element k of the tensor (k = row·cols + j) and its gradient index gi.
fn b_dense(b: u32, k: u32, gi: u32, s: f32) -> f32 {
  if (p.kind == 1u) { return (p.beta1 * ef_get(table[b + T_EOFF] + k) + (1.0 - p.beta1) * s * grad[gi]) / p.bc1; }
  return p.rho * s * grad[gi];
}

// Invocations [0, rows): W1[row] = U[row]·K (into A's place), up[row] = Σ_j u².
@compute @workgroup_size(WG)
fn mao_b_sumsq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  let s = grad_scale();
  if (w >= p.wgTotal || s < 0.0) { return; }
  let b = find_tensor(w, T_WG_ROWS);
  let rows = table[b + T_ROWS];
  let row = (w - table[b + T_WG_ROWS]) * WG + lid;
  if (row >= rows) { return; }
  let cols = table[b + T_COLS];
  let r = p.r;
  let sc = scratch_of(b);
  let uRow = table[b + T_U] + row * r;
  let w1 = sc.a + row * r;
  for (var a = 0u; a < r; a = a + 1u) {
    var acc = 0.0;
    var acc2 = 0.0;
    for (var c = 0u; c < r; c = c + 1u) {
      acc = acc + state[uRow + c] * work[sc.k + c * r + a];
      acc2 = acc2 + state[uRow + c] * work[sc.ep + c * r + a];
    }
    work[w1 + a] = acc;
    if (p.kind == 1u) { work[sc.w2 + row * r + a] = acc2; } // W2 = U·T (error feedback)
  }
  let meanR = scalars[table[b + T_IDX] * 4u];
  let g0 = table[b + T_POFF] + row * cols;
  var acc = 0.0;
  for (var j = 0u; j < cols; j = j + 1u) {
    let u = b_u(b, sc, w1, row, j, cols, b_dense(b, row * cols + j, g0 + j, s), meanR);
    acc = acc + u * u;
  }
  work[sc.up + row] = acc;
}

// Invocation t < nb: scalars[4·idx + 1] = Σu², scalars[4·idx + 2] = ‖M̃‖² (what capturedEnergy divides by).
@compute @workgroup_size(WG)
fn mao_b_total(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = linear_wg(wid, nwg) * WG + lid;
  if (t >= p.nb || grad_scale() < 0.0) { return; }
  let b = t * TAB;
  let rows = table[b + T_ROWS];
  let r = p.r;
  let sc = scratch_of(b);
  var u2 = 0.0;
  var g2 = 0.0;
  for (var i = 0u; i < rows; i = i + 1u) {
    u2 = u2 + work[sc.up + i];
    g2 = g2 + work[sc.g2 + i];
  }
  var low = 0.0;
  for (var i = 0u; i < r * r; i = i + 1u) { low = low + work[sc.ep + i]; }
  let idx = table[b + T_IDX];
  scalars[idx * 4u + 1u] = u2;
  scalars[idx * 4u + 2u] = low + (1.0 - p.beta1) * (1.0 - p.beta1) * g2;
}

// What the update of a tensor's elements shares: its record, shape, the clipping divisor and the decay factor.
struct ElemCtx { b: u32, cols: u32, n: u32, sc: Scratch, meanR: f32, denom: f32, keep: f32 }

fn elem_ctx(b: u32) -> ElemCtx {
  var c: ElemCtx;
  c.b = b;
  c.cols = table[b + T_COLS];
  c.n = table[b + T_ROWS] * c.cols;
  c.sc = scratch_of(b);
  let idx = table[b + T_IDX];
  c.meanR = scalars[idx * 4u];
  c.denom = max(1.0, sqrt(scalars[idx * 4u + 1u] / f32(c.n)) / p.clip);
  c.keep = 1.0;
  if (table[b + T_DECAY] != 0u) { c.keep = p.decayKeep; }
  return c;
}

// Element el of the tensor: W ← W·keep − lr·u/denom with u from W1's row and the dense term.
fn b_apply(c: ElemCtx, el: u32, dense: f32) {
  let row = el / c.cols;
  let k = table[c.b + T_POFF] + el;
  let u = b_u(c.b, c.sc, c.sc.a + row * p.r, row, el % c.cols, c.cols, dense, c.meanR) / c.denom;
  param[k] = param[k] * c.keep - p.lr * u;
}

// Invocations [0, rows·cols): the update of one element.
@compute @workgroup_size(WG)
fn mao_b_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  let s = grad_scale();
  if (w >= p.wgTotal || s < 0.0) { return; }
  let c = elem_ctx(find_tensor(w, T_WG_ELEMS));
  let e = (w - table[c.b + T_WG_ELEMS]) * WG + lid;
  if (e >= c.n) { return; }
  b_apply(c, e, s * p.rho * grad[table[c.b + T_POFF] + e]);
}

// With error feedback, invocations [0, ⌈rows·cols/2⌉): the update of elements 2q and 2q + 1 (they share E's word),
// and E ← D − W2·Vt (= M̃ − U·S'·Vᵀ), or on refit steps E ← M̃ = (1 − β1ᵗ)·W1·Vt + D (the refit fits it; mao_rb_ef
// then subtracts the new factors).
@compute @workgroup_size(WG)
fn mao_b_update_ef(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  let s = grad_scale();
  if (w >= p.wgTotal || s < 0.0) { return; }
  let c = elem_ctx(find_tensor(w, T_WG_ELEMS));
  let q = (w - table[c.b + T_WG_ELEMS]) * WG + lid;
  if (2u * q >= c.n) { return; }
  var e = vec2f(0.0, 0.0);
  for (var h = 0u; h < 2u; h = h + 1u) {
    let el = 2u * q + h;
    if (el >= c.n) { break; }
    let row = el / c.cols;
    let j = el % c.cols;
    let dense = b_dense(c.b, el, table[c.b + T_POFF] + el, s); // D/(1 − β1ᵗ)
    b_apply(c, el, dense);
    if (p.refit == 1u) { e[h] = p.bc1 * (b_low(c.sc, c.sc.a + row * p.r, j, c.cols) + dense); }
    else { e[h] = p.bc1 * dense - b_low(c.sc, c.sc.w2 + row * p.r, j, c.cols); }
  }
  ef_put_pair(table[c.b + T_EOFF], q, c.n, e.x, e.y);
}

// Dense Adam, invocation t < nb: m, v updated in place; scalars[4·idx + 1] = Σu². Records: T_POFF, T_ROWS (size),
// T_U (m), T_S (v), T_IDX, T_DECAY, T_WG_STATS (first workgroup of mao_b_adam_update).
@compute @workgroup_size(WG)
fn mao_b_adam_scalars(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = linear_wg(wid, nwg) * WG + lid;
  let s = grad_scale();
  if (t >= p.nb || s < 0.0) { return; }
  let b = t * TAB;
  let n = table[b + T_ROWS];
  let off = table[b + T_POFF];
  let am = table[b + T_U];
  let av = table[b + T_S];
  var acc = 0.0;
  for (var k = 0u; k < n; k = k + 1u) {
    let g = grad[off + k] * s;
    let m = p.beta1 * state[am + k] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state[av + k] + (1.0 - p.beta2) * g * g;
    state[am + k] = m;
    state[av + k] = v;
    let u = precond(v / p.bc2) * m / p.bc1;
    acc = acc + u * u;
  }
  scalars[table[b + T_IDX] * 4u + 1u] = acc;
}

@compute @workgroup_size(WG)
fn mao_b_adam_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = linear_wg(wid, nwg);
  if (w >= p.wgTotal || grad_scale() < 0.0) { return; }
  let b = find_tensor(w, T_WG_STATS);
  let n = table[b + T_ROWS];
  let k = (w - table[b + T_WG_STATS]) * WG + lid;
  if (k >= n) { return; }
  let am = table[b + T_U];
  let av = table[b + T_S];
  let denom = max(1.0, sqrt(scalars[table[b + T_IDX] * 4u + 1u] / f32(n)) / p.clip);
  let u = precond(state[av + k] / p.bc2) * state[am + k] / p.bc1;
  var keep = 1.0;
  if (table[b + T_DECAY] != 0u) { keep = p.decayKeep; }
  let i = table[b + T_POFF] + k;
  param[i] = param[i] * keep - p.lr * u / denom;
}

// capturedEnergy(), invocation t < nb: scalars[4·idx + 3] = ‖S‖² / ‖M̃‖² (the factors' share of the momentum's
// energy), or −1 when ‖M̃‖² is 0 (no momentum yet). Without error feedback ‖M̃‖² is scalars[4·idx + 2]
// (mao_b_total); with it (p.kind == 1) M̃ = U·S·Vᵀ + E with E orthogonal to the factors' span, so
// ‖M̃‖² = ‖S‖² + ‖E‖², E read from `ef` at T_POFF.
@compute @workgroup_size(WG)
fn mao_b_energy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = linear_wg(wid, nwg) * WG + lid;
  if (t >= p.nb) { return; }
  let b = t * TAB;
  let r = p.r;
  var s2 = 0.0;
  for (var i = 0u; i < r * r; i = i + 1u) {
    let x = state[table[b + T_S] + i];
    s2 = s2 + x * x;
  }
  let idx = table[b + T_IDX];
  var total = scalars[idx * 4u + 2u];
  if (p.kind == 1u) {
    let n = table[b + T_ROWS] * table[b + T_COLS];
    let e0 = table[b + T_POFF];
    var e2 = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
      let x = ef_get(e0 + i);
      e2 = e2 + x * x;
    }
    total = s2 + e2;
  }
  var frac = -1.0;
  if (total > 0.0) { frac = clamp(s2 / total, 0.0, 1.0); }
  scalars[idx * 4u + 3u] = frac;
}

// ---------------- batched refit: the subspace iteration of every tensor of a batch at once ----------------
//
// Randomized subspace iteration, Ω = V + noise (the CPU reference's cpuRefit: same formulas, same order, same
// random start), every tensor of the batch per dispatch, its operands named by slot: p.aOff, p.bOff, p.oOff and p.xOff
// hold slot ids (RS_*), resolved per tensor from its record; p.len says whether the reduction runs over rows (0)
// or cols (1). The refit's scratch (Y, A, Z [.., r], T1, T2, Gm [r, r]) starts at the tensor's T_SCR: the refit
// runs after the step's phases, which no longer need their scratch. mao_rb_chol runs one invocation per tensor:
// r³/6 multiply-adds serially cost less than the 3·r workgroup barriers of a parallel Cholesky on lavapipe.
const RS_U: u32 = 0u;
const RS_V: u32 = 1u;
const RS_Y: u32 = 2u;
const RS_A: u32 = 3u;
const RS_Z: u32 = 4u;
const RS_T1: u32 = 5u;
const RS_T2: u32 = 6u;
const RS_GM: u32 = 7u;

// Offset of slot `id` of record b (in `state` for U and V, else in `work`).
fn rs_off(b: u32, id: u32) -> u32 {
  let rows = table[b + T_ROWS];
  let cols = table[b + T_COLS];
  let r = p.r;
  let y = table[b + T_SCR];
  var off = y + 2u * rows * r + cols * r + 2u * r * r; // Gm
  if (id == RS_U) { off = table[b + T_U]; }
  if (id == RS_V) { off = table[b + T_V]; }
  if (id == RS_Y) { off = y; }
  if (id == RS_A) { off = y + rows * r; }
  if (id == RS_Z) { off = y + 2u * rows * r; }
  if (id == RS_T1) { off = y + 2u * rows * r + cols * r; }
  if (id == RS_T2) { off = y + 2u * rows * r + cols * r + r * r; }
  return off;
}

fn rs_sel(id: u32) -> u32 { return select(1u, 0u, id < 2u); }

fn rs_len(b: u32) -> u32 { return select(table[b + T_ROWS], table[b + T_COLS], p.len == 1u); }

// Record and invocation index within it for phase column `field`.
fn rb_locate(wid: vec3u, nwg: vec3u, lid: u32, field: u32) -> vec2u {
  let w = linear_wg(wid, nwg);
  let b = find_tensor(w, field);
  return vec2u(b, (w - table[b + field]) * WG + lid);
}

@compute @workgroup_size(WG)
fn mao_rb_omega(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_NR);
  let b = at.x;
  let idx = at.y;
  if (idx >= table[b + T_COLS] * p.r) { return; }
  // maoSeed(t, tensor) of src/engine/cpu/mao.ts (p.seed = t); u32 products wrap as Math.imul does.
  let seed = (p.seed * 0x9e3779b9u) ^ ((table[b + T_IDX] + 1u) * 0x85ebca6bu);
  work[rs_off(b, p.oOff) + idx] = state[table[b + T_V] + idx] + bitcast<f32>(table[b + T_OMEGA]) * mao_rand(seed, idx);
}

// out [r, r] = Aᵀ·B over rs_len rows.
@compute @workgroup_size(WG)
fn mao_rb_atb(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_RR);
  let b = at.x;
  let idx = at.y;
  let r = p.r;
  if (idx >= r * r) { return; }
  let x = idx / r;
  let y = idx % r;
  let aOff = rs_off(b, p.aOff);
  let aSel = rs_sel(p.aOff);
  let bOff = rs_off(b, p.bOff);
  let bSel = rs_sel(p.bOff);
  let len = rs_len(b);
  var acc = 0.0;
  for (var k = 0u; k < len; k = k + 1u) { acc = acc + ld(aSel, aOff + k * r + x) * ld(bSel, bOff + k * r + y); }
  work[rs_off(b, p.oOff) + idx] = acc;
}

// out [r, r] = S·T (flag 1: Sᵀ·T), T = slot xOff.
@compute @workgroup_size(WG)
fn mao_rb_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_RR);
  let b = at.x;
  let idx = at.y;
  let r = p.r;
  if (idx >= r * r) { return; }
  let x = idx / r;
  let y = idx % r;
  let sOff = table[b + T_S];
  let tOff = rs_off(b, p.xOff);
  var acc = 0.0;
  for (var c = 0u; c < r; c = c + 1u) {
    var sv = state[sOff + x * r + c];
    if ((p.flag & 1u) != 0u) { sv = state[sOff + c * r + x]; }
    acc = acc + sv * work[tOff + c * r + y];
  }
  work[rs_off(b, p.oOff) + idx] = acc;
}

// M̃ applied to X (slot bOff): flag 0: out [rows, r] = cL·U·T2 + cD·s·g·X; flag 1: out [cols, r] = cL·V·T2 + cD·s·gᵀ·X
// (T2 = slot xOff). The dispatch covers T_WG_MR (flag 0) or T_WG_NR (flag 1).
@compute @workgroup_size(WG)
fn mao_rb_mul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = grad_scale();
  if (linear_wg(wid, nwg) >= p.wgTotal || s < 0.0) { return; }
  let trans = (p.flag & 1u) != 0u;
  let at = rb_locate(wid, nwg, lid, select(T_WG_MR, T_WG_NR, trans));
  let b = at.x;
  let idx = at.y;
  let r = p.r;
  let rows = table[b + T_ROWS];
  let cols = table[b + T_COLS];
  if (idx >= select(rows, cols, trans) * r) { return; }
  let i = idx / r;
  let a = idx % r;
  var low = 0.0;
  if (p.cL != 0.0) {
    let lOff = select(table[b + T_U], table[b + T_V], trans);
    let tOff = rs_off(b, p.xOff);
    for (var c = 0u; c < r; c = c + 1u) { low = low + state[lOff + i * r + c] * work[tOff + c * r + a]; }
  }
  let xOff = rs_off(b, p.bOff);
  let xSel = rs_sel(p.bOff);
  let g0 = table[b + T_POFF];
  var dense = 0.0;
  if (p.kind == 1u) {
    // Error feedback: the operator is E (it holds M̃ on refit steps), cL = 0.
    let e0 = table[b + T_EOFF];
    if (trans) {
      for (var k = 0u; k < rows; k = k + 1u) { dense = dense + ef_get(e0 + k * cols + i) * ld(xSel, xOff + k * r + a); }
    } else {
      for (var k = 0u; k < cols; k = k + 1u) { dense = dense + ef_get(e0 + i * cols + k) * ld(xSel, xOff + k * r + a); }
    }
    work[rs_off(b, p.oOff) + idx] = p.cL * low + p.cD * dense;
    return;
  }
  if (trans) {
    for (var k = 0u; k < rows; k = k + 1u) { dense = dense + grad[g0 + k * cols + i] * ld(xSel, xOff + k * r + a); }
  } else {
    for (var k = 0u; k < cols; k = k + 1u) { dense = dense + grad[g0 + i * cols + k] * ld(xSel, xOff + k * r + a); }
  }
  work[rs_off(b, p.oOff) + idx] = p.cL * low + p.cD * s * dense;
}

// In-place Cholesky of Gram slot oOff (lower triangle), pivots floored as mao_chol; one invocation per tensor.
@compute @workgroup_size(WG)
fn mao_rb_chol(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_ONE);
  if (at.y != 0u) { return; }
  let b = at.x;
  let r = p.r;
  let g = rs_off(b, p.oOff);
  var tr = 0.0;
  for (var a = 0u; a < r; a = a + 1u) { tr = tr + work[g + a * r + a]; }
  let fl = 1e-6 * tr / f32(r) + 1e-30;
  for (var k = 0u; k < r; k = k + 1u) {
    let d = sqrt(max(work[g + k * r + k], fl));
    work[g + k * r + k] = d;
    for (var i = k + 1u; i < r; i = i + 1u) { work[g + i * r + k] = work[g + i * r + k] / d; }
    for (var i = k + 1u; i < r; i = i + 1u) {
      for (var j = k + 1u; j <= i; j = j + 1u) { work[g + i * r + j] = work[g + i * r + j] - work[g + i * r + k] * work[g + j * r + k]; }
    }
  }
}

// Slot aOff [len, r] ← Y·L⁻ᵀ with L = slot oOff; one invocation per row (T_WG_M for rows, T_WG_N for cols).
@compute @workgroup_size(WG)
fn mao_rb_trsm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, select(T_WG_M, T_WG_N, p.len == 1u));
  let b = at.x;
  let i = at.y;
  if (i >= rs_len(b)) { return; }
  let r = p.r;
  let y = rs_off(b, p.aOff) + i * r;
  let l = rs_off(b, p.oOff);
  for (var c = 0u; c < r; c = c + 1u) {
    var acc = work[y + c];
    for (var a = 0u; a < c; a = a + 1u) { acc = acc - work[y + a] * work[l + c * r + a]; }
    work[y + c] = acc / work[l + c * r + c];
  }
}

// Error feedback, [rows·r] invocations (T_WG_MR): A ← Y·Gm, the new factors' left product U'·S'.
@compute @workgroup_size(WG)
fn mao_rb_yg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_MR);
  let b = at.x;
  let idx = at.y;
  let r = p.r;
  if (idx >= table[b + T_ROWS] * r) { return; }
  let i = idx / r;
  let a = idx % r;
  let y = rs_off(b, RS_Y);
  let gm = rs_off(b, RS_GM);
  var acc = 0.0;
  for (var c = 0u; c < r; c = c + 1u) { acc = acc + work[y + i * r + c] * work[gm + c * r + a]; }
  work[rs_off(b, RS_A) + idx] = acc;
}

// Error feedback, [⌈rows·cols/2⌉] invocations (T_WG_ELEMS): E ← E − A·Zᵀ (E held M̃; now M̃ − U'·S'·V'ᵀ), by pairs.
@compute @workgroup_size(WG)
fn mao_rb_ef(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_ELEMS);
  let b = at.x;
  let q = at.y;
  let cols = table[b + T_COLS];
  let n = table[b + T_ROWS] * cols;
  if (2u * q >= n) { return; }
  let r = p.r;
  let wa = rs_off(b, RS_A);
  let z = rs_off(b, RS_Z);
  let e0 = table[b + T_EOFF];
  var e = vec2f(0.0, 0.0);
  for (var h = 0u; h < 2u; h = h + 1u) {
    let el = 2u * q + h;
    if (el >= n) { break; }
    let i = el / cols;
    let j = el % cols;
    var low = 0.0;
    for (var c = 0u; c < r; c = c + 1u) { low = low + work[wa + i * r + c] * work[z + j * r + c]; }
    e[h] = ef_get(e0 + el) - low;
  }
  ef_put_pair(e0, q, n, e.x, e.y);
}

// U ← Y, V ← Z, S ← Gm.
@compute @workgroup_size(WG)
fn mao_rb_commit(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (linear_wg(wid, nwg) >= p.wgTotal || grad_scale() < 0.0) { return; }
  let at = rb_locate(wid, nwg, lid, T_WG_MAX);
  let b = at.x;
  let idx = at.y;
  let r = p.r;
  if (idx < table[b + T_ROWS] * r) { state[table[b + T_U] + idx] = work[rs_off(b, RS_Y) + idx]; }
  if (idx < table[b + T_COLS] * r) { state[table[b + T_V] + idx] = work[rs_off(b, RS_Z) + idx]; }
  if (idx < r * r) { state[table[b + T_S] + idx] = work[rs_off(b, RS_GM) + idx]; }
}
