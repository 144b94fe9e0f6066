// Plain-JS references for ops/matmul.ts, accumulated in f64.

/**
 * C[b] = op(A[b]) · op(B[b]) for `batch` matrices; a is stored [M, K] per batch ([K, M] when transA), b [K, N]
 * ([N, K] when transB). A batch stride of 0 (aShared / bShared) uses one 2-D operand for every batch.
 */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  opts: { transA?: boolean; transB?: boolean; batch?: number; aShared?: boolean; bShared?: boolean; bias?: ArrayLike<number> } = {},
): Float32Array {
  const batch = opts.batch ?? 1;
  const out = new Float32Array(batch * m * n);
  const sa = opts.aShared ? 0 : m * k;
  const sb = opts.bShared ? 0 : k * n;
  for (let t = 0; t < batch; t++) {
    const ao = t * sa;
    const bo = t * sb;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = opts.bias ? opts.bias[j] : 0;
        for (let p = 0; p < k; p++) {
          const av = opts.transA ? a[ao + p * m + i] : a[ao + i * k + p];
          const bv = opts.transB ? b[bo + j * k + p] : b[bo + p * n + j];
          s += av * bv;
        }
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

/** y = x·Wᵀ + b for x [rows, in], w [out, in], bias [out]. */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, inF: number, outF: number, bias?: ArrayLike<number>): Float32Array {
  return matmulRef(x, w, rows, inF, outF, { transB: true, bias });
}
