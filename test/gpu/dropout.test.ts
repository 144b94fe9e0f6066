import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { Tensor, fromArray } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { dropout } from '../../src/engine/ops/dropout';
import { dropoutMaskRef, dropoutRef } from '../../src/engine/cpu/dropout';

/** The mask the GPU drew: dropout of ones is 1/(1-p) where kept, 0 where dropped. */
async function gpuMask(rt: Runtime, n: number, p: number, seed: number): Promise<Uint8Array> {
  const ones = fromArray(rt, new Float32Array(n).fill(1), [n]);
  const out = dropout(ones, p, seed);
  const y = await out.toFloat32();
  ones.dispose();
  out.dispose();
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = y[i] !== 0 ? 1 : 0;
  return mask;
}

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

describe('dropout', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  it('matches the CPU reference bit for bit (sizes 1, 7, 257, 1M)', async () => {
    for (const n of [1, 7, 257, 1_000_003]) {
      const x = randn(n, n);
      for (const [p, seed] of [[0.1, 1], [0.5, 12345], [0.9, 4294967295]]) {
        const t = fromArray(rt, x, [n]);
        const out = dropout(t, p, seed);
        const y = await out.toFloat32();
        const want = dropoutRef(x, p, seed);
        for (let i = 0; i < n; i++) {
          if (y[i] !== want[i]) assert.fail(`n=${n} p=${p} seed=${seed} element ${i}: ${y[i]}, expected ${want[i]}`);
        }
        t.dispose();
        out.dispose();
      }
    }
  });

  it('keeps a fraction 1 - p of a 1M tensor; same seed gives the same mask, other seeds another', async () => {
    const n = 1_000_003;
    for (const p of [0.1, 0.5, 0.9]) {
      const m = await gpuMask(rt, n, p, 77);
      const kept = m.reduce((s, v) => s + v, 0) / n;
      // Binomial standard deviation is at most 5e-4 here; 3e-3 is six of them.
      assert.ok(Math.abs(kept - (1 - p)) < 3e-3, `p=${p}: kept ${kept}`);
      assert.equal(agreement(m, await gpuMask(rt, n, p, 77)), 1, `p=${p}: same seed, same mask`);
      // Independent masks agree on a fraction p² + (1-p)²; neighbouring seeds must look independent.
      const expected = p * p + (1 - p) * (1 - p);
      for (const other of [78, 77 + 65536]) {
        const a = agreement(m, await gpuMask(rt, n, p, other));
        assert.ok(Math.abs(a - expected) < 3e-3, `p=${p} seeds 77 and ${other}: agreement ${a}, independent masks give ${expected}`);
      }
      assert.deepEqual(m.subarray(0, 1000), dropoutMaskRef(1000, p, 77));
    }
  });

  it('backward regenerates the mask from the seed', async () => {
    const n = 4099;
    const p = 0.3;
    const x = randn(n, 5);
    const g = randn(n, 6);
    const t = fromArray(rt, x, [n]);
    t.requiresGrad = true;
    const out = dropout(t, p, 999);
    const gT = fromArray(rt, g, [n]);
    backward(out, gT);
    const dx = await t.grad!.toFloat32();
    const y = await out.toFloat32();
    const mask = dropoutMaskRef(n, p, 999);
    const scale = Math.fround(1 / (1 - p));
    for (let i = 0; i < n; i++) {
      assert.equal(y[i] !== 0, mask[i] === 1, `forward element ${i}`);
      assert.equal(dx[i], mask[i] ? Math.fround(g[i] * scale) : 0, `backward element ${i}`);
    }
    t.grad!.dispose();
    for (const u of [t, out, gT]) u.dispose();
  });

  it('finite-difference gradient check', async () => {
    await gradCheck(rt, (x) => dropout(x, 0.4, 31), [{ data: randn(37, 7), shape: [37] }], { samples: 37 });
  });

  it('p = 0 returns x itself, p = 1 gives zeros, p outside [0, 1] throws', async () => {
    const x = fromArray(rt, randn(11, 8), [11]);
    assert.equal(dropout(x, 0, 1), x);
    const z: Tensor = dropout(x, 1, 1);
    assertClose(await z.toFloat32(), new Float32Array(11), { what: 'p = 1' });
    for (const p of [-0.1, 1.5, NaN]) assert.throws(() => dropout(x, p, 1), RangeError);
    x.dispose();
    z.dispose();
  });
});
