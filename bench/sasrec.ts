// `basin bench sasrec [--quick] [--json]`: SASRec on MovieLens ml-latest-small under leave-one-out with
// full-catalogue ranking (algorithms.md §4–5): the same model, data, seed and steps trained with full
// cross-entropy (CE), CCE− (256 negatives), BCE (1 negative, the original SASRec) and gBCE (256 negatives,
// t = 0.75), each through the real trainer (`train()`), plus the popularity baseline. Reported per method: test
// NDCG@10, HR@10, MRR and coverage@10 (each user's last item ranked against the whole catalogue given the rest of
// its history, seen items removed), the validation NDCG@10, and the training time (from the trainer's start to the
// last step's logged loss: evaluations excluded).
//
// Full CE forms the [batch · maxLen, items + 1] logits in one storage binding (128 MiB on lavapipe): with the
// whole catalogue (9,725 items) batch 32 × maxLen 50 is 62 MiB, well inside it (64 × 50 would be 124 MiB, too
// close once the pool holds anything else), so every method trains on batch 32 × 50 (d = 64, 2 blocks). --quick
// trains a smaller model (d = 32, 1 block, maxLen 20: CE's logits 25 MiB) for 60 steps, a few minutes on lavapipe.
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
  /** Training steps per method (default 400; 60 with --quick). */
  steps?: number;
  /** The folder holding ratings.csv (default: ../shared/data/ml-latest-small from the repository root). */
  dataPath?: string;
  /** Keep the run folders here (default: a temporary folder, removed at the end). */
  out?: string;
}

export interface SasrecRow {
  case: string;
  loss: string;
  steps: number;
  train_s: number | null;
  ms_per_step: number | null;
  test_ndcg10: number | null;
  test_hr10: number | null;
  test_mrr: number | null;
  test_coverage10: number | null;
  val_ndcg10: number | null;
  why?: string;
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

const METHODS: { name: string; loss: LossConfig }[] = [
  { name: 'ce', loss: { type: 'cross-entropy' } },
  { name: 'cce_minus', loss: { type: 'cce-minus', negatives: 256, sampler: 'uniform', seed: 1 } },
  { name: 'bce', loss: { type: 'bce', negatives: 1, sampler: 'uniform', seed: 1 } },
  { name: 'gbce', loss: { type: 'gbce', negatives: 256, t: 0.75, sampler: 'uniform', seed: 1 } as LossConfig },
];

/** A train config as the loader sees it (JSON is YAML). */
function configText(name: string, dataPath: string, model: ReturnType<typeof modelOf>, steps: number, loss: LossConfig): string {
  return JSON.stringify({
    name,
    seed: 1,
    model,
    data: { type: 'interactions', path: dataPath, split: 'leave-one-out' },
    train: {
      steps,
      batchSize: BATCH,
      loss,
      optimizer: { type: 'adamw', lr: 0.002, betas: [0.9, 0.98], eps: 1e-8, weightDecay: 0 },
      schedule: { type: 'constant', warmup: Math.min(20, steps >> 3) },
      gradClip: 1,
      evalEvery: 0,
      checkpointEvery: 0,
      statsEvery: 0,
      logEvery: Math.max(1, steps >> 2),
    },
    output: 'runs',
  });
}

export async function runSasrecBench(opts: SasrecBenchOptions): Promise<object> {
  const steps = opts.steps ?? (opts.quick ? 60 : 400);
  const dataDir = opts.dataPath ?? defaultMlSmall();
  const file = path.join(dataDir, 'ratings.csv');
  if (!fs.existsSync(file)) throw new Error(`bench sasrec: ${file} not found (MovieLens ml-latest-small; set BASIN_ML_SMALL to the folder holding ratings.csv)`);
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const out = opts.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-sasrec-'));
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
    opts.log(`bench sasrec: ${modelText}, batch ${BATCH}, ${steps} steps per loss`);

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
      rows.push({ case: 'popularity', loss: 'popularity', steps: 0, train_s: (performance.now() - t0) / 1000, ms_per_step: null, test_ndcg10: m.ndcg, test_hr10: m.hr, test_mrr: m.mrr, test_coverage10: m.coverage, val_ndcg10: accV.result().ndcg });
      opts.log(`popularity: test NDCG@10 ${m.ndcg.toFixed(4)}, HR@10 ${m.hr.toFixed(4)}`);
    }

    for (const method of METHODS) {
      const row: SasrecRow = { case: method.name, loss: method.loss.type, steps, train_s: null, ms_per_step: null, test_ndcg10: null, test_hr10: null, test_mrr: null, test_coverage10: null, val_ndcg10: null };
      rows.push(row);
      const cfgPath = path.join(out, `${method.name}.basin.json`);
      const text = configText(`bench-${method.name.replace(/_/g, '-')}`, file, model, steps, method.loss);
      fs.writeFileSync(cfgPath, text);
      let t0 = 0;
      let t1 = 0;
      opts.log(`${method.name}: training`);
      try {
        const r = await train({
          rt,
          config: parseConfig(text, cfgPath),
          configPath: cfgPath,
          outputDir: path.join(out, 'runs'),
          events: {
            onStart: () => (t0 = performance.now()),
            onLog: (l) => {
              if (l.step === l.totalSteps) t1 = performance.now();
              opts.log(`${method.name}: step ${l.step}/${l.totalSteps} loss ${l.loss.toFixed(4)}`);
            },
          },
        });
        row.train_s = (t1 - t0) / 1000;
        row.ms_per_step = (t1 - t0) / steps;
        row.val_ndcg10 = r.eval?.ndcg10 ?? null;
        if (r.test) Object.assign(row, { test_ndcg10: r.test.ndcg10 ?? null, test_hr10: r.test.hr10Full ?? null, test_mrr: r.test.mrr ?? null, test_coverage10: r.test.coverage10 ?? null });
        opts.log(`${method.name}: test NDCG@10 ${row.test_ndcg10?.toFixed(4)}, HR@10 ${row.test_hr10?.toFixed(4)}, ${row.train_s.toFixed(1)} s`);
      } catch (e) {
        row.why = (e as Error).message;
        opts.log(`${method.name}: failed (${row.why})`);
      }
    }
  } finally {
    if (!opts.out) fs.rmSync(out, { recursive: true, force: true });
  }
  const get = (c: string) => rows.find((r) => r.case === c);
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? a / b : null);
  const ce = get('ce')?.test_ndcg10;
  return {
    bench: 'sasrec',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [],
    setup: { data: 'ml-latest-small', protocol: 'leave-one-out, full catalogue, seen items removed', model: modelText, batch: BATCH, steps, timed: 'training steps from start to the last step (evaluations excluded)' },
    rows,
    headline: {
      cce_minus_ndcg_vs_ce: ratio(get('cce_minus')?.test_ndcg10, ce),
      gbce_ndcg_vs_ce: ratio(get('gbce')?.test_ndcg10, ce),
      bce_ndcg_vs_ce: ratio(get('bce')?.test_ndcg10, ce),
      ce_ndcg10: ce ?? null,
      popularity_ndcg10: get('popularity')?.test_ndcg10 ?? null,
      cce_minus_speedup_vs_ce: ratio(get('ce')?.ms_per_step, get('cce_minus')?.ms_per_step),
    },
  };
}

export function formatSasrecReport(report: object): string {
  const r = report as { device: { description: string; fallback: boolean }; commit: string | null; rows: SasrecRow[]; headline: Record<string, number | null>; setup: { model: string; batch: number; steps: number } };
  const f = (x: number | null | undefined, d = 4) => (x == null ? '—' : x.toFixed(d));
  const out = [`sasrec on ml-latest-small (leave-one-out, full ranking) on ${r.device.description}${r.device.fallback ? ' [software]' : ''}, commit ${r.commit ?? 'n/a'}`, `${r.setup.model}, batch ${r.setup.batch}, ${r.setup.steps} steps`, ''];
  out.push(['method'.padEnd(12), 'NDCG@10'.padStart(8), 'HR@10'.padStart(8), 'MRR'.padStart(8), 'cov@10'.padStart(8), 'val NDCG'.padStart(9), 'train s'.padStart(9), 'ms/step'.padStart(9)].join(' '));
  for (const x of r.rows) {
    out.push([x.case.padEnd(12), f(x.test_ndcg10).padStart(8), f(x.test_hr10).padStart(8), f(x.test_mrr).padStart(8), f(x.test_coverage10).padStart(8), f(x.val_ndcg10).padStart(9), f(x.train_s, 1).padStart(9), f(x.ms_per_step, 0).padStart(9)].join(' ') + (x.why ? `  (${x.why})` : ''));
  }
  out.push('', `CCE− NDCG@10 / CE: ${f(r.headline.cce_minus_ndcg_vs_ce, 3)} (target ≥ 0.97); gBCE / CE: ${f(r.headline.gbce_ndcg_vs_ce, 3)}; BCE / CE: ${f(r.headline.bce_ndcg_vs_ce, 3)}; CCE− step speed-up over CE: ${f(r.headline.cce_minus_speedup_vs_ce, 2)}×`);
  return out.join('\n');
}
