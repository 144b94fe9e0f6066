// Flat parameter store, AdamW, SGD, gradient norms/clipping and the non-finite guard, against the CPU references
// in src/engine/cpu/optim.ts, on an awkward layout (sizes 1, 7, 1000, 65537; ranks 1 and 2; one frozen tensor;
// decay forced on and off against the rank default) and on a layout chunked by a small artificial binding limit.
import * as assert from 'node:assert/strict';
import { assertClose, randn, runtime } from './helpers';
import type { Runtime } from '../../src/engine/gpu/runtime';
import { AdamW, AdamWOptions } from '../../src/engine/optim/adamw';
import { SGD, SGDOptions } from '../../src/engine/optim/sgd';
import { FLAT_ALIGN, FLAT_BLOCK, ParameterStore, SEG_DECAY, SEG_FROZEN } from '../../src/engine/optim/params';
import { warmupCosine } from '../../src/engine/optim/schedule';
import { CpuParam, cpuAdamWStep, cpuGradSumsq, cpuSgdStep } from '../../src/engine/cpu/optim';

interface Spec {
  name: string;
  shape: number[];
  decay?: boolean;
  frozen?: boolean;
}

const LAYOUT: Spec[] = [
  { name: 'emb.weight', shape: [65537, 1] }, // prime size, many blocks, rank 2 → decay
  { name: 'blocks.0.attn.q.weight', shape: [40, 25] }, // 1000, rank 2 → decay
  { name: 'blocks.0.attn.q.bias', shape: [7] }, // rank 1 → no decay
  { name: 'blocks.0.norm.weight', shape: [1] }, // size 1
  { name: 'blocks.1.attn.q.weight', shape: [7, 1], frozen: true },
  { name: 'blocks.1.mlp.bias', shape: [1000], decay: true }, // rank 1 with decay forced on
  { name: 'head.weight', shape: [1, 7], decay: false }, // rank 2 with decay forced off
];

const size = (s: Spec) => s.shape.reduce((a, b) => a * b, 1);

/** A materialized store and a CPU mirror holding the same initial values. */
function build(rt: Runtime, maxBindingBytes?: number, layout = LAYOUT): { store: ParameterStore; cpu: CpuParam[] } {
  const store = new ParameterStore();
  const cpu: CpuParam[] = [];
  layout.forEach((s, i) => {
    const init = randn(size(s), 100 + i, 0.5);
    store.add(s.name, s.shape, init, { decay: s.decay, frozen: s.frozen });
    cpu.push({ name: s.name, p: init.slice(), g: new Float32Array(size(s)), decay: s.decay ?? s.shape.length >= 2, frozen: s.frozen ?? false });
  });
  store.materialize(rt, { maxBindingBytes });
  return { store, cpu };
}

/** Fresh random gradients (frozen ones large, so that counting them in the total would show). */
function setGrads(store: ParameterStore, cpu: CpuParam[], seed: number, scale = 0.1): void {
  cpu.forEach((x, i) => {
    const g = randn(x.g.length, seed * 31 + i, x.frozen ? 50 * scale : scale * (1 + i));
    x.g.set(g);
    store.grads.load(x.name, g);
  });
}

function poke(store: ParameterStore, cpu: CpuParam[], name: string, index: number, value: number): void {
  const x = cpu.find((c) => c.name === name)!;
  x.g[index] = value;
  store.grads.load(name, x.g);
}

async function assertParams(store: ParameterStore, cpu: CpuParam[], what: string, tol = { atol: 2e-5, rtol: 1e-4 }): Promise<void> {
  const all = await store.readAll();
  for (const x of cpu) assertClose(all.get(x.name)!, x.p, { ...tol, what: `${what}: ${x.name}` });
}

function dispatches(rt: Runtime, key: string): number {
  return rt.counters.byKernel.get(key) ?? 0;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describe('flat parameter store', () => {
  it('lays tensors out at 256-byte offsets with views, flags, a segments table and globs', async () => {
    const rt = await runtime();
    const { store, cpu } = build(rt);
    try {
      const es = store.entries;
      assert.deepEqual(es.map((e) => e.name), LAYOUT.map((s) => s.name));
      let end = 0;
      for (const e of es) {
        assert.equal(e.offset % FLAT_ALIGN, 0, `${e.name} offset ${e.offset} is not 256-byte aligned`);
        assert.ok(e.offset >= end, `${e.name} overlaps the previous tensor`);
        end = e.offset + e.size;
      }
      assert.equal(store.totalElements, Math.ceil(end / FLAT_ALIGN) * FLAT_ALIGN);
      assert.equal(store.bytes, store.totalElements * 4);
      assert.equal(store.parameterCount, LAYOUT.reduce((a, s) => a + size(s), 0));
      assert.deepEqual(es.map((e) => e.flags.decay), [true, true, false, false, true, true, false]);
      assert.deepEqual(es.map((e) => e.flags.frozen), [false, false, false, false, true, false, false]);

      const q = store.get('blocks.0.attn.q.weight');
      assert.deepEqual([...q.shape], [40, 25]);
      assert.equal(q.name, 'blocks.0.attn.q.weight');
      assert.equal(q.requiresGrad, true);
      assert.equal(q.storage.buffer, store.params.buffer);
      assert.equal(q.storage.offset, store.entry('blocks.0.attn.q.weight').offset * 4);
      assert.equal(q.grad!.storage.buffer, store.grads.buffer);
      assert.equal(q.grad!.storage.offset, q.storage.offset);
      const frozen = store.get('blocks.1.attn.q.weight');
      assert.equal(frozen.requiresGrad, false);
      assert.equal(frozen.frozen, true);

      // The views read what was uploaded (a tensor's own binding, not the store's read path).
      assert.deepEqual(await q.toFloat32(), cpu[1].p, 'view of q');
      assert.deepEqual(await store.read('emb.weight'), cpu[0].p, 'read emb');
      const bias = Float32Array.from({ length: 7 }, (_, i) => i - 3);
      store.load('blocks.0.attn.q.bias', bias);
      assert.deepEqual(await store.get('blocks.0.attn.q.bias').toFloat32(), bias, 'load');
      assert.throws(() => store.load('blocks.0.attn.q.bias', new Float32Array(6)), /6 elements.*\[7\]/);
      assert.throws(() => store.get('blocks.0.attn.k.bias'), /no parameter named/);

      const seg = new Uint32Array(await rt.readBytes(store.segments));
      let firstBlock = 0;
      for (const e of es) {
        const flags = (e.flags.decay ? SEG_DECAY : 0) | (e.flags.frozen ? SEG_FROZEN : 0);
        assert.deepEqual([...seg.slice(e.index * 4, e.index * 4 + 4)], [e.offset, e.size, flags, firstBlock], `segment of ${e.name}`);
        firstBlock += Math.ceil(e.size / FLAT_BLOCK);
      }
      assert.equal(store.numBlocks, firstBlock);

      assert.deepEqual(store.match('blocks.*.attn.*').map((e) => e.name), ['blocks.0.attn.q.weight', 'blocks.0.attn.q.bias', 'blocks.1.attn.q.weight']);
      assert.deepEqual(store.match('*.bias').map((e) => e.name), ['blocks.0.attn.q.bias', 'blocks.1.mlp.bias']);
      assert.deepEqual(store.match('blocks.?.norm.weight').map((e) => e.name), ['blocks.0.norm.weight']);
      assert.deepEqual(store.match('emb'), []);
    } finally {
      store.destroy();
    }
  });

  it('zeroGrads clears the whole gradient buffer in binding-sized dispatches', async () => {
    const rt = await runtime();
    const maxBinding = 64 * 1024;
    const { store, cpu } = build(rt, maxBinding);
    try {
      setGrads(store, cpu, 1);
      const before = await store.grads.readFlat();
      assert.ok(before.some((x) => x !== 0), 'the test gradients are zero already');
      const n0 = dispatches(rt, 'elementwise:fill');
      store.zeroGrads();
      const after = await store.grads.readFlat();
      const expectedDispatches = Math.ceil(store.totalElements / (maxBinding / 4));
      assert.ok(expectedDispatches > 1);
      assert.equal(dispatches(rt, 'elementwise:fill') - n0, expectedDispatches);
      const nz = after.findIndex((x) => x !== 0);
      assert.equal(nz, -1, `gradient element ${nz} is ${after[nz]} after zeroGrads`);
    } finally {
      store.destroy();
    }
  });

  it('setFlags freezes by glob at run time: no update, no gradient', async () => {
    const rt = await runtime();
    const { store, cpu } = build(rt);
    const opt = new SGD(store, { momentum: 0 });
    try {
      for (const e of store.match('blocks.0.attn.*')) store.setFlags(e.name, { frozen: true });
      for (const x of cpu) if (x.name.startsWith('blocks.0.attn.')) x.frozen = true;
      assert.equal(store.get('blocks.0.attn.q.weight').requiresGrad, false);
      setGrads(store, cpu, 2);
      opt.step(0.1);
      cpuSgdStep(cpu, [], 1, 0.1, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 });
      await assertParams(store, cpu, 'after freezing blocks.0.attn.*');
      assert.deepEqual(await store.read('blocks.0.attn.q.weight'), cpu[1].p);
    } finally {
      opt.destroy();
      store.destroy();
    }
  });
});

describe('AdamW over the flat buffer', () => {
  const sched = warmupCosine(1e-2, { warmupSteps: 2, totalSteps: 6, minLrRatio: 0.1 });

  async function runAdam(maxBindingBytes: number | undefined, opts: AdamWOptions, gradScale: (step: number) => number, steps: number) {
    const rt = await runtime();
    const { store, cpu } = build(rt, maxBindingBytes);
    const opt = new AdamW(store, { betas: [ADAM.beta1, ADAM.beta2], eps: ADAM.eps, weightDecay: ADAM.weightDecay, ...opts });
    const m = cpu.map((x) => new Float32Array(x.p.length));
    const v = cpu.map((x) => new Float32Array(x.p.length));
    const frozen0 = cpu[4].p.slice();
    for (let t = 1; t <= steps; t++) {
      setGrads(store, cpu, 10 + t, gradScale(t));
      opt.step(sched(t));
      assert.ok(cpuAdamWStep(cpu, m, v, t, sched(t), { ...ADAM, weightDecay: opts.weightDecay ?? ADAM.weightDecay, maxGradNorm: opts.maxGradNorm }));
    }
    return { rt, store, cpu, opt, m, v, frozen0 };
  }

  it('matches the CPU reference over several steps without clipping (mixed decay, one frozen)', async () => {
    const { store, cpu, opt, m, v, frozen0 } = await runAdam(undefined, {}, () => 0.1, 5);
    try {
      await assertParams(store, cpu, 'AdamW');
      const snap = await opt.snapshot();
      assert.equal(snap.step, 5);
      cpu.forEach((x, k) => {
        assertClose(snap.buffers.m.get(x.name)!, m[k], { atol: 1e-6, rtol: 1e-4, what: `m ${x.name}` });
        assertClose(snap.buffers.v.get(x.name)!, v[k], { atol: 1e-8, rtol: 1e-4, what: `v ${x.name}` });
      });
      assert.deepEqual(await store.read('blocks.1.attn.q.weight'), frozen0, 'a frozen tensor moved');
      // Weight decay is large enough here to be seen: without it the reference would land elsewhere.
      const noDecay = await runAdam(undefined, { weightDecay: 0 }, () => 0.1, 5);
      assert.ok(maxAbsDiff(noDecay.cpu[0].p, cpu[0].p) > 1e-4, 'weight decay has no visible effect in this test');
      noDecay.opt.destroy();
      noDecay.store.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('clips the global norm on the GPU (frozen gradients excluded from the norm)', async () => {
    // Gradient scales that change from step to step, so that clipping changes Adam's direction (a constant clip
    // factor would cancel in m/√v).
    const scale = (t: number) => 0.02 * 4 ** t;
    const clipped = await runAdam(undefined, { maxGradNorm: 1 }, scale, 4);
    try {
      await assertParams(clipped.store, clipped.cpu, 'AdamW clipped');
      const report = await clipped.opt.gradNorms.readAsync();
      const want = cpuGradSumsq(clipped.cpu);
      assertClose(report.sumsq, want.sumsq, { atol: 1e-6, rtol: 1e-5, what: 'per-tensor Σg²' });
      assertClose([report.totalSumsq], [want.total], { atol: 1e-6, rtol: 1e-5, what: 'total Σg² (frozen excluded)' });
      assert.ok(report.total > 1, 'clipping was not active');
      assert.ok(report.finite);
      assert.equal(report.firstNonFinite(), null);
      assertClose([report.norm('blocks.0.attn.q.bias')], [Math.sqrt(want.sumsq[2])], { rtol: 1e-5, what: 'norm by name' });
      // The unclipped reference differs: the test can tell clipping from no clipping.
      const free = await runAdam(undefined, {}, scale, 4);
      assert.ok(maxAbsDiff(free.cpu[1].p, clipped.cpu[1].p) > 1e-3, 'clipping has no visible effect in this test');
      free.opt.destroy();
      free.store.destroy();
    } finally {
      clipped.opt.destroy();
      clipped.store.destroy();
    }
  });

  it('sliceOf reads one layer of the optimizer state without a copy', async () => {
    const { store, cpu, opt, m, v } = await runAdam(undefined, {}, () => 0.1, 2);
    try {
      const name = 'blocks.0.attn.q.weight';
      const k = cpu.findIndex((x) => x.name === name);
      const mq = store.sliceOf(opt.m, name);
      assert.deepEqual([...mq.shape], [40, 25]);
      assert.equal(mq.storage.buffer, opt.m.buffer);
      assertClose(await mq.toFloat32(), m[k], { atol: 1e-6, rtol: 1e-4, what: 'm slice' });
      assertClose(await opt.v.slice('blocks.1.mlp.bias').toFloat32(), v[5], { atol: 1e-8, rtol: 1e-4, what: 'v slice' });
      assertClose(await store.sliceOf(store.params, 'head.weight').toFloat32(), cpu[6].p, { atol: 2e-5, rtol: 1e-4, what: 'param slice' });
      const other = new ParameterStore();
      other.add('x', [1]);
      other.materialize((await runtime()));
      assert.throws(() => store.sliceOf(other.params, 'x'), /another parameter store/);
      other.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('resumes bit for bit from snapshot() → loadState()', async () => {
    const rt = await runtime();
    const a = await runAdam(undefined, { maxGradNorm: 5 }, () => 0.1, 3);
    const { store: sb } = build(rt);
    const b = new AdamW(sb, { betas: [ADAM.beta1, ADAM.beta2], eps: ADAM.eps, weightDecay: ADAM.weightDecay, maxGradNorm: 5 });
    try {
      sb.params.loadAll(await a.store.readAll());
      b.loadState(await a.opt.snapshot());
      assert.equal(b.stepCount, 3);
      assert.throws(() => b.loadState({ step: 1, buffers: { m: new Float32Array(sb.totalElements) } }), /\[m, v\]/);
      setGrads(a.store, a.cpu, 99);
      setGrads(sb, a.cpu, 99);
      a.opt.step(3e-3);
      b.step(3e-3);
      assert.deepEqual(await sb.params.readFlat(), await a.store.params.readFlat());
      assert.deepEqual(await b.v.readFlat(), await a.opt.v.readFlat());
    } finally {
      a.opt.destroy();
      a.store.destroy();
      b.destroy();
      sb.destroy();
    }
  });
});

describe('SGD over the flat buffer', () => {
  const configs: (SGDOptions & { what: string })[] = [
    { what: 'momentum 0.9, Nesterov, decay 0.05, clip 2', momentum: 0.9, nesterov: true, weightDecay: 0.05, maxGradNorm: 2 },
    { what: 'momentum 0.8, dampening 0.3, decay 0.1', momentum: 0.8, dampening: 0.3, weightDecay: 0.1 },
    { what: 'plain, decay 0.05', momentum: 0, weightDecay: 0.05 },
  ];
  for (const c of configs) {
    it(`matches the CPU reference: ${c.what}`, async () => {
      const rt = await runtime();
      const { store, cpu } = build(rt);
      const opt = new SGD(store, c);
      const buf = cpu.map((x) => new Float32Array(x.p.length));
      const ref = { momentum: c.momentum ?? 0, dampening: c.dampening ?? 0, nesterov: c.nesterov ?? false, weightDecay: c.weightDecay ?? 0, maxGradNorm: c.maxGradNorm };
      try {
        for (let t = 1; t <= 4; t++) {
          setGrads(store, cpu, 40 + t, 0.05 * t);
          opt.step(0.05);
          assert.ok(cpuSgdStep(cpu, buf, t, 0.05, ref));
        }
        await assertParams(store, cpu, `SGD ${c.what}`);
        if (opt.buf) {
          const got = await opt.buf.readAll();
          cpu.forEach((x, k) => assertClose(got.get(x.name)!, buf[k], { atol: 1e-5, rtol: 1e-4, what: `momentum ${x.name}` }));
        } else assert.deepEqual(opt.state(), {});
        if (c.maxGradNorm) {
          const report = await opt.gradNorms.readAsync();
          assert.ok(report.total > c.maxGradNorm, 'clipping was not active');
        }
      } finally {
        opt.destroy();
        store.destroy();
      }
    });
  }
});

describe('non-finite gradients', () => {
  it('a NaN in one tensor skips the whole step and firstNonFinite names it', async () => {
    const rt = await runtime();
    const { store, cpu } = build(rt);
    const opt = new AdamW(store, { betas: [ADAM.beta1, ADAM.beta2], eps: ADAM.eps, weightDecay: ADAM.weightDecay, maxGradNorm: 1 });
    const m = cpu.map((x) => new Float32Array(x.p.length));
    const v = cpu.map((x) => new Float32Array(x.p.length));
    const cfg = { ...ADAM, maxGradNorm: 1 };
    try {
      setGrads(store, cpu, 1);
      opt.step(1e-2);
      cpuAdamWStep(cpu, m, v, 1, 1e-2, cfg);
      const params = await store.params.readFlat();
      const m1 = await opt.m.readFlat();
      const v1 = await opt.v.readFlat();

      // Step 2: NaN in the bias, +Inf later in the layout: the first one is named.
      setGrads(store, cpu, 2);
      poke(store, cpu, 'blocks.0.attn.q.bias', 3, NaN);
      poke(store, cpu, 'blocks.1.mlp.bias', 999, Infinity);
      opt.step(1e-2);
      assert.equal(cpuAdamWStep(cpu, m, v, 2, 1e-2, cfg), false);
      const report = await opt.gradNorms.readAsync();
      assert.equal(report.finite, false);
      assert.equal(report.firstNonFinite(), 'blocks.0.attn.q.bias');
      assert.ok(Number.isFinite(report.sumsq[0]), 'a finite tensor reads as non-finite');
      assert.deepEqual(await store.params.readFlat(), params, 'weights changed on a NaN step');
      assert.deepEqual(await opt.m.readFlat(), m1, 'm changed on a NaN step');
      assert.deepEqual(await opt.v.readFlat(), v1, 'v changed on a NaN step');

      // Step 3: only +Inf, in the big tensor's last block.
      setGrads(store, cpu, 3);
      poke(store, cpu, 'emb.weight', 65536, -Infinity);
      opt.step(1e-2);
      assert.equal(cpuAdamWStep(cpu, m, v, 3, 1e-2, cfg), false);
      assert.equal((await opt.gradNorms.readAsync()).firstNonFinite(), 'emb.weight');
      assert.deepEqual(await store.params.readFlat(), params, 'weights changed on an Inf step');

      // Step 4: a NaN in the frozen tensor's gradient is never applied, so it must not stop training.
      setGrads(store, cpu, 4);
      poke(store, cpu, 'blocks.1.attn.q.weight', 0, NaN);
      opt.step(1e-2);
      assert.equal(cpuAdamWStep(cpu, m, v, 4, 1e-2, cfg), true);
      const r4 = await opt.gradNorms.readAsync();
      assert.equal(r4.finite, true);
      assert.equal(r4.firstNonFinite(), null);
      await assertParams(store, cpu, 'after skipped steps');
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('SGD skips a NaN step too; with the guard off the NaN goes through', async () => {
    const rt = await runtime();
    const { store, cpu } = build(rt);
    const guarded = new SGD(store, { momentum: 0.9 });
    try {
      setGrads(store, cpu, 5);
      poke(store, cpu, 'head.weight', 6, NaN);
      const before = await store.params.readFlat();
      guarded.step(0.1);
      assert.deepEqual(await store.params.readFlat(), before);
      assert.equal((await guarded.gradNorms.readAsync()).firstNonFinite(), 'head.weight');
      guarded.destroy();
      const unguarded = new SGD(store, { momentum: 0.9, skipNonFinite: false });
      unguarded.step(0.1);
      const head = await store.read('head.weight');
      assert.ok(Number.isNaN(head[6]), 'the unguarded step did not apply the NaN (is the guard always on?)');
      assert.ok(Number.isFinite(head[5]));
      unguarded.destroy();
    } finally {
      store.destroy();
    }
  });
});

describe('layouts larger than one binding', () => {
  it('chunks AdamW, SGD and the grad norms at block boundaries and matches the CPU reference', async () => {
    const rt = await runtime();
    const maxBinding = 16 * 1024; // 4 blocks per binding; emb.weight alone spans 17 chunks
    const { store, cpu } = build(rt, maxBinding);
    const opt = new AdamW(store, { betas: [ADAM.beta1, ADAM.beta2], eps: ADAM.eps, weightDecay: ADAM.weightDecay, maxGradNorm: 1 });
    const m = cpu.map((x) => new Float32Array(x.p.length));
    const v = cpu.map((x) => new Float32Array(x.p.length));
    try {
      const chunks = store.chunks;
      assert.ok(chunks.length > 1);
      let nextBlock = 0;
      for (const c of chunks) {
        assert.ok(c.elems * 4 <= maxBinding, `chunk at ${c.elemBase} binds ${c.elems * 4} bytes`);
        assert.equal((c.elemBase * 4) % 256, 0);
        assert.equal(c.blockBase, nextBlock);
        nextBlock += c.numBlocks;
      }
      assert.equal(nextBlock, store.numBlocks);
      const emb = store.entry('emb.weight');
      assert.ok(chunks.some((c) => c.elemBase > emb.offset && c.elemBase < emb.offset + emb.size), 'no chunk boundary inside a tensor');

      const n0 = dispatches(rt, 'optim:adamw');
      const g0 = dispatches(rt, 'gradnorm:sumsq_blocks');
      for (let t = 1; t <= 3; t++) {
        setGrads(store, cpu, 70 + t, 0.1 * t);
        opt.step(1e-2);
        cpuAdamWStep(cpu, m, v, t, 1e-2, { ...ADAM, maxGradNorm: 1 });
      }
      assert.equal(dispatches(rt, 'optim:adamw') - n0, 3 * chunks.length);
      assert.equal(dispatches(rt, 'gradnorm:sumsq_blocks') - g0, 3 * chunks.length);
      await assertParams(store, cpu, 'chunked AdamW');
      const report = await opt.gradNorms.readAsync();
      assertClose(report.sumsq, cpuGradSumsq(cpu).sumsq, { atol: 1e-6, rtol: 1e-5, what: 'chunked Σg²' });
      const mAll = await opt.m.readAll();
      cpu.forEach((x, k) => assertClose(mAll.get(x.name)!, m[k], { atol: 1e-6, rtol: 1e-4, what: `chunked m ${x.name}` }));

      const sgd = new SGD(store, { momentum: 0.9, weightDecay: 0.01 });
      const buf = cpu.map((x) => new Float32Array(x.p.length));
      setGrads(store, cpu, 80);
      sgd.step(0.05);
      cpuSgdStep(cpu, buf, 1, 0.05, { momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0.01 });
      await assertParams(store, cpu, 'chunked SGD');
      sgd.destroy();
    } finally {
      opt.destroy();
      store.destroy();
    }
  });

  it('rejects a binding limit below one block', async () => {
    const rt = await runtime();
    const s = new ParameterStore();
    s.add('w', [3, 3]);
    assert.throws(() => s.materialize(rt, { maxBindingBytes: 1024 }), /below one block/);
  });
});
