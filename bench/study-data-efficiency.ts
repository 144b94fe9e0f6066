// `basin study data-efficiency [--quick] [--json] [--out <dir>]`: how much of its data SASRec needs
// (algorithms.md §6). On MovieLens ml-latest-small split leave-one-out, the same model is trained for the SAME
// number of steps (equal compute) on
//   1. growing fractions of the training users' data (uniform users: 1/8, 1/4, 1/2, 1) — the data convergence
//      point is the smallest fraction from which every further doubling gains less than ε validation NDCG@10;
//   2. recent windows (each user's most recent 1/8, 1/4, 1/2 of its history; --quick: 1/4 only);
//   3. the downsampling strategies at one budget (1/4 of the interactions): uniform, recent window, per-user cap,
//      recency-weighted (src/engine/train/data-efficiency.ts says what each keeps).
// Every model is evaluated the same way: each user's validation (and test) target ranked against the whole
// catalogue given the user's WHOLE history, seen items removed (src/engine/train/leave-one-out.ts) — downsampling
// changes what the model trains on, never what it is asked.
//
// The study writes a run folder of kind `study` (under --out, default ./runs) with one metrics row per trained
// model: `step` = the training interactions it saw, and `<strategy>_val_ndcg10`, `<strategy>_test_ndcg10`, … so
// the statistics panel charts each strategy's metric against the data size.
import * as path from 'node:path';
import { backward } from '../src/engine/autograd/tape';
import { NextTokenBatcher } from '../src/engine/data/batches';
import { loadInteractionSplit, type InteractionsDataConfig } from '../src/engine/data/interactions/source';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { makeLoss } from '../src/engine/loss/registry';
import { tidy } from '../src/engine/tensor/tensor';
import { convergencePoint, downsample, type Strategy } from '../src/engine/train/data-efficiency';
import { forwardBatch } from '../src/engine/train/forward';
import { evaluateLeaveOneOut, leaveOneOutData, type LeaveOneOutMetrics } from '../src/engine/train/leave-one-out';
import { makeOptimizer, makeSchedule, materializeModel } from '../src/engine/train/trainer';
import { parseConfig } from '../src/files/config/load';
import type { TrainConfig } from '../src/files/config/schema';
import { RunFolder } from '../src/files/run-record';
import { gitCommit } from './report';
import { defaultMlSmall } from './sasrec';

export interface DataEfficiencyOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
  /** Parent folder of the study's run folder (default ./runs). */
  out?: string;
  /** Steps per model (default 300; 30 with --quick). */
  steps?: number;
  /** Convergence threshold: validation NDCG@10 gained per doubling of the data (default 0.005). */
  eps?: number;
  /** The folder holding ratings.csv (default: ../shared/data/ml-latest-small from the repository root). */
  dataPath?: string;
}

export interface DataEfficiencyRow {
  case: string;
  strategy: Strategy;
  fraction: number;
  /** Training interactions (and sequences) the model saw. */
  interactions: number;
  users: number;
  steps: number;
  train_s: number;
  val_ndcg10: number;
  val_hr10: number;
  test_ndcg10: number;
  test_hr10: number;
}

function studyConfig(file: string, items: number, quick: boolean, steps: number): TrainConfig {
  const model = quick
    ? { type: 'sasrec', items, hidden: 32, blocks: 1, heads: 1, maxLen: 20, dropout: 0.2 }
    : { type: 'sasrec', items, hidden: 64, blocks: 2, heads: 1, maxLen: 50, dropout: 0.2 };
  const text = JSON.stringify({
    name: 'data-efficiency',
    seed: 1,
    model,
    data: { type: 'interactions', path: file, split: 'leave-one-out' },
    train: {
      steps,
      batchSize: 32,
      // CCE−: no [rows, items] logits, so the study's cost does not grow with the catalogue.
      loss: { type: 'cce-minus', negatives: 128, sampler: 'uniform', seed: 1 },
      optimizer: { type: 'adamw', lr: 0.002, betas: [0.9, 0.98], eps: 1e-8, weightDecay: 0 },
      schedule: { type: 'constant', warmup: Math.min(20, steps >> 3) },
      gradClip: 1,
    },
  });
  return parseConfig(text, 'data-efficiency.basin.json');
}

/** Trains a fresh model on `seqs` for `steps` steps (the trainer's step, no run folder) and evaluates it leave-one-out. */
async function trainAndEvaluate(rt: Runtime, config: TrainConfig, seqs: Int32Array[], loo: ReturnType<typeof leaveOneOutData>): Promise<{ valid: LeaveOneOutMetrics; test: LeaveOneOutMetrics; seconds: number }> {
  if (config.model.type !== 'sasrec') throw new Error('data-efficiency: the study trains sasrec');
  const steps = config.train.steps!;
  const { model, store } = materializeModel(rt, config.model, config.seed);
  const optimizer = makeOptimizer(config, store);
  const schedule = makeSchedule(config, steps);
  const loss = makeLoss(config.train.loss);
  const batcher = new NextTokenBatcher(seqs, { batchSize: config.train.batchSize, seqLen: config.model.maxLen, seed: config.seed, windows: 'all' });
  try {
    model.train();
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const b = batcher.batchAt(step - 1);
      tidy(() => backward(forwardBatch(rt, model, { rows: b.batch * b.seqLen, inputs: b.inputs, seqLen: b.seqLen, targets: b.targets }, { training: true, loss }).loss));
      optimizer.step(schedule(step));
      store.zeroGrads();
      if (step % 10 === 0) await rt.sync(); // keep the queue from running far ahead
    }
    await rt.sync();
    const seconds = (performance.now() - t0) / 1000;
    const valid = await evaluateLeaveOneOut(rt, model, loo, 'valid', loss);
    const test = await evaluateLeaveOneOut(rt, model, loo, 'test', loss);
    return { valid, test, seconds };
  } finally {
    optimizer.destroy();
    store.destroy();
  }
}

export async function runDataEfficiencyStudy(opts: DataEfficiencyOptions): Promise<object> {
  const quick = Boolean(opts.quick);
  const steps = opts.steps ?? (quick ? 30 : 300);
  const eps = opts.eps ?? 0.005;
  const file = path.join(opts.dataPath ?? defaultMlSmall(), 'ratings.csv');
  const dataCfg = { type: 'interactions', path: file, format: 'auto', skipBad: false, minRating: 0, kCore: 0, split: 'leave-one-out', testFraction: 0.1, validFraction: 0.1, seed: 1 } as InteractionsDataConfig;
  const { split, summary } = await loadInteractionSplit(dataCfg);
  const config = studyConfig(file, split.numItems, quick, steps);
  if (config.model.type !== 'sasrec') throw new Error('unreachable');
  const loo = leaveOneOutData(split, config.model.maxLen, 128);
  opts.log(`study data-efficiency: ${summary}`);
  opts.log(`study data-efficiency: sasrec d=${config.model.hidden}, ${config.model.blocks} block(s), maxLen ${config.model.maxLen}, batch 32, CCE− 128 negatives, ${steps} steps per model`);

  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const run = await RunFolder.create(opts.out ?? path.resolve('runs'), 'data-efficiency', { kind: 'study', config: { study: 'data-efficiency', steps, eps, model: config.model, loss: config.train.loss, data: 'ml-latest-small leave-one-out' }, device: info });
  opts.log(`study data-efficiency: run folder ${run.dir}`);

  const fractions = [1 / 8, 1 / 4, 1 / 2, 1];
  const budget = 1 / 4;
  const plan: { strategy: Strategy; fraction: number }[] = [
    ...fractions.map((fraction) => ({ strategy: 'uniform' as Strategy, fraction })),
    // --quick: the recent window only at the strategies' budget (the uniform curve gives the convergence point).
    ...fractions.filter((f) => f < 1 && (!quick || f === budget)).map((fraction) => ({ strategy: 'recent' as Strategy, fraction })),
    { strategy: 'cap', fraction: budget },
    { strategy: 'recency-weighted', fraction: budget },
  ];
  const rows: DataEfficiencyRow[] = [];
  try {
    for (const p of plan) {
      const seqs = downsample(split.train, p.strategy, p.fraction, { seed: 7 });
      const interactions = seqs.reduce((a, s) => a + s.length, 0);
      const label = `${p.strategy}@${fmtFraction(p.fraction)}`;
      opts.log(`${label}: ${interactions} interactions, ${seqs.length} sequences`);
      const r = await trainAndEvaluate(rt, config, seqs, loo);
      const row: DataEfficiencyRow = {
        case: label,
        strategy: p.strategy,
        fraction: p.fraction,
        interactions,
        users: seqs.length,
        steps,
        train_s: r.seconds,
        val_ndcg10: r.valid.ndcg10,
        val_hr10: r.valid.hr10Full,
        test_ndcg10: r.test.ndcg10,
        test_hr10: r.test.hr10Full,
      };
      rows.push(row);
      opts.log(`${label}: val NDCG@10 ${row.val_ndcg10.toFixed(4)}, test NDCG@10 ${row.test_ndcg10.toFixed(4)} (${r.seconds.toFixed(1)} s)`);
      const key = p.strategy.replace(/-/g, '_');
      await run.appendMetrics({ step: interactions, [`${key}_val_ndcg10`]: row.val_ndcg10, [`${key}_val_hr10`]: row.val_hr10, [`${key}_test_ndcg10`]: row.test_ndcg10, [`${key}_test_hr10`]: row.test_hr10, fraction: p.fraction });
    }
  } catch (e) {
    await run.update({ status: 'failed', error: (e as Error).message }).catch(() => undefined);
    throw e;
  }
  const curve = (s: Strategy) => {
    const pts = rows.filter((r) => r.strategy === s || (r.strategy === 'uniform' && r.fraction === 1));
    return pts.map((r) => ({ fraction: r.fraction, metric: r.val_ndcg10 }));
  };
  const uniformConv = convergencePoint(curve('uniform'), eps);
  const recentConv = convergencePoint(curve('recent'), eps);
  const atBudget = rows.filter((r) => r.fraction === budget);
  const best = atBudget.reduce((a, b) => (b.val_ndcg10 > a.val_ndcg10 ? b : a), atBudget[0]);
  const full = rows.find((r) => r.strategy === 'uniform' && r.fraction === 1)!;
  const headline = {
    convergence_fraction_uniform: uniformConv.fraction,
    convergence_fraction_recent: recentConv.fraction,
    full_val_ndcg10: full.val_ndcg10,
    best_strategy_at_quarter: best.strategy,
    best_at_quarter_vs_full: full.val_ndcg10 > 0 ? best.val_ndcg10 / full.val_ndcg10 : null,
    // The sampling noise of one model's validation HR@10 (a binomial over the users): differences smaller than a
    // few of these are not findings (--quick's 30 steps are compute-bound, far from any data limit).
    val_hr10_standard_error: Math.sqrt((full.val_hr10 * (1 - full.val_hr10)) / Math.max(1, loo.valid.histories.length)),
  };
  await run.update({ status: 'completed', lastMetrics: { ...headline } });
  return {
    bench: 'study-data-efficiency',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [],
    runDir: run.dir,
    setup: { data: 'ml-latest-small, leave-one-out, full catalogue, seen items removed', model: config.model, loss: config.train.loss, steps, eps, metric: 'validation NDCG@10 (convergence), test NDCG@10 reported', timed: 'training steps only' },
    rows,
    convergence: { uniform: uniformConv, recent: recentConv },
    headline,
  };
}

function fmtFraction(f: number): string {
  return f === 1 ? '1' : `1/${Math.round(1 / f)}`;
}

export function formatDataEfficiencyStudy(report: object): string {
  const r = report as { device: { description: string; fallback: boolean }; runDir: string; setup: { steps: number; eps: number }; rows: DataEfficiencyRow[]; headline: Record<string, number | string | null> };
  const f = (x: number | null | undefined, d = 4) => (x == null || Number.isNaN(x) ? '—' : x.toFixed(d));
  const out = [`data efficiency of sasrec on ml-latest-small (leave-one-out, full ranking), ${r.setup.steps} steps per model, on ${r.device.description}${r.device.fallback ? ' [software]' : ''}`, ''];
  out.push(['case'.padEnd(22), 'interactions'.padStart(12), 'users'.padStart(6), 'val NDCG'.padStart(9), 'val HR'.padStart(8), 'test NDCG'.padStart(10), 'test HR'.padStart(8), 'train s'.padStart(8)].join(' '));
  for (const x of r.rows) out.push([x.case.padEnd(22), String(x.interactions).padStart(12), String(x.users).padStart(6), f(x.val_ndcg10).padStart(9), f(x.val_hr10).padStart(8), f(x.test_ndcg10).padStart(10), f(x.test_hr10).padStart(8), f(x.train_s, 1).padStart(8)].join(' '));
  const h = r.headline;
  const conv = (v: unknown) => (v == null ? `not reached (the last doubling still gains ≥ ${r.setup.eps})` : fmtFraction(v as number));
  out.push('', `data convergence point (gain < ${r.setup.eps} val NDCG@10 per doubling): uniform ${conv(h.convergence_fraction_uniform)}, recent windows ${conv(h.convergence_fraction_recent)}`);
  out.push(`best strategy at 1/4 of the data (same steps): ${h.best_strategy_at_quarter}, ${f(h.best_at_quarter_vs_full as number, 3)}× the full data's val NDCG@10`);
  out.push(`noise: one model's validation HR@10 has a standard error of about ${f(h.val_hr10_standard_error as number)} (binomial over the users); smaller differences are not findings`);
  out.push(`run folder: ${r.runDir}`);
  return out.join('\n');
}
