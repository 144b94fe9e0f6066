import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { layerNorm } from '../../src/engine/ops/layernorm';
import { RowLayoutMode, setRowLayout } from '../../src/engine/ops/reduce';
import { layerNormGradRef, layerNormRef } from '../../src/engine/cpu/layernorm';

describe('layerNorm', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  afterEach(() => {
    setRowLayout('auto');
  });

  // d = 1 (variance 0), either side of the per-invocation/per-workgroup switch on GPUs (32), primes, a
  // 50,000-wide row, many rows of 3 (dweight/dbias summed over chunks of rows), and over 1M elements. 'auto'
  // picks the kernel by adapter and shape; forcing each layout runs both kernels on any adapter.
  const shapes = [[1, 1], [7, 5], [3, 32], [3, 33], [13, 97], [2, 3, 64], [1, 50_000], [5003, 3], [4099, 257]];
  const forced = [[1, 1], [7, 5], [3, 33], [300, 97], [2, 3, 64], [2, 50_000], [5003, 3]];
  const layouts: [RowLayoutMode, number[][]][] = [['auto', shapes], ['invocation', forced], ['workgroup', forced]];

  for (const [layout, cases] of layouts) {
  it(`forward and backward (dx, dweight, dbias) match the CPU reference (${layout} rows)`, async () => {
    setRowLayout(layout);
    for (const shape of cases) {
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
  }

  it('a workgroup per row past 65,535 rows (grid folded into y)', async () => {
    setRowLayout('workgroup');
    const x = randn(65_537 * 3, 10);
    const w = Float32Array.of(1, 2, 3);
    const b = Float32Array.of(0.5, 0, -0.5);
    const out = tidy(() => layerNorm(fromArray(rt, x, [65_537, 3]), fromArray(rt, w, [3]), fromArray(rt, b, [3])));
    assertClose(await out.toFloat32(), layerNormRef(x, w, b).y, { what: 'layerNorm of 65,537 rows', atol: 1e-4 });
    out.dispose();
  });

  it('a large mean against a small spread does not lose the variance', async () => {
    for (const [d, layout] of [[17, 'invocation'], [17, 'workgroup'], [1000, 'invocation'], [1000, 'workgroup']] as const) {
      setRowLayout(layout);
      const x = randn(4 * d, 6, 0.01).map((v) => v + 1000);
      const w = new Float32Array(d).fill(1);
      const b = new Float32Array(d);
      const out = tidy(() => layerNorm(fromArray(rt, x, [4, d]), fromArray(rt, w, [d]), fromArray(rt, b, [d])));
      // The mean itself rounds to an f32 near 1000 (half an ulp is 3e-5, 3e-3 of the spread); summing x without a
      // shift loses about ten times that.
      assertClose(await out.toFloat32(), layerNormRef(x, w, b).y, { what: `offset rows d=${d} ${layout}`, atol: 1e-2, rtol: 1e-2 });
      out.dispose();
    }
  });

  // An outlier at index 0 used to break the workgroup kernel: it summed (x - x[0]) and (x - x[0])² in one pass and
  // took E[c²] - E[c]², which cancels catastrophically when x[0] sits far from the rest (6.7e-2 off at d = 4096).
  // Every layout must match the float64 reference to f32 rounding, forward and backward (backward reuses the
  // saved mean and rstd).
  it('an outlier at index 0 does not spoil the variance (every row layout, up to d = 4096)', async () => {
    for (const layout of ['invocation', 'workgroup', 'auto'] as const) {
      for (const [rows, d, big] of [[3, 4096, 1e4], [5, 1000, 1e3], [7, 33, 300], [2, 4096, -3e4]] as const) {
        setRowLayout(layout);
        const x = randn(rows * d, 11);
        for (let r = 0; r < rows; r++) x[r * d] = big * (1 + r / 10);
        const w = randn(d, 12).map((v) => 1 + 0.5 * v);
        const b = randn(d, 13);
        const g = randn(rows * d, 14);
        const xt = fromArray(rt, x, [rows, d]);
        xt.requiresGrad = true;
        const wt = fromArray(rt, w, [d]);
        const bt = fromArray(rt, b, [d]);
        const out = layerNorm(xt, wt, bt);
        const what = `outlier ${big} at index 0, [${rows}, ${d}], ${layout} rows`;
        assertClose(await out.toFloat32(), layerNormRef(x, w, b).y, { what, atol: 1e-4, rtol: 1e-4 });
        const gT = fromArray(rt, g, [rows, d]);
        backward(out, gT);
        assertClose(await xt.grad!.toFloat32(), layerNormGradRef(x, w, g).dx, { what: `dx of ${what}`, atol: 1e-4, rtol: 1e-3 });
        xt.grad!.dispose();
        for (const t of [xt, wt, bt, out, gT]) t.dispose();
      }
    }
  });

  it('finite-difference gradient check for x, weight and bias (both row layouts)', async () => {
    for (const [rows, d, layout] of [[3, 5, 'invocation'], [2, 40, 'workgroup']] as const) {
      setRowLayout(layout);
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
