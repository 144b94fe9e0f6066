// kthLargest / topKMask (src/engine/ops/select.ts, kernels/select.wgsl) against sorting (src/engine/cpu/select.ts):
// awkward sizes (1, primes, around the count blocks of 2^14, several blocks), both orders, ties at the threshold
// (inside a block, across blocks, across binding-sized spans), all-equal inputs, negative values, the band mode.
import * as assert from 'node:assert/strict';
import { randn, runtime } from './helpers';
import { fromArray } from '../../src/engine/tensor/tensor';
import { kthLargest, kthLargestStreamed, thresholdValue, topKMask } from '../../src/engine/ops/select';
import { cpuKthLargest, cpuTopKMask } from '../../src/engine/cpu/select';

async function check(x: Float32Array, k: number, abs: boolean, what: string) {
  const rt = await runtime();
  const t = fromArray(rt, x, [x.length]);
  const th = kthLargest(t, k, { abs });
  const got = await thresholdValue(th);
  const want = cpuKthLargest(x, k, abs);
  assert.equal(got.index, want.index, `${what}: index of the ${k}-th largest`);
  assert.equal(got.value, want.value, `${what}: value of the ${k}-th largest`);
  const mask = topKMask(t, th);
  const m = (await mask.toArray()) as Uint32Array;
  const wm = cpuTopKMask(x, k, abs);
  let kept = 0;
  for (let i = 0; i < m.length; i++) {
    kept += m[i];
    assert.equal(m[i], wm[i], `${what}: mask at ${i}`);
  }
  assert.equal(kept, k, `${what}: kept count`);
  for (const d of [t, th.key, mask]) d.dispose();
}

describe('kthLargest (radix select)', () => {
  it('matches sorting on awkward sizes, by value and by magnitude', async () => {
    for (const n of [1, 7, 13, 257, 1031]) {
      const x = randn(n, n);
      for (const k of [1, Math.max(1, n >> 1), n]) {
        await check(x, k, false, `n=${n} k=${k} signed`);
        await check(x, k, true, `n=${n} k=${k} abs`);
      }
    }
  });

  it('breaks ties at the threshold by index, and keeps exactly k of an all-equal tensor', async () => {
    const ties = Float32Array.from({ length: 300 }, (_, i) => [0.5, -0.5, 0.25, 2][i % 4]);
    await check(ties, 100, true, 'ties abs');
    await check(ties, 100, false, 'ties signed');
    const equal = new Float32Array(333).fill(1.5);
    await check(equal, 17, false, 'all equal');
    await check(new Float32Array(70000), 12345, true, 'zeros, three index bytes');
  });

  it('keeps a tied value whole, or splits it by index, within and across spans', async () => {
    // |x| ∈ {2 (75 times), 0.5 (150), 0.25 (75)}: k = 225 keeps every 0.5 entry, so the 225-th key is the one of
    // the highest index holding ±0.5; k = 226 splits the 0.25 entries.
    const ties = Float32Array.from({ length: 300 }, (_, i) => [0.5, -0.5, 0.25, 2][i % 4]);
    await check(ties, 225, true, 'tied value kept whole, abs');
    await check(ties, 226, true, 'ties straddling after a whole group, abs');
    await check(ties, 150, false, 'signed: every 0.5 kept');
    const rt = await runtime();
    const prev = rt.maxBindingBytes;
    rt.setMaxBindingBytes(8192); // the histogram's 2,048 bins need 8 KiB; spans of 1,984 elements
    try {
      // Ties spread over several binding-sized spans: the highest tied index is in the last one.
      const x = Float32Array.from({ length: 4099 }, (_, i) => (i % 5 === 0 ? 3 : i % 5 === 1 ? -3 : 0.1 * (i % 7)));
      const threes = x.filter((v) => Math.abs(v) === 3).length;
      await check(x, threes, true, 'a whole tied value over spans');
      await check(x, threes + 1, true, 'ties split over spans');
    } finally {
      rt.setMaxBindingBytes(prev);
    }
  });

  it('finds the tied element in the right count block (2^14 elements), at block edges and over spans', async () => {
    // 60% zeros: a trim at density 0.5 puts the threshold among the zeros, whose ranks run over every block.
    const n = 3 * 16384 + 5;
    const x = Float32Array.from(randn(n, 91), (v, i) => ((i * 2654435761) >>> 0) % 10 < 6 ? 0 : v);
    x[3 * 16384] = 0;
    const zerosBefore = (i: number) => x.subarray(0, i).filter((v) => v === 0).length;
    const nonzero = x.filter((v) => v !== 0).length;
    // k such that the kept zero is the last of block 0, the first of block 1, the first of the ragged last block
    // (index 3·2^14), the last zero of all (k = n), the first zero of all, and one in the middle.
    const ks = [nonzero + zerosBefore(16384), nonzero + zerosBefore(16384) + 1, nonzero + zerosBefore(3 * 16384) + 1, n, nonzero + 1, Math.floor(n / 2)];
    for (const k of ks) await check(x, k, true, `zeros over blocks, k=${k}`);
    for (const m of [16383, 16384, 16385, 32768]) await check(new Float32Array(m).fill(-2), m - 3, false, `all equal, n=${m}`);
    // Random values (no ties), n a multiple of the block, signed and by magnitude.
    const r = randn(32768, 5);
    for (const k of [1, 16384, 16385, 32768]) {
      await check(r, k, false, `n=32768 signed, k=${k}`);
      await check(r, k, true, `n=32768 abs, k=${k}`);
    }
    const rt = await runtime();
    const prev = rt.maxBindingBytes;
    rt.setMaxBindingBytes(40192);
    try {
      // Spans of 9,984 elements: blocks straddle spans, so a block's count and its walk come from two pieces.
      for (const k of ks) await check(x, k, true, `zeros over blocks and spans, k=${k}`);
    } finally {
      rt.setMaxBindingBytes(prev);
    }
  });

  it('finds a tied element past 256 blocks (several blocks per run of sel_blocks), whole and streamed', async function () {
    this.timeout(120_000);
    // 257 · 2^14 + 5 elements, 70% zeros: 258 blocks, so each of sel_blocks' 256 runs sums two. The expected
    // threshold is found by counting (a sort of 4M keys would take longer than the GPU): by magnitude, the k-th
    // largest with k > (nonzero count) is the (k − nonzero)-th zero by index.
    const n = 257 * 16384 + 5;
    const x = Float32Array.from(randn(n, 23), (v, i) => (((i * 2654435761) >>> 0) % 10 < 7 ? 0 : v));
    x[257 * 16384] = 0;
    const zeroIdx: number[] = [];
    for (let i = 0; i < n; i++) if (x[i] === 0) zeroIdx.push(i);
    const nonzero = n - zeroIdx.length;
    const zeroRank = (i: number) => zeroIdx.findIndex((z) => z >= i) + 1; // rank among zeros of the first zero at or after i
    // Zeros in the first and the second block of a run (blocks 200, 201), the last of block 200, the first of the
    // ragged last block, the last of all.
    const ranks = [zeroRank(200 * 16384 + 77), zeroRank(201 * 16384 + 3), zeroRank(201 * 16384) - 1, zeroRank(257 * 16384), zeroIdx.length];
    const rt = await runtime();
    const t = fromArray(rt, x, [n]);
    try {
      for (const r of ranks) {
        const th = kthLargest(t, nonzero + r, { abs: true });
        const got = await thresholdValue(th);
        th.key.dispose();
        assert.deepEqual(got, { value: 0, index: zeroIdx[r - 1] }, `whole, zero rank ${r}`);
      }
      // Streamed, in pieces of 1,000,003 (not aligned with the blocks): both ranks in one set of sweeps.
      const piece = 1_000_003;
      const got = await kthLargestStreamed(rt, n, ranks.slice(0, 2).map((r) => ({ k: nonzero + r, abs: true })), async (visit, within) => {
        for (let s = 0; s < n; s += piece) {
          const e = Math.min(n, s + piece);
          if (within && !within.some(([a, b]) => a < e && b > s)) continue;
          const p = fromArray(rt, x.subarray(s, e), [e - s]);
          visit(0, p, s);
          p.dispose();
        }
      });
      for (let i = 0; i < got.length; i++) {
        assert.deepEqual(await thresholdValue(got[i]), { value: 0, index: zeroIdx[ranks[i] - 1] }, `streamed, zero rank ${ranks[i]}`);
        got[i].key.dispose();
      }
    } finally {
      t.dispose();
    }
  });

  it('refuses more than 2^32 − 1 elements, and frees its buffers when a dispatch fails', async () => {
    const rt = await runtime();
    await assert.rejects(kthLargestStreamed(rt, 2 ** 32, [{ k: 1 }], async () => undefined), /at most 2\^32 − 1/);
    const x = fromArray(rt, randn(100, 1), [100]);
    const prev = rt.maxBindingBytes;
    await rt.sync();
    const live = rt.pool.snapshot().liveBytes;
    rt.setMaxBindingBytes(4096); // the 2,048-bin histogram (8 KiB) no longer fits one binding
    try {
      assert.throws(() => kthLargest(x, 5), /sel_init/);
    } finally {
      rt.setMaxBindingBytes(prev);
    }
    assert.equal(rt.pool.snapshot().liveBytes, live, 'no buffer of the failed select stays live');
    x.dispose();
  });

  it('band mode keeps ranks (a, a + b]', async () => {
    const rt = await runtime();
    const x = randn(101, 3);
    const t = fromArray(rt, x, [101]);
    const lower = kthLargest(t, 2 + 40, { abs: true });
    const upper = kthLargest(t, 2, { abs: true });
    const m = (await topKMask(t, lower, upper).toArray()) as Uint32Array;
    assert.deepEqual(Array.from(m), Array.from(cpuTopKMask(x, 40, true, 2)));
  });

  it('works over binding-sized spans (forced small limit)', async () => {
    const rt = await runtime();
    const prev = rt.maxBindingBytes;
    rt.setMaxBindingBytes(8192); // the histogram's 2,048 bins need 8 KiB; spans of 1,984 elements
    try {
      const x = randn(5000, 11);
      await check(x, 777, true, 'spans');
    } finally {
      rt.setMaxBindingBytes(prev);
    }
  });
});
