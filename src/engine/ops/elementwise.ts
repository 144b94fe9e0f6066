// Elementwise ops: binary arithmetic with NumPy broadcasting, unary math and activations, and biasAct, the
// fused bias + activation epilogue that follows a matmul. Kernels: kernels/binary.wgsl, kernels/elementwise.wgsl.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape } from '../tensor/tensor';
import { sum, sumToShape } from './reduce';

const WG = 256;
const MAX_RANK = 6;

type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
const BINARY_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3 };

const UNARY_CODE = { affine: 0, exp: 1, log: 2, sqrt: 3, tanh: 4, sigmoid: 5, relu: 6, gelu: 7 } as const;
type UnaryOp = keyof typeof UNARY_CODE;

export type BiasActivation = 'none' | 'relu' | 'gelu';
const ACT_CODE: Record<BiasActivation, number> = { none: 0, relu: 1, gelu: 2 };

function groups(n: number): number {
  return Math.ceil(n / WG);
}

function assertF32(x: Tensor, op: string): void {
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
}

// ---- broadcasting --------------------------------------------------------------------------------------------

/** The NumPy broadcast of two shapes; ShapeError naming both when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op = 'broadcast'): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < r; k++) {
    const da = k < r - a.length ? 1 : a[k - (r - a.length)];
    const db = k < r - b.length ? 1 : b[k - (r - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dim ${k - r}: ${da} vs ${db})`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

interface BroadcastPlan {
  /** Collapsed dims, innermost first: size, stride in a, stride in b (0 where broadcast). */
  dims: { size: number; sa: number; sb: number }[];
  /** Both operands cover the output contiguously: no index arithmetic needed. */
  same: boolean;
}

/**
 * Collapse a broadcast into as few dims as possible: size-1 output dims drop out and neighbouring dims merge
 * when each operand is either present in both or broadcast in both. [N, D] + [D] becomes 2 dims however
 * high the rank, and equal shapes become the `same` fast path.
 */
function planBroadcast(aShape: readonly number[], bShape: readonly number[], out: readonly number[]): BroadcastPlan {
  const r = out.length;
  const groupsOut: { size: number; aFull: boolean; bFull: boolean }[] = [];
  for (let k = 0; k < r; k++) {
    if (out[k] === 1) continue;
    const aFull = (k >= r - aShape.length ? aShape[k - (r - aShape.length)] : 1) !== 1;
    const bFull = (k >= r - bShape.length ? bShape[k - (r - bShape.length)] : 1) !== 1;
    const last = groupsOut[groupsOut.length - 1];
    if (last && last.aFull === aFull && last.bFull === bFull) last.size *= out[k];
    else groupsOut.push({ size: out[k], aFull, bFull });
  }
  const same = groupsOut.every((g) => g.aFull && g.bFull);
  const dims: BroadcastPlan['dims'] = [];
  let sa = 1;
  let sb = 1;
  for (let k = groupsOut.length - 1; k >= 0; k--) {
    const g = groupsOut[k];
    dims.push({ size: g.size, sa: g.aFull ? sa : 0, sb: g.bFull ? sb : 0 });
    if (g.aFull) sa *= g.size;
    if (g.bFull) sb *= g.size;
  }
  return { dims, same };
}

/** a op b with broadcasting, no autograd. */
function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  assertF32(a, op);
  assertF32(b, op);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = empty(a.rt, shape);
  if (out.size === 0) return out;
  const plan = planBroadcast(a.shape, b.shape, shape);
  const overrides = { OP: BINARY_CODE[op] };
  const bufs = [a.binding(), b.binding(), out.binding()];
  if (plan.same) {
    const spec: KernelSpec = { file: 'binary', entry: 'binary_same', bindings: ['read', 'read', 'rw'], overrides };
    a.rt.dispatch(spec, bufs, { values: [out.size, 1] }, groups(out.size));
    return out;
  }
  if (plan.dims.length > MAX_RANK) {
    throw new ShapeError(`${op}: broadcasting ${fmtShape(a.shape)} with ${fmtShape(b.shape)} needs ${plan.dims.length} dims after merging; at most ${MAX_RANK} are supported`);
  }
  const d = [1, 1, 1, 1, 1, 1];
  const sa = [0, 0, 0, 0, 0, 0];
  const sb = [0, 0, 0, 0, 0, 0];
  plan.dims.forEach((g, k) => {
    d[k] = g.size;
    sa[k] = g.sa;
    sb[k] = g.sb;
  });
  const spec: KernelSpec = { file: 'binary', entry: 'binary_bcast', bindings: ['read', 'read', 'rw'], overrides };
  a.rt.dispatch(spec, bufs, { values: [out.size, plan.dims.length, ...d, ...sa, ...sb] }, groups(out.size));
  return out;
}

/**
 * Sum a gradient of the broadcast shape back to an operand's shape; `owned` says the caller made `g` and it
 * may be disposed once reduced.
 */
function reduceGrad(g: Tensor, shape: readonly number[], owned: boolean): Tensor {
  const r = sumToShape(g, shape);
  if (owned && r !== g) g.dispose(); // a reshape view keeps the storage alive by its own reference
  return r;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('add', a, b);
  return record(out, 'add', [a, b], (g) => [
    a.requiresGrad ? reduceGrad(g, a.shape, false) : null,
    b.requiresGrad ? reduceGrad(g, b.shape, false) : null,
  ]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('sub', a, b);
  return record(out, 'sub', [a, b], (g) => [
    a.requiresGrad ? reduceGrad(g, a.shape, false) : null,
    b.requiresGrad ? reduceGrad(neg(g), b.shape, true) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('mul', a, b);
  return record(out, 'mul', [a, b], (g) => [
    a.requiresGrad ? reduceGrad(binaryRaw('mul', g, b), a.shape, true) : null,
    b.requiresGrad ? reduceGrad(binaryRaw('mul', g, a), b.shape, true) : null,
  ]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('div', a, b);
  return record(out, 'div', [a, b], (g) => {
    // d(a/b)/da = 1/b and d(a/b)/db = -(a/b)/b = -out/b: both start from g/b.
    const gOverB = binaryRaw('div', g, b);
    let gb: Tensor | null = null;
    if (b.requiresGrad) {
      const t = reduceGrad(binaryRaw('mul', gOverB, out), b.shape, true);
      gb = unaryRaw('affine', t, -1, 0);
      t.dispose();
    }
    const ga = a.requiresGrad ? reduceGrad(gOverB, a.shape, true) : (gOverB.dispose(), null);
    return [ga, gb];
  });
}

// ---- unary ---------------------------------------------------------------------------------------------------

function unaryRaw(op: UnaryOp, x: Tensor, a = 0, b = 0): Tensor {
  assertF32(x, op);
  const out = empty(x.rt, x.shape);
  const spec: KernelSpec = { file: 'elementwise', entry: 'unary', bindings: ['read', 'rw'], overrides: { OP: UNARY_CODE[op] } };
  x.rt.dispatch(spec, [x.binding(), out.binding()], { values: [x.size, a, b, 0], format: 'uffu' }, groups(x.size));
  return out;
}

/** g · f'(·) where `saved` is whichever of the op's input or output the derivative is computed from. */
function unaryGrad(op: UnaryOp, g: Tensor, saved: Tensor): Tensor {
  const dx = empty(g.rt, saved.shape);
  const spec: KernelSpec = { file: 'elementwise', entry: 'unary_backward', bindings: ['read', 'read', 'rw'], overrides: { OP: UNARY_CODE[op] } };
  g.rt.dispatch(spec, [g.binding(), saved.binding(), dx.binding()], { values: [dx.size, 0, 0, 0], format: 'uffu' }, groups(dx.size));
  return dx;
}

export function addScalar(a: Tensor, s: number): Tensor {
  const out = unaryRaw('affine', a, 1, s);
  return record(out, 'addScalar', [a], (g) => [g]);
}

export function mulScalar(a: Tensor, s: number): Tensor {
  const out = unaryRaw('affine', a, s, 0);
  return record(out, 'mulScalar', [a], (g) => [unaryRaw('affine', g, s, 0)]);
}

export function neg(a: Tensor): Tensor {
  const out = unaryRaw('affine', a, -1, 0);
  return record(out, 'neg', [a], (g) => [unaryRaw('affine', g, -1, 0)]);
}

// Derivatives from the output where that is cheaper (exp, sqrt, tanh, sigmoid), from the input otherwise.
export function exp(x: Tensor): Tensor {
  const out = unaryRaw('exp', x);
  return record(out, 'exp', [x], (g) => [unaryGrad('exp', g, out)]);
}

export function log(x: Tensor): Tensor {
  const out = unaryRaw('log', x);
  return record(out, 'log', [x], (g) => [unaryGrad('log', g, x)]);
}

export function sqrt(x: Tensor): Tensor {
  const out = unaryRaw('sqrt', x);
  return record(out, 'sqrt', [x], (g) => [unaryGrad('sqrt', g, out)]);
}

export function tanh(x: Tensor): Tensor {
  const out = unaryRaw('tanh', x);
  return record(out, 'tanh', [x], (g) => [unaryGrad('tanh', g, out)]);
}

export function sigmoid(x: Tensor): Tensor {
  const out = unaryRaw('sigmoid', x);
  return record(out, 'sigmoid', [x], (g) => [unaryGrad('sigmoid', g, out)]);
}

export function relu(x: Tensor): Tensor {
  const out = unaryRaw('relu', x);
  return record(out, 'relu', [x], (g) => [unaryGrad('relu', g, x)]);
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(x: Tensor): Tensor {
  const out = unaryRaw('gelu', x);
  return record(out, 'gelu', [x], (g) => [unaryGrad('gelu', g, x)]);
}

// ---- bias + activation ---------------------------------------------------------------------------------------

/**
 * act(x + bias) with bias [D] broadcast over x's last axis (D), in one kernel. Backward is one kernel for dx
 * (recomputing x + bias) plus a column sum of dx for dbias.
 */
export function biasAct(x: Tensor, bias: Tensor, act: BiasActivation): Tensor {
  assertF32(x, 'biasAct');
  assertF32(bias, 'biasAct');
  const d = x.rank ? x.shape[x.rank - 1] : 1;
  if (bias.rank !== 1 || bias.shape[0] !== d) {
    throw new ShapeError(`biasAct: bias ${fmtShape(bias.shape)} does not match the last axis of x ${fmtShape(x.shape)}`);
  }
  const code = ACT_CODE[act];
  if (code === undefined) throw new Error(`biasAct: unknown activation '${act}'`);
  const out = empty(x.rt, x.shape);
  const fwd: KernelSpec = { file: 'elementwise', entry: 'bias_act', bindings: ['read', 'read', 'rw'], overrides: { ACT: code } };
  x.rt.dispatch(fwd, [x.binding(), bias.binding(), out.binding()], { values: [x.size, d, 0, 0] }, groups(x.size));
  return record(out, `biasAct(${act})`, [x, bias], (g) => {
    let dx: Tensor;
    if (act === 'none') dx = g;
    else {
      dx = empty(x.rt, x.shape);
      const bwd: KernelSpec = { file: 'elementwise', entry: 'bias_act_backward', bindings: ['read', 'read', 'read', 'rw'], overrides: { ACT: code } };
      x.rt.dispatch(bwd, [g.binding(), x.binding(), bias.binding(), dx.binding()], { values: [x.size, d, 0, 0] }, groups(x.size));
    }
    let dbias: Tensor | null = null;
    if (bias.requiresGrad) {
      const rows = dx.reshape([x.size / Math.max(d, 1), d]);
      dbias = sum(rows, 0);
      rows.dispose();
    }
    if (!x.requiresGrad && dx !== g) {
      dx.dispose();
      return [null, dbias];
    }
    return [x.requiresGrad ? dx : null, dbias];
  });
}
