// Ranking evaluation of next-item models on the GPU, never writing a [users, items] score matrix.
//
// - rankFullCatalog: per user, how many catalogue items score strictly above the target and how many tie with it
//   (seen items and the padding id excluded, the target never excluded), plus the user's top-K ids (K ≤ 128) for
//   coverage. One workgroup per user walks the item table in tiles (kernels/rank_eval.wgsl); a table above one
//   storage binding is walked one row range per dispatch, counts and top-K carried across ranges.
// - sampleNegatives + rankSampled: the original SASRec protocol (the target among 100 random unseen items; inflated
//   numbers, only for comparison with old tables), seeded.
// - itemPopularity + rankPopularity: the popularity baseline (score = an item's count in training), through the
//   same kernel with d = 1.
// - rankNextItem: a model's next-item ranking for given histories (the leave-one-out protocol: history = the
//   user's items before the held-out one), in batches of users.
// Metrics from the counts (tie rule, coverage): ./metrics.ts. CPU reference: src/engine/cpu/ranking.ts.
//
// Inputs are plain arrays (targets, seen lists as CSR offsets + items), so any data source can call these.
// hidden [users, d] is bound whole: pass users in batches when it would exceed one binding (rt.dispatch refuses it
// with a BindingLimitError naming the tensor).
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import { Rng } from '../data/rng';
import type { Model } from '../nn/models';
import { embedding } from '../ops/embedding';
import { ShapeError, Tensor, empty, fmtShape, fromArray, noGrad, rowRanges, tidy } from '../tensor/tensor';
import { checkTargets, packSeen, RankingAccumulator, type RankingMetrics, type SeenCsr } from './metrics';

export { csrOf, RankingAccumulator, rankingMetrics, type RankingMetrics, type SeenCsr } from './metrics';

/** Longest top-K list the kernel keeps (its workgroup memory holds 2 × 128 candidates). */
export const MAX_TOP_K = 128;
const NO_PAD = 0xffffffff;
const RANK_FULL: KernelSpec = { file: 'rank_eval', entry: 'rank_full', bindings: ['read', 'read', 'read', 'read', 'read', 'rw', 'rw'] };
const RANK_SAMPLED: KernelSpec = { file: 'rank_eval', entry: 'rank_sampled', bindings: ['read', 'read', 'read', 'rw'] };

export interface RankCounts {
  /** Per user: candidates scoring strictly above the target. */
  greater: Uint32Array;
  /** Per user: other candidates scoring exactly the target's score. */
  equal: Uint32Array;
  /** [users, k] top-k ids (best first; equal scores: smaller id first), −1 past the last candidate; null when k = 0. */
  topK: Int32Array | null;
  k: number;
}

export interface FullRankOptions {
  /** Top-K list length for coverage (0 = none; default 10; at most MAX_TOP_K). */
  k?: number;
  /** The padding id, never a candidate (default 0; null = none). */
  pad?: number | null;
}

function check2d(t: Tensor, what: string, where: string): void {
  if (t.dtype !== 'f32' || t.rank !== 2) throw new ShapeError(`${where}: ${what} must be a 2-D f32 tensor, got ${t.dtype} ${fmtShape(t.shape)}`);
}

/** Full-catalogue counts of each user's target: hidden [users, d] (the query of each user), table [V, d]. */
export async function rankFullCatalog(hidden: Tensor, table: Tensor, targets: ArrayLike<number>, seen: SeenCsr | null, opts: FullRankOptions = {}): Promise<RankCounts> {
  const where = 'rankFullCatalog';
  check2d(hidden, 'hidden', where);
  check2d(table, 'the item table', where);
  const [U, d] = hidden.shape;
  const [V, d2] = table.shape;
  if (d !== d2) throw new ShapeError(`${where}: hidden ${fmtShape(hidden.shape)} and item table ${fmtShape(table.shape)} differ in width`);
  if (targets.length !== U) throw new ShapeError(`${where}: ${targets.length} targets for hidden ${fmtShape(hidden.shape)} (one per user)`);
  const k = opts.k ?? 10;
  if (!Number.isInteger(k) || k < 0 || k > MAX_TOP_K) throw new RangeError(`${where}: top-K length must be an integer in 0..${MAX_TOP_K} (the kernel keeps the lists in workgroup memory), got ${k}`);
  const pad = opts.pad === undefined ? 0 : opts.pad;
  checkTargets(targets, V, pad, where);
  if (U === 0) return { greater: new Uint32Array(0), equal: new Uint32Array(0), topK: k ? new Int32Array(0) : null, k };
  const { packed, base } = packSeen(seen, targets, V, pad);
  const rt = hidden.rt;
  const reads = noGrad(() =>
    tidy(() => {
      const tg = fromArray(rt, Int32Array.from(targets), [U], 'i32');
      const temb = embedding(table, tg); // the target rows, whichever range they live in
      const seenT = fromArray(rt, packed, [packed.length], 'u32');
      const counts = empty(rt, [U, 2], 'u32');
      const top = empty(rt, [Math.max(1, U * k * 2)], 'u32');
      const ranges = rowRanges(table, d, { where });
      ranges.forEach((r, i) => {
        const values = [U, d, r.r0, r.r1, r.lead, k, i === 0 ? 1 : 0, pad ?? NO_PAD, base, 0, 0, 0];
        rt.dispatch(RANK_FULL, [hidden.binding(), r.binding, temb.binding(), tg.binding(), seenT.binding(), counts.binding(), top.binding()], { values }, U);
      });
      return { counts: counts.toArray(), top: k ? top.toArray() : null };
    }),
  );
  const [c, t] = await Promise.all([reads.counts, reads.top]);
  const cu = new Uint32Array(c.buffer, c.byteOffset, c.length);
  const greater = new Uint32Array(U);
  const equal = new Uint32Array(U);
  for (let u = 0; u < U; u++) {
    greater[u] = cu[2 * u];
    equal[u] = cu[2 * u + 1];
  }
  let topK: Int32Array | null = null;
  if (t) {
    const tu = new Uint32Array(t.buffer, t.byteOffset, t.length);
    topK = new Int32Array(U * k);
    for (let i = 0; i < U * k; i++) topK[i] = tu[2 * i + 1] === NO_PAD ? -1 : tu[2 * i + 1];
  }
  return { greater, equal, topK, k };
}

/**
 * `count` distinct negatives per user, uniform over the items that are not the padding id, not seen and not the
 * target; deterministic in `seed` (users drawn in order from one generator). Throws when a user has fewer unseen
 * items than `count`.
 */
export function sampleNegatives(targets: ArrayLike<number>, seen: SeenCsr | null, numItems: number, opts: { count?: number; seed: number; pad?: number | null }): Int32Array {
  const C = opts.count ?? 100;
  const pad = opts.pad === undefined ? 0 : opts.pad;
  checkTargets(targets, numItems, pad, 'sampleNegatives');
  const { packed, base } = packSeen(seen, targets, numItems, pad);
  const U = targets.length;
  const out = new Int32Array(U * C);
  const rng = new Rng(opts.seed, 0x5a3);
  for (let u = 0; u < U; u++) {
    const banned = new Set<number>(packed.subarray(base + packed[u], base + packed[u + 1]));
    banned.add(targets[u]);
    if (pad !== null && pad >= 0 && pad < numItems) banned.add(pad);
    const pool = numItems - banned.size;
    if (pool < C) throw new RangeError(`sampleNegatives: user ${u} has ${pool} unseen items, fewer than the ${C} negatives asked for`);
    const chosen = new Set<number>();
    if (pool < 2 * C) {
      // Few to choose from: a partial Fisher–Yates shuffle of the pool, rejection would loop long.
      const all: number[] = [];
      for (let j = 0; j < numItems; j++) if (!banned.has(j)) all.push(j);
      for (let i = 0; i < C; i++) {
        const r = i + rng.int(all.length - i);
        [all[i], all[r]] = [all[r], all[i]];
        out[u * C + i] = all[i];
      }
      continue;
    }
    let i = 0;
    while (i < C) {
      const j = rng.int(numItems);
      if (banned.has(j) || chosen.has(j)) continue;
      chosen.add(j);
      out[u * C + i++] = j;
    }
  }
  return out;
}

/** Counts of each user's target among its sampled candidates [users, count] (the sampled-negatives protocol). */
export async function rankSampled(hidden: Tensor, table: Tensor, targets: ArrayLike<number>, candidates: Int32Array, count: number): Promise<{ greater: Uint32Array; equal: Uint32Array }> {
  const where = 'rankSampled';
  check2d(hidden, 'hidden', where);
  check2d(table, 'the item table', where);
  const [U, d] = hidden.shape;
  const V = table.shape[0];
  if (table.shape[1] !== d) throw new ShapeError(`${where}: hidden ${fmtShape(hidden.shape)} and item table ${fmtShape(table.shape)} differ in width`);
  if (targets.length !== U || candidates.length !== U * count) throw new ShapeError(`${where}: ${targets.length} targets and ${candidates.length} candidates for hidden ${fmtShape(hidden.shape)} with ${count} candidates each`);
  checkTargets(targets, V, null, where);
  for (let i = 0; i < candidates.length; i++) {
    if (candidates[i] < 0 || candidates[i] >= V) throw new RangeError(`${where}: user ${Math.floor(i / count)} has candidate ${candidates[i]}, outside 0..${V - 1}`);
  }
  if (U === 0) return { greater: new Uint32Array(0), equal: new Uint32Array(0) };
  const rt = hidden.rt;
  const read = noGrad(() =>
    tidy(() => {
      const temb = embedding(table, fromArray(rt, Int32Array.from(targets), [U], 'i32'));
      const cand = embedding(table, fromArray(rt, candidates, [U * count], 'i32'));
      const counts = empty(rt, [U, 2], 'u32');
      const values = [U, d, 0, 0, 0, 0, 0, 0, 0, count, 0, 0];
      rt.dispatch(RANK_SAMPLED, [hidden.binding(), cand.binding(), temb.binding(), counts.binding()], { values }, Math.ceil(U / 64));
      return counts.toArray();
    }),
  );
  const c = await read;
  const cu = new Uint32Array(c.buffer, c.byteOffset, c.length);
  const greater = new Uint32Array(U);
  const equal = new Uint32Array(U);
  for (let u = 0; u < U; u++) {
    greater[u] = cu[2 * u];
    equal[u] = cu[2 * u + 1];
  }
  return { greater, equal };
}

/** Interactions per item id in the training sequences (the popularity baseline's scores; ids outside 0..V-1 are ignored). */
export function itemPopularity(sequences: readonly ArrayLike<number>[], numItems: number): Float32Array {
  const c = new Float32Array(numItems);
  for (const s of sequences) for (let i = 0; i < s.length; i++) if (s[i] >= 0 && s[i] < numItems) c[s[i]]++;
  return c;
}

/** The popularity baseline's counts: every user scores item j by popularity[j] (exact in f32 below 2^24). */
export async function rankPopularity(rt: Runtime, popularity: Float32Array, targets: ArrayLike<number>, seen: SeenCsr | null, opts: FullRankOptions = {}): Promise<RankCounts> {
  const U = targets.length;
  const hidden = fromArray(rt, new Float32Array(U).fill(1), [U, 1]);
  const table = fromArray(rt, popularity, [popularity.length, 1]);
  try {
    return await rankFullCatalog(hidden, table, targets, seen, opts);
  } finally {
    hidden.dispose();
    table.dispose();
  }
}

export interface NextItemQueries {
  /** Per user: the items read before the target, oldest first (only the last `seqLen` are read). */
  histories: readonly Int32Array[];
  /** Per user: the held-out item. */
  targets: ArrayLike<number>;
  /** Per user: items never recommended (usually the whole history); null = none. */
  seen: SeenCsr | null;
}

/**
 * A next-item model's full-catalogue metrics on given queries. Leave-one-out from a split {train, valid, test}:
 * validation = { histories: train, targets: valid, seen: csrOf(train) }; test = the same with each history
 * extended by its validation item. Each history's last `seqLen` items, right-padded,
 * go through model.hidden in batches of `batchSize` users; the hidden state at the last real position is ranked
 * against the model's output table (head.weight: rows are item ids, row `pad` excluded). Empty histories are
 * refused (the model has nothing to read).
 */
export async function rankNextItem(
  rt: Runtime,
  model: Model,
  q: NextItemQueries,
  /** k: the metrics' cut-off and the top-K length for coverage (default 10). */
  opts: { seqLen: number; batchSize?: number; k?: number; pad?: number | null },
): Promise<RankingMetrics> {
  const U = q.histories.length;
  if (q.targets.length !== U) throw new ShapeError(`rankNextItem: ${U} histories, ${q.targets.length} targets`);
  const T = opts.seqLen;
  const B = Math.max(1, opts.batchSize ?? 256);
  const k = opts.k ?? 10;
  const pad = opts.pad === undefined ? 0 : opts.pad;
  const V = model.head.weight.shape[0];
  const acc = new RankingAccumulator(k, V - (pad !== null && pad >= 0 && pad < V ? 1 : 0));
  const wasTraining = model.training;
  model.eval();
  try {
    for (let u0 = 0; u0 < U; u0 += B) {
      const n = Math.min(B, U - u0);
      const inputs = new Int32Array(n * T);
      const last = new Int32Array(n);
      const tg = new Int32Array(n);
      const offsets = new Int32Array(n + 1);
      const items: number[] = [];
      for (let i = 0; i < n; i++) {
        const h = q.histories[u0 + i];
        if (h.length === 0) throw new RangeError(`rankNextItem: user ${u0 + i} has an empty history`);
        const w = h.subarray(Math.max(0, h.length - T));
        inputs.set(w, i * T);
        last[i] = i * T + w.length - 1;
        tg[i] = q.targets[u0 + i];
        if (q.seen) {
          const a = q.seen.offsets[u0 + i];
          const b = q.seen.offsets[u0 + i + 1];
          for (let j = a; j < b; j++) items.push(q.seen.items[j]);
        }
        offsets[i + 1] = items.length;
      }
      const hidden = noGrad(() =>
        tidy(() => embedding(model.hidden(fromArray(rt, inputs, [n, T], 'i32')), fromArray(rt, last, [n], 'i32'))),
      );
      try {
        const r = await rankFullCatalog(hidden, model.head.weight, tg, q.seen ? { offsets, items: Int32Array.from(items) } : null, { k, pad });
        acc.add(r.greater, r.equal, r.topK ? { ids: r.topK, length: k } : null);
      } finally {
        hidden.dispose();
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return acc.result();
}
