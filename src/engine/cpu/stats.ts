// CPU reference of the per-layer statistics (kernels/stats.wgsl, src/engine/stats/layer-stats.ts): plain loops in
// double precision over per-tensor arrays, written from the definitions in src/protocol/stats.ts, sharing none of
// the GPU path's layout logic.
import { HIST_BINS, HIST_HI, HIST_LO, SCALAR_KEYS, ScalarKey, TensorStats, matrixView, recordFloats } from '../../protocol/stats';
import { sortedQuantile } from '../stats/quantiles';

export interface CpuStatsInput {
  name: string;
  shape: readonly number[];
  /** Gradient used by the step, before the clipping scale. */
  g: ArrayLike<number>;
  /** Weights after the step. */
  w: ArrayLike<number>;
  /** Weights before the step; absent: updateRatio is NaN. */
  wPrev?: ArrayLike<number> | null;
  /** First moment (AdamW m, SGD momentum); absent: momentumNorm 0. */
  m?: ArrayLike<number> | null;
  /** Second moment (AdamW v); absent: every v-derived field 0 and an empty histogram. */
  v?: ArrayLike<number> | null;
}

/** The histogram bin of one value of v (see the header of src/protocol/stats.ts). NaN and +Inf: the last bin. */
export function histBin(v: number): number {
  if (!Number.isFinite(v)) return Number.isNaN(v) || v > 0 ? HIST_BINS - 1 : 0;
  if (!(v > 0)) return 0;
  const f = Math.floor(((Math.log10(v) - HIST_LO) * HIST_BINS) / (HIST_HI - HIST_LO));
  return Math.min(HIST_BINS - 1, Math.max(0, f));
}

/**
 * Statistics of every tensor. `clipScale` is the factor the optimizer applied to the gradients
 * (min(1, maxNorm / (‖g‖_total + 1e-6)) with clipping, else 1).
 */
export function cpuLayerStats(inputs: readonly CpuStatsInput[], clipScale = 1): TensorStats[] {
  return inputs.map((x) => {
    const { rows, cols } = matrixView(x.shape);
    const n = x.w.length;
    let gg = 0;
    let ww = 0;
    let dd = 0;
    let mm = 0;
    let vs = 0;
    let vmax = 0;
    const hist = new Float32Array(HIST_BINS);
    const vRow = new Float32Array(rows);
    const vCol = new Float32Array(cols);
    const rowAcc = new Float64Array(rows);
    const colAcc = new Float64Array(cols);
    for (let i = 0; i < n; i++) {
      gg += x.g[i] * x.g[i];
      ww += x.w[i] * x.w[i];
      if (x.wPrev) dd += (x.w[i] - x.wPrev[i]) ** 2;
      if (x.m) mm += x.m[i] * x.m[i];
      if (x.v) {
        const v = x.v[i];
        vs += v;
        vmax = Math.max(vmax, v);
        hist[histBin(v)]++;
        rowAcc[Math.floor(i / cols)] += v;
        colAcc[i % cols] += v;
      }
    }
    vRow.set(rowAcc);
    vCol.set(colAcc);
    const wn = Math.sqrt(ww);
    const scalars = {} as Record<ScalarKey, number>;
    scalars.gradNorm = Math.sqrt(gg) * clipScale;
    scalars.weightNorm = wn;
    scalars.updateRatio = x.wPrev ? (wn > 0 ? Math.sqrt(dd) / wn : 0) : NaN;
    scalars.momentumNorm = Math.sqrt(mm);
    scalars.vMean = n > 0 ? vs / n : 0;
    scalars.vMax = vmax;
    // Exact nearest-rank quantiles of every value (the GPU path samples tensors above its per-tensor budget).
    const sorted = x.v ? Float64Array.from(x.v).sort() : new Float64Array(0);
    scalars.vP50 = sortedQuantile(sorted, 0.5);
    scalars.vP90 = sortedQuantile(sorted, 0.9);
    scalars.vP99 = sortedQuantile(sorted, 0.99);
    return { name: x.name, shape: [...x.shape], rows, cols, scalars, hist, vRow, vCol };
  });
}

/** The frame payload (src/protocol/stats.ts record order) of cpuLayerStats' result. */
export function cpuStatsPayload(stats: readonly TensorStats[]): Float32Array {
  let total = 0;
  for (const t of stats) total += recordFloats(t);
  const out = new Float32Array(total);
  let p = 0;
  for (const t of stats) {
    SCALAR_KEYS.forEach((k, i) => (out[p + i] = t.scalars[k]));
    p += SCALAR_KEYS.length;
    out.set(t.hist, p);
    p += HIST_BINS;
    out.set(t.vRow, p);
    p += t.rows;
    out.set(t.vCol, p);
    p += t.cols;
  }
  return out;
}
