// LoRA (`train.lora`): the branch's forward against a CPU reference and its gradients by finite differences; a
// LoRA fine-tune keeps the base weights bit-identical, writes a merged file equal to W + (alpha/rank)·B·A that
// eval and init.from read, trains a small fraction of the parameters, resumes bit for bit; a target glob matching
// no Linear weight is a config error listing them.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { train } from '../../src/engine/train/trainer';
import { evaluateCheckpoint } from '../../src/engine/train/eval-checkpoint';
import { Linear } from '../../src/engine/nn/layers';
import { buildModel } from '../../src/engine/nn/registry';
import { attachLora } from '../../src/engine/train/lora';
import { fromArray, tidy, type Tensor } from '../../src/engine/tensor/tensor';
import { openRun, mergedCheckpointPath } from '../../src/files/run-record';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { assertClose, gradCheck, randn, rng, runtime } from './helpers';

const MLP = (o: { name: string; steps?: number; extra?: string; train?: string; evalEvery?: number; checkpointEvery?: number }) => `name: ${o.name}
seed: 3
model: { type: mlp, inputs: 12, hidden: [40], classes: 5, activation: relu }
data: { type: synthetic-classification, samples: 400, noise: 0.5, validFraction: 0.25 }
${o.extra ?? ''}
train:
${o.train ?? ''}  steps: ${o.steps ?? 12}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.02 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: ${o.evalEvery ?? 0}
  checkpointEvery: ${o.checkpointEvery ?? 0}
  statsEvery: 0
  logEvery: 4
`;

async function weights(file: string): Promise<Map<string, Float32Array>> {
  const h = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const n of Object.keys(h.tensors)) out.set(n, (await readTensor(file, n, h)).data as Float32Array);
  return out;
}

/** y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ + b, in f64. */
function cpuLora(x: Float32Array, w: Float32Array, b: Float32Array, a: Float32Array, bb: Float32Array, rows: number, inF: number, outF: number, rank: number, s: number): Float32Array {
  const y = new Float32Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const xa = new Float64Array(rank);
    for (let k = 0; k < rank; k++) for (let i = 0; i < inF; i++) xa[k] += x[r * inF + i] * a[k * inF + i];
    for (let o = 0; o < outF; o++) {
      let v = b[o];
      for (let i = 0; i < inF; i++) v += x[r * inF + i] * w[o * inF + i];
      for (let k = 0; k < rank; k++) v += s * xa[k] * bb[o * rank + k];
      y[r * outF + o] = v;
    }
  }
  return y;
}

describe('LoRA', function () {
  this.timeout(300_000);

  const layer = (inF: number, outF: number, rank: number, alpha: number) => {
    const l = new Linear(inF, outF, rng(5));
    l.addLora(rank, alpha, randn(rank * inF, 9, 0.3), 0, 1);
    const bind = (w: Tensor, b: Tensor, a: Tensor, bb: Tensor) => {
      l.weight.bind(w);
      l.bias!.bind(b);
      l.lora!.a.bind(a);
      l.lora!.b.bind(bb);
    };
    return { l, bind };
  };

  for (const [rows, inF, outF, rank] of [
    [1, 1, 1, 1],
    [13, 17, 7, 3],
    [70, 33, 65, 8],
  ]) {
    it(`forward matches the CPU reference and A, B get finite-difference gradients (rows ${rows}, in ${inF}, out ${outF}, rank ${rank})`, async () => {
      const rt = await runtime();
      const alpha = 2 * rank;
      const { l, bind } = layer(inF, outF, rank, alpha);
      const x = randn(rows * inF, 1);
      const w = randn(outF * inF, 2, 0.5);
      const b = randn(outF, 3, 0.1);
      const a = randn(rank * inF, 4, 0.5);
      const bb = randn(outF * rank, 6, 0.5); // non-zero, so A's gradient is too
      const y = tidy(() => {
        bind(fromArray(rt, w, [outF, inF]), fromArray(rt, b, [outF]), fromArray(rt, a, [rank, inF]), fromArray(rt, bb, [outF, rank]));
        return l.forward(fromArray(rt, x, [rows, inF]));
      });
      assertClose(await y.toFloat32(), cpuLora(x, w, b, a, bb, rows, inF, outF, rank, alpha / rank), { atol: 1e-4, rtol: 1e-4, what: 'LoRA forward' });
      y.dispose();
      await gradCheck(
        rt,
        (xt, wt, bt, at, bbt) => {
          bind(wt, bt, at, bbt);
          return l.forward(xt);
        },
        [
          { data: x, shape: [rows, inF] },
          { data: w, shape: [outF, inF] },
          { data: b, shape: [outF] },
          { data: a, shape: [rank, inF] },
          { data: bb, shape: [outF, rank] },
        ],
        { samples: 8 },
      );
      // forwardAct (bias + activation fused) carries the branch too: relu(x·Wᵀ + s·x·Aᵀ·Bᵀ + b).
      const z = tidy(() => {
        bind(fromArray(rt, w, [outF, inF]), fromArray(rt, b, [outF]), fromArray(rt, a, [rank, inF]), fromArray(rt, bb, [outF, rank]));
        return l.forwardAct(fromArray(rt, x, [rows, inF]), 'relu');
      });
      assertClose(await z.toFloat32(), cpuLora(x, w, b, a, bb, rows, inF, outF, rank, alpha / rank).map((v) => Math.max(0, v)), { atol: 1e-4, rtol: 1e-4, what: 'LoRA forwardAct' });
      z.dispose();
    });
  }

  it('default targets of a transformer: every Linear weight of the blocks, never the head; explicit globs select', () => {
    const spec = { type: 'transformer', vocab: 50, dModel: 16, layers: 2, heads: 2, seqLen: 8, mlpRatio: 2, dropout: 0 } as const;
    const m = buildModel(spec, 1);
    const plan = attachLora(m, { rank: 4 }, 1);
    const want = [0, 1].flatMap((b) => ['attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp.fc1', 'mlp.fc2'].map((l) => `blocks.${b}.${l}.weight`));
    assert.deepEqual(plan.targets.map((t) => t.weight), want);
    assert.equal(plan.scale, 1, 'alpha defaults to rank');
    const names = m.declarations().map((d) => d.name);
    assert.ok(names.includes('blocks.1.mlp.fc1.weight.lora_a') && names.includes('blocks.1.mlp.fc1.weight.lora_b'));
    assert.ok(!names.some((n) => n.startsWith('head.') && n.includes('lora')), 'the head has no adapter');
    const decl = m.declarations().find((d) => d.name === 'blocks.0.mlp.fc1.weight.lora_b')!;
    assert.deepEqual(decl.shape, [32, 4]);
    assert.ok(decl.init.every((x) => x === 0), 'B starts at zero');
    const q = attachLora(buildModel(spec, 1), { rank: 2, alpha: 8, targets: ['blocks.*.attn.q.*', 'blocks.1.attn.v.weight'] }, 1);
    assert.deepEqual(q.targets.map((t) => t.weight), ['blocks.0.attn.q.weight', 'blocks.1.attn.q.weight', 'blocks.1.attn.v.weight']);
    assert.equal(q.scale, 4);
  });

  describe('fine-tuning with train.lora', () => {
    let dir = '';
    let baseRun = '';
    let baseCkpt = '';
    const write = (name: string, text: string) => {
      const f = path.join(dir, `${name}.basin.yaml`);
      fs.writeFileSync(f, text);
      return f;
    };
    const run = async (file: string, more: Partial<Parameters<typeof train>[0]> = {}) =>
      train({ rt: await runtime(), config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs'), ...more });
    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-lora-'));
      const r = await run(write('base', MLP({ name: 'base', steps: 15 })));
      baseRun = r.runDir;
      baseCkpt = path.join(r.runDir, r.checkpoint!);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const LORA = (name: string, o: { steps?: number; checkpointEvery?: number; lora?: string } = {}) =>
      MLP({ name, steps: o.steps ?? 12, checkpointEvery: o.checkpointEvery, evalEvery: 6, extra: `init: { from: ${JSON.stringify(path.relative(dir, baseRun))} }`, train: `  lora: ${o.lora ?? '{ rank: 2, alpha: 6 }'}\n` });

    it('keeps W bit-identical, writes merged = W + (alpha/rank)·B·A, trains a small fraction, and eval / init.from read the merged file', async () => {
      let parameters = 0;
      let frozen: string[] = [];
      const r = await run(write('lora', LORA('lora')), { events: { onStart: (i) => ((parameters = i.parameters), (frozen = i.frozen ?? [])) } });
      const base = await weights(baseCkpt);
      const ckFile = path.join(r.runDir, r.checkpoint!);
      const ck = await weights(ckFile);
      // The base model is untouched: every tensor of it is bit-identical, only the adapters moved.
      for (const [n, d] of base) assert.deepEqual(ck.get(n), d, `${n} is frozen under LoRA`);
      const A = ck.get('layers.0.weight.lora_a')!;
      const B = ck.get('layers.0.weight.lora_b')!;
      assert.ok(A && B, 'the adapters are in the checkpoint');
      assert.ok(B.some((x) => x !== 0), 'B trained away from zero');
      assert.deepEqual([...ck.keys()].filter((n) => n.includes('lora')).sort(), ['layers.0.weight.lora_a', 'layers.0.weight.lora_b'], 'default targets: layers.* except the output head');
      // Trainable: the adapters only (2·12 + 40·2 = 104 of 12·40 + 40 + 40·5 + 5 + 104 = 829).
      const trainable = parameters - frozen.reduce((s, n) => s + (base.get(n)?.length ?? 0), 0);
      assert.equal(trainable, 2 * 12 + 40 * 2);
      assert.ok(trainable < 0.15 * parameters, `${trainable} trainable of ${parameters}`);
      // The merged file: the model's own tensors, W + 3·B·A in place of W (independent CPU computation).
      const mergedFile = mergedCheckpointPath(ckFile);
      const merged = await weights(mergedFile);
      assert.deepEqual([...merged.keys()].sort(), [...base.keys()].sort(), 'the merged file has exactly the model’s tensors');
      const W = base.get('layers.0.weight')!;
      const want = new Float32Array(W.length);
      for (let o = 0; o < 40; o++) for (let i = 0; i < 12; i++) want[o * 12 + i] = W[o * 12 + i] + 3 * (B[o * 2] * A[i] + B[o * 2 + 1] * A[12 + i]);
      assertClose(merged.get('layers.0.weight')!, want, { atol: 1e-6, rtol: 1e-6, what: 'merged weight' });
      assert.notDeepEqual(merged.get('layers.0.weight'), W);
      for (const n of ['layers.0.bias', 'layers.1.weight', 'layers.1.bias']) assert.deepEqual(merged.get(n), base.get(n));
      // eval of the run builds the plain model and reads the merged file: same validation loss as the LoRA model.
      const ev = await evaluateCheckpoint({ rt: await runtime(), runDir: r.runDir });
      assert.equal(ev.checkpoint, mergedFile);
      assert.ok(Math.abs(ev.metrics.loss - r.eval!.loss) < 1e-4, `eval of the merged file ${ev.metrics.loss} vs the LoRA model ${r.eval!.loss}`);
      // init.from a LoRA run starts from its merged weights.
      const ft = await run(write('after-lora', MLP({ name: 'after-lora', steps: 1, extra: `init: { from: ${JSON.stringify(r.runDir)} }` })));
      assert.equal((await openRun(ft.runDir)).record.lineage.parentCheckpoint, mergedFile);
    });

    it('resumes bit for bit (adapters, optimizer state and the LoRA dropout sequence)', async () => {
      const cfg = LORA('lora-resume', { steps: 12, checkpointEvery: 6, lora: '{ rank: 3, dropout: 0.2 }' });
      const full = await run(write('lora-full', cfg));
      const ac = new AbortController();
      const part = await run(write('lora-part', cfg), { signal: ac.signal, events: { onCheckpoint: (s) => s === 6 && ac.abort() } });
      assert.equal(part.status, 'cancelled');
      assert.equal(part.steps, 6);
      const resumed = await run(write('lora-part', cfg), { resume: part.runDir });
      assert.equal(resumed.status, 'completed');
      const a = await weights(path.join(full.runDir, full.checkpoint!));
      const b = await weights(path.join(resumed.runDir, resumed.checkpoint!));
      for (const [n, d] of a) assert.deepEqual(b.get(n), d, `${n} after resume`);
      const ma = await weights(mergedCheckpointPath(path.join(full.runDir, full.checkpoint!)));
      const mb = await weights(mergedCheckpointPath(path.join(resumed.runDir, resumed.checkpoint!)));
      for (const [n, d] of ma) assert.deepEqual(mb.get(n), d, `merged ${n} after resume`);
    });

    it('a target glob matching no Linear weight (or only the head) is a config error listing the Linear weights', async () => {
      const f = write('bad-lora', LORA('bad-lora', { lora: '{ rank: 2, targets: ["layers.0.weight", "blocks.*"] }' }));
      await assert.rejects(run(f), (e: Error) => {
        assert.ok(e instanceof ConfigError, e.message);
        assert.match(e.message, /blocks\.\*/);
        assert.match(e.message, /layers\.0\.weight, layers\.1\.weight/);
        assert.match(e.message, /:\d+/, 'names the line');
        return true;
      });
      const h = write('head-lora', LORA('head-lora', { lora: '{ rank: 2, targets: ["layers.1.*"] }' }));
      await assert.rejects(run(h), /output head layers\.1\.weight/);
    });
  });
});
