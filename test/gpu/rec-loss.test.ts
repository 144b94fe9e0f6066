// Recommender losses (loss/cce.ts, loss/sampled.ts) and the negative sampler (loss/negatives.ts) against their
// f64 CPU references (cpu/rec-loss.ts), finite differences, and the sampler's distribution.
import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn, rng } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { Tensor, fromArray, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { cce, itemSpans } from '../../src/engine/loss/cce';
import { sampledLoss, type SampledLossOptions } from '../../src/engine/loss/sampled';
import { buildAliasTable, sampleNegatives } from '../../src/engine/loss/negatives';
import { makeLoss } from '../../src/engine/loss/registry';
import { setItemPopularity } from '../../src/engine/loss/sampled';
import type { OutputHead } from '../../src/engine/nn/models';
import { fullCeRef, gbceBeta, sampleNegativesRef, sampledRef, type HeadGrads } from '../../src/engine/cpu/rec-loss';

function targetsFor(rows: number, v: number, seed: number, ignoreEvery = 0): Int32Array {
  const r = rng(seed);
  const t = new Int32Array(rows);
  for (let i = 0; i < rows; i++) t[i] = ignoreEvery && i % ignoreEvery === ignoreEvery - 1 ? -1 : Math.floor(r() * v);
  return t;
}

interface Problem {
  rows: number;
  v: number;
  d: number;
  x: Float32Array;
  e: Float32Array;
  b: Float32Array | null;
  t: Int32Array;
}

function problem(rows: number, v: number, d: number, seed: number, bias = true, ignoreEvery = 0): Problem {
  return { rows, v, d, x: randn(rows * d, seed, 1), e: randn(v * d, seed + 1, 0.5), b: bias ? randn(v, seed + 2, 0.3) : null, t: targetsFor(rows, v, seed + 3, ignoreEvery) };
}

/** Runs loss(x, E, b, targets) on the GPU with leaf tensors and returns the loss and the three gradients. */
async function runGpu(rt: Runtime, pb: Problem, f: (x: Tensor, e: Tensor, b: Tensor | null, t: Tensor) => Tensor): Promise<{ loss: number; dx: Float32Array; de: Float32Array; db: Float32Array | null }> {
  const x = fromArray(rt, pb.x, [pb.rows, pb.d]);
  const e = fromArray(rt, pb.e, [pb.v, pb.d]);
  const b = pb.b ? fromArray(rt, pb.b, [pb.v]) : null;
  const t = fromArray(rt, pb.t, [pb.rows], 'i32');
  for (const u of [x, e, b]) if (u) u.requiresGrad = true;
  const out = f(x, e, b, t);
  backward(out);
  const loss = await out.item();
  const dx = await x.grad!.toFloat32();
  const de = await e.grad!.toFloat32();
  const db = b ? await b.grad!.toFloat32() : null;
  for (const u of [x, e, b]) {
    u?.grad?.dispose();
    u?.dispose();
  }
  t.dispose();
  out.dispose();
  return { loss, dx, de, db };
}

function compare(got: Awaited<ReturnType<typeof runGpu>>, ref: HeadGrads, what: string, tol = 1e-4): void {
  // Relative to the largest entry of each gradient: entries near 0 carry the float32 cancellation of their sums.
  const scaled = (a: ArrayLike<number>) => Math.max(1e-6, ...Array.from(a, Math.abs));
  assertClose([got.loss], [ref.loss], { atol: 1e-6, rtol: tol, what: `${what} loss` });
  assertClose(got.dx, ref.dx, { atol: tol * scaled(ref.dx), rtol: tol, what: `${what} dX` });
  assertClose(got.de, ref.de, { atol: tol * scaled(ref.de), rtol: tol, what: `${what} dE` });
  if (got.db) assertClose(got.db, ref.db, { atol: tol * scaled(ref.db), rtol: tol, what: `${what} db` });
}

describe('recommender losses', function () {
  this.timeout(600000);
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  describe('cce', () => {
    // rows 1, 7, 129 (tile 16); V 1, 5, 257, 1031 (tile 16, splits); d 1, 3, 64, 130 (two column passes of 128).
    const shapes: [number, number, number][] = [[1, 1, 1], [7, 5, 3], [129, 257, 3], [7, 1031, 64], [1, 257, 64], [17, 33, 130], [33, 65, 1]];
    for (const [rows, v, d] of shapes) {
      it(`equals full cross-entropy (loss, dX, dE, db) at rows ${rows}, V ${v}, d ${d}`, async () => {
        const pb = problem(rows, v, d, rows * 31 + v + d, (rows + v) % 2 === 0, rows > 4 ? 5 : 0);
        const got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e, b, t));
        compare(got, fullCeRef(pb.x, pb.e, pb.b, pb.t, v, d), `cce ${rows}x${v}x${d}`);
      });
    }

    it('intersects two different cuttings of the items (E and its gradient bound at other offsets)', () => {
      const rr = (r0: number, r1: number) => ({ r0, r1, lead: 0, binding: { buffer: null as unknown as GPUBuffer, offset: r0, size: r1 - r0 } });
      const spans = itemSpans([rr(0, 40), rr(40, 90), rr(90, 100)], [rr(0, 25), rr(25, 70), rr(70, 100)]);
      assert.deepEqual(spans.map((s) => [s.a, s.b, s.e.r0, s.o!.r0]), [[0, 25, 0, 0], [25, 40, 0, 25], [40, 70, 40, 25], [70, 90, 40, 70], [90, 100, 90, 70]]);
    });

    it('every target ignored gives loss 0 and zero gradients', async () => {
      const pb = problem(5, 9, 4, 3);
      pb.t.fill(-1);
      const got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e, b, t));
      assert.equal(got.loss, 0);
      assert.ok(got.dx.every((u) => u === 0) && got.de.every((u) => u === 0));
    });

    it('cuts an item table above one binding into row ranges (forward and backward)', async () => {
      // 300 × 20 floats = 24 000 bytes; a 4 KiB binding limit cuts E into 13 ranges (not row-aligned to 256 B).
      const pb = problem(19, 300, 20, 9, true, 4);
      const prev = rt.setMaxBindingBytes(4096);
      let got;
      try {
        got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e, b, t));
      } finally {
        rt.setMaxBindingBytes(prev);
      }
      compare(got, fullCeRef(pb.x, pb.e, pb.b, pb.t, pb.v, pb.d), 'cce chunked');
    });

    it('the gradient filter at 2^-12 changes the gradients by less than the threshold allows', async () => {
      const pb = problem(33, 1031, 8, 5);
      pb.x = pb.x.map((u) => u * 4); // peaked softmax: most tiles fall below the threshold
      const got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e, b, t, { gradFilter: 2 ** -12 }));
      const ref = fullCeRef(pb.x, pb.e, pb.b, pb.t, pb.v, pb.d);
      assertClose([got.loss], [ref.loss], { atol: 1e-6, rtol: 1e-4, what: 'filtered loss (unchanged)' });
      // Each dropped entry is < 2^-12/rows in G; a dE entry sums at most rows of them times |x| ≤ ~16.
      assertClose(got.de, ref.de, { atol: 2 ** -12 * 16, rtol: 1e-3, what: 'filtered dE' });
    });

    it('writes dense gradients for a head weight that is not a leaf (no gradient sink)', async () => {
      const pb = problem(9, 37, 5, 12, true, 4);
      // reshape() makes the table a computed tensor: dE comes back through backward(), not written in place.
      const got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e.reshape([pb.v, pb.d]), b!.reshape([pb.v]), t));
      compare(got, fullCeRef(pb.x, pb.e, pb.b, pb.t, pb.v, pb.d), 'cce non-leaf');
    });

    it('a large gradient filter does drop tiles (the filter is live)', async () => {
      // 320 items = 5 tiles of 64; every target in the first tile, so the other four hold no target, and with
      // 320 items no probability reaches 0.9: those tiles are skipped and their items get exactly zero gradient.
      const pb = problem(3, 320, 4, 15);
      pb.t.set([1, 2, 3]);
      const got = await runGpu(rt, pb, (x, e, b, t) => cce(x, e, b, t, { gradFilter: 0.9 }));
      const ref = fullCeRef(pb.x, pb.e, pb.b, pb.t, pb.v, pb.d);
      for (let i = 64; i < pb.v; i++) {
        assert.equal(got.db![i], 0, `db[${i}] of a dropped tile`);
        assert.notEqual(ref.db[i], 0, `the exact db[${i}]`);
      }
      // The kept tile is exact, and the loss never depends on the filter.
      assertClose(got.db!.slice(0, 64), ref.db.slice(0, 64), { atol: 1e-6, rtol: 1e-4, what: 'db of the kept tile' });
      assertClose([got.loss], [ref.loss], { atol: 1e-6, rtol: 1e-4, what: 'loss unaffected by the filter' });
    });

    it('passes a finite-difference gradient check', async () => {
      const rows = 5;
      const v = 19;
      const d = 3;
      const t = targetsFor(rows, v, 4, 3);
      await gradCheck(rt, (x, e, b) => cce(x, e, b, fromArray(rt, t, [rows], 'i32')), [
        { data: randn(rows * d, 1), shape: [rows, d] },
        { data: randn(v * d, 2, 0.5), shape: [v, d] },
        { data: randn(v, 3, 0.3), shape: [v] },
      ], { samples: 6 });
    });
  });

  describe('sampled losses', () => {
    const V = 97;
    const K = 7;
    const variants: { name: string; opts: (logq: Tensor | null) => SampledLossOptions; ref: (logq: Float32Array) => Parameters<typeof sampledRef>[8] }[] = [
      { name: 'cce-minus', opts: () => ({ mode: 'softmax', corr: Math.log(V - 1) - Math.log(1 + K) }), ref: () => ({ mode: 'softmax', corr: Math.log(V - 1) - Math.log(1 + K) }) },
      { name: 'sampled softmax without logQ', opts: () => ({ mode: 'softmax' }), ref: () => ({ mode: 'softmax' }) },
      { name: 'sampled softmax with a logQ table', opts: (lq) => ({ mode: 'softmax', logq: lq }), ref: (lq) => ({ mode: 'softmax', logq: lq }) },
      { name: 'bce', opts: () => ({ mode: 'bce', beta: 1 }), ref: () => ({ mode: 'bce', beta: 1 }) },
      { name: 'gbce', opts: () => ({ mode: 'bce', beta: gbceBeta(K, V, 0.75) }), ref: () => ({ mode: 'bce', beta: gbceBeta(K, V, 0.75) }) },
    ];

    /** Negatives with deliberate collisions: every third row's first negative is its target (masked). */
    function negativesFor(t: Int32Array, k: number, v: number, seed: number): Int32Array {
      const r = rng(seed);
      const n = new Int32Array(t.length * k);
      for (let i = 0; i < n.length; i++) n[i] = 1 + Math.floor(r() * (v - 1));
      for (let row = 0; row < t.length; row += 3) if (t[row] >= 0) n[row * k] = t[row];
      return n;
    }

    for (const vr of variants) {
      for (const [rows, d] of [[1, 1], [13, 3], [129, 64]] as [number, number][]) {
        it(`${vr.name} equals its CPU reference (rows ${rows}, d ${d}, K ${K}, V ${V}), negatives equal to the target masked`, async () => {
          const pb = problem(rows, V, d, rows + d * 7, rows % 2 === 1, rows > 3 ? 4 : 0);
          const neg = negativesFor(pb.t, K, V, rows);
          const lq = Float32Array.from(randn(V, 77, 1), (u) => -Math.log(V) + 0.5 * u);
          const got = await runGpu(rt, pb, (x, e, b, t) => {
            const lqT = fromArray(rt, lq, [V]);
            return sampledLoss(x, e, b, t, fromArray(rt, neg, [rows, K], 'i32'), vr.opts(lqT));
          });
          compare(got, sampledRef(pb.x, pb.e, pb.b, pb.t, neg, V, d, K, vr.ref(lq)), `${vr.name} ${rows}x${d}`);
        });
      }
      it(`${vr.name} passes a finite-difference gradient check`, async () => {
        const rows = 4;
        const d = 3;
        const t = targetsFor(rows, V, 8, 3);
        const neg = negativesFor(t, K, V, 9);
        const lq = Float32Array.from(randn(V, 78, 1), (u) => -Math.log(V) + 0.5 * u);
        await gradCheck(rt, (x, e, b) => sampledLoss(x, e, b, fromArray(rt, t, [rows], 'i32'), fromArray(rt, neg, [rows, K], 'i32'), vr.opts(fromArray(rt, lq, [V]))), [
          { data: randn(rows * d, 1), shape: [rows, d] },
          { data: randn(V * d, 2, 0.5), shape: [V, d] },
          { data: randn(V, 3, 0.3), shape: [V] },
        ], { samples: 6 });
      });
    }

    it('cuts an item table above one binding into row ranges (cce-minus, forward and backward)', async () => {
      const v = 300;
      const d = 20;
      const pb = problem(11, v, d, 21, true, 5);
      const neg = negativesFor(pb.t, K, v, 3);
      const corr = Math.log(v - 1) - Math.log(1 + K);
      const prev = rt.setMaxBindingBytes(4096);
      let got;
      try {
        got = await runGpu(rt, pb, (x, e, b, t) => sampledLoss(x, e, b, t, fromArray(rt, neg, [11, K], 'i32'), { mode: 'softmax', corr }));
      } finally {
        rt.setMaxBindingBytes(prev);
      }
      compare(got, sampledRef(pb.x, pb.e, pb.b, pb.t, neg, v, d, K, { mode: 'softmax', corr }), 'cce-minus chunked');
    });

    it('refuses negatives of the wrong shape, naming both shapes', () => {
      tidy(() => {
        const x = fromArray(rt, new Float32Array(6), [3, 2]);
        const e = fromArray(rt, new Float32Array(10), [5, 2]);
        const t = fromArray(rt, [1, 2, 3], [3], 'i32');
        assert.throws(() => sampledLoss(x, e, null, t, fromArray(rt, new Int32Array(8), [4, 2], 'i32'), { mode: 'softmax' }), /negatives must be i32 \[rows, K ≥ 1\].*\[3, 2\].*\[4, 2\]/);
      });
    });
  });

  describe('negative sampler', () => {
    it('draws exactly what the CPU reference draws, never 0 nor the target (uniform and popularity)', async () => {
      const v = 53;
      const t = targetsFor(300, v, 5, 7);
      t[0] = 0;
      t[1] = v - 1;
      const weights = Array.from({ length: v }, (_, i) => (i === 0 ? 0 : 1 / i));
      const alias = buildAliasTable(weights);
      for (const sampler of ['uniform', 'popularity'] as const) {
        const tt = fromArray(rt, t, [t.length], 'i32');
        const n = sampleNegatives(rt, tt, { k: 9, numItems: v, sampler, popularity: alias, seed: 11, step: 3 });
        const got = (await n.toArray()) as Int32Array;
        tt.dispose();
        n.dispose();
        const ref = sampleNegativesRef(t, 9, v, 11, 3, sampler === 'popularity' ? alias : undefined);
        assert.deepEqual(Array.from(got), Array.from(ref), sampler);
        for (let i = 0; i < got.length; i++) {
          const r = Math.floor(i / 9);
          assert.ok(got[i] >= 1 && got[i] < v && got[i] !== t[r], `${sampler}: negative ${got[i]} of row ${r} (target ${t[r]})`);
        }
      }
    });

    it('is deterministic by (seed, step) and changes with the step', async () => {
      const t = fromArray(rt, targetsFor(64, 1000, 2), [64], 'i32');
      const draw = async (step: number) => {
        const n = sampleNegatives(rt, t, { k: 4, numItems: 1000, sampler: 'uniform', seed: 5, step });
        const a = Array.from((await n.toArray()) as Int32Array);
        n.dispose();
        return a;
      };
      assert.deepEqual(await draw(1), await draw(1));
      assert.notDeepEqual(await draw(1), await draw(2));
      t.dispose();
    });

    /** Pearson's chi-square statistic of counts against expected frequencies. */
    function chiSquare(counts: number[], expected: number[]): number {
      return counts.reduce((a, c, i) => a + (expected[i] > 0 ? (c - expected[i]) ** 2 / expected[i] : 0), 0);
    }

    it('is uniform over 1..V−1 without the target (chi-square on 8 000 draws)', async () => {
      const v = 41;
      const target = 17;
      const rows = 500;
      const k = 16;
      const tt = fromArray(rt, new Int32Array(rows).fill(target), [rows], 'i32');
      const n = sampleNegatives(rt, tt, { k, numItems: v, sampler: 'uniform', seed: 1, step: 0 });
      const got = (await n.toArray()) as Int32Array;
      tt.dispose();
      n.dispose();
      const counts = new Array(v).fill(0);
      for (const x of got) counts[x]++;
      assert.equal(counts[0], 0);
      assert.equal(counts[target], 0);
      const exp = counts.map((_, i) => (i === 0 || i === target ? 0 : got.length / (v - 2)));
      // 38 degrees of freedom: the 99.9 % quantile is 70.7.
      const chi = chiSquare(counts, exp);
      assert.ok(chi < 70.7, `chi-square ${chi.toFixed(1)} over 38 degrees of freedom`);
    });

    it('follows the popularity distribution, target excluded (chi-square on 8 000 draws)', async () => {
      const v = 21;
      const target = 1; // the most popular item
      const weights = Array.from({ length: v }, (_, i) => (i === 0 ? 0 : 1 / i));
      const rows = 500;
      const k = 16;
      const tt = fromArray(rt, new Int32Array(rows).fill(target), [rows], 'i32');
      const n = sampleNegatives(rt, tt, { k, numItems: v, sampler: 'popularity', popularity: buildAliasTable(weights), seed: 2, step: 0 });
      const got = (await n.toArray()) as Int32Array;
      tt.dispose();
      n.dispose();
      const counts = new Array(v).fill(0);
      for (const x of got) counts[x]++;
      const rest = weights.reduce((a, w, i) => a + (i === target ? 0 : w), 0);
      const exp = weights.map((w, i) => (i === target ? 0 : (got.length * w) / rest));
      assert.equal(counts[0], 0);
      assert.equal(counts[target], 0);
      // 19 degrees of freedom: the 99.9 % quantile is 43.8; a uniform sampler would score in the thousands.
      const chi = chiSquare(counts, exp);
      assert.ok(chi < 43.8, `chi-square ${chi.toFixed(1)} over 19 degrees of freedom`);
    });
  });

  describe('registered entries (makeLoss)', () => {
    function headOf(e: Tensor, b: Tensor | null): OutputHead {
      return { weight: e, bias: b, logits: () => { throw new Error('a recommender loss must not form the logits'); } };
    }

    it('cce through makeLoss equals full cross-entropy and returns no logits', async () => {
      const pb = problem(9, 41, 6, 31, true, 4);
      const loss = makeLoss({ type: 'cce', gradFilter: 0 });
      const out = tidy(() => loss(fromArray(rt, pb.x, [9, 6]), headOf(fromArray(rt, pb.e, [41, 6]), fromArray(rt, pb.b!, [41])), { targets: fromArray(rt, pb.t, [9], 'i32') }, { training: true }));
      assert.equal(out.logits, undefined);
      assertClose([await out.loss.item()], [fullCeRef(pb.x, pb.e, pb.b, pb.t, 41, 6).loss], { atol: 1e-6, rtol: 1e-4 });
      out.loss.dispose();
    });

    it('cce-minus, sampled-softmax, bce and gbce sample their own negatives by (seed, step) when the batch has none', async () => {
      const v = 61;
      const k = 5;
      const pb = problem(12, v, 4, 41, false, 5);
      const cases = [
        { cfg: { type: 'cce-minus', negatives: k, sampler: 'uniform', seed: 3 } as const, ref: { mode: 'softmax', corr: Math.log(v - 1) - Math.log(1 + k) } as const },
        { cfg: { type: 'sampled-softmax', negatives: k, sampler: 'uniform', logQ: true, seed: 3 } as const, ref: { mode: 'softmax', corr: Math.log(v - 1) } as const },
        { cfg: { type: 'bce', negatives: k, sampler: 'uniform', seed: 3 } as const, ref: { mode: 'bce', beta: 1 } as const },
        { cfg: { type: 'gbce', negatives: k, sampler: 'uniform', t: 0.75, seed: 3 } as const, ref: { mode: 'bce', beta: gbceBeta(k, v, 0.75) } as const },
      ];
      for (const c of cases) {
        const loss = makeLoss(c.cfg);
        for (const step of [0, 1]) {
          const out = tidy(() => loss(fromArray(rt, pb.x, [12, 4]), headOf(fromArray(rt, pb.e, [v, 4]), null), { targets: fromArray(rt, pb.t, [12], 'i32') }, { training: true }).loss);
          const neg = sampleNegativesRef(pb.t, k, v, 3, step);
          assertClose([await out.item()], [sampledRef(pb.x, pb.e, null, pb.t, neg, v, 4, k, c.ref).loss], { atol: 1e-6, rtol: 1e-4, what: `${c.cfg.type} step ${step}` });
          out.dispose();
        }
      }
    });

    it("the popularity sampler asks for the items' weights, then uses them", async () => {
      const v = 30;
      const pb = problem(6, v, 3, 51, false);
      const loss = makeLoss({ type: 'sampled-softmax', negatives: 4, sampler: 'popularity', logQ: true, seed: 0 });
      const call = () => tidy(() => loss(fromArray(rt, pb.x, [6, 3]), headOf(fromArray(rt, pb.e, [v, 3]), null), { targets: fromArray(rt, pb.t, [6], 'i32') }, { training: true }).loss);
      assert.throws(call, /setItemPopularity/);
      const w = Array.from({ length: v }, (_, i) => (i === 0 ? 0 : 1 + (i % 7)));
      setItemPopularity(loss, w);
      const out = call();
      const total = w.reduce((a, b) => a + b, 0);
      const logq = Float32Array.from(w, (x, i) => (i === 0 ? -1e30 : Math.log(x / total)));
      const neg = sampleNegativesRef(pb.t, 4, v, 0, 0, buildAliasTable(w));
      assertClose([await out.item()], [sampledRef(pb.x, pb.e, null, pb.t, neg, v, 3, 4, { mode: 'softmax', logq }).loss], { atol: 1e-6, rtol: 1e-4 });
      out.dispose();
    });
  });
});
