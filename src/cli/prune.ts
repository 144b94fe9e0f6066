// `basin prune <run-or-checkpoint-or-config>`: with --sweep, the sparsity sweep (a table on stdout, the sweep file
// in the run folder); with --score s --density d --out DIR, a pruned checkpoint with its report. Every bad input
// (density, pattern, granularity, globs, a score's needs, the base) is refused before the GPU is touched.
import * as path from 'node:path';
import { GpuDevice } from '../engine/gpu/device';
import { Runtime } from '../engine/gpu/runtime';
import { pruneToCheckpoint } from '../engine/prune/apply';
import { planPrune } from '../engine/prune/plan';
import { resolvePruneSource } from '../engine/prune/source';
import { runSweep } from '../engine/prune/sweep';
import {
  DEFAULT_DENSITIES,
  DEFAULT_TARGETS,
  PruneOptionError,
  checkDensity,
  parseDensities,
  parseGranularity,
  parsePattern,
  pruneScoreConfig,
  type PruneOptions,
} from '../files/prune/options';
import { formatSweepTable } from '../files/prune/sweep-file';
import { pruneScoreRegistry, type PruneScoreConfig } from '../files/registry/prune-scores';
import { fmtMetrics } from './train';

export interface PruneCommandOptions {
  sweep?: boolean;
  score?: string;
  density?: string;
  densities?: string;
  pattern?: string;
  granularity?: string;
  targets?: string;
  base?: string;
  step?: number;
  out?: string;
  json?: boolean;
  /** Score parameters: applied to every chosen score that has them. */
  seed?: string;
  batches?: string;
  damp?: string;
  blockSize?: string;
  calibration?: string;
}

/** The parsed command: everything checked that can be without reading files. */
export function parsePruneArgs(o: PruneCommandOptions): { options: PruneOptions; scores: PruneScoreConfig[]; densities: number[]; density: number | null } {
  const pattern = parsePattern(o.pattern, '--pattern');
  const names = (o.score ?? (o.sweep ? 'magnitude,random' : 'magnitude')).split(',').map((s) => s.trim()).filter(Boolean);
  const options: PruneOptions = {
    targets: o.targets ? o.targets.split(',').map((s) => s.trim()).filter(Boolean) : [...DEFAULT_TARGETS],
    granularity: parseGranularity(o.granularity, '--granularity', names),
    pattern,
    base: o.base ? path.resolve(o.base) : undefined,
  };
  const given: Record<string, string | undefined> = { seed: o.seed, batches: o.batches, damp: o.damp, blockSize: o.blockSize, calibration: o.calibration };
  const scores = names.map((n) => {
    const entry = pruneScoreRegistry.get(n);
    const params: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(given)) if (v !== undefined && k in entry.params) params[k] = v;
    return pruneScoreConfig(n, params);
  });
  const densities = o.densities ? parseDensities(o.densities, '--densities') : [...DEFAULT_DENSITIES];
  let density: number | null = null;
  if (o.density !== undefined) density = checkDensity(Number(o.density), '--density');
  if (!o.sweep) {
    if (!o.out) throw new PruneOptionError('--out', 'applying a score writes a pruned checkpoint: give --out DIR (or --sweep for the sparsity sweep)');
    if (density === null && !pattern) throw new PruneOptionError('--density', 'give the fraction to keep (e.g. --density 0.4) or an N:M --pattern');
    if (scores.length !== 1) throw new PruneOptionError('--score', `apply takes one score, got ${names.join(', ')}`);
  }
  return { options, scores, densities, density };
}

export async function pruneCommand(input: string, o: PruneCommandOptions): Promise<void> {
  const err = process.stderr;
  const { options, scores, densities, density } = parsePruneArgs(o);
  const source = await resolvePruneSource(input, { step: o.step });
  const plan = await planPrune(source, options, scores);
  err.write(`basin: pruning ${source.checkpoint} (step ${source.step}): ${plan.targets.length} tensors, ${plan.targets.reduce((s, t) => s + t.shape[0] * t.shape[1], 0).toLocaleString('en-US')} weights\n`);
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const cancel = new AbortController();
  const onSigint = () => {
    if (cancel.signal.aborted) process.exit(130);
    err.write('\nbasin: stopping after this point (Ctrl-C again to quit at once)\n');
    cancel.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    if (o.sweep) {
      const { file, sweep } = await runSweep(rt, source, {
        ...options,
        scores,
        densities,
        signal: cancel.signal,
        onProgress: (e) => {
          if (e.phase === 'scores') err.write(`basin: scoring ${e.score}\n`);
        },
        onPoint: (p) => err.write(`basin: ${p.score} at ${(100 * p.density).toFixed(1)}%: ${fmtMetrics(p.metrics)}\n`),
      });
      if (o.json) process.stdout.write(JSON.stringify({ file, ...sweep }) + '\n');
      else process.stdout.write(formatSweepTable(sweep) + `\nsweep file: ${file}\n`);
    } else {
      const r = await pruneToCheckpoint(rt, source, { ...options, score: scores[0], density: density ?? 1, out: o.out!, signal: cancel.signal });
      if (o.json) process.stdout.write(JSON.stringify(r.result) + '\n');
      else {
        const m = r.result.metrics;
        process.stdout.write(
          [
            `pruned with ${r.result.score.type}${r.result.pattern ? ` ${r.result.pattern}` : ''}: kept ${(100 * r.result.kept).toFixed(1)}% of ${plan.targets.length} tensors`,
            ...(m ? [`  dense   ${fmtMetrics(m.dense)}`, `  pruned  ${fmtMetrics(m.pruned)}`] : []),
            `weights: ${r.weights}`,
            `report:  ${r.report}`,
          ].join('\n') + '\n',
        );
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    gpu.destroy();
  }
}
