// Copy a block of columns between two row-major matrices with different row strides:
//   dst[r * dstStride + dstCol + j] = src[r * srcStride + srcCol + j]   for r < rows, j < cols.
// linear() over a weight split into row chunks (ops/matmul.ts) uses it to place each chunk's logits in a column
// range of the output, and to take that column range of the output gradient back out. CPU reference:
// copyColumnsRef in src/engine/cpu/strided.ts.

struct Params {
  rows: u32,
  cols: u32,
  srcStride: u32,
  srcCol: u32,
  dstStride: u32,
  dstCol: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn copy_cols(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= p.rows * p.cols) { return; }
  let r = e / p.cols;
  let j = e % p.cols;
  dst[r * p.dstStride + p.dstCol + j] = src[r * p.srcStride + p.srcCol + j];
}
