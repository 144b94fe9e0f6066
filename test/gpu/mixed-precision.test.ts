// Mixed precision on the GPU: the f32 ↔ f16 casts bit for bit against src/files/f16.ts, the f16 matmul and the
// mixed linear (forward and backward) against CPU references on f16-rounded inputs, the loss scaler's kernel
// against its CPU rules, and training: a mixed run tracks the f32 run's loss, keeps f32 master weights, recovers
// from forced overflows, stops when the scale falls below its minimum, resumes with the exact scale, and trains in
// f32 (saying why) on a device without shader-f16.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backward } from '../../src/engine/autograd/tape';
import { matmulRef } from '../../src/engine/cpu/matmul';
import { GpuDevice } from '../../src/engine/gpu/device';
import { Runtime } from '../../src/engine/gpu/runtime';
import { castF16, castF32 } from '../../src/engine/ops/convert';
import { linear, linearHalf, linearSaved, matmul } from '../../src/engine/ops/matmul';
import { layerNorm } from '../../src/engine/ops/layernorm';
import { add } from '../../src/engine/ops/elementwise';
import { GradNorms } from '../../src/engine/optim/clip';
import { ParameterStore } from '../../src/engine/optim/params';
import { LossScaleRules, LossScaler, lossScalePath, readLossScaleState } from '../../src/engine/train/loss-scale';
import { NonFiniteError, train } from '../../src/engine/train/trainer';
import { fromArray } from '../../src/engine/tensor/tensor';
import { parseConfig } from '../../src/files/config/load';
import { encodeF16, decodeF16, f32ToF16Bits } from '../../src/files/f16';
import { openRun, type MetricsRow } from '../../src/files/run-record';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { assertClose, randn, runtime } from './helpers';

/** x rounded to f16 and back (what the GPU multiplies in mixed mode). */
function round16(x: Float32Array): Float32Array {
  const h = new Uint16Array(x.length);
  encodeF16(x, h);
  const out = new Float32Array(x.length);
  decodeF16(h, out);
  return out;
}

const MLP = (o: { precision?: string; steps?: number; lossScale?: string; checkpointEvery?: number; logEvery?: number } = {}) => `
name: mp-mlp
seed: 5
model: { type: mlp, inputs: 16, hidden: [32], classes: 8, activation: relu }
data: { type: synthetic-classification, samples: 600, noise: 0.5, validFraction: 0.2 }
train:
  steps: ${o.steps ?? 30}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  precision: ${o.precision ?? 'mixed'}
  ${o.lossScale ? `lossScale: ${o.lossScale}` : ''}
  evalEvery: 0
  statsEvery: 0
  checkpointEvery: ${o.checkpointEvery ?? 0}
  logEvery: ${o.logEvery ?? 1}
`;

const LM = (precision: string) => `
name: mp-lm
seed: 2
model: { type: transformer, vocab: 29, dModel: 24, layers: 1, heads: 2, seqLen: 7 }
data: { type: synthetic-sequences, sequences: 300, length: 8, branching: 2, noise: 0.05, validFraction: 0.1 }
train:
  steps: 30
  batchSize: 16
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  gradClip: 1.0
  precision: ${precision}
  evalEvery: 0
  statsEvery: 0
  checkpointEvery: 0
  logEvery: 1
`;

async function rows(runDir: string): Promise<MetricsRow[]> {
  return (await (await openRun(runDir)).readMetrics()).filter((r) => typeof r.loss === 'number');
}

describe('mixed precision', function () {
  this.timeout(300_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const out = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-mp-'));
    dirs.push(d);
    return d;
  };

  before(async function () {
    const rt = await runtime();
    if (!rt.hasF16) this.skip(); // the fallback test below still runs on its own device
  });

  describe('casts', () => {
    // Ties to even, the largest finite value, overflow to ±Inf, subnormals and their ties, underflow to ±0, NaN.
    const special = [
      0, -0, 1, -1, 65504, 65519.99, 65520, 1e6, -1e6, Infinity, -Infinity, NaN, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 1e-9,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -14 - 2 ** -25, 5.960464477539063e-8, 0.1, 1 / 3, 2049, 2051, 4097,
    ];

    for (const n of [1, 7, 1027]) {
      it(`f32 → f16 rounds to nearest even bit for bit (${n} elements)`, async () => {
        const rt = await runtime();
        const x = new Float32Array(n);
        const r = randn(n, n);
        for (let i = 0; i < n; i++) x[i] = i < special.length ? special[i] : r[i] * 10 ** ((i % 13) - 6);
        const h = castF16(fromArray(rt, x, [n]));
        assert.equal(h.dtype, 'f16');
        assert.equal(h.byteSize, Math.max(4, Math.ceil(n / 2) * 4));
        const got = new Uint16Array(await rt.readBytes(h.range()), 0, n);
        for (let i = 0; i < n; i++) {
          const want = f32ToF16Bits(x[i]);
          if (Number.isNaN(x[i])) assert.ok((got[i] & 0x7c00) === 0x7c00 && (got[i] & 0x3ff) !== 0, `[${i}] NaN stays NaN`);
          else assert.equal(got[i], want, `[${i}] ${x[i]}: 0x${got[i].toString(16)} vs 0x${want.toString(16)}`);
        }
        // And back: widening is exact.
        const back = await castF32(h).toFloat32();
        const ref = round16(x);
        for (let i = 0; i < n; i++) assert.ok(Object.is(back[i], ref[i]) || (Number.isNaN(back[i]) && Number.isNaN(ref[i])), `[${i}] ${back[i]} vs ${ref[i]}`);
      });
    }

    it('an f16 tensor uploads and reads back through the host codec', async () => {
      const rt = await runtime();
      const x = Float32Array.from([1.0009765625, -2.5, 70000, 3e-8, 0.1]);
      const t = fromArray(rt, x, [5], 'f16');
      assert.deepEqual([...(await t.toFloat32())], [...round16(x)]);
    });

    it('bad input: a clear error naming the dtypes', async () => {
      const rt = await runtime();
      assert.throws(() => castF16(fromArray(rt, [1, 2], [2], 'i32')), /castF16: expected an f32 tensor, got i32/);
      assert.throws(() => castF32(fromArray(rt, [1, 2], [2])), /castF32: expected an f16 tensor, got f32/);
      const a16 = fromArray(rt, [1, 2, 3, 4], [2, 2], 'f16');
      assert.throws(() => matmul(a16, fromArray(rt, [1, 2, 3, 4], [2, 2])), /must both be f32 or both f16, got f16 \[2, 2\] and f32 \[2, 2\]/);
    });
  });

  describe('f16 matmul, f32 sums', () => {
    // [m, k, n]: 1, primes, sizes that are not multiples of the 8 × 8 invocation block nor of the 8 × 8 workgroup
    // (matmul_reg_f16); then multiples of 4 that are not multiples of the block (matmul_vec4_f16).
    const shapes: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [33, 17, 65], [70, 3, 9], [12, 8, 20], [36, 44, 4]];
    for (const [m, k, n] of shapes) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
        it(`[${m}, ${k}] × [${k}, ${n}]${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''} matches the reference on f16-rounded inputs`, async () => {
          const rt = await runtime();
          const a = randn(m * k, m * 31 + k);
          const b = randn(k * n, n * 17 + k, 2);
          const a16 = fromArray(rt, a, transA ? [k, m] : [m, k], 'f16');
          const b16 = fromArray(rt, b, transB ? [n, k] : [k, n], 'f16');
          const count = (e: string) => rt.counters.byKernel.get(`matmul:${e}`) ?? 0;
          const before = [count('matmul_reg_f16'), count('matmul_vec4_f16')];
          const got = await matmul(a16, b16, { transA, transB }).toFloat32();
          const vec4 = k % 4 === 0 && n % 4 === 0 && (!transA || m % 4 === 0);
          assert.deepEqual([count('matmul_reg_f16') - before[0], count('matmul_vec4_f16') - before[1]], vec4 ? [0, 1] : [1, 0], 'the kernel for this shape');
          // Products of two f16 are exact in f32: only the f32 sums differ from the f64 reference.
          assertClose(got, matmulRef(round16(a), round16(b), m, k, n, { transA, transB }), { atol: 1e-5 * k, rtol: 1e-5, what: 'f16 matmul' });
        });
      }
    }

    it('batched [3, 5, 11] × shared [11, 6] matches the reference', async () => {
      const rt = await runtime();
      const a = randn(3 * 5 * 11, 4);
      const b = randn(11 * 6, 5);
      const got = await matmul(fromArray(rt, a, [3, 5, 11], 'f16'), fromArray(rt, b, [11, 6], 'f16')).toFloat32();
      assertClose(got, matmulRef(round16(a), round16(b), 5, 11, 6, { batch: 3, bShared: true }), { atol: 1e-4, rtol: 1e-5 });
    });
  });

  describe('linearHalf', () => {
    // The last: every product of forward and backward on the vec4 kernel.
    for (const [rows, inF, outF] of [[1, 1, 1], [15, 7, 11], [37, 20, 3], [16, 8, 12]] as [number, number, number][]) {
      it(`forward and backward on [${rows}, ${inF}] → ${outF}: f16-rounded references, and close to the f32 layer`, async () => {
        const rt = await runtime();
        const xv = randn(rows * inF, rows + inF);
        const wv = randn(outF * inF, outF, 0.3);
        const bv = randn(outF, 7);
        const gv = randn(rows * outF, 99, 1000); // an output gradient as the loss scale makes it: large
        const leaf = (v: Float32Array, shape: number[]) => {
          const t = fromArray(rt, v, shape);
          t.requiresGrad = true;
          return t;
        };
        const x = leaf(xv, [rows, inF]);
        const w = leaf(wv, [outF, inF]);
        const b = leaf(bv, [outF]);
        const w16 = castF16(w);
        const before = linearSaved.bytes;
        const y = linearHalf(x, w, w16, b);
        assert.equal(linearSaved.bytes - before, Math.max(4, Math.ceil((rows * inF) / 2) * 4), 'the backward keeps the f16 input');
        backward(y, fromArray(rt, gv, [rows, outF]));
        const [x16, w16v, g16] = [round16(xv), round16(wv), round16(gv)];
        assertClose(await y.toFloat32(), matmulRef(x16, w16v, rows, inF, outF, { transB: true, bias: bv }), { atol: 1e-5 * inF, rtol: 1e-5, what: 'y' });
        assertClose(await x.grad!.toFloat32(), matmulRef(g16, w16v, rows, outF, inF), { atol: 1e-3 * outF, rtol: 1e-5, what: 'dx' });
        assertClose(await w.grad!.toFloat32(), matmulRef(g16, x16, outF, rows, inF, { transA: true }), { atol: 1e-3 * rows, rtol: 1e-5, what: 'dW' });
        const db = new Float32Array(outF);
        for (let r = 0; r < rows; r++) for (let j = 0; j < outF; j++) db[j] += gv[r * outF + j];
        assertClose(await b.grad!.toFloat32(), db, { atol: 1e-2, rtol: 1e-5, what: 'db (f32)' });
        // Against the f32 layer (whose gradients the matmul tests check by finite differences): f16's 2^-11.
        const x2 = leaf(xv, [rows, inF]);
        const w2 = leaf(wv, [outF, inF]);
        const y2 = linear(x2, w2, fromArray(rt, bv, [outF]));
        backward(y2, fromArray(rt, gv, [rows, outF]));
        const scale = (v: Float32Array) => v.reduce((s, z) => Math.max(s, Math.abs(z)), 0);
        for (const [got, want, what] of [[await y.toFloat32(), await y2.toFloat32(), 'y'], [await w.grad!.toFloat32(), await w2.grad!.toFloat32(), 'dW']] as const) {
          assertClose(got, want, { atol: 4e-3 * scale(want), rtol: 0, what: `${what} vs f32` });
        }
      });
    }

    it('an activation released after its f16 readers: gradients unchanged, its values unreadable, its buffer freed', async () => {
      const rt = await runtime();
      const rows = 13;
      const d = 8;
      const run = async (release: boolean) => {
        const x = fromArray(rt, randn(rows * d, 3), [rows, d]);
        x.requiresGrad = true;
        const lw = fromArray(rt, randn(d, 4, 0.1).map((v) => 1 + v), [d]);
        const lb = fromArray(rt, randn(d, 5, 0.1), [d]);
        const w = [6, 7].map((seed) => fromArray(rt, randn(5 * d, seed, 0.3), [5, d]));
        for (const t of [lw, lb, ...w]) t.requiresGrad = true;
        const a = layerNorm(x, lw, lb);
        const ys = w.map((wi) => linearHalf(a, wi, castF16(wi)));
        if (release) {
          const live = rt.pool.snapshot().liveBytes;
          a.releaseData();
          assert.ok(rt.pool.snapshot().liveBytes < live, 'its buffer went back to the pool');
          assert.equal(a.isReleased, true);
          assert.throws(() => a.binding(), /was read after releaseData\(\) freed its values/);
        }
        backward(add(ys[0], ys[1]), fromArray(rt, randn(rows * 5, 9), [rows, 5]));
        return { dx: await x.grad!.toFloat32(), dlw: await lw.grad!.toFloat32(), dw: await w[1].grad!.toFloat32() };
      };
      const kept = await run(false);
      const freed = await run(true);
      assert.deepEqual(freed.dx, kept.dx, 'dx through the released layer-norm output');
      assert.deepEqual(freed.dlw, kept.dlw);
      assert.deepEqual(freed.dw, kept.dw);
    });

    it('bad input: a half copy of another shape or dtype is refused', async () => {
      const rt = await runtime();
      const x = fromArray(rt, randn(6, 1), [2, 3]);
      const w = fromArray(rt, randn(12, 2), [4, 3]);
      assert.throws(() => linearHalf(x, w, castF16(fromArray(rt, randn(9, 3), [3, 3])), undefined), /half copy of \[4, 3\] must be f16 of the same shape, got f16 \[3, 3\]/);
      assert.throws(() => linearHalf(x, w, w, undefined), /must be f16 of the same shape, got f32/);
    });
  });

  it('the loss scaler kernel follows LossScaleRules step by step; the non-finite latch is cleared while S ≥ minScale', async () => {
    const rt = await runtime();
    const store = new ParameterStore();
    store.add('w', [5], new Float32Array(5));
    store.materialize(rt);
    const norms = new GradNorms(store);
    const opts = { initial: 8, growthInterval: 3, minScale: 1 };
    const scaler = new LossScaler(rt, opts);
    const rules = new LossScaleRules(opts);
    // ok ok ok (grow) inf ok inf inf inf (8→…→0.5: stop)
    const pattern = [true, true, true, false, true, false, false, false, false, false];
    try {
      for (let i = 0; i < pattern.length; i++) {
        const step = i + 1;
        store.grads.load('w', Float32Array.from([1, -2, 3, pattern[i] ? 4 : Infinity, 0.5]));
        norms.compute(step);
        scaler.update(norms, step);
        const outcome = rules.update(step, pattern[i]);
        const s = await scaler.readAsync();
        assert.deepEqual(s, rules.state, `step ${step}`);
        const latch = (await norms.readAsync()).firstNonFiniteStep;
        if (outcome === 'stop') assert.equal(latch?.step, step, 'below minScale the latch names the step');
        else assert.equal(latch, null, `step ${step}: an overflow above minScale is no error`);
        if (outcome === 'stop') break;
      }
      assert.equal(rules.state.scale, 0.5);
    } finally {
      scaler.destroy();
      norms.destroy();
      store.destroy();
    }
  });

  describe('training', () => {
    it('a transformer trained in mixed precision tracks the f32 run; master weights stay f32; saved activations halve', async () => {
      const rt = await runtime();
      linearSaved.bytes = 0;
      const f32 = await train({ rt, config: parseConfig(LM('f32'), 'lm.basin.yaml'), outputDir: out() });
      const savedF32 = linearSaved.bytes;
      linearSaved.bytes = 0;
      const mixed = await train({ rt, config: parseConfig(LM('mixed'), 'lm.basin.yaml'), outputDir: out() });
      const savedMixed = linearSaved.bytes;
      const [a, b] = [await rows(f32.runDir), await rows(mixed.runDir)];
      assert.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++) {
        const [la, lb] = [a[i].loss as number, b[i].loss as number];
        assert.ok(Math.abs(la - lb) <= 0.02 * la, `step ${a[i].step}: loss ${lb} (mixed) vs ${la} (f32)`);
        assert.equal(b[i].lossScale, 32768);
        assert.equal(b[i].skippedSteps, 0);
      }
      assert.ok((a[a.length - 1].loss as number) < 0.85 * (a[0].loss as number), 'the f32 run learns at all');
      assert.ok(a.some((x, i) => x.loss !== b[i].loss), 'the mixed run computed in f16: its losses are not bit-identical to f32');
      // Same layers, same inputs: the mixed backward keeps half the bytes (rounding to words aside).
      assert.ok(savedMixed > 0 && Math.abs(savedMixed / savedF32 - 0.5) < 0.01, `saved ${savedMixed} vs ${savedF32} bytes`);
      const run = await openRun(mixed.runDir);
      const p = (run.record.device as { precision?: { used: string; halfLayers: number } }).precision;
      assert.equal(p?.used, 'mixed');
      assert.equal(p?.halfLayers, 7); // q, k, v, o, fc1, fc2, head
      // The checkpoint's weights are F32 master weights that f16 cannot hold (updates smaller than its spacing).
      const file = path.join(mixed.runDir, mixed.checkpoint!);
      const h = await readSafetensorsHeader(file);
      const wq = (await readTensor(file, 'blocks.0.attn.q.weight', h)).data as Float32Array;
      assert.equal(h.tensors['blocks.0.attn.q.weight'].dtype, 'F32');
      const r = round16(wq);
      const off = wq.filter((v, i) => v !== r[i]).length;
      assert.ok(off > 0.9 * wq.length, `${off} of ${wq.length} weights are not f16 values`);
    });

    it('a forced overflow (a huge initial scale) is skipped and the scale backs off; training recovers', async () => {
      const rt = await runtime();
      const f32 = await train({ rt, config: parseConfig(MLP({ precision: 'f32' }), 'a.basin.yaml'), outputDir: out() });
      const r = await train({ rt, config: parseConfig(MLP({ lossScale: '{ initial: 16777216, growthInterval: 10 }' }), 'a.basin.yaml'), outputDir: out() });
      assert.equal(r.status, 'completed');
      const m = await rows(r.runDir);
      const first = m[0];
      assert.ok((first.skippedSteps as number) >= 1, `step 1 overflowed f16 at S = 2^24: ${JSON.stringify(first)}`);
      assert.ok((first.lossScale as number) < 2 ** 24);
      const last = m[m.length - 1];
      assert.ok((last.skippedSteps as number) >= 1 && (last.skippedSteps as number) < 10, JSON.stringify(last));
      // Skipped steps never applied an update: the run learns like the f32 run, as many steps behind as it skipped.
      // (Logged losses are single batches: compare means over five steps.)
      const mean = (rs: MetricsRow[]) => rs.reduce((s, x) => s + (x.loss as number), 0) / rs.length;
      const behind = last.step - (last.skippedSteps as number);
      const fRef = mean((await rows(f32.runDir)).filter((x) => Math.abs(x.step - behind) <= 2));
      const ml = mean(m.slice(-5));
      if (process.env.BASIN_TEST_VERBOSE) console.log(m.map((x) => `${x.step}: ${(x.loss as number).toFixed(4)} S=${x.lossScale} skipped=${x.skippedSteps}`).join('\n'));
      assert.ok(Number.isFinite(ml) && ml < 0.1 * (first.loss as number), `mean loss of the last 5 steps ${ml} (first ${first.loss})`);
      assert.ok(ml < 1.5 * fRef && ml > fRef / 1.5, `mean loss of the last 5 steps ${ml} vs the f32 run's around step ${behind}: ${fRef}`);
      // The scale grew again after growthInterval good steps in a row.
      assert.ok(m.some((x, i) => i > 0 && (x.lossScale as number) > (m[i - 1].lossScale as number)), 'the scale doubles after 10 good steps');
    });

    it('a scale that falls below minScale stops training with the step and the layer', async () => {
      const rt = await runtime();
      const text = MLP({ lossScale: '{ initial: 16777216, minScale: 8388608 }' });
      await assert.rejects(train({ rt, config: parseConfig(text, 's.basin.yaml'), outputDir: out() }), (e: unknown) => {
        assert.ok(e instanceof NonFiniteError, String(e));
        assert.equal(e.step, 2);
        assert.match(e.message, /not finite at step 2 \(first non-finite gradient: layers\.\d\.(weight|bias)\)/);
        assert.match(e.message, /loss scale fell to 4194304, below lossScale\.minScale 8388608, after 2 skipped steps/);
        return true;
      });
    });

    it('resume restores the loss scale exactly', async () => {
      const rt = await runtime();
      const text = MLP({ steps: 24, checkpointEvery: 12, logEvery: 4, lossScale: '{ initial: 16777216, growthInterval: 3 }' });
      const full = await train({ rt, config: parseConfig(text, 'r.basin.yaml'), outputDir: out() });
      const abort = new AbortController();
      const part = await train({ rt, config: parseConfig(text, 'r.basin.yaml'), outputDir: out(), signal: abort.signal, events: { onLog: (l) => l.step >= 12 && abort.abort() } });
      assert.equal(part.steps, 12);
      const saved = await readLossScaleState(path.join(part.runDir, lossScalePath('checkpoints/step-12.safetensors')));
      const fullAt12 = await readLossScaleState(path.join(full.runDir, lossScalePath('checkpoints/step-12.safetensors')));
      assert.ok(saved && fullAt12);
      assert.deepEqual(saved, fullAt12);
      const resumed = await train({ rt, config: parseConfig(text, 'r.basin.yaml'), resume: part.runDir });
      assert.equal(resumed.steps, 24);
      const [a, b] = [await rows(full.runDir), await rows(resumed.runDir)];
      assert.deepEqual(b.map((x) => [x.step, x.lossScale, x.skippedSteps]), a.map((x) => [x.step, x.lossScale, x.skippedSteps]));
      const [sa, sb] = await Promise.all([full, resumed].map((r) => readLossScaleState(path.join(r.runDir, lossScalePath(r.checkpoint!)))));
      assert.deepEqual(sb, sa);
    });
  });
});

describe('mixed precision without shader-f16', function () {
  this.timeout(120_000);
  it('trains in f32, says why once at start and records it in run.json', async () => {
    const gpu = await GpuDevice.create({ withoutFeatures: ['shader-f16'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-mp-nof16-'));
    try {
      const rt = new Runtime(gpu);
      assert.equal(rt.hasF16, false);
      assert.ok(!gpu.info.features.includes('shader-f16'));
      const said: string[] = [];
      const r = await train({
        rt,
        config: parseConfig(MLP({ steps: 4 }), 'n.basin.yaml'),
        outputDir: dir,
        events: { onStart: (i) => said.push(`${i.precision?.used}: ${i.precision?.reason}`) },
      });
      assert.equal(r.status, 'completed');
      assert.equal(said.length, 1);
      // lavapipe has shader-f16: the device was made without it, and the reason says so rather than blaming the adapter.
      assert.match(said[0], /^f32: the device was created without .*'s shader-f16 feature \(withheld on request, e\.g\. BASIN_DISABLE_FEATURES\), so this run trains in f32$/);
      const p = ((await openRun(r.runDir)).record.device as { precision?: { requested: string; used: string; reason?: string } }).precision;
      assert.deepEqual([p?.requested, p?.used], ['mixed', 'f32']);
      assert.match(p?.reason ?? '', /shader-f16/);
      assert.ok(![...rt.counters.byKernel.keys()].some((k) => k.startsWith('cast:') || (k.startsWith('matmul:') && k.endsWith('_f16'))), 'no f16 kernel ran');
      const rows = (await (await openRun(r.runDir)).readMetrics()).filter((x) => typeof x.loss === 'number');
      assert.ok(rows.every((x) => x.lossScale === undefined), 'an f32 run logs no loss scale');
      // f16 kernels on such a device: a clear error, never a driver message.
      assert.throws(() => castF16(fromArray(rt, [1], [1])), /no shader-f16 feature/);
    } finally {
      gpu.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
