// A study's run folder in the statistics panel (run.json kind 'study', e.g. `basin study data-efficiency`): one
// metrics row per trained model, `step` = the training interactions it saw, and its results under
// `<case>_<split>_<metric>` (`uniform_val_ndcg10`, `recency-weighted_test_hr10`). The panel charts each metric
// against the data size, one line per case (a strategy with a single budget is a dot), instead of over steps.
// Pure: no DOM, so the grouping is unit-tested.

export interface StudySeries {
  /** The case (strategy) name as the study wrote it. */
  name: string;
  xs: number[];
  ys: number[];
}

export interface StudyChart {
  /** `<split>_<metric>`, e.g. `val_ndcg10`. */
  key: string;
  title: string;
  /** Every value is a fraction in [0, 1] (ranking metrics): drawn as percentages. */
  percent: boolean;
  series: StudySeries[];
}

const KEY = /^(.+?)_(val|test)_([A-Za-z0-9]+)$/;

const METRIC_NAMES: Record<string, string> = {
  ndcg10: 'NDCG@10',
  hr10: 'HR@10',
  hr10Full: 'HR@10',
  mrr: 'MRR',
  coverage10: 'coverage@10',
  loss: 'loss',
  accuracy: 'accuracy',
};

/** Charts in a stable order: validation before test, then NDCG, HR, MRR, the rest by name. */
export function studyCharts(rows: readonly Record<string, number>[]): StudyChart[] {
  const charts = new Map<string, { split: string; metric: string; series: Map<string, StudySeries> }>();
  for (const row of rows) {
    if (typeof row.step !== 'number') continue;
    for (const k of Object.keys(row)) {
      const m = KEY.exec(k);
      const v = row[k];
      if (!m || typeof v !== 'number' || !Number.isFinite(v)) continue;
      const [, name, split, metric] = m;
      const key = `${split}_${metric}`;
      let c = charts.get(key);
      if (!c) charts.set(key, (c = { split, metric, series: new Map() }));
      let s = c.series.get(name);
      if (!s) c.series.set(name, (s = { name, xs: [], ys: [] }));
      s.xs.push(row.step);
      s.ys.push(v);
    }
  }
  const rank = (metric: string) => {
    const i = ['ndcg10', 'hr10', 'hr10Full', 'mrr'].indexOf(metric);
    return i < 0 ? 10 : i;
  };
  return [...charts.entries()]
    .sort(([, a], [, b]) => (a.split === b.split ? rank(a.metric) - rank(b.metric) || a.metric.localeCompare(b.metric) : a.split === 'val' ? -1 : 1))
    .map(([key, c]) => {
      const series = [...c.series.values()].map((s) => {
        // Rows are written in training order, not by size: sort each line by its x.
        const order = s.xs.map((_, i) => i).sort((a, b) => s.xs[a] - s.xs[b]);
        return { name: s.name, xs: order.map((i) => s.xs[i]), ys: order.map((i) => s.ys[i]) };
      });
      const percent = c.metric !== 'loss' && series.every((s) => s.ys.every((y) => y >= 0 && y <= 1));
      const title = `${c.split === 'val' ? 'Validation' : 'Test'} ${METRIC_NAMES[c.metric] ?? c.metric}${percent ? ' (%)' : ''} against training interactions`;
      return { key, title, percent, series };
    });
}
