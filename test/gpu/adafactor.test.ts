// Adafactor (src/engine/optim/adafactor.ts, kernels/adafactor.wgsl) against its CPU reference
// (cpuAdafactorStep in src/engine/cpu/optim.ts) on awkward shapes: a 1×1 matrix, a prime-sized matrix, a tall
// matrix with more rows than one workgroup, rank-1 vectors (dense second moment), a frozen tensor, decay on and
// off; with and without momentum, clipping, the non-finite guard; the checkpoint round trip and the factored
// statistics.
import * as assert from 'node:assert/strict';
import { assertClose, randn, runtime } from './helpers';
import { Adafactor, AdafactorOptions } from '../../src/engine/optim/adafactor';
import { ParameterStore } from '../../src/engine/optim/params';
import { CpuAdafactorConfig, CpuParam, cpuAdafactorState, cpuAdafactorStep } from '../../src/engine/cpu/optim';
import { factoredSecondMoment } from '../../src/engine/stats/factored';
import { cpuLayerStats } from '../../src/engine/cpu/stats';
import { LayerStatsCollector } from '../../src/engine/stats/layer-stats';

const LAYOUT = [
  { name: 'a.weight', shape: [1, 1] },
  { name: 'b.weight', shape: [13, 17] }, // primes
  { name: 'c.weight', shape: [300, 3] }, // more rows than a workgroup, few columns
  { name: 'c.bias', shape: [7] }, // vector: dense v
  { name: 'd.weight', shape: [5, 2, 3] }, // rank 3: factored as [5, 6]
  { name: 'e.weight', shape: [4, 4], frozen: true },
  { name: 'f.bias', shape: [1], decay: true },
];

const DEFAULTS: CpuAdafactorConfig = { beta2Decay: -0.8, beta1: 0, eps1: 1.1920929e-7, eps2: 1e-3, clipThreshold: 1, scaleParameter: true, weightDecay: 0.1 };

async function run(opts: AdafactorOptions & { steps: number; gradScale?: number; zeroRows?: boolean }) {
  const rt = await runtime();
  const store = new ParameterStore();
  const cpu: CpuParam[] = [];
  LAYOUT.forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const init = randn(n, 7 + i, 0.3);
    store.add(s.name, s.shape, init, { decay: s.decay, frozen: s.frozen });
    cpu.push({ name: s.name, p: init.slice(), g: new Float32Array(n), decay: s.decay ?? s.shape.length >= 2, frozen: s.frozen ?? false });
  });
  store.materialize(rt);
  const cfg: CpuAdafactorConfig = { ...DEFAULTS, ...opts } as CpuAdafactorConfig;
  const opt = new Adafactor(store, { ...DEFAULTS, ...opts });
  const state = LAYOUT.map((s) => cpuAdafactorState(s.shape, cfg.beta1));
  for (let t = 1; t <= opts.steps; t++) {
    cpu.forEach((x, i) => {
      x.g.set(randn(x.g.length, 100 * t + i, (opts.gradScale ?? 0.05) * (1 + i)));
      // Rows with no gradient at all (an embedding's unused ids): R = 0 there, V̂ = 0, and the update must be 0.
      if (opts.zeroRows && x.name === 'c.weight') x.g.fill(0, 0, 30);
      store.grads.load(x.name, x.g);
    });
    const lr = 0.02;
    opt.step(lr);
    cpuAdafactorStep(cpu, state, t, lr, cfg);
  }
  return { rt, store, cpu, opt, state, cfg };
}

async function assertMatches(store: ParameterStore, cpu: CpuParam[], what: string) {
  for (const x of cpu) assertClose(await store.read(x.name), x.p, { atol: 2e-6, rtol: 2e-4, what: `${what}: ${x.name}` });
}

describe('Adafactor', () => {
  it('matches the CPU reference over several steps (factored matrices, dense vectors, one frozen, decay)', async () => {
    const { store, cpu, opt, state } = await run({ steps: 4 });
    try {
      await assertMatches(store, cpu, 'adafactor');
      const vr = await opt.readState('vr');
      const vc = await opt.readState('vc');
      const v = await opt.readState('v');
      LAYOUT.forEach((s, k) => {
        if (s.frozen) return;
        if (s.shape.length >= 2) {
          assertClose(vr.get(s.name)!, Float32Array.from(state[k].r), { atol: 1e-9, rtol: 1e-4, what: `R ${s.name}` });
          assertClose(vc.get(s.name)!, Float32Array.from(state[k].c), { atol: 1e-9, rtol: 1e-4, what: `C ${s.name}` });
        } else assertClose(v.get(s.name)!, Float32Array.from(state[k].v), { atol: 1e-9, rtol: 1e-4, what: `V ${s.name}` });
      });
      // The state is factored: rows + cols per matrix, far below a dense second moment.
      assert.equal(vr.get('c.weight')!.length, 300);
      assert.equal(vc.get('c.weight')!.length, 3);
      assert.ok(opt.stateBytes < 2 * store.bytes, `state ${opt.stateBytes} B is not below AdamW's ${2 * store.bytes} B`);
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('matches with momentum (beta1), without the relative scale, with global-norm clipping and the smallest eps1', async () => {
    const { store, cpu, opt } = await run({ steps: 3, beta1: 0.9, scaleParameter: false, maxGradNorm: 0.5, gradScale: 0.5, eps1: 1e-18, zeroRows: true });
    try {
      await assertMatches(store, cpu, 'adafactor+momentum+clip');
      assert.ok((await store.read('c.weight')).every(Number.isFinite), 'rows without gradient stay finite');
      assert.deepEqual(Object.keys(opt.state()), ['m']);
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('skips a non-finite step entirely (weights and factors untouched)', async () => {
    const { store, cpu, opt } = await run({ steps: 2 });
    try {
      const before = await store.readAll();
      const vrBefore = await opt.readState('vr');
      const g = cpu[1].g.slice();
      g[5] = NaN;
      store.grads.load('b.weight', g);
      opt.step(0.02);
      const after = await store.readAll();
      for (const [k, w] of before) assert.deepEqual(after.get(k), w, `${k} moved on a NaN step`);
      assert.deepEqual(await opt.readState('vr'), vrBefore);
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('resumes bit for bit from snapshot() → loadState()', async () => {
    const a = await run({ steps: 2, beta1: 0.5 });
    const snap = await a.opt.snapshot();
    const weights = await a.store.readAll();
    const rt = a.rt;
    const b = new ParameterStore();
    for (const s of LAYOUT) b.add(s.name, s.shape, weights.get(s.name)!, { decay: s.decay, frozen: s.frozen });
    b.materialize(rt);
    const opt2 = new Adafactor(b, { ...DEFAULTS, beta1: 0.5 });
    opt2.loadState({ step: snap.step, buffers: snap.buffers });
    try {
      for (const [st, map] of Object.entries(snap.buffers)) {
        const back = await opt2.readState(st);
        for (const [k, x] of map) assert.deepEqual(back.get(k), x, `${st} ${k}`);
      }
      for (const [store, opt] of [[a.store, a.opt], [b, opt2]] as const) {
        a.cpu.forEach((x, i) => store.grads.load(x.name, randn(x.g.length, 999 + i, 0.05)));
        opt.step(0.01);
      }
      for (const s of LAYOUT) assert.deepEqual(await b.read(s.name), await a.store.read(s.name), `${s.name} after the resumed step`);
      // What the checkpoint writer will store is exactly what the snapshot holds, with the declared lengths.
      const declared = opt2.stateTensors().map((d) => `${d.state}.${d.param}:${d.shape.reduce((x, y) => x * y, 1)}`).sort();
      const held = Object.entries(snap.buffers).flatMap(([st, m]) => [...m].map(([p, x]) => `${st}.${p}:${x.length}`)).sort();
      assert.deepEqual(held, declared);
    } finally {
      a.opt.destroy();
      a.store.destroy();
      opt2.destroy();
      b.destroy();
    }
  });

  it('gives the statistics pass its factored second moment: fields equal the dense V̂ reference', async () => {
    const { rt, store, cpu, opt } = await run({ steps: 2 });
    const stats = new LayerStatsCollector(rt, store, opt);
    try {
      stats.beforeStep();
      cpu.forEach((x, i) => store.grads.load(x.name, randn(x.g.length, 555 + i, 0.05)));
      opt.step(0.02);
      await stats.sample(3);
      const frame = stats.latest!;
      const vr = await opt.readState('vr');
      const vc = await opt.readState('vc');
      for (const s of LAYOUT.filter((x) => x.shape.length >= 2 && !x.frozen)) {
        const R = vr.get(s.name)!;
        const C = vc.get(s.name)!;
        // The dense V̂ the factors stand for, through the plain CPU statistics reference.
        const meanR = R.reduce((a, b) => a + b, 0) / R.length;
        const dense = new Float32Array(R.length * C.length).map((_, k) => (R[Math.floor(k / C.length)] * C[k % C.length]) / meanR);
        const ref = cpuLayerStats([{ name: s.name, shape: s.shape, g: dense, w: dense, v: dense }])[0];
        const got = frame.tensors.find((t) => t.name === s.name)!;
        assertClose(Float32Array.of(got.scalars.vMean, got.scalars.vMax), Float32Array.of(ref.scalars.vMean, ref.scalars.vMax), { atol: 1e-12, rtol: 1e-4, what: `${s.name} vMean/vMax` });
        assertClose(got.vRow, ref.vRow, { atol: 1e-12, rtol: 1e-4, what: `${s.name} vRow` });
        assertClose(got.vCol, ref.vCol, { atol: 1e-12, rtol: 1e-4, what: `${s.name} vCol` });
        assert.deepEqual([...got.hist], [...ref.hist], `${s.name} histogram`);
      }
    } finally {
      stats.destroy();
      opt.destroy();
      store.destroy();
    }
  });
});

describe('Adafactor refuses what its kernels cannot bind', () => {
  it('names a tensor above one binding, with its size and the way out, before any GPU work', async () => {
    const rt = await runtime();
    rt.setMaxBindingBytes(4096);
    const store = new ParameterStore();
    store.add('small.weight', [4, 4]);
    store.add('tok.weight', [40, 64]); // 10 KiB: over the forced 4 KiB binding
    try {
      store.materialize(rt);
      assert.throws(() => new Adafactor(store), /Adafactor: parameter 'tok\.weight' \(40×64, 0\.0 MiB\) is larger than one GPU binding .* use adamw or sgd/);
    } finally {
      store.destroy();
      rt.setMaxBindingBytes(null);
    }
  });
});

describe('factored second-moment statistics (host)', () => {
  it('the pairwise histogram equals counting every product, zeros and extremes included', () => {
    const R = Float32Array.from([0, 1e-12, 3e-6, 0.5, 2, 7e-9, 1e-3]);
    const C = Float32Array.from([1e-20, 4e-4, 0, 9, 1e-7]);
    const f = factoredSecondMoment(R, C);
    const meanR = R.reduce((a, b) => a + b, 0) / R.length;
    const dense = new Float32Array(R.length * C.length).map((_, k) => (R[Math.floor(k / C.length)] * C[k % C.length]) / meanR);
    const ref = cpuLayerStats([{ name: 't', shape: [R.length, C.length], g: dense, w: dense, v: dense }])[0];
    assert.deepEqual([...f.hist], [...ref.hist]);
    assertClose(f.vRow, ref.vRow, { atol: 1e-12, rtol: 1e-5 });
    assertClose(f.vCol, ref.vCol, { atol: 1e-12, rtol: 1e-5 });
  });
});
