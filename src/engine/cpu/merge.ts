// Plain-JS reference for the merge methods (src/engine/merge/tensor-merge.ts, kernels/merge.wgsl): the same
// formulas, masks, tie rules and random drops (src/engine/merge/common.ts), accumulated in float64 except the
// sign votes, which are summed in float32 in expert order as the GPU does, so both elect the same sign.
import { matrixView } from '../../protocol/stats';
import { cpuSelectOrder } from './select';
import {
  GTA_METHODS,
  MergeMethodName,
  NORM_EPS,
  ParamValues,
  REGMEAN_JITTER,
  SLERP_DOT_THRESHOLD,
  TensorMergeStats,
  boolParam,
  breadcrumbsBand,
  dareThreshold,
  dellaConstants,
  dellaKeep,
  dellaRankTerms,
  dellaView,
  dropKey,
  elementHash,
  methodNeedsBase,
  numParam,
  trimCount,
} from '../merge/common';

export interface CpuMergeInput {
  name: string;
  shape: number[];
  base: Float32Array | null;
  experts: Float32Array[];
  perModel: ParamValues[];
  global: ParamValues;
  curvature?: ({ row: Float32Array; col: Float32Array } | null)[];
  fisher?: Float32Array[];
  gram?: Float32Array[];
}

const fr = Math.fround;

function checkFinite(method: string, inp: CpuMergeInput): void {
  const bad = (a: Float32Array) => a.reduce((c, v) => c + (Number.isFinite(v) ? 0 : 1), 0);
  inp.experts.forEach((x, t) => {
    const c = bad(x);
    if (c) throw new Error(`merge ${method}: tensor '${inp.name}' of model ${t} has ${c} non-finite values (NaN/Inf)`);
  });
  if (inp.base) {
    const c = bad(inp.base);
    if (c) throw new Error(`merge ${method}: tensor '${inp.name}' of the base model has ${c} non-finite values (NaN/Inf)`);
  }
}

/** F̂ = sqrt(R_i·C_j / ΣR) of the tensor viewed as [rows, cols]; all ones without statistics. */
export function cpuFhat(shape: number[], stats: { row: ArrayLike<number>; col: ArrayLike<number> } | null): Float64Array {
  const { rows, cols } = matrixView(shape);
  const out = new Float64Array(rows * cols).fill(1);
  if (!stats) return out;
  let sr = 0;
  for (let i = 0; i < rows; i++) sr += stats.row[i];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = sr > 0 ? Math.sqrt((stats.row[i] * stats.col[j]) / sr) : 0;
  return out;
}

/** DELLA's rank of each entry within its row (0 = smallest |τ|, ties: lower index first). */
export function cpuRowRanks(tau: Float32Array, shape: number[]): Uint32Array {
  const { rows, cols } = dellaView(shape);
  const rank = new Uint32Array(tau.length);
  for (let r = 0; r < rows; r++) {
    const row = tau.subarray(r * cols, (r + 1) * cols);
    // cpuSelectOrder is descending with lower index first on ties; ascending with lower index first is its
    // reverse only without ties, so sort directly.
    const keys = Array.from(row, (v, j) => ({ k: Math.abs(v), j }));
    keys.sort((a, b) => a.k - b.k || a.j - b.j);
    keys.forEach((e, pos) => (rank[r * cols + e.j] = pos));
  }
  return rank;
}

function sign(v: number): number {
  return v > 0 ? 1 : v < 0 ? -1 : 0;
}

interface Masked {
  md: Float64Array; // masked (and rescaled) task vector
  kept: Uint8Array;
}

function maskTaskVector(method: MergeMethodName, kind: string, tau: Float32Array, inp: CpuMergeInput, t: number): Masked {
  const n = tau.length;
  const own = inp.perModel[t];
  const density = numParam(method, 'density', own, inp.global, 1);
  const md = new Float64Array(n);
  const kept = new Uint8Array(n).fill(1);
  if (kind === 'none' || density >= 1) {
    for (let i = 0; i < n; i++) md[i] = tau[i];
    return { md, kept };
  }
  kept.fill(0);
  if (kind === 'topk' || kind === 'band') {
    const order = cpuSelectOrder(tau, true);
    let from = 0;
    let count = trimCount(density, n);
    if (kind === 'band') {
      const b = breadcrumbsBand(density, numParam(method, 'gamma', own, inp.global), n);
      from = b.nTop;
      count = b.keep;
    }
    for (let r = from; r < from + count; r++) kept[order[r]] = 1;
    for (let i = 0; i < n; i++) md[i] = kept[i] ? tau[i] : 0;
  } else if (kind === 'bernoulli') {
    const key = dropKey(numParam(method, 'seed', undefined, inp.global, 0), inp.name, t);
    const thr = dareThreshold(density);
    const scale = boolParam(method, 'rescale', inp.global) ? fr(1 / density) : 1;
    for (let i = 0; i < n; i++) {
      kept[i] = elementHash(key, i) < thr ? 1 : 0;
      md[i] = kept[i] ? tau[i] * scale : 0;
    }
  } else if (kind === 'della') {
    const eps = numParam(method, 'epsilon', own, inp.global);
    if (density - eps / 2 < 0 || density + eps / 2 > 1) throw new RangeError(`merge della: tensor '${inp.name}', model ${t}: density ± epsilon/2 must stay within [0, 1]`);
    const c = dellaConstants(density, eps);
    const key = dropKey(numParam(method, 'seed', undefined, inp.global, 0), inp.name, t);
    const rank = cpuRowRanks(tau, inp.shape);
    const { cols } = dellaView(inp.shape);
    for (let i = 0; i < n; i++) {
      const { r, d } = dellaRankTerms(rank[i], cols);
      kept[i] = dellaKeep(elementHash(key, i), c.loQ, c.epsQ, r, d) ? 1 : 0;
      const p = c.lo + (eps * r) / d;
      md[i] = kept[i] ? tau[i] / p : 0;
    }
  }
  return { md, kept };
}

/** Σ, in f32, in expert order: the GPU's vote. */
function f32Add(a: Float32Array, i: number, v: number): void {
  a[i] = fr(a[i] + fr(v));
}

export interface CpuMergeResult {
  merged: Float32Array;
  stats: TensorMergeStats;
}

/** The merged tensor and its stats, as mergeTensor() computes them on the GPU. */
export function cpuMergeTensor(method: MergeMethodName, inp: CpuMergeInput): CpuMergeResult {
  const n = inp.experts[0]?.length ?? 0;
  const E = inp.experts.length;
  if (!E) throw new Error(`merge ${method}: tensor '${inp.name}' has no experts`);
  if (methodNeedsBase(method) && !inp.base) throw new Error(`merge ${method}: tensor '${inp.name}' needs a base model`);
  checkFinite(method, inp);
  const base = inp.base;
  const w = inp.perModel.map((p) => numParam(method, 'weight', p, inp.global, 1));
  const taus = base ? inp.experts.map((x) => Float32Array.from(x, (v, i) => fr(v - base[i]))) : null;
  const out = new Float64Array(n);
  const kept = new Array<number>(E).fill(1);
  const signs = new Uint8Array(n); // bit 0: some kept entry > 0, bit 1: some < 0
  // An expert of weight 0 takes no part in the merge, so none in its sign conflicts either.
  const noteSigns = (md: ArrayLike<number>, t: number) => {
    if (w[t] === 0) return;
    for (let i = 0; i < n; i++) signs[i] |= md[i] > 0 ? 1 : md[i] < 0 ? 2 : 0;
  };
  let saliency: number[] | undefined = taus ? taus.map((tau) => tau.reduce((s, v) => s + v * v, 0)) : undefined;
  const lambda = () => numParam(method, 'lambda', undefined, inp.global, 1);
  const wsum = w.reduce((a, b) => a + b, 0);

  const gta = GTA_METHODS[method];
  if (gta) {
    const normalize = boolParam(method, 'normalize', inp.global);
    const masked = taus!.map((tau, t) => maskTaskVector(method, gta.mask, tau, inp, t));
    masked.forEach((m, t) => {
      kept[t] = m.kept.reduce((a, b) => a + b, 0) / n;
      noteSigns(m.md, t);
    });
    const lam = lambda();
    if (gta.consensus) {
      const vote = new Float32Array(n);
      masked.forEach((m, t) => {
        for (let i = 0; i < n; i++) f32Add(vote, i, w[t] * m.md[i]);
      });
      for (let i = 0; i < n; i++) {
        const s = vote[i] >= 0 ? 1 : -1;
        let num = 0;
        let den = 0;
        masked.forEach((m, t) => {
          const wd = w[t] * m.md[i];
          if (sign(wd) === s) {
            num += wd;
            den += w[t];
          }
        });
        const mixed = normalize ? num / (den === 0 ? 1 : den) : num;
        out[i] = base![i] + lam * mixed;
      }
    } else {
      const div = normalize ? (Math.abs(wsum) < 1e-8 ? 1 : wsum) : 1;
      for (let i = 0; i < n; i++) {
        let s = 0;
        masked.forEach((m, t) => (s += w[t] * m.md[i]));
        out[i] = base![i] + (lam * s) / div;
      }
    }
  } else if (method === 'curvature') {
    const fh = inp.experts.map((_, t) => cpuFhat(inp.shape, inp.curvature?.[t] ?? null));
    const density = inp.perModel.map((p) => numParam(method, 'density', p, inp.global));
    const scores = taus!.map((tau, t) => Float32Array.from(tau, (v, i) => v * v * fh[t][i]));
    saliency = scores.map((s) => s.reduce((a, b) => a + b, 0));
    const masks = scores.map((s, t) => {
      const m = new Uint8Array(n);
      if (density[t] >= 1) return m.fill(1);
      const order = cpuSelectOrder(s, true);
      for (let r = 0; r < trimCount(density[t], n); r++) m[order[r]] = 1;
      return m;
    });
    masks.forEach((m, t) => {
      kept[t] = m.reduce((a, b) => a + b, 0) / n;
      noteSigns(taus![t].map((v, i) => (m[i] ? v : 0)), t);
    });
    const vote = new Float32Array(n);
    masks.forEach((m, t) => {
      for (let i = 0; i < n; i++) if (m[i]) f32Add(vote, i, sign(taus![t][i]) * fh[t][i]);
    });
    const lam = lambda();
    for (let i = 0; i < n; i++) {
      const s = vote[i] >= 0 ? 1 : -1;
      let num = 0;
      let den = 0;
      for (let t = 0; t < E; t++) {
        if (masks[t][i] && sign(taus![t][i]) === s) {
          num += w[t] * fh[t][i] * taus![t][i];
          den += w[t] * fh[t][i];
        }
      }
      out[i] = base![i] + lam * (den > 0 ? num / den : 0);
    }
  } else if (method === 'linear' || (method === 'regmean' && !regmeanApplies(inp))) {
    const normalize = method === 'regmean' || boolParam(method, 'normalize', inp.global);
    if (normalize && Math.abs(wsum) < 1e-8) throw new Error(`merge ${method}: the weights of tensor '${inp.name}' sum to 0`);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let t = 0; t < E; t++) s += w[t] * inp.experts[t][i];
      out[i] = normalize ? s / wsum : s;
    }
    if (taus) taus.forEach((tau, t) => noteSigns(tau, t));
  } else if (method === 'fisher') {
    if (!inp.fisher || inp.fisher.length !== E) throw new Error(`merge fisher: tensor '${inp.name}' needs one Fisher tensor per expert`);
    const floor = numParam(method, 'floor', undefined, inp.global);
    for (let i = 0; i < n; i++) {
      let num = 0;
      let den = 0;
      let mean = 0;
      for (let t = 0; t < E; t++) {
        const f = w[t] * (inp.fisher[t][i] + floor);
        num += f * inp.experts[t][i];
        den += f;
        mean += inp.experts[t][i];
      }
      out[i] = den !== 0 ? num / den : mean / E;
    }
    if (taus) taus.forEach((tau, t) => noteSigns(tau, t));
  } else if (method === 'slerp') {
    if (E !== 1) throw new Error(`merge slerp: tensor '${inp.name}' needs exactly one model besides the base, got ${E}`);
    const t = numParam(method, 't', undefined, inp.global);
    const v0 = base!;
    const v1 = inp.experts[0];
    let n0 = 0;
    let n1 = 0;
    let d = 0;
    for (let i = 0; i < n; i++) {
      n0 += v0[i] * v0[i];
      n1 += v1[i] * v1[i];
      d += v0[i] * v1[i];
    }
    const [c0, c1] = slerpCoefficients(t, Math.sqrt(n0), Math.sqrt(n1), d);
    for (let i = 0; i < n; i++) out[i] = c0 * v0[i] + c1 * v1[i];
    noteSigns(taus![0], 0);
  } else if (method === 'multislerp') {
    const normW = boolParam(method, 'normalize_weights', inp.global);
    const eps = numParam(method, 'eps', undefined, inp.global);
    const ww = normW ? w.map((x) => x / wsum) : w;
    const xs = inp.experts.map((x) => (base ? Float64Array.from(x, (v, i) => v - base[i]) : Float64Array.from(x)));
    if (E === 1) {
      out.set(inp.experts[0]);
    } else {
      const norms = xs.map((x) => Math.sqrt(x.reduce((s, v) => s + v * v, 0)));
      const m = new Float64Array(n);
      xs.forEach((x, t) => x.forEach((v, i) => (m[i] += (ww[t] * v) / (norms[t] + eps))));
      const mn = Math.sqrt(m.reduce((s, v) => s + v * v, 0));
      if (mn < eps) {
        if (E !== 2) throw multislerpZero(inp.name);
        for (let i = 0; i < n; i++) out[i] = ww[0] * xs[0][i] + ww[1] * xs[1][i] + (base ? base[i] : 0);
      } else {
        const avg = norms.reduce((s, v, t) => s + v * ww[t], 0);
        for (let i = 0; i < n; i++) out[i] = (m[i] / mn) * avg + (base ? base[i] : 0);
      }
    }
    if (taus) taus.forEach((tau, t) => noteSigns(tau, t));
  } else if (method === 'model_stock') {
    if (E < 2) throw new Error(`merge model_stock: tensor '${inp.name}' needs at least two models besides the base, got ${E}`);
    const filterWise = boolParam(method, 'filter_wise', inp.global) && inp.shape.length >= 2;
    const { rows, cols } = filterWise ? matrixView(inp.shape) : { rows: 1, cols: n };
    for (let r = 0; r < rows; r++) {
      const at = (t: number, j: number) => taus![t][r * cols + j];
      const dot = (a: number, b: number) => {
        let s = 0;
        for (let j = 0; j < cols; j++) s += at(a, j) * at(b, j);
        return s;
      };
      const norms = taus!.map((_, t) => Math.sqrt(dot(t, t)));
      let cs = 0;
      let pairs = 0;
      for (let a = 0; a < E; a++) for (let b = a + 1; b < E; b++, pairs++) cs += dot(a, b) / Math.max(norms[a] * norms[b], NORM_EPS);
      const tt = modelStockT(E, cs / pairs);
      for (let j = 0; j < cols; j++) {
        let mean = 0;
        for (let t = 0; t < E; t++) mean += at(t, j);
        out[r * cols + j] = base![r * cols + j] + (tt * mean) / E;
      }
    }
    taus!.forEach((tau, t) => noteSigns(tau, t));
  } else if (method === 'regmean') {
    out.set(cpuRegmean(inp, w));
  } else {
    throw new Error(`merge: no CPU reference for '${method}'`);
  }

  const merged = Float32Array.from(out);
  let dsq = 0;
  for (let i = 0; i < n; i++) {
    let ref = 0;
    if (base) ref = base[i];
    else {
      for (let t = 0; t < E; t++) ref += inp.experts[t][i];
      ref /= E;
    }
    dsq += (merged[i] - ref) ** 2;
  }
  let conflict = 0;
  if (base) for (let i = 0; i < n; i++) conflict += signs[i] === 3 ? 1 : 0;
  return { merged, stats: { keptFraction: kept, signConflict: n ? conflict / n : 0, deltaNorm: Math.sqrt(dsq), saliencyMass: base ? saliency : undefined } };
}

export function multislerpZero(name: string): Error {
  return new Error(
    `merge multislerp: tensor '${name}': the weighted sum of the unit task vectors is zero (antipodal models with balancing weights); change the weights`,
  );
}

/** mergekit's slerp: coefficients of v0 and v1, with the linear fallback for nearly parallel tensors. */
export function slerpCoefficients(t: number, n0: number, n1: number, dot: number): [number, number] {
  const d = dot / ((n0 > NORM_EPS ? n0 : 1) * (n1 > NORM_EPS ? n1 : 1));
  if (Math.abs(d) > SLERP_DOT_THRESHOLD) return [1 - t, t];
  const th = Math.acos(d);
  const s = Math.sin(th);
  return [Math.sin((1 - t) * th) / s, Math.sin(t * th) / s];
}

/** Model Stock's interpolation ratio t = k·cosθ / (1 + (k − 1)·cosθ), cosθ clamped to [−1, 1]; 0 where undefined. */
export function modelStockT(k: number, cos: number): number {
  const c = Math.min(1, Math.max(-1, cos));
  const den = 1 + (k - 1) * c;
  return Math.abs(den) < 1e-12 ? 0 : (k * c) / den;
}

export function regmeanApplies(inp: { shape: number[]; gram?: unknown[] }): boolean {
  return inp.shape.length === 2 && !!inp.gram && inp.gram.length > 0;
}

/** RegMean for W [out, in]: W* = (Σ w_t W_t G̃_t)(Σ w_t G̃_t)⁻¹, G̃ = α·G + (1 − α)·diag(G), in float64. */
export function cpuRegmean(inp: CpuMergeInput, w: number[]): Float64Array {
  const [rows, cols] = inp.shape;
  const E = inp.experts.length;
  if (!inp.gram || inp.gram.length !== E) throw new Error(`merge regmean: tensor '${inp.name}' needs one Gram matrix per expert`);
  const alpha = numParam('regmean', 'alpha', undefined, inp.global);
  const A = new Float64Array(cols * cols);
  const B = new Float64Array(rows * cols);
  for (let t = 0; t < E; t++) {
    const G = inp.gram[t];
    if (G.length !== cols * cols) throw new Error(`merge regmean: the Gram matrix of model ${t} for '${inp.name}' has ${G.length} entries, [${cols}, ${cols}] expected`);
    const gt = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) gt[i * cols + j] = w[t] * (i === j ? G[i * cols + j] : alpha * G[i * cols + j]);
    for (let i = 0; i < cols * cols; i++) A[i] += gt[i];
    const W = inp.experts[t];
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < cols; k++) {
        const wv = W[r * cols + k];
        if (wv === 0) continue;
        for (let j = 0; j < cols; j++) B[r * cols + j] += wv * gt[k * cols + j];
      }
    }
  }
  let tr = 0;
  for (let i = 0; i < cols; i++) tr += A[i * cols + i];
  const jitter = (REGMEAN_JITTER * tr) / cols;
  for (let i = 0; i < cols; i++) A[i * cols + i] += jitter;
  // Cholesky A = L·Lᵀ (lower, in place), then X·A = B row by row: y·Lᵀ = b forward, x·L = y backward.
  for (let j = 0; j < cols; j++) {
    let d = A[j * cols + j];
    for (let k = 0; k < j; k++) d -= A[j * cols + k] ** 2;
    if (!(d > 0)) throw new Error(`merge regmean: tensor '${inp.name}': Σ G is not positive definite (pivot ${j})`);
    const l = Math.sqrt(d);
    A[j * cols + j] = l;
    for (let i = j + 1; i < cols; i++) {
      let s = A[i * cols + j];
      for (let k = 0; k < j; k++) s -= A[i * cols + k] * A[j * cols + k];
      A[i * cols + j] = s / l;
    }
  }
  const X = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const y = new Float64Array(cols);
    for (let i = 0; i < cols; i++) {
      let s = B[r * cols + i];
      for (let k = 0; k < i; k++) s -= A[i * cols + k] * y[k];
      y[i] = s / A[i * cols + i];
    }
    for (let i = cols - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < cols; k++) s -= A[k * cols + i] * X[r * cols + k];
      X[r * cols + i] = s / A[i * cols + i];
    }
  }
  return X;
}
