// Checkpoint loading checks everything against the model and the optimizer before any value reaches the GPU
// (src/engine/train/checkpoint.ts), and a resume whose latest checkpoint is unreadable says so and can start
// from an earlier one (src/engine/train/trainer.ts `resumeStep`, `basin train --from-checkpoint`).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../src/files/config/load';
import { openRun } from '../../src/files/run-record';
import { readSafetensorsHeader, readTensor, writeSafetensors, type WriteTensor } from '../../src/files/safetensors';
import { CheckpointMismatchError, loadCheckpoint, optimizerStatePath } from '../../src/engine/train/checkpoint';
import { UnreadableCheckpointError, makeOptimizer, materializeModel, train } from '../../src/engine/train/trainer';
import { runtime } from './helpers';

const CONFIG = (steps: number, optimizer = 'adamw') => `
name: ck
seed: 5
model: { type: mlp, inputs: 12, hidden: [24], classes: 40 }
data: { type: synthetic-classification, samples: 600, noise: 0.5, validFraction: 0.2 }
train: { steps: ${steps}, batchSize: 32, optimizer: { type: ${optimizer} }, evalEvery: 0, checkpointEvery: 10, statsEvery: 0, logEvery: 5 }
`;

/** Rewrites a safetensors file tensor by tensor, letting `edit` change any of them (name, dtype, shape, data). */
async function rewrite(file: string, edit: (t: WriteTensor) => WriteTensor): Promise<void> {
  const h = await readSafetensorsHeader(file);
  const out: WriteTensor[] = [];
  for (const info of h.list) {
    const t = await readTensor(file, info.name, h);
    out.push(edit({ name: info.name, dtype: 'F32', shape: [...info.shape], data: t.data as Float32Array }));
  }
  await writeSafetensors(file, out, h.metadata);
}

describe('checkpoints', function () {
  this.timeout(240_000);
  let dir: string;
  let runDir: string;
  let ckFile: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-ck-'));
    const r = await train({ rt: await runtime(), config: parseConfig(CONFIG(30), 'ck.basin.yaml'), outputDir: dir });
    runDir = r.runDir;
    ckFile = path.join(runDir, 'checkpoints/step-30.safetensors');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Loads `file` (weights) into a fresh model + AdamW of the same config; returns the error, if any. */
  async function tryLoad(file: string): Promise<Error | null> {
    const rt = await runtime();
    const config = parseConfig(CONFIG(30), 'ck.basin.yaml');
    const { store } = materializeModel(rt, config.model, config.seed);
    const opt = makeOptimizer(config, store);
    try {
      await loadCheckpoint(file, store, opt);
      return null;
    } catch (e) {
      return e as Error;
    } finally {
      opt.destroy();
      store.destroy();
    }
  }

  /** A copy of the step-30 checkpoint (weights + optimizer state) to edit. */
  function copy(name: string): string {
    const f = path.join(dir, `${name}.safetensors`);
    fs.copyFileSync(ckFile, f);
    fs.copyFileSync(optimizerStatePath(ckFile), optimizerStatePath(f));
    return f;
  }

  it('loads an intact checkpoint', async () => {
    assert.equal(await tryLoad(copy('intact')), null);
  });

  it('refuses a transposed shape, a wrong dtype, a wrong optimizer-state shape and non-finite weights, naming the tensor', async () => {
    const cases: { what: string; edit: (f: string) => Promise<void>; match: RegExp }[] = [
      {
        what: 'transposed weight',
        edit: (f) => rewrite(f, (t) => (t.name === 'layers.0.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t)),
        match: /tensor layers\.0\.weight has shape \[12, 24\], expected \[24, 12\]/,
      },
      {
        what: 'I32 dtype',
        edit: (f) => rewrite(f, (t) => (t.name === 'layers.1.bias' ? { name: t.name, dtype: 'I32', shape: t.shape, data: new Int32Array(t.data.length) } as WriteTensor : t)),
        match: /tensor layers\.1\.bias is I32, expected F32/,
      },
      {
        what: 'optimizer state shape',
        edit: (f) => rewrite(optimizerStatePath(f), (t) => (t.name === 'v.layers.0.bias' ? { ...t, shape: [4, 6] } : t)),
        match: /optimizer state v\.layers\.0\.bias has shape \[4, 6\], expected \[24\]/,
      },
      {
        what: 'NaN weight',
        edit: (f) => rewrite(f, (t) => (t.name === 'layers.1.weight' ? { name: t.name, dtype: 'F32', shape: t.shape, data: Float32Array.from(t.data as Float32Array, (x, i) => (i === 7 ? NaN : x)) } : t)),
        match: /tensor layers\.1\.weight holds a non-finite value \(NaN at index 7\)/,
      },
    ];
    for (const c of cases) {
      const f = copy(c.what.replace(/\W+/g, '-'));
      await c.edit(f);
      const err = await tryLoad(f);
      assert.ok(err instanceof CheckpointMismatchError, `${c.what}: expected CheckpointMismatchError, got ${String(err)}`);
      assert.match(err.message, c.match, c.what);
    }
  });

  it('an unreadable latest checkpoint is named with the earlier ones; resuming from one of them finishes like the original run', async () => {
    const rt = await runtime();
    const original = await readTensor(ckFile, 'layers.0.weight');
    // A run of 30 steps, its step-30 checkpoint truncated (a disk that filled up, an edit gone wrong).
    const r = await train({ rt, config: parseConfig(CONFIG(30), 'ck.basin.yaml'), outputDir: dir });
    const latest = path.join(r.runDir, 'checkpoints/step-30.safetensors');
    fs.truncateSync(latest, 100);
    let err: unknown;
    try {
      await train({ rt, config: parseConfig(CONFIG(30), 'ck.basin.yaml'), resume: r.runDir });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof UnreadableCheckpointError, `expected UnreadableCheckpointError, got ${String(err)}`);
    assert.equal(err.step, 30);
    assert.deepEqual(err.earlier, [10, 20]);
    assert.match(err.message, /unreadable checkpoint: step 30 .* Earlier checkpoints: 20, 10\. Resume from step 20 with --from-checkpoint 20/);
    // Resume from step 20: the truncated file is set aside (not deleted), and training rewrites step 30.
    const resumed = await train({ rt, config: parseConfig(CONFIG(30), 'ck.basin.yaml'), resume: r.runDir, resumeStep: 20 });
    assert.equal(resumed.status, 'completed');
    assert.ok(fs.existsSync(`${latest}.superseded`), 'the unreadable checkpoint is kept aside');
    const again = await readTensor(latest, 'layers.0.weight');
    assert.deepEqual(again.data, original.data, 'steps 21–30 replayed give the weights of the original run');
    const run = await openRun(r.runDir);
    assert.deepEqual(run.record.checkpoints.map((c) => c.step), [10, 20, 30]);
    await assert.rejects(train({ rt, config: parseConfig(CONFIG(30), 'ck.basin.yaml'), resume: r.runDir, resumeStep: 25 }), /has no checkpoint at step 25 \(checkpoints: 10, 20, 30\)/);
  });

  it('mao with error feedback: E is checkpointed as BF16 (as it is held) and a resume replays the original run bit for bit', async () => {
    const rt = await runtime();
    const opt = 'mao, rank: 4, refitEvery: 3, errorFeedback: true';
    const r = await train({ rt, config: parseConfig(CONFIG(30, opt), 'ck.basin.yaml'), outputDir: dir });
    const latest = path.join(r.runDir, 'checkpoints/step-30.safetensors');
    const original = await readTensor(latest, 'layers.0.weight');
    const h = await readSafetensorsHeader(optimizerStatePath(latest));
    assert.equal(h.tensors['E.layers.0.weight']?.dtype, 'BF16', 'E of the factored 24×12 weight, in bf16');
    assert.deepEqual(h.tensors['E.layers.0.weight']?.shape, [24, 12]);
    assert.equal(h.tensors['U.layers.0.weight']?.dtype, 'F32');
    const e = (await readTensor(optimizerStatePath(latest), 'E.layers.0.weight', h)).data as Float32Array;
    assert.ok(e.some((x) => x !== 0), 'E holds a residual');
    fs.renameSync(latest, `${latest}.moved`);
    fs.renameSync(optimizerStatePath(latest), `${optimizerStatePath(latest)}.moved`);
    const resumed = await train({ rt, config: parseConfig(CONFIG(30, opt), 'ck.basin.yaml'), resume: r.runDir, resumeStep: 20 });
    assert.equal(resumed.status, 'completed');
    assert.deepEqual((await readTensor(latest, 'layers.0.weight')).data, original.data, 'steps 21–30 replayed from the step-20 checkpoint give the original weights');
  });
});
