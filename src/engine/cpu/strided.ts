// Plain-JS reference for copyColumns (ops/basic.ts, kernels/strided_copy.wgsl).

/** dst[r·dstStride + dstCol + j] = src[r·srcStride + srcCol + j] for r < rows, j < cols; dst is modified and returned. */
export function copyColumnsRef(
  dst: Float32Array,
  dstStride: number,
  dstCol: number,
  src: ArrayLike<number>,
  srcStride: number,
  srcCol: number,
  rows: number,
  cols: number,
): Float32Array {
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) dst[r * dstStride + dstCol + j] = src[r * srcStride + srcCol + j];
  return dst;
}
