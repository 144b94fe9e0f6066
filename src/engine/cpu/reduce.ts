// Plain-JS references for ops/reduce.ts, accumulating in f64.

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** [outer, len, inner] of `shape` around `axis`. */
function split(shape: readonly number[], axis: number): [number, number, number] {
  const prod = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
  return [prod(shape.slice(0, axis)), shape[axis], prod(shape.slice(axis + 1))];
}

function outShape(shape: readonly number[], axis: number, keepDim: boolean): number[] {
  return keepDim ? shape.map((d, k) => (k === axis ? 1 : d)) : shape.filter((_, k) => k !== axis);
}

function reduceRef(x: ArrayLike<number>, shape: readonly number[], axis: number | undefined, keepDim: boolean, init: number, f: (acc: number, v: number) => number, post: (acc: number, len: number) => number): { data: Float32Array; shape: number[] } {
  if (axis === undefined) {
    let acc = init;
    for (let i = 0; i < x.length; i++) acc = f(acc, x[i]);
    return { data: Float32Array.of(post(acc, x.length)), shape: keepDim ? shape.map(() => 1) : [] };
  }
  const ax = normAxis(axis, shape.length);
  const [outer, len, inner] = split(shape, ax);
  const data = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = init;
      for (let l = 0; l < len; l++) acc = f(acc, x[(o * len + l) * inner + i]);
      data[o * inner + i] = post(acc, len);
    }
  }
  return { data, shape: outShape(shape, ax, keepDim) };
}

export function sumRef(x: ArrayLike<number>, shape: readonly number[], axis?: number, keepDim = false): { data: Float32Array; shape: number[] } {
  return reduceRef(x, shape, axis, keepDim, 0, (a, v) => a + v, (a) => a);
}

export function meanRef(x: ArrayLike<number>, shape: readonly number[], axis?: number, keepDim = false): { data: Float32Array; shape: number[] } {
  return reduceRef(x, shape, axis, keepDim, 0, (a, v) => a + v, (a, n) => a / n);
}

export function maxRef(x: ArrayLike<number>, shape: readonly number[], axis: number, keepDim = false): { data: Float32Array; shape: number[] } {
  return reduceRef(x, shape, axis, keepDim, -Infinity, (a, v) => (v > a ? v : a), (a) => a);
}

/** First index of the maximum along axis. */
export function argmaxRef(x: ArrayLike<number>, shape: readonly number[], axis = -1): { data: Int32Array; shape: number[] } {
  const ax = normAxis(axis, shape.length);
  const [outer, len, inner] = split(shape, ax);
  const data = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = -Infinity;
      let bi = -1;
      for (let l = 0; l < len; l++) {
        const v = x[(o * len + l) * inner + i];
        if (bi < 0 || v > best) {
          best = v;
          bi = l;
        }
      }
      data[o * inner + i] = bi;
    }
  }
  return { data, shape: outShape(shape, ax, false) };
}

/** Gradient of max along axis: g to the first maximum, zero elsewhere. */
export function maxGradRef(x: ArrayLike<number>, shape: readonly number[], axis: number, g: ArrayLike<number>): Float32Array {
  const ax = normAxis(axis, shape.length);
  const [outer, len, inner] = split(shape, ax);
  const idx = argmaxRef(x, shape, ax).data;
  const dx = new Float32Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) dx[(o * len + idx[o * inner + i]) * inner + i] = g[o * inner + i];
  }
  return dx;
}
