// Plain-JS reference for src/engine/eval/ranking.ts (kernels/rank_eval.wgsl): the same candidates (no padding id,
// no seen item; the target never excluded), the same counts (strictly greater, equal other than the target) and
// the same top-K order (higher score, then smaller id). Scores are accumulated in f32 in the kernel's order
// (c = 0..d-1), so inputs whose products and sums are exact in f32 (the tests' quantised values) give identical
// ties on both sides.
import { packSeen, type SeenCsr } from '../eval/metrics';

export interface CpuRankResult {
  greater: Uint32Array;
  equal: Uint32Array;
  /** [users, k] ids, −1 where fewer than k candidates exist. */
  topK: Int32Array;
}

function dot(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number): number {
  let s = 0;
  for (let c = 0; c < d; c++) s = Math.fround(s + Math.fround(a[ao + c] * b[bo + c]));
  return s;
}

/** hidden [users, d], table [V, d]: full-catalogue counts and top-k lists. */
export function cpuRankFullCatalog(
  hidden: ArrayLike<number>,
  table: ArrayLike<number>,
  d: number,
  targets: ArrayLike<number>,
  seen: SeenCsr | null,
  opts: { k: number; pad?: number | null },
): CpuRankResult {
  const U = targets.length;
  const V = table.length / d;
  const pad = opts.pad === undefined ? 0 : opts.pad;
  const { packed, base } = packSeen(seen, targets, V, pad);
  const k = opts.k;
  const greater = new Uint32Array(U);
  const equal = new Uint32Array(U);
  const topK = new Int32Array(U * k).fill(-1);
  for (let u = 0; u < U; u++) {
    const t = targets[u];
    const st = dot(hidden, u * d, table, t * d, d);
    const seenSet = new Set(packed.subarray(base + packed[u], base + packed[u + 1]));
    const cands: { s: number; j: number }[] = [];
    for (let j = 0; j < V; j++) {
      if (j === pad || seenSet.has(j)) continue;
      const s = dot(hidden, u * d, table, j * d, d);
      if (j !== t) {
        if (s > st) greater[u]++;
        else if (s === st) equal[u]++;
      }
      cands.push({ s, j });
    }
    cands.sort((a, b) => b.s - a.s || a.j - b.j);
    for (let i = 0; i < Math.min(k, cands.length); i++) topK[u * k + i] = cands[i].j;
  }
  return { greater, equal, topK };
}

/** The sampled protocol: counts of the target against the given candidates [users, c]. */
export function cpuRankSampled(
  hidden: ArrayLike<number>,
  table: ArrayLike<number>,
  d: number,
  targets: ArrayLike<number>,
  candidates: Int32Array,
  c: number,
): { greater: Uint32Array; equal: Uint32Array } {
  const U = targets.length;
  const greater = new Uint32Array(U);
  const equal = new Uint32Array(U);
  for (let u = 0; u < U; u++) {
    const st = dot(hidden, u * d, table, targets[u] * d, d);
    for (let i = 0; i < c; i++) {
      const s = dot(hidden, u * d, table, candidates[u * c + i] * d, d);
      if (s > st) greater[u]++;
      else if (s === st) equal[u]++;
    }
  }
  return { greater, equal };
}
