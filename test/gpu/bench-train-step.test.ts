// `basin bench train-step` on tiny models: the report has the headline keys of shared/notes/benchmarks.md and
// both peers (Basin and TF.js WebGPU on the same adapter) trained the same model down; PyTorch (CPU) too where it
// is installed, else its figures are null with the reason. Timing is not checked.
import * as assert from 'node:assert/strict';
import { formatTrainStepReport, runTrainStepBench } from '../../bench/train-step';

interface Row {
  model: string;
  params: number;
  tfjs_params: number | null;
  ok: boolean;
  why?: string;
  basin_ms: number;
  tfjs_ms: number | null;
  basin_loss_first: number;
  basin_loss_last: number;
  tfjs_loss_first: number | null;
  tfjs_loss_last: number | null;
  max_loss_diff_basin_vs_tfjs: number | null;
  torch_params: number | null;
  torch_ms: number | null;
  ratio_vs_torch: number | null;
  torch_loss_first: number | null;
  torch_loss_last: number | null;
  max_loss_diff_basin_vs_torch: number | null;
  torch_why?: string;
}

describe('bench train-step (tiny)', function () {
  this.timeout(120_000);

  it('reports the headline keys and both peers reduce the loss of the same model', async () => {
    const logs: string[] = [];
    const report = (await runTrainStepBench({ json: true, quick: true, tiny: true, log: (s) => logs.push(s) })) as {
      bench: string;
      rows: Row[];
      headline: Record<string, number | null>;
      memory: { lower_bound_bytes: number; basin_peak_bytes: number; peak_over_lower_bound: number; tfjs_peak_bytes: number | null; tfjs_peak_over_lower_bound: number | null } | null;
      unavailable_peers: { peer: string; why: string | null }[];
      profile: Record<string, { dispatches_per_step: number }>;
    };
    assert.equal(report.bench, 'train-step');
    for (const k of ['ms_per_step', 'ratio_vs_peer', 'ratio_vs_peer_demo', 'ratio_vs_torch_cpu', 'peak_over_lower_bound', 'tfjs_peak_over_lower_bound']) {
      assert.ok(k in report.headline, `headline lacks ${k}`);
    }
    assert.equal(report.rows.length, 2);
    for (const r of report.rows) {
      assert.ok(r.ok, `${r.model}: ${r.why ?? ''}\n${logs.join('\n')}`);
      assert.equal(r.tfjs_params, r.params, `${r.model}: parameter counts differ`);
      assert.ok(r.basin_loss_last < r.basin_loss_first, `${r.model}: Basin loss ${r.basin_loss_first} → ${r.basin_loss_last}`);
      assert.ok(r.tfjs_loss_last! < r.tfjs_loss_first!, `${r.model}: TF.js loss ${r.tfjs_loss_first} → ${r.tfjs_loss_last}`);
      // Same weights, data and optimizer: the trajectories agree to float precision.
      assert.ok(r.max_loss_diff_basin_vs_tfjs! < 1e-3, `${r.model}: losses differ by ${r.max_loss_diff_basin_vs_tfjs}`);
      assert.ok(r.basin_ms > 0 && r.tfjs_ms! > 0);
      if (r.torch_ms === null) {
        // Absent PyTorch is reported, never left out silently.
        assert.ok(r.torch_why && report.unavailable_peers.some((p) => p.peer === 'pytorch-cpu' && p.why), `${r.model}: PyTorch null without a reason`);
      } else {
        assert.equal(r.torch_params, r.params, `${r.model}: PyTorch parameter count differs`);
        assert.ok(r.torch_loss_last! < r.torch_loss_first!, `${r.model}: PyTorch loss ${r.torch_loss_first} → ${r.torch_loss_last}`);
        assert.ok(r.max_loss_diff_basin_vs_torch! < 1e-3, `${r.model}: Basin and PyTorch losses differ by ${r.max_loss_diff_basin_vs_torch}`);
        assert.equal(typeof r.ratio_vs_torch, 'number');
      }
    }
    assert.equal(typeof report.headline.ms_per_step, 'number');
    assert.equal(typeof report.headline.ratio_vs_peer, 'number');
    assert.equal(typeof report.headline.ratio_vs_peer_demo, 'number');
    // The pool's high-water mark cannot be below what the step must hold; TF.js's is measured alongside.
    assert.ok(report.memory, 'no memory report');
    assert.ok(report.memory.lower_bound_bytes > 0 && report.memory.basin_peak_bytes > 0);
    assert.ok(report.memory.peak_over_lower_bound >= 1, `Basin's peak is below the lower bound: ${JSON.stringify(report.memory)}`);
    assert.ok(report.memory.tfjs_peak_bytes! > 0, `no TF.js peak: ${JSON.stringify(report.memory)}`);
    assert.equal(report.headline.peak_over_lower_bound, report.memory.peak_over_lower_bound);
    assert.ok(report.profile['transformer-tiny'].dispatches_per_step > 0);
    assert.match(formatTrainStepReport(report), /headline: ms_per_step/);
  });
});
