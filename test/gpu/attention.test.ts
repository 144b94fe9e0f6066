import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, fromArray, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { causalSelfAttention, type AttentionDropout } from '../../src/engine/ops/attention';
import { attentionGradRef, attentionRef } from '../../src/engine/cpu/attention';

interface Case {
  b: number;
  t: number;
  d: number;
  heads: number;
}

/** GPU output and, for output gradient dO, the gradients of whichever of q, k, v are marked in `grads`. */
async function run(rt: Runtime, c: Case, q: Float32Array, k: Float32Array, v: Float32Array, dO: Float32Array, grads = [true, true, true], drop?: AttentionDropout) {
  const shape = [c.b, c.t, c.d];
  const ts = [q, k, v].map((x, i) => {
    const t = fromArray(rt, x, shape);
    t.requiresGrad = grads[i];
    return t;
  });
  const out = causalSelfAttention(ts[0], ts[1], ts[2], c.heads, drop);
  assert.deepEqual(out.shape, shape);
  const gT = fromArray(rt, dO, shape);
  backward(out, gT);
  const y = await out.toFloat32();
  const dx: (Float32Array | null)[] = [];
  for (const t of ts) {
    dx.push(t.grad ? await t.grad.toFloat32() : null);
    t.grad?.dispose();
    t.dispose();
  }
  out.dispose();
  gT.dispose();
  return { y, dq: dx[0], dk: dx[1], dv: dx[2] };
}

describe('causalSelfAttention', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  // T = 1, primes, head dims of 1, 3 (not a multiple of 4), 8, 32, 50, 64 and 128 (each per-invocation vector
  // size compiled), the demo (T 16) and benchmark (T 64) lengths, and T = 128.
  const cases: Case[] = [
    { b: 1, t: 1, d: 4, heads: 1 },
    { b: 2, t: 1, d: 6, heads: 3 },
    { b: 2, t: 7, d: 12, heads: 4 },
    { b: 1, t: 13, d: 16, heads: 2 },
    { b: 1, t: 3, d: 17, heads: 17 },
    { b: 3, t: 16, d: 32, heads: 4 },
    { b: 1, t: 9, d: 100, heads: 2 },
    { b: 2, t: 64, d: 64, heads: 2 },
    { b: 1, t: 64, d: 128, heads: 2 },
    { b: 1, t: 5, d: 128, heads: 1 },
    { b: 1, t: 128, d: 32, heads: 1 },
  ];

  it('forward and backward match the CPU reference on awkward shapes', async () => {
    for (const c of cases) {
      const n = c.b * c.t * c.d;
      const seed = c.t * 1000 + c.d;
      const [q, k, v, dO] = [randn(n, seed), randn(n, seed + 1), randn(n, seed + 2), randn(n, seed + 3)];
      const got = await run(rt, c, q, k, v, dO);
      const what = `[${c.b}, ${c.t}, ${c.d}] / ${c.heads} heads`;
      assertClose(got.y, attentionRef(q, k, v, c.b, c.t, c.d, c.heads), { what: `output ${what}`, atol: 1e-5, rtol: 1e-4 });
      const want = attentionGradRef(q, k, v, dO, c.b, c.t, c.d, c.heads);
      assertClose(got.dq!, want.dq, { what: `dq ${what}`, atol: 1e-4, rtol: 1e-3 });
      assertClose(got.dk!, want.dk, { what: `dk ${what}`, atol: 1e-4, rtol: 1e-3 });
      assertClose(got.dv!, want.dv, { what: `dv ${what}`, atol: 1e-4, rtol: 1e-3 });
    }
  });

  it('large scores stay finite and accurate', async () => {
    const c = { b: 1, t: 13, d: 12, heads: 2 };
    const n = c.b * c.t * c.d;
    const [q, k, v, dO] = [randn(n, 41, 12), randn(n, 42, 12), randn(n, 43), randn(n, 44)];
    const got = await run(rt, c, q, k, v, dO);
    assert.ok(got.y.every(Number.isFinite), 'finite output');
    assertClose(got.y, attentionRef(q, k, v, c.b, c.t, c.d, c.heads), { what: 'output, large scores', atol: 1e-4, rtol: 1e-3 });
    const want = attentionGradRef(q, k, v, dO, c.b, c.t, c.d, c.heads);
    assertClose(got.dv!, want.dv, { what: 'dv, large scores', atol: 1e-4, rtol: 1e-3 });
    assertClose(got.dq!, want.dq, { what: 'dq, large scores', atol: 1e-3, rtol: 1e-2 });
    assertClose(got.dk!, want.dk, { what: 'dk, large scores', atol: 1e-3, rtol: 1e-2 });
  });

  it('gives gradients only to the inputs that require them', async () => {
    const c = { b: 2, t: 6, d: 8, heads: 2 };
    const n = c.b * c.t * c.d;
    const [q, k, v, dO] = [randn(n, 51), randn(n, 52), randn(n, 53), randn(n, 54)];
    const want = attentionGradRef(q, k, v, dO, c.b, c.t, c.d, c.heads);
    for (const grads of [[false, true, true], [true, false, false], [false, false, true], [false, true, false]]) {
      const got = await run(rt, c, q, k, v, dO, grads);
      for (const [i, name] of (['dq', 'dk', 'dv'] as const).entries()) {
        if (!grads[i]) assert.equal(got[name], null, `${name} with grads ${grads}`);
        else assertClose(got[name]!, want[name], { what: `${name} with grads ${grads}`, atol: 1e-4, rtol: 1e-3 });
      }
    }
  });

  it('finite-difference gradient check (q, k, v; and self-attention on one tensor)', async () => {
    const shape = [2, 5, 6];
    await gradCheck(rt, (q, k, v) => causalSelfAttention(q, k, v, 2), [
      { data: randn(60, 61), shape },
      { data: randn(60, 62), shape },
      { data: randn(60, 63), shape },
    ], { samples: 16 });
    await gradCheck(rt, (x) => causalSelfAttention(x, x, x, 3), [{ data: randn(3 * 7 * 9, 64), shape: [3, 7, 9] }], { samples: 20 });
  });

  it('with dropout on the probabilities: forward and backward match the CPU reference (the same hash mask)', async () => {
    for (const c of cases.filter((x) => x.t > 1)) {
      const n = c.b * c.t * c.d;
      const seed = c.t * 1000 + c.d + 7;
      const [q, k, v, dO] = [randn(n, seed), randn(n, seed + 1), randn(n, seed + 2), randn(n, seed + 3)];
      const drop = { p: 0.3, seed: 12345 + c.t };
      const got = await run(rt, c, q, k, v, dO, [true, true, true], drop);
      const what = `[${c.b}, ${c.t}, ${c.d}] / ${c.heads} heads, dropout 0.3`;
      const want = attentionRef(q, k, v, c.b, c.t, c.d, c.heads, drop);
      assertClose(got.y, want, { what: `output ${what}`, atol: 1e-5, rtol: 1e-4 });
      const g = attentionGradRef(q, k, v, dO, c.b, c.t, c.d, c.heads, drop);
      assertClose(got.dq!, g.dq, { what: `dq ${what}`, atol: 1e-4, rtol: 1e-3 });
      assertClose(got.dk!, g.dk, { what: `dk ${what}`, atol: 1e-4, rtol: 1e-3 });
      assertClose(got.dv!, g.dv, { what: `dv ${what}`, atol: 1e-4, rtol: 1e-3 });
      // The mask is real: the output differs from the undropped one, and another seed gives another output.
      const plain = attentionRef(q, k, v, c.b, c.t, c.d, c.heads);
      assert.ok(want.some((x, i) => Math.abs(x - plain[i]) > 1e-3), `dropout changed nothing (${what})`);
    }
    // p = 0 is the plain kernel.
    const c = cases[2];
    const n = c.b * c.t * c.d;
    const [q, k, v, dO] = [randn(n, 1), randn(n, 2), randn(n, 3), randn(n, 4)];
    const a = await run(rt, c, q, k, v, dO, [true, true, true], { p: 0, seed: 9 });
    assertClose(a.y, attentionRef(q, k, v, c.b, c.t, c.d, c.heads), { what: 'p = 0', atol: 1e-5, rtol: 1e-4 });
    // On average a dropped attention keeps the output's scale (E[Z] = 1): over many seeds the mean is near the plain output.
    const big = { b: 1, t: 24, d: 8, heads: 1 };
    const m = big.t * big.d;
    const [bq, bk, bv] = [randn(m, 5), randn(m, 6), randn(m, 7)];
    const plain = attentionRef(bq, bk, bv, big.b, big.t, big.d, big.heads);
    const mean = new Float64Array(m);
    const S = 400;
    for (let s = 0; s < S; s++) attentionRef(bq, bk, bv, big.b, big.t, big.d, big.heads, { p: 0.3, seed: s }).forEach((x, i) => (mean[i] += x / S));
    const err = Math.max(...Array.from(mean, (x, i) => Math.abs(x - plain[i])));
    assert.ok(err < 0.15, `mean of the dropped outputs ${err} away from the plain output`);
  });

  it('finite-difference gradient check with dropout on the probabilities (fixed seed)', async () => {
    const shape = [2, 6, 6];
    await gradCheck(rt, (q, k, v) => causalSelfAttention(q, k, v, 2, { p: 0.25, seed: 77 }), [
      { data: randn(72, 71), shape },
      { data: randn(72, 72), shape },
      { data: randn(72, 73), shape },
    ], { samples: 16 });
  });

  it('rejects bad shapes, naming them', () => {
    tidy(() => {
      const q = fromArray(rt, randn(24, 1), [1, 2, 12]);
      const k = fromArray(rt, randn(24, 2), [2, 1, 12]);
      assert.throws(() => causalSelfAttention(q, k, q, 4), (e: Error) => e instanceof ShapeError && e.message.includes('[2, 1, 12]') && e.message.includes('[1, 2, 12]'));
      assert.throws(() => causalSelfAttention(q, q, q, 5), (e: Error) => e instanceof ShapeError && e.message.includes('[1, 2, 12]') && /nHeads = 5/.test(e.message));
      assert.throws(() => causalSelfAttention(q.reshape([2, 12]), q.reshape([2, 12]), q.reshape([2, 12]), 1), ShapeError);
      const wide = fromArray(rt, randn(2 * 258, 3), [1, 2, 258]);
      assert.throws(() => causalSelfAttention(wide, wide, wide, 2), (e: Error) => e instanceof RangeError && /head dimension 129/.test(e.message));
    });
  });
});
