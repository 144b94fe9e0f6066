// CPU reference of the momentum-aware optimizer `mao` (src/engine/optim/mao.ts, kernels/mao.wgsl), written from the
// formulas in double precision with dense matrices, so that the GPU kernels (factored operators, scratch layout,
// Cholesky-QR in one workgroup) are checked against something that shares none of their layout logic. Also: a
// cyclic Jacobi eigen solver, to measure how much of a dense SVD's rank-r energy the refit captures.
//
// Per tensor of rank ≥ 2 viewed as W [m, n] (shape[0] × rest) with min(m, n) > rank, gradient g (clipped):
//   R ← β2·R + (1−β2)·rowmean(g²),  C ← β2·C + (1−β2)·colmean(g²)
//   V̂ = R·Cᵀ / max(mean(R), tiny) / (1 − β2ᵗ)
//   M̃ = β1·(U·S·Vᵀ [+ E]) + (1−β1)·g   (the momentum the factors are fitted to)
//   m̂ = M̃ / (1 − β1ᵗ)                  (plain; or with error feedback, where U·S·Vᵀ + E is the dense momentum)
//   m̂ = U·(β1·S + (1−β1)·T)·Vᵀ / (1 − β1ᵗ) + ρ·(g − U·T·Vᵀ),  T = Uᵀ·g·V   (`residual`, the default): the
//       low-rank momentum, plus the part of g outside its subspaces at weight ρ (`residualWeight`, 1: full; the plain M̃ would
//       keep only (1−β1)·g of it: a 10× smaller step in every direction the rank-r momentum cannot hold)
//   u = min((V̂ + ε)^(−1/2), pMax) ⊙ m̂;   u ← u / max(1, RMS(u)/clipThreshold)
//   W ← W·(1 − lr·λ) − lr·u
//   then the momentum factors: on refit steps ((t − 1) mod K = 0) (U, S, V) ← rank-r subspace iteration on M̃;
//   otherwise S ← Uᵀ·M̃·V with U, V fixed (= β1·S + (1−β1)·Uᵀ·g·V without error feedback). S is an r×r core (not a
//   diagonal): the projection of M̃ on the fixed subspaces is then exact, and the refit makes it diagonal-dominant
//   again. With error feedback E ← M̃ − U·S·Vᵀ (the new factors): U·S·Vᵀ + E is then the dense momentum, up to E's
//   storage in bfloat16: between refits E = bf16(M̃ − U·S·Vᵀ); on refit steps, as on the GPU, E first holds bf16(M̃),
//   which the refit fits, then bf16(bf16(M̃) − U·S·Vᵀ).
// Vectors and small matrices (min(m, n) ≤ rank): dense m, v with the same P, clamp and RMS clipping (Adam).
import { CpuGuard, CpuParam, cpuClipScale } from './optim';

export interface CpuMaoConfig extends CpuGuard {
  beta1: number;
  beta2: number;
  eps: number;
  rank: number;
  refitEvery: number;
  powerIters: number;
  pMax: number;
  clipThreshold: number;
  weightDecay: number;
  errorFeedback: boolean;
  /** E's storage (default bf16: rounded as the GPU rounds it). */
  errorFeedbackPrecision?: 'bf16' | 'f32';
  /** Default true: the update is the low-rank momentum plus the gradient outside its subspaces (see below). */
  residual?: boolean;
  /** ρ: weight of g's part outside the subspaces in the residual form (default 1). */
  residualWeight?: number;
}

// ---- bfloat16, E's storage: the upper 16 bits of an f32, rounded to nearest even (kernels/mao.wgsl bf16_bits) ----

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/** x rounded to bfloat16 (through f32, as the GPU holds it), returned as a number. */
export function bf16Round(x: number): number {
  f32Box[0] = x;
  const b = u32Box[0];
  u32Box[0] = (((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32Box[0];
}

/** The bf16 bit patterns of x (round to nearest even). */
export function f32ToBf16(x: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    f32Box[0] = x[i];
    const b = u32Box[0];
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bf16 bit patterns decoded to f32 (exact). */
export function bf16ToF32(h: Uint16Array): Float32Array {
  const bits = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return new Float32Array(bits.buffer);
}

/** How mao treats a tensor: factored momentum (rank ≥ 2 and min(rows, cols) > rank) or dense Adam. */
export function maoLayout(shape: readonly number[], rank: number): { rows: number; cols: number; factored: boolean } {
  const rows = shape.length ? shape[0] : 1;
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  return { rows, cols, factored: shape.length >= 2 && Math.min(rows, cols) > rank };
}

export interface CpuMaoState {
  rows: number;
  cols: number;
  r: number;
  factored: boolean;
  /** U [rows, r], S [r, r], V [cols, r], row-major. */
  U: Float64Array;
  S: Float64Array;
  V: Float64Array;
  R: Float64Array;
  C: Float64Array;
  E: Float64Array | null;
  /** Dense Adam state (unfactored tensors). */
  m: Float64Array | null;
  v: Float64Array | null;
  /** After a step: ‖U·S·Vᵀ‖²_F / ‖M̃‖²_F, both computed densely (the share of the momentum the factors hold). */
  captured: number | null;
}

export function cpuMaoState(shape: readonly number[], c: Pick<CpuMaoConfig, 'rank' | 'errorFeedback'>): CpuMaoState {
  const { rows, cols, factored } = maoLayout(shape, c.rank);
  const r = factored ? c.rank : 0;
  const n = rows * cols;
  return {
    rows,
    cols,
    r,
    factored,
    U: new Float64Array(rows * r),
    S: new Float64Array(r * r),
    V: new Float64Array(cols * r),
    R: new Float64Array(factored ? rows : 0),
    C: new Float64Array(factored ? cols : 0),
    E: factored && c.errorFeedback ? new Float64Array(n) : null,
    m: factored ? null : new Float64Array(n),
    v: factored ? null : new Float64Array(n),
    captured: null,
  };
}

// ---- the random start of the refit: the same integer hash as kernels/mao.wgsl (mao_rand), exact in f32 ----

function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Uniform in [−1, 1) from (seed, index): a multiple of 2⁻²³, so f32 and f64 agree exactly. */
export function maoRand(seed: number, index: number): number {
  return (pcg((index ^ pcg(seed)) >>> 0) >>> 8) * 2 ** -23 - 1;
}

/** The seed of tensor `tensor`'s refit at step t (kernels/mao.wgsl receives the same u32). */
export function maoSeed(t: number, tensor: number): number {
  return (Math.imul(t, 0x9e3779b9) ^ Math.imul(tensor + 1, 0x85ebca6b)) >>> 0;
}

/** Scale of the random part of the refit's start Ω = V + scale·rand: columns of norm ≈ 0.1 (f32 as on the GPU). */
export function maoOmegaScale(cols: number): number {
  return Math.fround(0.2 / Math.sqrt(cols));
}

// ---- small dense linear algebra (row-major) ----

/** A [m, k] · B [k, n]. */
function mm(A: Float64Array, B: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let l = 0; l < k; l++) {
    const a = A[i * k + l];
    if (a === 0) continue;
    for (let j = 0; j < n; j++) out[i * n + j] += a * B[l * n + j];
  }
  return out;
}

/** Aᵀ with A [m, n]. */
function tr(A: Float64Array, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = A[i * n + j];
  return out;
}

/**
 * Orthonormalise the columns of Y [m, r] in place by Cholesky-QR, twice (CholQR2), as the GPU does: Gram = YᵀY,
 * pivots floored at 1e-6·trace/r + 1e-30 (so a rank-deficient Y gives finite columns, never NaN), Y ← Y·L⁻ᵀ.
 */
export function cholQr2(Y: Float64Array, m: number, r: number): void {
  for (let pass = 0; pass < 2; pass++) {
    const G = mm(tr(Y, m, r), Y, r, m, r);
    let trace = 0;
    for (let a = 0; a < r; a++) trace += G[a * r + a];
    const floor = (1e-6 * trace) / r + 1e-30;
    // Right-looking Cholesky in place (lower triangle).
    for (let k = 0; k < r; k++) {
      const d = Math.sqrt(Math.max(G[k * r + k], floor));
      G[k * r + k] = d;
      for (let i = k + 1; i < r; i++) G[i * r + k] /= d;
      for (let i = k + 1; i < r; i++) for (let j = k + 1; j <= i; j++) G[i * r + j] -= G[i * r + k] * G[j * r + k];
    }
    for (let i = 0; i < m; i++) {
      for (let b = 0; b < r; b++) {
        let acc = Y[i * r + b];
        for (let a = 0; a < b; a++) acc -= Y[i * r + a] * G[b * r + a];
        Y[i * r + b] = acc / G[b * r + b];
      }
    }
  }
}

/**
 * Rank-r factors of a dense M [m, n] by randomized subspace iteration from Ω = V0 + omegaScale·rand(seed):
 * Y = orth(M·Ω); q times { Z = orth(Mᵀ·Y); Y = orth(M·Z) }; V = orth(Mᵀ·Y); S = Yᵀ·M·V. U·S·Vᵀ = P_U·M·P_V.
 */
export function cpuRefit(M: Float64Array, m: number, n: number, r: number, powerIters: number, V0: Float64Array, seed: number): { U: Float64Array; S: Float64Array; V: Float64Array } {
  const scale = maoOmegaScale(n);
  const omega = new Float64Array(n * r);
  for (let k = 0; k < n * r; k++) omega[k] = V0[k] + scale * maoRand(seed, k);
  const Mt = tr(M, m, n);
  let Y = mm(M, omega, m, n, r);
  cholQr2(Y, m, r);
  for (let it = 0; it < powerIters; it++) {
    const Z = mm(Mt, Y, n, m, r);
    cholQr2(Z, n, r);
    Y = mm(M, Z, m, n, r);
    cholQr2(Y, m, r);
  }
  const V = mm(Mt, Y, n, m, r);
  cholQr2(V, n, r);
  const S = mm(tr(Y, m, r), mm(M, V, m, n, r), r, m, r);
  return { U: Y, S, V };
}

/** U·S·Vᵀ [m, n]. */
export function lowRankProduct(U: ArrayLike<number>, S: ArrayLike<number>, V: ArrayLike<number>, m: number, n: number, r: number): Float64Array {
  const US = mm(Float64Array.from(U), Float64Array.from(S), m, r, r);
  return mm(US, tr(Float64Array.from(V), n, r), m, r, n);
}

/**
 * One mao step t (1-based) in place over every tensor (frozen ones untouched). Returns false when the step was
 * skipped (non-finite gradient).
 */
export function cpuMaoStep(params: readonly CpuParam[], state: CpuMaoState[], t: number, lr: number, c: CpuMaoConfig): boolean {
  const scale = cpuClipScale(params, c);
  if (scale === null) return false;
  const bc1 = 1 - c.beta1 ** t;
  const bc2 = 1 - c.beta2 ** t;
  const precond = (vhat: number) => Math.min(1 / Math.sqrt(vhat + c.eps), c.pMax);
  params.forEach((x, k) => {
    if (x.frozen || x.p.length === 0) return;
    const s = state[k];
    const N = x.p.length;
    const g = Float64Array.from(x.g, (v) => v * scale);
    const u = new Float64Array(N);
    let mt: Float64Array | null = null;
    let projected: Float64Array | null = null;
    if (s.factored) {
      const { rows: m, cols: n, r } = s;
      for (let i = 0; i < m; i++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += g[i * n + j] ** 2;
        s.R[i] = c.beta2 * s.R[i] + (1 - c.beta2) * (acc / n);
      }
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let i = 0; i < m; i++) acc += g[i * n + j] ** 2;
        s.C[j] = c.beta2 * s.C[j] + (1 - c.beta2) * (acc / m);
      }
      const meanR = Math.max(s.R.reduce((a, b) => a + b, 0) / m, 1e-30);
      const L = lowRankProduct(s.U, s.S, s.V, m, n, r);
      // T1 = Uᵀ·g·V (the gradient in the current subspaces).
      const T1 = mm(tr(s.U, m, r), mm(g, s.V, m, n, r), r, m, r);
      const residual = !s.E && (c.residual ?? true);
      const rho = c.residualWeight ?? 1;
      // Residual: m̂ = U·(β1·S + (1−β1)·T1)·Vᵀ / bc1 + ρ·(g − U·T1·Vᵀ).
      const Lt = residual ? lowRankProduct(s.U, T1, s.V, m, n, r) : null;
      mt = new Float64Array(N);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          const q = i * n + j;
          mt[q] = c.beta1 * (L[q] + (s.E ? s.E[q] : 0)) + (1 - c.beta1) * g[q];
          const mhat = Lt ? (c.beta1 * L[q] + (1 - c.beta1) * Lt[q]) / bc1 + rho * (g[q] - Lt[q]) : mt[q] / bc1;
          u[q] = precond((s.R[i] * s.C[j]) / meanR / bc2) * mhat;
        }
      }
      if (!s.E) projected = T1;
    } else {
      const m = s.m!;
      const v = s.v!;
      for (let q = 0; q < N; q++) {
        m[q] = c.beta1 * m[q] + (1 - c.beta1) * g[q];
        v[q] = c.beta2 * v[q] + (1 - c.beta2) * g[q] * g[q];
        u[q] = (precond(v[q] / bc2) * m[q]) / bc1;
      }
    }
    let u2 = 0;
    for (let q = 0; q < N; q++) u2 += u[q] * u[q];
    const denom = Math.max(1, Math.sqrt(u2 / N) / c.clipThreshold);
    const decay = x.decay ? 1 - lr * c.weightDecay : 1;
    for (let q = 0; q < N; q++) x.p[q] = x.p[q] * decay - (lr * u[q]) / denom;
    if (!mt) return;
    const { rows: m, cols: n, r } = s;
    const refit = (t - 1) % c.refitEvery === 0;
    // With error feedback a refit fits the factors to what E holds then: bf16(M̃).
    const store = c.errorFeedbackPrecision === 'f32' ? Math.fround : bf16Round;
    if (s.E && refit) for (let q = 0; q < N; q++) mt[q] = store(mt[q]);
    if (refit) {
      const f = cpuRefit(mt, m, n, r, c.powerIters, s.V, maoSeed(t, k));
      s.U.set(f.U);
      s.S.set(f.S);
      s.V.set(f.V);
    } else if (projected) {
      // S ← Uᵀ·M̃·V on the fixed subspaces = β1·S + (1−β1)·Uᵀ·g·V (U, V orthonormal).
      for (let q = 0; q < r * r; q++) s.S[q] = c.beta1 * s.S[q] + (1 - c.beta1) * projected[q];
    } else {
      s.S.set(mm(tr(s.U, m, r), mm(mt, s.V, m, n, r), r, m, r)); // error feedback: Uᵀ·E·V with E = M̃
    }
    if (s.E) {
      const L = lowRankProduct(s.U, s.S, s.V, m, n, r);
      for (let q = 0; q < N; q++) s.E[q] = store(mt[q] - L[q]);
    }
    let total = 0;
    for (let q = 0; q < N; q++) total += mt[q] * mt[q];
    s.captured = total > 0 ? lowRankEnergy(s.U, s.S, s.V, m, n, r) / total : null;
  });
  return true;
}

/**
 * Eigen-decomposition of a symmetric A [n, n] by cyclic Jacobi rotations (Golub & Van Loan §8.5), until the
 * off-diagonal mass is below 1e-14 of the total. Returns the eigenvalues sorted descending (and the vectors as
 * columns of a row-major [n, n], in the same order).
 */
export function jacobiEigen(A: ArrayLike<number>, n: number, maxSweeps = 100): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(A);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += a[i] * a[i];
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += 2 * a[p * n + q] ** 2;
    if (off <= 1e-28 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1);
        const sn = t * cs;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = cs * akp - sn * akq;
          a[k * n + q] = sn * akp + cs * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = cs * apk - sn * aqk;
          a[q * n + k] = sn * apk + cs * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = cs * vkp - sn * vkq;
          v[k * n + q] = sn * vkp + cs * vkq;
        }
      }
    }
  }
  const order = [...Array(n).keys()].sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/** Σ of the r largest squared singular values of M [m, n] (the best rank-r energy), from MᵀM's eigenvalues. */
export function bestRankEnergy(M: ArrayLike<number>, m: number, n: number, r: number): number {
  const Md = Float64Array.from(M);
  const { values } = jacobiEigen(mm(tr(Md, m, n), Md, n, m, n), n);
  let e = 0;
  for (let k = 0; k < Math.min(r, n); k++) e += Math.max(0, values[k]);
  return e;
}

/** ‖U·S·Vᵀ‖²_F computed exactly (no orthonormality assumed): tr(Sᵀ·UᵀU·S·VᵀV). */
export function lowRankEnergy(U: ArrayLike<number>, S: ArrayLike<number>, V: ArrayLike<number>, m: number, n: number, r: number): number {
  const Ud = Float64Array.from(U);
  const Vd = Float64Array.from(V);
  const Sd = Float64Array.from(S);
  const UU = mm(tr(Ud, m, r), Ud, r, m, r);
  const VV = mm(tr(Vd, n, r), Vd, r, n, r);
  const X = mm(mm(tr(Sd, r, r), UU, r, r, r), mm(Sd, VV, r, r, r), r, r, r);
  let e = 0;
  for (let a = 0; a < r; a++) e += X[a * r + a];
  return e;
}
