// Quantiles of v for the statistics records (p50/p90/p99): one definition, the nearest rank — the q-quantile of
// n sorted values is the value at rank ⌈q·n⌉ (1-based), so it is always one of the values and never above the
// maximum. Used on the samples of a dense v (exact when the sample is the whole tensor) and, through the counting
// function, on a factored V̂ = R·Cᵀ / mean(R) without forming it.

/** Nearest-rank q-quantile of ascending values (0 for none). */
export function sortedQuantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
}

/**
 * Nearest-rank q-quantile of n values known only through countAtMost(x) = #{values ≤ x}, for values in
 * [0, max]: the smallest x with countAtMost(x) ≥ ⌈q·n⌉, by bisection to float64 resolution.
 */
export function quantileByCount(n: number, max: number, q: number, countAtMost: (x: number) => number): number {
  if (n === 0 || !(max > 0)) return 0;
  const rank = Math.max(1, Math.ceil(q * n));
  if (countAtMost(0) >= rank) return 0;
  let lo = 0;
  let hi = max;
  for (let i = 0; i < 200 && hi - lo > hi * 1e-12; i++) {
    const mid = (lo + hi) / 2;
    if (countAtMost(mid) >= rank) hi = mid;
    else lo = mid;
  }
  return hi;
}
