// Plain-JS reference for ops/select.ts: the same composite keys (value key, ~index) and the same tie rule (equal
// values: the lower index ranks higher), found by sorting instead of a radix select.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The value key kernels/select.wgsl orders by: bits of |x| (abs) or the sign-flipped bits (signed). */
export function selectValueKey(x: number, abs: boolean): number {
  f32[0] = x;
  const b = u32[0];
  if (abs) return (b & 0x7fffffff) >>> 0;
  return b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

/** Indices of x from the largest key to the smallest (value key, then lower index first). */
export function cpuSelectOrder(x: ArrayLike<number>, abs: boolean): Uint32Array {
  const keys = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) keys[i] = selectValueKey(x[i], abs);
  const idx = new Uint32Array(x.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  idx.sort((a, b) => (keys[b] - keys[a]) || (a - b));
  return idx;
}

/** The k-th largest (1-based) as ops/select.ts's threshold key: [value key, ~index], plus the value and index. */
export function cpuKthLargest(x: ArrayLike<number>, k: number, abs = false): { hi: number; lo: number; value: number; index: number } {
  if (!Number.isInteger(k) || k < 1 || k > x.length) throw new RangeError(`cpuKthLargest: k = ${k} outside [1, ${x.length}]`);
  const index = cpuSelectOrder(x, abs)[k - 1];
  const value = abs ? Math.abs(Math.fround(x[index])) : Math.fround(x[index]);
  return { hi: selectValueKey(x[index], abs), lo: ~index >>> 0, value, index };
}

/** The 0/1 mask of the top `k` elements (by the same keys), or of ranks (skipTop, skipTop + k] in band mode. */
export function cpuTopKMask(x: ArrayLike<number>, k: number, abs = false, skipTop = 0): Uint8Array {
  const order = cpuSelectOrder(x, abs);
  const mask = new Uint8Array(x.length);
  for (let r = skipTop; r < Math.min(x.length, skipTop + k); r++) mask[order[r]] = 1;
  return mask;
}
