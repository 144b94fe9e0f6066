// Adafactor (Shazeer & Stern, arXiv 1804.04235), parameterised as PyTorch's torch.optim.Adafactor, one tensor per
// dispatch (src/engine/optim/adafactor.ts). A tensor viewed as a matrix [rows, cols] keeps row and column means of
// g² (R, C: rows + cols floats) instead of a dense second moment; a vector (rank 1) keeps a dense one (V).
//
//   g ← clip·g                                      (global-norm clipping; the whole step is skipped if ‖g‖ is not finite)
//   R ← R + (mean_j g² − R)·(1−β2ₜ),  C ← C + (mean_i g² − C)·(1−β2ₜ),  1−β2ₜ = t^beta2Decay
//   V̂ = R·Cᵀ / max(mean(R), ε1)                      (vectors: V ← V + (g² − V)·(1−β2ₜ), V̂ = V)
//   u = g / √max(V̂, ε1²);  u ← u / max(1, RMS(u)/d)
//   α = min(lr, 1/√t) · (scaleParameter ? max(ε2, RMS(w)) : 1)
//   m ← β1·m + (1−β1)·u (when β1 > 0; then u ← m)
//   w ← w·(1 − lr·λ) − α·u                             (λ only on tensors with the decay flag)
//
// Per tensor: af_rows (one workgroup per row) and af_cols (one per column) update R and C; af_scalars (one
// workgroup) reduces mean(R), Σu² and Σw² (and updates V for vectors); af_update applies the step elementwise.
// Dispatches in one pass are ordered, so each kernel sees the previous one's writes.
//#include "common/finite.wgsl"

override WG: u32 = 256u;

const USE_SKIP: u32 = 1u;
const USE_CLIP: u32 = 2u;

struct AfParams {
  rows: u32,
  cols: u32,
  factored: u32,
  mode: u32,
  numTensors: u32,
  tensor: u32,        // slot in `scalars`
  rOff: u32,          // offsets into `second`
  cOff: u32,
  vOff: u32,
  useMomentum: u32,
  scaleParameter: u32,
  pad: u32,
  maxNorm: f32,
  oneMinusBeta2: f32,
  eps1: f32,
  eps2: f32,
  clipThreshold: f32,
  rho: f32,           // min(lr, 1/√t)
  decayKeep: f32,     // 1 − lr·λ (1 without decay)
  beta1: f32,
}
@group(0) @binding(0) var<uniform> p: AfParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> second: array<f32>;
@group(0) @binding(4) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(5) var<storage, read_write> mom: array<f32>;
@group(0) @binding(6) var<storage, read> norms: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;
var<workgroup> shared_mean_r: f32;


// The gradient scale of this step: the clipping factor, or −1 when the step is skipped (non-finite gradient).
fn grad_scale() -> f32 {
  if (p.mode == 0u) { return 1.0; }
  let total = norms[p.numTensors];
  if ((p.mode & USE_SKIP) != 0u && !is_finite(total)) { return -1.0; }
  if ((p.mode & USE_CLIP) != 0u) { return min(1.0, p.maxNorm / (sqrt(total) + 1e-6)); }
  return 1.0;
}

// Tree reduction of red[] (and red2[]) over the workgroup; the result is in red[0] (red2[0]).
fn reduce_wg(lid: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
      red2[lid] = red2[lid] + red2[lid + s];
    }
    workgroupBarrier();
  }
}

// One factor entry: second[slot] ← lerp toward the mean of g² over `count` elements of the gradient starting at
// `start`, `stride` apart (a row: stride 1; a column: stride cols). Called in uniform control flow (barriers).
fn update_factor(slot: u32, start: u32, stride: u32, count: u32, lid: u32, s: f32) {
  var acc = 0.0;
  for (var k = lid; k < count; k = k + WG) {
    let g = grad[start + k * stride] * s;
    acc = acc + g * g;
  }
  red[lid] = acc;
  red2[lid] = 0.0;
  reduce_wg(lid);
  if (lid == 0u) {
    second[slot] = second[slot] + (red[0] / f32(count) - second[slot]) * p.oneMinusBeta2;
  }
}

@compute @workgroup_size(WG)
fn af_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  let s = grad_scale();
  // Uniform control flow: every invocation of the workgroup takes the same branch before the barriers.
  if (row >= p.rows || s < 0.0) { return; }
  update_factor(p.rOff + row, row * p.cols, 1u, p.cols, lid, s);
}

@compute @workgroup_size(WG)
fn af_cols(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = wid.x + wid.y * nwg.x;
  let s = grad_scale();
  if (col >= p.cols || s < 0.0) { return; }
  update_factor(p.cOff + col, col, p.cols, p.rows, lid, s);
}

// V̂ at element (i, j) of a factored tensor, given max(mean(R), ε1).
fn vhat_factored(row: u32, col: u32, meanR: f32) -> f32 {
  return second[p.rOff + row] * second[p.cOff + col] / meanR;
}

@compute @workgroup_size(WG)
fn af_scalars(@builtin(local_invocation_index) lid: u32) {
  let s = grad_scale();
  if (s < 0.0) { return; }
  let n = p.rows * p.cols;
  let floor2 = p.eps1 * p.eps1;
  var meanR = 1.0;
  if (p.factored != 0u) {
    var acc = 0.0;
    for (var i = lid; i < p.rows; i = i + WG) { acc = acc + second[p.rOff + i]; }
    red[lid] = acc;
    red2[lid] = 0.0;
    reduce_wg(lid);
    if (lid == 0u) { shared_mean_r = max(red[0] / f32(p.rows), p.eps1); }
    workgroupBarrier();
    meanR = shared_mean_r;
    workgroupBarrier(); // everyone has read red[0] before it is reused
  }
  var u2 = 0.0;
  var w2 = 0.0;
  for (var k = lid; k < n; k = k + WG) {
    let g = grad[k] * s;
    var v = 0.0;
    if (p.factored != 0u) {
      v = vhat_factored(k / p.cols, k % p.cols, meanR);
    } else {
      let vi = p.vOff + k;
      v = second[vi] + (g * g - second[vi]) * p.oneMinusBeta2;
      second[vi] = v;
    }
    u2 = u2 + g * g / max(v, floor2);
    let w = param[k];
    w2 = w2 + w * w;
  }
  red[lid] = u2;
  red2[lid] = w2;
  reduce_wg(lid);
  if (lid == 0u) {
    scalars[p.tensor * 4u] = meanR;
    scalars[p.tensor * 4u + 1u] = red[0];
    scalars[p.tensor * 4u + 2u] = red2[0];
  }
}

@compute @workgroup_size(WG)
fn af_update(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * WG;
  let n = p.rows * p.cols;
  if (k >= n) { return; }
  let s = grad_scale();
  if (s < 0.0) { return; }
  let meanR = scalars[p.tensor * 4u];
  let nf = f32(n);
  let denom = max(1.0, sqrt(scalars[p.tensor * 4u + 1u] / nf) / p.clipThreshold);
  var alpha = p.rho;
  if (p.scaleParameter != 0u) { alpha = alpha * max(p.eps2, sqrt(scalars[p.tensor * 4u + 2u] / nf)); }
  let g = grad[k] * s;
  var v = 0.0;
  if (p.factored != 0u) { v = vhat_factored(k / p.cols, k % p.cols, meanR); } else { v = second[p.vOff + k]; }
  var u = g * inverseSqrt(max(v, p.eps1 * p.eps1)) / denom;
  if (p.useMomentum != 0u) {
    let m = p.beta1 * mom[k] + (1.0 - p.beta1) * u;
    mom[k] = m;
    u = m;
  }
  param[k] = param[k] * p.decayKeep - alpha * u;
}
