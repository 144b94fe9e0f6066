// Plain-JS references for ops/softmax.ts: rows of length d, computed in f64.

export function softmaxRef(x: ArrayLike<number>, d: number, log = false): Float32Array {
  const y = new Float32Array(x.length);
  for (let base = 0; base < x.length; base += d) {
    let m = -Infinity;
    for (let j = 0; j < d; j++) m = Math.max(m, x[base + j]);
    let s = 0;
    for (let j = 0; j < d; j++) s += Math.exp(x[base + j] - m);
    for (let j = 0; j < d; j++) y[base + j] = log ? x[base + j] - m - Math.log(s) : Math.exp(x[base + j] - m) / s;
  }
  return y;
}

/** dx for output gradient g, given the forward output y (probabilities, or log-probabilities when log). */
export function softmaxGradRef(y: ArrayLike<number>, g: ArrayLike<number>, d: number, log = false): Float32Array {
  const dx = new Float32Array(y.length);
  for (let base = 0; base < y.length; base += d) {
    let t = 0;
    for (let j = 0; j < d; j++) t += log ? g[base + j] : g[base + j] * y[base + j];
    for (let j = 0; j < d; j++) dx[base + j] = log ? g[base + j] - Math.exp(y[base + j]) * t : y[base + j] * (g[base + j] - t);
  }
  return dx;
}
