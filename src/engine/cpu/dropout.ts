// Plain-JS reference for ops/dropout.ts, bit-exact with kernels/dropout.wgsl's hash.

function mix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

export function dropoutHash(seed: number, i: number): number {
  const key = mix32((seed + 0x9e3779b9) >>> 0);
  return mix32((mix32((i ^ key) >>> 0) + key) >>> 0);
}

/** The keep threshold on the hash for drop probability p (shared with ops/dropout.ts). */
export function dropoutThreshold(p: number): number {
  return Math.min(Math.round(p * 4294967296), 4294967295);
}

export function dropoutMaskRef(n: number, p: number, seed: number): Uint8Array {
  const t = dropoutThreshold(p);
  const s = seed >>> 0;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = dropoutHash(s, i) >= t ? 1 : 0;
  return mask;
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number): Float32Array {
  const mask = dropoutMaskRef(x.length, p, seed);
  const scale = Math.fround(1 / (1 - p));
  const y = new Float32Array(x.length);
  for (let i = 0; i < y.length; i++) y[i] = mask[i] ? x[i] * scale : 0;
  return y;
}
