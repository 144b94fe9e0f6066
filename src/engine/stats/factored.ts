// The second-moment fields of a statistics record (vMean, vMax, the log10 histogram, vRow, vCol) for an
// optimizer that keeps the second moment FACTORED (Adafactor: row means R [rows] and column means C [cols] of g²,
// V̂ = R·Cᵀ / mean(R)). Computed on the host from the factors — rows + cols floats read back, never a dense V̂ —
// and exact: the histogram counts pairs (i, j) per bin by a binary search over the sorted larger factor for each
// value of the smaller one, O(min·bins·log max + max·log max).
import { HIST_BINS, HIST_HI, HIST_LO } from '../../protocol/stats';
import { histBin } from '../cpu/stats';
import { quantileByCount, sortedQuantile } from './quantiles';

export interface SecondMomentFields {
  vMean: number;
  vMax: number;
  hist: Float32Array;
  vRow: Float32Array;
  vCol: Float32Array;
  /** The nearest-rank q-quantile of every element (./quantiles.ts), exact. */
  quantile(q: number): number;
}

/** Lower edge of histogram bin k as a value of v (10^(LO + k·width)). */
function binEdge(k: number): number {
  return 10 ** (HIST_LO + (k * (HIST_HI - HIST_LO)) / HIST_BINS);
}

/** Number of values of a sorted array at most x. */
function countAtMost(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Number of values of a sorted array strictly below x. */
function countBelow(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The fields for V̂ = R·Cᵀ / mean(R), viewed as a [rows, cols] matrix. */
export function factoredSecondMoment(R: ArrayLike<number>, C: ArrayLike<number>): SecondMomentFields {
  const rows = R.length;
  const cols = C.length;
  let sumR = 0;
  let sumC = 0;
  let maxR = 0;
  let maxC = 0;
  for (let i = 0; i < rows; i++) {
    sumR += R[i];
    maxR = Math.max(maxR, R[i]);
  }
  for (let j = 0; j < cols; j++) {
    sumC += C[j];
    maxC = Math.max(maxC, C[j]);
  }
  const meanR = rows ? sumR / rows : 0;
  const vRow = new Float32Array(rows);
  const vCol = new Float32Array(cols);
  const hist = new Float32Array(HIST_BINS);
  const total = rows * cols;
  if (!(meanR > 0) || total === 0) {
    hist[0] = total; // V̂ is all zeros
    return { vMean: 0, vMax: 0, hist, vRow, vCol, quantile: () => 0 };
  }
  for (let i = 0; i < rows; i++) vRow[i] = (R[i] * sumC) / meanR;
  for (let j = 0; j < cols; j++) vCol[j] = (C[j] * sumR) / meanR;
  // Pairs (a, b) with a·b / meanR below each bin edge: a runs over the smaller factor, b is searched in the other.
  const [small, large] = rows <= cols ? [R, C] : [C, R];
  const sorted = Float64Array.from(large).sort();
  const below = new Float64Array(HIST_BINS + 1); // below[k]: pairs with V̂ < edge k (k = 1..BINS-1)
  for (let i = 0; i < small.length; i++) {
    const a = small[i];
    for (let k = 1; k < HIST_BINS; k++) below[k] += a > 0 ? countBelow(sorted, (binEdge(k) * meanR) / a) : sorted.length;
  }
  below[0] = 0;
  below[HIST_BINS] = total;
  for (let k = 0; k < HIST_BINS; k++) hist[k] = (k === 0 ? below[1] : k === HIST_BINS - 1 ? total - below[k] : below[k + 1] - below[k]);
  const vMax = (maxR * maxC) / meanR;
  // #{(i, j): a·b / meanR ≤ x}: zeros of the smaller factor count for every x ≥ 0.
  const atMost = (x: number) => {
    let c = 0;
    for (let i = 0; i < small.length; i++) c += small[i] > 0 ? countAtMost(sorted, (x * meanR) / small[i]) : sorted.length;
    return c;
  };
  return { vMean: (sumR * sumC) / meanR / total, vMax, hist, vRow, vCol, quantile: (q) => quantileByCount(total, vMax, q, atMost) };
}

/** The same fields for a dense second moment of a vector or small tensor (the factored optimizers' 1-D state). */
export function denseSecondMoment(v: ArrayLike<number>, rows: number, cols: number): SecondMomentFields {
  const vRow = new Float32Array(rows);
  const vCol = new Float32Array(cols);
  const hist = new Float32Array(HIST_BINS);
  let sum = 0;
  let max = 0;
  for (let k = 0; k < v.length; k++) {
    const x = v[k];
    sum += x;
    max = Math.max(max, x);
    vRow[Math.floor(k / cols)] += x;
    vCol[k % cols] += x;
    hist[histBin(x)]++;
  }
  const sorted = Float64Array.from(v).sort();
  return { vMean: v.length ? sum / v.length : 0, vMax: max, hist, vRow, vCol, quantile: (q) => sortedQuantile(sorted, q) };
}

/**
 * ‖U·S·Vᵀ‖_F of a low-rank momentum (mao: U [rows, r], S [r, r], V [cols, r]), exactly, without assuming U and V
 * orthonormal (Cholesky-QR leaves them orthonormal only to f32 accuracy, and a rank-deficient momentum leaves
 * near-zero columns): ‖U·S·Vᵀ‖² = tr(Sᵀ·(UᵀU)·S·(VᵀV)), O((rows + cols)·r² + r³) on the host.
 */
export function lowRankNorm(U: ArrayLike<number>, S: ArrayLike<number>, V: ArrayLike<number>, rows: number, cols: number): number {
  const r = rows > 0 ? U.length / rows : 0;
  if (!r) return 0;
  const gram = (X: ArrayLike<number>, n: number) => {
    const G = new Float64Array(r * r);
    for (let i = 0; i < n; i++) for (let a = 0; a < r; a++) {
      const x = X[i * r + a];
      if (x === 0) continue;
      for (let b = 0; b < r; b++) G[a * r + b] += x * X[i * r + b];
    }
    return G;
  };
  const UU = gram(U, rows);
  const VV = gram(V, cols);
  // With X = (UᵀU)·S and Y = S·(VᵀV): tr(Sᵀ·UᵀU·S·VᵀV) = tr(Xᵀ·Y) = Σ_ab X_ab·Y_ab.
  const X = new Float64Array(r * r);
  const Y = new Float64Array(r * r);
  for (let a = 0; a < r; a++) for (let c = 0; c < r; c++) {
    const uu = UU[a * r + c];
    const s = S[a * r + c];
    for (let b = 0; b < r; b++) {
      X[a * r + b] += uu * S[c * r + b];
      Y[a * r + b] += s * VV[c * r + b];
    }
  }
  let e = 0;
  for (let k = 0; k < r * r; k++) e += X[k] * Y[k];
  return Math.sqrt(Math.max(0, e));
}
