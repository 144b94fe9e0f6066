// Leave-one-out evaluation in training (src/engine/train/leave-one-out.ts): a tiny interaction log in a temp
// folder, a tiny SASRec trained a few steps; the val_* metrics of the last evaluation and the test_* row written
// at the end must equal a CPU ranking (src/engine/cpu/ranking.ts) of the same users' targets with the final
// weights, each history's last maxLen items read, the user's seen items removed.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuRankFullCatalog } from '../../src/engine/cpu/ranking';
import { rankingMetrics } from '../../src/engine/eval/metrics';
import type { NextItemQueries } from '../../src/engine/eval/ranking';
import type { Runtime } from '../../src/engine/gpu/runtime';
import type { Model } from '../../src/engine/nn/models';
import { embedding } from '../../src/engine/ops/embedding';
import { fromArray, noGrad, tidy } from '../../src/engine/tensor/tensor';
import { loadWeights } from '../../src/engine/train/checkpoint';
import { buildTrainingData } from '../../src/engine/train/data-source';
import type { EvalMetrics } from '../../src/engine/train/evaluate';
import { lastWindows, splitQueries } from '../../src/engine/train/leave-one-out';
import { materializeModel, train } from '../../src/engine/train/trainer';
import { loadInteractionSplit } from '../../src/engine/data/interactions/source';
import { parseConfig } from '../../src/files/config/load';
import { openRun } from '../../src/files/run-record';
import { runtime } from './helpers';

const ITEMS = 23; // a prime: no tile of the ranking kernel is full
const MAX_LEN = 5; // shorter than most histories, so the window cut matters

/** `user item` lines in time order: each user walks a noisy cycle over the items (learnable), lengths 3..13. */
function writeLog(dir: string): string {
  const lines: string[] = [];
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let u = 0; u < 17; u++) {
    const n = 3 + (u % 11);
    let item = 1 + Math.floor(rand() * ITEMS);
    for (let i = 0; i < n; i++) {
      lines.push(`u${u} i${item}`);
      item = rand() < 0.8 ? (item % ITEMS) + 1 : 1 + Math.floor(rand() * ITEMS);
    }
  }
  const file = path.join(dir, 'log.txt');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const config = (dir: string, train: Record<string, unknown> = {}) =>
  parseConfig(
    JSON.stringify({
      name: 'loo',
      seed: 3,
      model: { type: 'sasrec', items: ITEMS + 2, hidden: 8, blocks: 1, heads: 1, maxLen: MAX_LEN, dropout: 0.1 },
      data: { type: 'interactions', path: 'log.txt' },
      train: { steps: 6, batchSize: 4, optimizer: { type: 'adamw', lr: 0.01 }, evalEvery: 3, checkpointEvery: 0, statsEvery: 0, logEvery: 3, ...train },
      output: 'runs',
    }),
    path.join(dir, 'loo.basin.json'),
  );

/** CPU ranking of the queries with the model's hidden state at each history's last position (read from the GPU). */
async function cpuMetrics(rt: Runtime, model: Model, q: NextItemQueries): Promise<ReturnType<typeof rankingMetrics>> {
  const { inputs, last } = lastWindows(q.histories, MAX_LEN);
  const n = q.histories.length;
  model.eval();
  const h = await noGrad(() => tidy(() => embedding(model.hidden(fromArray(rt, inputs, [n, MAX_LEN], 'i32')), fromArray(rt, last, [n], 'i32')).toArray()));
  const table = await model.head.weight.toArray();
  const d = model.head.weight.shape[1];
  const V = model.head.weight.shape[0];
  const r = cpuRankFullCatalog(h as Float32Array, table as Float32Array, d, q.targets, q.seen, { k: 10, pad: 0 });
  return rankingMetrics(r.greater, r.equal, 10, V - 1, { ids: r.topK, length: 10 });
}

function assertSame(m: EvalMetrics | Record<string, number>, prefix: string, ref: ReturnType<typeof rankingMetrics>): void {
  const get = (k: string) => (m as Record<string, number>)[prefix + k];
  for (const [k, v] of [['ndcg10', ref.ndcg], ['hr10Full', ref.hr], ['mrr', ref.mrr], ['coverage10', ref.coverage!]] as const) {
    assert.ok(Number.isFinite(get(k)), `${prefix}${k} is ${get(k)}`);
    assert.ok(Math.abs(get(k) - v) < 1e-6, `${prefix}${k}: training reported ${get(k)}, the CPU ranking gives ${v}`);
  }
}

describe('movielens with sasrec: data.maxItems derives from model.items', () => {
  const cfg = (maxItems?: number) =>
    JSON.stringify({ name: 'ml', model: { type: 'sasrec', items: 300, maxLen: 10 }, data: { type: 'movielens', path: 'x', ...(maxItems ? { maxItems } : {}) }, train: { steps: 1 } });
  it('defaults to model.items and refuses more, naming model.items', () => {
    assert.equal((parseConfig(cfg(), 'ml.basin.json').data as { maxItems: number }).maxItems, 300);
    assert.equal((parseConfig(cfg(120), 'ml.basin.json').data as { maxItems: number }).maxItems, 120);
    assert.throws(() => parseConfig(cfg(301), 'ml.basin.json'), /maxItems.*must be at most model\.items \(300\), got 301/);
  });
});

describe('leave-one-out evaluation in training (sasrec, interactions)', function () {
  this.timeout(300_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-loo-'));
    writeLog(dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('builds one query per user: its training history, its validation target, its seen items', async () => {
    const cfg = config(dir);
    const data = await buildTrainingData(cfg, path.join(dir, 'loo.basin.json'));
    assert.ok(data.leaveOneOut, 'interactions data carries leave-one-out queries');
    const { split } = await loadInteractionSplit(cfg.data as never, dir);
    const v = data.leaveOneOut.valid;
    assert.equal(v.histories.length, 17); // every user has ≥ 3 interactions
    for (let u = 0; u < split.numUsers; u++) {
      assert.deepEqual(Array.from(v.histories[u]), Array.from(split.train[u]));
      assert.equal(v.targets[u], split.valid[u]);
      const seen = Array.from(v.seen!.items).slice(v.seen!.offsets[u], v.seen!.offsets[u + 1]);
      assert.deepEqual(seen, [...new Set(split.train[u])].sort((a, b) => a - b));
      assert.deepEqual(Array.from(data.leaveOneOut.test.histories[u]), [...split.train[u], split.valid[u]]);
    }
    // Windows: the last MAX_LEN items at positions 0..n-1, padding after, `last` at the final real item.
    const { inputs, last } = lastWindows([Int32Array.of(1, 2, 3, 4, 5, 6, 7), Int32Array.of(9)], MAX_LEN);
    assert.deepEqual(Array.from(inputs), [3, 4, 5, 6, 7, 9, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(last), [4, 5]);
    assert.equal(splitQueries(split, 'test').histories.length, 17);
  });

  it('reports val_* metrics equal to a CPU ranking of each user\'s target, and test_* rows at the end', async () => {
    const rt = await runtime();
    const cfg = config(dir);
    const evals: { step: number; m: EvalMetrics }[] = [];
    const r = await train({ rt, config: cfg, configPath: path.join(dir, 'loo.basin.json'), events: { onEval: (step, m) => evals.push({ step, m }) } });
    assert.equal(r.status, 'completed');
    assert.deepEqual(evals.map((e) => e.step), [3, 6]);
    assert.ok(r.test, 'a final test evaluation');

    const data = await buildTrainingData(cfg, path.join(dir, 'loo.basin.json'));
    const { model, store } = materializeModel(rt, cfg.model, cfg.seed);
    try {
      const run = await openRun(r.runDir);
      await loadWeights(run.latestCheckpoint()!.absPath, store);
      const refValid = await cpuMetrics(rt, model, data.leaveOneOut!.valid);
      const refTest = await cpuMetrics(rt, model, data.leaveOneOut!.test);
      assertSame(evals[1].m, '', refValid);
      assertSame(r.test!, '', refTest);
      // The metrics file: val_* at each evaluation, one test_* row at the last step.
      const rows = await run.readMetrics();
      const testRows = rows.filter((x) => 'test_ndcg10' in x);
      assert.equal(testRows.length, 1);
      assert.equal(testRows[0].step, 6);
      assertSame(testRows[0] as unknown as Record<string, number>, 'test_', refTest);
      assert.ok(Number.isFinite(testRows[0].test_loss as number) && (testRows[0].test_loss as number) > 0);
      assert.equal(rows.filter((x) => 'val_ndcg10' in x).length, 2);
      // A validation metric differs from the test one (different targets): the rows are not copies.
      assert.notEqual(refValid.mrr, refTest.mrr);
      assert.equal(run.record.lastMetrics?.test_ndcg10, r.test!.ndcg10);
    } finally {
      store.destroy();
    }
  });

  it('with early stopping, test_* scores the best evaluation\'s weights (its checkpoint), not the last step\'s', async () => {
    const rt = await runtime();
    // Validation loss "maximised" with patience 1: training lowers it, so the first evaluation stays the best
    // and the run stops at the second: the final weights are not the selected ones.
    const cfg = config(dir, { steps: 40, evalEvery: 2, checkpointEvery: 2, earlyStopping: { metric: 'val_loss', mode: 'max', patience: 1, minDelta: 0 } });
    const r = await train({ rt, config: cfg, configPath: path.join(dir, 'loo.basin.json') });
    assert.equal(r.status, 'completed');
    assert.ok(r.best && r.best.step < r.steps, `the run should stop after its best evaluation: best ${JSON.stringify(r.best)}, steps ${r.steps}`);
    assert.equal(r.testStep, r.best.step);
    const data = await buildTrainingData(cfg, path.join(dir, 'loo.basin.json'));
    const run = await openRun(r.runDir);
    const score = async (step: number) => {
      const { model, store } = materializeModel(rt, cfg.model, cfg.seed);
      try {
        await loadWeights(path.join(r.runDir, run.checkpointPath(step)), store);
        return await cpuMetrics(rt, model, data.leaveOneOut!.test);
      } finally {
        store.destroy();
      }
    };
    const atBest = await score(r.best.step);
    assertSame(r.test!, '', atBest);
    const testRows = (await run.readMetrics()).filter((x) => 'test_ndcg10' in x);
    assert.equal(testRows.length, 1);
    assert.equal(testRows[0].step, r.best.step, 'the test row names the step whose weights it scored');
    // The last checkpoint (the stopping step) scores differently: the test row is not the final weights'.
    const atLast = await score(r.steps);
    assert.notEqual(atLast.mrr, atBest.mrr);
  });
});
