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
