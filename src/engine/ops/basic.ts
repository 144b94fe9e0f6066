// Kernel-level helpers with no autograd: fill, scaled in-place add, copy. Autograd's gradient accumulation and
// the optimizers build on these.
import type { KernelSpec } from '../gpu/kernels';
import { Tensor, ShapeError, empty, fmtShape } from '../tensor/tensor';

const WG = 256;
const FILL: KernelSpec = { file: 'elementwise', entry: 'fill', bindings: ['rw'] };
const AXPBY: KernelSpec = { file: 'axpy', entry: 'axpby', bindings: ['read', 'rw'] };
const COPY: KernelSpec = { file: 'axpy', entry: 'copy', bindings: ['read', 'rw'] };

/** y[:] = value, in place. */
export function fillInPlace(y: Tensor, value: number): Tensor {
  y.rt.dispatch(FILL, [y.binding()], { values: [y.size, value, 0, 0], format: 'uffu' }, Math.ceil(y.size / WG));
  return y;
}

/** y = a·x + b·y, in place. */
export function axpbyInPlace(y: Tensor, x: Tensor, a = 1, b = 1): Tensor {
  if (x.size !== y.size) throw new ShapeError(`axpby: x ${fmtShape(x.shape)} and y ${fmtShape(y.shape)} differ in size`);
  y.rt.dispatch(AXPBY, [x.binding(), y.binding()], { values: [y.size, a, b, 0], format: 'uffu' }, Math.ceil(y.size / WG));
  return y;
}

/** y = x, in place (sizes must match). */
export function copyInto(y: Tensor, x: Tensor): Tensor {
  if (x.size !== y.size) throw new ShapeError(`copy: source ${fmtShape(x.shape)} and destination ${fmtShape(y.shape)} differ in size`);
  y.rt.dispatch(COPY, [x.binding(), y.binding()], { values: [y.size, 0, 0, 0], format: 'uffu' }, Math.ceil(y.size / WG));
  return y;
}

export function full(rt: Tensor['rt'], shape: readonly number[], value: number): Tensor {
  return fillInPlace(empty(rt, shape), value);
}

export function zeros(rt: Tensor['rt'], shape: readonly number[]): Tensor {
  return full(rt, shape, 0);
}

export function ones(rt: Tensor['rt'], shape: readonly number[]): Tensor {
  return full(rt, shape, 1);
}

/** A new tensor with x's contents (no autograd). */
export function clone(x: Tensor): Tensor {
  return copyInto(empty(x.rt, x.shape, x.dtype), x);
}
