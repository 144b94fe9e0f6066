// `basin bench sasrec [--quick] [--json] [--steps N] [--seeds N|2,3] [--losses …]`: SASRec on MovieLens ml-latest-small under
// leave-one-out with full-catalogue ranking (algorithms.md §4–5): the same model, data and recipe trained with full
// cross-entropy (CE), CCE− (256 negatives), BCE (256 negatives) and gBCE (256 negatives, t = 0.75), each through
// the real trainer (`train()`), plus the popularity baseline and, as a reference row, BCE with one negative (the
// original SASRec recipe).
//
// Model selection as the papers do it: every loss trains up to the same step budget with a validation pass every
// `evalEvery` steps and early stopping on validation NDCG@10 (patience evaluations without a gain); its test
// figures are those of the best validation step's weights (the trainer scores that checkpoint). The losses learn
// at very different rates per step (a sampled loss sees 256 items per position, CE every item), so a fixed step count
// would compare them at arbitrary points of their curves. One target per user over 610 users makes NDCG@10 a noisy
// measure (±0.01 between evaluations), so the bench repeats each loss over `--seeds` seeds (model init, dropout,
// negatives and batch order) and reports the mean and the range.
//
// Reported per loss: test NDCG@10, HR@10, MRR and coverage@10 (each user's last item ranked against the whole
// catalogue given the rest of its history, seen items removed), the best validation NDCG@10 and its step, the
// steps run, and the training time (the trainer's steps, evaluations excluded).
//
// Full CE forms the [batch · maxLen, items + 1] logits in one storage binding (128 MiB on lavapipe): with the
// whole catalogue (9,725 items) batch 32 × maxLen 50 is 62 MiB, well inside it (64 × 50 would be 124 MiB, too
// close once the pool holds anything else), so every method trains on batch 32 × 50 (d = 64, 2 blocks). --quick
// trains a smaller model (d = 32, 1 block, maxLen 20: CE's logits 25 MiB) with a smaller budget.
//
// The data folder is the project's shared one beside the repository (../shared/data/ml-latest-small from the
// repository root) unless BASIN_ML_SMALL names another.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { itemPopularity, rankPopularity, RankingAccumulator } from '../src/engine/eval/ranking';
import { loadInteractionSplit, type InteractionsDataConfig } from '../src/engine/data/interactions/source';
import { splitQueries } from '../src/engine/train/leave-one-out';
import { train } from '../src/engine/train/trainer';
import { parseConfig } from '../src/files/config/load';
import type { LossConfig } from '../src/files/registry/losses';
import { gitCommit, packageRoot } from './report';

export interface SasrecBenchOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
  /** The step budget per run (default 4000; 3000 with --quick): early stopping usually ends a run before it. */
  steps?: number;
  /** Seeds per loss (default 3; 1 with --quick). */
  seeds?: number;
  /** These seeds instead of 1…seeds (`--seeds 2,3`: more seeds for a table already run with seed 1). */
  seedList?: number[];
  /** Only these losses (names of SASREC_LOSSES; default all); popularity is always measured (it costs nothing). */
  losses?: string[];
  /** Steps between validation passes (default 250; at most steps / 4). */
  evalEvery?: number;
  /** Evaluations without a gain in validation NDCG@10 before a run stops (default 4). */
  patience?: number;
  /** The folder holding ratings.csv (default: ../shared/data/ml-latest-small from the repository root). */
  dataPath?: string;
  /** Keep the run folders here (default: a temporary folder, removed at the end). */
  out?: string;
}

/** One loss (or popularity): the mean over its seeds; `runs` holds each seed's figures. */
export interface SasrecRow {
  case: string;
  loss: string;
  /** Steps run (mean over seeds). */
  steps: number;
  train_s: number | null;
  ms_per_step: number | null;
  test_ndcg10: number | null;
  /** The lowest and highest test NDCG@10 over the seeds. */
  test_ndcg10_range: [number, number] | null;
  test_hr10: number | null;
  test_mrr: number | null;
  test_coverage10: number | null;
  /** The best validation NDCG@10 (the selected step's). */
  val_ndcg10: number | null;
  runs: SasrecRun[];
  why?: string;
}

export interface SasrecRun {
  seed: number;
  steps: number;
  best_step: number | null;
  train_s: number;
  test_ndcg10: number | null;
  test_hr10: number | null;
  test_mrr: number | null;
  test_coverage10: number | null;
  val_ndcg10: number | null;
}

/** The shared data folder: `../shared/data/ml-latest-small` beside the repository. */
export function defaultMlSmall(): string {
  return process.env.BASIN_ML_SMALL ?? path.resolve(packageRoot(), '..', 'shared', 'data', 'ml-latest-small');
}

const BATCH = 32;

/** The model of every method: the paper's shape scaled to lavapipe; --quick a smaller one (one block, windows of 20). */
function modelOf(items: number, quick: boolean) {
  return quick
    ? { type: 'sasrec', items, hidden: 32, blocks: 1, heads: 1, maxLen: 20, dropout: 0.2 }
    : { type: 'sasrec', items, hidden: 64, blocks: 2, heads: 1, maxLen: 50, dropout: 0.2 };
}

/**
 * The bench's losses by name (`--losses` picks among them). The sampled losses compared get the same 256 uniform
 * negatives per position, so their rows differ by the loss alone. `bce_1neg` is the original SASRec recipe (BCE with
 * one negative): a reference row, outside the "every loss above popularity" headline, because on ml-latest-small
 * it stays near popularity in PyTorch too (bench/torch/sasrec_reference.py): one negative per position is too
 * little signal on 610 users, whatever the loss.
 */
export const SASREC_LOSSES: { name: string; loss: LossConfig; reference?: true }[] = [
  { name: 'ce', loss: { type: 'cross-entropy' } },
  { name: 'cce_minus', loss: { type: 'cce-minus', negatives: 256, sampler: 'uniform', seed: 1 } },
  { name: 'bce', loss: { type: 'bce', negatives: 256, sampler: 'uniform', seed: 1 } },
  { name: 'gbce', loss: { type: 'gbce', negatives: 256, t: 0.75, sampler: 'uniform', seed: 1 } as LossConfig },
  { name: 'bce_1neg', loss: { type: 'bce', negatives: 1, sampler: 'uniform', seed: 1 }, reference: true },
];

interface Budget {
  steps: number;
  evalEvery: number;
  patience: number;
}

/** A train config as the loader sees it (JSON is YAML). The seed drives the model's init, dropout, batches and negatives. */
function configText(name: string, dataPath: string, model: ReturnType<typeof modelOf>, b: Budget, loss: LossConfig, seed: number): string {
  return JSON.stringify({
    name,
    seed,
    model,
    data: { type: 'interactions', path: dataPath, split: 'leave-one-out' },
    train: {
      steps: b.steps,
      batchSize: BATCH,
      loss: 'seed' in loss ? { ...loss, seed } : loss,
      optimizer: { type: 'adamw', lr: 0.002, betas: [0.9, 0.98], eps: 1e-8, weightDecay: 0 },
      schedule: { type: 'constant', warmup: Math.min(20, b.steps >> 3) },
      gradClip: 1,
      evalEvery: b.evalEvery,
      earlyStopping: { metric: 'ndcg10', patience: b.patience, minDelta: 0 },
      checkpointEvery: 0,
      statsEvery: 0,
      // Every evaluation step is a logging step: the time between that log and the evaluation's end is the
      // evaluation's, taken out of the training time.
      logEvery: b.evalEvery,
    },
    output: 'runs',
  });
}

/**
 * The budget: `steps` per run, a validation pass every `evalEvery` steps (at most steps / 4, so that early
 * stopping has evaluations to compare), `patience` evaluations without a gain.
 */
export function sasrecBudget(o: { quick?: boolean; steps?: number; evalEvery?: number; patience?: number }): Budget {
  const steps = o.steps ?? (o.quick ? 3000 : 4000);
  const evalEvery = Math.max(1, Math.min(o.evalEvery ?? 250, Math.floor(steps / 4)));
  return { steps, evalEvery, patience: o.patience ?? 4 };
}

export async function runSasrecBench(opts: SasrecBenchOptions): Promise<object> {
  const budget = sasrecBudget(opts);
  const unknown = (opts.losses ?? []).filter((n) => !SASREC_LOSSES.some((m) => m.name === n));
  if (unknown.length) throw new Error(`bench sasrec: unknown loss ${unknown.join(', ')} (the bench's losses: ${SASREC_LOSSES.map((m) => m.name).join(', ')})`);
  const methods = opts.losses ? SASREC_LOSSES.filter((m) => opts.losses!.includes(m.name)) : SASREC_LOSSES;
  const seedList = opts.seedList ?? Array.from({ length: opts.seeds ?? (opts.quick ? 1 : 3) }, (_, i) => i + 1);
  const seeds = seedList.length;
  const dataDir = opts.dataPath ?? defaultMlSmall();
  const file = path.join(dataDir, 'ratings.csv');
  if (!fs.existsSync(file)) throw new Error(`bench sasrec: ${file} not found (MovieLens ml-latest-small; set BASIN_ML_SMALL to the folder holding ratings.csv)`);
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const out = opts.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-sasrec-'));
  fs.mkdirSync(out, { recursive: true });
  const rows: SasrecRow[] = [];
  let modelText = '';
  try {
    // The split once, for the catalogue size and the popularity baseline (the trainer reads the same file the same way).
    const dataCfg = { type: 'interactions', path: file, format: 'auto', skipBad: false, minRating: 0, kCore: 0, split: 'leave-one-out', testFraction: 0.1, validFraction: 0.1, seed: 1 } as InteractionsDataConfig;
    const { split, summary } = await loadInteractionSplit(dataCfg);
    const items = split.numItems;
    opts.log(`bench sasrec: ${summary}`);
    const model = modelOf(items, Boolean(opts.quick));
    modelText = `sasrec d=${model.hidden}, ${model.blocks} block(s), 1 head, maxLen ${model.maxLen}, dropout 0.2`;
    opts.log(`bench sasrec: ${modelText}, batch ${BATCH}, up to ${budget.steps} steps per run, validation every ${budget.evalEvery}, patience ${budget.patience}, ${seeds} seed(s) per loss`);

    // Popularity: every user scores an item by its training count; the same full-catalogue protocol.
    {
      const q = splitQueries(split, 'test');
      const t0 = performance.now();
      const pop = itemPopularity(split.train, items + 1);
      const r = await rankPopularity(rt, pop, q.targets, q.seen, { k: 10, pad: 0 });
      const acc = new RankingAccumulator(10, items);
      acc.add(r.greater, r.equal, r.topK ? { ids: r.topK, length: r.k } : null);
      const m = acc.result();
      const vq = splitQueries(split, 'valid');
      const rv = await rankPopularity(rt, pop, vq.targets, vq.seen, { k: 10, pad: 0 });
      const accV = new RankingAccumulator(10, items);
      accV.add(rv.greater, rv.equal);
      const seconds = (performance.now() - t0) / 1000;
      rows.push({ case: 'popularity', loss: 'popularity', steps: 0, train_s: seconds, ms_per_step: null, test_ndcg10: m.ndcg, test_ndcg10_range: [m.ndcg, m.ndcg], test_hr10: m.hr, test_mrr: m.mrr, test_coverage10: m.coverage, val_ndcg10: accV.result().ndcg, runs: [] });
      opts.log(`popularity: test NDCG@10 ${m.ndcg.toFixed(4)}, HR@10 ${m.hr.toFixed(4)}`);
    }

    for (const method of methods) {
      const row: SasrecRow = { case: method.name, loss: method.loss.type, steps: 0, train_s: null, ms_per_step: null, test_ndcg10: null, test_ndcg10_range: null, test_hr10: null, test_mrr: null, test_coverage10: null, val_ndcg10: null, runs: [] };
      rows.push(row);
      try {
        for (const seed of seedList) row.runs.push(await trainOne(rt, opts, out, file, model, budget, method, seed));
      } catch (e) {
        row.why = (e as Error).message;
        opts.log(`${method.name}: failed (${row.why})`);
      }
      if (row.runs.length) Object.assign(row, summarize(row.runs));
    }
  } finally {
    gpu.destroy();
    if (!opts.out) fs.rmSync(out, { recursive: true, force: true });
  }
  const get = (c: string) => rows.find((r) => r.case === c);
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? a / b : null);
  const ce = get('ce')?.test_ndcg10;
  const pop = get('popularity')?.test_ndcg10;
  const learned = rows.filter((r) => r.case !== 'popularity' && !SASREC_LOSSES.find((m) => m.name === r.case)?.reference);
  const vsPop = learned.map((r) => ratio(r.test_ndcg10, pop));
  return {
    bench: 'sasrec',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [],
    setup: {
      data: 'ml-latest-small',
      protocol: 'leave-one-out, full catalogue, seen items removed',
      model: modelText,
      batch: BATCH,
      steps: budget.steps,
      eval_every: budget.evalEvery,
      patience: budget.patience,
      seeds,
      seed_list: seedList,
      selection: 'early stopping on validation NDCG@10; test figures of the best validation step (mean over seeds)',
      timed: 'training steps from start to the last step run (evaluations excluded)',
    },
    rows,
    headline: {
      cce_minus_ndcg_vs_ce: ratio(get('cce_minus')?.test_ndcg10, ce),
      gbce_ndcg_vs_ce: ratio(get('gbce')?.test_ndcg10, ce),
      bce_ndcg_vs_ce: ratio(get('bce')?.test_ndcg10, ce),
      /** The original SASRec recipe (one negative) over popularity: a reference, not in the weakest-loss headline. */
      bce_1neg_ndcg_vs_popularity: ratio(get('bce_1neg')?.test_ndcg10, pop),
      ce_ndcg10: ce ?? null,
      popularity_ndcg10: pop ?? null,
      /** The weakest loss's test NDCG@10 over popularity's ("every loss well above popularity"); reference rows left out. */
      min_loss_ndcg_vs_popularity: vsPop.every((x) => x !== null) && vsPop.length ? Math.min(...(vsPop as number[])) : null,
      cce_minus_speedup_vs_ce: ratio(get('ce')?.ms_per_step, get('cce_minus')?.ms_per_step),
    },
  };
}

/** One loss, one seed: trained with early stopping; the test figures are the best validation step's. */
async function trainOne(rt: Runtime, opts: SasrecBenchOptions, out: string, file: string, model: ReturnType<typeof modelOf>, budget: Budget, method: (typeof SASREC_LOSSES)[number], seed: number): Promise<SasrecRun> {
  const tag = `${method.name} seed ${seed}`;
  const cfgPath = path.join(out, `${method.name}-s${seed}.basin.json`);
  const text = configText(`bench-${method.name.replace(/_/g, '-')}-s${seed}`, file, model, budget, method.loss, seed);
  fs.writeFileSync(cfgPath, text);
  let t0 = 0;
  let lastLog = { step: 0, at: 0 };
  const evals: { end: number; seconds: number }[] = [];
  opts.log(`${tag}: training`);
  const r = await train({
    rt,
    config: parseConfig(text, cfgPath),
    configPath: cfgPath,
    outputDir: path.join(out, 'runs'),
    events: {
      onStart: () => (t0 = performance.now()),
      onLog: (l) => {
        lastLog = { step: l.step, at: performance.now() };
        if (l.step % (budget.evalEvery * 4) === 0 || l.step === l.totalSteps) opts.log(`${tag}: step ${l.step}/${l.totalSteps} loss ${l.loss.toFixed(4)}`);
      },
      onEval: (step, m) => {
        // The evaluation ran right after this step's log (logEvery = evalEvery): that span is the evaluation's.
        const now = performance.now();
        if (step === lastLog.step) evals.push({ end: now, seconds: (now - lastLog.at) / 1000 });
        opts.log(`${tag}: step ${step} validation NDCG@10 ${m.ndcg10?.toFixed(4)}`);
      },
    },
  });
  // From the start to the last step's log, less the evaluations inside that span (the last step's comes after it).
  const trainS = (lastLog.at - t0) / 1000 - evals.filter((e) => e.end <= lastLog.at).reduce((a, e) => a + e.seconds, 0);
  const run: SasrecRun = {
    seed,
    steps: r.steps,
    best_step: r.best?.step ?? null,
    train_s: trainS,
    test_ndcg10: r.test?.ndcg10 ?? null,
    test_hr10: r.test?.hr10Full ?? null,
    test_mrr: r.test?.mrr ?? null,
    test_coverage10: r.test?.coverage10 ?? null,
    val_ndcg10: r.best?.value ?? r.eval?.ndcg10 ?? null,
  };
  opts.log(`${tag}: ${r.steps} steps (best validation at step ${run.best_step}), test NDCG@10 ${run.test_ndcg10?.toFixed(4)}, HR@10 ${run.test_hr10?.toFixed(4)}, ${trainS.toFixed(1)} s training`);
  return run;
}

/** A loss's row from its seeds: means, and the range of test NDCG@10. */
function summarize(runs: SasrecRun[]): Partial<SasrecRow> {
  const mean = (f: (r: SasrecRun) => number | null) => {
    const xs = runs.map(f);
    return xs.some((x) => x === null) ? null : (xs as number[]).reduce((a, b) => a + b, 0) / xs.length;
  };
  const nd = runs.map((r) => r.test_ndcg10);
  const steps = mean((r) => r.steps)!;
  const trainS = mean((r) => r.train_s)!;
  return {
    steps,
    train_s: trainS,
    ms_per_step: (1000 * runs.reduce((a, r) => a + r.train_s, 0)) / runs.reduce((a, r) => a + r.steps, 0),
    test_ndcg10: mean((r) => r.test_ndcg10),
    test_ndcg10_range: nd.some((x) => x === null) ? null : [Math.min(...(nd as number[])), Math.max(...(nd as number[]))],
    test_hr10: mean((r) => r.test_hr10),
    test_mrr: mean((r) => r.test_mrr),
    test_coverage10: mean((r) => r.test_coverage10),
    val_ndcg10: mean((r) => r.val_ndcg10),
  };
}
export function formatSasrecReport(report: object): string {
  const r = report as { device: { description: string; fallback: boolean }; commit: string | null; rows: SasrecRow[]; headline: Record<string, number | null>; setup: { model: string; batch: number; steps: number; eval_every: number; patience: number; seeds: number } };
  const f = (x: number | null | undefined, d = 4) => (x == null ? '—' : x.toFixed(d));
  const out = [
    `sasrec on ml-latest-small (leave-one-out, full ranking) on ${r.device.description}${r.device.fallback ? ' [software]' : ''}, commit ${r.commit ?? 'n/a'}`,
    `${r.setup.model}, batch ${r.setup.batch}; each loss up to ${r.setup.steps} steps, early stopping on validation NDCG@10 (every ${r.setup.eval_every} steps, patience ${r.setup.patience}), test at the best step; mean of ${r.setup.seeds} seed(s)`,
    '',
  ];
  out.push(['method'.padEnd(12), 'NDCG@10'.padStart(8), 'range'.padStart(15), 'HR@10'.padStart(8), 'MRR'.padStart(8), 'cov@10'.padStart(8), 'val NDCG'.padStart(9), 'steps'.padStart(6), 'best at'.padStart(12), 'train s'.padStart(8), 'ms/step'.padStart(8)].join(' '));
  for (const x of r.rows) {
    const range = x.test_ndcg10_range && x.runs.length > 1 ? `${f(x.test_ndcg10_range[0])}–${f(x.test_ndcg10_range[1])}` : '';
    const best = x.runs.length ? x.runs.map((u) => u.best_step ?? '—').join(',') : '';
    out.push(
      [x.case.padEnd(12), f(x.test_ndcg10).padStart(8), range.padStart(15), f(x.test_hr10).padStart(8), f(x.test_mrr).padStart(8), f(x.test_coverage10).padStart(8), f(x.val_ndcg10).padStart(9), (x.runs.length ? x.steps.toFixed(0) : '').padStart(6), best.padStart(12), f(x.train_s, 1).padStart(8), f(x.ms_per_step, 0).padStart(8)].join(' ') +
        (x.why ? `  (${x.why})` : ''),
    );
  }
  const h = r.headline;
  out.push(
    '',
    `CCE− NDCG@10 / CE: ${f(h.cce_minus_ndcg_vs_ce, 3)} (target ≥ 0.97); gBCE / CE: ${f(h.gbce_ndcg_vs_ce, 3)}; BCE / CE: ${f(h.bce_ndcg_vs_ce, 3)}; weakest loss / popularity: ${f(h.min_loss_ndcg_vs_popularity, 2)}× (BCE with one negative, the reference row: ${f(h.bce_1neg_ndcg_vs_popularity, 2)}×); CCE− step speed-up over CE: ${f(h.cce_minus_speedup_vs_ce, 2)}×`,
  );
  return out.join('\n');
}
