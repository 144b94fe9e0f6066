import * as assert from 'node:assert/strict';
import { runtime, assertClose, gradCheck, randn } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { ShapeError, Tensor, fromArray, numel } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { MatmulTiles, linear, matmul, setMatmulTiles, setMatmulVec4 } from '../../src/engine/ops/matmul';
import { matmulRef, linearRef } from '../../src/engine/cpu/matmul';

const TRANS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

function stored(rows: number, cols: number, trans: boolean): number[] {
  return trans ? [cols, rows] : [rows, cols];
}

/** Transpose the last two dims of a batch of [r, c] matrices (CPU). */
function transpose(x: Float32Array, batch: number, r: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let t = 0; t < batch; t++) for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[t * r * c + j * r + i] = x[t * r * c + i * c + j];
  return out;
}

async function read(t: Tensor): Promise<Float32Array> {
  const y = await t.toFloat32();
  t.dispose();
  return y;
}

describe('matmul and linear', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });
  afterEach(() => {
    setMatmulTiles(null);
    setMatmulVec4('auto');
  });

  // 1, primes, either side of the 64-row / 64-column workgroup block, K not a multiple of 4, and a larger one
  // (scalar-load kernel); then K and N multiples of 4 with ragged M and N edges (vec4 kernel, M % 4 decides it
  // for transposed A).
  const shapes = [
    [12, 8, 20],
    [65, 4, 68],
    [100, 36, 132],
    [1, 1, 1],
    [1, 5, 3],
    [4, 1, 9],
    [7, 13, 5],
    [31, 17, 29],
    [63, 6, 65],
    [64, 64, 64],
    [65, 3, 127],
    [257, 300, 129],
  ];

  for (const [ta, tb] of TRANS) {
    it(`2-D forward matches the CPU reference (transA ${ta}, transB ${tb})`, async () => {
      for (const [m, k, n] of shapes) {
        const a = randn(m * k, m + k);
        const b = randn(k * n, n + 1);
        const out = matmul(fromArray(rt, a, stored(m, k, ta)), fromArray(rt, b, stored(k, n, tb)), { transA: ta, transB: tb });
        assert.deepEqual(out.shape, [m, n]);
        assertClose(await read(out), matmulRef(a, b, m, k, n, { transA: ta, transB: tb }), { what: `[${m},${k}]x[${k},${n}] ta=${ta} tb=${tb}`, atol: 1e-4, rtol: 1e-4 });
      }
    });
  }

  it('the scalar-load kernel on shapes the vec4 kernel would take', async () => {
    setMatmulVec4('scalar');
    for (const [ta, tb] of TRANS) {
      for (const [m, k, n] of [[64, 64, 64], [12, 8, 20]]) {
        const a = randn(m * k, 1);
        const b = randn(k * n, 2);
        const out = matmul(fromArray(rt, a, stored(m, k, ta)), fromArray(rt, b, stored(k, n, tb)), { transA: ta, transB: tb });
        assertClose(await read(out), matmulRef(a, b, m, k, n, { transA: ta, transB: tb }), { what: `scalar [${m},${k},${n}] ${ta} ${tb}` });
      }
    }
  });

  it('the 16 × 16 block kernel (large products on software adapters): ragged edges, transposed B, bias, batches', async () => {
    setMatmulVec4('wide');
    // K and N multiples of 4; M and N not multiples of the 16-row/16-column block nor of the workgroup's 128.
    for (const tb of [false, true]) {
      for (const [m, k, n] of [[1, 4, 4], [17, 8, 20], [130, 36, 132], [257, 128, 260]]) {
        const a = randn(m * k, m + 3);
        const b = randn(k * n, n + 5);
        const out = matmul(fromArray(rt, a, stored(m, k, false)), fromArray(rt, b, stored(k, n, tb)), { transB: tb });
        assertClose(await read(out), matmulRef(a, b, m, k, n, { transB: tb }), { what: `wide [${m},${k},${n}] tb=${tb}`, atol: 1e-4, rtol: 1e-4 });
      }
    }
    // linear (bias in the epilogue, W stored [out, in]) on a 3-D input, and a sum over a batch.
    const x = randn(3 * 33 * 16, 9);
    const w = randn(44 * 16, 10);
    const bias = randn(44, 11);
    const y = linear(fromArray(rt, x, [3, 33, 16]), fromArray(rt, w, [44, 16]), fromArray(rt, bias, [44]));
    const ref = matmulRef(x, w, 99, 16, 44, { transB: true });
    for (let r = 0; r < 99; r++) for (let j = 0; j < 44; j++) ref[r * 44 + j] += bias[j];
    assertClose(await read(y), ref, { what: 'wide linear', atol: 1e-4, rtol: 1e-4 });
  });

  it('other tile shapes (as a GPU adapter would use) give the same results', async () => {
    const tiles: MatmulTiles[] = [
      { wgx: 16, wgy: 16, tm: 4, tn4: 1 },
      { wgx: 4, wgy: 8, tm: 3, tn4: 2 },
    ];
    for (const [ti, t] of tiles.entries()) {
      setMatmulTiles(t);
      for (const [ta, tb] of TRANS) {
        // The vec4 kernel (only its workgroup shape changes) once per transpose: each variant compiles for seconds.
        const cases = ti === 1 ? [[7, 13, 5], [65, 3, 127], [20, 8, 132]] : [[7, 13, 5], [65, 3, 127]];
        for (const [m, k, n] of cases) {
          const a = randn(m * k, 3);
          const b = randn(k * n, 4);
          const out = matmul(fromArray(rt, a, stored(m, k, ta)), fromArray(rt, b, stored(k, n, tb)), { transA: ta, transB: tb });
          assertClose(await read(out), matmulRef(a, b, m, k, n, { transA: ta, transB: tb }), { what: `tiles ${JSON.stringify(t)} [${m},${k},${n}] ${ta} ${tb}` });
        }
      }
    }
  });

  it('batched: equal batch dims, and a 2-D operand shared across the batch', async () => {
    const batchShape = [2, 3];
    const batch = numel(batchShape);
    for (const [m, k, n] of [[19, 11, 37], [12, 8, 36]])
    for (const [ta, tb] of TRANS) {
      const a = randn(batch * m * k, 5);
      const b = randn(batch * k * n, 6);
      const aT = fromArray(rt, a, [...batchShape, ...stored(m, k, ta)]);
      const bT = fromArray(rt, b, [...batchShape, ...stored(k, n, tb)]);
      const a2 = fromArray(rt, a.subarray(0, m * k), stored(m, k, ta));
      const b2 = fromArray(rt, b.subarray(0, k * n), stored(k, n, tb));
      const what = `[${m},${k},${n}] ta=${ta} tb=${tb}`;
      const both = matmul(aT, bT, { transA: ta, transB: tb });
      assert.deepEqual(both.shape, [...batchShape, m, n]);
      assertClose(await read(both), matmulRef(a, b, m, k, n, { transA: ta, transB: tb, batch }), { what: `batched ${what}` });
      const bShared = matmul(aT, b2, { transA: ta, transB: tb });
      assertClose(await read(bShared), matmulRef(a, b, m, k, n, { transA: ta, transB: tb, batch, bShared: true }), { what: `B shared ${what}` });
      const aShared = matmul(a2, bT, { transA: ta, transB: tb });
      assert.deepEqual(aShared.shape, [...batchShape, m, n]);
      assertClose(await read(aShared), matmulRef(a, b, m, k, n, { transA: ta, transB: tb, batch, aShared: true }), { what: `A shared ${what}` });
      for (const t of [aT, bT, a2, b2]) t.dispose();
    }
  });

  it('large grids: more than 65,535 workgroups (folded into y), a long contraction, a wide output', async () => {
    // One element per invocation and workgroup: 600,000 rows are 600,000 workgroups.
    setMatmulTiles({ wgx: 1, wgy: 1, tm: 1, tn4: 1 });
    const [m, k, n] = [600_000, 3, 2];
    const a = randn(m * k, 8);
    const b = randn(k * n, 9);
    assertClose(await read(matmul(fromArray(rt, a, [m, k]), fromArray(rt, b, [k, n]))), matmulRef(a, b, m, k, n), { what: 'tall' });
    setMatmulTiles(null);
    const [m2, k2, n2] = [3, 4097, 5];
    const c = randn(m2 * k2, 10);
    const d = randn(k2 * n2, 11);
    assertClose(await read(matmul(fromArray(rt, c, [m2, k2]), fromArray(rt, d, [k2, n2]))), matmulRef(c, d, m2, k2, n2), { what: 'long K', atol: 1e-3 });
    // Wide: 70,000 columns.
    const e = randn(2 * 70_000, 12);
    const f = randn(2 * 2, 13);
    assertClose(await read(matmul(fromArray(rt, f, [2, 2]), fromArray(rt, e, [2, 70_000]))), matmulRef(f, e, 2, 2, 70_000), { what: 'wide' });
  });

  it('an empty contraction gives zeros (plus the bias)', async () => {
    const out = matmul(fromArray(rt, new Float32Array(0), [3, 0]), fromArray(rt, new Float32Array(0), [0, 5]));
    assert.deepEqual(Array.from(await read(out)), new Array(15).fill(0));
    const y = linear(fromArray(rt, new Float32Array(0), [2, 0]), fromArray(rt, new Float32Array(0), [3, 0]), fromArray(rt, [1, 2, 3], [3]));
    assert.deepEqual(Array.from(await read(y)), [1, 2, 3, 1, 2, 3]);
  });

  it('linear on 3-D input with and without bias matches the CPU reference', async () => {
    const lead = [3, 7];
    const rows = numel(lead);
    for (const [inF, outF] of [[1, 1], [13, 29], [64, 65]]) {
      const x = randn(rows * inF, inF);
      const w = randn(outF * inF, outF);
      const bias = randn(outF, 3);
      const xT = fromArray(rt, x, [...lead, inF]);
      const wT = fromArray(rt, w, [outF, inF]);
      const y = linear(xT, wT, fromArray(rt, bias, [outF]));
      assert.deepEqual(y.shape, [...lead, outF]);
      assertClose(await read(y), linearRef(x, w, rows, inF, outF, bias), { what: `linear+b ${inF}->${outF}` });
      assertClose(await read(linear(xT, wT)), linearRef(x, w, rows, inF, outF), { what: `linear ${inF}->${outF}` });
    }
  });

  it('matmul backward matches the CPU reference (batched and shared, all transposes)', async () => {
    const batch = 3;
    for (const [m, k, n] of [[9, 14, 6], [12, 16, 8]])
    for (const [ta, tb] of TRANS) {
      for (const mode of ['both', 'aShared', 'bShared'] as const) {
        const aB = mode === 'aShared' ? 1 : batch;
        const bB = mode === 'bShared' ? 1 : batch;
        const a = randn(aB * m * k, 20);
        const b = randn(bB * k * n, 21);
        const g = randn(batch * m * n, 22);
        const aT = fromArray(rt, a, mode === 'aShared' ? stored(m, k, ta) : [batch, ...stored(m, k, ta)]);
        const bT = fromArray(rt, b, mode === 'bShared' ? stored(k, n, tb) : [batch, ...stored(k, n, tb)]);
        aT.requiresGrad = true;
        bT.requiresGrad = true;
        const out = matmul(aT, bT, { transA: ta, transB: tb });
        backward(out, fromArray(rt, g, out.shape));
        // Reference: op(A)' = g·op(B)ᵀ, op(B)' = op(A)ᵀ·g per batch, summed over the batch for a shared one.
        const opA = ta ? transpose(a, aB, k, m) : a; // [m, k] per batch
        const opB = tb ? transpose(b, bB, n, k) : b; // [k, n] per batch
        let dOpA = matmulRef(g, opB, m, n, k, { transB: true, batch, bShared: bB === 1 });
        let dOpB = matmulRef(opA, g, k, m, n, { transA: true, batch, aShared: aB === 1 });
        const sumBatch = (x: Float32Array, size: number) => {
          const s = new Float32Array(size);
          for (let i = 0; i < x.length; i++) s[i % size] += x[i];
          return s;
        };
        if (aB === 1) dOpA = sumBatch(dOpA, m * k);
        if (bB === 1) dOpB = sumBatch(dOpB, k * n);
        const wantA = ta ? transpose(dOpA, aB, m, k) : dOpA;
        const wantB = tb ? transpose(dOpB, bB, k, n) : dOpB;
        const what = `[${m},${k},${n}] ${mode} ta=${ta} tb=${tb}`;
        assertClose(await aT.grad!.toFloat32(), wantA, { what: `dA ${what}`, atol: 1e-4 });
        assertClose(await bT.grad!.toFloat32(), wantB, { what: `dB ${what}`, atol: 1e-4 });
        for (const t of [aT.grad!, bT.grad!, aT, bT, out]) t.dispose();
      }
    }
  });

  it('matmul: finite-difference gradient check, all transposes, 2-D and batched with a shared operand', async () => {
    for (const [ta, tb] of TRANS) {
      const [m, k, n] = [5, 7, 3];
      const opts = { transA: ta, transB: tb };
      await gradCheck(rt, (a, b) => matmul(a, b, opts), [
        { data: randn(m * k, 30), shape: stored(m, k, ta) },
        { data: randn(k * n, 31), shape: stored(k, n, tb) },
      ]);
      await gradCheck(rt, (a, b) => matmul(a, b, opts), [
        { data: randn(2 * m * k, 32), shape: [2, ...stored(m, k, ta)] },
        { data: randn(k * n, 33), shape: stored(k, n, tb) },
      ]);
      await gradCheck(rt, (a, b) => matmul(a, b, opts), [
        { data: randn(m * k, 34), shape: stored(m, k, ta) },
        { data: randn(2 * k * n, 35), shape: [2, ...stored(k, n, tb)] },
      ]);
    }
  });

  it('linear: finite-difference gradient check with and without bias', async () => {
    await gradCheck(rt, (x, w, b) => linear(x, w, b), [
      { data: randn(2 * 3 * 5, 40), shape: [2, 3, 5] },
      { data: randn(4 * 5, 41), shape: [4, 5] },
      { data: randn(4, 42), shape: [4] },
    ]);
    await gradCheck(rt, (x, w) => linear(x, w), [
      { data: randn(6 * 9, 43), shape: [6, 9] },
      { data: randn(7 * 9, 44), shape: [7, 9] },
    ]);
  });

  it('linear backward matches the CPU reference on 3-D input', async () => {
    const [lead, inF, outF] = [[4, 5], 11, 6];
    const rows = numel(lead);
    const x = randn(rows * inF, 50);
    const w = randn(outF * inF, 51);
    const g = randn(rows * outF, 52);
    const xT = fromArray(rt, x, [...lead, inF]);
    const wT = fromArray(rt, w, [outF, inF]);
    const bT = fromArray(rt, randn(outF, 53), [outF]);
    for (const t of [xT, wT, bT]) t.requiresGrad = true;
    const y = linear(xT, wT, bT);
    backward(y, fromArray(rt, g, y.shape));
    assertClose(await xT.grad!.toFloat32(), matmulRef(g, w, rows, outF, inF), { what: 'dx' });
    assertClose(await wT.grad!.toFloat32(), matmulRef(g, x, outF, rows, inF, { transA: true }), { what: 'dW' });
    const db = new Float32Array(outF);
    for (let i = 0; i < g.length; i++) db[i % outF] += g[i];
    assertClose(await bT.grad!.toFloat32(), db, { what: 'db' });
  });

  it('shape errors name both shapes', () => {
    const a = fromArray(rt, randn(6, 1), [2, 3]);
    const b = fromArray(rt, randn(8, 2), [4, 2]);
    assert.throws(() => matmul(a, b), (e: Error) => e instanceof ShapeError && e.message.includes('[2, 3]') && e.message.includes('[4, 2]'));
    const a3 = fromArray(rt, randn(12, 3), [2, 2, 3]);
    const b3 = fromArray(rt, randn(18, 4), [3, 3, 2]);
    assert.throws(() => matmul(a3, b3), (e: Error) => e instanceof ShapeError && e.message.includes('[2, 2, 3]') && e.message.includes('[3, 3, 2]'));
    assert.throws(() => linear(a, b), (e: Error) => e instanceof ShapeError && e.message.includes('[2, 3]') && e.message.includes('[4, 2]'));
    for (const t of [a, b, a3, b3]) t.dispose();
  });
});
