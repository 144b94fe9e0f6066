// Plain-JS references for ops/loss.ts: cross-entropy over rows of length c, computed in f64. A row whose target
// is ignoreIndex or outside [0, c) is ignored (no loss, not counted, zero gradient), as on the GPU.

export interface CrossEntropyRefOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum';
}

function rowLse(x: ArrayLike<number>, base: number, c: number): number {
  let m = -Infinity;
  for (let j = 0; j < c; j++) m = Math.max(m, x[base + j]);
  let s = 0;
  for (let j = 0; j < c; j++) s += Math.exp(x[base + j] - m);
  return m + Math.log(s);
}

function isValid(t: number, c: number, ignoreIndex: number): boolean {
  return t !== ignoreIndex && t >= 0 && t < c;
}

/** The loss, and the number of rows counted. */
export function crossEntropyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, c: number, opts: CrossEntropyRefOptions = {}): { loss: number; count: number } {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  let total = 0;
  let count = 0;
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r];
    if (!isValid(t, c, ignoreIndex)) continue;
    total += rowLse(logits, r * c, c) - logits[r * c + t];
    count++;
  }
  const loss = (opts.reduction ?? 'mean') === 'sum' ? total : count ? total / count : 0;
  return { loss, count };
}

/** dlogits for the loss's gradient g. */
export function crossEntropyGradRef(logits: ArrayLike<number>, targets: ArrayLike<number>, c: number, g = 1, opts: CrossEntropyRefOptions = {}): Float32Array {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const { count } = crossEntropyRef(logits, targets, c, opts);
  const coef = (opts.reduction ?? 'mean') === 'sum' ? g : count ? g / count : 0;
  const dx = new Float32Array(targets.length * c);
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r];
    if (!isValid(t, c, ignoreIndex)) continue;
    const lse = rowLse(logits, r * c, c);
    for (let j = 0; j < c; j++) dx[r * c + j] = (Math.exp(logits[r * c + j] - lse) - (j === t ? 1 : 0)) * coef;
  }
  return dx;
}
