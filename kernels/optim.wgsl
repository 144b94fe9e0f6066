// Optimizer updates over the flat layout of src/engine/optim/params.ts: one dispatch updates every parameter
// (one per chunk where the buffers exceed one binding). A workgroup owns one layout block, which lies inside one
// tensor, so the per-tensor flags (decay, frozen) are one lookup per workgroup.
//
// Gradient clipping and the non-finite guard read the total sum of squares that kernels/gradnorm.wgsl left in
// norms[numTensors]: no readback, the host never waits. If that total is NaN or ±Inf the whole step is a no-op
// (parameters AND moments untouched), so one bad batch cannot corrupt the weights.
// Segments table: u32 × 4 per tensor = [offset, size, flags, firstBlock].
//#include "common/finite.wgsl"

override WG: u32 = 256u;
override BLOCK: u32 = 1024u;   // FLAT_BLOCK

const SEG_DECAY: u32 = 1u;
const SEG_FROZEN: u32 = 2u;
const USE_SKIP: u32 = 1u;      // `mode` bit: skip the step when the gradient total is not finite
const USE_CLIP: u32 = 2u;      // `mode` bit: scale gradients by min(1, maxNorm / (‖g‖ + 1e-6))


// The element range [start, end) of this workgroup's block, or start == end when the workgroup has nothing to do.
struct Range {
  start: u32,
  end: u32,
  flags: u32,
}

// ---- AdamW (Loshchilov & Hutter, decoupled decay; PyTorch's parameterisation: decay multiplied by lr) -------
//   g ← clip·g;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p·(1 − lr·λ·decay) − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
// Bias corrections are computed on the host in double precision and arrive as uniforms with lr.
struct AdamParams {
  blockBase: u32,
  numBlocks: u32,
  elemBase: u32,
  numTensors: u32,
  mode: u32,
  maxNorm: f32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  stepSize: f32,    // lr / (1 − β1ᵗ)
  bc2Sqrt: f32,     // √(1 − β2ᵗ)
}
@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> a_param: array<f32>;
@group(0) @binding(2) var<storage, read> a_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> a_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> a_v: array<f32>;
@group(0) @binding(5) var<storage, read> a_segments: array<u32>;
@group(0) @binding(6) var<storage, read> a_blocks: array<u32>;
@group(0) @binding(7) var<storage, read> a_norms: array<f32>;

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= ap.numBlocks) { return; }
  let b = ap.blockBase + w;
  let t = a_blocks[b];
  let flags = a_segments[t * 4u + 2u];
  if ((flags & SEG_FROZEN) != 0u) { return; }
  var scale = 1.0;
  if (ap.mode != 0u) {
    let total = a_norms[ap.numTensors];
    if ((ap.mode & USE_SKIP) != 0u && !is_finite(total)) { return; }
    if ((ap.mode & USE_CLIP) != 0u) { scale = min(1.0, ap.maxNorm / (sqrt(total) + 1e-6)); }
  }
  let off = a_segments[t * 4u];
  let start = off + (b - a_segments[t * 4u + 3u]) * BLOCK;
  let end = min(start + BLOCK, off + a_segments[t * 4u + 1u]);
  var decayKeep = 1.0;
  if ((flags & SEG_DECAY) != 0u) { decayKeep = 1.0 - ap.lr * ap.weightDecay; }
  for (var gi = start + lid; gi < end; gi = gi + WG) {
    let i = gi - ap.elemBase;
    let g = a_grad[i] * scale;
    let m = ap.beta1 * a_m[i] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * a_v[i] + (1.0 - ap.beta2) * g * g;
    a_m[i] = m;
    a_v[i] = v;
    a_param[i] = a_param[i] * decayKeep - ap.stepSize * m / (sqrt(v) / ap.bc2Sqrt + ap.eps);
  }
}

// ---- SGD with momentum (PyTorch's formulation; L2 weight decay added to the gradient) ------------------------
//   d ← clip·g + λ·decay·p
//   buf ← d on the first step, else μ·buf + (1 − dampening)·d
//   d ← nesterov ? d + μ·buf : buf;   p ← p − lr·d
// With μ = 0 there is no momentum buffer (the binding is a placeholder and never touched).
struct SgdParams {
  blockBase: u32,
  numBlocks: u32,
  elemBase: u32,
  numTensors: u32,
  mode: u32,
  maxNorm: f32,
  lr: f32,
  momentum: f32,
  dampening: f32,
  weightDecay: f32,
  nesterov: u32,
  first: u32,
}
@group(0) @binding(0) var<uniform> sp: SgdParams;
@group(0) @binding(1) var<storage, read_write> s_param: array<f32>;
@group(0) @binding(2) var<storage, read> s_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_buf: array<f32>;
@group(0) @binding(4) var<storage, read> s_segments: array<u32>;
@group(0) @binding(5) var<storage, read> s_blocks: array<u32>;
@group(0) @binding(6) var<storage, read> s_norms: array<f32>;

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= sp.numBlocks) { return; }
  let b = sp.blockBase + w;
  let t = s_blocks[b];
  let flags = s_segments[t * 4u + 2u];
  if ((flags & SEG_FROZEN) != 0u) { return; }
  var scale = 1.0;
  if (sp.mode != 0u) {
    let total = s_norms[sp.numTensors];
    if ((sp.mode & USE_SKIP) != 0u && !is_finite(total)) { return; }
    if ((sp.mode & USE_CLIP) != 0u) { scale = min(1.0, sp.maxNorm / (sqrt(total) + 1e-6)); }
  }
  let off = s_segments[t * 4u];
  let start = off + (b - s_segments[t * 4u + 3u]) * BLOCK;
  let end = min(start + BLOCK, off + s_segments[t * 4u + 1u]);
  var wd = 0.0;
  if ((flags & SEG_DECAY) != 0u) { wd = sp.weightDecay; }
  let useMomentum = sp.momentum != 0.0;
  for (var gi = start + lid; gi < end; gi = gi + WG) {
    let i = gi - sp.elemBase;
    let p = s_param[i];
    var d = s_grad[i] * scale + wd * p;
    if (useMomentum) {
      var buf = d;
      if (sp.first == 0u) { buf = sp.momentum * s_buf[i] + (1.0 - sp.dampening) * d; }
      s_buf[i] = buf;
      if (sp.nesterov != 0u) { d = d + sp.momentum * buf; } else { d = buf; }
    }
    s_param[i] = p - sp.lr * d;
  }
}
