// A study's run folder in the statistics panel: metrics rows grouped into one chart per split and metric, one
// line per case, sorted by data size (webview/stats/study.ts).
import * as assert from 'node:assert/strict';
import { studyCharts } from '../../webview/stats/study';

describe('stats panel: study charts (study.ts)', () => {
  const rows: Record<string, number>[] = [
    { step: 50000, uniform_val_ndcg10: 0.011, uniform_val_hr10: 0.024, uniform_test_ndcg10: 0.016, fraction: 0.5, time: 3 },
    { step: 12000, uniform_val_ndcg10: 0.012, uniform_val_hr10: 0.021, uniform_test_ndcg10: 0.013, fraction: 0.125, time: 1 },
    { step: 25000, 'recency-weighted_val_ndcg10': 0.0175, 'recency-weighted_test_ndcg10': 0.0226, time: 4 },
    { step: 24000, cap_val_ndcg10: 0.0159, cap_val_loss: 7.5, time: 5 },
  ];

  it('one chart per split and metric, validation first, NDCG before HR; a line per case sorted by interactions', () => {
    const charts = studyCharts(rows);
    assert.deepEqual(charts.map((c) => c.key), ['val_ndcg10', 'val_hr10', 'val_loss', 'test_ndcg10']);
    const ndcg = charts[0];
    assert.equal(ndcg.title, 'Validation NDCG@10 (%) against training interactions');
    assert.ok(ndcg.percent);
    assert.deepEqual(ndcg.series.map((s) => s.name), ['uniform', 'recency-weighted', 'cap']);
    assert.deepEqual(ndcg.series[0].xs, [12000, 50000]);
    assert.deepEqual(ndcg.series[0].ys, [0.012, 0.011]);
    assert.deepEqual(ndcg.series[1], { name: 'recency-weighted', xs: [25000], ys: [0.0175] });
  });

  it('a loss is not a percentage; fraction, time and unrelated keys are not charted; no rows, no charts', () => {
    const loss = studyCharts(rows).find((c) => c.key === 'val_loss')!;
    assert.equal(loss.percent, false);
    assert.equal(loss.title, 'Validation loss against training interactions');
    assert.deepEqual(studyCharts([{ step: 1, fraction: 1, time: 2, loss: 3 }]), []);
    assert.deepEqual(studyCharts([]), []);
  });
});
