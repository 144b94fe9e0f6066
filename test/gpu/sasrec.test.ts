// SASRec on the engine: shapes, the shared item table, causality, right padding, a finite-difference gradient
// check of the whole model (the item table gets gradient from both its roles), and training through the trainer.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backward } from '../../src/engine/autograd/tape';
import type { Runtime } from '../../src/engine/gpu/runtime';
import { crossEntropyLoss } from '../../src/engine/loss/cross-entropy';
import type { SasrecSpec } from '../../src/engine/nn/models';
import { SASRec } from '../../src/engine/nn/sasrec';
import type { ParameterStore } from '../../src/engine/optim/params';
import { fromArray, noGrad, tidy } from '../../src/engine/tensor/tensor';
import { rankingQueries } from '../../src/engine/train/evaluate';
import { materializeModel, train } from '../../src/engine/train/trainer';
import { parseConfig } from '../../src/files/config/load';
import { METRICS_FILE } from '../../src/files/run-record';
import { sasrec as sasrecEntry } from '../../src/files/registry/models';
import { assertClose, rng, runtime } from './helpers';

const spec = (over: Partial<SasrecSpec> = {}): SasrecSpec => ({ type: 'sasrec', items: 11, hidden: 8, blocks: 2, heads: 2, maxLen: 6, dropout: 0, attentionDropout: 0, ...over });

function build(rt: Runtime, s: SasrecSpec, seed = 5): { model: SASRec; store: ParameterStore } {
  const { model, store } = materializeModel(rt, s, seed);
  model.eval();
  return { model: model as SASRec, store };
}

async function hiddenOf(rt: Runtime, model: SASRec, tokens: number[], batch: number): Promise<Float32Array> {
  const T = tokens.length / batch;
  const out = noGrad(() => tidy(() => model.hidden(fromArray(rt, Int32Array.from(tokens), [batch, T], 'i32'))));
  const a = await out.toFloat32();
  out.dispose();
  return a;
}

describe('rankingQueries (evaluate.ts)', () => {
  it('every row with a target; seen = the non-padding inputs of its window up to its own position', () => {
    // two windows of 4: [5, 6, 7, 0] → targets [6, 7, -1, -1]; [8, 9, 8, 2] → targets [9, 8, 2, 3]
    const q = rankingQueries(Int32Array.from([5, 6, 7, 0, 8, 9, 8, 2]), 4, Int32Array.from([6, 7, -1, -1, 9, 8, 2, 3]));
    assert.deepEqual([...q.rows], [0, 1, 4, 5, 6, 7]);
    assert.deepEqual([...q.targets], [6, 7, 9, 8, 2, 3]);
    assert.deepEqual([...q.seen.offsets], [0, 1, 3, 4, 6, 9, 13]);
    assert.deepEqual([...q.seen.items], [5, 5, 6, 8, 8, 9, 8, 9, 8, 8, 9, 8, 2]);
  });
});

describe('sasrec model', function () {
  this.timeout(240_000);

  it('forward shapes; the head IS the item table (one parameter, no bias); parameter count matches the registry', async () => {
    const rt = await runtime();
    const s = spec();
    const { model, store } = build(rt, s);
    try {
      assert.equal(model.head.weight, store.get('item.weight'));
      assert.deepEqual(model.head.weight.shape, [s.items + 1, s.hidden]);
      assert.equal(model.head.bias, null);
      const names = store.entries.map((e) => e.name);
      assert.equal(names.filter((n) => store.get(n).shape[0] === s.items + 1).length, 1, `one [items + 1, d] table: ${names.join(', ')}`);
      assert.equal(store.parameterCount, sasrecEntry.parameters(s));
      const e = await store.params.read('item.weight');
      assert.ok(e.subarray(0, s.hidden).every((v) => v === 0), 'padding row starts at zero');
      const h = noGrad(() => tidy(() => model.hidden(fromArray(rt, Int32Array.from([1, 2, 3, 0, 0, 0, 4, 5, 6, 7, 8, 9]), [2, 6], 'i32'))));
      assert.deepEqual(h.shape, [12, s.hidden]);
      const logits = noGrad(() => model.head.logits(h));
      assert.deepEqual(logits.shape, [12, s.items + 1]);
      // logits = h · Eᵀ exactly (no bias): check one row on the CPU.
      const [hv, lv] = await Promise.all([h.toFloat32(), logits.toFloat32()]);
      for (let j = 0; j < s.items + 1; j++) {
        let dot = 0;
        for (let k = 0; k < s.hidden; k++) dot += hv[7 * s.hidden + k] * e[j * s.hidden + k];
        assertClose([lv[7 * (s.items + 1) + j]], [dot], { atol: 1e-4, what: `logit 7,${j}` });
      }
      h.dispose();
      logits.dispose();
      assert.throws(() => model.hidden(fromArray(rt, new Int32Array(7), [1, 7], 'i32')), /maxLen 6/);
    } finally {
      store.destroy();
    }
  });

  it('attentionDropout drops attention weights in training only: the same init, the same evaluation outputs', async () => {
    const rt = await runtime();
    const plain = build(rt, spec({ dropout: 0 }));
    const dropped = build(rt, spec({ dropout: 0, attentionDropout: 0.4 }));
    try {
      const tokens = [3, 7, 1, 9, 4, 2, 5, 8, 6, 10, 11, 0];
      const a = await hiddenOf(rt, plain.model, tokens, 2);
      const b = await hiddenOf(rt, dropped.model, tokens, 2);
      assertClose(b, a, { what: 'evaluation: attention dropout off', atol: 1e-7, rtol: 0 });
      dropped.model.train();
      const c = await hiddenOf(rt, dropped.model, tokens, 2);
      const d = await hiddenOf(rt, dropped.model, tokens, 2);
      const diff = (x: Float32Array, y: Float32Array) => Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
      assert.ok(diff(c, a) > 1e-3, 'training: the attention weights are dropped');
      assert.ok(diff(c, d) > 1e-3, 'each forward draws a new mask');
      assert.equal(dropped.model.blocks[0].attn.weightsDropout?.p, 0.4);
      assert.equal(plain.model.blocks[0].attn.weightsDropout, null);
    } finally {
      plain.store.destroy();
      dropped.store.destroy();
    }
  });

  it('causal: changing a later item leaves every earlier position unchanged', async () => {
    const rt = await runtime();
    const s = spec({ items: 40, hidden: 16, heads: 1, maxLen: 7 });
    const { model, store } = build(rt, s);
    try {
      const a = [3, 17, 5, 29, 8, 11, 2];
      const b = a.slice();
      b[4] = 33;
      const [ha, hb] = [await hiddenOf(rt, model, a, 1), await hiddenOf(rt, model, b, 1)];
      const d = s.hidden;
      assertClose(hb.subarray(0, 4 * d), ha.subarray(0, 4 * d), { atol: 1e-6, rtol: 1e-6, what: 'positions 0..3' });
      let diff = 0;
      for (let k = 4 * d; k < 5 * d; k++) diff = Math.max(diff, Math.abs(ha[k] - hb[k]));
      assert.ok(diff > 1e-3, `position 4 must change when its item changes (max diff ${diff})`);
    } finally {
      store.destroy();
    }
  });

  it('right padding does not change the outputs of real positions (vs the unpadded sequence, and between batch rows)', async () => {
    const rt = await runtime();
    const s = spec({ items: 20, hidden: 12, heads: 3, maxLen: 8 });
    const { model, store } = build(rt, s);
    try {
      const d = s.hidden;
      const short = await hiddenOf(rt, model, [4, 9, 1], 1);
      const padded = await hiddenOf(rt, model, [4, 9, 1, 0, 0, 0, 0, 0, 7, 7, 7, 7, 7, 7, 7, 7], 2);
      assertClose(padded.subarray(0, 3 * d), short, { atol: 1e-5, rtol: 1e-5, what: 'padded vs unpadded' });
    } finally {
      store.destroy();
    }
  });

  it('gradient: autograd matches finite differences on a tiny model (item table in both roles, positions, attention, FFN, norms)', async () => {
    const rt = await runtime();
    const s = spec({ items: 6, hidden: 4, blocks: 1, heads: 2, maxLen: 4 });
    const { model, store } = build(rt, s, 11);
    const tokens = Int32Array.from([1, 2, 3, 0, 5, 6, 4, 2]);
    const targets = Int32Array.from([2, 3, -1, -1, 6, 4, 2, 1]);
    const lossOf = async (): Promise<number> => {
      const l = noGrad(() => tidy(() => crossEntropyLoss(model.hidden(fromArray(rt, tokens, [2, 4], 'i32')), model.head, { targets: fromArray(rt, targets, [8], 'i32') }, { training: false }).loss));
      const v = (await l.toFloat32())[0];
      l.dispose();
      return v;
    };
    try {
      store.zeroGrads();
      tidy(() => backward(crossEntropyLoss(model.hidden(fromArray(rt, tokens, [2, 4], 'i32')), model.head, { targets: fromArray(rt, targets, [8], 'i32') }, { training: false }).loss));
      const pick = rng(3);
      const eps = 1e-2;
      for (const name of ['item.weight', 'pos.weight', 'blocks.0.attn.q.weight', 'blocks.0.attn.v.bias', 'blocks.0.ffn.fc1.weight', 'blocks.0.ln1.weight', 'ln_f.bias']) {
        const g = await store.grads.read(name);
        const w = await store.params.read(name);
        // Item-table rows that are read as inputs and scored as outputs (the padding row 0 is never a target).
        const idx = name === 'item.weight' ? [4 + 0, 4 * 2 + 1, 4 * 5 + 2, 4 * 6 + 3, 4 * 3 + 1] : Array.from({ length: 4 }, () => Math.floor(pick() * w.length));
        for (const i of idx) {
          const p = w.slice();
          p[i] += eps;
          store.params.load(name, p);
          const up = await lossOf();
          p[i] -= 2 * eps;
          store.params.load(name, p);
          const down = await lossOf();
          store.params.load(name, w);
          const num = (up - down) / (2 * eps);
          assert.ok(Math.abs(g[i] - num) <= 3e-3 + 3e-2 * Math.abs(num), `${name}[${i}]: autograd ${g[i]}, finite difference ${num}`);
        }
        if (name === 'item.weight') assert.ok(g.some((v, i) => i >= 4 && Math.abs(v) > 1e-4), 'item table gets a gradient');
      }
    } finally {
      store.destroy();
    }
  });

  it('trains through the trainer from a config: the loss falls and HR@10 beats chance', async () => {
    const rt = await runtime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-sasrec-'));
    try {
      const cfg = parseConfig(
        `
name: t-sasrec
seed: 2
model: { type: sasrec, items: 40, hidden: 16, blocks: 1, heads: 1, maxLen: 8, dropout: 0.1 }
data: { type: synthetic-sequences, sequences: 600, length: 9, vocab: 41, branching: 2, noise: 0.05, validFraction: 0.1 }
train:
  steps: 80
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: 0
  logEvery: 10
`,
        'sasrec.basin.yaml',
      );
      const losses: number[] = [];
      const r = await train({ rt, config: cfg, outputDir: dir, events: { onLog: (l) => losses.push(l.loss) } });
      assert.equal(r.status, 'completed');
      assert.ok(r.eval && r.chance);
      assert.ok(losses[losses.length - 1] < 0.7 * losses[0], `loss ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
      assert.ok(r.eval.hr10 > 2 * r.chance.hr10, `HR@10 ${r.eval.hr10} vs chance ${r.chance.hr10}`);
      // Full-catalogue ranking metrics (seen items and padding removed) land in the evaluation and metrics.jsonl.
      const { ndcg10, hr10Full, mrr, coverage10 } = r.eval;
      assert.ok(ndcg10 !== undefined && hr10Full !== undefined && mrr !== undefined && coverage10 !== undefined, JSON.stringify(r.eval));
      assert.ok(hr10Full >= r.eval.hr10 - 1e-9, `removing seen items and padding can only raise HR@10: ${hr10Full} vs ${r.eval.hr10}`);
      assert.ok(ndcg10 > 0 && ndcg10 <= hr10Full && mrr > 0 && mrr <= 1, JSON.stringify(r.eval));
      assert.ok(coverage10 > 0 && coverage10 <= 1, `coverage ${coverage10}`);
      const rows = fs.readFileSync(path.join(r.runDir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const last = rows.filter((x) => 'val_loss' in x).pop();
      assert.ok(last && ['val_ndcg10', 'val_hr10Full', 'val_mrr', 'val_coverage10'].every((k) => typeof last[k] === 'number'), JSON.stringify(last));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
