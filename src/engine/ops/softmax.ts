// Softmax and log-softmax over the last axis, each one kernel forward and one backward. Kernels:
// kernels/softmax.wgsl.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { Tensor, empty, fmtShape } from '../tensor/tensor';
import { rowLayout } from './reduce';

/** Dispatch a softmax-family kernel, the `_small` (invocation per row) or `_rows` (workgroup per row) variant. */
function dispatchRows(x: Tensor, entry: 'softmax' | 'softmax_backward', log: boolean, bufs: Tensor[]): void {
  const d = x.rank ? x.shape[x.rank - 1] : 1;
  const rows = d === 0 ? 0 : x.size / d;
  const bindings = bufs.map((_, i) => (i === bufs.length - 1 ? 'rw' : 'read') as 'rw' | 'read');
  const { perWorkgroup, wg } = rowLayout(x.rt, rows, d);
  const spec: KernelSpec = { file: 'softmax', entry: `${entry}_${perWorkgroup ? 'rows' : 'small'}`, bindings, overrides: { LOG: log ? 1 : 0, WG: wg } };
  x.rt.dispatch(spec, bufs.map((t) => t.binding()), { values: [rows, d, 0, 0] }, perWorkgroup ? rows : Math.ceil(rows / wg));
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  if (x.dtype !== 'f32') throw new TypeError(`${name}: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  const out = empty(x.rt, x.shape);
  dispatchRows(x, 'softmax', log, [x, out]);
  return record(out, name, [x], (g) => {
    const dx = empty(x.rt, x.shape);
    dispatchRows(x, 'softmax_backward', log, [g, out, dx]);
    return [dx];
  });
}

/** Softmax over the last axis (max-subtracted, so large logits do not overflow). */
export function softmax(x: Tensor): Tensor {
  return softmaxImpl(x, false);
}

/** log(softmax(x)) over the last axis, computed as x - max - log Σ exp(x - max). */
export function logSoftmax(x: Tensor): Tensor {
  return softmaxImpl(x, true);
}
