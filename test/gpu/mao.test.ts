// mao (src/engine/optim/mao.ts, kernels/mao.wgsl) against its CPU reference (src/engine/cpu/mao.ts) on awkward
// shapes: 1×1 and vectors (dense Adam path), 13×17 (primes), 300×3 (more rows than a workgroup, zero-gradient
// rows), a rank-3 tensor, 64×48 at rank 8 with error feedback and clipping, a frozen tensor; refits and projection
// steps both; the refit's captured energy against a dense eigendecomposition; a skipped non-finite step; the
// checkpoint round trip bit for bit; memory against AdamW; the low-rank momentum in the statistics.
import * as assert from 'node:assert/strict';
import { assertClose, randn, runtime } from './helpers';
import { Mao, MaoOptions } from '../../src/engine/optim/mao';
import { AdamW } from '../../src/engine/optim/adamw';
import { stateElementBytes } from '../../src/engine/optim/optimizer';
import { ParameterStore } from '../../src/engine/optim/params';
import { CpuParam, cpuClipScale } from '../../src/engine/cpu/optim';
import { CpuMaoConfig, bestRankEnergy, cpuMaoState, cpuMaoStep, cpuRefit, jacobiEigen, lowRankEnergy, lowRankProduct, maoLayout } from '../../src/engine/cpu/mao';
import { lowRankNorm } from '../../src/engine/stats/factored';
import { LayerStatsCollector } from '../../src/engine/stats/layer-stats';
import { validateConfigText } from '../../src/files/config/load';

interface Decl {
  name: string;
  shape: number[];
  frozen?: boolean;
  decay?: boolean;
}

const LAYOUT: Decl[] = [
  { name: 'a.weight', shape: [1, 1] }, // min(m, n) ≤ rank: dense Adam
  { name: 'b.weight', shape: [13, 17] }, // primes, factored
  { name: 'c.weight', shape: [300, 3] }, // more rows than a workgroup, few columns, zero-gradient rows
  { name: 'c.bias', shape: [7] },
  { name: 'd.weight', shape: [5, 2, 3] }, // rank 3: [5, 6]
  { name: 'e.weight', shape: [4, 4], frozen: true },
  { name: 'f.bias', shape: [1], decay: true },
];

const DEFAULTS: CpuMaoConfig = {
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-16,
  rank: 2,
  refitEvery: 2,
  powerIters: 1,
  pMax: 1e4,
  clipThreshold: 1,
  weightDecay: 0.1,
  errorFeedback: false,
};

function toOpts(c: CpuMaoConfig): MaoOptions {
  return { ...c, betas: [c.beta1, c.beta2] };
}

async function run(
  layout: Decl[],
  cfg: CpuMaoConfig,
  steps: number,
  extra: { gradScale?: number; zeroRows?: boolean; maxGradNorm?: number; maxBindingBytes?: number; beforeStep?: (t: number, store: ParameterStore, cpu: CpuParam[]) => void } = {},
) {
  const rt = await runtime();
  const store = new ParameterStore();
  const cpu: CpuParam[] = [];
  layout.forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const init = randn(n, 7 + i, 0.3);
    store.add(s.name, s.shape, init, { decay: s.decay, frozen: s.frozen });
    cpu.push({ name: s.name, p: init.slice(), g: new Float32Array(n), decay: s.decay ?? s.shape.length >= 2, frozen: s.frozen ?? false });
  });
  store.materialize(rt, extra.maxBindingBytes ? { maxBindingBytes: extra.maxBindingBytes } : {});
  const full = { ...cfg, maxGradNorm: extra.maxGradNorm ?? 0 };
  const opt = new Mao(store, { ...toOpts(cfg), maxGradNorm: full.maxGradNorm });
  const state = layout.map((s) => cpuMaoState(s.shape, cfg));
  // The dense momentum β1-EMA of the clipped gradients, kept independently of the optimizer's algebra.
  const ema = cpu.map((x) => new Float64Array(x.g.length));
  for (let t = 1; t <= steps; t++) {
    extra.beforeStep?.(t, store, cpu);
    cpu.forEach((x, i) => {
      x.g.set(randn(x.g.length, 100 * t + i, (extra.gradScale ?? 0.05) * (1 + i)));
      if (extra.zeroRows && x.name === 'c.weight') x.g.fill(0, 0, 30);
      store.grads.load(x.name, x.g);
    });
    const scale = cpuClipScale(cpu, full)!;
    cpu.forEach((x, i) => ema[i].forEach((v, q) => (ema[i][q] = cfg.beta1 * v + (1 - cfg.beta1) * scale * x.g[q])));
    opt.step(0.02);
    cpuMaoStep(cpu, state, t, 0.02, full);
  }
  return { rt, store, cpu, opt, state, ema };
}

async function assertMatches(r: Awaited<ReturnType<typeof run>>, layout: Decl[], what: string) {
  const { store, cpu, opt, state } = r;
  // With error feedback E is bf16: where the GPU's f32 M̃ and the CPU's f64 one round to neighbouring bf16 values
  // (one ulp, 2⁻⁸ of E), the next updates differ by lr·P·ulp/(1 − β1ᵗ), and the step after by more (the clipping,
  // the refit): up to 1e-4 here after six steps. An error in the algebra moves a weight by lr·|u| ≈ 1e-2.
  const bf16 = opt.errorFeedback && opt.errorFeedbackPrecision === 'bf16';
  const wTol = bf16 ? { atol: 3e-4, rtol: 2e-4 } : { atol: 2e-6, rtol: 2e-4 };
  for (const x of cpu) assertClose(await store.read(x.name), x.p, { ...wTol, what: `${what}: weights ${x.name}` });
  const [U, S, V, R, C, m, v] = await Promise.all(['U', 'S', 'V', 'R', 'C', 'm', 'v'].map((s) => opt.readState(s)));
  const E = opt.errorFeedback ? await opt.readState('E') : null;
  layout.forEach((d, k) => {
    if (d.frozen) return;
    const st = state[k];
    if (st.factored) {
      assertClose(R.get(d.name)!, Float32Array.from(st.R), { atol: 1e-10, rtol: 1e-4, what: `${what}: R ${d.name}` });
      assertClose(C.get(d.name)!, Float32Array.from(st.C), { atol: 1e-10, rtol: 1e-4, what: `${what}: C ${d.name}` });
      // The factors themselves are a basis choice; the momentum they stand for is what must agree.
      const got = lowRankProduct(U.get(d.name)!, S.get(d.name)!, V.get(d.name)!, st.rows, st.cols, st.r);
      const want = lowRankProduct(st.U, st.S, st.V, st.rows, st.cols, st.r);
      assertClose(Float32Array.from(got), Float32Array.from(want), { atol: 1e-5, rtol: 1e-3, what: `${what}: U·S·Vᵀ ${d.name}` });
      // E is bf16: where the GPU's f32 M̃ and the CPU's f64 one round to neighbouring bf16 values, one ulp (2⁻⁸),
      // and an entry that cancels (D − U·T·Vᵀ) keeps the absolute error of its terms: 1 % of the largest |E|.
      if (E) {
        const big = st.E!.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
        const tol = bf16 ? { atol: 1e-2 * big, rtol: 8e-3 } : { atol: 1e-5 * big, rtol: 1e-3 };
        assertClose(E.get(d.name)!, Float32Array.from(st.E!), { ...tol, what: `${what}: E ${d.name}` });
      }
    } else {
      // f32 resolution at the tensor's scale: an entry of m that cancels to near 0 keeps an absolute error of a
      // few ulps of the largest entries.
      const scale = (x: Float64Array) => x.reduce((a, y) => Math.max(a, Math.abs(y)), 0);
      assertClose(m.get(d.name)!, Float32Array.from(st.m!), { atol: Math.max(1e-9, 1e-6 * scale(st.m!)), rtol: 1e-4, what: `${what}: m ${d.name}` });
      assertClose(v.get(d.name)!, Float32Array.from(st.v!), { atol: Math.max(1e-12, 1e-6 * scale(st.v!)), rtol: 1e-4, what: `${what}: v ${d.name}` });
    }
  });
}

/** capturedEnergy() against the CPU reference's dense ‖U·S·Vᵀ‖² / ‖M̃‖²; dense-momentum tensors absent. */
async function assertEnergy(r: Awaited<ReturnType<typeof run>>, layout: Decl[], what: string) {
  const got = await r.opt.capturedEnergy();
  layout.forEach((d, k) => {
    const st = r.state[k];
    if (!st.factored || st.captured === null) {
      assert.ok(!got.has(d.name), `${what}: ${d.name} has no factored momentum, yet captured energy ${got.get(d.name)}`);
      return;
    }
    const g = got.get(d.name);
    assert.ok(g !== undefined, `${what}: no captured energy for ${d.name}`);
    assert.ok(g >= 0 && g <= 1, `${what}: captured energy of ${d.name} is ${g}`);
    assertClose([g], [st.captured], { atol: 2e-4, rtol: 1e-3, what: `${what}: captured energy ${d.name}` });
  });
}

describe('mao', () => {
  // With error feedback too: three factored records overflow a minimal table section (a defect that left the
  // dense-Adam tensors of the batch untouched).
  for (const errorFeedback of [false, true]) it(`matches the CPU reference: dense Adam path, factored primes, tall, rank 3, frozen, zero rows (refits and projections${errorFeedback ? ', error feedback' : ''})`, async () => {
    const r = await run(LAYOUT, { ...DEFAULTS, errorFeedback }, 5, { zeroRows: true });
    try {
      assert.deepEqual(
        LAYOUT.map((d) => r.opt.isFactored(d.name)),
        [false, true, true, false, true, true, false],
      );
      await assertMatches(r, LAYOUT, 'mao');
      await assertEnergy(r, LAYOUT, 'mao');
      assert.ok((await r.store.read('c.weight')).every(Number.isFinite), 'rows without gradient stay finite');
      const frozen = LAYOUT.findIndex((d) => d.frozen);
      assert.deepEqual(await r.store.read('e.weight'), randn(16, 7 + frozen, 0.3), 'a frozen tensor is untouched');
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  it('matches with the plain M̃ update (residual off): projections and refits, tall and zero rows', async () => {
    const r = await run(LAYOUT, { ...DEFAULTS, residual: false }, 4, { zeroRows: true });
    try {
      await assertMatches(r, LAYOUT, 'mao plain');
      await assertEnergy(r, LAYOUT, 'mao plain');
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  it('matches with a residual weight ρ = 0.3 (the gradient outside the subspaces damped)', async () => {
    const r = await run(LAYOUT, { ...DEFAULTS, residualWeight: 0.3 }, 4, { zeroRows: true });
    try {
      await assertMatches(r, LAYOUT, 'mao ρ 0.3');
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  for (const errorFeedbackPrecision of ['bf16', 'f32'] as const) it(`matches at 64×48, rank 8, with error feedback (E in ${errorFeedbackPrecision}), global-norm clipping and two power iterations`, async () => {
    const layout: Decl[] = [{ name: 'w', shape: [64, 48] }, { name: 'b', shape: [48] }];
    const cfg = { ...DEFAULTS, rank: 8, refitEvery: 3, powerIters: 2, errorFeedback: true, errorFeedbackPrecision };
    const r = await run(layout, cfg, 4, { gradScale: 0.5, maxGradNorm: 0.5 });
    try {
      await assertMatches(r, layout, 'mao r8 EF');
      await assertEnergy(r, layout, 'mao r8 EF');
      // With error feedback, U·S·Vᵀ + E is the dense momentum up to E's bf16 rounding (2⁻⁹ of |M̃| and of |E| per
      // step, decaying by β1): compare with a plain EMA of the clipped g.
      const [U, S, V, E] = await Promise.all(['U', 'S', 'V', 'E'].map(async (st) => (await r.opt.readState(st)).get('w')!));
      const low = lowRankProduct(U, S, V, 64, 48, 8);
      const ema = r.ema[0];
      const scale = ema.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      assertClose(Float32Array.from(low, (x, q) => x + E[q]), Float32Array.from(ema), { atol: 2e-2 * scale, rtol: 2e-2, what: 'U·S·Vᵀ + E vs the dense momentum' });
      // … and not the low-rank part alone (the test would pass without E otherwise).
      const err = (a: ArrayLike<number>) => Math.sqrt(Array.from(ema, (x, q) => (a[q] - x) ** 2).reduce((p, y) => p + y, 0));
      assert.ok(err(Float32Array.from(low, (x, q) => x + E[q])) < 0.05 * err(low), 'E carries the momentum the rank-8 factors miss');
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  it('without error feedback the projection keeps the factors: refit every step equals the CPU too (64×48, rank 8)', async () => {
    const layout: Decl[] = [{ name: 'w', shape: [64, 48] }];
    const r = await run(layout, { ...DEFAULTS, rank: 8, refitEvery: 1, powerIters: 0 }, 3);
    try {
      await assertMatches(r, layout, 'mao r8 refit every step');
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  for (const ef of [null, 'bf16', 'f32'] as const) it(`batches: several bindings, more columns and rows than a workgroup, a frozen tensor unfrozen midway (batched kernels; error feedback ${ef ? `on, E in ${ef}: odd sizes pair their E` : 'off'})`, async () => {
    const errorFeedback = ef !== null;
    // 4 KiB bindings: every tensor below is its own batch or shares one with a neighbour; 7×300 has more columns
    // than a workgroup has invocations, 257×5 more rows; 3×40 at rank 4 is a dense-Adam matrix (min 3 ≤ 4).
    const layout: Decl[] = [
      { name: 'p.weight', shape: [7, 300] },
      { name: 'q.weight', shape: [257, 5] },
      { name: 'q.bias', shape: [5] },
      { name: 's.weight', shape: [3, 40] },
      { name: 't.weight', shape: [11, 13], frozen: true },
      { name: 'u.weight', shape: [19, 23] },
    ];
    const cfg = { ...DEFAULTS, rank: 4, refitEvery: 3, errorFeedback, errorFeedbackPrecision: ef ?? 'bf16' };
    const r = await run(layout, cfg, 6, {
      maxBindingBytes: 4096,
      beforeStep: (t, store, cpu) => {
        if (t !== 3) return; // progressive unfreezing: t.weight trains from step 3 on
        store.setFlags('t.weight', { frozen: false });
        cpu[4].frozen = false;
      },
    });
    try {
      assert.deepEqual(layout.map((d) => r.opt.isFactored(d.name)), [true, true, false, false, true, true]);
      assert.ok(r.opt.batchCount >= 3, `${r.opt.batchCount} batches`);
      await assertMatches(r, layout, `mao batched${errorFeedback ? ' EF' : ''}`);
      await assertEnergy(r, layout, `mao batched${errorFeedback ? ' EF' : ''}`);
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  it('captured energy: absent before any step; 1 when the rank holds the whole momentum; below 1 when it cannot', async () => {
    const rt = await runtime();
    const store = new ParameterStore();
    store.add('lowrank', [20, 12]);
    store.add('full', [20, 12]);
    store.add('bias', [12]);
    store.materialize(rt);
    const opt = new Mao(store, { rank: 3, refitEvery: 100, betas: [0.9, 0.99] });
    try {
      assert.equal((await opt.capturedEnergy()).size, 0, 'no step, no momentum');
      // A rank-2 gradient fits rank 3 exactly: the refit at step 1 holds all of M̃ = (1−β1)·g.
      const a = randn(20 * 2, 3);
      const b = randn(2 * 12, 4);
      const low = new Float32Array(20 * 12);
      for (let i = 0; i < 20; i++) for (let j = 0; j < 12; j++) low[i * 12 + j] = a[2 * i] * b[j] + a[2 * i + 1] * b[12 + j];
      store.grads.load('lowrank', low);
      store.grads.load('full', randn(240, 5));
      store.grads.load('bias', randn(12, 6));
      opt.step(0.01);
      const e = await opt.capturedEnergy();
      assert.deepEqual([...e.keys()].sort(), ['full', 'lowrank']);
      assert.ok(Math.abs(e.get('lowrank')! - 1) < 1e-4, `rank-2 momentum at rank 3: ${e.get('lowrank')}`);
      assert.ok(e.get('full')! < 0.9, `a random 20×12 momentum at rank 3: ${e.get('full')}`);
      // Step 2 projects a new random gradient on the kept subspaces: the rank-2 tensor now holds less.
      store.grads.load('lowrank', randn(240, 7));
      opt.step(0.01);
      assert.ok((await opt.capturedEnergy()).get('lowrank')! < 0.999);
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('the GPU refit captures ≥ 0.99 of a dense SVD\'s rank-r energy on a matrix with a decaying spectrum', async () => {
    const rt = await runtime();
    const m = 40;
    const n = 30;
    const rank = 6;
    // G = Q1·diag(0.6^k)·Q2ᵀ with random orthonormal Q1, Q2 (from the Jacobi solver on random Gram matrices).
    const orthonormal = (k: number, seed: number) => {
      const A = randn(k * k, seed);
      const sym = new Float64Array(k * k).map((_, i) => A[i] + A[(i % k) * k + Math.floor(i / k)]);
      return jacobiEigen(sym, k).vectors;
    };
    const Q1 = orthonormal(m, 11);
    const Q2 = orthonormal(n, 12);
    const G = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += Q1[i * m + k] * 0.6 ** k * Q2[j * n + k];
      G[i * n + j] = acc;
    }
    const best = bestRankEnergy(G, m, n, rank);
    let total = 0;
    for (const x of G) total += x * x;
    const want = Array.from({ length: rank }, (_, k) => 0.36 ** k).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(best - want) < 1e-4 * want, `the Jacobi solver's rank-${rank} energy ${best} vs the spectrum's ${want}`);
    // CPU refit (the reference) from a zero start.
    const cpuF = cpuRefit(Float64Array.from(G), m, n, rank, 1, new Float64Array(n * rank), 5);
    const cpuRatio = lowRankEnergy(cpuF.U, cpuF.S, cpuF.V, m, n, rank) / best;
    assert.ok(cpuRatio >= 0.99, `CPU refit captured ${cpuRatio} of the best rank-${rank} energy`);
    // GPU: β1 = 0 makes M̃ = g, so step 1's refit factors g itself (without error feedback: with it, the refit
    // factors bf16(g), which the CPU-reference tests cover).
    const store = new ParameterStore();
    store.add('w', [m, n], new Float32Array(m * n));
    store.materialize(rt);
    const opt = new Mao(store, { betas: [0, 0.99], rank, powerIters: 1, errorFeedback: false });
    try {
      store.grads.load('w', G);
      opt.step(0);
      const U = (await opt.readState('U')).get('w')!;
      const S = (await opt.readState('S')).get('w')!;
      const V = (await opt.readState('V')).get('w')!;
      const captured = lowRankEnergy(U, S, V, m, n, rank);
      const ratio = captured / best;
      assert.ok(ratio >= 0.99 && ratio <= 1 + 1e-4, `GPU refit captured ${ratio} of the best rank-${rank} energy (${captured / total} of ‖M̃‖², the SVD ${best / total})`);
      // U and V come out orthonormal, so ‖U·S·Vᵀ‖ = ‖S‖ (and the statistics' exact formula agrees).
      for (const [X, rows] of [[U, m], [V, n]] as const) {
        for (let a = 0; a < rank; a++) for (let b = 0; b < rank; b++) {
          let dot = 0;
          for (let i = 0; i < rows; i++) dot += X[i * rank + a] * X[i * rank + b];
          assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-4, `column ${a}·${b} = ${dot}`);
        }
      }
      const sNorm = Math.sqrt(S.reduce((a, x) => a + x * x, 0));
      assert.ok(Math.abs(lowRankNorm(U, S, V, m, n) - sNorm) < 1e-4 * sNorm);
      assert.ok(Math.abs(lowRankNorm(U, S, V, m, n) - Math.sqrt(captured)) < 1e-6 * Math.sqrt(captured));
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('skips a non-finite step entirely (weights and every state untouched)', async () => {
    const r = await run(LAYOUT, DEFAULTS, 2);
    try {
      const before = await r.store.readAll();
      const snap = await r.opt.snapshot();
      const g = r.cpu[1].g.slice();
      g[5] = NaN;
      r.store.grads.load('b.weight', g);
      r.opt.step(0.02); // step 3: a refit step, also skipped
      const after = await r.store.readAll();
      for (const [k, w] of before) assert.deepEqual(after.get(k), w, `${k} moved on a NaN step`);
      for (const [st, map] of Object.entries(snap.buffers)) {
        const back = await r.opt.readState(st);
        for (const [k, x] of map) assert.deepEqual(back.get(k), x, `${st} of ${k} changed on a NaN step`);
      }
    } finally {
      r.opt.destroy();
      r.store.destroy();
    }
  });

  for (const ef of [null, 'bf16', 'f32'] as const) it(`resumes bit for bit from snapshot() → loadState() (through a projection and a refit step, error feedback ${ef ? `on, E in ${ef}` : 'off'})`, async () => {
    const layout: Decl[] = [...LAYOUT, { name: 'g.weight', shape: [64, 48] }];
    const cfg = { ...DEFAULTS, errorFeedback: ef !== null, errorFeedbackPrecision: ef ?? 'bf16' };
    const a = await run(layout, cfg, 3);
    const snap = await a.opt.snapshot();
    const weights = await a.store.readAll();
    const b = new ParameterStore();
    for (const s of layout) b.add(s.name, s.shape, weights.get(s.name)!, { decay: s.decay, frozen: s.frozen });
    b.materialize(a.rt);
    const opt2 = new Mao(b, toOpts(cfg));
    opt2.loadState({ step: snap.step, buffers: snap.buffers });
    try {
      for (const [st, map] of Object.entries(snap.buffers)) {
        const back = await opt2.readState(st);
        for (const [k, x] of map) assert.deepEqual(back.get(k), x, `${st} ${k}`);
      }
      for (let t = 0; t < 2; t++) {
        for (const [store, opt] of [[a.store, a.opt], [b, opt2]] as const) {
          a.cpu.forEach((x, i) => store.grads.load(x.name, randn(x.g.length, 999 + 10 * t + i, 0.05)));
          opt.step(0.01);
        }
      }
      for (const s of layout) assert.deepEqual(await b.read(s.name), await a.store.read(s.name), `${s.name} after the resumed steps`);
      const declared = opt2.stateTensors().map((d) => `${d.state}.${d.param}:${d.shape.reduce((x, y) => x * y, 1)}`).sort();
      const held = Object.entries(snap.buffers).flatMap(([st, m]) => [...m].map(([p, x]) => `${st}.${p}:${x.length}`)).sort();
      assert.deepEqual(held, declared);
      assert.equal(opt2.stateBytes, opt2.stateTensors().reduce((s, d) => s + stateElementBytes(d) * d.shape.reduce((x, y) => x * y, 1), 0), 'stateBytes = what the checkpoint holds');
      assert.throws(() => opt2.loadState({ step: 1, buffers: { ...snap.buffers, S: new Map() } }), /mao: the snapshot has no S for 'b\.weight'/);
    } finally {
      a.opt.destroy();
      a.store.destroy();
      opt2.destroy();
      b.destroy();
    }
  });

  it('keeps a 512×512 weight at rank 32 in at most half of AdamW\'s state', async () => {
    const rt = await runtime();
    const store = new ParameterStore();
    store.add('w', [512, 512]);
    store.materialize(rt);
    const mao = new Mao(store, { rank: 32, errorFeedback: false });
    const maoEf = new Mao(store, { rank: 32 });
    const adam = new AdamW(store);
    try {
      assert.equal(adam.stateBytes, 8 * 512 * 512);
      assert.equal(mao.stateBytes, 4 * ((512 + 512) * 32 + 32 * 32 + 512 + 512));
      assert.ok(mao.stateBytes <= 0.5 * adam.stateBytes, `${mao.stateBytes} B vs AdamW ${adam.stateBytes} B`);
      // The default keeps E in bf16: 2 bytes per weight more, still at most half of AdamW's.
      assert.equal(maoEf.stateBytes, mao.stateBytes + 2 * 512 * 512);
      assert.ok(maoEf.stateBytes <= 0.5 * adam.stateBytes, `${maoEf.stateBytes} B vs AdamW ${adam.stateBytes} B`);
      assert.deepEqual(maoLayout([512, 512], 32), { rows: 512, cols: 512, factored: true });
      assert.deepEqual(maoLayout([32, 512], 32), { rows: 32, cols: 512, factored: false });
    } finally {
      mao.destroy();
      maoEf.destroy();
      adam.destroy();
      store.destroy();
    }
  });

  it('gives the statistics its low-rank momentum (‖U·S·Vᵀ‖) and factored second moment', async () => {
    const r = await run(LAYOUT, DEFAULTS, 2);
    const stats = new LayerStatsCollector(r.rt, r.store, r.opt);
    try {
      r.cpu.forEach((x, i) => r.store.grads.load(x.name, randn(x.g.length, 555 + i, 0.05)));
      r.opt.step(0.02);
      await stats.sample(3);
      const frame = stats.latest!;
      const [U, S, V, m, R] = await Promise.all(['U', 'S', 'V', 'm', 'R'].map((s) => r.opt.readState(s)));
      for (const d of LAYOUT) {
        const got = frame.tensors.find((t) => t.name === d.name)!;
        let want: number;
        if (r.opt.isFactored(d.name)) {
          const { rows, cols } = maoLayout(d.shape, DEFAULTS.rank);
          want = Math.sqrt(lowRankEnergy(U.get(d.name)!, S.get(d.name)!, V.get(d.name)!, rows, cols, DEFAULTS.rank));
          assert.ok(R.get(d.name)!.length === rows);
        } else want = Math.sqrt(m.get(d.name)!.reduce((a, x) => a + x * x, 0));
        if (!d.frozen) assert.ok(want > 0, `${d.name} has momentum`);
        assertClose([got.scalars.momentumNorm], [want], { atol: 1e-9, rtol: 1e-5, what: `momentumNorm ${d.name}` });
        assert.ok(Number.isFinite(got.scalars.vMean));
      }
    } finally {
      stats.destroy();
      r.opt.destroy();
      r.store.destroy();
    }
  });

  it('refuses bad hyperparameters as config errors from the schema', () => {
    const yaml = (opt: string) =>
      `name: x\nmodel: { type: transformer, vocab: 8, dModel: 8, layers: 1, heads: 1, seqLen: 4 }\n` +
      `data: { type: synthetic-sequences, sequences: 10, length: 5 }\ntrain: { steps: 1, batchSize: 2, optimizer: ${opt} }\n`;
    assert.deepEqual(validateConfigText(yaml('{ type: mao, rank: 8 }'), 'x.basin.yaml'), []);
    for (const bad of ['{ type: mao, rank: -1 }', '{ type: mao, betas: [1.0, 0.9] }', '{ type: mao, rank: 2.5 }', '{ type: mao, refitEvery: 0 }']) {
      const d = validateConfigText(yaml(bad), 'x.basin.yaml');
      assert.ok(d.length > 0, `${bad} should be a config error`);
    }
    assert.deepEqual(validateConfigText(yaml('{ type: mao, errorFeedbackPrecision: f32 }'), 'x.basin.yaml'), []);
    const d = validateConfigText(yaml('{ type: mao, errorFeedbackPrecision: f16 }'), 'x.basin.yaml');
    assert.ok(d.some((x) => /errorFeedbackPrecision/.test(JSON.stringify(x)) && /bf16/.test(JSON.stringify(x))), `f16 is refused naming the field and the choices: ${JSON.stringify(d)}`);
  });
});
