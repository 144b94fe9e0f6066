// The training loop end to end on the GPU: a model that must learn, cancel + resume from the last checkpoint,
// NaN/Inf detection that names the step and the layer, and a failed run that keeps its last checkpoint.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../src/files/config/load';
import { NonFiniteError, train } from '../../src/engine/train/trainer';
import { openRun } from '../../src/files/run-record';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { runtime } from './helpers';

const MLP = (over: { steps?: number; lr?: number; optimizer?: string; checkpointEvery?: number; logEvery?: number } = {}) => `
name: t-mlp
seed: 3
model: { type: mlp, inputs: 16, hidden: [32], classes: 8, activation: relu }
data: { type: synthetic-classification, samples: 1200, noise: 0.5, validFraction: 0.2 }
train:
  steps: ${over.steps ?? 120}
  batchSize: 64
  optimizer: ${over.optimizer ?? `{ type: adamw, lr: ${over.lr ?? 0.01} }`}
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: ${over.checkpointEvery ?? 0}
  logEvery: ${over.logEvery ?? 5}
`;

const TRANSFORMER = `
name: t-lm
seed: 1
model: { type: transformer, vocab: 32, dModel: 32, layers: 1, heads: 2, seqLen: 8 }
data: { type: synthetic-sequences, sequences: 800, length: 9, branching: 2, noise: 0.05, validFraction: 0.1 }
train:
  steps: 150
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: cosine, warmup: 10 }
  gradClip: 1.0
  evalEvery: 0
  checkpointEvery: 0
  logEvery: 10
`;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'basin-train-'));
}

describe('training loop', function () {
  this.timeout(240_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const out = () => {
    const d = tmpDir();
    dirs.push(d);
    return d;
  };

  it('an MLP learns: validation accuracy far above chance', async () => {
    const rt = await runtime();
    const r = await train({ rt, config: parseConfig(MLP(), 'mlp.basin.yaml'), outputDir: out() });
    assert.equal(r.status, 'completed');
    assert.ok(r.eval && r.chance);
    assert.ok(r.eval.accuracy > 3 * r.chance.accuracy, `accuracy ${r.eval.accuracy} vs chance ${r.chance.accuracy}`);
    assert.ok(r.eval.loss < 0.5 * r.chance.loss, `val loss ${r.eval.loss} vs chance ${r.chance.loss}`);
  });

  it('a causal transformer learns next-item prediction: HR@10 and loss far better than chance', async () => {
    const rt = await runtime();
    const r = await train({ rt, config: parseConfig(TRANSFORMER, 'lm.basin.yaml'), outputDir: out() });
    assert.ok(r.eval && r.chance);
    assert.ok(r.eval.loss < 0.75 * r.chance.loss, `val loss ${r.eval.loss} vs chance ${r.chance.loss}`);
    assert.ok(r.eval.hr10 > 1.8 * r.chance.hr10, `HR@10 ${r.eval.hr10} vs chance ${r.chance.hr10}`);
  });

  it('cancel writes a checkpoint at the step reached; resume finishes like an uninterrupted run', async () => {
    const rt = await runtime();
    const text = MLP({ steps: 60, checkpointEvery: 20 });
    const full = await train({ rt, config: parseConfig(text, 'a.basin.yaml'), outputDir: out() });

    const abort = new AbortController();
    const part = await train({
      rt,
      config: parseConfig(text, 'a.basin.yaml'),
      outputDir: out(),
      signal: abort.signal,
      events: { onLog: (l) => l.step >= 25 && abort.abort() },
    });
    assert.equal(part.status, 'cancelled');
    assert.equal(part.steps, 25);
    const run = await openRun(part.runDir);
    assert.equal(run.record.status, 'cancelled');
    assert.equal(run.latestCheckpoint()?.step, 25);

    const resumed = await train({ rt, config: parseConfig(text, 'a.basin.yaml'), resume: part.runDir });
    assert.equal(resumed.status, 'completed');
    assert.equal(resumed.steps, 60);
    // Same batches, same optimizer state: the weights match the uninterrupted run's.
    const a = path.join(full.runDir, full.checkpoint!);
    const b = path.join(resumed.runDir, resumed.checkpoint!);
    const ha = await readSafetensorsHeader(a);
    for (const name of Object.keys(ha.tensors)) {
      const x = (await readTensor(a, name, ha)).data as Float32Array;
      const y = (await readTensor(b, name)).data as Float32Array;
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= 1e-5 + 1e-4 * Math.abs(x[i]), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  });

  it('a diverging run stops with the step and the first non-finite layer, and keeps its last checkpoint', async () => {
    const rt = await runtime();
    // Plain SGD with an absurd learning rate overflows the weights to ±Inf within a few steps.
    const text = MLP({ steps: 40, checkpointEvery: 1, optimizer: '{ type: sgd, lr: 1.0e+30, momentum: 0 }' });
    let err: unknown;
    let runDir = '';
    try {
      await train({ rt, config: parseConfig(text, 'nan.basin.yaml'), outputDir: out(), events: { onStart: (i) => (runDir = i.runDir) } });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof NonFiniteError, `expected NonFiniteError, got ${String(err)}`);
    assert.match(err.message, /at step \d+/);
    assert.ok(err.step >= 1 && err.step <= 40);
    assert.ok(err.layer, "the error names the first non-finite layer");
    assert.match(err.message, new RegExp(err.layer.replace(/\./g, '\\.')));
    assert.match(err.message, /(gradient|loss)/);
    const run = await openRun(runDir);
    assert.equal(run.record.status, 'failed');
    assert.match(String(run.record.error?.message), /not finite/);
    const ck = run.latestCheckpoint();
    if (ck) assert.ok(fs.existsSync(path.join(runDir, ck.path)), 'the last recorded checkpoint is intact');
  });

  it('names the step a divergence happened at, not the next logging step, and says when no checkpoint exists', async () => {
    const rt = await runtime();
    const diverge = async (logEvery: number): Promise<NonFiniteError> => {
      const text = MLP({ steps: 40, logEvery, optimizer: '{ type: sgd, lr: 1.0e+30, momentum: 0 }' });
      try {
        await train({ rt, config: parseConfig(text, 'nan.basin.yaml'), outputDir: out() });
      } catch (e) {
        assert.ok(e instanceof NonFiniteError, `expected NonFiniteError, got ${String(e)}`);
        return e;
      }
      assert.fail('the run did not diverge');
    };
    const every = await diverge(1); // checked at every step: the reference
    const sparse = await diverge(7); // checked on logging steps only, reading the GPU's latch
    assert.equal(sparse.step, every.step, `logEvery 7 reports step ${sparse.step}, the divergence is at step ${every.step}`);
    assert.equal(sparse.layer, every.layer);
    assert.equal(sparse.detectedAt % 7, 0, 'noticed on a logging step');
    if (sparse.detectedAt > sparse.step) assert.match(sparse.message, new RegExp(`Steps ${sparse.step}–${sparse.detectedAt} were skipped`));
    assert.match(sparse.message, /No checkpoint was written yet/);
    assert.doesNotMatch(sparse.message, /intact/);
  });
});
