// mao: momentum-aware optimization (Basin issue 17), after UMTAM (arXiv 2512.17109) with MoFaSGD's low-rank
// momentum (arXiv 2507.08091) and Adafactor's factored second moment (arXiv 1804.04235). Formulas and the CPU
// reference: src/engine/cpu/mao.ts; kernels: kernels/mao.wgsl (one tensor per dispatch, like Adafactor).
//
// State of a tensor of rank ≥ 2 viewed as W [m, n] (shape[0] × rest) with min(m, n) > rank:
//   U [m, r], S [r, r], V [n, r]   the momentum ≈ U·S·Vᵀ    (m·r + r² + n·r floats instead of m·n)
//   R [m], C [n]                   row/column means of g²   (V̂ = R·Cᵀ / mean(R), bias corrected)
//   E [m, n]                       only with errorFeedback: the dense residual M̃ − U·S·Vᵀ (+ m·n floats: with it
//                                  the momentum is exact, and mao keeps 1 + (m+n)(r+1)/mn floats per weight
//                                  against AdamW's 2; without it, (m+n)(r+1)/mn + r²/mn)
// Vectors and matrices with min(m, n) ≤ rank: dense Adam m, v (factoring them would save nothing), with the same
// preconditioner clamp and RMS clipping.
//
// The update (default `residual`): u = P ⊙ m̂ with m̂ = U·(β1·S + (1−β1)·T)·Vᵀ / (1 − β1ᵗ) + (g − U·T·Vᵀ), T = Uᵀ·g·V:
// the bias-corrected low-rank momentum plus the part of g outside its subspaces at full weight. The plain
// m̂ = M̃ / (1 − β1ᵗ), M̃ = β1·U·S·Vᵀ + (1−β1)·g (`residual: false`) keeps only (1−β1) = 10 % of that part, a 10×
// smaller step along everything rank r cannot hold: on the demo (rank 8 of 32) it ends at validation loss 1.917
// against AdamW's 1.734, the residual form at 1.725 (same steps, lr and schedule). With error feedback the
// momentum is exact and the update is M̃ / (1 − β1ᵗ).
//
// Between refits U and V stay fixed and S is updated in their subspace: S ← Uᵀ·M̃·V = β1·S + (1−β1)·Uᵀ·g·V. That is
// the Frobenius-closest momentum in the current subspaces (why S is a full r×r core rather than a diagonal: a
// diagonal could not hold the projection), it costs one g·V product (m·n·r) per step — the same order as forming
// U·S·Vᵀ for the update, which any low-rank momentum pays — and it needs no dense buffer. Every `refitEvery` steps
// (and at step 1) the subspaces are refitted to M̃ by randomized subspace iteration on the GPU: Ω = V + noise,
// Y = orth(M̃·Ω), `powerIters` × {Z = orth(M̃ᵀ·Y), Y = orth(M̃·Z)}, V = orth(M̃ᵀ·Y), S = Yᵀ·M̃·V, where orth is
// Cholesky-QR done twice (CholQR2; the r×r Cholesky in one workgroup). M̃ is applied as an operator
// (β1·U·S·Vᵀ + (1−β1)·g), never formed.
//
// All factors of all tensors live in ONE `state` buffer; E (error feedback) in one more, per tensor at 256-byte
// aligned offsets; `work` is scratch sized for the largest tensor (3·m·r + n·r + 3·r² + m floats), not state.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { maoLayout, maoOmegaScale, maoSeed } from '../cpu/mao';
import { GradNorms } from './clip';
import type { Optimizer, OptimizerSnapshot, OptimizerStateInput, OptimizerStatistics, StateTensorInfo } from './optimizer';
import { FLAT_ALIGN, ParamEntry, ParameterStore } from './params';

const WG = 256;
const BINDINGS = ['rw', 'read', 'rw', 'rw', 'rw', 'rw', 'read'] as const;
const K = (entry: string): KernelSpec => ({ file: 'mao', entry, bindings: [...BINDINGS], overrides: { WG } });
const ROWS = K('mao_rows');
const COLS = K('mao_cols');
const MEANR = K('mao_meanr');
const US = K('mao_us');
const SUMSQ = K('mao_sumsq');
const TOTAL = K('mao_total');
const UPDATE = K('mao_update');
const ADAM_SCALARS = K('mao_adam_scalars');
const ADAM_UPDATE = K('mao_adam_update');
const OMEGA = K('mao_omega');
const ATB = K('mao_atb');
const SMALL = K('mao_small');
const MUL = K('mao_mul');
const CORE = K('mao_core');
const CHOL = K('mao_chol');
const TRSM = K('mao_trsm');
const COMMIT = K('mao_commit');
const EF = K('mao_ef');
const KCORE = K('mao_kcore');

const USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const USE_SKIP = 1;
const USE_CLIP = 2;
// What the update applies (kernels/mao.wgsl `kind`).
const KIND_PLAIN = 0;
const KIND_EF = 1;
const KIND_RESIDUAL = 2;
const SEL_STATE = 0;
const SEL_WORK = 1;
/** Largest rank: the r×r Cholesky runs in one workgroup and S is r² floats. */
export const MAO_MAX_RANK = 128;

export interface MaoOptions {
  betas?: [number, number];
  eps?: number;
  rank?: number;
  refitEvery?: number;
  powerIters?: number;
  pMax?: number;
  clipThreshold?: number;
  weightDecay?: number;
  errorFeedback?: boolean;
  residual?: boolean;
  maxGradNorm?: number;
  skipNonFinite?: boolean;
  gradNorms?: GradNorms;
}

/** Where one tensor's state lives (offsets in elements of `state`, or of `ef` for E). */
interface Slot {
  entry: ParamEntry;
  factored: boolean;
  rows: number;
  cols: number;
  r: number;
  uOff: number;
  sOff: number;
  vOff: number;
  rOff: number;
  cOff: number;
  amOff: number;
  avOff: number;
  eOff: number;
}

/** Scratch offsets (elements of `work`) for a tensor [m, n] at rank r. */
function workLayout(m: number, n: number, r: number) {
  const w1 = 0;
  const y = m * r;
  const a = 2 * m * r;
  const z = 3 * m * r;
  const t1 = z + n * r;
  const t2 = t1 + r * r;
  const gm = t2 + r * r;
  const rowpart = gm + r * r;
  return { w1, y, a, z, t1, t2, gm, rowpart, total: rowpart + m };
}

export class Mao implements Optimizer {
  readonly name = 'mao';
  readonly gradNorms: GradNorms;
  readonly maxGradNorm: number;
  readonly skipNonFinite: boolean;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly rank: number;
  readonly refitEvery: number;
  readonly powerIters: number;
  readonly pMax: number;
  readonly clipThreshold: number;
  readonly weightDecay: number;
  readonly errorFeedback: boolean;
  readonly residual: boolean;
  private readonly slots: Slot[];
  private readonly stateFloats: number;
  private readonly efFloats: number;
  private readonly workFloats: number;
  private readonly state_: GPUBuffer;
  private readonly work: GPUBuffer;
  private readonly scalars: GPUBuffer;
  private readonly ef: GPUBuffer;
  private steps = 0;
  private readonly ownsNorms: boolean;
  private destroyed = false;

  constructor(readonly store: ParameterStore, opts: MaoOptions = {}) {
    if (!store.isMaterialized) throw new Error('materialize the parameter store before making an optimizer');
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = opts.eps ?? 1e-16;
    this.rank = opts.rank ?? 32;
    this.refitEvery = opts.refitEvery ?? 20;
    this.powerIters = opts.powerIters ?? 1;
    this.pMax = opts.pMax ?? 1e4;
    this.clipThreshold = opts.clipThreshold ?? 1;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.errorFeedback = opts.errorFeedback ?? false;
    this.residual = opts.residual ?? true;
    this.maxGradNorm = opts.maxGradNorm ?? 0;
    this.skipNonFinite = opts.skipNonFinite ?? true;
    const checks: [string, boolean][] = [
      [`beta1 must be in [0, 1), got ${b1}`, b1 >= 0 && b1 < 1],
      [`beta2 must be in [0, 1), got ${b2}`, b2 >= 0 && b2 < 1],
      // eps must survive f32 (a zero eps turns an untouched row's 0·∞ into NaN when pMax does not bound it).
      [`eps must be ≥ 1e-30, got ${this.eps}`, this.eps >= 1e-30],
      [`rank must be an integer in [1, ${MAO_MAX_RANK}], got ${this.rank}`, Number.isInteger(this.rank) && this.rank >= 1 && this.rank <= MAO_MAX_RANK],
      [`refitEvery must be an integer ≥ 1, got ${this.refitEvery}`, Number.isInteger(this.refitEvery) && this.refitEvery >= 1],
      [`powerIters must be an integer in [0, 8], got ${this.powerIters}`, Number.isInteger(this.powerIters) && this.powerIters >= 0 && this.powerIters <= 8],
      [`pMax must be > 0, got ${this.pMax}`, this.pMax > 0],
      [`clipThreshold must be > 0, got ${this.clipThreshold}`, this.clipThreshold > 0],
      [`weightDecay must be ≥ 0, got ${this.weightDecay}`, this.weightDecay >= 0],
      [`maxGradNorm must be a finite number ≥ 0, got ${this.maxGradNorm}`, this.maxGradNorm >= 0 && Number.isFinite(this.maxGradNorm)],
    ];
    for (const [what, ok] of checks) if (!ok) throw new Error(`mao: ${what}`);

    const rt = store.runtime;
    for (const e of store.entries) {
      if (e.size * 4 > rt.maxBindingBytes) {
        throw new Error(
          `mao: parameter '${e.name}' (${e.shape.join('×')}, ${(e.size * 4 / 2 ** 20).toFixed(1)} MiB) is larger than one GPU binding ` +
            `(${(rt.maxBindingBytes / 2 ** 20).toFixed(0)} MiB on this device), and mao's kernels bind a tensor whole; use adamw or sgd (chunked) for this model, or make the tensor smaller`,
        );
      }
    }
    let off = 0;
    let eOff = 0;
    let work = 16;
    this.slots = store.entries.map((e) => {
      const { rows, cols, factored } = maoLayout(e.shape, this.rank);
      const s: Slot = { entry: e, factored, rows, cols, r: factored ? this.rank : 0, uOff: 0, sOff: 0, vOff: 0, rOff: 0, cOff: 0, amOff: 0, avOff: 0, eOff: 0 };
      if (factored) {
        const r = this.rank;
        s.uOff = off;
        s.sOff = off + rows * r;
        s.vOff = s.sOff + r * r;
        s.rOff = s.vOff + cols * r;
        s.cOff = s.rOff + rows;
        off = s.cOff + cols;
        work = Math.max(work, workLayout(rows, cols, r).total);
        if (this.errorFeedback) {
          s.eOff = eOff;
          eOff += Math.ceil(e.size / FLAT_ALIGN) * FLAT_ALIGN; // each E bound alone: 256-byte aligned
        }
      } else {
        s.amOff = off;
        s.avOff = off + e.size;
        off += 2 * e.size;
      }
      return s;
    });
    this.stateFloats = off;
    this.efFloats = eOff;
    this.workFloats = work;
    for (const [what, floats] of [['state', off], ['error-feedback', eOff], ['scratch', work]] as const) {
      if (floats * 4 > rt.maxBindingBytes) {
        throw new Error(`mao: the ${what} buffer (${(floats * 4 / 2 ** 20).toFixed(1)} MiB) is larger than one GPU binding (${(rt.maxBindingBytes / 2 ** 20).toFixed(0)} MiB); lower rank or use adamw`);
      }
    }
    const dev = rt.device;
    this.state_ = dev.createBuffer({ size: Math.max(16, off * 4), usage: USAGE, label: 'mao:state' });
    this.work = dev.createBuffer({ size: Math.max(16, work * 4), usage: USAGE, label: 'mao:work' });
    this.scalars = dev.createBuffer({ size: Math.max(16, store.entries.length * 16), usage: USAGE, label: 'mao:scalars' });
    this.ef = dev.createBuffer({ size: Math.max(256, eOff * 4), usage: USAGE, label: 'mao:ef' });
    rt.pool.trackExternal(this.externalBytes());
    if (opts.gradNorms && opts.gradNorms.store !== store) throw new Error('gradNorms belongs to another parameter store');
    this.ownsNorms = !opts.gradNorms;
    this.gradNorms = opts.gradNorms ?? new GradNorms(store);
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Bytes of optimizer state (factors, R and C, dense Adam state of the small tensors, E): what a checkpoint holds. */
  get stateBytes(): number {
    let floats = 0;
    for (const sl of this.slots) {
      if (sl.factored) floats += (sl.rows + sl.cols) * sl.r + sl.r * sl.r + sl.rows + sl.cols + (this.errorFeedback ? sl.entry.size : 0);
      else floats += 2 * sl.entry.size;
    }
    return floats * 4;
  }

  /** Bytes of the step's scratch (sized for the largest tensor; not state, not in checkpoints). */
  get workBytes(): number {
    return this.workFloats * 4;
  }

  /** Whether a parameter's momentum is factored (else dense Adam). */
  isFactored(name: string): boolean {
    const sl = this.slots.find((s) => s.entry.name === name);
    if (!sl) throw new Error(`mao: no parameter named '${name}'`);
    return sl.factored;
  }

  step(lr: number): void {
    if (this.destroyed) throw new Error('mao: step() after destroy()');
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`mao: learning rate must be a finite number ≥ 0, got ${lr}`);
    const t = ++this.steps;
    const s = this.store;
    const rt = s.runtime;
    const mode = (this.skipNonFinite ? USE_SKIP : 0) | (this.maxGradNorm > 0 ? USE_CLIP : 0);
    if (mode) this.gradNorms.compute(t);
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    const refit = (t - 1) % this.refitEvery === 0;
    const stateB: BufferBinding = { buffer: this.state_, offset: 0, size: this.state_.size };
    const workB: BufferBinding = { buffer: this.work, offset: 0, size: this.work.size };
    const scalarsB: BufferBinding = { buffer: this.scalars, offset: 0, size: this.scalars.size };
    const norms = this.gradNorms.binding();
    const n = s.entries.length;
    const groups = (count: number) => Math.max(1, Math.ceil(count / WG));
    for (const sl of this.slots) {
      const e = sl.entry;
      if (e.flags.frozen || e.size === 0) continue;
      const range = { offset: e.offset * 4, size: e.size * 4 };
      const efB: BufferBinding = sl.factored && this.errorFeedback ? { buffer: this.ef, offset: sl.eOff * 4, size: e.size * 4 } : { buffer: this.ef, offset: 0, size: 256 };
      const bufs: BufferBinding[] = [{ buffer: s.params.buffer, ...range }, { buffer: s.grads.buffer, ...range }, stateB, workB, scalarsB, efB, norms];
      const { rows: m, cols: nc, r } = sl;
      const w = workLayout(m, nc, r);
      const base = {
        aSel: 0, aOff: 0, bSel: 0, bOff: 0, oOff: 0, len: 0, flag: 0, seed: 0, xOff: 0, cL: 0, cD: 0,
      };
      const decayKeep = e.flags.decay ? 1 - lr * this.weightDecay : 1;
      const kind = !sl.factored ? 0 : this.errorFeedback ? KIND_EF : this.residual ? KIND_RESIDUAL : KIND_PLAIN;
      const d = (spec: KernelSpec, g: number, o: Partial<typeof base> = {}) => {
        const x = { ...base, ...o };
        rt.dispatch(
          spec,
          bufs,
          {
            values: [
              m, nc, r, mode, n, e.index, sl.uOff, sl.sOff, sl.vOff, sl.rOff, sl.cOff, sl.amOff, sl.avOff, kind, w.w1, w.rowpart,
              x.aSel, x.aOff, x.bSel, x.bOff, x.oOff, x.len, x.flag, x.seed, x.xOff,
              this.maxGradNorm, this.beta1, this.beta2, bc1, bc2, this.eps, this.pMax, this.clipThreshold, lr, decayKeep, x.cL, x.cD, maoOmegaScale(nc),
            ],
            format: 'u'.repeat(25) + 'f'.repeat(13),
          },
          g,
        );
      };
      if (!sl.factored) {
        d(ADAM_SCALARS, 1);
        d(ADAM_UPDATE, groups(e.size));
        continue;
      }
      d(ROWS, m);
      d(COLS, nc);
      d(MEANR, 1);
      if (kind === KIND_RESIDUAL) {
        // T1 = Uᵀ·(s·g)·V, then K so that U·K·Vᵀ + s·g = bias-corrected low-rank momentum + g outside the subspaces.
        d(MUL, groups(m * r), { flag: 0, bSel: SEL_STATE, bOff: sl.vOff, oOff: w.a, cL: 0, cD: 1 });
        d(ATB, groups(r * r), { aSel: SEL_STATE, aOff: sl.uOff, bSel: SEL_WORK, bOff: w.a, oOff: w.t1, len: m });
        d(KCORE, groups(r * r), { xOff: w.t1, oOff: w.t2 });
        d(US, groups(m * r), { flag: 1, xOff: w.t2 });
      } else d(US, groups(m * r));
      d(SUMSQ, m);
      d(TOTAL, 1);
      d(UPDATE, groups(e.size));
      const ef = this.errorFeedback ? 2 : 0;
      // The operator M̃ (old factors) applied to X: with error feedback E holds M̃ densely.
      const cL = this.errorFeedback ? 0 : this.beta1;
      const cD = this.errorFeedback ? 1 : 1 - this.beta1;
      const mulRight = (xOff: number, out: number) => {
        if (cL !== 0) {
          d(ATB, groups(r * r), { aSel: SEL_STATE, aOff: sl.vOff, bSel: SEL_WORK, bOff: xOff, oOff: w.t1, len: nc });
          d(SMALL, groups(r * r), { xOff: w.t1, oOff: w.t2, flag: 0 });
        }
        d(MUL, groups(m * r), { flag: ef, bSel: SEL_WORK, bOff: xOff, xOff: w.t2, oOff: out, cL, cD });
      };
      const mulLeft = (xOff: number, out: number) => {
        if (cL !== 0) {
          d(ATB, groups(r * r), { aSel: SEL_STATE, aOff: sl.uOff, bSel: SEL_WORK, bOff: xOff, oOff: w.t1, len: m });
          d(SMALL, groups(r * r), { xOff: w.t1, oOff: w.t2, flag: 1 });
        }
        d(MUL, groups(nc * r), { flag: 1 | ef, bSel: SEL_WORK, bOff: xOff, xOff: w.t2, oOff: out, cL, cD });
      };
      const orth = (off: number, len: number) => {
        for (let pass = 0; pass < 2; pass++) {
          d(ATB, groups(r * r), { aSel: SEL_WORK, aOff: off, bSel: SEL_WORK, bOff: off, oOff: w.gm, len });
          d(CHOL, 1, { oOff: w.gm });
          d(TRSM, groups(len), { aOff: off, oOff: w.gm, len });
        }
      };
      if (refit) {
        d(OMEGA, groups(nc * r), { oOff: w.z, seed: maoSeed(t, e.index) });
        mulRight(w.z, w.y);
        orth(w.y, m);
        for (let it = 0; it < this.powerIters; it++) {
          mulLeft(w.y, w.z);
          orth(w.z, nc);
          mulRight(w.z, w.y);
          orth(w.y, m);
        }
        mulLeft(w.y, w.z);
        orth(w.z, nc);
        mulRight(w.z, w.a); // M̃·V'
        d(ATB, groups(r * r), { aSel: SEL_WORK, aOff: w.y, bSel: SEL_WORK, bOff: w.a, oOff: w.gm, len: m }); // S' = U'ᵀ·M̃·V'
        d(COMMIT, groups(Math.max(m * r, nc * r, r * r)), { aOff: w.y, xOff: w.z, bOff: w.gm });
      } else if (kind === KIND_RESIDUAL) {
        // S ← β1·S + (1−β1)·T1: T1 = Uᵀ·(s·g)·V is still in work (nothing since mao_kcore wrote there).
        d(CORE, groups(r * r), { xOff: w.t1, cL: this.beta1, cD: 1 - this.beta1 });
      } else {
        // S ← Uᵀ·M̃·V with U, V fixed: β1·S + (1−β1)·Uᵀ·(s·g)·V, or Uᵀ·E·V (E = M̃) with error feedback.
        d(MUL, groups(m * r), { flag: ef, bSel: SEL_STATE, bOff: sl.vOff, oOff: w.a, cL: 0, cD: 1 });
        d(ATB, groups(r * r), { aSel: SEL_STATE, aOff: sl.uOff, bSel: SEL_WORK, bOff: w.a, oOff: w.t1, len: m });
        d(CORE, groups(r * r), { xOff: w.t1, cL: this.errorFeedback ? 0 : this.beta1, cD: this.errorFeedback ? 1 : 1 - this.beta1 });
      }
      if (this.errorFeedback) {
        d(US, groups(m * r));
        d(EF, groups(e.size));
      }
    }
  }

  state(): Record<string, never> {
    return {};
  }

  statistics(): OptimizerStatistics {
    return {
      momentum: { layout: 'lowrank', u: 'U', s: 'S', v: 'V', dense: 'm' },
      secondMoment: { layout: 'factored', row: 'R', col: 'C', dense: 'v' },
    };
  }

  /** The state names this optimizer keeps. */
  private stateNames(): string[] {
    return ['U', 'S', 'V', 'R', 'C', 'm', 'v', ...(this.errorFeedback ? ['E'] : [])];
  }

  stateTensors(): StateTensorInfo[] {
    const out: StateTensorInfo[] = [];
    for (const sl of this.slots) {
      const p = sl.entry.name;
      if (sl.factored) {
        const r = sl.r;
        out.push(
          { state: 'U', param: p, shape: [sl.rows, r] },
          { state: 'S', param: p, shape: [r, r] },
          { state: 'V', param: p, shape: [sl.cols, r] },
          { state: 'R', param: p, shape: [sl.rows] },
          { state: 'C', param: p, shape: [sl.cols] },
        );
        if (this.errorFeedback) out.push({ state: 'E', param: p, shape: [...sl.entry.shape] });
      } else out.push({ state: 'm', param: p, shape: [...sl.entry.shape] }, { state: 'v', param: p, shape: [...sl.entry.shape] });
    }
    return out;
  }

  /** Where a state of a slot lives: [buffer 'state' | 'ef', offset, length], or null when the slot has none. */
  private where(state: string, sl: Slot): ['state' | 'ef', number, number] | null {
    const r = sl.r;
    if (sl.factored) {
      switch (state) {
        case 'U': return ['state', sl.uOff, sl.rows * r];
        case 'S': return ['state', sl.sOff, r * r];
        case 'V': return ['state', sl.vOff, sl.cols * r];
        case 'R': return ['state', sl.rOff, sl.rows];
        case 'C': return ['state', sl.cOff, sl.cols];
        case 'E': return this.errorFeedback ? ['ef', sl.eOff, sl.entry.size] : null;
        default: return null;
      }
    }
    if (state === 'm') return ['state', sl.amOff, sl.entry.size];
    if (state === 'v') return ['state', sl.avOff, sl.entry.size];
    return null;
  }

  async readState(state: string): Promise<Map<string, Float32Array>> {
    if (!this.stateNames().includes(state)) throw new Error(`mao: no state named '${state}' (${this.stateNames().join(', ')})`);
    const all = state === 'E' ? await this.readBuffer(this.ef, this.efFloats) : await this.readBuffer(this.state_, this.stateFloats);
    const out = new Map<string, Float32Array>();
    for (const sl of this.slots) {
      const w = this.where(state, sl);
      if (w) out.set(sl.entry.name, all.slice(w[1], w[1] + w[2]));
    }
    return out;
  }

  async snapshot(): Promise<OptimizerSnapshot> {
    const buffers: OptimizerSnapshot['buffers'] = {};
    for (const st of this.stateNames()) {
      const map = await this.readState(st);
      if (map.size) buffers[st] = map;
    }
    return { optimizer: this.name, step: this.steps, buffers };
  }

  loadState(input: OptimizerStateInput): void {
    if (!Number.isInteger(input.step) || input.step < 0) throw new Error(`mao: bad step count ${input.step}`);
    const host = new Float32Array(this.stateFloats);
    const efHost = new Float32Array(this.efFloats);
    for (const sl of this.slots) {
      for (const st of this.stateNames()) {
        const w = this.where(st, sl);
        if (!w) continue;
        const b = input.buffers[st];
        const data = b && !(b instanceof Float32Array) ? b.get(sl.entry.name) : undefined;
        if (!data) throw new Error(`mao: the snapshot has no ${st} for '${sl.entry.name}'`);
        if (data.length !== w[2]) throw new Error(`mao: ${st} of '${sl.entry.name}' has ${data.length} values, expected ${w[2]}`);
        (w[0] === 'ef' ? efHost : host).set(data, w[1]);
      }
    }
    const rt = this.store.runtime;
    if (this.stateFloats) rt.write({ buffer: this.state_, offset: 0, size: this.stateFloats * 4 }, host);
    if (this.efFloats) rt.write({ buffer: this.ef, offset: 0, size: this.efFloats * 4 }, efHost);
    this.steps = input.step;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const rt = this.store.runtime;
    rt.flush();
    rt.pool.trackExternal(-this.externalBytes());
    for (const b of [this.state_, this.work, this.scalars, this.ef]) {
      rt.pool.onDestroy?.(b);
      b.destroy();
    }
    if (this.ownsNorms) this.gradNorms.destroy();
  }

  private externalBytes(): number {
    return this.state_.size + this.work.size + this.scalars.size + this.ef.size;
  }

  private async readBuffer(buf: GPUBuffer, floats: number): Promise<Float32Array> {
    if (!floats) return new Float32Array(0);
    return new Float32Array(await this.store.runtime.readBytes({ buffer: buf, offset: 0, size: floats * 4 }));
  }
}
