// Plain-JS reference for ops/embedding.ts. Out-of-range indices read zeros and receive no gradient, as in the
// kernel.

export function embeddingRef(table: ArrayLike<number>, v: number, d: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let t = 0; t < idx.length; t++) {
    const r = idx[t];
    if (r < 0 || r >= v) continue;
    for (let j = 0; j < d; j++) out[t * d + j] = table[r * d + j];
  }
  return out;
}

export function embeddingGradRef(g: ArrayLike<number>, v: number, d: number, idx: ArrayLike<number>): Float32Array {
  const acc = new Float64Array(v * d);
  for (let t = 0; t < idx.length; t++) {
    const r = idx[t];
    if (r < 0 || r >= v) continue;
    for (let j = 0; j < d; j++) acc[r * d + j] += g[t * d + j];
  }
  return Float32Array.from(acc);
}
