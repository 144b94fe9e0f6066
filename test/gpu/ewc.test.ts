// EWC from stored curvature (`train.ewc`): the kernel's gradient λ·F̂⊙(θ−θ*) added into the gradients against a
// CPU computation from the previous run's files, the CPU penalty's own gradient by finite differences, a large λ
// keeping the weights near θ*, and a previous run without statistics → an error naming the missing file.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { materializeModel, train } from '../../src/engine/train/trainer';
import { EwcPenalty, cpuEwcGrad, cpuEwcPenalty, resolveEwcSource } from '../../src/engine/train/ewc';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { assertClose, randn, runtime } from './helpers';

const MLP = (o: { name: string; seed?: number; steps: number; statsEvery: number; extra?: string; train?: string }) => `name: ${o.name}
seed: ${o.seed ?? 3}
model: { type: mlp, inputs: 12, hidden: [37], classes: 5, activation: relu }
data: { type: synthetic-classification, samples: 400, noise: 0.5, validFraction: 0.25 }
${o.extra ?? ''}
train:
${o.train ?? ''}  steps: ${o.steps}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.02 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: 0
  statsEvery: ${o.statsEvery}
  logEvery: 5
`;

async function read(file: string, name: string): Promise<Float32Array> {
  return (await readTensor(file, name, await readSafetensorsHeader(file))).data as Float32Array;
}

describe('EWC from stored curvature', function () {
  this.timeout(300_000);
  let dir = '';
  let prevRun = '';
  const write = (name: string, text: string) => {
    const f = path.join(dir, `${name}.basin.yaml`);
    fs.writeFileSync(f, text);
    return f;
  };
  const run = async (file: string) => train({ rt: await runtime(), config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs') });
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-ewc-'));
    prevRun = (await run(write('prev', MLP({ name: 'prev', steps: 20, statsEvery: 10 })))).runDir;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('adds λ·F̂⊙(θ−θ*) into the gradients, F̂_ij = R_i·C_j/ΣR normalised to mean 1 (GPU vs CPU)', async () => {
    const rt = await runtime();
    const src = await resolveEwcSource(prevRun);
    assert.equal(src.step, 20);
    assert.ok(src.stats.endsWith(path.join('stats', 'step-20.safetensors')));
    assert.deepEqual(await resolveEwcSource(path.join(prevRun, 'checkpoints', 'step-20.safetensors')), src, 'a checkpoint file resolves the same');
    const { store } = materializeModel(rt, loadConfig(write('spec', MLP({ name: 'spec', steps: 1, statsEvery: 0 }))).config.model, 11); // θ ≠ θ*
    const lambda = 2.5;
    const ewc = await EwcPenalty.load(rt, store, src, lambda);
    try {
      // [37, 12] and [5, 37]: not multiples of the workgroup; the biases [37] and [5] as [n, 1] (v_row = v).
      const names = ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias'];
      assert.deepEqual(ewc.anchors.map((a) => a.name).sort(), [...names].sort(), 'every weight, vectors included');
      // The normaliser, computed here from the files: mean of V̂ = Σ_t ΣR_t / Σ_t rows·cols.
      const R = await Promise.all(names.map((n) => read(src.stats, `${n}.v_row`)));
      const C = await Promise.all(names.map((n) => read(src.stats, `${n}.v_col`)));
      assert.deepEqual(C.map((c) => c.length), [12, 1, 37, 1]);
      const sumR = R.map((r) => r.reduce((s, x) => s + x, 0));
      const mean = sumR.reduce((a, b) => a + b, 0) / (37 * 12 + 37 + 5 * 37 + 5);
      assert.ok(Math.abs(ewc.meanCurvature - mean) <= 1e-6 * mean);
      const g0 = names.map((n, i) => randn(store.entry(n).shape.reduce((a, b) => a * b, 1), 20 + i, 0.1));
      names.forEach((n, i) => store.grads.load(n, g0[i]));
      ewc.addGradients();
      for (let i = 0; i < names.length; i++) {
        const theta = await store.read(names[i]);
        const star = await read(src.weights, names[i]);
        const coef = lambda / (sumR[i] * mean);
        const add = cpuEwcGrad(theta, star, R[i], C[i], coef);
        const want = g0[i].map((g, k) => g + add[k]);
        assert.ok(add.some((x) => Math.abs(x) > 1e-6), 'the penalty gradient is not zero');
        assertClose(await store.grads.read(names[i]), want, { atol: 1e-6, rtol: 1e-5, what: `gradient of ${names[i]}` });
        // The CPU penalty's finite-difference gradient is that same formula (so the GPU adds ∂penalty/∂θ).
        for (const k of new Set([0, Math.min(7, theta.length - 1), theta.length - 1])) {
          const eps = 1e-3;
          const p = Float32Array.from(theta);
          const m = Float32Array.from(theta);
          p[k] += eps;
          m[k] -= eps;
          const fd = (cpuEwcPenalty(p, star, R[i], C[i], coef) - cpuEwcPenalty(m, star, R[i], C[i], coef)) / (2 * eps);
          assert.ok(Math.abs(fd - add[k]) <= 1e-3 * Math.abs(add[k]) + 1e-6, `${names[i]}[${k}]: finite difference ${fd}, formula ${add[k]}`);
        }
      }
    } finally {
      ewc.destroy();
      store.destroy();
    }
  });

  it('with a large λ the weights stay closer to θ* than without', async () => {
    const task2 = (name: string, lambda: number) =>
      MLP({ name, seed: 8, steps: 30, statsEvery: 0, extra: `init: { from: ${JSON.stringify(prevRun)} }`, train: `  ewc: { from: ${JSON.stringify(path.relative(dir, prevRun))}, lambda: ${lambda} }\n` });
    const star = path.join(prevRun, 'checkpoints', 'step-20.safetensors');
    const drift = async (runDir: string, ck: string) => {
      let s = 0;
      for (const n of ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']) {
        const a = await read(path.join(runDir, ck), n);
        const b = await read(star, n);
        for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
      }
      return s;
    };
    const free = await run(write('free', task2('free', 0)));
    const held = await run(write('held', task2('held', 200)));
    const dFree = await drift(free.runDir, free.checkpoint!);
    const dHeld = await drift(held.runDir, held.checkpoint!);
    assert.ok(dFree > 0, 'task 2 moved the weights');
    assert.ok(dHeld < 0.3 * dFree, `drift with λ = 200: ${dHeld}, without: ${dFree}`);
  });

  it('a previous run without statistics is a config error naming the missing file and how to get it', async () => {
    const bare = (await run(write('bare', MLP({ name: 'bare', steps: 2, statsEvery: 0 })))).runDir;
    const f = write('needs-stats', MLP({ name: 'needs-stats', steps: 2, statsEvery: 0, train: `  ewc: { from: ${JSON.stringify(bare)}, lambda: 1 }\n` }));
    await assert.rejects(run(f), (e: Error) => {
      assert.ok(e instanceof ConfigError, e.message);
      assert.ok(e.message.includes(path.join(bare, 'stats', 'step-2.safetensors')), e.message);
      assert.match(e.message, /statsEvery > 0/);
      return true;
    });
  });
});
