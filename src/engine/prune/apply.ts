// `basin prune … --score s --density d --out DIR`: one score at one density (or N:M), applied to the weights or
// to the task vector, and written as a checkpoint: `DIR/model.safetensors` (every parameter, the targets pruned;
// atomic) and `DIR/prune-report.json` (what was done, the kept fraction per target, the dense and pruned
// validation metrics). SparseGPT writes its OBS-updated weights.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../gpu/runtime';
import { writeFileAtomic } from '../../files/atomic';
import { checkDensity, type PruneOptions } from '../../files/prune/options';
import type { PruneScoreConfig } from '../../files/registry/prune-scores';
import { writeSafetensors } from '../../files/safetensors';
import type { EvalMetrics } from '../train/evaluate';
import { applyMask, ThresholdTable } from './masks';
import { planPrune } from './plan';
import { computeScores } from './scores';
import { PruneModel } from './session';
import type { PruneSource } from './source';

export const PRUNED_WEIGHTS = 'model.safetensors';
export const PRUNE_REPORT = 'prune-report.json';

export interface ApplyOptions extends PruneOptions {
  score: PruneScoreConfig;
  /** Fraction kept in (0, 1]; ignored with an N:M pattern. */
  density: number;
  out: string;
  /** Evaluate the dense and the pruned model (default true). */
  evaluate?: boolean;
  signal?: AbortSignal;
}

export interface PruneReport {
  format: 'basin-prune-report-1';
  created: string;
  source: { checkpoint: string; step: number; run: string };
  score: PruneScoreConfig;
  granularity: PruneOptions['granularity'];
  pattern: string | null;
  base: string | null;
  density: number;
  kept: number;
  layers: { name: string; shape: number[]; kept: number }[];
  metrics: { dense: EvalMetrics; pruned: EvalMetrics } | null;
  weights: string;
}

export async function pruneToCheckpoint(rt: Runtime, source: PruneSource, opts: ApplyOptions): Promise<{ weights: string; report: string; result: PruneReport }> {
  const density = opts.pattern ? opts.pattern.n / opts.pattern.m : checkDensity(opts.density);
  await planPrune(source, opts, [opts.score]);
  const out = path.resolve(opts.out);
  await fs.promises.mkdir(out, { recursive: true });
  const pm = await PruneModel.open(rt, source, opts);
  try {
    const evalOn = opts.evaluate !== false;
    const dense = evalOn ? await pm.evaluate() : null;
    const set = await computeScores(pm, opts.score, opts.signal);
    let mp;
    try {
      const table = set.reconstruct || opts.pattern ? null : await ThresholdTable.build(pm, set, opts.granularity);
      mp = await applyMask(pm, set, table, density, opts.pattern);
      table?.dispose();
      await rt.sync();
    } finally {
      set.dispose();
    }
    const pruned = evalOn ? await pm.evaluate() : null;
    const weights = await pm.store.readAll();
    const wFile = path.join(out, PRUNED_WEIGHTS);
    await writeSafetensors(
      wFile,
      [...weights].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: [...pm.store.entry(name).shape], data })),
      { format: 'basin-1', step: String(source.step), pruned: `${opts.score.type}@${density}` },
    );
    const result: PruneReport = {
      format: 'basin-prune-report-1',
      created: new Date().toISOString(),
      source: { checkpoint: source.checkpoint, step: source.step, run: source.run.dir },
      score: opts.score,
      granularity: opts.granularity,
      pattern: opts.pattern ? `${opts.pattern.n}:${opts.pattern.m}` : null,
      base: opts.base ?? null,
      density,
      kept: mp.kept,
      layers: pm.targets.map((t, i) => ({ name: t.name, shape: [t.rows, t.cols], kept: mp.layers[i] })),
      metrics: dense && pruned ? { dense: { ...dense }, pruned: { ...pruned } } : null,
      weights: wFile,
    };
    const rFile = path.join(out, PRUNE_REPORT);
    await writeFileAtomic(rFile, JSON.stringify(result, null, 1) + '\n');
    return { weights: wFile, report: rFile, result };
  } finally {
    await rt.sync().catch(() => undefined);
    pm.destroy();
  }
}
