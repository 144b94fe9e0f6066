// Cross-entropy loss, fused: one kernel computes each row's log-sum-exp and loss (saving the row's max and
// log-sum for backward), one single-workgroup kernel reduces the rows to the scalar loss and counts the valid
// rows on the GPU, and backward is one elementwise kernel. Kernels: kernels/cross_entropy.wgsl.
//
// Targets usually live on the GPU, where the kernels cannot throw: a target outside [0, C) that is not the
// ignore index is treated like the ignore index (no loss, not counted, zero gradient). When the caller passes
// the targets as host data, they are checked here instead and an out-of-range one throws a RangeError.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtBytes, fmtShape, fromArray, noGrad, numel, view } from '../tensor/tensor';
import { axpbyInPlace, clone, copyInto, zeros } from './basic';
import { linear, matmul } from './matmul';
import { rowLayout, sum } from './reduce';

const WG = 256;

export interface CrossEntropyOptions {
  /** Rows whose target equals this take no loss and no gradient, and do not count for the mean. Default -1. */
  ignoreIndex?: number;
  /** 'mean' (default) over the rows that are not ignored (0 when every row is), or 'sum'. */
  reduction?: 'mean' | 'sum';
  /**
   * Backward writes the gradient over the logits' storage instead of a new buffer (the logits are garbage after
   * backward). For training steps that do not read the logits after backward: saves a logits-sized buffer —
   * [batch·seq, vocab], the largest tensor of a language model's step — at the memory peak.
   */
  overwriteLogits?: boolean;
}

/**
 * Cross-entropy of f32 logits [..., C] against i32 class indices with the leading shape (any shape with one
 * index per row): a scalar (shape []). Targets may be a GPU tensor or host data (Int32Array or number[]),
 * which is range-checked before upload.
 */
export function crossEntropy(logits: Tensor, targets: Tensor | Int32Array | readonly number[], opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const reduction = opts.reduction ?? 'mean';
  if (logits.dtype !== 'f32') throw new TypeError(`crossEntropy: logits must be f32, got ${logits.dtype} ${fmtShape(logits.shape)}`);
  if (logits.rank === 0) throw new ShapeError(`crossEntropy: logits ${fmtShape(logits.shape)} have no class axis`);
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new RangeError(`crossEntropy: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  }
  if (reduction !== 'mean' && reduction !== 'sum') throw new RangeError(`crossEntropy: unknown reduction '${String(reduction)}'`);
  const c = logits.shape[logits.rank - 1];
  const rowShape = logits.shape.slice(0, -1);
  const rows = numel(rowShape);
  const rt = logits.rt;

  let tgt: Tensor;
  if (targets instanceof Tensor) {
    if (targets.dtype !== 'i32') throw new TypeError(`crossEntropy: targets must be i32, got ${targets.dtype} ${fmtShape(targets.shape)}`);
    if (targets.size !== rows) {
      throw new ShapeError(`crossEntropy: targets ${fmtShape(targets.shape)} do not match the rows of logits ${fmtShape(logits.shape)} (${rows} rows)`);
    }
    tgt = targets;
  } else {
    if (targets.length !== rows) {
      throw new ShapeError(`crossEntropy: targets [${targets.length}] do not match the rows of logits ${fmtShape(logits.shape)} (${rows} rows)`);
    }
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i];
      if (t !== ignoreIndex && !(Number.isInteger(t) && t >= 0 && t < c)) {
        throw new RangeError(`crossEntropy: target ${t} at row ${i} is outside [0, ${c}) and is not ignoreIndex ${ignoreIndex}`);
      }
    }
    tgt = fromArray(rt, targets, [rows], 'i32');
  }

  const uniforms = { values: [rows, c, ignoreIndex, reduction === 'mean' ? 1 : 0], format: 'uuiu' };
  const rowLoss = empty(rt, [rows]);
  const stats = empty(rt, [rows, 2]);
  const { perWorkgroup, wg } = rowLayout(rt, rows, c);
  const fwd: KernelSpec = { file: 'cross_entropy', entry: `ce_forward_${perWorkgroup ? 'rows' : 'small'}`, bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: wg } };
  rt.dispatch(fwd, [logits.binding(), tgt.binding(), rowLoss.binding(), stats.binding()], uniforms, perWorkgroup ? rows : Math.ceil(rows / wg));

  const out = empty(rt, []);
  const count = empty(rt, [1]);
  const red: KernelSpec = { file: 'cross_entropy', entry: 'ce_reduce', bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: rt.gpu.info.fallback ? 64 : WG } };
  rt.dispatch(red, [rowLoss.binding(), tgt.binding(), out.binding(), count.binding()], uniforms, 1);
  rowLoss.dispose(); // back to the pool only after the submit that runs both kernels

  const res = record(out, 'crossEntropy', [logits, tgt], (g) => {
    if (opts.overwriteLogits) {
      const inplace: KernelSpec = { file: 'cross_entropy', entry: 'ce_backward_inplace', bindings: ['rw', 'read', 'read', 'read', 'read'] };
      rt.dispatch(inplace, [logits.binding(), tgt.binding(), stats.binding(), g.binding(), count.binding()], uniforms, Math.ceil((rows * c) / WG));
      return [logits.reshape(logits.shape), null];
    }
    const dx = empty(rt, logits.shape);
    const bwd: KernelSpec = { file: 'cross_entropy', entry: 'ce_backward', bindings: ['read', 'read', 'read', 'read', 'read', 'rw'] };
    rt.dispatch(bwd, [logits.binding(), tgt.binding(), stats.binding(), g.binding(), count.binding(), dx.binding()], uniforms, Math.ceil((rows * c) / WG));
    return [dx, null];
  });
  if (!res.gradFn) {
    stats.dispose();
    count.dispose();
    if (tgt !== targets) tgt.dispose();
  }
  return res;
}

/** Rows of logits per piece of crossEntropyOverHead: a multiple of 64, so that every piece of the hidden states,
 * the targets and the per-row statistics starts on a 256-byte boundary (WebGPU's binding-offset alignment). */
const HEAD_ROW_UNIT = 64;

/**
 * The most rows of [rows, classes] f32 logits crossEntropyOverHead puts in one piece (one storage binding); 0 when
 * not even HEAD_ROW_UNIT rows fit (full cross-entropy cannot run on this device at this many classes: use CCE).
 */
export function headRowsPerPiece(maxBindingBytes: number, classes: number): number {
  return Math.floor(maxBindingBytes / (classes * 4) / HEAD_ROW_UNIT) * HEAD_ROW_UNIT;
}

/**
 * Full cross-entropy over a linear head, mean over the rows whose target is not `ignoreIndex`, when the logits
 * hidden · weightᵀ + bias are larger than one storage binding: they are formed in pieces of rows (each within a
 * binding, `rowsPerPiece` or as many as fit), every piece is kept for the backward — exactly what a standard
 * cross-entropy keeps, [rows, classes] floats in all — and the backward overwrites each piece with its gradient
 * (ce_backward_inplace) before the two products that take it to the hidden states and the head. It is the
 * full-logits baseline the fused losses (CCE, CCE−) are measured against, and what `loss: cross-entropy` runs
 * when a batch's logits exceed one binding.
 */
export function crossEntropyOverHead(
  hidden: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  targets: Tensor,
  opts: { ignoreIndex?: number; rowsPerPiece?: number } = {},
): Tensor {
  const rt = hidden.rt;
  const ignoreIndex = opts.ignoreIndex ?? -1;
  if (hidden.dtype !== 'f32' || hidden.rank !== 2) throw new ShapeError(`crossEntropyOverHead: hidden must be f32 [rows, d], got ${hidden.dtype} ${fmtShape(hidden.shape)}`);
  const [rows, d] = hidden.shape;
  if (weight.rank !== 2 || weight.shape[1] !== d) throw new ShapeError(`crossEntropyOverHead: hidden ${fmtShape(hidden.shape)} and the head's weight ${fmtShape(weight.shape)} disagree on d`);
  const c = weight.shape[0];
  if (bias && bias.size !== c) throw new ShapeError(`crossEntropyOverHead: bias ${fmtShape(bias.shape)} does not match the weight ${fmtShape(weight.shape)} (${c} classes)`);
  if (targets.dtype !== 'i32' || targets.size !== rows) throw new ShapeError(`crossEntropyOverHead: targets ${targets.dtype} ${fmtShape(targets.shape)} do not match the ${rows} rows of hidden ${fmtShape(hidden.shape)}`);
  const fit = headRowsPerPiece(rt.maxBindingBytes, c);
  const per = opts.rowsPerPiece ?? fit;
  if (per < HEAD_ROW_UNIT || per % HEAD_ROW_UNIT !== 0 || per > Math.max(fit, HEAD_ROW_UNIT)) {
    if (fit === 0) {
      throw new ShapeError(
        `crossEntropyOverHead: ${HEAD_ROW_UNIT} rows of logits over ${c.toLocaleString('en-US')} classes (${fmtBytes(HEAD_ROW_UNIT * c * 4)}) ` +
          `exceed one storage binding (${fmtBytes(rt.maxBindingBytes)}): use a loss that never forms the logits (cce)`,
      );
    }
    throw new RangeError(`crossEntropyOverHead: rowsPerPiece must be a multiple of ${HEAD_ROW_UNIT} in [${HEAD_ROW_UNIT}, ${fit}], got ${per}`);
  }
  // Pieces are views at row offsets: the inputs must start on a 256-byte boundary (fresh tensors always do).
  const h = hidden.storage.offset % 256 === 0 ? hidden : noGradClone(hidden);
  const tgt = targets.storage.offset % 256 === 0 ? targets : noGradClone(targets);
  const pieces: { r0: number; n: number; logits: Tensor }[] = [];
  const rowLoss = empty(rt, [rows]);
  const stats = empty(rt, [rows, 2]);
  const rowsOf = (t: Tensor, r0: number, n: number, width: number, dtype: 'f32' | 'i32' = 'f32') =>
    view(rt, t.storage.buffer, t.storage.offset + r0 * width * 4, width === 1 ? [n] : [n, width], dtype);
  noGrad(() => {
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      const logits = linear(rowsOf(h, r0, n, d), weight, bias ?? undefined);
      const { perWorkgroup, wg } = rowLayout(rt, n, c);
      const fwd: KernelSpec = { file: 'cross_entropy', entry: `ce_forward_${perWorkgroup ? 'rows' : 'small'}`, bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: wg } };
      const u = { values: [n, c, ignoreIndex, 1], format: 'uuiu' };
      rt.dispatch(fwd, [logits.binding(), rowsOf(tgt, r0, n, 1, 'i32').binding(), rowsOf(rowLoss, r0, n, 1).binding(), rowsOf(stats, r0, n, 2).binding()], u, perWorkgroup ? n : Math.ceil(n / wg));
      pieces.push({ r0, n, logits });
    }
  });
  const out = empty(rt, []);
  const count = empty(rt, [1]);
  const uniforms = { values: [rows, c, ignoreIndex, 1], format: 'uuiu' };
  const red: KernelSpec = { file: 'cross_entropy', entry: 'ce_reduce', bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: rt.gpu.info.fallback ? 64 : WG } };
  rt.dispatch(red, [rowLoss.binding(), tgt.binding(), out.binding(), count.binding()], uniforms, 1);
  rowLoss.dispose();
  const release = () => {
    for (const p of pieces) p.logits.dispose();
    stats.dispose();
    count.dispose();
    if (h !== hidden) h.dispose();
    if (tgt !== targets) tgt.dispose();
  };
  const inputs = bias ? [hidden, weight, bias] : [hidden, weight];
  const res = record(out, 'crossEntropyOverHead', inputs, (g) =>
    noGrad(() => {
      const dh = empty(rt, [rows, d]);
      const dw = zeros(rt, weight.shape);
      const db = bias ? zeros(rt, [c]) : null;
      const inplace: KernelSpec = { file: 'cross_entropy', entry: 'ce_backward_inplace', bindings: ['rw', 'read', 'read', 'read', 'read'] };
      for (const { r0, n, logits } of pieces) {
        const u = { values: [n, c, ignoreIndex, 1], format: 'uuiu' };
        rt.dispatch(inplace, [logits.binding(), rowsOf(tgt, r0, n, 1, 'i32').binding(), rowsOf(stats, r0, n, 2).binding(), g.binding(), count.binding()], u, Math.ceil((n * c) / WG));
        const dhPiece = matmul(logits, weight);
        copyInto(rowsOf(dh, r0, n, d), dhPiece);
        dhPiece.dispose();
        const dwPiece = matmul(logits, rowsOf(h, r0, n, d), { transA: true });
        axpbyInPlace(dw, dwPiece, 1, 1);
        dwPiece.dispose();
        if (db) {
          const dbPiece = sum(logits, 0);
          axpbyInPlace(db, dbPiece, 1, 1);
          dbPiece.dispose();
        }
      }
      release();
      return bias ? [dh, dw, db] : [dh, dw];
    }),
  );
  if (!res.gradFn) release();
  return res;
}

function noGradClone(t: Tensor): Tensor {
  return noGrad(() => clone(t));
}
