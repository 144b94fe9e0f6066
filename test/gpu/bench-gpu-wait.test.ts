// `basin bench gpu-wait` on tiny rounds: the report has its headline keys, both modes ran (Dawn's polls went
// through the pacing in one and unpaced in the other), and the pacing is back on afterwards. Timing is not checked.
import * as assert from 'node:assert/strict';
import { formatGpuWaitReport, runGpuWaitBench, type GpuWaitRow } from '../../bench/gpu-wait';
import { dawnPollPacing } from '../../src/engine/gpu/dawn-polling';

describe('bench gpu-wait (tiny)', function () {
  this.timeout(120_000);

  it('times paced and spinning waits side by side and restores the pacing', async () => {
    const report = (await runGpuWaitBench({ json: true, tiny: true, log: () => undefined })) as {
      bench: string;
      rows: GpuWaitRow[];
      headline: Record<string, number | null>;
      peers: string[];
    };
    assert.equal(report.bench, 'gpu-wait');
    assert.deepEqual(report.rows.map((r) => r.case), ['short', 'medium', 'long']);
    for (const r of report.rows) {
      assert.ok(r.paced_wall_ms > 0 && r.spin_wall_ms > 0, `${r.case}: both modes timed`);
      assert.ok(r.paced_polls >= 1 && r.spin_polls >= 1, `${r.case}: Dawn polled in both modes (${r.paced_polls}, ${r.spin_polls} per iteration)`);
      assert.ok(Math.abs(r.wall_ratio - r.spin_wall_ms / r.paced_wall_ms) < 1e-9);
    }
    for (const k of ['wall_ratio_long', 'cpu_ratio_long', 'wall_ratio_short']) assert.equal(typeof report.headline[k], 'number', k);
    assert.equal(dawnPollPacing(), true, 'pacing restored');
    assert.match(formatGpuWaitReport(report), /headline: wall_ratio_long = [\d.]+/);
  });
});
