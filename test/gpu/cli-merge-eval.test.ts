// `basin merge` and `basin eval` as a user runs them (bin/basin.js; needs dist/cli.js, which npm test builds):
// a TIES merge of two fine-tunes whose config names no base_model (found from the runs' lineage), its output
// and the refusal to write over it; then every model on both tasks, on the validation split (tasks without a
// test split say so) and, for interactions data, on the test split, whose figures must equal the test row the
// training run itself wrote.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeMergeExperts, type MergeExperts } from '../fixtures/merge-experts';
import { writeSafetensors } from '../../src/files/safetensors';
import { readAllTensors } from './helpers';

const ROOT = path.resolve(__dirname, '../..');
const basin = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/basin.js'), ...args], { cwd, encoding: 'utf8', timeout: 180_000 });

describe('basin merge and basin eval (CLI)', function () {
  this.timeout(400_000);
  let dir = '';
  let fx: MergeExperts;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-cli-merge-'));
    fx = makeMergeExperts(dir, { root: ROOT, withBare: false });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('merges two fine-tunes without base_model (lineage), writes the model, refuses to overwrite without --force', () => {
    const cfg = path.join(dir, 'lineage.merge.yaml');
    fs.writeFileSync(cfg, `merge_method: ties\nmodels:\n  - model: ${fx.a}\n    parameters: { weight: 1, density: 0.5 }\n  - model: ${fx.b}\n    parameters: { weight: 1, density: 0.5 }\nbasin: { output: ./merged/lineage }\n`);
    const r = basin(dir, 'merge', cfg, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /base_model: not given: using .*step-12\.safetensors, the checkpoint every model was fine-tuned from/);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as { output: string; tensors: unknown[]; models: { role: string; path: string }[] };
    assert.equal(report.output, path.join(dir, 'merged/lineage/model.safetensors'));
    assert.equal(report.tensors.length, 8);
    assert.deepEqual(report.models.map((m) => m.role).sort(), ['base', 'expert', 'expert']);
    assert.equal(report.models.find((m) => m.role === 'base')!.path, fs.realpathSync(path.join(fx.base, 'checkpoints/step-12.safetensors')));
    assert.ok(fs.statSync(path.join(dir, 'merged/lineage/model.safetensors')).size > 0);

    const again = basin(dir, 'merge', cfg);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already|--force/);
    assert.equal(basin(dir, 'merge', cfg, '--force').status, 0);
  });

  it('scores the merged model and the experts on both tasks; tasks without a test split say so', () => {
    const merged = path.join(dir, 'merged/lineage');
    const r = basin(dir, 'eval', merged, fx.a, fx.b, '--task', 'task-a.basin.yaml', 'task-b.basin.yaml', '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { model: string; task: string; split: string; metrics: { accuracy: number; loss: number } }[]; withoutTestSplit: string[] };
    assert.equal(out.results.length, 6);
    assert.ok(out.results.every((x) => x.split === 'validation' && x.metrics.accuracy >= 0 && x.metrics.accuracy <= 1 && Number.isFinite(x.metrics.loss)));
    assert.deepEqual(out.withoutTestSplit, ['task-a.basin.yaml (data synthetic-classification)', 'task-b.basin.yaml (data synthetic-classification)']);
    // Expert a on task a: the validation accuracy its own run recorded at its last evaluation.
    const ownRun = JSON.parse(fs.readFileSync(path.join(fx.a, 'run.json'), 'utf8')) as { lastMetrics: { val_accuracy: number } };
    const own = out.results.find((x) => x.model === fx.a && x.task === 'task-a.basin.yaml')!;
    assert.ok(Math.abs(own.metrics.accuracy - ownRun.lastMetrics.val_accuracy) < 1e-6, `${own.metrics.accuracy} vs the run's ${ownRun.lastMetrics.val_accuracy}`);

    const text = basin(dir, 'eval', merged, fx.a, '--task', 'task-a.basin.yaml', 'task-b.basin.yaml');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^accuracy on each task's validation split\nmodel +task-a +task-b +mean\n/);
    assert.doesNotMatch(text.stdout, /test split\n/);
    assert.match(text.stdout, /no test split \(the interactions source holds one out, synthetic-tasks draws fresh sequences; this data has none\): task-a\.basin\.yaml/);

    assert.match(basin(dir, 'eval', merged, '--task', 'task-a.basin.yaml', '--split', 'train').stderr, /--split must be one of validation, test, both, got "train"/);
  });

  it('a merge that fails over its data (a NaN) says so without the GPU driver\'s notices under it', async () => {
    // The driver's notices (lavapipe prints some as the device starts) are held back; a failure that is not the
    // GPU's does not bring them out.
    const ck = path.join(fx.a, 'checkpoints', fs.readdirSync(path.join(fx.a, 'checkpoints')).find((f) => /^step-\d+\.safetensors$/.test(f))!);
    const tensors = await readAllTensors(ck);
    const [first] = tensors.keys();
    tensors.get(first)![0] = NaN;
    await writeSafetensors(path.join(dir, 'nan.safetensors'), [...tensors].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: shapeOf(ck, name), data })));
    const cfg = path.join(dir, 'nan.merge.yaml');
    fs.writeFileSync(cfg, `merge_method: linear\nmodels:\n  - model: ${fx.a}\n  - model: ./nan.safetensors\nbasin: { output: ./merged/nan }\n`);
    const r = basin(dir, 'merge', cfg);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /non-finite values/);
    assert.doesNotMatch(r.stderr, /the GPU driver said|artificially reduced/);
  });

  it('scores a sharded merged model (its index) exactly as the same merge in one file', () => {
    const cfg = path.join(dir, 'sharded.merge.yaml');
    fs.writeFileSync(cfg, `merge_method: ties\nmodels:\n  - model: ${fx.a}\n    parameters: { weight: 1, density: 0.5 }\n  - model: ${fx.b}\n    parameters: { weight: 1, density: 0.5 }\nbasin: { output: ./merged/sharded, max_shard_bytes: 2000 }\n`);
    const m = basin(dir, 'merge', cfg);
    assert.equal(m.status, 0, m.stderr);
    assert.ok(fs.readdirSync(path.join(dir, 'merged/sharded')).filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f)).length > 1, 'several shards');
    const score = (model: string) => {
      const r = basin(dir, 'eval', model, '--task', 'task-a.basin.yaml', '--json');
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { metrics: unknown }[] }).results[0].metrics;
    };
    assert.deepEqual(score(path.join(dir, 'merged/sharded')), score(path.join(dir, 'merged/lineage')));
  });

  it('warns when --force writes the output over one of its own inputs, and the merge is still right', () => {
    const into = path.join(dir, 'merged/self');
    fs.mkdirSync(into, { recursive: true });
    fs.copyFileSync(path.join(dir, 'merged/lineage/model.safetensors'), path.join(into, 'model.safetensors'));
    const cfg = path.join(dir, 'self.merge.yaml');
    fs.writeFileSync(cfg, `merge_method: linear\nmodels:\n  - model: ./merged/self\n  - model: ./merged/self\nbasin: { output: ./merged/self }\n`);
    const before = fs.readFileSync(path.join(into, 'model.safetensors'));
    const r = basin(dir, 'merge', cfg, '--force');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: the output folder .*merged\/self holds the input model "\.\/merged\/self": --force replaces it with the merge once the merge is done/);
    // The mean of a model with itself is that model (its values, as the output's dtype keeps them).
    const after = fs.readFileSync(path.join(into, 'model.safetensors'));
    const tensorBytes = (b: Buffer) => b.subarray(8 + Number(b.readBigUInt64LE(0)));
    assert.ok(tensorBytes(after).equals(tensorBytes(before)), 'linear of a model with itself is the model');
    assert.equal(basin(dir, 'merge', cfg).status, 1, 'without --force: refused, no warning needed');
  });

  /**
   * Trains `<name>.basin.yaml` with the CLI, then `basin eval`s its run on that task: both splits are scored, and
   * each of `keys` equals what the run wrote at its end (val_* and test_*).
   */
  const trainThenEvalBothSplits = (name: string, keys: string[]) => {
    const t = basin(dir, 'train', `${name}.basin.yaml`);
    assert.equal(t.status, 0, t.stderr);
    const run = path.join(dir, 'runs', fs.readdirSync(path.join(dir, 'runs')).filter((f) => f.startsWith(`${name}-`)).pop()!);
    const rec = JSON.parse(fs.readFileSync(path.join(run, 'run.json'), 'utf8')) as { lastMetrics: Record<string, number> };
    const r = basin(dir, 'eval', run, '--task', `${name}.basin.yaml`, '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { split: string; metrics: Record<string, number> }[]; withoutTestSplit: string[] };
    assert.deepEqual(out.results.map((x) => x.split), ['validation', 'test']);
    assert.deepEqual(out.withoutTestSplit, []);
    for (const [split, prefix] of [['validation', 'val_'], ['test', 'test_']] as const) {
      const m = out.results.find((x) => x.split === split)!.metrics;
      for (const k of keys) {
        assert.ok(Number.isFinite(m[k]), `${split} ${k}`);
        assert.ok(Math.abs(m[k] - rec.lastMetrics[prefix + k]) < 1e-6, `${split} ${k}: eval ${m[k]}, the run wrote ${rec.lastMetrics[prefix + k]}`);
      }
    }
    return { run, rec, out };
  };

  it("scores interactions data on its test split, equal to the training run's own test row", () => {
    // 17 users walking noisy cycles over 23 items: every user has ≥ 3 interactions (train, valid, test).
    const lines: string[] = [];
    let s = 12345;
    const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let u = 0; u < 17; u++) {
      let item = 1 + Math.floor(rand() * 23);
      for (let i = 0; i < 3 + (u % 11); i++) {
        lines.push(`u${u} i${item}`);
        item = rand() < 0.8 ? (item % 23) + 1 : 1 + Math.floor(rand() * 23);
      }
    }
    fs.writeFileSync(path.join(dir, 'log.txt'), lines.join('\n') + '\n');
    fs.writeFileSync(
      path.join(dir, 'loo.basin.yaml'),
      'name: loo\nseed: 3\nmodel: { type: sasrec, items: 25, hidden: 8, blocks: 1, heads: 1, maxLen: 5, dropout: 0.1 }\ndata: { type: interactions, path: log.txt }\ntrain: { steps: 6, batchSize: 4, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 6, checkpointEvery: 0, statsEvery: 0, logEvery: 3 }\noutput: runs\n',
    );
    const { run } = trainThenEvalBothSplits('loo', ['ndcg10', 'hr10Full', 'mrr']);
    const text = basin(dir, 'eval', run, '--task', 'loo.basin.yaml', '--metric', 'ndcg10', '--split', 'test');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^ndcg10 on each task's test split\n/);
    assert.doesNotMatch(text.stdout, /validation/);
  });

  it("scores synthetic-tasks data on its test split (fresh sequences), equal to the training run's own test row", () => {
    fs.writeFileSync(
      path.join(dir, 'seq.basin.yaml'),
      'name: seq\nseed: 1\nmodel: { type: transformer, vocab: 24, dModel: 16, layers: 1, heads: 2, seqLen: 8, dropout: 0 }\n' +
        'data: { type: synthetic-tasks, tasks: 2, task: 1, sequences: 120, branching: 2, noise: 0.05, seed: 1, validFraction: 0.2 }\n' +
        'train: { steps: 8, batchSize: 8, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 8, checkpointEvery: 0, statsEvery: 0, logEvery: 4 }\noutput: runs\n',
    );
    const { rec, out } = trainThenEvalBothSplits('seq', ['accuracy', 'loss']);
    assert.ok(Number.isFinite(rec.lastMetrics.test_accuracy), 'the run scored its test split once, at the end');
    // Another split than validation: fresh sequences score differently (not a copy of the validation figures).
    assert.notEqual(out.results[0].metrics.loss, out.results[1].metrics.loss);
  });
});

/** A tensor's shape from a safetensors header (read synchronously: the test's fixture is small). */
function shapeOf(file: string, name: string): number[] {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return (JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>)[name].shape;
}
