import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn, rng } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, Tensor, fromArray, numel, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import * as ew from '../../src/engine/ops/elementwise';
import {
  BinaryOpName, UnaryOpName, ActName, binaryRef, binaryGradRef, unaryRef, unaryGradRef, biasActRef, biasActGradRef,
} from '../../src/engine/cpu/elementwise';

const BINARY: Record<BinaryOpName, (a: Tensor, b: Tensor) => Tensor> = { add: ew.add, sub: ew.sub, mul: ew.mul, div: ew.div };
const UNARY: Record<UnaryOpName, (x: Tensor) => Tensor> = {
  exp: ew.exp, log: ew.log, sqrt: ew.sqrt, tanh: ew.tanh, sigmoid: ew.sigmoid, relu: ew.relu, gelu: ew.gelu, neg: ew.neg,
};

/** Operand data for an op: positive where the op needs it, away from 0 for divisors and kinks. */
function dataFor(op: string, n: number, seed: number): Float32Array {
  const x = randn(n, seed);
  if (op === 'log' || op === 'sqrt') return x.map((v) => 0.1 + Math.abs(v));
  // relu's kink and a divisor near 0 would make finite differences (eps 1e-2) meaningless.
  if (op === 'relu' || op === 'div') return x.map((v) => (v >= 0 ? 0.2 + v : v - 0.2));
  return x;
}

/** Run f forward, backward with output gradient g, and read every input's gradient. */
async function gradsOf(rt: Runtime, f: (...xs: Tensor[]) => Tensor, inputs: { data: Float32Array; shape: number[] }[], g: Float32Array): Promise<Float32Array[]> {
  const xs = inputs.map((i) => {
    const t = fromArray(rt, i.data, i.shape);
    t.requiresGrad = true;
    return t;
  });
  const out = f(...xs);
  const gT = fromArray(rt, g, out.shape);
  backward(out, gT);
  const res: Float32Array[] = [];
  for (const x of xs) {
    assert.ok(x.grad, 'an input got no gradient');
    res.push(await x.grad.toFloat32());
    x.grad.dispose();
    x.dispose();
  }
  out.dispose();
  gT.dispose();
  return res;
}

describe('elementwise ops', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });

  // Pairs that exercise each broadcast path: equal shapes, scalars, both operands broadcast, a bias row, and a
  // rank-6 alternation that collapses to nothing simpler.
  const pairs: [number[], number[]][] = [
    [[1], [1]],
    [[7], [7]],
    [[], [5, 3]],
    [[13, 1], [1, 17]],
    [[3, 1, 5], [4, 1]],
    [[97, 257], [257]],
    [[6, 1, 1], [6, 5, 1]],
    [[2, 1, 4, 1, 3, 1], [1, 3, 1, 5, 1, 7]],
  ];

  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it(`${op} broadcasts like NumPy (scalars, primes, rank 6)`, async () => {
      for (const [sa, sb] of pairs) {
        const a = dataFor(op, numel(sa), 1);
        const b = dataFor(op, numel(sb), 2);
        const want = binaryRef(op, a, sa, b, sb);
        const out = tidy(() => BINARY[op](fromArray(rt, a, sa), fromArray(rt, b, sb)));
        assert.deepEqual(out.shape, want.shape, `${op} ${sa} ${sb} shape`);
        assertClose(await out.toFloat32(), want.data, { what: `${op} [${sa}] [${sb}]` });
        out.dispose();
        // And the operands swapped, so that broadcasting on the left side is covered too.
        const want2 = binaryRef(op, b, sb, a, sa);
        const out2 = tidy(() => BINARY[op](fromArray(rt, b, sb), fromArray(rt, a, sa)));
        assertClose(await out2.toFloat32(), want2.data, { what: `${op} [${sb}] [${sa}]` });
        out2.dispose();
      }
    });
  }

  it('binary ops over more than 1M elements (equal shapes and a broadcast row)', async () => {
    const rows = 1031;
    const d = 1021;
    const a = randn(rows * d, 3);
    const b = randn(rows * d, 4).map((v) => (v >= 0 ? 0.5 + v : v - 0.5));
    const row = b.subarray(0, d);
    const out = tidy(() => ew.div(fromArray(rt, a, [rows, d]), fromArray(rt, b, [rows, d])));
    assertClose(await out.toFloat32(), binaryRef('div', a, [rows, d], b, [rows, d]).data, { what: 'div same' });
    out.dispose();
    const out2 = tidy(() => ew.mul(fromArray(rt, a, [rows, d]), fromArray(rt, row, [d])));
    assertClose(await out2.toFloat32(), binaryRef('mul', a, [rows, d], row, [d]).data, { what: 'mul broadcast row' });
    out2.dispose();
  });

  it('mismatched shapes throw ShapeError naming both shapes', async () => {
    const a = fromArray(rt, new Float32Array(12), [3, 4]);
    const b = fromArray(rt, new Float32Array(5), [5]);
    assert.throws(() => ew.add(a, b), (e: unknown) => e instanceof ShapeError && e.message.includes('[3, 4]') && e.message.includes('[5]'));
    // Seven alternating broadcast dims cannot be merged below rank 7.
    const c = fromArray(rt, new Float32Array(16), [2, 1, 2, 1, 2, 1, 2]);
    const e = fromArray(rt, new Float32Array(8), [1, 2, 1, 2, 1, 2, 1]);
    assert.throws(() => ew.mul(c, e), ShapeError);
    for (const t of [a, b, c, e]) t.dispose();
  });

  it('binary backward sums the gradient over broadcast dims', async () => {
    for (const op of ['add', 'sub', 'mul', 'div'] as const) {
      for (const [sa, sb] of [[[37, 1, 5], [4, 1]], [[1], [9, 11]], [[211, 64], [64]]] as [number[], number[]][]) {
        const a = dataFor(op, numel(sa), 5);
        const b = dataFor(op, numel(sb), 6);
        const g = randn(binaryRef(op, a, sa, b, sb).data.length, 7);
        const [da, db] = await gradsOf(rt, BINARY[op], [{ data: a, shape: sa }, { data: b, shape: sb }], g);
        const want = binaryGradRef(op, a, sa, b, sb, g);
        assertClose(da, want.da, { what: `${op} da [${sa}] [${sb}]`, atol: 1e-3, rtol: 1e-3 });
        assertClose(db, want.db, { what: `${op} db [${sa}] [${sb}]`, atol: 1e-3, rtol: 1e-3 });
      }
    }
  });

  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it(`${op} passes a finite-difference gradient check with broadcasting`, async () => {
      await gradCheck(rt, BINARY[op], [
        { data: dataFor(op, 15, 8), shape: [3, 1, 5] },
        { data: dataFor(op, 4, 9), shape: [4, 1] },
      ]);
    });
  }

  for (const op of ['exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'gelu', 'neg'] as const) {
    it(`${op}: forward and backward match the CPU reference; finite-difference check`, async () => {
      for (const n of [1, 7, 257, 4099]) {
        const x = dataFor(op, n, 10 + n);
        const g = randn(n, 11);
        const out = tidy(() => UNARY[op](fromArray(rt, x, [n])));
        assertClose(await out.toFloat32(), unaryRef(op, x), { what: `${op} n=${n}`, atol: 1e-5, rtol: 1e-5 });
        out.dispose();
        const [dx] = await gradsOf(rt, UNARY[op], [{ data: x, shape: [n] }], g);
        assertClose(dx, unaryGradRef(op, x, g), { what: `${op}' n=${n}`, atol: 1e-5, rtol: 1e-4 });
      }
      await gradCheck(rt, UNARY[op], [{ data: dataFor(op, 23, 12), shape: [23] }]);
    });
  }

  it('unary ops over 1M elements (forward for each, backward for gelu)', async () => {
    const n = 1_000_003;
    const x = randn(n, 20, 3);
    const xp = x.map((v) => 0.1 + Math.abs(v));
    const xt = fromArray(rt, x, [n]);
    const xpt = fromArray(rt, xp, [n]);
    for (const op of ['exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'gelu', 'neg'] as const) {
      const positive = op === 'log' || op === 'sqrt';
      const out = UNARY[op](positive ? xpt : xt);
      assertClose(await out.toFloat32(), unaryRef(op, positive ? xp : x), { what: `${op} n=${n}`, atol: 1e-5, rtol: 1e-5 });
      out.dispose();
    }
    xt.dispose();
    xpt.dispose();
    const g = randn(n, 21);
    const [dx] = await gradsOf(rt, ew.gelu, [{ data: x, shape: [n] }], g);
    assertClose(dx, unaryGradRef('gelu', x, g), { what: `gelu' n=${n}`, atol: 1e-5, rtol: 1e-4 });
  });

  it('saturating activations stay finite for large inputs', async () => {
    const x = Float32Array.from([-1e4, -100, -30, -10, 0, 10, 30, 100, 1e4, 1e20]);
    for (const op of ['tanh', 'sigmoid', 'gelu'] as const) {
      const out = tidy(() => UNARY[op](fromArray(rt, x, [x.length])));
      const got = await out.toFloat32();
      out.dispose();
      assertClose(got, unaryRef(op, x), { what: op, atol: 1e-6, rtol: 1e-6 });
    }
  });

  it('addScalar, mulScalar, neg: values and gradients', async () => {
    const x = randn(263, 13);
    const cases: [(t: Tensor) => Tensor, (v: number) => number, number][] = [
      [(t) => ew.addScalar(t, 2.5), (v) => v + 2.5, 1],
      [(t) => ew.mulScalar(t, -3), (v) => v * -3, -3],
      [(t) => ew.neg(t), (v) => -v, -1],
    ];
    for (const [f, ref, slope] of cases) {
      const out = tidy(() => f(fromArray(rt, x, [263])));
      assertClose(await out.toFloat32(), x.map(ref), { what: 'scalar op' });
      out.dispose();
      const g = randn(263, 14);
      const [dx] = await gradsOf(rt, f, [{ data: x, shape: [263] }], g);
      assertClose(dx, g.map((v) => v * slope), { what: 'scalar op grad' });
      await gradCheck(rt, f, [{ data: x.slice(0, 11), shape: [11] }]);
    }
  });

  for (const act of ['none', 'relu', 'gelu'] as const) {
    it(`biasAct(${act}): fused forward, dx and dbias match the CPU reference; finite-difference check`, async () => {
      // The long cases: a 50,000-wide row, 20,011 rows summed into dbias, and (gelu) over 1M elements.
      const shapes = [[1, 1], [7, 13], [613, 97], [1, 50_000], [20_011, 3], ...(act === 'gelu' ? [[4099, 257]] : [])];
      for (const [rows, d] of shapes) {
        const bias = randn(d, 15);
        // Keep x + bias away from relu's kink.
        const x = randn(rows * d, 16).map((v, i) => {
          const z = v + bias[i % d];
          return Math.abs(z) < 0.05 ? v + 0.1 : v;
        });
        const out = tidy(() => ew.biasAct(fromArray(rt, x, [rows, d]), fromArray(rt, bias, [d]), act));
        assertClose(await out.toFloat32(), biasActRef(x, bias, act as ActName), { what: `biasAct ${act} [${rows}, ${d}]`, atol: 1e-5, rtol: 1e-5 });
        out.dispose();
        const g = randn(rows * d, 17);
        const [dx, db] = await gradsOf(rt, (a, b) => ew.biasAct(a, b, act), [{ data: x, shape: [rows, d] }, { data: bias, shape: [d] }], g);
        const want = biasActGradRef(x, bias, act as ActName, g);
        assertClose(dx, want.dx, { what: `biasAct ${act} dx [${rows}, ${d}]`, atol: 1e-5, rtol: 1e-4 });
        assertClose(db, want.dbias, { what: `biasAct ${act} dbias [${rows}, ${d}]`, atol: 1e-3, rtol: 1e-4 });
      }
      const bias = Float32Array.from([0.3, -0.7, 1.1, -0.2, 0.5]);
      const x = randn(3 * 2 * 5, 18).map((v, i) => (Math.abs(v + bias[i % 5]) < 0.05 ? v + 0.1 : v));
      await gradCheck(rt, (a, b) => ew.biasAct(a, b, act), [{ data: x, shape: [3, 2, 5] }, { data: bias, shape: [5] }], { samples: 30 });
    });
  }

  it('biasAct rejects a bias that does not match the last axis', async () => {
    const x = fromArray(rt, new Float32Array(12), [3, 4]);
    const b = fromArray(rt, new Float32Array(3), [3]);
    assert.throws(() => ew.biasAct(x, b, 'relu'), (e: unknown) => e instanceof ShapeError && e.message.includes('[3, 4]') && e.message.includes('[3]'));
    x.dispose();
    b.dispose();
  });

  it('a gradient reaching one tensor through two broadcast paths accumulates', async () => {
    // y = x·x + x (x used three times): dy/dx = 2x + 1.
    const r = rng(19);
    const x = Float32Array.from({ length: 29 }, () => r() * 4 - 2);
    const [dx] = await gradsOf(rt, (t) => ew.add(ew.mul(t, t), t), [{ data: x, shape: [29] }], new Float32Array(29).fill(1));
    assertClose(dx, x.map((v) => 2 * v + 1), { what: 'x*x + x' });
  });
});
