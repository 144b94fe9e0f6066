// Per-layer statistics on the GPU (src/engine/stats/layer-stats.ts, kernels/stats.wgsl) against the CPU reference
// (src/engine/cpu/stats.ts) computed from the same buffers read back: awkward shapes ([1], [7], [3,5], [31,17],
// [64,130], 3-D, scalar, empty), a frozen tensor, clipping, a chunked layout (tensors split across bindings),
// SGD with and without momentum, large values, zero tensors, 1,000 tensors in a bounded number of dispatches;
// the header's roles (freeze, LoRA, progressive unfreezing) and a fine-tune's saliency mass from training runs,
// and mao's captured momentum energy.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertClose, randn, rng, runtime } from './helpers';
import { Mao } from '../../src/engine/optim/mao';
import { train } from '../../src/engine/train/trainer';
import { loadConfig } from '../../src/files/config/load';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import { saliencyMass } from '../../src/engine/stats/saliency';
import type { Runtime } from '../../src/engine/gpu/runtime';
import { AdamW } from '../../src/engine/optim/adamw';
import { SGD } from '../../src/engine/optim/sgd';
import type { Optimizer } from '../../src/engine/optim/optimizer';
import { ParameterStore } from '../../src/engine/optim/params';
import { LayerStatsCollector, statsCheckpoint } from '../../src/engine/stats/layer-stats';
import { CpuStatsInput, cpuLayerStats } from '../../src/engine/cpu/stats';
import { HIST_BINS, SCALAR_KEYS, StatsFrame, TensorStats, decodeStatsFrame, decodeStatsFrames, histUpperEdge } from '../../src/protocol/stats';

interface Spec {
  name: string;
  shape: number[];
  frozen?: boolean;
  scale?: number;
  zero?: boolean;
}

const AWKWARD: Spec[] = [
  { name: 'a.one', shape: [1] },
  { name: 'a.seven', shape: [7] },
  { name: 'b.small', shape: [3, 5] },
  { name: 'b.prime', shape: [31, 17] },
  { name: 'b.wide', shape: [64, 130] }, // 8,320 elements: 9 blocks, split over chunks in the chunked test
  { name: 'c.cube', shape: [4, 5, 6] },
  { name: 'c.scalar', shape: [] },
  { name: 'd.empty', shape: [0] },
  { name: 'd.empty2', shape: [3, 0] },
  { name: 'e.frozen', shape: [9, 2], frozen: true },
  { name: 'f.tall', shape: [2100, 1] }, // cols = 1, rows > one block
];

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function build(rt: Runtime, specs: Spec[], maxBindingBytes?: number): ParameterStore {
  const store = new ParameterStore();
  specs.forEach((s, i) => {
    const init = s.zero ? new Float32Array(numel(s.shape)) : randn(numel(s.shape), 500 + i, 0.5 * (s.scale ?? 1));
    store.add(s.name, s.shape, init, { frozen: s.frozen });
  });
  return store.materialize(rt, { maxBindingBytes });
}

function setGrads(store: ParameterStore, specs: Spec[], seed: number, scale = 0.1): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  specs.forEach((s, i) => {
    const g = s.zero ? new Float32Array(numel(s.shape)) : randn(numel(s.shape), seed * 97 + i, scale * (s.scale ?? 1) * (1 + (i % 4)));
    out.set(s.name, g);
    store.grads.load(s.name, g);
  });
  return out;
}

function histL1(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d;
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Compare a decoded GPU frame with the CPU reference, tensor by tensor. */
function assertStats(frame: StatsFrame, expected: TensorStats[], what: string, tol = { atol: 1e-6, rtol: 2e-4 }, vAll?: Map<string, Float32Array> | null): void {
  assert.equal(frame.tensors.length, expected.length, `${what}: tensor count`);
  frame.tensors.forEach((t, k) => {
    const e = expected[k];
    const w = `${what}: ${e.name}`;
    assert.equal(t.name, e.name);
    assert.deepEqual(t.shape, e.shape, `${w} shape`);
    assert.deepEqual([t.rows, t.cols], [e.rows, e.cols], `${w} matrix view`);
    for (const key of SCALAR_KEYS) {
      if (key === 'vP50' || key === 'vP90' || key === 'vP99') continue; // from the histogram, checked below
      const a = t.scalars[key];
      const b = e.scalars[key];
      if (Number.isNaN(b)) assert.ok(Number.isNaN(a), `${w} ${key}: ${a}, expected NaN`);
      else assertClose([a], [b], { ...tol, what: `${w} ${key}` });
    }
    // Histogram: same total; bins may differ where a value sits on a bin edge within f32 log2 rounding.
    assert.equal(sum(t.hist), sum(e.hist), `${w} histogram total`);
    assert.ok(histL1(t.hist, e.hist) <= 2 + 1e-3 * sum(e.hist), `${w} histogram ${[...t.hist]} vs ${[...e.hist]}`);
    // Quantiles: exact (nearest rank) for a tensor within the per-tensor sample budget (sampled whole); above
    // it, the sampled quantile's rank among all values is within a few percent of q. Never above the maximum.
    const n = e.shape.reduce((a, b) => a * b, 1);
    for (const [key, q] of [['vP50', 0.5], ['vP90', 0.9], ['vP99', 0.99]] as const) {
      assert.ok(t.scalars[key] <= t.scalars.vMax, `${w} ${key} ${t.scalars[key]} above vMax ${t.scalars.vMax}`);
      if (n <= 1024) assert.equal(t.scalars[key], Math.fround(e.scalars[key]), `${w} ${key}`);
      else if (vAll?.get(e.name)) {
        const v = vAll.get(e.name)!;
        const rank = v.filter((x) => x <= t.scalars[key]).length / v.length;
        assert.ok(Math.abs(rank - q) <= 0.05 || (rank >= q && v.filter((x) => x < t.scalars[key]).length / v.length <= q), `${w} ${key}: rank ${rank} for q ${q}`);
      }
    }
    assertClose(t.vRow, e.vRow, { ...tol, what: `${w} vRow` });
    assertClose(t.vCol, e.vCol, { ...tol, what: `${w} vCol` });
  });
}

/**
 * Run `steps` optimizer steps with random gradients, sampling the last one; return the decoded frame and the CPU
 * reference computed from the buffers as they were around that step.
 */
async function sampleAndReference(
  rt: Runtime,
  store: ParameterStore,
  opt: Optimizer,
  specs: Spec[],
  steps: number,
  opts: { gradScale?: number; maxGradNorm?: number; beforeStep?: boolean } = {},
): Promise<{ frame: StatsFrame; bytes: Uint8Array; expected: TensorStats[]; collector: LayerStatsCollector; vAll: Map<string, Float32Array> | null }> {
  const collector = new LayerStatsCollector(rt, store, opt);
  let grads = new Map<string, Float32Array>();
  let prev = new Map<string, Float32Array>();
  let pending: Promise<Uint8Array> | null = null;
  for (let t = 1; t <= steps; t++) {
    grads = setGrads(store, specs, 10 + t, opts.gradScale ?? 0.1);
    const last = t === steps;
    if (last) prev = await store.readAll();
    if (last && opts.beforeStep !== false) collector.beforeStep();
    opt.step(1e-2);
    if (last) pending = collector.sample(t);
    store.zeroGrads();
  }
  const bytes = await pending!;
  const st = opt.state();
  const m = st.m ?? st.momentum;
  const v = st.v;
  const [w, mAll, vAll] = await Promise.all([store.readAll(), m ? m.readAll() : null, v ? v.readAll() : null]);
  let clip = 1;
  if (opts.maxGradNorm) {
    let total = 0;
    for (const e of store.entries) if (!e.flags.frozen) for (const g of grads.get(e.name)!) total += g * g;
    clip = Math.min(1, opts.maxGradNorm / (Math.fround(Math.sqrt(total)) + 1e-6));
  }
  const inputs: CpuStatsInput[] = store.entries.map((e) => ({
    name: e.name,
    shape: e.shape,
    g: grads.get(e.name)!,
    w: w.get(e.name)!,
    wPrev: opts.beforeStep === false ? null : prev.get(e.name)!,
    m: mAll?.get(e.name) ?? null,
    v: vAll?.get(e.name) ?? null,
  }));
  const decoded = decodeStatsFrame(bytes);
  assert.ok(decoded, 'the frame decodes');
  assert.equal(decoded.next, bytes.length, 'one frame, nothing after it');
  assert.equal(decoded.frame.step, steps);
  return { frame: decoded.frame, bytes, expected: cpuLayerStats(inputs, clip), collector, vAll };
}

describe('per-layer statistics on the GPU', () => {
  it('AdamW: every statistic of awkward shapes matches the CPU reference (clipping on, one frozen tensor)', async () => {
    const rt = await runtime();
    const store = build(rt, AWKWARD);
    const opt = new AdamW(store, { maxGradNorm: 0.5 });
    try {
      const { frame, expected, collector, vAll } = await sampleAndReference(rt, store, opt, AWKWARD, 3, { maxGradNorm: 0.5 });
      assertStats(frame, expected, 'adamw', undefined, vAll);
      // Small tensors are sampled whole: their quantiles are exactly the nearest-rank quantiles of the saved v.
      const prime = frame.tensors.find((t) => t.name === 'b.prime')!;
      const pv = Float64Array.from(vAll!.get('b.prime')!).sort();
      assert.equal(prime.scalars.vP50, Math.fround(pv[Math.ceil(0.5 * pv.length) - 1]));
      assert.equal(prime.scalars.vP99, Math.fround(pv[Math.ceil(0.99 * pv.length) - 1]));
      // The reference really exercises v: non-empty histograms, positive profiles, a moving update ratio.
      const wide = frame.tensors.find((t) => t.name === 'b.wide')!;
      assert.equal(sum(wide.hist), 64 * 130);
      assert.ok(wide.scalars.vMean > 0 && wide.scalars.updateRatio > 0 && wide.scalars.momentumNorm > 0);
      assert.ok(wide.scalars.vP50 <= wide.scalars.vP90 && wide.scalars.vP90 <= wide.scalars.vP99);
      const frozen = frame.tensors.find((t) => t.name === 'e.frozen')!;
      assert.equal(frozen.scalars.updateRatio, 0, 'a frozen tensor does not move');
      assert.equal(frozen.scalars.vMean, 0);
      const empty = frame.tensors.find((t) => t.name === 'd.empty2')!;
      assert.deepEqual([...empty.vRow], [0, 0, 0]);
      assert.equal(empty.scalars.weightNorm, 0);
      assert.equal(collector.latest?.step, 3);
      collector.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('a chunked layout (tensors split across bindings) gives the same statistics', async () => {
    const rt = await runtime();
    // 16 KiB bindings: 4 blocks per chunk, so b.wide (9 blocks) and f.tall (3 blocks) straddle chunks.
    const store = build(rt, AWKWARD, 16 * 1024);
    const opt = new AdamW(store, {});
    try {
      assert.ok(store.chunks.length >= 3, `${store.chunks.length} chunks`);
      const { frame, expected, collector, vAll } = await sampleAndReference(rt, store, opt, AWKWARD, 2);
      assertStats(frame, expected, 'chunked', undefined, vAll);
      collector.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('SGD: momentum buffer as m, v fields zero; plain SGD: momentum zero', async () => {
    const rt = await runtime();
    for (const momentum of [0.9, 0]) {
      const store = build(rt, AWKWARD.slice(0, 6));
      const opt = new SGD(store, { momentum, weightDecay: 0.01 });
      try {
        const { frame, expected, collector } = await sampleAndReference(rt, store, opt, AWKWARD.slice(0, 6), 2);
        assertStats(frame, expected, `sgd momentum ${momentum}`);
        for (const t of frame.tensors) {
          assert.equal(t.scalars.vMean, 0);
          assert.equal(t.scalars.vMax, 0);
          assert.equal(t.scalars.vP99, 0);
          assert.equal(sum(t.hist), 0);
          assert.equal(sum(t.vRow) + sum(t.vCol), 0);
          if (momentum === 0) assert.equal(t.scalars.momentumNorm, 0);
          else assert.ok(t.scalars.momentumNorm > 0);
        }
        collector.destroy();
      } finally {
        opt.destroy();
        store.destroy();
      }
    }
  });

  it('large values, zero tensors, and no pre-step copy (update ratio NaN)', async () => {
    const rt = await runtime();
    const specs: Spec[] = [
      { name: 'big', shape: [13, 11], scale: 1e12 },
      { name: 'zero.w', shape: [5, 4], zero: true },
      { name: 'tiny', shape: [33], scale: 1e-9 },
    ];
    const store = build(rt, specs);
    const opt = new AdamW(store, { skipNonFinite: false });
    try {
      const r = await sampleAndReference(rt, store, opt, specs, 2, { gradScale: 1 });
      assertStats(r.frame, r.expected, 'large', { atol: 1e-30, rtol: 5e-4 });
      const big = r.frame.tensors[0];
      assert.ok(big.scalars.vMax > 1e20, `v of big gradients: ${big.scalars.vMax}`);
      assert.equal(big.hist[HIST_BINS - 1], 13 * 11, 'v above 10^HIST_HI goes to the last bin');
      const zero = r.frame.tensors[1];
      for (const k of SCALAR_KEYS) if (!k.startsWith('vP')) assert.equal(zero.scalars[k], 0, `zero tensor ${k}`);
      assert.equal(zero.hist[0], 20, 'zeros go to bin 0');
      assert.equal(zero.scalars.vP99, 0, 'quantiles of an all-zero v are 0');
      r.collector.destroy();

      const q = await sampleAndReference(rt, store, opt, specs, 1, { beforeStep: false });
      for (const t of q.frame.tensors) assert.ok(Number.isNaN(t.scalars.updateRatio), `${t.name}: update ratio without beforeStep`);
      q.collector.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('1,000 tensors: a bounded number of dispatches, frames in order, checkpoint tensors', async () => {
    const rt = await runtime();
    const r = rng(42);
    const specs: Spec[] = [];
    for (let i = 0; i < 1000; i++) {
      const kind = i % 3;
      const a = 1 + Math.floor(r() * 9);
      const b = 1 + Math.floor(r() * 9);
      specs.push({ name: `layers.${i}.${kind === 0 ? 'bias' : 'weight'}`, shape: kind === 0 ? [a] : kind === 1 ? [a, b] : [a, b, 2] });
    }
    const store = build(rt, specs);
    const opt = new AdamW(store, {});
    const collector = new LayerStatsCollector(rt, store, opt);
    try {
      const grads = setGrads(store, specs, 3);
      const prev = await store.readAll();
      const d0 = rt.counters.dispatches;
      collector.beforeStep();
      const d1 = rt.counters.dispatches;
      opt.step(1e-2);
      const d2 = rt.counters.dispatches;
      const p1 = collector.sample(1);
      const d3 = rt.counters.dispatches;
      assert.equal(d1 - d0, 0, 'beforeStep is a copy, no dispatch');
      // blocks, tensors, profile, quantile samples: one each for the one chunk, whatever the number of tensors.
      assert.equal(d3 - d2, 4, `sample of 1,000 tensors took ${d3 - d2} dispatches`);
      assert.equal(collector.dispatchesPerSample, 4);
      // A second sample recorded before the first resolves: both resolve, in order.
      opt.step(1e-2);
      const p2 = collector.sample(2);
      const order: number[] = [];
      const [b1, b2] = await Promise.all([p1.then((b) => (order.push(1), b)), p2.then((b) => (order.push(2), b))]);
      assert.deepEqual(order, [1, 2]);
      const frames = decodeStatsFrames(new Uint8Array([...b1, ...b2]));
      assert.deepEqual(frames.map((f) => f.step), [1, 2]);
      assert.ok(Number.isNaN(frames[1].tensors[0].scalars.updateRatio), 'step 2 had no beforeStep()');

      // Step 1 against the reference (the state after step 1 is gone: recompute it from a fresh optimizer).
      const w = frames[0];
      assert.equal(w.tensors.length, 1000);
      const store2 = build(rt, specs);
      const opt2 = new AdamW(store2, {});
      for (const s of specs) store2.grads.load(s.name, grads.get(s.name)!);
      opt2.step(1e-2);
      const [w2, m2, v2] = await Promise.all([store2.readAll(), opt2.m.readAll(), opt2.v.readAll()]);
      const expected = cpuLayerStats(store2.entries.map((e) => ({ name: e.name, shape: e.shape, g: grads.get(e.name)!, w: w2.get(e.name)!, wPrev: prev.get(e.name)!, m: m2.get(e.name)!, v: v2.get(e.name)! })));
      opt2.destroy();
      store2.destroy();
      assertStats(w, expected, '1000 tensors');

      const ck = statsCheckpoint(w);
      assert.equal(ck.tensors.length, 4000);
      assert.equal(ck.metadata.scalarKeys, SCALAR_KEYS.join(','));
      assert.equal(ck.metadata.step, '1');
      const t7 = ck.tensors.find((t) => t.name === `${specs[7].name}.v_row`)!;
      assert.deepEqual(t7.shape, [specs[7].shape[0]]);
    } finally {
      collector.destroy();
      opt.destroy();
      store.destroy();
    }
  });
});

describe('statistics of fine-tunes and mao (frame header roles and extras)', function () {
  this.timeout(240_000);
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-stats-ft-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const MLP = (name: string, more: { extra?: string; train?: string; steps?: number; statsEvery?: number; optimizer?: string }) => `name: ${name}
seed: 5
model: { type: mlp, inputs: 12, hidden: [24], classes: 5, activation: relu }
data: { type: synthetic-classification, samples: 256, noise: 0.5, validFraction: 0.25 }
${more.extra ?? ''}
train:
${more.train ?? ''}  steps: ${more.steps ?? 6}
  batchSize: 32
  optimizer: ${more.optimizer ?? '{ type: adamw, lr: 0.02 }'}
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: 0
  statsEvery: ${more.statsEvery ?? 2}
  logEvery: 2
`;
  const run = async (name: string, text: string) => {
    const file = path.join(dir, `${name}.basin.yaml`);
    fs.writeFileSync(file, text);
    return train({ rt: await runtime(), config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs') });
  };
  const tensorsOf = async (file: string) => {
    const h = await readSafetensorsHeader(file);
    return async (name: string) => (await readTensor(file, name, h)).data as Float32Array;
  };

  it('LoRA with progressive unfreezing: roles per frame follow the frozen set; saliency matches the base, the checkpoint and the sidecar', async () => {
    const base = await run('base', MLP('base', { steps: 8, statsEvery: 0 }));
    const baseFile = path.join(base.runDir, base.checkpoint!);
    // LoRA on layers.0.weight: every base tensor frozen; layers.1.* released at step 4.
    const r = await run(
      'lora',
      MLP('lora', { extra: `init: { from: ${JSON.stringify(base.runDir)} }`, train: '  lora: { rank: 2, targets: ["layers.0.weight"] }\n  unfreeze: [{ step: 4, params: ["layers.1.*"] }]\n' }),
    );
    const frames = decodeStatsFrames(fs.readFileSync(path.join(r.runDir, 'stats.bin')));
    assert.deepEqual(frames.map((f) => f.step), [2, 4, 6]);
    const role = (f: StatsFrame, n: string) => f.tensors.find((t) => t.name === n)?.role;
    for (const f of frames) {
      assert.equal(role(f, 'layers.0.weight'), 'frozen', `step ${f.step}`);
      assert.equal(role(f, 'layers.0.bias'), 'frozen', `step ${f.step}`);
      assert.equal(role(f, 'layers.0.weight.lora_a'), 'lora', `step ${f.step}`);
      assert.equal(role(f, 'layers.0.weight.lora_b'), 'lora', `step ${f.step}`);
      assert.equal(role(f, 'layers.1.weight'), f.step < 4 ? 'frozen' : 'trained', `step ${f.step}: unfrozen at step 4`);
      // A frozen tensor's gradient norm and update are 0 by design (what the panel says instead of drawing them).
      const fz = f.tensors.find((t) => t.name === 'layers.0.weight')!;
      assert.equal(fz.scalars.updateRatio, 0, `step ${f.step}`);
    }
    const last = frames[2];
    const t = (n: string) => last.tensors.find((x) => x.name === n)!;
    assert.equal(t('layers.0.weight.lora_a').saliencyMass, undefined, 'a LoRA factor has no base tensor');
    assert.equal(t('layers.0.weight').saliencyMass, 0, 'frozen all along: τ = 0');
    const m = t('layers.1.weight').saliencyMass!;
    assert.ok(m > 0, `layers.1.weight trained from step 4: saliency ${m}`);
    // The same number from the files: base, final checkpoint (the store's weights) and the sidecar's R, C.
    const w = await tensorsOf(path.join(r.runDir, r.checkpoint!));
    const b = await tensorsOf(baseFile);
    const side = await tensorsOf(path.join(r.runDir, 'stats', 'step-6.safetensors'));
    const tt = t('layers.1.weight');
    const want = saliencyMass(await w('layers.1.weight'), tt.rows, tt.cols, await side('layers.1.weight.v_row'), await side('layers.1.weight.v_col'), await b('layers.1.weight'));
    assert.ok(Math.abs(m - want) <= 1e-5 * want, `frame ${m} vs recomputed ${want}`);
    assert.equal((await side('layers.1.weight.saliency_mass'))[0], Math.fround(m));
    const meta = (await readSafetensorsHeader(path.join(r.runDir, 'stats', 'step-6.safetensors'))).metadata;
    assert.equal(JSON.parse(meta!.roles)['layers.0.weight.lora_b'], 'lora');
  });

  it('a mao fine-tune: every frame carries captured energy in [0, 1] and the saliency of every base tensor', async () => {
    const base = await run('base-mao', MLP('base-mao', { steps: 4, statsEvery: 0 }));
    const r = await run('mao-ft', MLP('mao-ft', { extra: `init: { from: ${JSON.stringify(base.runDir)} }`, optimizer: '{ type: mao, lr: 0.01, rank: 4, refitEvery: 2 }', steps: 4 }));
    const frames = decodeStatsFrames(fs.readFileSync(path.join(r.runDir, 'stats.bin')));
    assert.deepEqual(frames.map((f) => f.step), [2, 4]);
    for (const f of frames) {
      const by = (n: string) => f.tensors.find((t) => t.name === n)!;
      // [24, 12] and [5, 24] are factored at rank 4; the biases keep dense Adam state.
      for (const n of ['layers.0.weight', 'layers.1.weight']) {
        const e = by(n).capturedEnergy;
        assert.ok(e !== undefined && e >= 0 && e <= 1, `step ${f.step}: ${n} captured energy ${e}`);
      }
      for (const n of ['layers.0.bias', 'layers.1.bias']) assert.equal(by(n).capturedEnergy, undefined);
      for (const t of f.tensors) assert.ok(t.saliencyMass !== undefined && t.saliencyMass > 0, `step ${f.step}: ${t.name} saliency ${t.saliencyMass}`);
    }
  });

  it('a run without a base has roles but no saliency; a freeze glob marks its tensors frozen', async () => {
    const r = await run('plain', MLP('plain', { train: '  freeze: ["layers.0.*"]\n', steps: 2 }));
    const [f] = decodeStatsFrames(fs.readFileSync(path.join(r.runDir, 'stats.bin')));
    assert.deepEqual(
      f.tensors.map((t) => [t.name, t.role]),
      [
        ['layers.0.weight', 'frozen'],
        ['layers.0.bias', 'frozen'],
        ['layers.1.weight', 'trained'],
        ['layers.1.bias', 'trained'],
      ],
    );
    assert.ok(f.tensors.every((t) => t.saliencyMass === undefined && t.capturedEnergy === undefined));
  });

  it("mao: frames carry each factored tensor's captured momentum energy in [0, 1], none for dense-momentum tensors", async () => {
    const rt = await runtime();
    // [41, 23]: factored at rank 4 (primes, not multiples of any tile); [3, 5] keeps dense Adam state (min ≤ rank); [7] a vector.
    const specs: Spec[] = [
      { name: 'a.weight', shape: [41, 23] },
      { name: 'b.small', shape: [3, 5] },
      { name: 'c.bias', shape: [7] },
      { name: 'd.tall', shape: [97, 6], frozen: false },
    ];
    const store = build(rt, specs);
    const opt = new Mao(store, { rank: 4, refitEvery: 3 });
    const collector = new LayerStatsCollector(rt, store, opt);
    try {
      const energies: number[] = [];
      for (let step = 1; step <= 7; step++) {
        setGrads(store, specs, step);
        opt.step(1e-3);
        const frame = decodeStatsFrame(await collector.sample(step))!.frame;
        const by = (n: string) => frame.tensors.find((t) => t.name === n)!;
        for (const n of ['a.weight', 'd.tall']) {
          const e = by(n).capturedEnergy;
          assert.ok(e !== undefined && e >= 0 && e <= 1, `step ${step}: ${n} captured energy ${e}`);
        }
        assert.equal(by('b.small').capturedEnergy, undefined, 'dense momentum: no captured energy');
        assert.equal(by('c.bias').capturedEnergy, undefined);
        energies.push(by('a.weight').capturedEnergy!);
        // The frame's value is the optimizer's own (no step in between).
        const direct = await opt.capturedEnergy();
        assert.equal(by('a.weight').capturedEnergy, Math.min(1, Math.max(0, direct.get('a.weight')!)));
        store.zeroGrads();
      }
      // Random gradients of rank 23 against a rank-4 momentum: after a refit the factors hold a real, partial share.
      assert.ok(energies.some((e) => e > 0.05 && e < 0.999), `captured energies ${energies.map((e) => e.toFixed(3)).join(', ')}`);
    } finally {
      collector.destroy();
      opt.destroy();
      store.destroy();
    }
  });
});
