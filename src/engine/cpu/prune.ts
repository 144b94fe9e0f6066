// CPU references of the pruning scores, masks and SparseGPT (src/engine/prune/, kernels/prune.wgsl). Plain loops
// in double precision over row-major [rows, cols] arrays, written from the formulas (../shared/notes/
// algorithms.md §3), sharing none of the kernels' layout logic. SparseGPT's CPU version is also what the engine
// runs (the [in, in] Cholesky solve and the column sweep, in float64; see src/engine/prune/sparsegpt.ts).

/** A u32 hash of (index, seed, salt): the random score, bit-identical in WGSL (prune.wgsl `hash3`). */
export function pruneHash(i: number, seed: number, salt: number): number {
  let h = (Math.imul(i >>> 0, 0x9e3779b1) ^ Math.imul((seed + 0x7f4a7c15) >>> 0, 0x85ebca77) ^ Math.imul((salt + 0x165667b1) >>> 0, 0xc2b2ae3d)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniform [0, 1) from 24 bits of the hash (exact in f32). */
export function cpuRandomScore(n: number, seed: number, salt: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (pruneHash(i, seed, salt) >>> 8) / 16777216;
  return out;
}

/** |w| or |w − base| (task vector). */
export function cpuMagnitudeScore(w: ArrayLike<number>, base?: ArrayLike<number>): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = Math.abs(w[i] - (base ? base[i] : 0));
  return out;
}

/** OBD: d² · R_i·C_j/ΣR, d = w (or τ); R, C the row and column sums of v over [rows, cols]. */
export function cpuCurvatureScore(w: ArrayLike<number>, vRow: ArrayLike<number>, vCol: ArrayLike<number>, cols: number, base?: ArrayLike<number>): Float32Array {
  let sumR = 0;
  for (let i = 0; i < vRow.length; i++) sumR += vRow[i];
  const out = new Float32Array(w.length);
  for (let k = 0; k < w.length; k++) {
    const i = Math.floor(k / cols);
    const j = k % cols;
    const d = w[k] - (base ? base[k] : 0);
    const f = sumR > 0 ? (vRow[i] * vCol[j]) / sumR : 0;
    out[k] = d * d * f;
  }
  return out;
}

/** Wanda: |d_ij|·sqrt(Σ_r x_rj²), with the column sums of squares of the calibration inputs. */
export function cpuWandaScore(w: ArrayLike<number>, colSqSum: ArrayLike<number>, cols: number, base?: ArrayLike<number>): Float32Array {
  const out = new Float32Array(w.length);
  for (let k = 0; k < w.length; k++) out[k] = Math.abs(w[k] - (base ? base[k] : 0)) * Math.sqrt(colSqSum[k % cols]);
  return out;
}

/** Σ_r x[r, j]² of x [rows, cols]. */
export function cpuColSqSum(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[j] += x[r * cols + j] ** 2;
  return out;
}

/** Entries kept out of `size` at a density: round(d·size), at least 1 (a group is never emptied). */
export function keepCount(density: number, size: number): number {
  return Math.min(size, Math.max(1, Math.round(density * size)));
}

/** The k-th largest value (1-based) of xs. */
export function cpuKthLargest(xs: ArrayLike<number>, k: number): number {
  const s = Float64Array.from(xs).sort();
  return s[s.length - k];
}

/** Keep-mask (1 kept, 0 pruned) by threshold: score ≥ thr[row] (thr of length rows) or ≥ thr[0]. */
export function cpuThresholdMask(score: ArrayLike<number>, cols: number, thr: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(score.length);
  for (let k = 0; k < score.length; k++) out[k] = score[k] >= thr[thr.length === 1 ? 0 : Math.floor(k / cols)] ? 1 : 0;
  return out;
}

/** N:M keep-mask: of every M consecutive entries of a row, the N with the largest scores (ties: lower index). */
export function cpuNmMask(score: ArrayLike<number>, cols: number, n: number, m: number): Uint8Array {
  if (cols % m !== 0) throw new Error(`N:M mask: ${cols} columns are not a multiple of ${m}`);
  const out = new Uint8Array(score.length);
  for (let g = 0; g < score.length; g += m) {
    const idx = Array.from({ length: m }, (_, i) => g + i).sort((a, b) => score[b] - score[a] || a - b);
    for (let i = 0; i < n; i++) out[idx[i]] = 1;
  }
  return out;
}

/** Masked weights: kept entries as they are, pruned ones 0 (or the base's value: task vectors). */
export function cpuApplyMask(w: ArrayLike<number>, mask: ArrayLike<number>, base?: ArrayLike<number>): Float32Array {
  const out = new Float32Array(w.length);
  for (let k = 0; k < w.length; k++) out[k] = mask[k] ? w[k] : base ? base[k] : 0;
  return out;
}

// ---- SparseGPT (arXiv 2301.00774, Algorithm 1) ------------------------------------------------------------

/** XᵀX of x [rows, cols] in float64. */
export function cpuGram(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const h = new Float64Array(cols * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let i = 0; i < cols; i++) {
      const xi = x[o + i];
      if (xi === 0) continue;
      for (let j = 0; j < cols; j++) h[i * cols + j] += xi * x[o + j];
    }
  }
  return h;
}

/** Lower Cholesky factor L (A = L·Lᵀ) of a symmetric positive-definite [n, n]; throws when A is not. */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j];
    for (let k = 0; k < j; k++) s -= l[j * n + k] ** 2;
    if (!(s > 0)) throw new Error(`Cholesky: the matrix is not positive definite at column ${j} (pivot ${s}); raise the dampening`);
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j];
      for (let k = 0; k < j; k++) t -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = t / d;
    }
  }
  return l;
}

/** A⁻¹ from the lower Cholesky factor L of A: solve L·Y = I, then Lᵀ·X = Y. */
export function choleskyInverse(l: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = 0; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= l[i * n + k] * y[k * n + c];
      y[i * n + c] = s / l[i * n + i];
    }
  }
  const x = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i * n + c];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k * n + c];
      x[i * n + c] = s / l[i * n + i];
    }
  }
  return x;
}

export interface SparseGptPrep {
  cols: number;
  /** Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), row-major [cols, cols]. */
  u: Float64Array;
  /** Columns whose inputs were always 0 (H_jj = 0): their weights are set to 0. */
  dead: Uint8Array;
}

/**
 * The density-independent part: damp H (damp·mean diag), invert it through Cholesky, and factor H⁻¹ = UᵀU.
 * `h` is XᵀX (any scale: the OBS updates are invariant to it) and is not modified.
 */
export function sparseGptPrepare(h: Float64Array, cols: number, damp: number): SparseGptPrep {
  const a = Float64Array.from(h);
  const dead = new Uint8Array(cols);
  let mean = 0;
  for (let j = 0; j < cols; j++) {
    if (a[j * cols + j] === 0) {
      dead[j] = 1;
      a[j * cols + j] = 1;
    }
    mean += a[j * cols + j];
  }
  mean /= cols;
  for (let j = 0; j < cols; j++) a[j * cols + j] += damp * mean;
  const hinv = choleskyInverse(cholesky(a, cols), cols);
  // Upper factor of H⁻¹: the transpose of its lower Cholesky factor.
  const lo = cholesky(hinv, cols);
  const u = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) for (let j = i; j < cols; j++) u[i * cols + j] = lo[j * cols + i];
  return { cols, u, dead };
}

/**
 * SparseGPT on one layer's weight w [rows, cols]: keeps `density` of each column block (unstructured: the lowest
 * w²/U_jj² across the block's rows and columns are pruned, as the paper's reference does) or N of every M (per
 * row), and spreads each pruned column's error over the later columns. Returns the new weights and the keep-mask.
 */
export function cpuSparseGpt(
  w: ArrayLike<number>,
  rows: number,
  prep: SparseGptPrep,
  opts: { density: number; blockSize: number; pattern?: { n: number; m: number } | null },
): { weight: Float32Array; mask: Uint8Array } {
  const n = prep.cols;
  const U = prep.u;
  const W = Float64Array.from(w);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) if (prep.dead[j]) W[r * n + j] = 0;
  const mask = new Uint8Array(rows * n).fill(1);
  const pattern = opts.pattern ?? null;
  const B = pattern ? Math.max(pattern.m, Math.ceil(opts.blockSize / pattern.m) * pattern.m) : Math.max(1, opts.blockSize);
  const err = new Float64Array(rows * B);
  for (let i1 = 0; i1 < n; i1 += B) {
    const i2 = Math.min(i1 + B, n);
    const count = i2 - i1;
    if (!pattern) {
      // Prune the (1 − density) fraction of the block with the lowest OBS saliency w²/U_jj².
      const sal: { v: number; k: number }[] = [];
      for (let r = 0; r < rows; r++) for (let j = i1; j < i2; j++) sal.push({ v: W[r * n + j] ** 2 / U[j * n + j] ** 2, k: r * n + j });
      const prune = sal.length - keepCount(opts.density, sal.length);
      sal.sort((a, b) => a.v - b.v || a.k - b.k);
      for (let t = 0; t < prune; t++) mask[sal[t].k] = 0;
    }
    for (let j = i1; j < i2; j++) {
      const d = U[j * n + j];
      if (pattern && (j - i1) % pattern.m === 0) {
        // N:M: per row, of the next M columns the M − N lowest saliencies are pruned (chosen with the updated w).
        for (let r = 0; r < rows; r++) {
          const idx = Array.from({ length: pattern.m }, (_, t) => j + t);
          const s = (c: number) => W[r * n + c] ** 2 / U[c * n + c] ** 2;
          idx.sort((a, b) => s(a) - s(b) || b - a);
          for (let t = 0; t < pattern.m - pattern.n; t++) mask[r * n + idx[t]] = 0;
        }
      }
      for (let r = 0; r < rows; r++) {
        const wv = W[r * n + j];
        const q = mask[r * n + j] ? wv : 0;
        const e = (wv - q) / d;
        err[r * B + (j - i1)] = e;
        W[r * n + j] = q;
        if (e !== 0) for (let c = j + 1; c < i2; c++) W[r * n + c] -= e * U[j * n + c];
      }
    }
    // Lazy batch update of the columns after the block.
    if (i2 < n) {
      for (let r = 0; r < rows; r++) {
        for (let t = 0; t < count; t++) {
          const e = err[r * B + t];
          if (e === 0) continue;
          const urow = (i1 + t) * n;
          for (let c = i2; c < n; c++) W[r * n + c] -= e * U[urow + c];
        }
      }
    }
  }
  // A dead input's weights were zeroed before the solve (as the reference does): they are pruned, whichever way
  // the budget fell, so the kept fraction reported counts only weights that carry a value.
  for (let j = 0; j < n; j++) if (prep.dead[j]) for (let r = 0; r < rows; r++) mask[r * n + j] = 0;
  return { weight: Float32Array.from(W), mask };
}

/** ‖(W − Ŵ)·Xᵀ‖²_F = tr((W−Ŵ) H (W−Ŵ)ᵀ) with H = XᵀX: a layer's reconstruction error. */
export function reconstructionError(w: ArrayLike<number>, wHat: ArrayLike<number>, h: Float64Array, rows: number, cols: number): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) d[j] = w[r * cols + j] - wHat[r * cols + j];
    for (let i = 0; i < cols; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < cols; j++) s += h[i * cols + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}
