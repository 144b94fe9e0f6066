// Ranking metrics from per-user counts (pure arithmetic: shared by the GPU path, src/engine/eval/ranking.ts, and
// the CPU reference, src/engine/cpu/ranking.ts).
//
// Ties. A user's target has `greater` candidates scoring strictly above it and `equal` other candidates scoring
// exactly the same. Its 0-based position is taken as uniform over greater … greater + equal (a random order among
// equal scores), and every metric is its expectation over that position: HR@K = P(position < K),
// NDCG@K = E[1/log2(position + 2) · 1{position < K}], MRR = E[1/(position + 1)]. Without ties these are the usual
// values; a model that scores everything equal gets chance, not a perfect score (strict counting would give
// that) nor zero (counting ties as above).
//
// Coverage@K: distinct items in the users' top-K lists over the catalogue size (items that can be recommended:
// every id but the padding one). Top-K lists are padded with −1 when fewer than K candidates exist.

const EULER_GAMMA = 0.5772156649015329;

/** H(n) = Σ_{i=1..n} 1/i; exact summation below 4096, the asymptotic series above (error < 1e-15 there). */
export function harmonic(n: number): number {
  if (n <= 0) return 0;
  if (n < 4096) {
    let s = 0;
    for (let i = n; i >= 1; i--) s += 1 / i;
    return s;
  }
  const inv = 1 / n;
  return Math.log(n) + EULER_GAMMA + 0.5 * inv - (inv * inv) / 12 + (inv * inv * inv * inv) / 120;
}

/** One user's expected HR@K, NDCG@K and reciprocal rank given the counts above and equal to its target. */
export function userMetrics(greater: number, equal: number, k: number): { hr: number; ndcg: number; rr: number } {
  const n = equal + 1;
  const lastInK = Math.min(greater + equal, k - 1);
  let ndcg = 0;
  for (let pos = greater; pos <= lastInK; pos++) ndcg += 1 / Math.log2(pos + 2);
  const hr = Math.max(0, lastInK - greater + 1) / n;
  const rr = (harmonic(greater + equal + 1) - harmonic(greater)) / n;
  return { hr, ndcg: ndcg / n, rr };
}

export interface RankingMetrics {
  /** Users evaluated. */
  users: number;
  k: number;
  ndcg: number;
  hr: number;
  mrr: number;
  /** Mean 0-based position of the target (greater + equal / 2). */
  meanRank: number;
  /** Distinct items in the top-K lists / catalogue size; null when no top-K lists were kept. */
  coverage: number | null;
}

/** Sums per-user results across batches of users; `result()` gives the means. */
export class RankingAccumulator {
  private users = 0;
  private hr = 0;
  private ndcg = 0;
  private rr = 0;
  private rank = 0;
  private readonly distinct = new Set<number>();
  private sawTop = false;

  /** `catalog`: the items that can be recommended (coverage's denominator). */
  constructor(
    readonly k: number,
    readonly catalog: number,
  ) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`ranking metrics: K must be a positive integer, got ${k}`);
  }

  /** Counts of a batch of users; `topK` [users, topLength] ids (−1 = none), read up to K per user. */
  add(greater: ArrayLike<number>, equal: ArrayLike<number>, topK?: { ids: Int32Array; length: number } | null): void {
    if (greater.length !== equal.length) throw new RangeError(`ranking metrics: ${greater.length} greater counts vs ${equal.length} equal counts`);
    for (let u = 0; u < greater.length; u++) {
      const m = userMetrics(greater[u], equal[u], this.k);
      this.hr += m.hr;
      this.ndcg += m.ndcg;
      this.rr += m.rr;
      this.rank += greater[u] + equal[u] / 2;
    }
    this.users += greater.length;
    if (topK) {
      this.sawTop = true;
      const L = topK.length;
      const take = Math.min(L, this.k);
      for (let u = 0; u < greater.length; u++) {
        for (let i = 0; i < take; i++) {
          const id = topK.ids[u * L + i];
          if (id >= 0) this.distinct.add(id);
        }
      }
    }
  }

  result(): RankingMetrics {
    const n = this.users;
    const mean = (s: number) => (n ? s / n : NaN);
    return {
      users: n,
      k: this.k,
      ndcg: mean(this.ndcg),
      hr: mean(this.hr),
      mrr: mean(this.rr),
      meanRank: mean(this.rank),
      coverage: this.sawTop && this.catalog > 0 ? this.distinct.size / this.catalog : null,
    };
  }
}

/** Metrics of one set of counts (and top-K lists) in one call. */
export function rankingMetrics(
  greater: ArrayLike<number>,
  equal: ArrayLike<number>,
  k: number,
  catalog: number,
  topK?: { ids: Int32Array; length: number } | null,
): RankingMetrics {
  const acc = new RankingAccumulator(k, catalog);
  acc.add(greater, equal, topK);
  return acc.result();
}

// ---- seen lists ---------------------------------------------------------------------------------------------

/** Per-user seen items in CSR form: user u's items are items[offsets[u] .. offsets[u + 1]). */
export interface SeenCsr {
  offsets: ArrayLike<number>;
  items: ArrayLike<number>;
}

/** CSR of per-user lists (e.g. each user's training history as its seen items). */
export function csrOf(lists: readonly ArrayLike<number>[]): { offsets: Int32Array; items: Int32Array } {
  const offsets = new Int32Array(lists.length + 1);
  lists.forEach((l, u) => (offsets[u + 1] = offsets[u] + l.length));
  const items = new Int32Array(offsets[lists.length]);
  lists.forEach((l, u) => items.set(Array.from(l), offsets[u]));
  return { offsets, items };
}

/**
 * The seen lists as the kernel and the CPU reference read them: per user sorted ascending, deduplicated, without
 * the padding id and without the user's own target (the target is always ranked). Ids outside [0, numItems)
 * throw, naming the user and the id. Layout: offsets [users + 1] then the items, in one Uint32Array.
 */
export function packSeen(seen: SeenCsr | null | undefined, targets: ArrayLike<number>, numItems: number, pad: number | null): { packed: Uint32Array; base: number } {
  const U = targets.length;
  const base = U + 1;
  if (!seen) return { packed: new Uint32Array(base), base };
  if (seen.offsets.length !== U + 1) throw new RangeError(`seen items: offsets has ${seen.offsets.length} entries, expected users + 1 = ${U + 1}`);
  const lists: Uint32Array[] = [];
  let total = 0;
  for (let u = 0; u < U; u++) {
    const a = seen.offsets[u];
    const b = seen.offsets[u + 1];
    if (!(a >= 0 && b >= a && b <= seen.items.length)) throw new RangeError(`seen items: offsets[${u}..${u + 1}] = ${a}..${b} is not a range of the ${seen.items.length} items`);
    const l: number[] = [];
    for (let i = a; i < b; i++) {
      const id = seen.items[i];
      if (!Number.isInteger(id) || id < 0 || id >= numItems) throw new RangeError(`seen items: user ${u} has item ${id}, outside 0..${numItems - 1}`);
      if (id !== targets[u] && id !== pad) l.push(id);
    }
    const s = Uint32Array.from(l).sort();
    let w = 0;
    for (let i = 0; i < s.length; i++) if (i === 0 || s[i] !== s[i - 1]) s[w++] = s[i];
    lists.push(s.subarray(0, w));
    total += w;
  }
  const packed = new Uint32Array(base + total);
  let o = 0;
  for (let u = 0; u < U; u++) {
    packed[u] = o;
    packed.set(lists[u], base + o);
    o += lists[u].length;
  }
  packed[U] = o;
  return { packed, base };
}

/** Checks targets against the catalogue: an integer in [0, numItems), not the padding id. */
export function checkTargets(targets: ArrayLike<number>, numItems: number, pad: number | null, where: string): void {
  for (let u = 0; u < targets.length; u++) {
    const t = targets[u];
    if (!Number.isInteger(t) || t < 0 || t >= numItems || t === pad) {
      throw new RangeError(`${where}: user ${u} has target ${t}, not an item id in 0..${numItems - 1}${pad !== null ? ` other than the padding id ${pad}` : ''}`);
    }
  }
}
