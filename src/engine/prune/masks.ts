// Masks from scores: a threshold per output row, per tensor or across all targets (global), or an exact N:M
// pattern; and the masked view: the pruned values written into the live parameter views from the dense copies.
//
// Thresholds: keep k = round(d·size) entries of each group (at least 1). The scores are read back ONCE when the
// table is built and sorted on the host, so every density is an index lookup and a point reads nothing back:
// it costs one tiny upload and one or two mask dispatches per target (a GPU select per point was ~12 dispatches
// per target plus a read-back stall, the bulk of a sweep's own overhead on a software adapter).
// - tensor: each target's (score, index) keys sorted; the k-th key is topKMask's threshold (the GPU select's key
//   layout, src/engine/ops/select.ts), so exactly k are kept with ties to the lower index; applied with
//   mask_select.
// - global: all the scores sorted once for the k-th largest value, then score ≥ threshold per target (ties at
//   the threshold are all kept) and the kept counts by binary search in each target's sorted scores.
// - row: each row sorted once; the same per row.
import type { Granularity, NmPattern } from '../../files/prune/options';
import { keepCount } from '../cpu/prune';
import { topKMask, type TopKThreshold } from '../ops/select';
import { Tensor, fromArray } from '../tensor/tensor';
import { maskNm, maskSelect, maskThreshold } from './kernels';
import type { ScoreSet } from './scores';
import type { PruneModel } from './session';

export interface MaskPoint {
  /** Kept fraction per target. */
  layers: number[];
  /** Kept fraction of all targeted entries. */
  kept: number;
}

/** The select's value key of an f32 (kernels/select.wgsl sel_hi, signed mode): unsigned order = float order. */
export function selectValueKey(bits: number): number {
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/** Indices of `scores` by descending select key, ties by ascending index: position k−1 is the k-th largest. */
export function rankOrder(scores: Float32Array): { hi: Uint32Array; order: Uint32Array } {
  const bits = new Uint32Array(scores.buffer, scores.byteOffset, scores.length);
  const hi = bits.map(selectValueKey);
  const order = new Uint32Array(scores.length).map((_, i) => i);
  order.sort((a, b) => hi[b] - hi[a] || a - b);
  return { hi, order };
}

export class ThresholdTable {
  private constructor(
    private readonly pm: PruneModel,
    private readonly set: ScoreSet,
    readonly granularity: Granularity,
    /** Row and global granularity: each target's scores sorted ascending (row: each row on its own). */
    private readonly sorted: Float32Array[],
    /** Tensor granularity: each target's select keys and rank order. */
    private readonly ranks: { hi: Uint32Array; order: Uint32Array }[],
    /** Global granularity: all the scores, sorted ascending. */
    private readonly all: Float32Array | null,
  ) {}

  static async build(pm: PruneModel, set: ScoreSet, granularity: Granularity): Promise<ThresholdTable> {
    const host = await Promise.all(set.scores.map(async (s) => Float32Array.from((await s.toArray()) as Float32Array)));
    if (granularity === 'tensor') return new ThresholdTable(pm, set, granularity, [], host.map(rankOrder), null);
    const sorted = host.map((c, i) => {
      const { rows, cols } = pm.targets[i];
      if (granularity === 'row') for (let r = 0; r < rows; r++) c.subarray(r * cols, (r + 1) * cols).sort();
      else c.sort();
      return c;
    });
    let all: Float32Array | null = null;
    if (granularity === 'global') {
      all = new Float32Array(pm.targetElements);
      let o = 0;
      for (const c of sorted) {
        all.set(c, o);
        o += c.length;
      }
      all.sort();
    }
    return new ThresholdTable(pm, set, granularity, sorted, [], all);
  }

  /** Writes the masked weights of a density into the live views; the kept fractions. */
  async apply(density: number): Promise<MaskPoint> {
    const pm = this.pm;
    if (this.granularity === 'tensor') {
      const layers = pm.targets.map((t, i) => {
        const k = keepCount(density, t.size);
        const { hi, order } = this.ranks[i];
        const idx = order[k - 1];
        const th: TopKThreshold = { key: fromArray(pm.rt, Uint32Array.of(hi[idx], ~idx >>> 0, 0, 0), [4], 'u32'), k, n: t.size, abs: false };
        const m = topKMask(this.set.scores[i], th);
        maskSelect(t.live, t.dense, m, 0, t.base ?? undefined);
        th.key.dispose();
        m.dispose();
        return k / t.size;
      });
      return { layers, kept: layers.reduce((s, l, i) => s + l * pm.targets[i].size, 0) / pm.targetElements };
    }
    if (this.granularity === 'global') {
      const all = this.all!;
      const t = all[all.length - keepCount(density, all.length)];
      let keptAll = 0;
      const layers = this.sorted.map((s) => {
        const n = s.length - lowerBound(s, t);
        keptAll += n;
        return n / s.length;
      });
      applyThresholds(pm, this.set, pm.targets.map(() => Float32Array.of(t)));
      return { layers, kept: keptAll / pm.targetElements };
    }
    let keptAll = 0;
    const thresholds = this.sorted.map((s, i) => {
      const { rows, cols } = pm.targets[i];
      const k = keepCount(density, cols);
      const thr = new Float32Array(rows);
      let n = 0;
      for (let r = 0; r < rows; r++) {
        const row = s.subarray(r * cols, (r + 1) * cols);
        thr[r] = row[cols - k];
        n += cols - lowerBound(row, thr[r]);
      }
      keptAll += n;
      return { thr, n };
    });
    applyThresholds(pm, this.set, thresholds.map((x) => x.thr));
    return { layers: thresholds.map((x, i) => x.n / pm.targets[i].size), kept: keptAll / pm.targetElements };
  }

  dispose(): void {
    // Host arrays only: nothing on the GPU to free.
  }
}

/** First index of a sorted (ascending) array whose value is ≥ x. */
function lowerBound(a: Float32Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Writes every target's masked values (from its dense copy) into the live weights: one dispatch per target. */
export function applyThresholds(pm: PruneModel, set: ScoreSet, thr: Float32Array[]): void {
  pm.targets.forEach((t, i) => {
    const th = fromArray(pm.rt, thr[i], [thr[i].length]);
    maskThreshold(t.live, t.dense, set.scores[i], th, t.base ?? undefined);
    th.dispose();
  });
}

/** N:M on every target: exactly N of every M consecutive inputs of each row are kept. */
export function applyNm(pm: PruneModel, set: ScoreSet, pattern: NmPattern): MaskPoint {
  for (const [i, t] of pm.targets.entries()) maskNm(t.live, t.dense, set.scores[i], pattern.n, pattern.m, t.base ?? undefined);
  const d = pattern.n / pattern.m;
  return { layers: pm.targets.map(() => d), kept: d };
}

/** One point: the masked weights of a score at a density (or its N:M pattern) written into the live views. */
export async function applyMask(pm: PruneModel, set: ScoreSet, table: ThresholdTable | null, density: number, pattern: NmPattern | null): Promise<MaskPoint> {
  // SparseGPT: the OBS-updated weights of every target (src/engine/prune/sparsegpt.ts).
  if (set.reconstruct) return set.reconstruct(pattern ? pattern.n / pattern.m : density, pattern);
  if (pattern) return applyNm(pm, set, pattern);
  if (!table) throw new Error('applyMask: a threshold table is needed for an unstructured mask');
  return table.apply(density);
}
