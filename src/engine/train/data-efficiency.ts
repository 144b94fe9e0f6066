// Pure logic of the data-efficiency study (bench/study-data-efficiency.ts; algorithms.md §6): which training
// interactions a downsampling strategy keeps, and where the validation metric stops gaining from more data.
//
// Every strategy works on the training users' time-ordered sequences and keeps about `fraction` of their
// interactions (the budget B = round(fraction · total)); what it keeps stays in time order, evaluation inputs are
// untouched (a user is still evaluated on its whole history):
// - uniform: users drawn uniformly at random (seeded), whole histories, until the budget is reached — "a fraction
//   of the users' data" without bias towards any period.
// - recent: each user's most recent ⌈fraction · length⌉ items (a per-user recent window).
// - cap: each user's most recent c items, c the largest cap with Σ min(length, c) ≤ B — light users kept whole,
//   heavy users trimmed to their recent past.
// - recency-weighted: each interaction kept independently with probability min(1, s · 2^(−age / halfLife)), age =
//   its distance from the user's last item, s solved so the expected total is B — recent items favoured, old
//   ones thinned rather than cut.
// Sequences shorter than 2 items give no next-item target and are left out.
import { Rng } from '../data/rng';

export const STRATEGIES = ['uniform', 'recent', 'cap', 'recency-weighted'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface DownsampleOptions {
  seed: number;
  /** recency-weighted: the age (in items) at which an interaction's weight halves (default 32). */
  halfLife?: number;
}

function total(seqs: readonly Int32Array[]): number {
  let n = 0;
  for (const s of seqs) n += s.length;
  return n;
}

function checkFraction(fraction: number): void {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`downsample: fraction must be in (0, 1], got ${fraction}`);
}

/** The training sequences a strategy keeps at `fraction` of the interactions (see the file's header). */
export function downsample(seqs: readonly Int32Array[], strategy: Strategy, fraction: number, o: DownsampleOptions): Int32Array[] {
  checkFraction(fraction);
  const N = total(seqs);
  const budget = Math.round(fraction * N);
  let out: Int32Array[];
  switch (strategy) {
    case 'uniform': {
      const order = Array.from(seqs.keys());
      const rng = new Rng(o.seed, 0xd5);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      out = [];
      let n = 0;
      for (const u of order) {
        if (n >= budget) break;
        if (seqs[u].length === 0) continue;
        out.push(seqs[u]);
        n += seqs[u].length;
      }
      break;
    }
    case 'recent':
      out = seqs.map((s) => s.subarray(s.length - Math.ceil(fraction * s.length)));
      break;
    case 'cap': {
      const c = capFor(seqs.map((s) => s.length), budget);
      out = seqs.map((s) => s.subarray(Math.max(0, s.length - c)));
      break;
    }
    case 'recency-weighted': {
      const h = o.halfLife ?? 32;
      if (!(h > 0)) throw new RangeError(`downsample: halfLife must be positive, got ${h}`);
      const weights = seqs.map((s) => Float64Array.from({ length: s.length }, (_, i) => 2 ** (-(s.length - 1 - i) / h)));
      const scale = scaleFor(weights, budget);
      const rng = new Rng(o.seed, 0x7e);
      out = seqs.map((s, u) => {
        const kept: number[] = [];
        for (let i = 0; i < s.length; i++) if (rng.float() < Math.min(1, scale * weights[u][i])) kept.push(s[i]);
        return Int32Array.from(kept);
      });
      break;
    }
    default:
      throw new RangeError(`downsample: unknown strategy "${strategy as string}" (known: ${STRATEGIES.join(', ')})`);
  }
  return out.filter((s) => s.length >= 2);
}

/** The largest per-user cap c with Σ min(length, c) ≤ budget (at least 1). */
export function capFor(lengths: readonly number[], budget: number): number {
  const longest = lengths.reduce((a, b) => Math.max(a, b), 0);
  const kept = (c: number) => lengths.reduce((a, l) => a + Math.min(l, c), 0);
  let lo = 1;
  let hi = Math.max(1, longest);
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (kept(mid) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** s ≥ 0 with Σ min(1, s · w) = budget (bisection; the sum is continuous and non-decreasing in s). */
function scaleFor(weights: readonly Float64Array[], budget: number): number {
  const expected = (s: number) => {
    let e = 0;
    for (const w of weights) for (let i = 0; i < w.length; i++) e += Math.min(1, s * w[i]);
    return e;
  };
  let lo = 0;
  let hi = 1;
  while (expected(hi) < budget && hi < 1e30) hi *= 2;
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    if (expected(mid) < budget) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface CurvePoint {
  fraction: number;
  metric: number;
}

export interface Convergence {
  /** Gain of the metric per doubling of the data between consecutive points (same order as the sorted points). */
  gains: { from: number; to: number; perDoubling: number }[];
  /**
   * The smallest fraction from which every further step gains less than ε per doubling (more data no longer pays),
   * or null when the last step still gains ε or more (the data has not converged within the range tried).
   */
  fraction: number | null;
}

/** The data convergence point of a metric measured at growing fractions of the data (bigger metric = better). */
export function convergencePoint(points: readonly CurvePoint[], eps: number): Convergence {
  if (!(eps >= 0)) throw new RangeError(`convergencePoint: ε must be ≥ 0, got ${eps}`);
  const p = [...points].sort((a, b) => a.fraction - b.fraction);
  for (let i = 1; i < p.length; i++) if (p[i].fraction === p[i - 1].fraction) throw new RangeError(`convergencePoint: fraction ${p[i].fraction} appears twice`);
  const gains = [];
  for (let i = 1; i < p.length; i++) {
    const doublings = Math.log2(p[i].fraction / p[i - 1].fraction);
    gains.push({ from: p[i - 1].fraction, to: p[i].fraction, perDoubling: (p[i].metric - p[i - 1].metric) / doublings });
  }
  if (p.length < 2) return { gains, fraction: null };
  // Walk back from the largest fraction while the steps stay below ε.
  let k = gains.length;
  while (k > 0 && gains[k - 1].perDoubling < eps) k--;
  return { gains, fraction: k === gains.length ? null : p[k].fraction };
}
