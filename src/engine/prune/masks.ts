// Masks from scores: a threshold per output row, per tensor or across all targets (global), or an exact N:M
// pattern; and the masked view: the pruned values written into the live parameter views from the dense copies.
//
// Thresholds: keep k = round(d·size) entries of each group (at least 1).
// - tensor: the GPU select (src/engine/ops/select.ts): kthLargest + topKMask keep exactly k (ties to the lower
//   index), applied with mask_select; nothing is read back, so a point costs a few dispatches per target.
// - global: the same select on one packed copy of all the scores for the threshold value (one read-back), then
//   score ≥ threshold per target and the kept counts on the GPU (ties at the threshold are all kept and counted).
// - row: the scores are read back once and each row sorted once, so every density is an index lookup (a GPU
//   select per row per density would be rows × passes dispatches); kept counts by binary search on the host.
import type { Granularity, NmPattern } from '../../files/prune/options';
import { keepCount } from '../cpu/prune';
import { kthLargest, thresholdValue, topKMask } from '../ops/select';
import { Tensor, empty, fromArray, keep } from '../tensor/tensor';
import { countKept, maskNm, maskSelect, maskThreshold } from './kernels';
import type { ScoreSet } from './scores';
import type { PruneModel } from './session';

export interface MaskPoint {
  /** Kept fraction per target. */
  layers: number[];
  /** Kept fraction of all targeted entries. */
  kept: number;
}

export class ThresholdTable {
  private constructor(
    private readonly pm: PruneModel,
    private readonly set: ScoreSet,
    readonly granularity: Granularity,
    /** Row granularity: each row's scores sorted ascending (host). */
    private readonly sortedRows: Float32Array[] | null,
    /** Global granularity: every target's scores packed into one tensor. */
    private readonly packed: Tensor | null,
  ) {}

  static async build(pm: PruneModel, set: ScoreSet, granularity: Granularity): Promise<ThresholdTable> {
    if (granularity === 'row') {
      const sorted = await Promise.all(
        set.scores.map(async (s, i) => {
          const c = Float32Array.from((await s.toArray()) as Float32Array);
          const { rows, cols } = pm.targets[i];
          for (let r = 0; r < rows; r++) c.subarray(r * cols, (r + 1) * cols).sort();
          return c;
        }),
      );
      return new ThresholdTable(pm, set, granularity, sorted, null);
    }
    if (granularity === 'global') {
      const packed = keep(empty(pm.rt, [pm.targetElements]));
      let o = 0;
      for (const s of set.scores) {
        pm.rt.copy(s.binding(), { buffer: packed.storage.buffer, offset: packed.storage.offset + o * 4, size: s.size * 4 }, s.size * 4);
        o += s.size;
      }
      return new ThresholdTable(pm, set, granularity, null, packed);
    }
    return new ThresholdTable(pm, set, granularity, null, null);
  }

  /** Writes the masked weights of a density into the live views; the kept fractions. */
  async apply(density: number): Promise<MaskPoint> {
    const pm = this.pm;
    if (this.granularity === 'tensor') {
      const layers = pm.targets.map((t, i) => {
        const k = keepCount(density, t.size);
        const th = kthLargest(this.set.scores[i], k);
        const m = topKMask(this.set.scores[i], th);
        maskSelect(t.live, t.dense, m, 0, t.base ?? undefined);
        th.key.dispose();
        m.dispose();
        return k / t.size;
      });
      return { layers, kept: layers.reduce((s, l, i) => s + l * pm.targets[i].size, 0) / pm.targetElements };
    }
    if (this.granularity === 'global') {
      const t = await kthValue(this.packed!, keepCount(density, this.packed!.size));
      const thr = pm.targets.map(() => Float32Array.of(t));
      applyThresholds(pm, this.set, thr);
      return keptFractions(pm, this.set, thr);
    }
    let keptAll = 0;
    const layers = this.sortedRows!.map((s, i) => {
      const { rows, cols } = pm.targets[i];
      const k = keepCount(density, cols);
      const thr = new Float32Array(rows);
      let n = 0;
      for (let r = 0; r < rows; r++) {
        const row = s.subarray(r * cols, (r + 1) * cols);
        thr[r] = row[cols - k];
        n += cols - lowerBound(row, thr[r]);
      }
      this.rowThr[i] = thr;
      keptAll += n;
      return n / (rows * cols);
    });
    applyThresholds(pm, this.set, this.rowThr);
    return { layers, kept: keptAll / pm.targetElements };
  }

  private readonly rowThr: Float32Array[] = [];

  dispose(): void {
    this.packed?.dispose();
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

/** The k-th largest value of a tensor (GPU select, one small read-back). */
async function kthValue(x: Tensor, k: number): Promise<number> {
  const t = kthLargest(x, k);
  try {
    return (await thresholdValue(t)).value;
  } finally {
    t.key.dispose();
  }
}

/** The kept fractions of thresholds, counted on the GPU (ties at a threshold are kept, so they are counted). */
export async function keptFractions(pm: PruneModel, set: ScoreSet, thr: Float32Array[]): Promise<MaskPoint> {
  const counts = fromArray(pm.rt, new Uint32Array(pm.targets.length), [pm.targets.length], 'u32');
  const th = thr.map((t) => fromArray(pm.rt, t, [t.length]));
  pm.targets.forEach((_, i) => countKept(set.scores[i], th[i], counts, i));
  const c = (await counts.toArray()) as Uint32Array;
  counts.dispose();
  for (const t of th) t.dispose();
  let n = 0;
  for (const x of c) n += x;
  return { layers: pm.targets.map((t, i) => c[i] / t.size), kept: n / pm.targetElements };
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

/** SparseGPT: the OBS-updated weights of every target at a density (computed on the CPU), uploaded. */
export function applyReconstruction(pm: PruneModel, set: ScoreSet, density: number, pattern: NmPattern | null): MaskPoint {
  let kept = 0;
  const layers = pm.targets.map((t, i) => {
    const { weight, mask } = set.reconstruct!(i, density, pattern);
    pm.rt.write(t.live.binding(), weight);
    let n = 0;
    for (const b of mask) n += b;
    kept += n;
    return n / t.size;
  });
  return { layers, kept: kept / pm.targetElements };
}

/** One point: the masked weights of a score at a density (or its N:M pattern) written into the live views. */
export async function applyMask(pm: PruneModel, set: ScoreSet, table: ThresholdTable | null, density: number, pattern: NmPattern | null): Promise<MaskPoint> {
  if (set.reconstruct) return applyReconstruction(pm, set, pattern ? pattern.n / pattern.m : density, pattern);
  if (pattern) return applyNm(pm, set, pattern);
  if (!table) throw new Error('applyMask: a threshold table is needed for an unstructured mask');
  return table.apply(density);
}
