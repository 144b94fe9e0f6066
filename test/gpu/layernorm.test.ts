import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { layerNorm } from '../../src/engine/ops/layernorm';
import { layerNormGradRef, layerNormRef } from '../../src/engine/cpu/layernorm';

describe('layerNorm', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  // d = 1 (variance 0), either side of the per-invocation/per-workgroup switch (32), primes, a 50,000-wide row,
  // many rows of 3 (dweight/dbias summed over chunks of rows), and over 1M elements.
  const shapes = [[1, 1], [7, 5], [3, 32], [3, 33], [13, 97], [2, 3, 64], [1, 50_000], [5003, 3], [4099, 257]];

  it('forward and backward (dx, dweight, dbias) match the CPU reference', async () => {
    for (const shape of shapes) {
      const d = shape[shape.length - 1];
      const n = numel(shape);
      const x = randn(n, d, 2).map((v, i) => v + ((i * 7) % 5) - 2);
      const w = randn(d, 3).map((v) => 1 + 0.5 * v);
      const b = randn(d, 4);
      const g = randn(n, 5);
      const eps = 1e-5;
      const xt = fromArray(rt, x, shape);
      const wt = fromArray(rt, w, [d]);
      const bt = fromArray(rt, b, [d]);
      for (const t of [xt, wt, bt]) t.requiresGrad = true;
      const out = layerNorm(xt, wt, bt, eps);
      assert.deepEqual(out.shape, shape);
      const want = layerNormRef(x, w, b, eps);
      assertClose(await out.toFloat32(), want.y, { what: `layerNorm [${shape}]`, atol: 1e-4, rtol: 1e-4 });
      const gT = fromArray(rt, g, shape);
      backward(out, gT);
      const wantG = layerNormGradRef(x, w, g, eps);
      // d = 1 normalises to exactly 0 whatever x is: its dx is 0 up to rounding of rstd = 1/sqrt(eps).
      assertClose(await xt.grad!.toFloat32(), wantG.dx, { what: `dx [${shape}]`, atol: d === 1 ? 1e-2 : 1e-4, rtol: 1e-3 });
      const rows = n / d;
      assertClose(await wt.grad!.toFloat32(), wantG.dw, { what: `dweight [${shape}]`, atol: 1e-5 * rows + 1e-4, rtol: 1e-4 });
      assertClose(await bt.grad!.toFloat32(), wantG.db, { what: `dbias [${shape}]`, atol: 1e-5 * rows + 1e-4, rtol: 1e-4 });
      for (const t of [xt, wt, bt]) t.grad!.dispose();
      for (const t of [xt, wt, bt, out, gT]) t.dispose();
    }
  });

  it('a large mean against a small spread does not lose the variance', async () => {
    for (const d of [17, 1000]) {
      const x = randn(4 * d, 6, 0.01).map((v) => v + 1000);
      const w = new Float32Array(d).fill(1);
      const b = new Float32Array(d);
      const out = tidy(() => layerNorm(fromArray(rt, x, [4, d]), fromArray(rt, w, [d]), fromArray(rt, b, [d])));
      // x itself is only known to ±6e-5 (f32 near 1000) against a spread of 0.01: 1e-2 is what f32 inputs allow.
      assertClose(await out.toFloat32(), layerNormRef(x, w, b).y, { what: `offset rows d=${d}`, atol: 1e-2, rtol: 1e-2 });
      out.dispose();
    }
  });

  it('finite-difference gradient check for x, weight and bias (short and long rows)', async () => {
    for (const [rows, d] of [[3, 5], [2, 40]]) {
      await gradCheck(rt, (x, w, b) => layerNorm(x, w, b), [
        { data: randn(rows * d, 7), shape: [rows, d] },
        { data: randn(d, 8).map((v) => 1 + 0.3 * v), shape: [d] },
        { data: randn(d, 9), shape: [d] },
      ], { samples: 16 });
    }
  });

  it('without grad it records nothing; weight or bias of the wrong shape throws', async () => {
    const x = fromArray(rt, randn(12, 10), [3, 4]);
    const w = fromArray(rt, new Float32Array(4).fill(1), [4]);
    const b = fromArray(rt, new Float32Array(4), [4]);
    const out = layerNorm(x, w, b);
    assert.equal(out.gradFn, null);
    const w5 = fromArray(rt, new Float32Array(5), [5]);
    assert.throws(() => layerNorm(x, w5, b), (e: unknown) => e instanceof ShapeError && e.message.includes('[5]') && e.message.includes('[3, 4]'));
    assert.throws(() => layerNorm(x, w, w5), ShapeError);
    for (const t of [x, w, b, out, w5]) t.dispose();
  });
});
