// The prune panel's pure pieces: the sweep file as the panel sees it (src/host/prune/sweep-view.ts: NaN → null,
// extra one-density sweeps joined only when they prune the same tensors the same way) and the view model
// (webview/prune/model.ts): curves per score with the dense model at density 1, exact vs interpolated read-outs,
// per-layer bars interpolated between evaluated points, nothing below the lowest density.
import * as assert from 'node:assert/strict';
import { SWEEP_FORMAT, type SweepFile, type SweepPoint } from '../../src/files/prune/sweep-file';
import { sweepView } from '../../src/host/prune/sweep-view';
import { isPruneSnapshot, pruneProtocol } from '../../src/protocol/panels/prune';
import { LAYER_OVERSCAN, curvesFor, filterLayers, isEvaluated, layerBars, layerSummary, metricKeys, nearestEvaluated, readCurve, readOutNote, scoresOf, visibleRows } from '../../webview/prune/model';

const m = (loss: number, accuracy: number) => ({ loss, accuracy, hr10: accuracy });

function sweep(points: SweepPoint[], over: Partial<SweepFile> = {}): SweepFile {
  return {
    format: SWEEP_FORMAT,
    status: 'completed',
    created: '',
    updated: '',
    checkpoint: '/r/checkpoints/step-10.safetensors',
    step: 10,
    options: { scores: [{ type: 'magnitude' }, { type: 'random', seed: 0 }], granularity: 'tensor', pattern: null, targets: ['layers.*.weight'], base: null, densities: [1, 0.5, 0.2] },
    targets: [
      { name: 'layers.0.weight', shape: [4, 3], size: 12 },
      { name: 'layers.1.weight', shape: [2, 4], size: 8 },
    ],
    dense: m(1, 0.9),
    chance: m(2.3, 0.1),
    points,
    timing: { scoresMs: {}, totalMs: 0, denseEvalMs: 0 },
    ...over,
  };
}

const pt = (score: string, density: number, loss: number, layers = [density, density]): SweepPoint => ({ score, density, kept: density, layers, metrics: m(loss, 1 - loss / 10), ms: 1 });

describe('prune panel: sweep view', () => {
  it('keeps the points, turns NaN (JSON null) into null and marks nothing extra', () => {
    const s = sweep([pt('magnitude', 1, 1), { ...pt('magnitude', 0.5, 2), metrics: { loss: null as unknown as number, accuracy: 0.5, hr10: 0.5 } }]);
    const v = sweepView('/r/prune/sweep-1.json', s);
    assert.equal(v.points.length, 2);
    assert.equal(v.points[1].metrics.loss, null);
    assert.equal(v.points[1].metrics.accuracy, 0.5);
    assert.deepEqual(v.scores, ['magnitude', 'random']);
    assert.ok(v.points.every((p) => !p.extra));
  });

  it('joins an extra one-density sweep of the same targets and refuses one of other targets or granularity', () => {
    const main = sweep([pt('magnitude', 1, 1), pt('magnitude', 0.5, 2)]);
    const same = sweep([pt('magnitude', 0.35, 3)], { options: { ...main.options, densities: [0.35] } });
    const other = sweep([pt('magnitude', 0.3, 3)], { targets: [{ name: 'layers.0.weight', shape: [4, 3], size: 12 }, { name: 'x', shape: [1, 1], size: 1 }] });
    const rowwise = sweep([pt('magnitude', 0.25, 3)], { options: { ...main.options, granularity: 'row' } });
    const v = sweepView('f', main, [same, other, rowwise]);
    assert.deepEqual(v.points.map((p) => [p.density, p.extra]), [[1, false], [0.5, false], [0.35, true]]);
  });

  it("drops an extra point scored with other parameters than the sweep's curve of that score", () => {
    const opts = { scores: [{ type: 'wanda', batches: 16 }], granularity: 'row' as const, pattern: null, targets: ['layers.*.weight'], base: null, densities: [1, 0.5] };
    const main = sweep([pt('wanda', 1, 1), pt('wanda', 0.5, 2)], { options: opts });
    const sameParams = sweep([pt('wanda', 0.35, 3)], { options: { ...opts, densities: [0.35] } });
    const otherParams = sweep([pt('wanda', 0.3, 3)], { options: { ...opts, scores: [{ type: 'wanda', batches: 2 }], densities: [0.3] } });
    const otherScore = sweep([pt('magnitude', 0.25, 3)], { options: { ...opts, scores: [{ type: 'magnitude' }], densities: [0.25] } });
    const v = sweepView('f', main, [sameParams, otherParams, otherScore]);
    assert.deepEqual(v.points.map((p) => [p.score, p.density, p.extra]), [['wanda', 1, false], ['wanda', 0.5, false], ['wanda', 0.35, true], ['magnitude', 0.25, true]]);
  });

  it('passes the panel protocol guard inside a snapshot, and a point with the wrong number of layers fails it', () => {
    const v = sweepView('f', sweep([pt('magnitude', 0.5, 2)]));
    const snap = {
      checkpoint: 'c', runDir: 'r', step: 10, name: 'n', sweep: v, sweepMessage: '',
      sweepJob: { status: 'idle', fraction: null, message: null }, pointJob: { status: 'idle', fraction: null, message: null }, applyJob: { status: 'idle', fraction: null, message: null },
      applied: null, scores: [{ name: 'magnitude', doc: '', needs: '' }], defaultScores: ['magnitude'], defaultDensities: [1, 0.5], jobsBlocked: null,
    };
    assert.ok(isPruneSnapshot(snap));
    assert.ok(pruneProtocol.parseHostMessage({ kind: 'notification', type: 'state', params: snap }).ok);
    const bad = { ...snap, sweep: { ...v, points: [{ ...v.points[0], layers: [0.5] }] } };
    assert.equal(isPruneSnapshot(bad), false);
  });

  it('validates the webview messages: densities in (0, 1], score names, known commands only', () => {
    const ok = (x: unknown) => pruneProtocol.parseWebviewMessage(x).ok;
    assert.ok(ok({ kind: 'request', id: 1, type: 'apply', params: { score: 'magnitude', density: 0.4 } }));
    assert.equal(ok({ kind: 'request', id: 1, type: 'apply', params: { score: 'magnitude', density: 0 } }), false);
    assert.equal(ok({ kind: 'request', id: 1, type: 'apply', params: { score: 'magnitude', density: 1.5 } }), false);
    assert.equal(ok({ kind: 'request', id: 1, type: 'apply', params: { score: '../x', density: 0.5 } }), false);
    assert.equal(ok({ kind: 'request', id: 2, type: 'runSweep', params: { scores: [], densities: [0.5] } }), false);
    assert.ok(ok({ kind: 'request', id: 2, type: 'runSweep', params: { scores: ['magnitude', 'random'], densities: [1, 0.5, 0.2] } }));
    assert.equal(ok({ kind: 'command', type: 'cancel', params: { job: 'everything' } }), false);
    assert.equal(ok({ kind: 'command', type: 'rm', params: {} }), false);
    assert.ok(ok({ kind: 'command', type: 'uiState', params: { metric: 'loss', score: 'random', density: 0.33 } }));
  });
});

describe('prune panel: view model', () => {
  const v = sweepView('f', sweep([pt('magnitude', 0.5, 2, [0.6, 0.35]), pt('magnitude', 0.2, 4, [0.3, 0.05]), pt('random', 0.5, 3), pt('random', 0.2, 6)]));

  it('lists the metrics in a fixed order and the scores in the sweep’s order', () => {
    assert.deepEqual(metricKeys(v), ['loss', 'accuracy', 'hr10']);
    assert.deepEqual(scoresOf(v), ['magnitude', 'random']);
    assert.deepEqual(metricKeys(null), []);
  });

  it('draws one curve per score, ascending in density, the dense model at density 1', () => {
    const c = curvesFor(v, 'loss');
    assert.deepEqual(c.map((x) => x.score), ['magnitude', 'random']);
    assert.deepEqual(c[0].xs, [0.2, 0.5, 1]);
    assert.deepEqual(c[0].ys, [4, 2, 1]);
    assert.deepEqual(c[1].ys, [6, 3, 1]);
  });

  it('reads exact values at evaluated densities and interpolates linearly between them', () => {
    const c = curvesFor(v, 'loss')[0];
    assert.deepEqual(readCurve(c.xs, c.ys, 0.5), { value: 2, exact: true, lo: 0.5, hi: 0.5 });
    const r = readCurve(c.xs, c.ys, 0.35);
    assert.equal(r.exact, false);
    assert.ok(Math.abs(r.value! - 3) < 1e-12, `${r.value}`);
    assert.deepEqual([r.lo, r.hi], [0.2, 0.5]);
    assert.equal(readCurve(c.xs, c.ys, 0.1).value, null, 'below the lowest density nothing is made up');
    const pct = (d: number) => `${Math.round(100 * d)}%`;
    assert.match(readOutNote(r, pct), /interpolated between the evaluated 20% and 50%/);
    assert.match(readOutNote(readCurve(c.xs, c.ys, 0.1), pct), /outside/);
  });

  it('gives per-layer bars: exact at a point, interpolated per layer between points, all kept at density 1', () => {
    assert.deepEqual(layerBars(v, 'magnitude', 0.5)!.kept, [0.6, 0.35]);
    const mid = layerBars(v, 'magnitude', 0.35)!;
    assert.equal(mid.exact, false);
    assert.ok(Math.abs(mid.kept[0] - 0.45) < 1e-12 && Math.abs(mid.kept[1] - 0.2) < 1e-12, `${mid.kept}`);
    const top = layerBars(v, 'magnitude', 0.75)!;
    assert.ok(Math.abs(top.kept[0] - 0.8) < 1e-12 && Math.abs(top.kept[1] - 0.675) < 1e-12, `${top.kept}`);
    assert.deepEqual(layerBars(v, 'magnitude', 1)!.kept, [1, 1]);
    assert.equal(layerBars(v, 'magnitude', 0.05), null);
    assert.equal(layerBars(v, 'nope', 0.5), null);
  });

  it('knows which densities were evaluated, extra points included, and snaps to the nearest one', () => {
    const withExtra = sweepView('f', sweep([pt('magnitude', 0.5, 2)]), [sweep([pt('magnitude', 0.35, 3)])]);
    assert.ok(isEvaluated(withExtra, 'magnitude', 0.35));
    assert.equal(isEvaluated(withExtra, 'magnitude', 0.3), false);
    assert.equal(nearestEvaluated(v, 0.45), 0.5);
    assert.equal(nearestEvaluated(null, 0.45), 0.45);
    assert.deepEqual(curvesFor(withExtra, 'loss')[0].extra, [true, false, false]);
  });
});

describe('prune panel: the per-layer list at 600 targets', () => {
  it('draws only the rows in view plus the overscan, wherever it is scrolled', () => {
    const n = 600;
    const top = visibleRows(0, 360, n, 20);
    assert.deepEqual(top, { first: 0, end: 18 + LAYER_OVERSCAN });
    const mid = visibleRows(20 * 300 + 7, 360, n, 20);
    assert.equal(mid.first, 300 - LAYER_OVERSCAN);
    assert.equal(mid.end, 300 + 19 + LAYER_OVERSCAN);
    const bottom = visibleRows(20 * n - 360, 360, n, 20);
    assert.equal(bottom.end, n);
    assert.ok(bottom.end - bottom.first <= 18 + 2 * LAYER_OVERSCAN + 1);
    // Scrolled past the end (a shorter filtered list): still the last rows, never an empty or inverted range.
    assert.deepEqual(visibleRows(1e6, 360, 5, 20), { first: 4, end: 5 });
    assert.deepEqual(visibleRows(0, 360, 0, 20), { first: 0, end: 0 });
    assert.deepEqual(visibleRows(-50, 100, 3, 20), { first: 0, end: 3 });
  });

  it('filters by every word of the query, case-insensitive, in order', () => {
    const names = Array.from({ length: 600 }, (_, i) => `blocks.${Math.floor(i / 6)}.${['attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp.fc1', 'mlp.fc2'][i % 6]}.weight`);
    assert.equal(filterLayers(names, '').length, 600);
    assert.equal(filterLayers(names, 'FC1').length, 100);
    assert.deepEqual(filterLayers(names, 'blocks.42. fc2'), [42 * 6 + 5]);
    assert.deepEqual(filterLayers(names, 'nothing'), []);
  });

  it('summarises the sparsity weighted by size, and names the least and most pruned', () => {
    const t = [
      { name: 'a', size: 100 },
      { name: 'b', size: 300 },
      { name: 'c', size: 100 },
    ];
    const s = layerSummary(t, [0.5, 0.1, 0.9])!;
    assert.ok(Math.abs(s.sparsity - (50 + 270 + 10) / 500) < 1e-12);
    assert.deepEqual(s.least, { name: 'c', sparsity: 1 - 0.9 });
    assert.deepEqual(s.most, { name: 'b', sparsity: 1 - 0.1 });
    assert.equal(layerSummary(t, [1, 1]), null, 'a point whose layers do not fit the targets');
  });
});
