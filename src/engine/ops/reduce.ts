// Reductions: sum, mean, max, argmax over one axis (or all elements), and sumToShape, which folds a broadcast
// result back to an operand's shape (elementwise backward). Kernels: kernels/reduce.wgsl.
//
// Every reduction views the tensor as [outer, len, inner] around the axis. A long axis is reduced in passes:
// each pass cuts it into chunks and writes one partial per chunk, until one chunk is left.
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape, numel } from '../tensor/tensor';

const WG = 256;
/** Elements per workgroup when a long row is split across workgroups. */
const ROW_CHUNK = 4096;
/** Split long rows only when there are too few rows to occupy the GPU with one workgroup per row. */
const ROW_SPLIT_BELOW = 512;
/** Column kernel: shortest chunk worth an invocation, and how many invocations to aim for. */
const COL_CHUNK_MIN = 64;
const COL_TARGET = 32768;

// ---- row layout (shared with softmax and layerNorm) -------------------------------------------------------

/** On GPUs, rows up to this long get an invocation each; longer rows a workgroup each. */
const SMALL_ROW = 32;
/** On software adapters, this many rows or more get an invocation each, however long. */
const SOFT_MIN_ROWS = 256;

export type RowLayoutMode = 'auto' | 'invocation' | 'workgroup';
let rowLayoutMode: RowLayoutMode = 'auto';

/**
 * Force one row layout ('auto' restores the choice by adapter and shape); returns the previous mode. Tests use
 * it to run both kernel variants on any adapter.
 */
export function setRowLayout(mode: RowLayoutMode): RowLayoutMode {
  const prev = rowLayoutMode;
  rowLayoutMode = mode;
  return prev;
}

export interface RowLayout {
  /** One workgroup per row (tree reduction in workgroup memory) rather than one invocation per row. */
  perWorkgroup: boolean;
  /** Workgroup size for that kernel. */
  wg: number;
}

/**
 * How kernels that reduce along contiguous rows (reduce, softmax, layerNorm) lay out `rows` rows of length d.
 * On a GPU a workgroup per row wins once rows are longer than a few dozen elements: loads coalesce and a long
 * row is spread over many lanes. On a software adapter (lavapipe) an invocation is a SIMD lane and each
 * workgroup and barrier costs fixed CPU time, so an invocation per row wins whenever there are enough rows to
 * keep the cores busy; there, small workgroups keep the per-row trees short.
 */
export function rowLayout(rt: Runtime, rows: number, d: number): RowLayout {
  const soft = rt.gpu.info.fallback;
  let perWorkgroup = d > SMALL_ROW && (!soft || rows < SOFT_MIN_ROWS);
  if (rowLayoutMode !== 'auto') perWorkgroup = rowLayoutMode === 'workgroup';
  if (!perWorkgroup) return { perWorkgroup, wg: soft ? 64 : 256 };
  return { perWorkgroup, wg: rowWorkgroupSize(rt, d) };
}

/** Workgroup size for a workgroup-per-row kernel over rows (or row chunks) of length d. */
function rowWorkgroupSize(rt: Runtime, d: number): number {
  if (rt.gpu.info.fallback) return d > 4096 ? 64 : 8;
  return d > 2048 ? 256 : 64;
}

// ---- reductions ----------------------------------------------------------------------------------------------

/** Uniform layout of kernels/reduce.wgsl: outer, len, inner, chunk, nchunks, scale, has_idx, identity. */
const FORMAT = 'uuuuufuf';
const OP_SUM = 0;
const OP_MAX = 1;

function assertF32(x: Tensor, op: string): void {
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
}

function normAxis(axis: number, shape: readonly number[], op: string): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  }
  return a;
}

interface AxisSplit {
  outer: number;
  len: number;
  inner: number;
  outShape: number[];
}

function splitAxis(shape: readonly number[], axis: number | undefined, keepDim: boolean, op: string): AxisSplit {
  if (axis === undefined) {
    return { outer: 1, len: numel(shape), inner: 1, outShape: keepDim ? shape.map(() => 1) : [] };
  }
  const a = normAxis(axis, shape, op);
  return {
    outer: numel(shape.slice(0, a)),
    len: shape[a],
    inner: numel(shape.slice(a + 1)),
    outShape: keepDim ? shape.map((d, k) => (k === a ? 1 : d)) : shape.filter((_, k) => k !== a),
  };
}

function chunking(rt: Runtime, outer: number, len: number, inner: number): { rows: boolean; chunk: number; nchunks: number } {
  // Rows (inner = 1) take the workgroup-per-row kernel where rowLayout says so, else the column kernel with
  // one invocation per row.
  const rows = inner === 1 && rowLayout(rt, outer, len).perWorkgroup;
  let nchunks = 1;
  if (rows) {
    if (outer < ROW_SPLIT_BELOW && len > ROW_CHUNK) nchunks = Math.ceil(len / ROW_CHUNK);
  } else if (len > COL_CHUNK_MIN && outer * inner < COL_TARGET) {
    nchunks = Math.min(Math.ceil(len / COL_CHUNK_MIN), Math.ceil(COL_TARGET / (outer * inner)));
  }
  const chunk = Math.max(1, Math.ceil(len / nchunks));
  return { rows, chunk, nchunks: len === 0 ? 1 : Math.ceil(len / chunk) };
}

/**
 * Reduce the middle axis of x viewed as [outer, len, inner]; the result has outer·inner elements and
 * `outShape`. `scale` multiplies the final result (mean).
 */
function reduceAxis(x: Tensor, outer: number, len: number, inner: number, op: number, scale: number, outShape: readonly number[]): Tensor {
  const { rows, chunk, nchunks } = chunking(x.rt, outer, len, inner);
  const last = nchunks === 1;
  const out = empty(x.rt, last ? outShape : [outer * nchunks * inner]);
  const values = [outer, len, inner, chunk, nchunks, last ? scale : 1, 0, op === OP_MAX ? -Infinity : 0];
  if (rows) {
    const wg = rowWorkgroupSize(x.rt, chunk);
    const spec: KernelSpec = { file: 'reduce', entry: 'reduce_rows', bindings: ['read', 'rw'], overrides: { OP: op, WG: wg } };
    x.rt.dispatch(spec, [x.binding(), out.binding()], { values, format: FORMAT }, outer * nchunks);
  } else {
    const spec: KernelSpec = { file: 'reduce', entry: 'reduce_cols', bindings: ['read', 'rw'], overrides: { OP: op } };
    x.rt.dispatch(spec, [x.binding(), out.binding()], { values, format: FORMAT }, Math.ceil((outer * nchunks * inner) / WG));
  }
  if (last) return out;
  const next = reduceAxis(out, outer, nchunks, inner, op, scale, outShape);
  out.dispose(); // returns to the pool only after the submit that runs both passes
  return next;
}

/** First index of the maximum along the middle axis of [outer, len, inner]; i32 with outShape. */
function argmaxAxis(x: Tensor, xIdx: Tensor | null, outer: number, len: number, inner: number, outShape: readonly number[]): Tensor {
  const { rows, chunk, nchunks } = chunking(x.rt, outer, len, inner);
  const last = nchunks === 1;
  const vals = empty(x.rt, [outer * nchunks * inner]);
  const idx = empty(x.rt, last ? outShape : [outer * nchunks * inner], 'i32');
  const values = [outer, len, inner, chunk, nchunks, 1, xIdx ? 1 : 0, -Infinity];
  // Without previous indices the index binding is unused; x stands in (two read-only bindings may alias).
  const bufs = [x.binding(), (xIdx ?? x).binding(), vals.binding(), idx.binding()];
  const bindings = ['read', 'read', 'rw', 'rw'] as const;
  if (rows) {
    const spec: KernelSpec = { file: 'reduce', entry: 'argmax_rows', bindings, overrides: { WG: rowWorkgroupSize(x.rt, chunk) } };
    x.rt.dispatch(spec, bufs, { values, format: FORMAT }, outer * nchunks);
  } else {
    const spec: KernelSpec = { file: 'reduce', entry: 'argmax_cols', bindings };
    x.rt.dispatch(spec, bufs, { values, format: FORMAT }, Math.ceil((outer * nchunks * inner) / WG));
  }
  if (last) {
    vals.dispose();
    return idx;
  }
  const next = argmaxAxis(vals, idx, outer, nchunks, inner, outShape);
  vals.dispose();
  idx.dispose();
  return next;
}

/** dx[o, l, i] = g[o, i] · scale, shaped `shape`. */
function expandAxis(g: Tensor, outer: number, len: number, inner: number, scale: number, shape: readonly number[]): Tensor {
  const dx = empty(g.rt, shape);
  const spec: KernelSpec = { file: 'reduce', entry: 'expand_axis', bindings: ['read', 'rw'] };
  g.rt.dispatch(spec, [g.binding(), dx.binding()], { values: [outer, len, inner, 0, 0, scale, 0, 0], format: FORMAT }, Math.ceil(dx.size / WG));
  return dx;
}

function sumOrMean(kind: 'sum' | 'mean', x: Tensor, axis: number | undefined, keepDim: boolean): Tensor {
  assertF32(x, kind);
  const { outer, len, inner, outShape } = splitAxis(x.shape, axis, keepDim, kind);
  const scale = kind === 'mean' ? 1 / len : 1;
  const out = reduceAxis(x, outer, len, inner, OP_SUM, scale, outShape);
  return record(out, kind, [x], (g) => [expandAxis(g, outer, len, inner, scale, x.shape)]);
}

/** Sum over `axis` (all elements → shape [] when undefined). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  return sumOrMean('sum', x, axis, keepDim);
}

/** Mean over `axis` (all elements → shape [] when undefined). */
export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  return sumOrMean('mean', x, axis, keepDim);
}

/** Maximum over `axis`; the gradient flows to the first maximal element. NaN never wins. */
export function max(x: Tensor, axis: number, keepDim = false): Tensor {
  assertF32(x, 'max');
  const { outer, len, inner, outShape } = splitAxis(x.shape, axis, keepDim, 'max');
  if (len === 0) throw new ShapeError(`max: axis ${axis} of ${fmtShape(x.shape)} is empty`);
  const out = reduceAxis(x, outer, len, inner, OP_MAX, 1, outShape);
  return record(out, 'max', [x], (g) => {
    // Recompute the argmax instead of keeping it alive from forward to backward.
    const idx = argmaxAxis(x, null, outer, len, inner, [outer * inner]);
    const dx = empty(x.rt, x.shape);
    const spec: KernelSpec = { file: 'reduce', entry: 'max_backward', bindings: ['read', 'read', 'rw'] };
    x.rt.dispatch(spec, [g.binding(), idx.binding(), dx.binding()], { values: [outer, len, inner, 0, 0, 1, 0, 0], format: FORMAT }, Math.ceil(dx.size / WG));
    idx.dispose();
    return [dx];
  });
}

/** Index of the (first) maximum along `axis`, as an i32 tensor without that axis. No gradient. */
export function argmax(x: Tensor, axis = -1): Tensor {
  assertF32(x, 'argmax');
  const { outer, len, inner, outShape } = splitAxis(x.shape, axis, false, 'argmax');
  if (len === 0) throw new ShapeError(`argmax: axis ${axis} of ${fmtShape(x.shape)} is empty`);
  return argmaxAxis(x, null, outer, len, inner, outShape);
}

/**
 * Sum x over the dims where `shape` (right-aligned, NumPy style) has 1 or nothing, giving `shape`: the inverse
 * of broadcasting `shape` to x's shape. Returns x itself when the shapes are equal.
 */
export function sumToShape(x: Tensor, shape: readonly number[]): Tensor {
  assertF32(x, 'sumToShape');
  const r = x.rank;
  if (shape.length === r && shape.every((d, k) => d === x.shape[k])) return x;
  const aligned = shape.length <= r ? [...Array<number>(r - shape.length).fill(1), ...shape] : null;
  if (!aligned || aligned.some((d, k) => d !== x.shape[k] && d !== 1)) {
    throw new ShapeError(`sumToShape: ${fmtShape(x.shape)} cannot be summed to ${fmtShape(shape)} (it is not a broadcast of it)`);
  }
  if (numel(shape) === x.size) return x.reshape(shape);
  // Merge neighbouring dims into alternating kept / summed segments; size-1 dims of x belong to neither.
  const segs: { size: number; reduce: boolean }[] = [];
  for (let k = 0; k < r; k++) {
    if (x.shape[k] === 1) continue;
    const reduce = aligned[k] === 1;
    const lastSeg = segs[segs.length - 1];
    if (lastSeg && lastSeg.reduce === reduce) lastSeg.size *= x.shape[k];
    else segs.push({ size: x.shape[k], reduce });
  }
  const sizes = segs.map((s) => s.size);
  const firstReduced = segs.findIndex((s) => s.reduce);
  let cur = x;
  // Innermost summed segment first; each pass leaves the segments outside it untouched.
  for (let k = segs.length - 1; k >= 0; k--) {
    if (!segs[k].reduce) continue;
    const outer = numel(sizes.slice(0, k));
    const inner = numel(sizes.slice(k + 1));
    const next = reduceAxis(cur, outer, sizes[k], inner, OP_SUM, 1, k === firstReduced ? shape : [outer * inner]);
    if (cur !== x) cur.dispose();
    cur = next;
    sizes[k] = 1;
  }
  const out = cur;
  return record(out, 'sumToShape', [x], (g) => {
    // Broadcast back one summed segment at a time.
    const s = segs.map((seg) => (seg.reduce ? 1 : seg.size));
    let t = g;
    for (let k = 0; k < segs.length; k++) {
      if (!segs[k].reduce) continue;
      s[k] = segs[k].size;
      const full = s.every((v, j) => v === segs[j].size);
      const next = expandAxis(t, numel(s.slice(0, k)), segs[k].size, numel(s.slice(k + 1)), 1, full ? x.shape : [numel(s)]);
      if (t !== g) t.dispose();
      t = next;
    }
    return [t];
  });
}
