// The prune panel's view model: pure functions of the sweep (no DOM), so they are unit-tested
// (test/unit/prune-panel-model.test.ts). The slider reads values off the curves: exact where a point was
// evaluated, linearly interpolated between the two evaluated densities around it (and said so), nothing below the
// lowest density evaluated. Density 1 is the dense model: every curve starts there, every layer keeps all.
import { PRUNE_METRICS, type PruneMetrics, type PrunePointView, type PruneSweepView } from '../../src/protocol/panels/prune';

/** Two densities closer than this are the same point (the slider moves in 0.001 steps). */
export const DENSITY_EPS = 1e-6;

export interface Curve {
  score: string;
  /** Densities, ascending, each once (an extra point at a sweep's density replaces nothing: they agree). */
  xs: number[];
  ys: number[];
  /** Which of xs came from "Evaluate this point". */
  extra: boolean[];
}

/** The metrics the sweep has values for, the known ones first in a fixed order (loss, accuracy, HR@10…). */
export function metricKeys(sweep: PruneSweepView | null): string[] {
  if (!sweep) return [];
  const seen = new Set<string>();
  const add = (m: PruneMetrics | null) => {
    for (const [k, v] of Object.entries(m ?? {})) if (v !== null) seen.add(k);
  };
  add(sweep.dense);
  for (const p of sweep.points) add(p.metrics);
  const known = Object.keys(PRUNE_METRICS).filter((k) => seen.has(k));
  return [...known, ...[...seen].filter((k) => !(k in PRUNE_METRICS)).sort()];
}

export function metricLabel(metric: string): { label: string; unit: string; percent: boolean } {
  const m = PRUNE_METRICS[metric];
  return m ? { label: m.label, unit: m.unit, percent: m.percent } : { label: metric, unit: '', percent: false };
}

/** The scores in the sweep's order, then any that only extra points have. */
export function scoresOf(sweep: PruneSweepView | null): string[] {
  if (!sweep) return [];
  return [...new Set([...sweep.scores, ...sweep.points.map((p) => p.score)])];
}

/** The points of one score by density, ascending; the dense model stands in at density 1 when no point is there. */
function pointsOf(sweep: PruneSweepView, score: string): PrunePointView[] {
  const byD = new Map<number, PrunePointView>();
  for (const p of sweep.points) {
    if (p.score !== score) continue;
    const key = [...byD.keys()].find((d) => Math.abs(d - p.density) < DENSITY_EPS) ?? p.density;
    // A sweep point wins over an extra one at the same density (the same evaluation; keep the sweep's).
    if (!byD.has(key) || byD.get(key)!.extra) byD.set(key, p);
  }
  if (sweep.dense && ![...byD.keys()].some((d) => Math.abs(d - 1) < DENSITY_EPS)) {
    byD.set(1, { score, density: 1, kept: 1, layers: sweep.targets.map(() => 1), metrics: sweep.dense, extra: false });
  }
  return [...byD.values()].sort((a, b) => a.density - b.density);
}

/** One curve per score: the metric against the density, points without a value for it left out. */
export function curvesFor(sweep: PruneSweepView | null, metric: string): Curve[] {
  if (!sweep) return [];
  return scoresOf(sweep).map((score) => {
    const pts = pointsOf(sweep, score).filter((p) => typeof p.metrics[metric] === 'number');
    return { score, xs: pts.map((p) => p.density), ys: pts.map((p) => p.metrics[metric] as number), extra: pts.map((p) => p.extra) };
  });
}

export interface ReadOut {
  /** null: the density is outside the evaluated range of this curve. */
  value: number | null;
  exact: boolean;
  /** The evaluated densities it interpolates between (exact: both the density itself). */
  lo: number | null;
  hi: number | null;
}

/** Linear interpolation over the evaluated densities around d. */
export function readCurve(xs: readonly number[], ys: readonly number[], d: number): ReadOut {
  for (let i = 0; i < xs.length; i++) if (Math.abs(xs[i] - d) < DENSITY_EPS) return { value: ys[i], exact: true, lo: xs[i], hi: xs[i] };
  for (let i = 0; i + 1 < xs.length; i++) {
    if (xs[i] < d && d < xs[i + 1]) {
      const t = (d - xs[i]) / (xs[i + 1] - xs[i]);
      return { value: ys[i] + t * (ys[i + 1] - ys[i]), exact: false, lo: xs[i], hi: xs[i + 1] };
    }
  }
  return { value: null, exact: false, lo: null, hi: null };
}

export interface LayerBars {
  /** Per target: fraction kept at the density (interpolated like the curves). */
  kept: number[];
  exact: boolean;
  lo: number | null;
  hi: number | null;
}

/** The per-layer kept fractions of one score at a density; null outside the evaluated range. */
export function layerBars(sweep: PruneSweepView | null, score: string, d: number): LayerBars | null {
  if (!sweep) return null;
  const pts = pointsOf(sweep, score);
  const xs = pts.map((p) => p.density);
  const r = readCurve(xs, xs, d);
  if (r.lo === null || r.hi === null) return null;
  const a = pts[xs.indexOf(r.lo)];
  const b = pts[xs.indexOf(r.hi)];
  const t = r.exact || r.hi === r.lo ? 0 : (d - r.lo) / (r.hi - r.lo);
  return { kept: a.layers.map((k, i) => k + t * (b.layers[i] - k)), exact: r.exact, lo: r.lo, hi: r.hi };
}

/** The words under the slider: exact, interpolated between two points, or outside what was evaluated. */
export function readOutNote(r: { exact: boolean; lo: number | null; hi: number | null }, pct: (d: number) => string): string {
  if (r.exact) return 'evaluated at this density';
  if (r.lo === null || r.hi === null) return 'not evaluated at this density: outside the sweep’s range';
  return `interpolated between the evaluated ${pct(r.lo)} and ${pct(r.hi)}`;
}

/** Whether any score's curve has an evaluated point at d. */
export function isEvaluated(sweep: PruneSweepView | null, score: string, d: number): boolean {
  return !!sweep && pointsOf(sweep, score).some((p) => Math.abs(p.density - d) < DENSITY_EPS);
}

/** The evaluated density nearest to d over all scores (the slider's snap target), or d when there is none. */
export function nearestEvaluated(sweep: PruneSweepView | null, d: number): number {
  if (!sweep || !sweep.points.length) return d;
  let best = sweep.points[0].density;
  for (const p of sweep.points) if (Math.abs(p.density - d) < Math.abs(best - d)) best = p.density;
  return best;
}

// ------------------------------------------------------------------------------------------------ layer list
// The per-layer bars are a virtualised list: a model of 600 (or 6,000) targets draws only the rows in view, so a
// slider move repaints a screenful, never every layer, and the list keeps its scroll position.

/** Height of one bar row, px (the rows are absolutely placed at i × LAYER_ROW_PX). */
export const LAYER_ROW_PX = 20;
/** Rows drawn above and below the viewport, so a fast scroll shows no blank band before the next paint. */
export const LAYER_OVERSCAN = 8;

/** The rows [first, end) of a list of `count` that a viewport at `scrollTop` of height `viewport` shows. */
export function visibleRows(scrollTop: number, viewport: number, count: number, rowPx = LAYER_ROW_PX, overscan = LAYER_OVERSCAN): { first: number; end: number } {
  if (count <= 0) return { first: 0, end: 0 };
  const first = Math.max(0, Math.min(count - 1, Math.floor(Math.max(0, scrollTop) / rowPx) - overscan));
  const end = Math.min(count, Math.ceil((Math.max(0, scrollTop) + Math.max(0, viewport)) / rowPx) + overscan);
  return { first, end: Math.max(first + 1, end) };
}

/** Indices of the targets whose name contains every space-separated word of the query (case-insensitive). */
export function filterLayers(names: readonly string[], query: string): number[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const out: number[] = [];
  names.forEach((n, i) => {
    const l = n.toLowerCase();
    if (words.every((w) => l.includes(w))) out.push(i);
  });
  return out;
}

/** The bars' summary: weighted sparsity over the targets, and the least and most pruned ones. */
export function layerSummary(targets: readonly { name: string; size: number }[], kept: readonly number[]): { sparsity: number; least: { name: string; sparsity: number }; most: { name: string; sparsity: number } } | null {
  if (!targets.length || kept.length !== targets.length) return null;
  let w = 0;
  let n = 0;
  let lo = 0;
  let hi = 0;
  kept.forEach((k, i) => {
    w += (1 - k) * targets[i].size;
    n += targets[i].size;
    if (k > kept[lo]) lo = i;
    if (k < kept[hi]) hi = i;
  });
  return { sparsity: n ? w / n : 0, least: { name: targets[lo].name, sparsity: 1 - kept[lo] }, most: { name: targets[hi].name, sparsity: 1 - kept[hi] } };
}
