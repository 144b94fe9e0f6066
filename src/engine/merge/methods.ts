// The merge methods' GPU passes (kernels/merge.wgsl), one function per family; the registry (./registry.ts) maps
// each method name to one of them, and mergeTensor (./tensor-merge.ts) runs it. Conventions and semantics: see
// tensor-merge.ts; CPU reference: src/engine/cpu/merge.ts.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding, Runtime } from '../gpu/runtime';
import { ShapeError, Tensor, empty, fmtShape, fromArray, keep, numel } from '../tensor/tensor';
import { axpbyInPlace, fillInPlace, zeros } from '../ops/basic';
import { matmul } from '../ops/matmul';
import { kthLargest, kthLargestStreamed, type SelectSweep, type StreamedSelect, type TopKThreshold } from '../ops/select';
import { matrixView } from '../../protocol/stats';
import {
  GTA_METHODS,
  MergeMethodName,
  NORM_EPS,
  REGMEAN_JITTER,
  boolParam,
  breadcrumbsBand,
  dareThreshold,
  dellaConstants,
  dellaView,
  dropKey,
  numParam,
  trimCount,
} from './common';
import type { TensorMergeInput } from './tensor-merge';

/** A device-side flag read with the stats: a message to throw when it is non-zero. */
export interface Flag {
  t: Tensor;
  /** -1: nothing to check, the tensor is only released after the read. */
  index: number;
  message: (v: number) => string;
}

/** A method's passes: record them into `out` and the stats partials into `part`; return flags for the stats. */
export type MergePasses = (c: MergeCtx, out: Tensor, part: Tensor) => Flag[];

export const WG = 256;
/**
 * Elements per invocation of the element-wise passes (kernels/merge.wgsl): a workgroup then covers 16K elements
 * and reduces its stats once. A software rasterizer (lavapipe) pays per workgroup and per barrier far more than
 * per element (one element per invocation made mg_vote ~20× slower than a plain copy there); a real GPU still
 * gets ≥ 1,000 workgroups from any tensor above 16M elements, where the time goes.
 */
export const ITEMS = 64;

/** Elements per invocation: ITEMS, fewer under a small binding limit (a binding must hold a workgroup's span). */
export function spanItems(rt: Runtime): number {
  return Math.max(1, Math.min(ITEMS, Math.floor(rt.maxBindingBytes / 4 / WG)));
}
const k = (entry: string, bindings: KernelSpec['bindings']): KernelSpec => ({ file: 'merge', entry, bindings, overrides: { WG } });
const R = 'read' as const;
const W = 'rw' as const;
const SCORE = k('mg_score', [R, R, R, W]);
const DELLA_INIT = k('mg_della_init', [R, R, W]);
const DELLA_STEP = k('mg_della_step', [W]);
const DELLA_RANK = k('mg_della_rank', [R, W]);
const VOTE = k('mg_vote', [R, R, R, R, W, W, W, W]);
const ELECT = k('mg_elect', [R, R, R, R, R, W, W]);
const FINAL = k('mg_final', [R, R, R, R, R, R, W, W]);
const DOTS = k('mg_dots', [R, R, R, W]);
export const REDUCE = k('mg_reduce', [R, W]);
const COEF = k('mg_coef', [R, R, W]);
const LINCOMB = k('mg_lincomb', [R, R, R, W, W, W, W, W]);
const LIN_FINAL = k('mg_lin_final', [R, R, R, R, R, R, W, W]);
const GSCALE = k('rm_gscale', [R, W]);
const CHOL = k('rm_chol', [W, W]);
const SOLVE = k('rm_solve', [R, R, W]);

const OP = { linear: 0, gta: 1, curv: 2, fisher: 3, lin: 4, stats: 5 } as const;
const MASK = { none: 0, thr: 1, dare: 2, della: 3 } as const;
const COEF_OP = { slerp: 0, ms1: 1, ms2: 2, stock: 3 } as const;

/** kernels/merge.wgsl's MgParams, in declaration order. */
interface Mg {
  n: number; rows: number; cols: number; E: number; t: number; op: number; maskMode: number; hasBase: number;
  consensus: number; normalize: number; subBase: number; rowsC: number; stride: number; dareThr: number; key: number;
  loQ: number; epsQ: number; F: number; writeOut: number; hasStats: number; chunks: number; P: number; kk: number;
  jj: number; G: number; sF: number; sG: number; off: number; cnt: number; base0: number; gbase: number;
  items: number; first: number; thrOff: number; band: number; w: number; scale: number; lambda: number; floorv: number; wsumInv: number; dLo: number; dEps: number; eps: number;
  alpha: number; invE: number;
}
const U_KEYS = ['n', 'rows', 'cols', 'E', 't', 'op', 'maskMode', 'hasBase', 'consensus', 'normalize', 'subBase', 'rowsC', 'stride', 'dareThr', 'key',
  'loQ', 'epsQ', 'F', 'writeOut', 'hasStats', 'chunks', 'P', 'kk', 'jj', 'G', 'sF', 'sG', 'off', 'cnt', 'base0', 'gbase',
  'items', 'first', 'thrOff', 'band'] as const;
const F_KEYS = ['w', 'scale', 'lambda', 'floorv', 'wsumInv', 'dLo', 'dEps', 'eps', 'alpha', 'invE'] as const;
const FORMAT = 'u'.repeat(U_KEYS.length) + 'f'.repeat(F_KEYS.length);

/** Where one expert's mask comes from in mg_vote / mg_elect. */
interface MaskCfg {
  mode: number;
  /** MASK_THR: the score select ranked; MASK_DELLA: the ranks. */
  ctl: Tensor | null;
  /** MASK_THR: the small buffer holding the thresholds at `thrOff` (bound as the passes' aux). */
  thr?: Tensor;
  thrOff?: number;
  band?: number;
  dareThr: number;
  key: number;
  scale: number;
  loQ: number;
  epsQ: number;
  dLo: number;
  dEps: number;
  /** DELLA: the row view its ranks use (overrides rows/cols in the passes that read them). */
  view?: { rows: number; cols: number };
}
const NO_MASK: MaskCfg = { mode: MASK.none, ctl: null, dareThr: 0, key: 0, scale: 1, loQ: 0, epsQ: 0, dLo: 0, dEps: 0 };

/**
 * Where a row chunk lies in its tensor, and what the first streaming pass found over the whole tensor
 * (./chunked.ts): a MergeCtx over a chunk records the same passes as over the whole tensor, with hashes, rows,
 * columns and stats partials at their global positions, so every element comes out bit for bit as it would.
 */
export interface ChunkWindow {
  /** Global index of the chunk's first element: a multiple of the span (stats partials line up). */
  base0: number;
  /** Global index of the chunk's first row. */
  row0: number;
  /** The whole tensor's rows (curvature's R index, model_stock's per-row coefficients). */
  rows: number;
  /** The whole tensor's stats partials (G × F of the whole tensor). */
  part: Tensor;
  pre: Prepared;
}

/** Per-tensor quantities found by the first streaming pass (./chunked.ts), used by every chunk's passes. */
export interface Prepared {
  /** Per expert: a trim's thresholds, u32 [4] (lower hi, lo, upper hi, lo), and whether they bound a band. */
  thr?: ({ t: Tensor; band: boolean } | null)[];
  /** The norm-based methods' coefficients (mg_coef's output). */
  coef?: Tensor;
}

export class MergeCtx {
  readonly rt: Runtime;
  readonly n: number;
  readonly E: number;
  readonly rows: number;
  readonly cols: number;
  readonly F: number;
  /** Elements per invocation and per workgroup (ITEMS · WG) of the element-wise passes. */
  readonly items: number;
  readonly span: number;
  /** Workgroups of an element-wise pass over the whole tensor: the stats partials per field. */
  readonly G: number;
  readonly common: Partial<Mg>;
  /** Temporaries, disposed once everything is recorded. */
  readonly temps: Tensor[] = [];
  readonly dummy: Tensor;
  /** A row chunk's first global element and first stats group (0 for a whole tensor). */
  readonly base0: number;
  readonly gbase0: number;
  /** Rows of the tensor this ctx binds: the chunk's (`rows` stays the whole tensor's). */
  readonly localRows: number;

  constructor(readonly method: MergeMethodName, readonly inp: TensorMergeInput, readonly win: ChunkWindow | null = null) {
    this.rt = inp.experts[0].rt;
    this.n = numel(inp.shape);
    this.E = inp.experts.length;
    ({ rows: this.localRows, cols: this.cols } = matrixView(inp.shape));
    this.rows = win ? win.rows : this.localRows;
    this.F = 3 * this.E + 3;
    this.items = spanItems(this.rt);
    this.span = WG * this.items;
    this.G = Math.ceil(this.n / this.span);
    this.base0 = win ? win.base0 : 0;
    if (this.base0 % this.span !== 0) throw new Error(`merge: a row chunk of '${inp.name}' starts at element ${this.base0}, not on a multiple of ${this.span}`);
    this.gbase0 = this.base0 / this.span;
    this.common = {
      n: this.n, rows: this.rows, cols: this.cols, E: this.E, F: this.F, hasBase: inp.base ? 1 : 0, invE: 1 / this.E, eps: NORM_EPS, rowsC: 1, items: this.items,
      base0: this.base0, gbase: this.gbase0,
    };
    this.dummy = this.temp(zeros(this.rt, [4]));
  }

  temp<T extends Tensor>(t: T): T {
    this.temps.push(t);
    return t;
  }

  zerosN(dtype: 'f32' | 'u32' = 'f32', n = this.n): Tensor {
    const t = this.temp(empty(this.rt, [n], dtype));
    fillInPlace(t, 0);
    return t;
  }

  u(o: Partial<Mg>): { values: number[]; format: string } {
    const all = { ...this.common, ...o } as Record<string, number | undefined>;
    return { values: [...U_KEYS.map((k) => all[k] ?? 0), ...F_KEYS.map((k) => all[k] ?? 0)], format: FORMAT };
  }

  run(spec: KernelSpec, bufs: (Tensor | BufferBinding)[], o: Partial<Mg>, groups: number): void {
    this.rt.dispatch(spec, bufs.map((b) => (b instanceof Tensor ? b.binding() : b)), this.u(o), groups);
  }

  /**
   * An element-wise pass over binding-sized chunks of the tensor: `chunked` tensors (n elements each) are bound
   * one chunk at a time, `{ whole }` ones whole (statistics, partials, placeholders). One chunk — the whole
   * tensor, bound by name for the guard — when everything fits. Chunks are multiples of a workgroup's span, so
   * each chunk's workgroups continue the partials' numbering (gbase) and its storage offsets stay 256-byte aligned.
   */
  each(spec: KernelSpec, bufs: (Tensor | { whole: Tensor })[], o: Partial<Mg>): void {
    const step = Math.max(this.span, Math.floor(this.rt.maxBindingBytes / (4 * this.span)) * this.span);
    if (this.n <= step) {
      this.run(spec, bufs.map((b) => (b instanceof Tensor ? b : b.whole)), o, this.G);
      return;
    }
    for (const b of bufs) {
      if (b instanceof Tensor && b.storage.offset % 256 !== 0) {
        throw new Error(
          `merge ${this.method}: tensor '${this.inp.name}' is larger than one GPU binding and is processed in chunks, but ${b.name ?? 'one of its inputs'} starts at byte ${b.storage.offset} of its buffer, not on a 256-byte boundary; load it into its own buffer`,
        );
      }
    }
    for (let s = 0; s < this.n; s += step) {
      const m = Math.min(step, this.n - s);
      const bindings = bufs.map((b) =>
        b instanceof Tensor ? { buffer: b.storage.buffer, offset: b.storage.offset + s * 4, size: m * 4 } : b.whole.binding(),
      );
      this.rt.dispatch(spec, bindings, this.u({ ...o, n: m, base0: this.base0 + s, gbase: this.gbase0 + s / this.span }), Math.ceil(m / this.span));
    }
  }

  get baseT(): Tensor {
    return this.inp.base ?? this.inp.experts[0];
  }

  dispose(): void {
    for (const t of this.temps) t.dispose();
  }
}

function param(c: MergeCtx, name: string, t?: number, fallback?: number): number {
  return numParam(c.method, name, t === undefined ? undefined : c.inp.perModel[t], c.inp.global, fallback);
}

/** An accumulator, or the placeholder bound where a method does not use one. */
type Acc = Tensor | { whole: Tensor };

interface Accs {
  acc0: Tensor;
  acc1: Acc;
  acc2: Acc;
  mean: Acc;
  flags: Acc;
}

/**
 * Per-element accumulators, only those the method reads (each is as large as the tensor): acc0 always; the
 * numerator and denominator (acc1, acc2) for a sign election or a weighted mean (`num`), acc1 alone for the
 * norm-based combination; the mean without a base, the sign flags with one. Not cleared: the first expert's
 * pass writes them (uniform `first`), the later ones add.
 */
function accs(c: MergeCtx, need: { num?: boolean; acc1?: boolean } = {}): Accs {
  const f32 = () => c.temp(empty(c.rt, [c.n]));
  // Its own placeholder: a pass binds it writable, which WebGPU forbids beside a read of the same buffer (dummy).
  const none = { whole: c.temp(zeros(c.rt, [4])) };
  const hasBase = !!c.inp.base;
  return {
    acc0: f32(),
    acc1: need.num || need.acc1 ? f32() : none,
    acc2: need.num ? f32() : none,
    mean: hasBase ? none : f32(),
    flags: hasBase ? c.temp(empty(c.rt, [c.n], 'u32')) : none,
  };
}

/** A whole-tensor binding of an accumulator (the passes that are not chunked). */
const whole = (a: Acc): Tensor => (a instanceof Tensor ? a : a.whole);

function weightSum(c: MergeCtx): number {
  return c.inp.perModel.reduce((s, _, t) => s + param(c, 'weight', t, 1), 0);
}

function ctlOf(c: MergeCtx, mask: MaskCfg): Tensor | { whole: Tensor } {
  return mask.ctl ?? { whole: c.dummy };
}

/** aux: curvature statistics (bound whole; they may carry the mask's thresholds too), else the thresholds. */
function vote(c: MergeCtx, a: Accs, part: Tensor, t: number, op: number, mask: MaskCfg, aux: Tensor | null, extra: Partial<Mg> = {}): void {
  c.each(VOTE, [c.baseT, c.inp.experts[t], { whole: aux ?? mask.thr ?? c.dummy }, ctlOf(c, mask), a.acc0, a.mean, a.flags, { whole: part }], {
    ...maskUniforms(mask), ...extra, t, op, w: param(c, 'weight', t, 1), first: t === 0 ? 1 : 0,
  });
}

/** aux: as vote's or, with `auxPerElement`, Fisher's dense tensor (chunked). */
function elect(c: MergeCtx, a: Accs, t: number, op: number, mask: MaskCfg, aux: Tensor | null, extra: Partial<Mg> = {}, auxPerElement = false): void {
  const auxB = aux && auxPerElement ? aux : { whole: aux ?? mask.thr ?? c.dummy };
  c.each(ELECT, [c.baseT, c.inp.experts[t], auxB, ctlOf(c, mask), a.acc0, a.acc1, a.acc2], {
    ...maskUniforms(mask), ...extra, t, op, w: param(c, 'weight', t, 1), first: t === 0 ? 1 : 0,
  });
}

function final(c: MergeCtx, a: Accs, out: Tensor, part: Tensor, o: Partial<Mg>): void {
  c.each(FINAL, [c.baseT, a.acc0, a.acc1, a.acc2, a.mean, a.flags, out, { whole: part }], { writeOut: 1, ...o });
}

function maskUniforms(m: MaskCfg): Partial<Mg> {
  return { maskMode: m.mode, dareThr: m.dareThr, key: m.key, scale: m.scale, loQ: m.loQ, epsQ: m.epsQ, dLo: m.dLo, dEps: m.dEps, thrOff: m.thrOff ?? 0, band: m.band ?? 0, ...(m.view ?? {}) };
}

/**
 * Copies the select's thresholds (key words 0 and 1 of each) into `into` at word `off`: [lower hi, lo, upper hi,
 * lo]; the passes compare each entry's score key with them (MASK_THR), so no mask buffer is made.
 */
function placeThresholds(c: MergeCtx, into: Tensor, off: number, lower: TopKThreshold, upper: TopKThreshold | null): void {
  if (!lower.abs || (upper && !upper.abs)) throw new Error('merge: top-k trims rank by magnitude (abs mode)');
  const at = (w: number) => ({ buffer: into.storage.buffer, offset: into.storage.offset + 4 * (off + w), size: 8 });
  c.rt.copy(lower.key.range(), at(0), 8);
  if (upper) c.rt.copy(upper.key.range(), at(2), 8);
  lower.key.dispose();
  upper?.key.dispose();
}

// ---- the task-arithmetic family ----------------------------------------------------------------------------

export function gta(c: MergeCtx, out: Tensor, part: Tensor): Flag[] {
  const cfg = GTA_METHODS[c.method]!;
  const a = accs(c, { num: cfg.consensus });
  const masks = c.inp.experts.map((_, t) => expertMask(c, cfg.mask, t));
  masks.forEach((mask, t) => vote(c, a, part, t, OP.gta, mask, null));
  if (cfg.consensus) masks.forEach((mask, t) => elect(c, a, t, OP.gta, mask, null));
  const normalize = boolParam(c.method, 'normalize', c.inp.global);
  const ws = weightSum(c);
  final(c, a, out, part, {
    op: OP.gta,
    consensus: cfg.consensus ? 1 : 0,
    normalize: normalize ? 1 : 0,
    wsumInv: normalize && !cfg.consensus ? 1 / (Math.abs(ws) < 1e-8 ? 1 : ws) : 1,
    lambda: param(c, 'lambda', undefined, 1),
  });
  return [];
}

/**
 * The ranks (by |score|, of n elements) at which expert t's trim keeps: the top `lower`, minus the top `upper` for a
 * breadcrumbs band (null: no upper edge); null when the expert is not trimmed (density 1). The whole-tensor passes
 * and the chunked first pass select at the same ranks.
 */
function trimRanks(c: MergeCtx, t: number, n: number): { lower: number; upper: number | null } | null {
  const curv = c.method === 'curvature';
  const density = curv ? param(c, 'density', t) : param(c, 'density', t, 1);
  if (density >= 1) return null;
  if (curv || GTA_METHODS[c.method]!.mask === 'topk') return { lower: trimCount(density, n), upper: null };
  const b = breadcrumbsBand(density, param(c, 'gamma', t), n);
  return { lower: b.nTop + b.keep, upper: b.nTop > 0 ? b.nTop : null };
}

/** The top-k / band thresholds of expert t from its whole score `tau` (n elements): u32 [4], not a temp. */
function gtaThresholds(c: MergeCtx, tau: Tensor, t: number, n: number): { t: Tensor; band: boolean } {
  const r = trimRanks(c, t, n)!;
  const lower = kthLargest(tau, r.lower, { abs: true });
  const upper = r.upper === null ? null : kthLargest(tau, r.upper, { abs: true });
  const thr = empty(c.rt, [4], 'u32');
  placeThresholds(c, thr, 0, lower, upper);
  return { t: thr, band: !!upper };
}

function expertMask(c: MergeCtx, kind: string, t: number): MaskCfg {
  const density = param(c, 'density', t, 1);
  if (kind === 'none' || density >= 1) return NO_MASK;
  const seed = () => param(c, 'seed', undefined, 0);
  switch (kind) {
    case 'topk':
    case 'band': {
      const tau = c.temp(empty(c.rt, [c.n]));
      c.each(SCORE, [c.baseT, c.inp.experts[t], { whole: c.dummy }, tau], { op: OP.gta });
      // A row chunk: the thresholds the first pass found over the whole tensor's scores.
      const pre = c.win ? c.win.pre.thr?.[t] : null;
      if (c.win && !pre) throw new Error(`merge ${c.method}: tensor '${c.inp.name}': no thresholds for model ${t} from the first pass`);
      const { t: thr, band } = pre ?? gtaThresholds(c, tau, t, c.n);
      if (!pre) c.temps.push(thr);
      return { ...NO_MASK, mode: MASK.thr, ctl: tau, thr, thrOff: 0, band: band ? 1 : 0 };
    }
    case 'bernoulli': {
      const rescale = boolParam(c.method, 'rescale', c.inp.global);
      return { ...NO_MASK, mode: MASK.dare, dareThr: dareThreshold(density), key: dropKey(seed(), c.inp.name, t), scale: rescale ? Math.fround(1 / density) : 1 };
    }
    case 'della': {
      const eps = param(c, 'epsilon', t);
      if (density - eps / 2 < 0 || density + eps / 2 > 1) {
        throw new RangeError(
          `merge della: tensor '${c.inp.name}', model ${t}: density ± epsilon/2 = [${density - eps / 2}, ${density + eps / 2}] must stay within [0, 1] (keep probabilities); lower epsilon or move density`,
        );
      }
      const k = dellaConstants(density, eps);
      const view = dellaView(c.inp.shape);
      return { mode: MASK.della, ctl: dellaRanks(c, t, view), dareThr: 0, key: dropKey(seed(), c.inp.name, t), scale: 1, loQ: k.loQ, epsQ: k.epsQ, dLo: k.lo, dEps: eps, view };
    }
  }
  throw new Error(`merge: unknown mask kind ${kind}`);
}

/** Rank of each |τ| within its row (0 = smallest; ties by column), by a bitonic sort of padded rows. */
function dellaRanks(c: MergeCtx, t: number, view: { rows: number; cols: number }): Tensor {
  let P = 1;
  while (P < view.cols) P *= 2;
  const total = view.rows * P;
  const pairs = c.temp(empty(c.rt, [2 * total], 'u32'));
  const rank = c.temp(empty(c.rt, [c.n], 'u32'));
  const groups = Math.ceil(total / WG);
  c.run(DELLA_INIT, [c.baseT, c.inp.experts[t], pairs], { P, ...view }, groups);
  for (let kk = 2; kk <= P; kk *= 2) for (let jj = kk / 2; jj >= 1; jj /= 2) c.run(DELLA_STEP, [pairs], { P, kk, jj, ...view }, groups);
  c.run(DELLA_RANK, [pairs, rank], { P, ...view }, groups);
  return rank;
}

// ---- curvature ------------------------------------------------------------------------------------------------

/** [R, C, ΣR, 4 words for a trim's thresholds] of expert t in one small buffer (null without statistics). */
function curvatureAux(c: MergeCtx, t: number): Tensor | null {
  const st = c.inp.curvature?.[t] ?? null;
  if (!st) return null;
  const what = `merge curvature: tensor '${c.inp.name}', model ${t}`;
  if (st.row.size !== c.rows || st.col.size !== c.cols) {
    throw new ShapeError(`${what}: statistics R ${fmtShape(st.row.shape)} and C ${fmtShape(st.col.shape)} do not match the tensor viewed as [${c.rows}, ${c.cols}] (from ${fmtShape(c.inp.shape)})`);
  }
  const aux = c.temp(empty(c.rt, [c.rows + c.cols + 1 + 4]));
  c.rt.copy(st.row.range(), { buffer: aux.storage.buffer, offset: aux.storage.offset, size: c.rows * 4 }, c.rows * 4);
  c.rt.copy(st.col.range(), { buffer: aux.storage.buffer, offset: aux.storage.offset + c.rows * 4, size: c.cols * 4 }, c.cols * 4);
  c.run(REDUCE, [st.row, aux], { G: c.rows, sF: 0, sG: 1, off: c.rows + c.cols, cnt: 1 }, 1);
  return aux;
}

export function curvature(c: MergeCtx, out: Tensor, part: Tensor): Flag[] {
  const a = accs(c, { num: true });
  const per = c.inp.experts.map((_, t) => {
    const aux = curvatureAux(c, t);
    const density = param(c, 'density', t);
    let mask = NO_MASK;
    if (density < 1) {
      const score = c.temp(empty(c.rt, [c.n]));
      c.each(SCORE, [c.baseT, c.inp.experts[t], { whole: aux ?? c.dummy }, score], { op: OP.curv, hasStats: aux ? 1 : 0 });
      // The thresholds ride in the statistics' buffer, or in their own without statistics.
      const thr = aux ?? c.temp(empty(c.rt, [4], 'u32'));
      const thrOff = aux ? c.rows + c.cols + 1 : 0;
      if (c.win) {
        // A row chunk: the threshold the first pass found over the whole tensor's scores.
        const pre = c.win.pre.thr?.[t];
        if (!pre) throw new Error(`merge curvature: tensor '${c.inp.name}': no threshold for model ${t} from the first pass`);
        c.rt.copy(pre.t.range(), { buffer: thr.storage.buffer, offset: thr.storage.offset + 4 * thrOff, size: 8 }, 8);
      } else {
        placeThresholds(c, thr, thrOff, kthLargest(score, trimRanks(c, t, c.n)!.lower, { abs: true }), null);
      }
      mask = { ...NO_MASK, mode: MASK.thr, ctl: score, thr, thrOff };
    }
    return { aux, mask };
  });
  per.forEach(({ aux, mask }, t) => vote(c, a, part, t, OP.curv, mask, aux, { hasStats: aux ? 1 : 0 }));
  per.forEach(({ aux, mask }, t) => elect(c, a, t, OP.curv, mask, aux, { hasStats: aux ? 1 : 0 }));
  final(c, a, out, part, { op: OP.curv, lambda: param(c, 'lambda', undefined, 1) });
  return [];
}

// ---- averages ---------------------------------------------------------------------------------------------------

export function weightedAverage(c: MergeCtx, out: Tensor, part: Tensor, normalize: boolean): Flag[] {
  const a = accs(c);
  const ws = weightSum(c);
  if (normalize && Math.abs(ws) < 1e-8) throw new Error(`merge ${c.method}: the weights of tensor '${c.inp.name}' sum to 0`);
  c.inp.experts.forEach((_, t) => vote(c, a, part, t, OP.linear, NO_MASK, null));
  final(c, a, out, part, { op: OP.linear, wsumInv: normalize ? 1 / ws : 1 });
  return [];
}

export function fisher(c: MergeCtx, out: Tensor, part: Tensor): Flag[] {
  const f = c.inp.fisher;
  if (!f || f.length !== c.E) throw new Error(`merge fisher: tensor '${c.inp.name}' needs one Fisher tensor per expert (${f?.length ?? 0} for ${c.E})`);
  const a = accs(c, { num: true });
  const floorv = param(c, 'floor');
  c.inp.experts.forEach((_, t) => vote(c, a, part, t, OP.fisher, NO_MASK, null));
  c.inp.experts.forEach((_, t) => elect(c, a, t, OP.fisher, NO_MASK, f[t], { floorv }, true));
  final(c, a, out, part, { op: OP.fisher });
  return [];
}

// ---- RegMean -----------------------------------------------------------------------------------------------------

export function regmean(c: MergeCtx, out: Tensor, part: Tensor): Flag[] {
  const [rows, cols] = c.inp.shape;
  const gram = c.inp.gram!;
  if (gram.length !== c.E) throw new Error(`merge regmean: tensor '${c.inp.name}' needs one Gram matrix per expert (${gram.length} for ${c.E})`);
  gram.forEach((g, t) => {
    if (g.size !== cols * cols) throw new ShapeError(`merge regmean: the Gram matrix of model ${t} for '${c.inp.name}' is ${fmtShape(g.shape)}, [${cols}, ${cols}] expected for a weight ${fmtShape(c.inp.shape)}`);
  });
  const alpha = param(c, 'alpha');
  const A = c.temp(zeros(c.rt, [cols, cols]));
  const B = c.temp(zeros(c.rt, [rows, cols]));
  const gs = c.temp(empty(c.rt, [cols, cols]));
  c.inp.experts.forEach((x, t) => {
    c.run(GSCALE, [gram[t], gs], { n: cols * cols, cols, w: param(c, 'weight', t, 1), alpha }, Math.ceil((cols * cols) / WG));
    axpbyInPlace(A, gs, 1, 1);
    const xg = c.temp(matmul(c.temp(x.reshape([rows, cols])), gs));
    axpbyInPlace(B, xg, 1, 1);
  });
  const status = keep(empty(c.rt, [4], 'u32'));
  fillInPlace(status, 0);
  c.run(CHOL, [A, status], { cols, eps: REGMEAN_JITTER }, 1);
  c.run(SOLVE, [A, B, out], { rows, cols }, Math.ceil(rows / WG));
  // The averaging pass only feeds the stats (the mean for deltaNorm, non-finite checks).
  const a = accs(c);
  c.inp.experts.forEach((_, t) => vote(c, a, part, t, OP.linear, NO_MASK, null));
  final(c, a, out, part, { op: OP.stats, writeOut: 0 });
  return [{ t: status, index: 0, message: (v) => `merge regmean: tensor '${c.inp.name}': Σ G is not positive definite (pivot ${v - 1}); check the Gram matrices` }];
}

// ---- slerp, multislerp, model_stock: θ* = c_base·θ₀ + c_acc·Σ c_t (θ_t − θ₀) ---------------------------------

export function normBased(c: MergeCtx, out: Tensor, part: Tensor): Flag[] {
  const { method, inp, E } = c;
  const hasBase = !!inp.base;
  const a = accs(c, { acc1: true });
  let rowsC = 1;
  let dotRows = 1;
  let dotCols = c.n;
  if (method === 'model_stock' && boolParam(method, 'filter_wise', inp.global) && inp.shape.length >= 2) {
    rowsC = dotRows = c.rows;
    dotCols = c.cols;
  }
  if (method === 'slerp' && E !== 1) throw new Error(`merge slerp: tensor '${inp.name}' needs exactly one model besides the base, got ${E}`);
  if (method === 'model_stock' && E < 2) throw new Error(`merge model_stock: tensor '${inp.name}' needs at least two models besides the base, got ${E}`);
  const stride = 3 + 2 * E;
  // Each expert's weight (1 where the method has none): multislerp's combination, and every method's sign vote
  // (an expert of weight 0 takes no part in the conflicts).
  const w = inp.perModel.map((_, t) => param(c, 'weight', t, 1));
  if (c.win) {
    // A row chunk: the coefficients came from the first pass (dots over all chunks); only the combination here.
    const pre = c.win.pre.coef;
    if (!pre) throw new Error(`merge ${method}: tensor '${inp.name}': no coefficients from the first pass`);
    const sb = method === 'slerp' || (method === 'multislerp' && E === 1) ? 0 : method === 'multislerp' ? (hasBase ? 1 : 0) : 1;
    inp.experts.forEach((x, t) => c.run(LINCOMB, [c.baseT, x, pre, a.acc0, whole(a.acc1), whole(a.mean), whole(a.flags), part], { t, subBase: sb, stride, rowsC, w: w[t], first: t === 0 ? 1 : 0 }, c.G));
    c.run(LIN_FINAL, [c.baseT, a.acc0, whole(a.acc1), pre, whole(a.mean), whole(a.flags), out, part], { stride, rowsC }, c.G);
    return [];
  }
  const coef = keep(empty(c.rt, [rowsC * stride + 1]));
  fillInPlace(coef, 0);
  const nSums = method === 'model_stock' ? ((E * (E + 1)) / 2) * rowsC : E + 2;
  const sums = c.temp(zeros(c.rt, [Math.max(4, nSums)]));
  const dots = (x: Tensor, y: Tensor, subBase: number, off: number) => {
    const chunks = Math.ceil(dotCols / WG);
    const dp = c.temp(empty(c.rt, [dotRows * chunks]));
    c.run(DOTS, [c.baseT, x, y, dp], { rows: dotRows, cols: dotCols, subBase, chunks }, dotRows * chunks);
    c.run(REDUCE, [dp, sums], { G: chunks, sF: chunks, sG: 1, off, cnt: dotRows }, dotRows);
  };
  let subBase = 0;
  const flags: Flag[] = [];
  if (method === 'slerp') {
    dots(c.baseT, c.baseT, 0, 0);
    dots(inp.experts[0], inp.experts[0], 0, 1);
    dots(c.baseT, inp.experts[0], 0, 2);
    c.run(COEF, [sums, c.dummy, coef], { op: COEF_OP.slerp, stride, w: param(c, 't') }, 1);
  } else if (method === 'multislerp') {
    if (E === 1) {
      // A single model is returned as it is (mergekit does the same).
      c.rt.write(coef.range(), new Float32Array([0, 1, 0, 1, 0]));
    } else {
      subBase = hasBase ? 1 : 0;
      const wsum = w.reduce((s, v) => s + v, 0);
      const ww = boolParam(method, 'normalize_weights', inp.global) ? w.map((v) => v / wsum) : w;
      const wts = c.temp(fromArray(c.rt, ww, [E]));
      const eps = param(c, 'eps');
      inp.experts.forEach((x, t) => dots(x, x, subBase, t));
      c.run(COEF, [sums, wts, coef], { op: COEF_OP.ms1, stride, eps }, 1);
      inp.experts.forEach((x, t) => c.run(LINCOMB, [c.baseT, x, coef, a.acc0, whole(a.acc1), whole(a.mean), whole(a.flags), part], { t, subBase, stride, w: w[t], first: t === 0 ? 1 : 0 }, c.G));
      dots(a.acc0, a.acc0, 0, E);
      c.run(COEF, [sums, wts, coef], { op: COEF_OP.ms2, stride, eps }, 1);
      flags.push({ t: coef, index: stride, message: () => `merge multislerp: tensor '${inp.name}': the weighted sum of the unit task vectors is zero (antipodal models with balancing weights); change the weights` });
      c.run(LIN_FINAL, [c.baseT, a.acc0, whole(a.acc1), coef, whole(a.mean), whole(a.flags), out, part], { stride }, c.G);
      return flags;
    }
  } else {
    subBase = 1;
    let q = 0;
    for (let i = 0; i < E; i++) for (let j = i; j < E; j++, q++) dots(inp.experts[i], inp.experts[j], 1, q * rowsC);
    c.run(COEF, [sums, c.dummy, coef], { op: COEF_OP.stock, stride, rowsC }, Math.ceil(rowsC / WG));
  }
  inp.experts.forEach((x, t) => c.run(LINCOMB, [c.baseT, x, coef, a.acc0, whole(a.acc1), whole(a.mean), whole(a.flags), part], { t, subBase, stride, rowsC, w: w[t], first: t === 0 ? 1 : 0 }, c.G));
  c.run(LIN_FINAL, [c.baseT, a.acc0, whole(a.acc1), coef, whole(a.mean), whole(a.flags), out, part], { stride, rowsC }, c.G);
  // Nothing to check in the coefficients: the entry only releases them after the stats are read.
  flags.push({ t: coef, index: -1, message: () => '' });
  return flags;
}

// ---- row chunks: the first streaming pass (./chunked.ts) -------------------------------------------------------

/**
 * Visits a tensor's row chunks in order (with `within`, ranges of element indices: only the chunks overlapping
 * them): loads the inputs asked for (the others are bound to placeholders that no pass reads), calls `visit` with
 * a MergeCtx over the chunk, records and frees them.
 */
export type ChunkVisitor = (
  need: { base: boolean; experts: readonly number[]; within?: readonly (readonly [number, number])[] },
  visit: (c: MergeCtx) => void,
) => Promise<void>;

/** Whether a method needs the first pass (per-tensor quantities) before its chunks can be merged. */
export function needsPrepare(method: MergeMethodName, inp: { perModel: ParamValues[]; global: ParamValues }): boolean {
  const cfg = GTA_METHODS[method];
  if (cfg) return (cfg.mask === 'topk' || cfg.mask === 'band') && inp.perModel.some((_, t) => numParam(method, 'density', inp.perModel[t], inp.global, 1) < 1);
  if (method === 'curvature') return inp.perModel.some((_, t) => numParam(method, 'density', inp.perModel[t], inp.global) < 1);
  return method === 'slerp' || method === 'multislerp' || method === 'model_stock';
}

type ParamValues = Record<string, number | boolean>;

/**
 * The per-tensor quantities of a chunked merge, found by streaming the chunks (`w`: a ctx with the whole
 * tensor's facts, its inputs placeholders; `part`: the whole stats partials, which multislerp's second pass
 * fills as its apply pass will again). The same kernels and the same partial layouts as the whole-tensor path,
 * so the results are bit-identical: a trim's thresholds come from the radix select's histograms and block
 * counts accumulated over the chunks' scores (ops/select.ts kthLargestStreamed: 4 sweeps plus the chunks holding
 * the thresholds, for all the experts' thresholds at once, each re-reading the base and the trimmed experts and
 * recomputing their scores), the dots' partials land in whole (small: n/256 floats) partial buffers
 * reduced once as the whole path reduces them.
 * Returns the quantities and the flags to check with the stats (the caller disposes both).
 */
export async function prepareChunked(w: MergeCtx, part: Tensor, visit: ChunkVisitor): Promise<{ pre: Prepared; flags: Flag[] }> {
  const { method, inp, E, rt, n } = w;
  const pre: Prepared = {};
  const flags: Flag[] = [];
  const cfg = GTA_METHODS[method];
  if ((cfg && (cfg.mask === 'topk' || cfg.mask === 'band')) || method === 'curvature') {
    const curv = method === 'curvature';
    // Every threshold of every trimmed expert from the same sweeps (a band's two as well): one sweep reads the
    // base and each trimmed expert once, whatever the number of thresholds.
    const selects: StreamedSelect[] = [];
    const slots: { lower: number; upper: number | null }[] = [];
    for (let t = 0; t < E; t++) {
      const r = trimRanks(w, t, n);
      if (!r) continue;
      const at = selects.length;
      selects.push({ k: r.lower, abs: true, source: t });
      if (r.upper !== null) selects.push({ k: r.upper, abs: true, source: t });
      slots[t] = { lower: at, upper: r.upper === null ? null : at + 1 };
    }
    const trimmed = slots.flatMap((x, t) => (x ? [t] : []));
    // The scores are recomputed per chunk for every sweep (inputs re-read: the page cache holds them), so no
    // whole score is ever held: memory stays at a chunk of the base and the trimmed experts (fewer operands than
    // the apply pass holds). One score buffer serves each expert in turn (the work is recorded in order).
    const sweep: SelectSweep = (v, within) =>
      visit({ base: true, experts: trimmed, within }, (cc) => {
        const tau = cc.temp(empty(cc.rt, [cc.n]));
        for (const t of trimmed) {
          const aux = curv ? curvatureAux(cc, t) : null;
          cc.each(SCORE, [cc.baseT, cc.inp.experts[t], { whole: aux ?? cc.dummy }, tau], curv ? { op: OP.curv, hasStats: aux ? 1 : 0 } : { op: OP.gta });
          v(t, tau, cc.base0);
        }
      });
    const found = await kthLargestStreamed(rt, n, selects, sweep);
    pre.thr = [];
    try {
      for (let t = 0; t < E; t++) {
        const slot = slots[t];
        if (!slot) {
          pre.thr.push(null);
          continue;
        }
        const thr = empty(rt, [4], 'u32');
        pre.thr.push({ t: thr, band: slot.upper !== null });
        placeThresholds(w, thr, 0, found[slot.lower], slot.upper === null ? null : found[slot.upper]);
      }
    } catch (e) {
      for (const x of pre.thr) x?.t.dispose();
      for (const f of found) f.key.dispose(); // idempotent: placeThresholds disposed the ones it took
      throw e;
    }
    return { pre, flags };
  }
  if (method !== 'slerp' && method !== 'multislerp' && method !== 'model_stock') return { pre, flags };

  const hasBase = !!inp.base;
  if (method === 'slerp' && E !== 1) throw new Error(`merge slerp: tensor '${inp.name}' needs exactly one model besides the base, got ${E}`);
  if (method === 'model_stock' && E < 2) throw new Error(`merge model_stock: tensor '${inp.name}' needs at least two models besides the base, got ${E}`);
  const filterWise = method === 'model_stock' && boolParam(method, 'filter_wise', inp.global) && inp.shape.length >= 2;
  const rowsC = filterWise ? w.rows : 1;
  const dotRows = rowsC;
  const dotCols = filterWise ? w.cols : n;
  const chunksW = Math.ceil(dotCols / WG);
  const stride = 3 + 2 * E;
  const coef = keep(empty(rt, [rowsC * stride + 1]));
  fillInPlace(coef, 0);
  pre.coef = coef;
  const nSums = method === 'model_stock' ? ((E * (E + 1)) / 2) * rowsC : E + 2;
  const sums = w.temp(zeros(rt, [Math.max(4, nSums)]));
  // Per sums slot: the whole tensor's dot partials (dotRows × ⌈dotCols/WG⌉ floats), each chunk writing its own.
  const dps = new Map<number, Tensor>();
  const dots = (cc: MergeCtx, x: Tensor, y: Tensor, subBase: number, off: number) => {
    let dp = dps.get(off);
    if (!dp) dps.set(off, (dp = w.temp(empty(rt, [dotRows * chunksW]))));
    const rows = filterWise ? cc.localRows : 1;
    const cols = filterWise ? cc.cols : cc.n;
    const chunks = filterWise ? chunksW : Math.ceil(cc.n / WG);
    // Chunks start on a multiple of the span (a multiple of WG): column blocks line up with the whole tensor's.
    const partOff = filterWise ? (cc.base0 / cc.cols) * chunksW : cc.base0 / WG;
    cc.run(DOTS, [cc.baseT, x, y, dp], { rows, cols, subBase, chunks, off: partOff }, rows * chunks);
  };
  const reduceDots = () => {
    for (const [off, dp] of dps) w.run(REDUCE, [dp, sums], { G: chunksW, sF: chunksW, sG: 1, off, cnt: dotRows }, dotRows);
  };
  try {
    if (method === 'slerp') {
      await visit({ base: true, experts: [0] }, (cc) => {
        dots(cc, cc.baseT, cc.baseT, 0, 0);
        dots(cc, cc.inp.experts[0], cc.inp.experts[0], 0, 1);
        dots(cc, cc.baseT, cc.inp.experts[0], 0, 2);
      });
      reduceDots();
      w.run(COEF, [sums, w.dummy, coef], { op: COEF_OP.slerp, stride, w: param(w, 't') }, 1);
    } else if (method === 'multislerp') {
      if (E === 1) rt.write(coef.range(), new Float32Array([0, 1, 0, 1, 0]));
      else {
        const subBase = hasBase ? 1 : 0;
        const wv = inp.perModel.map((_, t) => param(w, 'weight', t, 1));
        const wsum = wv.reduce((s, v) => s + v, 0);
        const ww = boolParam(method, 'normalize_weights', inp.global) ? wv.map((v) => v / wsum) : wv;
        const wts = w.temp(fromArray(rt, ww, [E]));
        const eps = param(w, 'eps');
        const all = inp.experts.map((_, t) => t);
        await visit({ base: hasBase, experts: all }, (cc) => cc.inp.experts.forEach((x, t) => dots(cc, x, x, subBase, t)));
        reduceDots();
        w.run(COEF, [sums, wts, coef], { op: COEF_OP.ms1, stride, eps }, 1);
        dps.clear();
        // ‖Σ c_t u_t‖: the combination per chunk (its stats partials too, rewritten alike by the apply pass).
        await visit({ base: hasBase, experts: all }, (cc) => {
          const a = accs(cc, { acc1: true });
          cc.inp.experts.forEach((x, t) => cc.run(LINCOMB, [cc.baseT, x, coef, a.acc0, whole(a.acc1), whole(a.mean), whole(a.flags), part], { t, subBase, stride, w: wv[t], first: t === 0 ? 1 : 0 }, cc.G));
          dots(cc, a.acc0, a.acc0, 0, E);
        });
        reduceDots();
        w.run(COEF, [sums, wts, coef], { op: COEF_OP.ms2, stride, eps }, 1);
        flags.push({ t: coef, index: stride, message: () => `merge multislerp: tensor '${inp.name}': the weighted sum of the unit task vectors is zero (antipodal models with balancing weights); change the weights` });
      }
    } else {
      await visit({ base: true, experts: inp.experts.map((_, t) => t) }, (cc) => {
        let q = 0;
        for (let i = 0; i < E; i++) for (let j = i; j < E; j++, q++) dots(cc, cc.inp.experts[i], cc.inp.experts[j], 1, q * rowsC);
      });
      reduceDots();
      w.run(COEF, [sums, w.dummy, coef], { op: COEF_OP.stock, stride, rowsC }, Math.ceil(rowsC / WG));
    }
  } catch (e) {
    coef.dispose();
    throw e;
  }
  return { pre, flags };
}
