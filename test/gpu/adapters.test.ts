// Adapters (`train.adapters`): the bottleneck's forward against a CPU reference and its gradients by finite
// differences; a fresh adapter is the identity (the fine-tune starts exactly at the base's loss); an adapter
// fine-tune keeps the base bit-identical, trains only the adapters (plus what train.unfreeze releases), saves them
// in its checkpoints under `.adapter_` names, resumes bit for bit; eval, `basin eval` and init.from read such a
// checkpoint; merging and pruning refuse it by name; a bad size or a model without blocks is a config error.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { materializeModel, train } from '../../src/engine/train/trainer';
import { evaluateCheckpoint } from '../../src/engine/train/eval-checkpoint';
import { WeightsEvaluator } from '../../src/engine/train/eval-weights';
import { resolveInitSource } from '../../src/engine/train/fine-tune';
import { weightsFileOf } from '../../src/cli/eval';
import { ADAPTER_MODELS, AdapterConfigError, attachAdapters, describeAdapters } from '../../src/engine/train/adapters';
import { Adapter } from '../../src/engine/nn/adapter';
import { buildModel } from '../../src/engine/nn/registry';
import { geluRef } from '../../src/engine/cpu/elementwise';
import { fromArray, noGrad, tidy, type Tensor } from '../../src/engine/tensor/tensor';
import { modelRegistry, type ModelConfig } from '../../src/files/registry/models';
import { AdapterModelError } from '../../src/files/adapter-checkpoint';
import { ModelFiles } from '../../src/files/merge/model-files';
import { resolvePruneSource } from '../../src/engine/prune/source';
import { openRun } from '../../src/files/run-record';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { assertClose, gradCheck, randn, rng, runtime } from './helpers';

/** A small transformer on synthetic sequences: d = 16, 2 blocks; seconds per run on lavapipe. */
const LM = (o: { name: string; steps?: number; extra?: string; train?: string; evalEvery?: number; checkpointEvery?: number; model?: string }) => `name: ${o.name}
seed: 4
model: ${o.model ?? '{ type: transformer, vocab: 24, dModel: 16, layers: 2, heads: 2, seqLen: 8, mlpRatio: 2, dropout: 0 }'}
data: { type: synthetic-sequences, sequences: 160, length: 9, branching: 2, noise: 0.1, validFraction: 0.2 }
${o.extra ?? ''}
train:
${o.train ?? ''}  steps: ${o.steps ?? 12}
  batchSize: 16
  optimizer: { type: adamw, lr: 0.01 }
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

/** y = h + up(act(down(h))) in f64: down [size, d] + bd, up [d, size] + bu. */
function cpuAdapter(h: Float32Array, rows: number, d: number, size: number, dw: Float32Array, db: Float32Array, uw: Float32Array, ub: Float32Array, act: 'gelu' | 'relu'): Float32Array {
  const y = new Float32Array(rows * d);
  const z = new Float64Array(size);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < size; k++) {
      let s = db[k];
      for (let i = 0; i < d; i++) s += h[r * d + i] * dw[k * d + i];
      z[k] = act === 'relu' ? Math.max(0, s) : geluRef(s);
    }
    for (let o = 0; o < d; o++) {
      let s = h[r * d + o] + ub[o];
      for (let k = 0; k < size; k++) s += z[k] * uw[o * size + k];
      y[r * d + o] = s;
    }
  }
  return y;
}

describe('adapters', function () {
  this.timeout(300_000);

  for (const [rows, d, size, act] of [
    [1, 1, 1, 'gelu'],
    [13, 17, 3, 'relu'],
    [70, 33, 8, 'gelu'],
  ] as const) {
    it(`forward matches the CPU reference and down, up get finite-difference gradients (rows ${rows}, d ${d}, size ${size}, ${act})`, async () => {
      const rt = await runtime();
      const a = new Adapter(d, size, act, 0.5, rng(3));
      const bind = (dw: Tensor, db: Tensor, uw: Tensor, ub: Tensor) => {
        a.down.weight.bind(dw);
        a.down.bias!.bind(db);
        a.up.weight.bind(uw);
        a.up.bias!.bind(ub);
      };
      const h = randn(rows * d, 1);
      const dw = randn(size * d, 2, 0.5);
      const db = randn(size, 3, 0.3);
      const uw = randn(d * size, 4, 0.5); // non-zero, so down's gradient is too
      const ub = randn(d, 5, 0.1);
      const y = tidy(() => {
        bind(fromArray(rt, dw, [size, d]), fromArray(rt, db, [size]), fromArray(rt, uw, [d, size]), fromArray(rt, ub, [d]));
        return a.forward(fromArray(rt, h, [rows, d]));
      });
      assertClose(await y.toFloat32(), cpuAdapter(h, rows, d, size, dw, db, uw, ub, act), { atol: 1e-4, rtol: 1e-4, what: 'adapter forward' });
      y.dispose();
      await gradCheck(
        rt,
        (ht, dwt, dbt, uwt, ubt) => {
          bind(dwt, dbt, uwt, ubt);
          return a.forward(ht);
        },
        [
          { data: h, shape: [rows, d] },
          { data: dw, shape: [size, d] },
          { data: db, shape: [size] },
          { data: uw, shape: [d, size] },
          { data: ub, shape: [d] },
        ],
        { samples: 8 },
      );
    });
  }

  it('a fresh adapter: up and both biases zero, down small random, names with .adapter_; the base init is unchanged', () => {
    const spec = { type: 'transformer', vocab: 20, dModel: 12, layers: 2, heads: 2, seqLen: 4, mlpRatio: 2, dropout: 0 } as const;
    const plain = buildModel(spec, 1).declarations();
    const m = buildModel(spec, 1);
    const plan = attachAdapters(m, { size: 5 }, 1);
    const decls = m.declarations();
    const want = [0, 1].flatMap((b) => ['attn', 'mlp'].flatMap((s) => ['down.weight', 'down.bias', 'up.weight', 'up.bias'].map((t) => `blocks.${b}.adapter_${s}.${t}`)));
    assert.deepEqual(plan.names, want);
    assert.deepEqual(decls.filter((x) => x.name.includes('.adapter_')).map((x) => x.name), want);
    assert.equal(plan.parameters, 4 * (5 * 12 + 5 + 12 * 5 + 12));
    assert.deepEqual(plan.config, { size: 5, targets: ['attn', 'mlp'], activation: 'gelu', initScale: 1 / Math.sqrt(12) });
    const get = (n: string) => decls.find((x) => x.name === n)!;
    assert.deepEqual(get('blocks.1.adapter_mlp.down.weight').shape, [5, 12]);
    assert.deepEqual(get('blocks.1.adapter_mlp.up.weight').shape, [12, 5]);
    for (const n of ['up.weight', 'up.bias', 'down.bias']) assert.ok(get(`blocks.0.adapter_attn.${n}`).init.every((x) => Object.is(x, 0)), `${n} starts at +0`);
    const dw = get('blocks.0.adapter_attn.down.weight').init;
    const std = Math.sqrt(dw.reduce((s, x) => s + x * x, 0) / dw.length);
    assert.ok(std > 0.1 && std < 0.6, `down's std ${std} near 1/√12`);
    // The model's own tensors are drawn exactly as without adapters.
    for (const p of plain) assert.deepEqual(get(p.name).init, p.init, p.name);
    const only = attachAdapters(buildModel(spec, 1), { size: 12, targets: ['mlp'], activation: 'relu', initScale: 0.01 }, 1);
    assert.deepEqual(only.names, ['blocks.0.adapter_mlp.down.weight', 'blocks.0.adapter_mlp.down.bias', 'blocks.0.adapter_mlp.up.weight', 'blocks.0.adapter_mlp.up.bias', 'blocks.1.adapter_mlp.down.weight', 'blocks.1.adapter_mlp.down.bias', 'blocks.1.adapter_mlp.up.weight', 'blocks.1.adapter_mlp.up.bias']);
    assert.match(describeAdapters(plan, 10_000, plan.parameters), /size 5, gelu, after attn and mlp in 2 blocks\): 548 trainable parameters of 10,000 \(5\.48 %\)/);
  });

  it('ADAPTER_MODELS is exactly the registered models with transformer blocks; the others and a bad size throw', () => {
    const small: Record<string, ModelConfig> = {
      transformer: { type: 'transformer', vocab: 10, dModel: 8, layers: 1, heads: 2, seqLen: 4, mlpRatio: 1, dropout: 0 },
      mlp: { type: 'mlp', inputs: 3, hidden: [4], classes: 2, activation: 'relu', dropout: 0 },
      sasrec: { type: 'sasrec', items: 9, hidden: 8, blocks: 1, heads: 1, maxLen: 4, dropout: 0, attentionDropout: 0 },
    };
    assert.deepEqual(Object.keys(small).sort(), modelRegistry.entries.map((e) => e.name).sort(), 'a spec for every registered model');
    const ok = Object.entries(small)
      .filter(([, s]) => {
        try {
          attachAdapters(buildModel(s, 1), { size: 2 }, 1);
          return true;
        } catch (e) {
          assert.ok(e instanceof AdapterConfigError, String(e));
          assert.match(e.message, /works with model\.type "transformer" or "sasrec"/);
          return false;
        }
      })
      .map(([n]) => n);
    assert.deepEqual(ok.sort(), [...ADAPTER_MODELS].sort());
    for (const size of [0, 9, 2.5]) {
      assert.throws(() => attachAdapters(buildModel(small.transformer, 1), { size }, 1), (e: Error) => e instanceof AdapterConfigError && /from 1 to the model width 8/.test(e.message) && e.field.join('.') === 'train.adapters.size');
    }
  });

  it('SASRec blocks take them too: identity when fresh, wired in once up is not zero', async () => {
    const rt = await runtime();
    const spec = { type: 'sasrec', items: 11, hidden: 8, blocks: 2, heads: 1, maxLen: 5, dropout: 0, attentionDropout: 0 } as const;
    const plain = materializeModel(rt, spec, 2);
    const withA = materializeModel(rt, spec, 2, undefined, { size: 3 });
    try {
      assert.ok(withA.store.entries.some((e) => e.name === 'blocks.1.adapter_mlp.up.weight'));
      const tokens = Int32Array.from([3, 1, 7, 0, 0, 5, 2, 9, 11, 4]);
      const hidden = (m: typeof plain) => noGrad(() => tidy(() => m.model.eval().hidden(fromArray(rt, tokens, [2, 5], 'i32')))).toFloat32();
      const h0 = await hidden(plain);
      assert.deepEqual(await hidden(withA), h0, 'a fresh adapter changes nothing, bit for bit');
      withA.store.load('blocks.0.adapter_attn.up.weight', randn(8 * 3, 5, 0.5));
      const h1 = await hidden(withA);
      assert.ok(h1.some((x, i) => Math.abs(x - h0[i]) > 1e-4), 'the attention adapter is on the path');
    } finally {
      await rt.sync();
      plain.store.destroy();
      withA.store.destroy();
    }
  });

  describe('fine-tuning with train.adapters', () => {
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
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-adapters-'));
      const r = await run(write('base', LM({ name: 'base', steps: 15 })));
      baseRun = r.runDir;
      baseCkpt = path.join(r.runDir, r.checkpoint!);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const ADAPT = (name: string, o: { steps?: number; checkpointEvery?: number; adapters?: string; more?: string } = {}) =>
      LM({
        name,
        steps: o.steps ?? 12,
        checkpointEvery: o.checkpointEvery,
        evalEvery: 6,
        extra: `init: { from: ${JSON.stringify(path.relative(dir, baseRun))} }`,
        train: `  adapters: ${o.adapters ?? '{ size: 4 }'}\n${o.more ?? ''}`,
      });

    it('starts at the base loss, keeps the base bit-identical, trains only the adapters (and what unfreeze releases); eval, basin eval and init.from read it', async () => {
      let info: { parameters: number; trainable?: number; adapters?: { parameters: number } } | null = null;
      const r = await run(write('adapt', ADAPT('adapt', { more: '  unfreeze: [{ step: 1, params: ["ln_f.*"] }]\n' })), { events: { onStart: (i) => (info = i) } });
      // Trainable at start: the adapters only, 2 blocks × 2 sites × (4·16 + 4 + 16·4 + 16) = 592.
      assert.equal(info!.adapters!.parameters, 592);
      assert.equal(info!.trainable, 592);
      assert.ok(592 < 0.15 * info!.parameters, `592 of ${info!.parameters}`);
      // Training starts exactly at the base model: the base metrics (computed with the fresh adapters in place)
      // equal the base run's own evaluation of its checkpoint with the plain model.
      const rec = (await openRun(r.runDir)).record;
      const baseEval = await evaluateCheckpoint({ rt: await runtime(), runDir: baseRun });
      assert.equal(rec.lineage.baseMetrics!.val_loss, baseEval.metrics.loss, 'fresh adapters are the identity');
      const base = await weights(baseCkpt);
      const ckFile = path.join(r.runDir, r.checkpoint!);
      const ck = await weights(ckFile);
      for (const [n, d] of base) {
        if (n.startsWith('ln_f.')) assert.notDeepEqual(ck.get(n), d, `${n} was released by train.unfreeze`);
        else assert.deepEqual(ck.get(n), d, `${n} is frozen under adapters`);
      }
      const adapterNames = [...ck.keys()].filter((n) => !base.has(n));
      assert.ok(adapterNames.length === 16 && adapterNames.every((n) => /^blocks\.[01]\.adapter_(attn|mlp)\.(down|up)\.(weight|bias)$/.test(n)), adapterNames.join(', '));
      for (const n of adapterNames.filter((x) => x.includes('.up.'))) assert.ok(ck.get(n)!.some((x) => x !== 0), `${n} trained away from zero`);
      assert.equal(JSON.parse((await readSafetensorsHeader(ckFile)).metadata.adapters).size, 4, 'the checkpoint says how its adapters are built');
      // eval of the run builds the model with its adapters and reads the checkpoint itself.
      const ev = await evaluateCheckpoint({ rt: await runtime(), runDir: r.runDir });
      assert.equal(ev.checkpoint, ckFile);
      assert.ok(Math.abs(ev.metrics.loss - r.eval!.loss) < 1e-5, `eval ${ev.metrics.loss} vs the trainer's ${r.eval!.loss}`);
      assert.ok(Math.abs(ev.metrics.loss - baseEval.metrics.loss) > 1e-4, 'and it is not the base model');
      // `basin eval <run> --task <config>`: the same figure through the weights evaluator.
      const cfgFile = write('task', LM({ name: 'task' }));
      const we = await WeightsEvaluator.create(await runtime(), loadConfig(cfgFile).config, cfgFile);
      try {
        const file = await weightsFileOf(r.runDir);
        assert.equal(file, ckFile);
        const m = await we.evaluate(file);
        assert.ok(Math.abs(m.loss - ev.metrics.loss) < 1e-5, `basin eval ${m.loss} vs ${ev.metrics.loss}`);
        assert.ok(Math.abs((await we.evaluate(baseCkpt)).loss - baseEval.metrics.loss) < 1e-5, 'the plain model still scores the base');
      } finally {
        we.destroy();
      }
      // init.from an adapter run: its base tensors load, its adapters are reported unused.
      let init: { loaded: string[]; unused: string[] } | undefined;
      const ft = await run(write('after', LM({ name: 'after', steps: 1, extra: `init: { from: ${JSON.stringify(r.runDir)} }` })), { events: { onStart: (i) => (init = i.init) } });
      assert.equal((await openRun(ft.runDir)).record.lineage.parentCheckpoint, ckFile);
      assert.deepEqual([...init!.unused].sort(), [...adapterNames].sort());
      assert.deepEqual([...init!.loaded].sort(), [...base.keys()].sort());
      // Merging and pruning need a plain model, which an adapter run does not have: an error naming the run.
      await assert.rejects(ModelFiles.open(r.runDir), (e: Error) => e instanceof AdapterModelError && e.message.includes(r.runDir) && /non-linear/.test(e.message));
      await assert.rejects(ModelFiles.open(ckFile), AdapterModelError);
      await assert.rejects(resolvePruneSource(r.runDir), (e: Error) => e instanceof AdapterModelError && e.message.includes(r.runDir));
    });

    it('in mixed precision: the base stays bit-identical, the adapters train, the losses track the f32 adapter run', async () => {
      const f32 = await run(write('adapt-f32', ADAPT('adapt-f32', { more: '  precision: f32\n' })));
      const mixed = await run(write('adapt-mixed', ADAPT('adapt-mixed', { more: '  precision: mixed\n' })));
      const p = ((await openRun(mixed.runDir)).record.device as { precision?: { used: string; halfLayers: number } }).precision;
      assert.equal(p?.used, 'mixed', 'this adapter has shader-f16: the run trained in mixed precision');
      assert.ok(p!.halfLayers >= 7, `${p!.halfLayers} layers in f16`);
      const base = await weights(baseCkpt);
      const ck = await weights(path.join(mixed.runDir, mixed.checkpoint!));
      for (const [n, d] of base) assert.deepEqual(ck.get(n), d, `${n} is frozen under adapters in mixed precision`);
      const ups = [...ck.keys()].filter((n) => /\.adapter_(attn|mlp)\.up\.weight$/.test(n));
      assert.equal(ups.length, 4);
      for (const n of ups) assert.ok(ck.get(n)!.some((x) => x !== 0), `${n} trained away from zero`);
      // f16 products change the numbers, a little: the final loss is within 2 % of the f32 adapter run's.
      assert.notEqual(mixed.lastLoss, f32.lastLoss, 'the mixed run computed in f16');
      assert.ok(Math.abs(mixed.lastLoss - f32.lastLoss) <= 0.02 * f32.lastLoss, `mixed ${mixed.lastLoss} vs f32 ${f32.lastLoss}`);
      assert.ok(Math.abs(mixed.eval!.loss - f32.eval!.loss) <= 0.02 * f32.eval!.loss, `val: mixed ${mixed.eval!.loss} vs f32 ${f32.eval!.loss}`);
    });

    it('resumes bit for bit (adapters and their optimizer state)', async () => {
      const cfg = ADAPT('adapt-resume', { steps: 12, checkpointEvery: 6, adapters: '{ size: 3, targets: [mlp], activation: relu }' });
      const full = await run(write('adapt-full', cfg));
      const ac = new AbortController();
      const part = await run(write('adapt-part', cfg), { signal: ac.signal, events: { onCheckpoint: (s) => s === 6 && ac.abort() } });
      assert.equal(part.status, 'cancelled');
      assert.equal(part.steps, 6);
      const resumed = await run(write('adapt-part', cfg), { resume: part.runDir });
      assert.equal(resumed.status, 'completed');
      const a = await weights(path.join(full.runDir, full.checkpoint!));
      const b = await weights(path.join(resumed.runDir, resumed.checkpoint!));
      assert.deepEqual([...a.keys()].filter((n) => n.includes('.adapter_')).sort(), ['blocks.0.adapter_mlp.down.bias', 'blocks.0.adapter_mlp.down.weight', 'blocks.0.adapter_mlp.up.bias', 'blocks.0.adapter_mlp.up.weight', 'blocks.1.adapter_mlp.down.bias', 'blocks.1.adapter_mlp.down.weight', 'blocks.1.adapter_mlp.up.bias', 'blocks.1.adapter_mlp.up.weight']);
      for (const [n, d] of a) assert.deepEqual(b.get(n), d, `${n} after resume`);
    });

    it('a size above the model width, an MLP model, or adapters with LoRA are config errors on their line', async () => {
      await assert.rejects(run(write('too-big', ADAPT('too-big', { adapters: '{ size: 17 }' }))), (e: Error) => {
        assert.ok(e instanceof ConfigError, e.message);
        assert.match(e.message, /train\.adapters\.size: must be an integer from 1 to the model width 16, got 17/);
        assert.match(e.message, /:\d+:\d+/, 'names the line');
        return true;
      });
      const mlp = `name: mlp-adapt
model: { type: mlp, inputs: 6, hidden: [8], classes: 3 }
data: { type: synthetic-classification, samples: 60 }
train:
  steps: 1
  adapters: { size: 2 }
`;
      await assert.rejects(run(write('mlp-adapt', mlp)), (e: Error) => {
        assert.ok(e instanceof ConfigError, e.message);
        assert.match(e.message, /:6:\d+: train\.adapters: model\.type "mlp" has no transformer blocks.*"transformer" or "sasrec"/);
        return true;
      });
      await assert.rejects(run(write('both', ADAPT('both', { more: '  lora: { rank: 2 }\n' }))), /train\.adapters and train\.lora cannot be combined/);
      // size < 1 is the schema's: the loader says so before anything is built.
      assert.throws(() => loadConfig(write('zero', ADAPT('zero', { adapters: '{ size: 0 }' }))), /train\.adapters\.size: must be >= 1, got 0/);
    });

    it('init.from a training config: the latest checkpoint of its latest run (how the example names the demo)', async () => {
      const src = await resolveInitSource(path.join(dir, 'base.basin.yaml'));
      assert.deepEqual(src, { file: baseCkpt, runDir: baseRun });
      await assert.rejects(resolveInitSource(write('never', LM({ name: 'never' }))), /^Error: no run of never with a checkpoint under .* yet: train it first/);
    });
  });
});
