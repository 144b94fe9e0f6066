// The data-efficiency study's pure logic (src/engine/train/data-efficiency.ts): downsampling strategies keep about
// the asked fraction, in time order, with the bias each promises; the convergence point is where the gain per
// doubling falls below ε for good.
import * as assert from 'node:assert/strict';
import { capFor, convergencePoint, downsample, STRATEGIES } from '../../src/engine/train/data-efficiency';

/** Users with lengths 1..40 (and one of 200); item values encode (user, position) so order can be checked. */
function users(): Int32Array[] {
  const lengths = [...Array.from({ length: 40 }, (_, i) => i + 1), 200];
  return lengths.map((L, u) => Int32Array.from({ length: L }, (_, i) => u * 1000 + i + 1));
}
const sum = (s: readonly Int32Array[]) => s.reduce((a, x) => a + x.length, 0);

describe('data efficiency: downsampling strategies', () => {
  const seqs = users();
  const N = sum(seqs); // 820 + 200

  for (const strategy of STRATEGIES) {
    it(`${strategy}: keeps about the fraction asked, each kept sequence a time-ordered subsequence of one user's`, () => {
      for (const f of [1 / 8, 1 / 4, 1 / 2]) {
        const kept = downsample(seqs, strategy, f, { seed: 5 });
        const n = sum(kept);
        // Whole users (uniform) overshoot by at most one history; dropping 1-item leftovers undershoots a little.
        assert.ok(Math.abs(n - f * N) <= 0.12 * f * N + 200, `${strategy} at ${f}: kept ${n} of ${N}`);
        for (const s of kept) {
          assert.ok(s.length >= 2, 'no sequence without a next-item target');
          const u = Math.floor((s[0] - 1) / 1000);
          for (let i = 1; i < s.length; i++) {
            assert.equal(Math.floor((s[i] - 1) / 1000), u, 'one user per sequence');
            assert.ok(s[i] > s[i - 1], 'time order kept');
          }
        }
      }
      assert.equal(sum(downsample(seqs, strategy, 1, { seed: 5 })), N - 1, 'fraction 1 keeps everything (but the 1-item user)');
    });
  }

  it('recent and cap keep suffixes; cap trims only the users above the cap', () => {
    const recent = downsample(seqs, 'recent', 0.25, { seed: 1 });
    for (const s of recent) assert.equal(s[s.length - 1] % 1000, seqs[Math.floor((s[0] - 1) / 1000)].length, 'ends at the last item');
    const budget = Math.round(0.25 * N);
    const c = capFor(seqs.map((s) => s.length), budget);
    assert.ok(seqs.reduce((a, s) => a + Math.min(s.length, c), 0) <= budget);
    assert.ok(seqs.reduce((a, s) => a + Math.min(s.length, c + 1), 0) > budget, 'the largest such cap');
    const cap = downsample(seqs, 'cap', 0.25, { seed: 1 });
    for (const s of cap) {
      const full = seqs[Math.floor((s[0] - 1) / 1000)];
      assert.equal(s.length, Math.min(full.length, c));
      assert.equal(s[s.length - 1], full[full.length - 1]);
    }
  });

  it('recency-weighted favours recent items; uniform takes whole histories; both are seeded', () => {
    const heavy = [Int32Array.from({ length: 400 }, (_, i) => i + 1)];
    const rw = downsample(heavy, 'recency-weighted', 0.25, { seed: 3, halfLife: 32 })[0];
    const recentHalf = rw.filter((x) => x > 200).length;
    assert.ok(recentHalf > 0.8 * rw.length, `${recentHalf} of ${rw.length} kept items are in the recent half`);
    assert.deepEqual(downsample(seqs, 'recency-weighted', 0.3, { seed: 9 }), downsample(seqs, 'recency-weighted', 0.3, { seed: 9 }));
    const uni = downsample(seqs, 'uniform', 0.3, { seed: 9 });
    for (const s of uni) assert.equal(s.length, seqs[Math.floor((s[0] - 1) / 1000)].length, 'whole histories');
    assert.notDeepEqual(uni.map((s) => s[0]), downsample(seqs, 'uniform', 0.3, { seed: 10 }).map((s) => s[0]));
  });

  it('refuses a fraction outside (0, 1] and an unknown strategy', () => {
    assert.throws(() => downsample(seqs, 'uniform', 0, { seed: 1 }), /fraction must be in \(0, 1\]/);
    assert.throws(() => downsample(seqs, 'recent', 1.5, { seed: 1 }), /fraction/);
    assert.throws(() => downsample(seqs, 'nope' as never, 0.5, { seed: 1 }), /unknown strategy "nope"/);
  });
});

describe('data efficiency: convergence point', () => {
  const curve = (ms: number[]) => ms.map((metric, i) => ({ fraction: 2 ** (i - ms.length + 1), metric }));

  it('is the first fraction after which every doubling gains less than ε', () => {
    const c = convergencePoint(curve([0.02, 0.05, 0.07, 0.072, 0.073]), 0.005);
    assert.deepEqual(c.gains.map((g) => +g.perDoubling.toFixed(4)), [0.03, 0.02, 0.002, 0.001]);
    assert.equal(c.fraction, 1 / 4);
  });

  it('is null when the last doubling still gains ε (not converged), and not fooled by an early plateau', () => {
    assert.equal(convergencePoint(curve([0.02, 0.05, 0.08]), 0.005).fraction, null);
    assert.equal(convergencePoint(curve([0.02, 0.021, 0.05, 0.051]), 0.005).fraction, 1 / 2);
  });

  it('divides by the number of doublings between unevenly spaced fractions, in any input order', () => {
    const c = convergencePoint([{ fraction: 1, metric: 0.1 }, { fraction: 1 / 8, metric: 0.07 }], 0.005);
    assert.ok(Math.abs(c.gains[0].perDoubling - 0.01) < 1e-12);
    assert.equal(c.fraction, null);
    assert.equal(convergencePoint([{ fraction: 1, metric: 0.1 }, { fraction: 1 / 8, metric: 0.0999 }], 0.005).fraction, 1 / 8);
    assert.throws(() => convergencePoint([{ fraction: 0.5, metric: 1 }, { fraction: 0.5, metric: 2 }], 0.1), /appears twice/);
  });
});
