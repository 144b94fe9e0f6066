// EWC penalty gradient, added into a weight's gradient before the optimizer step (src/engine/train/ewc.ts):
//   grad[i, j] += coef · R[i] · C[j] · (θ[i, j] − θ*[i, j])
// with R, C the previous task's row and column sums of the second moment and coef = λ / (ΣR · mean curvature),
// i.e. λ · F̂ ⊙ (θ − θ*) for the rank-1 curvature F̂_ij = R_i·C_j/ΣR normalised to mean 1 over the model.
// One thread per element; the workgroup index is linearised as wid.x + wid.y * nwg.x (large tensors fold into y).

struct Params {
  n: u32,
  cols: u32,
  coef: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read> anchor: array<f32>;
@group(0) @binding(4) var<storage, read> rowv: array<f32>;
@group(0) @binding(5) var<storage, read> colv: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn ewc_grad(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let c = i - r * p.cols;
  grad[i] = grad[i] + p.coef * rowv[r] * colv[c] * (theta[i] - anchor[i]);
}
