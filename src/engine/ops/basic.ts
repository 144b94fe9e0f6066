// Kernel-level helpers with no autograd: fill, scaled in-place add, copy, column-block copy. Autograd's gradient
// accumulation and the optimizers build on these.
//
// fill, axpby and copy are element-wise, so a tensor above the binding limit (an embedding table's gradient) is
// simply processed one binding-sized span of elements after another: autograd's accumulation then works for
// every tensor the flat parameter store can hold.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { Tensor, ShapeError, empty, fmtShape } from '../tensor/tensor';

const WG = 256;
const FILL: KernelSpec = { file: 'elementwise', entry: 'fill', bindings: ['rw'] };
const AXPBY: KernelSpec = { file: 'axpy', entry: 'axpby', bindings: ['read', 'rw'] };
const COPY: KernelSpec = { file: 'axpy', entry: 'copy', bindings: ['read', 'rw'] };
const COPY_COLS: KernelSpec = { file: 'strided_copy', entry: 'copy_cols', bindings: ['read', 'rw'] };

/**
 * Call fn(start, n) for consecutive spans of t's elements that each fit one binding, or once with the whole
 * tensor when it fits. Span starts are multiples of 64 elements, so a span of a tensor whose storage starts on
 * a 256-byte boundary (every tensor does) starts on one too.
 */
function forSpans(t: Tensor, fn: (start: number, n: number) => void): void {
  const step = Math.floor(t.rt.maxBindingBytes / 256) * 64;
  if (t.size <= step) {
    fn(0, t.size);
    return;
  }
  for (let start = 0; start < t.size; start += step) fn(start, Math.min(step, t.size - start));
}

/** Elements [start, start + n) of t as a binding; the whole tensor (named, for the guard) when that is all of it. */
function span(t: Tensor, start: number, n: number): BufferBinding {
  if (start === 0 && n === t.size) return t.binding();
  return { buffer: t.storage.buffer, offset: t.storage.offset + start * 4, size: Math.max(4, n * 4) };
}

/** y[:] = value, in place. */
export function fillInPlace(y: Tensor, value: number): Tensor {
  forSpans(y, (s, n) => y.rt.dispatch(FILL, [span(y, s, n)], { values: [n, value, 0, 0], format: 'uffu' }, Math.ceil(n / WG)));
  return y;
}

/** y = a·x + b·y, in place. */
export function axpbyInPlace(y: Tensor, x: Tensor, a = 1, b = 1): Tensor {
  if (x.size !== y.size) throw new ShapeError(`axpby: x ${fmtShape(x.shape)} and y ${fmtShape(y.shape)} differ in size`);
  forSpans(y, (s, n) => y.rt.dispatch(AXPBY, [span(x, s, n), span(y, s, n)], { values: [n, a, b, 0], format: 'uffu' }, Math.ceil(n / WG)));
  return y;
}

/** y = x, in place (sizes must match). */
export function copyInto(y: Tensor, x: Tensor): Tensor {
  if (x.size !== y.size) throw new ShapeError(`copy: source ${fmtShape(x.shape)} and destination ${fmtShape(y.shape)} differ in size`);
  forSpans(y, (s, n) => y.rt.dispatch(COPY, [span(x, s, n), span(y, s, n)], { values: [n, 0, 0, 0], format: 'uffu' }, Math.ceil(n / WG)));
  return y;
}

/** A column block of a row-major matrix stored in a tensor: `rows` rows `stride` elements apart, from column `col`. */
export interface ColumnBlock {
  t: Tensor;
  stride: number;
  col: number;
}

/**
 * dst[r, dst.col + j] = src[r, src.col + j] for r < rows, j < cols, in place (both bound whole). linear() over
 * a row-chunked weight places each chunk's logits in a column range of the output with it, and takes the same
 * range of the output gradient back out. Kernel: kernels/strided_copy.wgsl.
 */
export function copyColumns(dst: ColumnBlock, src: ColumnBlock, rows: number, cols: number): Tensor {
  for (const [what, b] of [['destination', dst], ['source', src]] as const) {
    if (b.col < 0 || b.col + cols > b.stride || (rows > 0 && (rows - 1) * b.stride + b.col + cols > b.t.size)) {
      throw new ShapeError(`copyColumns: ${what} ${fmtShape(b.t.shape)} with row stride ${b.stride} has no ${rows} × ${cols} block at column ${b.col}`);
    }
  }
  const n = rows * cols;
  if (n > 0) {
    const values = [rows, cols, src.stride, src.col, dst.stride, dst.col, 0, 0];
    dst.t.rt.dispatch(COPY_COLS, [src.t.binding(), dst.t.binding()], { values }, Math.ceil(n / WG));
  }
  return dst.t;
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
