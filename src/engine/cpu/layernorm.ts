// Plain-JS reference for ops/layernorm.ts: rows of length d = w.length, computed in f64.

/** Mean and 1/√(variance + eps) of the row of length d starting at base. */
function rowStats(x: ArrayLike<number>, base: number, d: number, eps: number): { m: number; rs: number } {
  let s = 0;
  for (let j = 0; j < d; j++) s += x[base + j];
  const m = s / d;
  let q = 0;
  for (let j = 0; j < d; j++) q += (x[base + j] - m) ** 2;
  return { m, rs: 1 / Math.sqrt(q / d + eps) };
}

export function layerNormRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, eps = 1e-5): { y: Float32Array; mean: Float32Array; rstd: Float32Array } {
  const d = w.length;
  const rows = x.length / d;
  const y = new Float32Array(x.length);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    const { m, rs } = rowStats(x, base, d, eps);
    for (let j = 0; j < d; j++) y[base + j] = (x[base + j] - m) * rs * w[j] + b[j];
    mean[r] = m;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

export function layerNormGradRef(x: ArrayLike<number>, w: ArrayLike<number>, g: ArrayLike<number>, eps = 1e-5): { dx: Float32Array; dw: Float32Array; db: Float32Array } {
  const d = w.length;
  const rows = x.length / d;
  const dx = new Float32Array(x.length);
  const dw = new Float64Array(d);
  const db = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    const { m, rs } = rowStats(x, base, d, eps);
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < d; j++) {
      const xh = (x[base + j] - m) * rs;
      const gw = g[base + j] * w[j];
      sg += gw;
      sgx += gw * xh;
      dw[j] += g[base + j] * xh;
      db[j] += g[base + j];
    }
    for (let j = 0; j < d; j++) {
      const xh = (x[base + j] - m) * rs;
      dx[base + j] = rs * (g[base + j] * w[j] - sg / d - (xh * sgx) / d);
    }
  }
  return { dx, dw: Float32Array.from(dw), db: Float32Array.from(db) };
}
