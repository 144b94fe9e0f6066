import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn, rng } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, fromArray, numel } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { embedding } from '../../src/engine/ops/embedding';
import { embeddingGradRef, embeddingRef } from '../../src/engine/cpu/embedding';

/** A gather copies: bit-exact equality. */
function assertExact(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) assert.fail(`${what}: index ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

function indices(n: number, v: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * v));
}

/** Forward and backward through embedding; returns the output and the table's gradient. */
async function roundTrip(rt: Runtime, table: Float32Array, v: number, d: number, idx: Int32Array, idxShape: number[], g: Float32Array): Promise<{ y: Float32Array; shape: readonly number[]; dtable: Float32Array }> {
  const t = fromArray(rt, table, [v, d]);
  t.requiresGrad = true;
  const i = fromArray(rt, idx, idxShape, 'i32');
  const out = embedding(t, i);
  const gT = fromArray(rt, g, out.shape);
  backward(out, gT);
  const res = { y: await out.toFloat32(), shape: out.shape, dtable: await t.grad!.toFloat32() };
  t.grad!.dispose();
  for (const u of [t, i, out, gT]) u.dispose();
  return res;
}

describe('embedding', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  // [V, D] with index shapes: single elements, primes, a 50,000-row table, and over 1M output elements.
  const cases: [number, number, number[]][] = [
    [1, 1, [1]],
    [7, 3, [5]],
    [13, 17, [2, 3, 11]],
    [50_000, 5, [3, 1031]],
    [97, 17, [65_537]],
  ];

  it('gathers rows and scatter-adds gradients like the CPU reference', async () => {
    for (const [v, d, idxShape] of cases) {
      const table = randn(v * d, v + d);
      const idx = indices(numel(idxShape), v, d);
      const g = randn(idx.length * d, 3);
      const res = await roundTrip(rt, table, v, d, idx, idxShape, g);
      assert.deepEqual(res.shape, [...idxShape, d]);
      assertExact(res.y, embeddingRef(table, v, d, idx), `embedding [${v}, ${d}] [${idxShape}]`);
      // Up to 65,537 / 97 ≈ 680 additions per row, in an unspecified order.
      assertClose(res.dtable, embeddingGradRef(g, v, d, idx), { what: `dtable [${v}, ${d}] [${idxShape}]`, atol: 1e-4, rtol: 1e-4 });
    }
  });

  it('many tokens hitting one row all land (compare-exchange contention)', async () => {
    const v = 4;
    const d = 3;
    const n = 20_000;
    const idx = new Int32Array(n).fill(2);
    const g = new Float32Array(n * d).fill(0.5);
    const res = await roundTrip(rt, randn(v * d, 1), v, d, idx, [n], g);
    // 0.5 · 20,000 is exact in f32 whatever the order.
    assert.deepEqual([...res.dtable], [0, 0, 0, 0, 0, 0, 10_000, 10_000, 10_000, 0, 0, 0]);
  });

  it('out-of-range indices read zeros and scatter nothing', async () => {
    const v = 6;
    const d = 4;
    // ±2^30 · d wraps to offset 0 in u32 arithmetic: without the range check they would alias row 0.
    const idx = Int32Array.of(-1, 6, 2, 2147483647, -2147483648, 5, 0, 1 << 30, -(1 << 30));
    const table = randn(v * d, 2);
    const g = randn(idx.length * d, 3);
    const res = await roundTrip(rt, table, v, d, idx, [idx.length], g);
    const y = res.y;
    for (const t of [0, 1, 3, 4, 7, 8]) assert.deepEqual([...y.subarray(t * d, (t + 1) * d)], [0, 0, 0, 0], `token ${t} (index ${idx[t]})`);
    assertExact(y, embeddingRef(table, v, d, idx), 'mixed indices');
    assertClose(res.dtable, embeddingGradRef(g, v, d, idx), { what: 'dtable with out-of-range indices' });
  });

  it('finite-difference gradient check on the table (repeated indices)', async () => {
    await gradCheck(rt, (t, i) => embedding(t, i), [
      { data: randn(15, 4), shape: [5, 3] },
      { data: Int32Array.of(1, 3, 1, 4, 0, 1, 3, 1), shape: [2, 4], dtype: 'i32' },
    ], { samples: 15 });
  });

  it('rejects f32 indices and a table that is not 2-D', async () => {
    const t = fromArray(rt, new Float32Array(6), [2, 3]);
    const f = fromArray(rt, new Float32Array(2), [2]);
    const i = fromArray(rt, new Int32Array(2), [2], 'i32');
    assert.throws(() => embedding(t, f), TypeError);
    assert.throws(() => embedding(f, i), ShapeError);
    for (const u of [t, f, i]) u.dispose();
  });
});
