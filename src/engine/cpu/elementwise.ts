// Plain-JS references for ops/elementwise.ts (tests compare the GPU kernels against these). Computed in f64,
// returned as f32.

export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div';
export type UnaryOpName = 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'gelu' | 'neg';
export type ActName = 'none' | 'relu' | 'gelu';

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

export function geluRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x * x * x)));
}

export function geluGradRef(x: number): number {
  const t = Math.tanh(GELU_K * (x + GELU_C * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
}

/** NumPy broadcast of two shapes, or null when they do not broadcast. */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < r; k++) {
    const da = a[a.length - r + k] ?? 1;
    const db = b[b.length - r + k] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Flat index into a (right-aligned, possibly broadcast) operand for each output element. */
export function broadcastIndexRef(shape: readonly number[], outShape: readonly number[]): Int32Array {
  const n = outShape.reduce((p, d) => p * d, 1);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const aligned = [...Array(r - shape.length).fill(1), ...shape];
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let k = r - 1; k >= 0; k--) {
    strides[k] = aligned[k] === 1 ? 0 : s;
    s *= aligned[k];
  }
  const coord = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let k = 0; k < r; k++) off += coord[k] * strides[k];
    idx[i] = off;
    for (let k = r - 1; k >= 0; k--) {
      if (++coord[k] < outShape[k]) break;
      coord[k] = 0;
    }
  }
  return idx;
}

export function binaryRef(op: BinaryOpName, a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[]): { data: Float32Array; shape: number[] } {
  const shape = broadcastShapeRef(aShape, bShape);
  if (!shape) throw new Error(`shapes [${aShape}] and [${bShape}] do not broadcast`);
  const ia = broadcastIndexRef(aShape, shape);
  const ib = broadcastIndexRef(bShape, shape);
  const data = new Float32Array(ia.length);
  for (let i = 0; i < data.length; i++) {
    const x = a[ia[i]];
    const y = b[ib[i]];
    data[i] = op === 'add' ? x + y : op === 'sub' ? x - y : op === 'mul' ? x * y : x / y;
  }
  return { data, shape };
}

/** Sum a broadcast result back to `shape` (the reference for sumToShape and binary backward). */
export function sumToShapeRef(x: ArrayLike<number>, xShape: readonly number[], shape: readonly number[]): Float32Array {
  const idx = broadcastIndexRef(shape, xShape);
  const acc = new Float64Array(shape.reduce((p, d) => p * d, 1));
  for (let i = 0; i < idx.length; i++) acc[idx[i]] += x[i];
  return Float32Array.from(acc);
}

/** Gradients of a binary op for output gradient g, each summed back to its operand's shape. */
export function binaryGradRef(op: BinaryOpName, a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[], g: ArrayLike<number>): { da: Float32Array; db: Float32Array } {
  const shape = broadcastShapeRef(aShape, bShape)!;
  const ia = broadcastIndexRef(aShape, shape);
  const ib = broadcastIndexRef(bShape, shape);
  const ga = new Float64Array(g.length);
  const gb = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const x = a[ia[i]];
    const y = b[ib[i]];
    if (op === 'add') { ga[i] = g[i]; gb[i] = g[i]; }
    else if (op === 'sub') { ga[i] = g[i]; gb[i] = -g[i]; }
    else if (op === 'mul') { ga[i] = g[i] * y; gb[i] = g[i] * x; }
    else { ga[i] = g[i] / y; gb[i] = (-g[i] * x) / (y * y); }
  }
  return { da: sumToShapeRef(ga, shape, aShape), db: sumToShapeRef(gb, shape, bShape) };
}

export function unaryFnRef(op: UnaryOpName): (x: number) => number {
  switch (op) {
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'tanh': return Math.tanh;
    case 'sigmoid': return (x) => 1 / (1 + Math.exp(-x));
    case 'relu': return (x) => (x > 0 ? x : 0);
    case 'gelu': return geluRef;
    case 'neg': return (x) => -x;
  }
}

export function unaryGradFnRef(op: UnaryOpName): (x: number) => number {
  switch (op) {
    case 'exp': return Math.exp;
    case 'log': return (x) => 1 / x;
    case 'sqrt': return (x) => 0.5 / Math.sqrt(x);
    case 'tanh': return (x) => 1 - Math.tanh(x) ** 2;
    case 'sigmoid': return (x) => { const s = 1 / (1 + Math.exp(-x)); return s * (1 - s); };
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    case 'gelu': return geluGradRef;
    case 'neg': return () => -1;
  }
}

// Plain loops: Float32Array.from with a map function is an order of magnitude slower on 1M elements.
export function unaryRef(op: UnaryOpName, x: ArrayLike<number>): Float32Array {
  const f = unaryFnRef(op);
  const y = new Float32Array(x.length);
  for (let i = 0; i < y.length; i++) y[i] = f(x[i]);
  return y;
}

export function unaryGradRef(op: UnaryOpName, x: ArrayLike<number>, g: ArrayLike<number>): Float32Array {
  const f = unaryGradFnRef(op);
  const dx = new Float32Array(x.length);
  for (let i = 0; i < dx.length; i++) dx[i] = g[i] * f(x[i]);
  return dx;
}

function actRef(act: ActName): (z: number) => number {
  return act === 'relu' ? (z) => (z > 0 ? z : 0) : act === 'gelu' ? geluRef : (z) => z;
}

function actGradRef(act: ActName): (z: number) => number {
  return act === 'relu' ? (z) => (z > 0 ? 1 : 0) : act === 'gelu' ? geluGradRef : () => 1;
}

/** act(x + bias) with bias over the last axis of length bias.length. */
export function biasActRef(x: ArrayLike<number>, bias: ArrayLike<number>, act: ActName): Float32Array {
  const f = actRef(act);
  const d = bias.length;
  const y = new Float32Array(x.length);
  for (let i = 0; i < y.length; i++) y[i] = f(Math.fround(x[i] + bias[i % d]));
  return y;
}

export function biasActGradRef(x: ArrayLike<number>, bias: ArrayLike<number>, act: ActName, g: ArrayLike<number>): { dx: Float32Array; dbias: Float32Array } {
  const f = actGradRef(act);
  const d = bias.length;
  const dx = new Float32Array(x.length);
  for (let i = 0; i < dx.length; i++) dx[i] = g[i] * f(Math.fround(x[i] + bias[i % d]));
  const acc = new Float64Array(d);
  for (let i = 0; i < dx.length; i++) acc[i % d] += dx[i];
  return { dx, dbias: Float32Array.from(acc) };
}
