// Cross-entropy loss, fused: one kernel computes each row's log-sum-exp and loss (saving the row's max and
// log-sum for backward), one single-workgroup kernel reduces the rows to the scalar loss and counts the valid
// rows on the GPU, and backward is one elementwise kernel. Kernels: kernels/cross_entropy.wgsl.
//
// Targets usually live on the GPU, where the kernels cannot throw: a target outside [0, C) that is not the
// ignore index is treated like the ignore index (no loss, not counted, zero gradient). When the caller passes
// the targets as host data, they are checked here instead and an out-of-range one throws a RangeError.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape, fromArray, numel } from '../tensor/tensor';
import { rowLayout } from './reduce';

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
