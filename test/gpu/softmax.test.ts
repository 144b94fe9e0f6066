import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { Tensor, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { logSoftmax, softmax } from '../../src/engine/ops/softmax';
import { RowLayoutMode, setRowLayout } from '../../src/engine/ops/reduce';
import { softmaxGradRef, softmaxRef } from '../../src/engine/cpu/softmax';

async function forward(rt: Runtime, f: (x: Tensor) => Tensor, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const out = tidy(() => f(fromArray(rt, x, shape)));
  assert.deepEqual(out.shape, shape);
  const y = await out.toFloat32();
  out.dispose();
  return y;
}

async function gradOf(rt: Runtime, f: (x: Tensor) => Tensor, x: Float32Array, shape: number[], g: Float32Array): Promise<Float32Array> {
  const t = fromArray(rt, x, shape);
  t.requiresGrad = true;
  const out = f(t);
  const gT = fromArray(rt, g, shape);
  backward(out, gT);
  const dx = await t.grad!.toFloat32();
  t.grad!.dispose();
  for (const u of [t, out, gT]) u.dispose();
  return dx;
}

describe('softmax and logSoftmax', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  afterEach(() => {
    setRowLayout('auto');
  });

  // Rows of 1, either side of the per-invocation/per-workgroup switch on GPUs (32), either side of the workgroup
  // size changes (2048, 4096), a 50,000 vocabulary, and over 1M elements in all. 'auto' picks the kernel by
  // adapter and shape; forcing each layout runs both kernels on any adapter.
  const shapes = [[1], [1, 1], [7], [3, 31], [5, 32], [4, 33], [13, 97], [3, 2049], [2, 4097], [2, 50_000], [4099, 257]];
  const forced = [[1, 1], [7], [3, 31], [4, 33], [300, 97], [3, 2049], [2, 4097], [2, 50_000]];
  const layouts: [RowLayoutMode, number[][]][] = [['auto', shapes], ['invocation', forced], ['workgroup', forced]];

  for (const [name, f, log] of [['softmax', softmax, false], ['logSoftmax', logSoftmax, true]] as const) {
    for (const [layout, cases] of layouts) {
    it(`${name}: forward and backward match the CPU reference (${layout} rows)`, async () => {
      setRowLayout(layout);
      for (const shape of cases) {
        const d = shape[shape.length - 1];
        const x = randn(numel(shape), d, 3);
        const y = await forward(rt, f, x, shape);
        const want = softmaxRef(x, d, log);
        assertClose(y, want, { what: `${name} [${shape}]`, atol: log ? 1e-5 : 1e-6, rtol: 1e-4 });
        const g = randn(numel(shape), d + 1);
        const dx = await gradOf(rt, f, x, shape, g);
        assertClose(dx, softmaxGradRef(want, g, d, log), { what: `${name}' [${shape}]`, atol: 1e-5, rtol: 1e-3 });
      }
    });
    }

    it(`${name}: large logits and -inf (masked) entries stay finite`, async () => {
      for (const [d, layout] of [[5, 'invocation'], [5, 'workgroup'], [300, 'invocation'], [300, 'workgroup']] as const) {
        setRowLayout(layout);
        const x = randn(3 * d, 9, 1).map((v, i) => (i % 2 ? v * 1000 : v - 500));
        // Row 1 starts with -inf, row 2 has -inf everywhere but one entry.
        for (let j = 0; j < d; j += 3) x[d + j] = -Infinity;
        for (let j = 1; j < d; j++) x[2 * d + j] = -Infinity;
        const y = await forward(rt, f, x, [3, d]);
        const want = softmaxRef(x, d, log);
        for (let i = 0; i < y.length; i++) {
          if (want[i] === -Infinity) assert.equal(y[i], -Infinity, `${name} d=${d} element ${i}`);
          else assert.ok(Number.isFinite(y[i]), `${name} d=${d} element ${i} is ${y[i]}`);
        }
        const finite = (a: Float32Array) => a.map((v) => (v === -Infinity ? -1e30 : v));
        assertClose(finite(y), finite(want), { what: `${name} extreme d=${d}`, atol: 1e-4, rtol: 1e-5 });
      }
    });

    it(`${name}: finite-difference gradient check (both row layouts)`, async () => {
      for (const layout of ['invocation', 'workgroup'] as const) {
        setRowLayout(layout);
        await gradCheck(rt, f, [{ data: randn(15, 10), shape: [3, 5] }]);
        await gradCheck(rt, f, [{ data: randn(140, 11), shape: [2, 70] }], { samples: 20 });
      }
    });
  }

  it('a workgroup per row past 65,535 rows (grid folded into y)', async () => {
    setRowLayout('workgroup');
    const shape = [65_537, 3];
    const x = randn(numel(shape), 13);
    assertClose(await forward(rt, softmax, x, shape), softmaxRef(x, 3), { what: 'softmax of 65,537 rows', atol: 1e-6 });
  });

  it('softmax rows sum to 1', async () => {
    const x = randn(2 * 50_000, 12, 4);
    const y = await forward(rt, softmax, x, [2, 50_000]);
    for (let r = 0; r < 2; r++) {
      let s = 0;
      for (let j = 0; j < 50_000; j++) s += y[r * 50_000 + j];
      assert.ok(Math.abs(s - 1) < 1e-4, `row ${r} sums to ${s}`);
    }
  });
});
