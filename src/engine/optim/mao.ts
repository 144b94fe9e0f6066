// mao: momentum-aware optimization (Basin issue 17), after UMTAM (arXiv 2512.17109) with MoFaSGD's low-rank
// momentum (arXiv 2507.08091) and Adafactor's factored second moment (arXiv 1804.04235). Formulas and the CPU
// reference: src/engine/cpu/mao.ts; kernels: kernels/mao.wgsl.
//
// State of a tensor of rank ≥ 2 viewed as W [m, n] (shape[0] × rest) with min(m, n) > rank:
//   U [m, r], S [r, r], V [n, r]   the momentum ≈ U·S·Vᵀ    (m·r + r² + n·r floats instead of m·n)
//   R [m], C [n]                   row/column means of g²   (V̂ = R·Cᵀ / mean(R), bias corrected)
//   E [m, n]                       errorFeedback (the default): the dense residual M̃ − U·S·Vᵀ in bfloat16, 2 bytes
//                                  per weight. With it the momentum is exact up to E's rounding (2⁻⁹ of the
//                                  residual), and mao keeps 0.5 + ((m+n)(r+1) + r²)/mn floats per weight against
//                                  AdamW's 2; without it, ((m+n)(r+1) + r²)/mn. bf16 rather than f16: the residual has
//                                  the gradient's range (down to 1e-9 and below), which f16 would flush to zero;
//                                  8 bits of mantissa are plenty for a momentum (the rounding error does not
//                                  accumulate: each step rounds β1·E + …, so it stays near 2⁻⁹·|E| / (1 − β1)).
//                                  Why it is the default: on the benchmark transformer (dModel 128, rank 32) the
//                                  rank-32 momentum alone ends 8.8 % above AdamW's validation loss, with E 2 % below
//                                  (bench optimizer-quality --variants; README).
// Vectors and matrices with min(m, n) ≤ rank: dense Adam m, v (factoring them would save nothing), with the same
// preconditioner clamp and RMS clipping.
//
// Without error feedback the update (default `residual`) is u = P ⊙ m̂ with m̂ = U·(β1·S + (1−β1)·T)·Vᵀ / (1 − β1ᵗ) + (g − U·T·Vᵀ), T = Uᵀ·g·V:
// the bias-corrected low-rank momentum plus the part of g outside its subspaces at full weight. The plain
// m̂ = M̃ / (1 − β1ᵗ), M̃ = β1·U·S·Vᵀ + (1−β1)·g (`residual: false`) keeps only (1−β1) = 10 % of that part, a 10×
// smaller step along everything rank r cannot hold: on the demo (rank 8 of 32) it ends at validation loss 1.917
// against AdamW's 1.734, the residual form at 1.725 (same steps, lr and schedule). With error feedback the
// momentum is exact and the update is M̃ / (1 − β1ᵗ) = U·(β1·S/(1 − β1ᵗ))·Vᵀ + D/(1 − β1ᵗ) with D = β1·E + (1−β1)·g;
// then S' = Uᵀ·M̃·V = β1·S + T with T = Uᵀ·D·V, and E' = M̃ − U·S'·Vᵀ = D − U·T·Vᵀ (no dense M̃ is formed). On refit
// steps E takes M̃ itself, the refit fits it, and E ← M̃ − U'·S'·V'ᵀ.
//
// Between refits U and V stay fixed and S is updated in their subspace: S ← Uᵀ·M̃·V = β1·S + (1−β1)·Uᵀ·g·V. That is
// the Frobenius-closest momentum in the current subspaces (why S is a full r×r core rather than a diagonal: a
// diagonal could not hold the projection), it costs one g·V product (m·n·r) per step — the same order as forming
// U·S·Vᵀ for the update, which any low-rank momentum pays — and it needs no dense buffer. Every `refitEvery` steps
// (and at step 1) the subspaces are refitted to M̃ by randomized subspace iteration on the GPU: Ω = V + noise,
// Y = orth(M̃·Ω), `powerIters` × {Z = orth(M̃ᵀ·Y), Y = orth(M̃·Z)}, V = orth(M̃ᵀ·Y), S = Yᵀ·M̃·V, where orth is
// Cholesky-QR done twice (CholQR2; the r×r Cholesky in one workgroup). M̃ is applied as an operator
// (β1·U·S·Vᵀ + (1−β1)·g, or E with error feedback), never formed.
//
// All factors of all tensors live in ONE `state` buffer; E (error feedback) in one more, two bf16 per u32, per
// tensor at 256-byte aligned offsets; `work` is scratch, not state: per tensor of a batch the batched step's
// (A [m, r], Vᵀ [r, n], K, T [r, r], a few partial sums, and W2 = U·T [m, r] with error feedback) or its refit's
// (Y, A [m, r], Z [n, r], T1, T2, Gm [r, r]), whichever is larger.
//
// Dispatches. On a software adapter (lavapipe) a dispatch costs about as much as a small kernel, and the first
// version (one tensor per dispatch, eleven per matrix, two per vector) made a step 1.5–2 × AdamW's on the
// benchmark models while the arithmetic is a few % of a training step's. So the step is batched: the tensors whose
// span of the flat layout fits one binding form a batch, a table (one record per tensor: offsets, shape, the
// first workgroup of each phase) lets one dispatch serve all of them, and the step is five dispatches per batch
// (kernels/mao.wgsl, mao_b_*), the dense-Adam tensors two, with or without error feedback; the refit (every
// `refitEvery` steps) is batched the same way (mao_rb_*).
//
// Captured energy (capturedEnergy()): the fraction of the momentum's energy ‖M̃‖²_F the rank-r factors hold after
// the step. Without error feedback M̃ = β1·U·S·Vᵀ + (1−β1)·s·g with U, V of orthonormal columns (CholQR2 makes
// them so at every refit; before the first refit they are 0 and so is S), hence
//   ‖M̃‖² = β1²‖U·S·Vᵀ‖² + 2β1(1−β1)⟨U·S·Vᵀ, s·g⟩ + (1−β1)²‖s·g‖²
//        = β1²‖S‖² + 2β1(1−β1)⟨S, T⟩ + (1−β1)²‖s·g‖²,   T = Uᵀ·(s·g)·V,
// because ‖U·X·Vᵀ‖ = ‖X‖ and ⟨U·S·Vᵀ, G⟩ = tr(V·Sᵀ·Uᵀ·G) = ⟨S, Uᵀ·G·V⟩. The step has every term at hand: T for
// the projection, ‖s·g‖² from the row sums of g² (mao_b_core, mao_b_total keep it in scalars). The factors after
// the step hold U'·S'·V'ᵀ = P_U'·M̃·P_V' (the projection, or the refit's S' = U'ᵀ·M̃·V'), whose energy is ‖S'‖²; the
// fraction ‖S'‖² / ‖M̃‖² is in [0, 1] because an orthogonal projection cannot add energy. In the residual form the
// update also applies g outside the subspaces, but the momentum the factors stand for is still this M̃. With
// error feedback M̃ = U'·S'·V'ᵀ + E' with E' = M̃ − P_U'·M̃·P_V' orthogonal to the first term, so ‖M̃‖² = ‖S'‖² + ‖E'‖².
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { bf16ToF32, f32ToBf16, maoLayout, maoOmegaScale } from '../cpu/mao';
import { GradNorms } from './clip';
import type { Optimizer, OptimizerSnapshot, OptimizerStateInput, OptimizerStatistics, StateTensorInfo } from './optimizer';
import { FLAT_ALIGN, ParamEntry, ParameterStore } from './params';

const WG = 256;
const BINDINGS = ['rw', 'read', 'rw', 'rw', 'rw', 'rw', 'read', 'read'] as const;
const K = (entry: string): KernelSpec => ({ file: 'mao', entry, bindings: [...BINDINGS], overrides: { WG } });
// Every tensor of a batch per dispatch (kernels/mao.wgsl, "batched step").
const B_STATS = K('mao_b_stats');
const B_CORE = K('mao_b_core');
const B_SUMSQ = K('mao_b_sumsq');
const B_TOTAL = K('mao_b_total');
const B_UPDATE = K('mao_b_update');
const B_UPDATE_EF = K('mao_b_update_ef');
const B_ADAM_SCALARS = K('mao_b_adam_scalars');
const B_ADAM_UPDATE = K('mao_b_adam_update');
const B_ENERGY = K('mao_b_energy');
const RB_OMEGA_K = K('mao_rb_omega');
const RB_ATB = K('mao_rb_atb');
const RB_SMALL = K('mao_rb_small');
const RB_MUL = K('mao_rb_mul');
const RB_CHOL = K('mao_rb_chol');
const RB_TRSM = K('mao_rb_trsm');
const RB_COMMIT = K('mao_rb_commit');
const RB_YG = K('mao_rb_yg');
const RB_EF = K('mao_rb_ef');

const USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const USE_SKIP = 1;
const USE_CLIP = 2;
// The batched kernels' table (kernels/mao.wgsl TAB, T_*): one record of TAB u32s per tensor.
const TAB = 24;
const T_POFF = 0;
const T_ROWS = 1;
const T_COLS = 2;
const T_U = 3;
const T_S = 4;
const T_V = 5;
const T_R = 6;
const T_C = 7;
const T_SCR = 8;
const T_IDX = 9;
const T_DECAY = 10;
const T_WG_STATS = 11;
const T_WG_CORE = 12;
const T_WG_ROWS = 13;
const T_WG_ELEMS = 14;
const T_WG_MR = 15;
const T_OMEGA = 22;
const T_EOFF = 23;
// Slots of the batched refit's operands (kernels/mao.wgsl RS_*).
const RS_U = 0;
const RS_V = 1;
const RS_Y = 2;
const RS_A = 3;
const RS_Z = 4;
const RS_T1 = 5;
const RS_T2 = 6;
const RS_GM = 7;
/** Phases of the batched refit by invocations per tensor (table columns T_WG_MR + k). */
const RB_MR = 0;
const RB_NR = 1;
const RB_RR = 2;
const RB_M = 3;
const RB_N = 4;
const RB_ONE = 5;
const RB_MAX = 6;
/** A table section starts 256-byte aligned (it is bound at its own offset). */
const TAB_ALIGN = 64;
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
  /** E's storage: 'bf16' (2 bytes per weight, the default) or 'f32' (4). */
  errorFeedbackPrecision?: 'bf16' | 'f32';
  residual?: boolean;
  /** ρ of the residual form (default 1). */
  residualWeight?: number;
  maxGradNorm?: number;
  skipNonFinite?: boolean;
  gradNorms?: GradNorms;
}

/** Where one tensor's state lives (offsets in elements of `state`, or in bf16 elements of `ef` for E). */
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

/** Floats of a factored tensor's scratch in the batched step (kernels/mao.wgsl scratch_of; W2 with error feedback). */
function batchScratch(m: number, n: number, r: number, errorFeedback: boolean): number {
  const step = m * r + r * n + 2 * r * r + 2 * m + (errorFeedback ? m * r : 0);
  const refit = 2 * m * r + n * r + 3 * r * r; // Y, A, Z, T1, T2, Gm (kernels/mao.wgsl rs_off)
  return Math.max(step, refit);
}

/** One dispatch group of the batched step: tensors whose span of the flat layout fits one binding. */
interface Batch {
  /** First element of the span (param and grad are bound from here) and its length. */
  base: number;
  elems: number;
  factored: number;
  dense: number;
  /** Byte offsets of the two table sections (factored records, then dense records). */
  factoredTab: number;
  denseTab: number;
  /** Workgroups of the phases: mao_b_stats, mao_b_core, mao_b_sumsq, mao_b_update, mao_b_adam_update. */
  wgStats: number;
  wgCore: number;
  wgRows: number;
  wgElems: number;
  wgDense: number;
  /** Workgroups of the batched refit's phases (RB_*). */
  wgRefit: number[];
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
  readonly errorFeedbackPrecision: 'bf16' | 'f32';
  readonly residual: boolean;
  /** ρ: the weight of the gradient's part outside the momentum's subspaces in the residual form (1: full). */
  readonly residualWeight: number;
  private readonly slots: Slot[];
  private readonly stateFloats: number;
  /** Elements of `ef` (a multiple of 128: every tensor's E starts 256-byte aligned in either precision). */
  private readonly efElems: number;
  /** Bytes per element of E: 2 (bf16) or 4 (f32). */
  private readonly efBytesPer: number;
  /** The kernels with E's precision as their EF_BF16 override. */
  private readonly spec: (k: KernelSpec) => KernelSpec;
  private readonly workFloats: number;
  private readonly state_: GPUBuffer;
  private readonly work: GPUBuffer;
  private readonly scalars: GPUBuffer;
  private readonly ef: GPUBuffer;
  /** The batched step's tables (records rebuilt when a tensor is frozen or unfrozen) and capturedEnergy()'s. */
  private readonly table: GPUBuffer;
  private readonly energyTable: GPUBuffer;
  private readonly energyCount: number;
  private readonly batches: Batch[];
  /** Per slot: its batch and its scratch base in `work` (batched step). */
  private readonly batchOf: number[];
  private readonly scratchOf: number[];
  /** The flags the table records were built for ('' before the first step). */
  private tableKey = '';
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
    this.errorFeedback = opts.errorFeedback ?? true; // the registry's default (src/files/registry/optimizers.ts)
    this.errorFeedbackPrecision = opts.errorFeedbackPrecision ?? 'bf16';
    if (this.errorFeedbackPrecision !== 'bf16' && this.errorFeedbackPrecision !== 'f32') throw new Error(`mao: errorFeedbackPrecision must be 'bf16' or 'f32', got '${String(this.errorFeedbackPrecision)}'`);
    this.residual = opts.residual ?? true;
    this.residualWeight = opts.residualWeight ?? 1;
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
        if (this.errorFeedback) {
          s.eOff = eOff;
          eOff += Math.ceil(e.size / (2 * FLAT_ALIGN)) * 2 * FLAT_ALIGN; // each E bound alone: 256-byte aligned
        }
      } else {
        s.amOff = off;
        s.avOff = off + e.size;
        off += 2 * e.size;
      }
      return s;
    });
    this.stateFloats = off;
    this.efElems = eOff;
    this.efBytesPer = this.errorFeedbackPrecision === 'bf16' ? 2 : 4;
    const ef16 = this.errorFeedbackPrecision === 'bf16' ? 1 : 0;
    this.spec = (k) => (ef16 ? k : { ...k, overrides: { ...k.overrides, EF_BF16: 0 } });
    // Batches: consecutive tensors while their span fits one binding (and so does their scratch). Frozen tensors
    // stay inside the spans (a tensor can be unfrozen later); the table records skip them.
    this.batches = [];
    this.batchOf = [];
    this.scratchOf = [];
    const maxElems = store.maxBindingElems; // the store's limit: tests lower it to make several batches
    let tableU32 = 0;
    let cur: Batch | null = null;
    let scratch = 0;
    for (const sl of this.slots) {
      const e = sl.entry;
      const own = sl.factored ? batchScratch(sl.rows, sl.cols, this.rank, this.errorFeedback) : 0;
      if (!cur || e.offset + e.size - cur.base > maxElems || scratch + own > maxElems) {
        cur = { base: e.offset, elems: 0, factored: 0, dense: 0, factoredTab: 0, denseTab: 0, wgStats: 0, wgCore: 0, wgRows: 0, wgElems: 0, wgDense: 0, wgRefit: [] };
        this.batches.push(cur);
        scratch = 0;
      }
      cur.elems = Math.max(1, e.offset + e.size - cur.base);
      this.batchOf.push(this.batches.length - 1);
      this.scratchOf.push(scratch);
      scratch += own;
      work = Math.max(work, scratch);
      if (sl.factored) cur.factored++;
      else if (!sl.factored) cur.dense++;
    }
    for (const b of this.batches) {
      b.factoredTab = tableU32 * 4;
      tableU32 += Math.ceil((b.factored * TAB) / TAB_ALIGN) * TAB_ALIGN || TAB_ALIGN;
      b.denseTab = tableU32 * 4;
      tableU32 += Math.ceil((b.dense * TAB) / TAB_ALIGN) * TAB_ALIGN || TAB_ALIGN;
    }
    this.workFloats = work;
    for (const [what, floats] of [['state', off], ['error-feedback', (eOff * this.efBytesPer) / 4], ['scratch', work]] as const) {
      if (floats * 4 > rt.maxBindingBytes) {
        throw new Error(`mao: the ${what} buffer (${(floats * 4 / 2 ** 20).toFixed(1)} MiB) is larger than one GPU binding (${(rt.maxBindingBytes / 2 ** 20).toFixed(0)} MiB); lower rank or use adamw`);
      }
    }
    const dev = rt.device;
    this.state_ = dev.createBuffer({ size: Math.max(16, off * 4), usage: USAGE, label: 'mao:state' });
    this.work = dev.createBuffer({ size: Math.max(16, work * 4), usage: USAGE, label: 'mao:work' });
    this.scalars = dev.createBuffer({ size: Math.max(16, store.entries.length * 16), usage: USAGE, label: 'mao:scalars' });
    this.ef = dev.createBuffer({ size: Math.max(256, eOff * this.efBytesPer), usage: USAGE, label: 'mao:ef' });
    this.table = dev.createBuffer({ size: Math.max(256, tableU32 * 4), usage: USAGE, label: 'mao:table' });
    // capturedEnergy()'s records: every factored tensor (T_POFF: where its E starts in `ef`).
    const energy = this.slots.filter((sl) => sl.factored);
    this.energyCount = energy.length;
    const et = new Uint32Array(Math.max(64, energy.length * TAB));
    energy.forEach((sl, k) => {
      const b = k * TAB;
      et[b + T_POFF] = sl.eOff;
      et[b + T_ROWS] = sl.rows;
      et[b + T_COLS] = sl.cols;
      et[b + T_S] = sl.sOff;
      et[b + T_IDX] = sl.entry.index;
    });
    this.energyTable = dev.createBuffer({ size: et.byteLength, usage: USAGE, label: 'mao:energy-table' });
    rt.write({ buffer: this.energyTable, offset: 0, size: et.byteLength }, et);
    rt.pool.trackExternal(this.externalBytes());
    if (opts.gradNorms && opts.gradNorms.store !== store) throw new Error('gradNorms belongs to another parameter store');
    this.ownsNorms = !opts.gradNorms;
    this.gradNorms = opts.gradNorms ?? new GradNorms(store);
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Bytes of optimizer state (factors, R and C, dense Adam state of the small tensors, E in bf16): what a checkpoint holds. */
  get stateBytes(): number {
    let floats = 0;
    for (const sl of this.slots) {
      if (sl.factored) floats += (sl.rows + sl.cols) * sl.r + sl.r * sl.r + sl.rows + sl.cols + (this.errorFeedback ? (sl.entry.size * this.efBytesPer) / 4 : 0);
      else floats += 2 * sl.entry.size;
    }
    return floats * 4;
  }

  /** Bytes of the step's scratch (sized for the largest tensor; not state, not in checkpoints). */
  get workBytes(): number {
    return this.workFloats * 4;
  }

  /** How many batches the batched step dispatches (tensors whose span fits one binding share one). */
  get batchCount(): number {
    return this.batches.length;
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
    this.writeTables();
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    const refit = (t - 1) % this.refitEvery === 0;
    const stateB: BufferBinding = { buffer: this.state_, offset: 0, size: this.state_.size };
    const workB: BufferBinding = { buffer: this.work, offset: 0, size: this.work.size };
    const scalarsB: BufferBinding = { buffer: this.scalars, offset: 0, size: this.scalars.size };
    const norms = this.gradNorms.binding();
    const n = s.entries.length;
    const r = this.rank;
    const groups = (count: number) => Math.max(1, Math.ceil(count / WG));
    const hyper = (decayKeep: number) => [this.maxGradNorm, this.beta1, this.beta2, bc1, bc2, this.eps, this.pMax, this.clipThreshold, lr, decayKeep];
    const FORMAT = 'u'.repeat(25) + 'f'.repeat(13) + 'uuuf';

    // The batched step: every factored tensor without error feedback, and every dense-Adam tensor.
    const keep = 1 - lr * this.weightDecay;
    // E is read and written at each tensor's T_EOFF: the whole buffer is bound (its size was checked against a binding).
    const efB: BufferBinding = { buffer: this.ef, offset: 0, size: this.ef.size };
    const kind = this.errorFeedback ? 1 : 0;
    for (const b of this.batches) {
      const span = { offset: b.base * 4, size: b.elems * 4 };
      const bufs = (tab: number, count: number): BufferBinding[] => [
        { buffer: s.params.buffer, ...span }, { buffer: s.grads.buffer, ...span }, stateB, workB, scalarsB, efB, norms,
        { buffer: this.table, offset: tab, size: Math.max(256, Math.ceil((count * TAB) / TAB_ALIGN) * TAB_ALIGN * 4) },
      ];
      // Operands of the refit kernels: slots (RS_*), the reduction's length (0 rows, 1 cols), flag, cL, cD.
      type Ops = { a?: number; b?: number; o?: number; x?: number; len?: number; flag?: number; cL?: number; cD?: number };
      const d = (spec: KernelSpec, tab: number, count: number, wg: number, o: Ops = {}) =>
        rt.dispatch(this.spec(spec), bufs(tab, count), {
          values: [
            0, 0, r, mode, n, 0, 0, 0, 0, 0, 0, 0, 0, kind, 0, 0,
            0, o.a ?? 0, 0, o.b ?? 0, o.o ?? 0, o.len ?? 0, o.flag ?? 0, t, o.x ?? 0,
            ...hyper(keep), o.cL ?? 0, o.cD ?? 0, 0, count, wg, refit ? 1 : 0, this.residual ? this.residualWeight : (1 - this.beta1) / bc1,
          ],
          format: FORMAT,
        }, wg);
      if (b.factored) {
        const f = (spec: KernelSpec, wg: number, o: Ops = {}) => d(spec, b.factoredTab, b.factored, wg, o);
        f(B_STATS, b.wgStats);
        f(B_CORE, b.wgCore);
        f(B_SUMSQ, b.wgRows);
        f(B_TOTAL, groups(b.factored));
        f(kind ? B_UPDATE_EF : B_UPDATE, b.wgElems);
        if (refit) {
          // The subspace iteration on M̃ = β1·U·S·Vᵀ + (1−β1)·s·g (old factors: mao_b_core left S alone), or with
          // error feedback on E, which mao_b_update_ef left holding M̃.
          const wg = b.wgRefit;
          const op = kind ? { cL: 0, cD: 1 } : { cL: this.beta1, cD: 1 - this.beta1 };
          const mulRight = (x: number, out: number) => {
            if (!kind) {
              f(RB_ATB, wg[RB_RR], { a: RS_V, b: x, o: RS_T1, len: 1 });
              f(RB_SMALL, wg[RB_RR], { x: RS_T1, o: RS_T2, flag: 0 });
            }
            f(RB_MUL, wg[RB_MR], { flag: 0, b: x, x: RS_T2, o: out, ...op });
          };
          const mulLeft = (x: number, out: number) => {
            if (!kind) {
              f(RB_ATB, wg[RB_RR], { a: RS_U, b: x, o: RS_T1, len: 0 });
              f(RB_SMALL, wg[RB_RR], { x: RS_T1, o: RS_T2, flag: 1 });
            }
            f(RB_MUL, wg[RB_NR], { flag: 1, b: x, x: RS_T2, o: out, ...op });
          };
          const orth = (slot: number, len: 0 | 1) => {
            for (let pass = 0; pass < 2; pass++) {
              f(RB_ATB, wg[RB_RR], { a: slot, b: slot, o: RS_GM, len });
              f(RB_CHOL, wg[RB_ONE], { o: RS_GM });
              f(RB_TRSM, wg[len === 0 ? RB_M : RB_N], { a: slot, o: RS_GM, len });
            }
          };
          f(RB_OMEGA_K, wg[RB_NR], { o: RS_Z });
          mulRight(RS_Z, RS_Y);
          orth(RS_Y, 0);
          for (let it = 0; it < this.powerIters; it++) {
            mulLeft(RS_Y, RS_Z);
            orth(RS_Z, 1);
            mulRight(RS_Z, RS_Y);
            orth(RS_Y, 0);
          }
          mulLeft(RS_Y, RS_Z);
          orth(RS_Z, 1);
          mulRight(RS_Z, RS_A); // M̃·V'
          f(RB_ATB, wg[RB_RR], { a: RS_Y, b: RS_A, o: RS_GM, len: 0 }); // S' = U'ᵀ·M̃·V'
          if (kind) {
            f(RB_YG, wg[RB_MR]); // A ← U'·S'
            f(RB_EF, b.wgElems); // E ← M̃ − U'·S'·V'ᵀ
          }
          f(RB_COMMIT, wg[RB_MAX]);
        }
      }
      if (b.dense) {
        d(B_ADAM_SCALARS, b.denseTab, b.dense, groups(b.dense));
        d(B_ADAM_UPDATE, b.denseTab, b.dense, b.wgDense);
      }
    }
  }

  /**
   * The batched step's table records, rewritten when the frozen or decay flags changed (progressive unfreezing):
   * per batch, the non-frozen factored tensors (error feedback off) and the non-frozen dense ones, with the first
   * workgroup of each phase.
   */
  private writeTables(): void {
    const key = this.slots.map((sl) => (sl.entry.flags.frozen ? 'f' : sl.entry.flags.decay ? 'd' : '-')).join('');
    if (key === this.tableKey) return;
    this.tableKey = key;
    const r = this.rank;
    const host = new Uint32Array(this.table.size / 4);
    const count = this.batches.map(() => ({ f: 0, d: 0 }));
    for (const b of this.batches) Object.assign(b, { wgStats: 0, wgCore: 0, wgRows: 0, wgElems: 0, wgDense: 0, wgRefit: [0, 0, 0, 0, 0, 0, 0] });
    const wgs = (invocations: number) => Math.ceil(invocations / WG);
    this.slots.forEach((sl, k) => {
      const e = sl.entry;
      if (e.flags.frozen || e.size === 0) return;
      const bi = this.batchOf[k];
      const b = this.batches[bi];
      const c = count[bi];
      // A record past its section would overwrite the next one's (the dense records follow the factored ones).
      if (sl.factored && (c.f + 1) * TAB * 4 > b.denseTab - b.factoredTab) throw new Error(`mao: internal error: batch ${bi}'s table has room for ${c.f} factored records`);
      const rec = (sl.factored ? b.factoredTab / 4 + c.f++ * TAB : b.denseTab / 4 + c.d++ * TAB);
      host[rec + T_POFF] = e.offset - b.base;
      host[rec + T_IDX] = e.index;
      host[rec + T_DECAY] = e.flags.decay ? 1 : 0;
      if (sl.factored) {
        host.set([sl.rows, sl.cols, sl.uOff, sl.sOff, sl.vOff, sl.rOff, sl.cOff, this.scratchOf[k]], rec + T_ROWS);
        host.set([b.wgStats, b.wgCore, b.wgRows, b.wgElems], rec + T_WG_STATS);
        b.wgStats += wgs(sl.rows * r + sl.cols);
        b.wgCore += wgs(r * r + 1);
        b.wgRows += wgs(sl.rows);
        b.wgElems += wgs(this.errorFeedback ? Math.ceil(e.size / 2) : e.size); // with E: by pairs
        host[rec + T_EOFF] = sl.eOff;
        const { rows: m, cols: nc } = sl;
        [m * r, nc * r, r * r, m, nc, 1, Math.max(m * r, nc * r, r * r)].forEach((count, c) => {
          host[rec + T_WG_MR + c] = b.wgRefit[c];
          b.wgRefit[c] += wgs(count);
        });
        host[rec + T_OMEGA] = new Uint32Array(Float32Array.of(maoOmegaScale(nc)).buffer)[0];
      } else {
        host[rec + T_ROWS] = e.size;
        host[rec + T_U] = sl.amOff;
        host[rec + T_S] = sl.avOff;
        host[rec + T_WG_STATS] = b.wgDense;
        b.wgDense += wgs(e.size);
      }
    });
    this.batches.forEach((b, i) => {
      b.factored = count[i].f;
      b.dense = count[i].d;
    });
    this.store.runtime.write({ buffer: this.table, offset: 0, size: this.table.size }, host);
  }

  /**
   * Per factored tensor, the fraction in [0, 1] of the momentum's energy ‖M̃‖²_F that the rank-r factors hold after
   * the last step (the derivation: the header of this file). Computed on the GPU from what the step keeps (‖M̃‖² in
   * `scalars`, S in the state; with error feedback ‖E‖²), read back here only. Absent: tensors with dense momentum,
   * and tensors that have not stepped yet (no momentum).
   */
  async capturedEnergy(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (!this.energyCount) return out;
    const rt = this.store.runtime;
    const s = this.store;
    const first = s.entries[0];
    const tiny = { offset: first.offset * 4, size: Math.max(4, first.size * 4) };
    const bufs: BufferBinding[] = [
      { buffer: s.params.buffer, ...tiny }, { buffer: s.grads.buffer, ...tiny },
      { buffer: this.state_, offset: 0, size: this.state_.size }, { buffer: this.work, offset: 0, size: this.work.size },
      { buffer: this.scalars, offset: 0, size: this.scalars.size }, { buffer: this.ef, offset: 0, size: this.ef.size },
      this.gradNorms.binding(), { buffer: this.energyTable, offset: 0, size: this.energyTable.size },
    ];
    const values = new Array<number>(42).fill(0);
    values[2] = this.rank;
    values[13] = this.errorFeedback ? 1 : 0;
    values[38] = this.energyCount;
    values[39] = this.energyCount;
    rt.dispatch(this.spec(B_ENERGY), bufs, { values, format: 'u'.repeat(25) + 'f'.repeat(13) + 'uuuu' }, Math.ceil(this.energyCount / WG));
    const sc = new Float32Array(await rt.readBytes({ buffer: this.scalars, offset: 0, size: s.entries.length * 16 }));
    for (const sl of this.slots) {
      if (!sl.factored || this.steps === 0) continue;
      const f = sc[sl.entry.index * 4 + 3];
      if (f >= 0) out.set(sl.entry.name, f);
    }
    return out;
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
        if (this.errorFeedback) out.push({ state: 'E', param: p, shape: [...sl.entry.shape], dtype: this.efBytesPer === 2 ? 'BF16' : 'F32' });
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
    const all = state === 'E' ? await this.readEf() : await this.readBuffer(this.state_, this.stateFloats);
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
    const efHost = this.efBytesPer === 2 ? new Uint16Array(this.efElems) : new Float32Array(this.efElems);
    for (const sl of this.slots) {
      for (const st of this.stateNames()) {
        const w = this.where(st, sl);
        if (!w) continue;
        const b = input.buffers[st];
        const data = b && !(b instanceof Float32Array) ? b.get(sl.entry.name) : undefined;
        if (!data) throw new Error(`mao: the snapshot has no ${st} for '${sl.entry.name}'`);
        if (data.length !== w[2]) throw new Error(`mao: ${st} of '${sl.entry.name}' has ${data.length} values, expected ${w[2]}`);
        if (w[0] === 'ef') efHost.set(efHost instanceof Uint16Array ? f32ToBf16(data) : data, w[1]);
        else host.set(data, w[1]);
      }
    }
    const rt = this.store.runtime;
    if (this.stateFloats) rt.write({ buffer: this.state_, offset: 0, size: this.stateFloats * 4 }, host);
    if (this.efElems) rt.write({ buffer: this.ef, offset: 0, size: this.efElems * this.efBytesPer }, efHost);
    this.steps = input.step;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const rt = this.store.runtime;
    rt.flush();
    rt.pool.trackExternal(-this.externalBytes());
    for (const b of [this.state_, this.work, this.scalars, this.ef, this.table, this.energyTable]) {
      rt.pool.onDestroy?.(b);
      b.destroy();
    }
    if (this.ownsNorms) this.gradNorms.destroy();
  }

  private externalBytes(): number {
    return this.state_.size + this.work.size + this.scalars.size + this.ef.size + this.table.size + this.energyTable.size;
  }

  /** E as f32, decoded from bf16 where it is held so (offsets as in `where`). */
  private async readEf(): Promise<Float32Array> {
    if (!this.efElems) return new Float32Array(0);
    const bytes = await this.store.runtime.readBytes({ buffer: this.ef, offset: 0, size: this.efElems * this.efBytesPer });
    return this.efBytesPer === 2 ? bf16ToF32(new Uint16Array(bytes)) : new Float32Array(bytes);
  }

  private async readBuffer(buf: GPUBuffer, floats: number): Promise<Float32Array> {
    if (!floats) return new Float32Array(0);
    return new Float32Array(await this.store.runtime.readBytes({ buffer: buf, offset: 0, size: floats * 4 }));
  }
}
