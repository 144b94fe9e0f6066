// CPU references of the flat optimizers, gradient norms and clipping (src/engine/optim/*, kernels/optim.wgsl,
// kernels/gradnorm.wgsl). Plain loops in double precision over per-tensor arrays, written from the formulas, so
// that the GPU kernels are checked against something that shares none of their layout logic.

export interface CpuParam {
  name: string;
  p: Float32Array;
  g: Float32Array;
  decay: boolean;
  frozen: boolean;
}

export interface CpuGuard {
  /** 0: no clipping. */
  maxGradNorm?: number;
  /** Default true. */
  skipNonFinite?: boolean;
}

export interface CpuNorms {
  sumsq: number[];
  /** Σg² over non-frozen tensors. */
  total: number;
}

export function cpuGradSumsq(params: readonly CpuParam[]): CpuNorms {
  const sumsq = params.map((x) => {
    let s = 0;
    for (const g of x.g) s += g * g;
    return s;
  });
  const total = sumsq.reduce((a, s, i) => (params[i].frozen ? a : a + s), 0);
  return { sumsq, total };
}

/** The gradient multiplier for this step, or null when the step is skipped. */
export function cpuClipScale(params: readonly CpuParam[], guard: CpuGuard): number | null {
  const maxNorm = guard.maxGradNorm ?? 0;
  const skip = guard.skipNonFinite ?? true;
  if (!maxNorm && !skip) return 1;
  const { total } = cpuGradSumsq(params);
  if (skip && !Number.isFinite(total)) return null;
  return maxNorm > 0 ? Math.min(1, maxNorm / (Math.sqrt(total) + 1e-6)) : 1;
}

export interface CpuAdamWConfig extends CpuGuard {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One AdamW step t (1-based) in place; m and v by parameter index. Returns false when the step was skipped. */
export function cpuAdamWStep(params: readonly CpuParam[], m: Float32Array[], v: Float32Array[], t: number, lr: number, c: CpuAdamWConfig): boolean {
  const scale = cpuClipScale(params, c);
  if (scale === null) return false;
  const bc1 = 1 - c.beta1 ** t;
  const bc2 = 1 - c.beta2 ** t;
  params.forEach((x, k) => {
    if (x.frozen) return;
    const decay = x.decay ? 1 - lr * c.weightDecay : 1;
    for (let i = 0; i < x.p.length; i++) {
      const g = x.g[i] * scale;
      const mi = c.beta1 * m[k][i] + (1 - c.beta1) * g;
      const vi = c.beta2 * v[k][i] + (1 - c.beta2) * g * g;
      m[k][i] = mi;
      v[k][i] = vi;
      const mHat = mi / bc1;
      const vHat = vi / bc2;
      x.p[i] = x.p[i] * decay - lr * mHat / (Math.sqrt(vHat) + c.eps);
    }
  });
  return true;
}

export interface CpuSgdConfig extends CpuGuard {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

/** One SGD step t (1-based) in place; buf (momentum) by parameter index. Returns false when skipped. */
export function cpuSgdStep(params: readonly CpuParam[], buf: Float32Array[], t: number, lr: number, c: CpuSgdConfig): boolean {
  const scale = cpuClipScale(params, c);
  if (scale === null) return false;
  params.forEach((x, k) => {
    if (x.frozen) return;
    const wd = x.decay ? c.weightDecay : 0;
    for (let i = 0; i < x.p.length; i++) {
      let d = x.g[i] * scale + wd * x.p[i];
      if (c.momentum !== 0) {
        const b = t === 1 ? d : c.momentum * buf[k][i] + (1 - c.dampening) * d;
        buf[k][i] = b;
        d = c.nesterov ? d + c.momentum * b : b;
      }
      x.p[i] = x.p[i] - lr * d;
    }
  });
  return true;
}

export interface CpuAdafactorConfig extends CpuGuard {
  beta2Decay: number;
  beta1: number;
  eps1: number;
  eps2: number;
  clipThreshold: number;
  scaleParameter: boolean;
  weightDecay: number;
}

/**
 * Adafactor's state of one tensor: factored (rank ≥ 2, viewed as [shape[0], rest]) keeps row and column means of
 * g², a vector keeps a dense second moment; m only with beta1 > 0.
 */
export interface CpuAdafactorState {
  rows: number;
  cols: number;
  factored: boolean;
  r: Float64Array;
  c: Float64Array;
  v: Float64Array;
  m: Float64Array | null;
}

export function cpuAdafactorState(shape: readonly number[], beta1: number): CpuAdafactorState {
  const rows = shape.length ? shape[0] : 1;
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  const factored = shape.length >= 2;
  return {
    rows,
    cols,
    factored,
    r: new Float64Array(factored ? rows : 0),
    c: new Float64Array(factored ? cols : 0),
    v: new Float64Array(factored ? 0 : rows * cols),
    m: beta1 > 0 ? new Float64Array(rows * cols) : null,
  };
}

/**
 * One Adafactor step t (1-based) in place, as torch.optim.Adafactor computes it (see kernels/adafactor.wgsl):
 * R, C (or V) ← lerp toward the new g² means by t^beta2Decay; V̂ = R·Cᵀ / max(mean R, ε1); u = g/√max(V̂, ε1²);
 * u /= max(1, RMS(u)/d); α = min(lr, 1/√t)·max(ε2, RMS(w)); w ← w·(1 − lr·λ) − α·u. Returns false when skipped.
 */
export function cpuAdafactorStep(params: readonly CpuParam[], state: CpuAdafactorState[], t: number, lr: number, c: CpuAdafactorConfig): boolean {
  const scale = cpuClipScale(params, c);
  if (scale === null) return false;
  const omb2 = t ** c.beta2Decay;
  const rho = Math.min(lr, 1 / Math.sqrt(t));
  params.forEach((x, k) => {
    if (x.frozen || x.p.length === 0) return;
    const s = state[k];
    const n = x.p.length;
    const g = Float64Array.from(x.g, (v) => v * scale);
    let meanR = 1;
    if (s.factored) {
      for (let i = 0; i < s.rows; i++) {
        let acc = 0;
        for (let j = 0; j < s.cols; j++) acc += g[i * s.cols + j] ** 2;
        s.r[i] += (acc / s.cols - s.r[i]) * omb2;
      }
      for (let j = 0; j < s.cols; j++) {
        let acc = 0;
        for (let i = 0; i < s.rows; i++) acc += g[i * s.cols + j] ** 2;
        s.c[j] += (acc / s.rows - s.c[j]) * omb2;
      }
      meanR = Math.max(s.r.reduce((a, b) => a + b, 0) / s.rows, c.eps1);
    } else {
      for (let i = 0; i < n; i++) s.v[i] += (g[i] ** 2 - s.v[i]) * omb2;
    }
    const vhat = (i: number) => (s.factored ? (s.r[Math.floor(i / s.cols)] * s.c[i % s.cols]) / meanR : s.v[i]);
    const u = new Float64Array(n);
    let u2 = 0;
    let w2 = 0;
    for (let i = 0; i < n; i++) {
      u[i] = g[i] / Math.sqrt(Math.max(vhat(i), c.eps1 * c.eps1));
      u2 += u[i] * u[i];
      w2 += x.p[i] * x.p[i];
    }
    const denom = Math.max(1, Math.sqrt(u2 / n) / c.clipThreshold);
    const alpha = rho * (c.scaleParameter ? Math.max(c.eps2, Math.sqrt(w2 / n)) : 1);
    const decay = x.decay ? 1 - lr * c.weightDecay : 1;
    for (let i = 0; i < n; i++) {
      let upd = u[i] / denom;
      if (s.m) {
        s.m[i] = c.beta1 * s.m[i] + (1 - c.beta1) * upd;
        upd = s.m[i];
      }
      x.p[i] = x.p[i] * decay - alpha * upd;
    }
  });
  return true;
}
