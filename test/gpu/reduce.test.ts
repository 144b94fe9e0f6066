import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn, rng } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, Tensor, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { RowLayoutMode, argmax, max, mean, setRowLayout, sum, sumToShape } from '../../src/engine/ops/reduce';
import { argmaxRef, maxGradRef, maxRef, meanRef, sumRef } from '../../src/engine/cpu/reduce';
import { sumToShapeRef } from '../../src/engine/cpu/elementwise';

/** Distinct values (a shuffled ramp) so that max and argmax have no ties and finite differences cannot flip them. */
function distinct(n: number, seed: number, step = 0.1): Float32Array {
  const r = rng(seed);
  const out = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * step);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function run(rt: Runtime, f: (x: Tensor) => Tensor, data: Float32Array, shape: number[]): Promise<{ data: Float32Array | Int32Array | Uint32Array; shape: readonly number[] }> {
  const out = tidy(() => f(fromArray(rt, data, shape)));
  const res = { data: await out.toArray(), shape: out.shape };
  out.dispose();
  return res;
}

async function gradOf(rt: Runtime, f: (x: Tensor) => Tensor, data: Float32Array, shape: number[], g: Float32Array): Promise<Float32Array> {
  const x = fromArray(rt, data, shape);
  x.requiresGrad = true;
  const out = f(x);
  const gT = fromArray(rt, g, out.shape);
  backward(out, gT);
  const dx = await x.grad!.toFloat32();
  x.grad!.dispose();
  for (const t of [x, out, gT]) t.dispose();
  return dx;
}

describe('reductions', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  const shapes = [[1], [7], [13, 1], [1, 13], [3, 5, 7], [2, 3, 4, 5], [67, 97]];

  afterEach(() => {
    setRowLayout('auto');
  });

  // 'auto' picks the row kernel by adapter; forcing each layout covers both kernels on any adapter.
  const layouts: RowLayoutMode[] = ['auto', 'invocation', 'workgroup'];

  for (const layout of layouts) {
    it(`sum, mean and max over every axis (negative too, keepDim or not) match the CPU reference (${layout} rows)`, async () => {
      setRowLayout(layout);
      for (const shape of shapes) {
        const x = distinct(numel(shape), 1);
        for (let axis = -shape.length; axis < shape.length; axis++) {
          for (const keepDim of [false, true]) {
            for (const [name, f, ref] of [
              ['sum', sum, sumRef],
              ['mean', mean, meanRef],
              ['max', max, maxRef],
            ] as const) {
              const got = await run(rt, (t) => f(t, axis, keepDim), x, shape);
              const want = ref(x, shape, axis, keepDim);
              const what = `${name} [${shape}] axis ${axis} keepDim ${keepDim}`;
              assert.deepEqual(got.shape, want.shape, what);
              assertClose(got.data, want.data, { what });
            }
          }
        }
      }
    });
  }

  it('sum and mean of all elements give shape []', async () => {
    for (const shape of shapes) {
      const x = randn(numel(shape), 2);
      const s = await run(rt, (t) => sum(t), x, shape);
      assert.deepEqual(s.shape, []);
      assertClose(s.data, sumRef(x, shape).data, { what: `sum [${shape}]` });
      const m = await run(rt, (t) => mean(t, undefined, true), x, shape);
      assert.deepEqual(m.shape, shape.map(() => 1));
      assertClose(m.data, meanRef(x, shape).data, { what: `mean [${shape}]` });
    }
  });

  // Long axes take the multi-pass paths: long rows (1 of 1M, 300 of 5,003) split across workgroups or, one
  // invocation per row, into chunked columns; 600 rows of 1,500 in one pass; a long first axis over few columns
  // (50,000 × 3) and a long middle axis, both chunked.
  const long: [number[], number][] = [
    [[1_000_003], 0],
    [[1, 1_000_003], -1],
    [[300, 5003], 1],
    [[600, 1500], 1],
    [[50_000, 3], 0],
    [[3, 50_000, 2], 1],
    [[65, 4097], 0],
  ];

  for (const layout of layouts) {
    it(`sum, mean, max and argmax over long axes (${layout} rows)`, async () => {
      setRowLayout(layout);
      for (const [shape, axis] of long) {
        const n = numel(shape);
        const x = randn(n, 3);
        const len = shape[axis < 0 ? axis + shape.length : axis];
        // f32 partial sums against an f64 reference: allow for the rounding of len additions.
        const atol = 1e-5 * Math.sqrt(len);
        for (const [name, f, ref] of [['sum', sum, sumRef], ['mean', mean, meanRef], ['max', max, maxRef]] as const) {
          const got = await run(rt, (t) => f(t, axis), x, shape);
          assertClose(got.data, ref(x, shape, axis).data, { what: `${name} [${shape}] axis ${axis}`, atol, rtol: 1e-5 });
        }
        const am = await run(rt, (t) => argmax(t, axis), x, shape);
        assert.ok(am.data instanceof Int32Array, 'argmax returns i32');
        assert.deepEqual([...am.data], [...argmaxRef(x, shape, axis).data], `argmax [${shape}] axis ${axis}`);
      }
    });
  }

  it('a workgroup per row past 65,535 rows (grid folded into y)', async () => {
    setRowLayout('workgroup');
    const shape = [65_537, 40];
    const x = randn(numel(shape), 21);
    const s = await run(rt, (t) => sum(t, -1), x, shape);
    assertClose(s.data, sumRef(x, shape, -1).data, { what: 'sum of 65,537 rows' });
    const am = await run(rt, (t) => argmax(t, -1), x, shape);
    assert.deepEqual([...am.data], [...argmaxRef(x, shape, -1).data]);
  });

  it('argmax and max backward pick the first of equal maxima, also across chunks', async () => {
    const n = 1_000_003;
    const x = new Float32Array(n);
    // Equal maxima in different chunks of every pass; the first must win.
    for (const i of [999_999, 123_457, 5000, 700_001]) x[i] = 3;
    for (const layout of layouts) {
      setRowLayout(layout);
      const am = await run(rt, (t) => argmax(t), x, [1, n]);
      assert.deepEqual([...am.data], [5000], `${layout} rows`);
    }
    setRowLayout('auto');
    const cols = new Float32Array(50_000 * 3).fill(-1);
    for (const r of [40_000, 777, 30_001]) cols[r * 3 + 1] = 2;
    const amc = await run(rt, (t) => argmax(t, 0), cols, [50_000, 3]);
    assert.deepEqual([...amc.data], [...argmaxRef(cols, [50_000, 3], 0).data]);
    assert.equal(amc.data[1], 777);
    const dx = await gradOf(rt, (t) => max(t, 0), cols, [50_000, 3], Float32Array.of(1, 2, 3));
    assert.deepEqual([...dx.keys()].filter((i) => dx[i] !== 0), [0, 2, 777 * 3 + 1]);
    assertClose(dx, maxGradRef(cols, [50_000, 3], 0, Float32Array.of(1, 2, 3)), { what: 'max backward with ties' });
    // Rows of -inf still name an element.
    const ninf = new Float32Array(70).fill(-Infinity);
    const ami = await run(rt, (t) => argmax(t, -1), ninf, [2, 35]);
    assert.deepEqual([...ami.data], [0, 0]);
  });

  it('backward of sum, mean and max matches the CPU reference', async () => {
    for (const [shape, axis] of [[[3, 5, 7], 1], [[1, 13], 0], [[67, 97], -1], [[300, 5003], 1], [[50_000, 3], 0]] as [number[], number][]) {
      const n = numel(shape);
      const x = distinct(n, 4, 1e-3);
      const outShape = shape.filter((_, k) => k !== (axis < 0 ? axis + shape.length : axis));
      const g = randn(numel(outShape), 5);
      const len = shape[axis < 0 ? axis + shape.length : axis];
      const outer = numel(shape.slice(0, axis < 0 ? axis + shape.length : axis));
      const inner = n / (outer * len);
      const expand = (scale: number) => {
        const want = new Float32Array(n);
        for (let o = 0; o < outer; o++) for (let l = 0; l < len; l++) for (let i = 0; i < inner; i++) want[(o * len + l) * inner + i] = g[o * inner + i] * scale;
        return want;
      };
      assertClose(await gradOf(rt, (t) => sum(t, axis), x, shape, g), expand(1), { what: `sum' [${shape}]` });
      assertClose(await gradOf(rt, (t) => mean(t, axis), x, shape, g), expand(1 / len), { what: `mean' [${shape}]` });
      assertClose(await gradOf(rt, (t) => max(t, axis), x, shape, g), maxGradRef(x, shape, axis, g), { what: `max' [${shape}]` });
    }
  });

  it('finite-difference gradient checks: sum, mean, max, sumToShape', async () => {
    const x = distinct(60, 6);
    await gradCheck(rt, (t) => sum(t, 1), [{ data: x, shape: [3, 4, 5] }]);
    await gradCheck(rt, (t) => sum(t), [{ data: x, shape: [3, 4, 5] }]);
    await gradCheck(rt, (t) => mean(t, 0, true), [{ data: x, shape: [3, 4, 5] }]);
    await gradCheck(rt, (t) => max(t, -1), [{ data: x, shape: [3, 4, 5] }], { samples: 30 });
    await gradCheck(rt, (t) => max(t, 1, true), [{ data: x, shape: [3, 4, 5] }], { samples: 30 });
    await gradCheck(rt, (t) => sumToShape(t, [3, 1, 5]), [{ data: x, shape: [3, 4, 5] }]);
    await gradCheck(rt, (t) => sumToShape(t, [4, 1]), [{ data: x, shape: [3, 4, 5] }]);
  });

  it('sumToShape reduces broadcast dims back to the operand shape', async () => {
    const cases: [number[], number[]][] = [
      [[2, 3, 4], [3, 1]],
      [[5, 7], []],
      [[5, 7], [1]],
      [[4, 1, 6], [1, 1, 6]],
      [[3, 4, 5], [4, 1]],
      [[2, 3, 4, 5], [2, 1, 4, 1]],
      [[7, 11, 13], [7, 1, 13]],
      [[1, 13], [13]],
      [[50_000, 3], [3]],
    ];
    for (const [from, to] of cases) {
      const x = randn(numel(from), 7);
      const got = await run(rt, (t) => sumToShape(t, to), x, from);
      assert.deepEqual(got.shape, to, `[${from}] -> [${to}]`);
      assertClose(got.data, sumToShapeRef(x, from, to), { what: `sumToShape [${from}] -> [${to}]`, atol: 1e-3 });
    }
    const t = fromArray(rt, new Float32Array(12), [3, 4]);
    assert.equal(sumToShape(t, [3, 4]), t, 'same shape returns the tensor itself');
    assert.throws(() => sumToShape(t, [3]), (e: unknown) => e instanceof ShapeError && e.message.includes('[3, 4]') && e.message.includes('[3]'));
    assert.throws(() => sumToShape(t, [2, 3, 4]), ShapeError);
    t.dispose();
  });

  it('rejects out-of-range axes and non-f32 input', async () => {
    const t = fromArray(rt, new Float32Array(6), [2, 3]);
    for (const axis of [2, -3]) {
      assert.throws(() => sum(t, axis), (e: unknown) => e instanceof ShapeError && e.message.includes('[2, 3]'));
      assert.throws(() => max(t, axis), ShapeError);
      assert.throws(() => argmax(t, axis), ShapeError);
    }
    const i = fromArray(rt, new Int32Array(6), [2, 3], 'i32');
    assert.throws(() => sum(i), TypeError);
    t.dispose();
    i.dispose();
  });
});
