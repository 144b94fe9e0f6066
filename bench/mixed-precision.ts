// `basin bench mixed-precision`: the demo (examples/demo.basin.yaml) trained for the same steps in f32 and in
// mixed precision (train.precision: mixed), side by side in one process on one adapter. The peer is Basin's own
// f32 path: mixed precision is judged against the run it replaces.
//
// Measured per precision:
//   saved_bytes_per_step  bytes of Linear-layer inputs the backward keeps (linearSaved in ops/matmul.ts: f32
//                         inputs at 4 bytes per element, mixed precision's f16 copies at 2), per training step
//   peak_live_bytes       the buffer pool's high-water mark of live bytes during the run (parameters, gradients,
//                         optimizer state, f16 weight copies and the step's temporaries)
//   ms_per_step           median over repetitions of the trainer's own steps/s over the run (one logging
//                         interval), after an untimed warm-up run of each precision (pipeline compiles)
//   final_loss            the training loss at the last step (deterministic: the same every repetition)
// Repetitions alternate f32 and mixed so the load of other processes hits both alike.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { linearSaved } from '../src/engine/ops/matmul';
import { train } from '../src/engine/train/trainer';
import { loadConfig } from '../src/files/config/load';
import type { TrainConfig } from '../src/files/config/schema';
import { gitCommit, median, packageRoot } from './report';

export interface MixedPrecisionBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
}

export interface MixedPrecisionRow {
  precision: 'f32' | 'mixed';
  steps: number;
  saved_bytes_per_step: number;
  peak_live_bytes: number;
  ms_per_step: number;
  final_loss: number;
}

export interface MixedPrecisionReport {
  bench: 'mixed-precision';
  when: string;
  commit: string | null;
  device: { vendor: string; description: string; fallback: boolean };
  peers: string[];
  rows: MixedPrecisionRow[];
  headline: { saved_activation_ratio: number | null; peak_memory_ratio: number | null; step_time_ratio: number | null; final_loss_rel_diff: number | null };
  why?: string;
}

export async function runMixedPrecisionBench(opts: MixedPrecisionBenchOptions): Promise<MixedPrecisionReport> {
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const steps = opts.quick ? 8 : 40;
  const reps = opts.quick ? 1 : 3;
  const base = loadConfig(path.join(packageRoot(), 'examples', 'demo.basin.yaml'));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-mp-'));
  const report: MixedPrecisionReport = {
    bench: 'mixed-precision',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: gpu.info.vendor, description: gpu.info.description, fallback: gpu.info.fallback },
    peers: ['basin f32 (train.precision: f32)'],
    rows: [],
    headline: { saved_activation_ratio: null, peak_memory_ratio: null, step_time_ratio: null, final_loss_rel_diff: null },
  };
  try {
    if (!rt.hasF16) {
      report.why = `${gpu.info.description || gpu.info.vendor} has no shader-f16: mixed precision would train in f32`;
      return report;
    }
    const config = (precision: 'f32' | 'mixed', n: number): TrainConfig => ({
      ...base.config,
      train: { ...base.config.train, steps: n, epochs: undefined, precision, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: n },
    });
    const once = async (precision: 'f32' | 'mixed', n: number) => {
      linearSaved.bytes = 0;
      rt.pool.resetPeak();
      let msPerStep = NaN;
      let loss = NaN;
      await train({
        rt,
        config: config(precision, n),
        outputDir: out,
        events: {
          onLog: (l) => {
            msPerStep = 1000 / l.stepsPerSec;
            loss = l.loss;
          },
        },
      });
      return { saved: linearSaved.bytes / n, peak: rt.pool.snapshot().peakLiveBytes, msPerStep, loss };
    };
    for (const p of ['f32', 'mixed'] as const) {
      opts.log(`mixed-precision: warm-up (${p})`);
      await once(p, 2);
    }
    const runs: Record<'f32' | 'mixed', Awaited<ReturnType<typeof once>>[]> = { f32: [], mixed: [] };
    for (let r = 0; r < reps; r++) {
      for (const p of r % 2 === 0 ? (['f32', 'mixed'] as const) : (['mixed', 'f32'] as const)) {
        opts.log(`mixed-precision: ${p}, repetition ${r + 1} of ${reps}, ${steps} steps`);
        runs[p].push(await once(p, steps));
      }
    }
    for (const p of ['f32', 'mixed'] as const) {
      const rs = runs[p];
      report.rows.push({
        precision: p,
        steps,
        saved_bytes_per_step: rs[0].saved,
        peak_live_bytes: Math.max(...rs.map((x) => x.peak)),
        ms_per_step: median(rs.map((x) => x.msPerStep)),
        final_loss: rs[0].loss,
      });
    }
    const [f, m] = report.rows;
    report.headline = {
      saved_activation_ratio: m.saved_bytes_per_step / f.saved_bytes_per_step,
      peak_memory_ratio: m.peak_live_bytes / f.peak_live_bytes,
      step_time_ratio: f.ms_per_step / m.ms_per_step,
      final_loss_rel_diff: Math.abs(m.final_loss - f.final_loss) / f.final_loss,
    };
    return report;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
    gpu.destroy();
  }
}

export function formatMixedPrecisionReport(r: MixedPrecisionReport): string {
  if (r.why) return `mixed-precision: not measured: ${r.why}`;
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const lines = [
    `mixed precision vs f32 on the demo (examples/demo.basin.yaml), ${r.rows[0]?.steps} steps, ${r.device.description}`,
    'precision  saved acts/step  peak live  ms/step  final loss',
    ...r.rows.map((x) => `${x.precision.padEnd(9)}  ${kib(x.saved_bytes_per_step).padStart(15)}  ${kib(x.peak_live_bytes).padStart(9)}  ${x.ms_per_step.toFixed(1).padStart(7)}  ${x.final_loss.toFixed(4).padStart(10)}`),
    `saved activations mixed/f32 ${r.headline.saved_activation_ratio?.toFixed(3)}; peak live memory mixed/f32 ${r.headline.peak_memory_ratio?.toFixed(3)}; ` +
      `step time f32/mixed ${r.headline.step_time_ratio?.toFixed(2)} (above 1: mixed faster); final loss differs by ${((r.headline.final_loss_rel_diff ?? NaN) * 100).toFixed(2)} %`,
  ];
  return lines.join('\n');
}
