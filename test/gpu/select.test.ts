// kthLargest / topKMask (src/engine/ops/select.ts, kernels/select.wgsl) against sorting (src/engine/cpu/select.ts):
// awkward sizes (1, primes, around the count blocks of 2^14, several blocks), both orders, ties at the threshold
// (inside a block, across blocks, across binding-sized spans), all-equal inputs, negative values, the band mode.
import * as assert from 'node:assert/strict';
import { randn, runtime } from './helpers';
import { fromArray } from '../../src/engine/tensor/tensor';
import { kthLargest, thresholdValue, topKMask } from '../../src/engine/ops/select';
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
    const zerosBefore = (i: number) => x.subarray(0, i).filter((v) => v === 0).length;
    const nonzero = x.filter((v) => v !== 0).length;
    // k such that the kept zero is the last of block 0, the first of block 1, the last element, the one at 3·2^14.
    const ks = [nonzero + zerosBefore(16384), nonzero + zerosBefore(16384) + 1, n, nonzero + 1, Math.floor(n / 2)];
    for (const k of ks) await check(x, k, true, `zeros over blocks, k=${k}`);
    for (const m of [16383, 16384, 16385, 32768]) await check(new Float32Array(m).fill(-2), m - 3, false, `all equal, n=${m}`);
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
