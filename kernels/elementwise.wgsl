// Elementwise kernels over flat f32 arrays. Workgroup index is linearised as wid.x + wid.y * nwg.x because
// large arrays fold x past the 65,535-group limit into y.
// Entries: fill, unary (OP), unary_backward (OP), bias_act (ACT), bias_act_backward (ACT).
// Binary ops with broadcasting live in binary.wgsl.

struct Params {
  n: u32,
  a: f32,
  b: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

// ---- fill: y = a ----------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> fill_y: array<f32>;

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { fill_y[i] = p.a; }
}

// ---- shared activation math ------------------------------------------------------------------------------
// OP is an override so every variant compiles to its own branch-free pipeline.
override OP: u32 = 0u;
const OP_AFFINE: u32 = 0u; // a*x + b: addScalar, mulScalar, neg
const OP_EXP: u32 = 1u;
const OP_LOG: u32 = 2u;
const OP_SQRT: u32 = 3u;
const OP_TANH: u32 = 4u;
const OP_SIGMOID: u32 = 5u;
const OP_RELU: u32 = 6u;
const OP_GELU: u32 = 7u;

const GELU_K: f32 = 0.7978845608028654; // sqrt(2/pi)
const GELU_C: f32 = 0.044715;

// tanh saturates to ±1 in f32 beyond |x| ≈ 9; clamping keeps implementations that evaluate it through
// exp(2x) from producing inf/inf = NaN for large inputs.
fn tanh_safe(x: f32) -> f32 {
  return tanh(clamp(x, -15.0, 15.0));
}

fn sigmoid_f(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

fn gelu_f(x: f32) -> f32 {
  return 0.5 * x * (1.0 + tanh_safe(GELU_K * (x + GELU_C * x * x * x)));
}

fn gelu_grad(x: f32) -> f32 {
  let t = tanh_safe(GELU_K * (x + GELU_C * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * GELU_C * x * x);
}

// ---- unary: y = f(x) -------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> un_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> un_y: array<f32>;

fn unary_f(x: f32) -> f32 {
  switch OP {
    case OP_EXP: { return exp(x); }
    case OP_LOG: { return log(x); }
    case OP_SQRT: { return sqrt(x); }
    case OP_TANH: { return tanh_safe(x); }
    case OP_SIGMOID: { return sigmoid_f(x); }
    case OP_RELU: { return max(x, 0.0); }
    case OP_GELU: { return gelu_f(x); }
    default: { return p.a * x + p.b; }
  }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { un_y[i] = unary_f(un_x[i]); }
}

// ---- unary_backward: dx = g * f'(.) ----------------------------------------------------------------------
// `saved` is the op's output where the derivative is cheapest from it (exp, sqrt, tanh, sigmoid) and its
// input otherwise (log, relu, gelu); ops/elementwise.ts passes the right one.
@group(0) @binding(1) var<storage, read> ub_g: array<f32>;
@group(0) @binding(2) var<storage, read> ub_saved: array<f32>;
@group(0) @binding(3) var<storage, read_write> ub_dx: array<f32>;

fn unary_grad(s: f32) -> f32 {
  switch OP {
    case OP_EXP: { return s; }
    case OP_LOG: { return 1.0 / s; }
    case OP_SQRT: { return 0.5 / s; }
    case OP_TANH: { return 1.0 - s * s; }
    case OP_SIGMOID: { return s * (1.0 - s); }
    case OP_RELU: { return select(0.0, 1.0, s > 0.0); }
    case OP_GELU: { return gelu_grad(s); }
    default: { return p.a; }
  }
}

@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { ub_dx[i] = ub_g[i] * unary_grad(ub_saved[i]); }
}

// ---- bias_act: y = act(x + bias[col]) over rows of length d (the matmul epilogue) ---------------------------
struct BiasParams {
  n: u32,
  d: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> bp: BiasParams;

override ACT: u32 = 0u; // 0 none, 1 relu, 2 gelu

@group(0) @binding(1) var<storage, read> ba_x: array<f32>;
@group(0) @binding(2) var<storage, read> ba_bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> ba_y: array<f32>;

fn act_f(z: f32) -> f32 {
  switch ACT {
    case 1u: { return max(z, 0.0); }
    case 2u: { return gelu_f(z); }
    default: { return z; }
  }
}

fn act_grad(z: f32) -> f32 {
  switch ACT {
    case 1u: { return select(0.0, 1.0, z > 0.0); }
    case 2u: { return gelu_grad(z); }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(WG)
fn bias_act(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < bp.n) { ba_y[i] = act_f(ba_x[i] + ba_bias[i % bp.d]); }
}

// dx = g * act'(x + bias): recomputes the pre-activation rather than storing it.
@group(0) @binding(1) var<storage, read> bb_g: array<f32>;
@group(0) @binding(2) var<storage, read> bb_x: array<f32>;
@group(0) @binding(3) var<storage, read> bb_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> bb_dx: array<f32>;

@compute @workgroup_size(WG)
fn bias_act_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < bp.n) { bb_dx[i] = bb_g[i] * act_grad(bb_x[i] + bb_bias[i % bp.d]); }
}
