// A sweep file (src/files/prune/sweep-file.ts) as the prune panel shows it: metrics with NaN as null, the points
// of "Evaluate this point" sweeps (one-density sweep files) added and marked `extra`. No vscode: unit-tested.
import type { SweepFile, SweepMetrics } from '../../files/prune/sweep-file';
import type { PruneMetrics, PrunePointView, PruneSweepView } from '../../protocol/panels/prune';

function metricsView(m: SweepMetrics | null | undefined): PruneMetrics | null {
  if (!m) return null;
  const out: PruneMetrics = {};
  for (const [k, v] of Object.entries(m)) out[k] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  return out;
}

const finiteOr = (x: unknown, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x : d);

function pointsView(s: SweepFile, extra: boolean): PrunePointView[] {
  return s.points.map((p) => ({
    score: p.score,
    density: p.density,
    kept: finiteOr(p.kept, p.density),
    layers: p.layers.map((k) => finiteOr(k, 0)),
    metrics: metricsView(p.metrics) ?? {},
    extra,
  }));
}

/** A score's parameters in a sweep (`batches`, `calibration`, `seed`…) as a comparable key; null if it has no such score. */
function scoreParamsKey(s: SweepFile, score: string): string | null {
  const entry = s.options.scores.find((x) => x.type === score);
  if (!entry) return null;
  return JSON.stringify(Object.keys(entry).filter((k) => k !== 'type').sort().map((k) => [k, entry[k]]));
}

/**
 * The panel's view of a sweep. `extras` are other sweep files of the same checkpoint (one-density sweeps): their
 * points join when their targets are the same tensors (a point of other targets would not fit the bars), cut the
 * same way, and scored with the same parameters as the sweep's curve of that score (a wanda point on 2 calibration
 * batches is not a point of a curve on 16).
 */
export function sweepView(file: string, s: SweepFile, extras: readonly SweepFile[] = []): PruneSweepView {
  const names = s.targets.map((t) => t.name).join('\n');
  const points = pointsView(s, false);
  for (const e of extras) {
    if (e.targets.map((t) => t.name).join('\n') !== names) continue;
    if (e.options.granularity !== s.options.granularity || e.options.pattern !== s.options.pattern || e.options.base !== s.options.base) continue;
    const same = (score: string) => {
      const mine = scoreParamsKey(s, score);
      return mine === null || mine === scoreParamsKey(e, score);
    };
    points.push(...pointsView(e, true).filter((p) => same(p.score)));
  }
  return {
    file,
    status: s.status,
    error: s.error ?? null,
    granularity: s.options.granularity,
    pattern: s.options.pattern,
    scores: s.options.scores.map((x) => x.type),
    densities: [...s.options.densities],
    targets: s.targets.map((t) => ({ name: t.name, size: t.size })),
    dense: metricsView(s.dense),
    chance: metricsView(s.chance),
    points,
  };
}
