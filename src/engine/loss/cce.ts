// Cut Cross-Entropy (CCE, arXiv 2411.09009): cross-entropy over every item of the logits X·Eᵀ + b, computed tile
// by tile so that the [rows, V] logits are never written. Forward: cce_partial writes one (max, Σexp) per (token,
// item split), cce_finish merges them into each token's LSE and loss, cross_entropy.wgsl's ce_reduce takes the
// mean over counted rows. Backward: cce_dx (token blocks walking the items) and cce_de (item blocks walking the
// tokens) recompute each tile's softmax − onehot; no float atomics, deterministic. Kernels: kernels/cce.wgsl.
//
// Memory: the forward keeps the LSE per token and rows × splits partials (splits ≤ 64), so an N × V problem needs
// O(N + V·d) bytes beyond its inputs and gradients instead of CE's N·V logits (and their gradient).
//
// Item tables above one storage binding are processed one row range at a time (E and dE may be cut differently:
// a parameter's gradient is a view into the flat gradient buffer at its own offset, so the ranges of both are
// intersected). A leaf table's gradient is written straight into its `grad` (leafGradSink), like the embedding's.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { leafGradSink, record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape, fromArray, rowRanges, type RowRange } from '../tensor/tensor';
import { fillInPlace } from '../ops/basic';
import type { LossFn } from './loss';

const TB = 16; // tokens per tile (kernels/cce.wgsl)
const TI = 64; // items per tile
const MAX_SPLITS = 64;
/** Workgroups the forward aims for: splits are added until token blocks × splits reach it. */
const TARGET_GROUPS = 256;

const PARTIAL: KernelSpec = { file: 'cce', entry: 'cce_partial', bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'] };
const FINISH: KernelSpec = { file: 'cce', entry: 'cce_finish', bindings: ['read', 'read', 'read', 'rw', 'rw'] };
const DX_BINDINGS = ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'rw'] as const;

/**
 * Columns per backward pass: the accumulators ([64, DC] floats) and the G tile (4 KiB) must fit the device's
 * workgroup memory; at most 128 columns (and no more than d needs). d above it costs extra passes, each
 * recomputing the logits.
 */
function columnsPerPass(limitBytes: number, d: number): number {
  const fit = Math.floor((limitBytes - 4096 - 64) / 256 / 4) * 4;
  return Math.max(4, Math.min(128, fit, Math.ceil(d / 4) * 4));
}
const REDUCE: KernelSpec = { file: 'cross_entropy', entry: 'ce_reduce', bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: 64 } };

export interface CceOptions {
  /** Backward skips tiles whose probabilities are all below this (and that hold no target); 0 = off (exact). */
  gradFilter?: number;
}

/** Items [a, b) bound through one range of E and one range of the output (dE), or of E alone. */
export interface ItemSpan {
  a: number;
  b: number;
  e: RowRange;
  o?: RowRange;
}

/** The common refinement of two cuttings of [0, V) into row ranges. */
export function itemSpans(e: RowRange[], o?: RowRange[]): ItemSpan[] {
  if (!o) return e.filter((r) => r.r1 > r.r0).map((r) => ({ a: r.r0, b: r.r1, e: r }));
  const out: ItemSpan[] = [];
  let i = 0;
  let j = 0;
  while (i < e.length && j < o.length) {
    const a = Math.max(e[i].r0, o[j].r0);
    const b = Math.min(e[i].r1, o[j].r1);
    if (b > a) out.push({ a, b, e: e[i], o: o[j] });
    if (e[i].r1 <= o[j].r1) i++;
    else j++;
  }
  return out;
}

/** Validates hidden [rows, d], weight [V, d], bias [V] | null, targets i32 [rows]; returns (rows, V, d). */
export function checkHeadShapes(where: string, hidden: Tensor, weight: Tensor, bias: Tensor | null, targets: Tensor): { rows: number; v: number; d: number } {
  if (hidden.dtype !== 'f32' || hidden.rank !== 2) throw new ShapeError(`${where}: hidden must be f32 [rows, d], got ${hidden.dtype} ${fmtShape(hidden.shape)}`);
  if (weight.dtype !== 'f32' || weight.rank !== 2) throw new ShapeError(`${where}: the head's weight must be f32 [items, d], got ${weight.dtype} ${fmtShape(weight.shape)}`);
  const [rows, d] = hidden.shape;
  const [v, dw] = weight.shape;
  if (dw !== d) throw new ShapeError(`${where}: hidden ${fmtShape(hidden.shape)} and the head's weight ${fmtShape(weight.shape)} disagree on d`);
  if (v < 1) throw new ShapeError(`${where}: the head's weight ${fmtShape(weight.shape)} has no items`);
  if (d < 1) throw new ShapeError(`${where}: hidden ${fmtShape(hidden.shape)} has d = 0`);
  if (bias && (bias.dtype !== 'f32' || bias.size !== v)) throw new ShapeError(`${where}: bias ${fmtShape(bias.shape)} does not match the weight ${fmtShape(weight.shape)} (${v} items)`);
  if (targets.dtype !== 'i32') throw new TypeError(`${where}: targets must be i32, got ${targets.dtype} ${fmtShape(targets.shape)}`);
  if (targets.size !== rows) throw new ShapeError(`${where}: targets ${fmtShape(targets.shape)} do not match hidden ${fmtShape(hidden.shape)} (${rows} rows)`);
  return { rows, v, d };
}

/** The binding of a row range relative to item `a`: (r0, lead) for the kernels' `lead + (i − r0)·d`. */
function rangeUniforms(r: RowRange | undefined): [number, number] {
  return r ? [r.r0, r.lead] : [0, 0];
}

/**
 * CCE loss (mean over rows whose target is in [0, V); −1 = padding) of hidden [rows, d] against the item table
 * weight [V, d] and bias [V] | null: equal to crossEntropy(hidden·weightᵀ + bias, targets) without the logits.
 * Gradients flow to hidden, weight and bias.
 */
export function cce(hidden: Tensor, weight: Tensor, bias: Tensor | null, targets: Tensor, opts: CceOptions = {}): Tensor {
  const { rows, v, d } = checkHeadShapes('cce', hidden, weight, bias, targets);
  const filter = opts.gradFilter ?? 0;
  if (!(filter >= 0 && filter < 1)) throw new RangeError(`cce: gradFilter must be in [0, 1), got ${filter}`);
  const rt = hidden.rt;
  const eRanges = rowRanges(weight, d, { where: 'cce (the head weight)' });
  const tokenBlocks = Math.max(1, Math.ceil(rows / TB));
  const dummy = bias ? null : fromArray(rt, [0], [1]);
  const bBind = (bias ?? dummy!).binding();
  // Splits per range: enough workgroups to fill the GPU, each split at least one tile of items.
  const splitsOf = (n: number) => Math.max(1, Math.min(MAX_SPLITS, Math.ceil(n / TI), Math.ceil(TARGET_GROUPS / tokenBlocks)));
  const spans = itemSpans(eRanges);
  const splits = spans.map((s) => splitsOf(s.b - s.a));
  const totalSplits = splits.reduce((a, b) => a + b, 0);

  const partial = empty(rt, [rows, totalSplits, 2]);
  const tlogit = empty(rt, [rows]);
  const lse = empty(rt, [rows]);
  const rowLoss = empty(rt, [rows]);
  const base = (s: ItemSpan): number[] => [rows, v, d, bias ? 1 : 0, s.a, s.b, ...rangeUniforms(s.e)];
  const FMT = 'uuuuuuuuuuuuuuuuf';
  let splitBase = 0;
  spans.forEach((s, i) => {
    const values = [...base(s), 0, 0, splits[i], splitBase, totalSplits, 0, 0, 0, 0];
    rt.dispatch(PARTIAL, [hidden.binding(), s.e.binding, bBind, targets.binding(), partial.binding(), tlogit.binding()], { values, format: FMT }, tokenBlocks * splits[i]);
    splitBase += splits[i];
  });
  const finishVals = [rows, v, d, 0, 0, v, 0, 0, 0, 0, 1, 0, totalSplits, 0, 0, 0, 0];
  rt.dispatch(FINISH, [partial.binding(), tlogit.binding(), targets.binding(), lse.binding(), rowLoss.binding()], { values: finishVals, format: FMT }, Math.ceil(rows / 64));
  const out = empty(rt, []);
  const count = empty(rt, [1]);
  rt.dispatch(REDUCE, [rowLoss.binding(), targets.binding(), out.binding(), count.binding()], { values: [rows, v, -1, 1], format: 'uuiu' }, 1);
  partial.dispose();
  tlogit.dispose();
  rowLoss.dispose();

  const inputs = bias ? [hidden, weight, bias, targets] : [hidden, weight, targets];
  const res = record(out, 'cce', inputs, (g) => {
    const dc = columnsPerPass(rt.limits.maxComputeWorkgroupStorageSize ?? 16384, d);
    const DX: KernelSpec = { file: 'cce', entry: 'cce_dx', bindings: DX_BINDINGS, overrides: { DC: dc } };
    const DE: KernelSpec = { file: 'cce', entry: 'cce_de', bindings: [...DX_BINDINGS, 'rw'], overrides: { DC: dc } };
    const passes: [number, number][] = [];
    for (let c0 = 0; c0 < d; c0 += dc) passes.push([c0, Math.min(dc, d - c0)]);
    const common = (s: ItemSpan): BufferBinding[] => [hidden.binding(), s.e.binding, bBind, targets.binding(), lse.binding(), g.binding(), count.binding()];
    // dX: every E range adds into it (the first overwrites).
    let dx: Tensor | null = null;
    if (hidden.requiresGrad) {
      dx = empty(rt, hidden.shape);
      spans.forEach((s, i) => {
        for (const [c0, cw] of passes) {
          const values = [...base(s), 0, 0, 0, 0, 0, i > 0 ? 1 : 0, c0, cw, filter];
          rt.dispatch(DX, [...common(s), dx!.binding()], { values, format: FMT }, tokenBlocks);
        }
      });
    }
    // dE (and db): straight into a leaf's gradient when there is one, else dense tensors written whole.
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    const wantW = weight.requiresGrad;
    const wantB = !!bias && bias.requiresGrad;
    if (wantW || wantB) {
      const wSink = wantW ? leafGradSink(weight) : null;
      const bSink = wantB ? leafGradSink(bias!) : null;
      // A gradient nobody wants is written to a scratch tensor all the same (one kernel writes both).
      const dwT = wSink ?? empty(rt, weight.shape);
      const dbT = bias ? bSink ?? empty(rt, [v]) : fromArray(rt, [0], [1]);
      // A sink is added into; a fresh tensor is overwritten whole (every item is covered exactly once), except
      // when only one of the two is a sink: then the fresh one is zeroed so that both can be added into.
      const add = !!(wSink || bSink);
      if (add && !wSink) fillInPlace(dwT, 0);
      if (add && bias && !bSink) fillInPlace(dbT, 0);
      const spansDe = itemSpans(eRanges, rowRanges(dwT, d, { where: 'cce backward (the head weight gradient)' }));
      for (const s of spansDe) {
        for (const [c0, cw] of passes) {
          const values = [...base(s), ...rangeUniforms(s.o), 0, 0, 0, add ? 1 : 0, c0, cw, filter];
          rt.dispatch(DE, [...common(s), s.o!.binding, dbT.binding()], { values, format: FMT }, Math.ceil((s.b - s.a) / TI));
        }
      }
      if (wantW && !wSink) dw = dwT;
      else if (!wSink) dwT.dispose();
      if (wantB && !bSink) db = dbT;
      else if (!bSink) dbT.dispose();
    }
    return bias ? [dx, dw, db, null] : [dx, dw, null];
  });
  if (!res.gradFn) {
    lse.dispose();
    count.dispose();
    dummy?.dispose();
  }
  return res;
}

/** The `cce` loss entry: the head's table and bias read tile by tile; no logits are returned. */
export function cceLoss(opts: CceOptions): LossFn {
  return (hidden, head, batch) => ({ loss: cce(hidden, head.weight, head.bias, batch.targets, opts) });
}
