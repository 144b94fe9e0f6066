// `basin bench prune`: the sparsity sweep's wall time against what evaluating each of its points from scratch
// would cost on the same model: points × one validation pass. Headline `sweep_ratio_vs_evals` = sweep wall time
// ÷ ((points + 1 dense) × median validation pass), target ≤ 1.3: scoring once, thresholds from one select per
// point and masks written into the live weights (no model copy) must add little on top of the evaluations.
// The model is a small transformer trained here first (AdamW with statistics, so curvature runs too); no peer:
// the reference is Basin's own evaluation pass, as the issue states the target.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { resolvePruneSource } from '../src/engine/prune/source';
import { PruneModel } from '../src/engine/prune/session';
import { runSweep } from '../src/engine/prune/sweep';
import { train } from '../src/engine/train/trainer';
import { parseConfig } from '../src/files/config/load';
import { DEFAULT_DENSITIES, DEFAULT_TARGETS, pruneScoreConfig } from '../src/files/prune/options';
import { gitCommit } from './report';

export interface PruneBenchOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
}

const CONFIG = (quick: boolean) => `
name: bench-prune
seed: 1
model: { type: transformer, vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16 }
data: { type: synthetic-sequences, sequences: ${quick ? 400 : 800}, length: 17, branching: 3, noise: 0.05, validFraction: 0.1 }
train:
  steps: ${quick ? 40 : 120}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.005 }
  schedule: { type: cosine, warmup: 10 }
  evalEvery: 0
  checkpointEvery: 0
  statsEvery: 50
  logEvery: 50
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runPruneBench(opts: PruneBenchOptions): Promise<object> {
  const quick = Boolean(opts.quick);
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-prune-'));
  try {
    opts.log(`prune bench on ${info.description || info.vendor} (${info.backend}${info.fallback ? ', software adapter' : ''}): training the model`);
    const config = parseConfig(CONFIG(quick), 'bench-prune.basin.yaml');
    const { runDir } = await train({ rt, config, outputDir: dir });
    const source = await resolvePruneSource(runDir);
    const scores = (quick ? ['magnitude', 'random'] : ['magnitude', 'random', 'curvature', 'wanda']).map((s) => pruneScoreConfig(s, s === 'wanda' ? { batches: 4 } : {}));
    const densities = quick ? [1, 0.5, 0.1] : [...DEFAULT_DENSITIES];
    const options = { targets: [...DEFAULT_TARGETS], granularity: 'tensor' as const, pattern: null };

    // One validation pass on the same model: one warm-up, then a few before the sweep and a few after it (the
    // median of all), so that a change in machine load during the sweep weighs on both sides.
    const pm = await PruneModel.open(rt, source, options);
    const evalMs: number[] = [];
    const timeEvals = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await pm.evaluate();
        evalMs.push(performance.now() - t);
      }
    };
    let sweepMs = 0;
    let result: Awaited<ReturnType<typeof runSweep>>;
    try {
      await pm.evaluate();
      await timeEvals(3);
      const t0 = performance.now();
      result = await runSweep(rt, source, { ...options, scores, densities });
      sweepMs = performance.now() - t0;
      await timeEvals(3);
    } finally {
      pm.destroy();
    }
    const { sweep, file } = result;
    const oneEval = median(evalMs);
    opts.log(`  one validation pass: ${oneEval.toFixed(1)} ms (median of ${evalMs.length}: ${evalMs.map((x) => x.toFixed(0)).join(', ')})`);
    const evals = sweep.points.length + 1;
    const ratio = sweepMs / (evals * oneEval);
    opts.log(`  sweep: ${sweep.points.length} points + dense in ${sweepMs.toFixed(0)} ms; ${evals} evaluations would take ${(evals * oneEval).toFixed(0)} ms; ratio ${ratio.toFixed(3)}`);
    const rows = [
      {
        case: `${scores.map((s) => s.type).join('+')} × ${densities.length} densities`,
        targets: sweep.targets.length,
        target_weights: sweep.targets.reduce((s, t) => s + t.size, 0),
        points: sweep.points.length,
        sweep_ms: Math.round(sweepMs),
        one_eval_ms: Number(oneEval.toFixed(2)),
        evals_ms: Math.round(evals * oneEval),
        scores_ms: Object.fromEntries(Object.entries(sweep.timing.scoresMs).map(([k, v]) => [k, Math.round(v)])),
        point_ms_median: Number(median(sweep.points.map((p) => p.ms)).toFixed(2)),
        sweep_file_bytes: fs.statSync(file).size,
      },
    ];
    return {
      bench: 'prune',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: info.vendor, architecture: info.architecture, description: info.description, backend: info.backend, fallback: info.fallback },
      peers: [],
      why: 'no peer: the target is stated against Basin’s own validation pass on the same model',
      timed:
        'sweep: runSweep wall time (model load, dense evaluation, every score including calibration, every point’s threshold, mask and evaluation, ' +
        'and the sweep file written after each point); reference: (points + 1) × the median of the validation passes of the same model timed just before and just after the sweep (one warm-up first)',
      rows,
      headline: { sweep_ratio_vs_evals: Number(ratio.toFixed(3)) },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    gpu.destroy();
  }
}

/** The report as a table for people. */
export function formatPruneReport(report: object): string {
  const r = report as { device: { description: string; backend: string; fallback: boolean }; commit: string | null; rows: Record<string, unknown>[]; headline: { sweep_ratio_vs_evals: number } };
  const row = r.rows[0];
  return [
    `prune sweep on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], commit ${r.commit ?? 'n/a'}`,
    `  ${row.case}: ${row.targets} tensors, ${row.target_weights} weights, ${row.points} points`,
    `  sweep ${row.sweep_ms} ms vs ${row.points} + 1 evaluations × ${row.one_eval_ms} ms = ${row.evals_ms} ms (scores: ${JSON.stringify(row.scores_ms)})`,
    `headline: sweep_ratio_vs_evals = ${r.headline.sweep_ratio_vs_evals} (target ≤ 1.3)`,
  ].join('\n');
}
