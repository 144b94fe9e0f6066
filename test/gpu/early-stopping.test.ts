// Early stopping (`train.earlyStopping`): the stopper's rule (min/max, minDelta, patience, an unknown metric),
// its resume replay, and a run that stops: status completed with the reason, the best step checkpointed and
// recorded in run.json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { train } from '../../src/engine/train/trainer';
import { EarlyStopper, defaultMode } from '../../src/engine/train/early-stopping';
import { openRun } from '../../src/files/run-record';
import { runtime } from './helpers';

const MLP = (o: { name: string; steps: number; early: string; evalEvery: number; checkpointEvery?: number }) => `name: ${o.name}
seed: 3
model: { type: mlp, inputs: 12, hidden: [16], classes: 5, activation: relu }
data: { type: synthetic-classification, samples: 400, noise: 0.5, validFraction: 0.25 }
train:
  earlyStopping: ${o.early}
  steps: ${o.steps}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: ${o.evalEvery}
  checkpointEvery: ${o.checkpointEvery ?? 0}
  statsEvery: 0
  logEvery: 5
`;

describe('early stopping', function () {
  this.timeout(240_000);

  it('stops after `patience` evaluations without an improvement larger than minDelta (min and max modes)', () => {
    const s = new EarlyStopper({ metric: 'val_loss', patience: 2, minDelta: 0.05 });
    assert.equal(s.mode, 'min');
    assert.deepEqual(s.update(10, { val_loss: 1.0 }), { improved: true, stop: false });
    assert.deepEqual(s.update(20, { val_loss: 0.97 }), { improved: false, stop: false }, 'better, but not by more than minDelta');
    assert.deepEqual(s.update(30, { val_loss: 0.9 }), { improved: true, stop: false });
    assert.deepEqual(s.update(40, { val_loss: 0.95 }), { improved: false, stop: false });
    assert.deepEqual(s.update(50, { val_loss: 0.88 }), { improved: false, stop: true });
    assert.deepEqual(s.best, { step: 30, value: 0.9 });
    assert.match(s.reason(50), /val_loss did not improve .* 2 evaluations.*best 0\.9 at step 30/);
    const m = new EarlyStopper({ metric: 'accuracy', patience: 1, minDelta: 0 });
    assert.equal(m.mode, 'max');
    assert.equal(m.key, 'val_accuracy');
    assert.equal(m.update(5, { val_accuracy: 0.5 }).improved, true);
    assert.equal(m.update(10, { val_accuracy: 0.6 }).improved, true);
    assert.deepEqual(m.update(15, { val_accuracy: 0.6 }), { improved: false, stop: true }, 'equal is not better');
    assert.equal(defaultMode('val_ndcg10'), 'max');
    assert.equal(defaultMode('val_perplexity'), 'min');
    assert.throws(() => new EarlyStopper({ metric: 'ndcg10', patience: 1, minDelta: 0 }).update(5, { val_loss: 1, val_accuracy: 0.2 }), /"ndcg10" is not a validation metric of this run.*val_loss, val_accuracy/);
    assert.throws(() => new EarlyStopper({ metric: 'val_los', patience: 1, minDelta: 0 }), /"val_los" is not a validation metric; they are val_loss, val_accuracy/);
    // A NaN evaluation never counts as the best.
    const n = new EarlyStopper({ metric: 'val_loss', patience: 3, minDelta: 0 });
    n.update(1, { val_loss: 2 });
    assert.equal(n.update(2, { val_loss: NaN }).improved, false);
    assert.deepEqual(n.best, { step: 1, value: 2 });
  });

  it('rebuilds its state from metrics.jsonl on resume (rows after the checkpoint ignored)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-es-'));
    try {
      const f = path.join(dir, 'metrics.jsonl');
      const rows = [{ step: 5, loss: 1 }, { step: 5, val_loss: 1.0 }, { step: 10, val_loss: 0.8 }, { step: 15, val_loss: 0.9 }, { step: 20, val_loss: 0.95 }];
      fs.writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n{"step": 25, "val_lo');
      const s = new EarlyStopper({ metric: 'val_loss', patience: 3, minDelta: 0 });
      assert.equal(s.replay(f, 15), false);
      assert.deepEqual(s.best, { step: 10, value: 0.8 });
      assert.equal(s.stale, 1);
      const t = new EarlyStopper({ metric: 'val_loss', patience: 2, minDelta: 0 });
      assert.equal(t.replay(f, 20), true, 'those evaluations had already reached the stopping point');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a run stops early: completed with the reason, the best step checkpointed and recorded in run.json', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-es-'));
    try {
      const file = path.join(dir, 'es.basin.yaml');
      // minDelta far above any change: the first evaluation is the best, the next `patience` ones are not.
      fs.writeFileSync(file, MLP({ name: 'es', steps: 60, evalEvery: 5, early: '{ metric: val_loss, patience: 2, minDelta: 100 }' }));
      const r = await train({ rt: await runtime(), config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs') });
      assert.equal(r.status, 'completed');
      assert.equal(r.steps, 15, 'stopped at the second evaluation without improvement');
      assert.match(r.stopReason ?? '', /early stopping at step 15: val_loss did not improve/);
      assert.equal(r.best?.step, 5);
      const run = await openRun(r.runDir);
      assert.equal(run.record.status, 'completed');
      const last = run.record.lastMetrics as Record<string, unknown>;
      assert.equal(last.best_step, 5);
      assert.equal(last.best_val_loss, r.best!.value);
      assert.match(String(last.stop_reason), /early stopping at step 15/);
      const ck = run.record.checkpoints.find((c) => c.step === 5);
      assert.ok(ck, 'the best step has a checkpoint although checkpointEvery is 0');
      assert.ok(fs.existsSync(run.resolve(ck!.path)));
      assert.equal(ck!.metrics?.val_loss, r.best!.value, 'the checkpoint records the metrics it was chosen by');
      const rows = fs.readFileSync(run.metricsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(rows.every((x) => x.step <= 15), 'no step after the stop');
      // Without minDelta the metric keeps improving on this easy task: the run goes to the end.
      const file2 = path.join(dir, 'es2.basin.yaml');
      fs.writeFileSync(file2, MLP({ name: 'es2', steps: 20, evalEvery: 5, early: '{ metric: loss, patience: 3 }' }));
      const r2 = await train({ rt: await runtime(), config: loadConfig(file2).config, configPath: file2, outputDir: path.join(dir, 'runs') });
      assert.equal(r2.steps, 20);
      assert.equal(r2.stopReason, undefined);
      // A misspelt metric is a config error on its line, before any step.
      const file3 = path.join(dir, 'es3.basin.yaml');
      fs.writeFileSync(file3, MLP({ name: 'es3', steps: 20, evalEvery: 5, early: '{ metric: val_acc }' }));
      await assert.rejects(train({ rt: await runtime(), config: loadConfig(file3).config, configPath: file3, outputDir: path.join(dir, 'runs') }), (e: Error) => {
        assert.ok(e instanceof ConfigError, e.message);
        assert.match(e.message, /es3\.basin\.yaml:\d+.*"val_acc" is not a validation metric/);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
