import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn, rng } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, Tensor, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { CrossEntropyOptions, crossEntropy } from '../../src/engine/ops/loss';
import { RowLayoutMode, setRowLayout } from '../../src/engine/ops/reduce';
import { crossEntropyGradRef, crossEntropyRef } from '../../src/engine/cpu/loss';

function randomTargets(n: number, c: number, seed: number, ignoreEvery = 0, ignoreIndex = -1): Int32Array {
  const r = rng(seed);
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = ignoreEvery && i % ignoreEvery === ignoreEvery - 1 ? ignoreIndex : Math.floor(r() * c);
  return t;
}

/** GPU loss and dlogits for loss gradient g. */
async function lossAndGrad(rt: Runtime, x: Float32Array, shape: number[], targets: Int32Array, opts: CrossEntropyOptions = {}, g = 1): Promise<{ loss: number; dx: Float32Array }> {
  const xt = fromArray(rt, x, shape);
  xt.requiresGrad = true;
  const tt = fromArray(rt, targets, shape.slice(0, -1), 'i32');
  const out = crossEntropy(xt, tt, opts);
  assert.deepEqual(out.shape, []);
  const gT = fromArray(rt, [g], []);
  backward(out, gT);
  const loss = await out.item();
  const dx = await xt.grad!.toFloat32();
  xt.grad!.dispose();
  for (const u of [xt, tt, out, gT]) u.dispose();
  return { loss, dx };
}

async function lossOnly(rt: Runtime, x: Float32Array, shape: number[], targets: Tensor | Int32Array | number[], opts: CrossEntropyOptions = {}): Promise<number> {
  const out = tidy(() => {
    const t = targets instanceof Tensor || Array.isArray(targets) ? targets : fromArray(rt, targets, [targets.length], 'i32');
    return crossEntropy(fromArray(rt, x, shape), t, opts);
  });
  const v = await out.item();
  out.dispose();
  return v;
}

describe('crossEntropy', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  afterEach(() => {
    setRowLayout('auto');
  });

  // Class counts of 1, primes, either side of 32 and 64 (the per-row block), a 4097 vocabulary; a 3-D batch.
  const shapes = [[1, 1], [1, 7], [7, 5], [3, 31], [5, 33], [13, 97], [3, 4, 65], [2, 4097], [300, 129], [1024, 1031]];
  const layouts: RowLayoutMode[] = ['auto', 'invocation', 'workgroup'];

  for (const layout of layouts) {
    it(`forward and backward match the CPU reference (${layout} rows)`, async () => {
      setRowLayout(layout);
      for (const shape of shapes) {
        const c = shape[shape.length - 1];
        const n = numel(shape) / c;
        const x = randn(numel(shape), c, 3);
        const targets = randomTargets(n, c, c + 1, 4);
        for (const reduction of ['mean', 'sum'] as const) {
          const { loss, dx } = await lossAndGrad(rt, x, shape, targets, { reduction }, 0.75);
          const want = crossEntropyRef(x, targets, c, { reduction });
          assertClose([loss], [want.loss], { what: `loss [${shape}] ${reduction}`, atol: 1e-5, rtol: 1e-5 });
          assertClose(dx, crossEntropyGradRef(x, targets, c, 0.75, { reduction }), { what: `dlogits [${shape}] ${reduction}`, atol: 1e-6, rtol: 1e-4 });
        }
      }
    });
  }

  it('ignoreIndex rows take no loss and no gradient (custom index, out-of-range targets ignored too)', async () => {
    for (const layout of ['invocation', 'workgroup'] as const) {
      setRowLayout(layout);
      const c = 40;
      const x = randn(6 * c, 21, 2);
      // -100 is the ignore index; 40 and -3 are out of range and are treated as ignored on the GPU.
      const targets = Int32Array.from([3, -100, 39, 40, 0, -3]);
      const { loss, dx } = await lossAndGrad(rt, x, [6, c], targets, { ignoreIndex: -100 });
      const want = crossEntropyRef(x, targets, c, { ignoreIndex: -100 });
      assert.equal(want.count, 3);
      assertClose([loss], [want.loss], { what: 'loss with ignored rows', atol: 1e-5, rtol: 1e-5 });
      assertClose(dx, crossEntropyGradRef(x, targets, c, 1, { ignoreIndex: -100 }), { what: 'dlogits with ignored rows', atol: 1e-6 });
      for (const r of [1, 3, 5]) for (let j = 0; j < c; j++) assert.equal(dx[r * c + j], 0, `row ${r} col ${j}`);
      // -1 is an ordinary (out-of-range) target when the ignore index is -100: still ignored.
      const again = await lossOnly(rt, x, [6, c], Int32Array.from([3, -1, 39, 40, 0, -3]), { ignoreIndex: -100 });
      assertClose([again], [want.loss], { what: 'out-of-range -1', atol: 1e-5, rtol: 1e-5 });
    }
  });

  it('overwriteLogits: the same gradient, written over the logits (prime sizes, ignored rows, sum and mean)', async () => {
    for (const reduction of ['mean', 'sum'] as const) {
      const rows = 37;
      const c = 131;
      const x = randn(rows * c, 77, 3);
      const targets = randomTargets(rows, c, 78, 5);
      const { loss, dx } = await lossAndGrad(rt, x, [rows, c], targets, { reduction, overwriteLogits: true }, 0.7);
      const want = crossEntropyRef(x, targets, c, { reduction });
      assertClose([loss], [want.loss], { what: `loss (${reduction})`, atol: 1e-5, rtol: 1e-5 });
      assertClose(dx, crossEntropyGradRef(x, targets, c, 0.7, { reduction }), { what: `dlogits in place (${reduction})`, atol: 1e-6 });
    }
    // The logits tensor itself now holds the gradient.
    const xt = fromArray(rt, randn(3 * 5, 9), [3, 5]);
    xt.requiresGrad = true;
    const out = crossEntropy(xt, Int32Array.from([0, 4, 2]), { overwriteLogits: true });
    backward(out);
    const [after, grad] = [await xt.toFloat32(), await xt.grad!.toFloat32()];
    assertClose(after, grad, { what: 'logits overwritten by their gradient', atol: 0 });
    for (const u of [xt, xt.grad!, out]) u.dispose();
  });

  it('every row ignored: loss 0 and zero gradient, not NaN', async () => {
    for (const layout of ['invocation', 'workgroup'] as const) {
      setRowLayout(layout);
      const { loss, dx } = await lossAndGrad(rt, randn(4 * 9, 5), [4, 9], Int32Array.from([-1, -1, -1, -1]));
      assert.equal(loss, 0);
      assert.ok(dx.every((v) => v === 0), 'all-zero gradient');
    }
    assert.equal(await lossOnly(rt, new Float32Array(0), [0, 9], new Int32Array(0)), 0, 'no rows at all');
  });

  it('shape and type errors name both shapes', () => {
    const x = fromArray(rt, randn(12, 1), [4, 3]);
    const t = fromArray(rt, [0, 1, 2], [3], 'i32');
    assert.throws(() => crossEntropy(x, t), (e: Error) => e instanceof ShapeError && e.message.includes('[3]') && e.message.includes('[4, 3]'));
    assert.throws(() => crossEntropy(x, [0, 1]), (e: Error) => e instanceof ShapeError && e.message.includes('[2]') && e.message.includes('[4, 3]'));
    const tf = fromArray(rt, [0, 1, 2, 0], [4], 'f32');
    assert.throws(() => crossEntropy(x, tf), TypeError);
    for (const u of [x, t, tf]) u.dispose();
  });

  it('host targets are range-checked before upload', async () => {
    const x = randn(12, 2);
    assert.throws(() => tidy(() => crossEntropy(fromArray(rt, x, [4, 3]), [0, 3, 1, 2])), (e: Error) => e instanceof RangeError && /target 3 at row 1/.test(e.message));
    assert.throws(() => tidy(() => crossEntropy(fromArray(rt, x, [4, 3]), [0, -2, 1, 2])), RangeError);
    const targets = [0, -1, 1, 2];
    const got = await lossOnly(rt, x, [4, 3], targets);
    assertClose([got], [crossEntropyRef(x, targets, 3).loss], { what: 'host targets', atol: 1e-5, rtol: 1e-5 });
  });

  it('large logits (~1e4) give a finite, accurate loss and gradient', async () => {
    for (const [shape, layout] of [[[5, 7], 'invocation'], [[5, 7], 'workgroup'], [[3, 300], 'invocation'], [[3, 300], 'workgroup']] as const) {
      setRowLayout(layout);
      const c = shape[1];
      const x = randn(numel(shape), 17, 5).map((v) => 1e4 + v);
      x[0] = -1e4;
      x[c + 1] = 3e4;
      const targets = Int32Array.from({ length: shape[0] }, (_, i) => (i * 3) % c);
      const { loss, dx } = await lossAndGrad(rt, x, [...shape], targets);
      assert.ok(Number.isFinite(loss), `loss ${loss}`);
      assertClose([loss], [crossEntropyRef(x, targets, c).loss], { what: `large-logit loss [${shape}]`, atol: 1e-3, rtol: 1e-4 });
      assertClose(dx, crossEntropyGradRef(x, targets, c), { what: `large-logit dlogits [${shape}]`, atol: 1e-5, rtol: 1e-3 });
    }
  });

  it('finite-difference gradient check (both row layouts)', async () => {
    for (const layout of ['invocation', 'workgroup'] as const) {
      setRowLayout(layout);
      await gradCheck(rt, (x, t) => crossEntropy(x, t), [
        { data: randn(5 * 7, 30), shape: [5, 7] },
        { data: Int32Array.from([3, -1, 0, 6, 2]), shape: [5], dtype: 'i32' },
      ], { samples: 16 });
      await gradCheck(rt, (x, t) => crossEntropy(x, t, { reduction: 'sum' }), [
        { data: randn(2 * 3 * 70, 31), shape: [2, 3, 70] },
        { data: Int32Array.from([69, 0, 11, -1, 35, 1]), shape: [2, 3], dtype: 'i32' },
      ], { samples: 16 });
    }
  });
});
