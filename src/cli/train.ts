// `basin train <config>`: a progress bar on stderr, metrics at each evaluation, the run folder at the end.
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { loadConfig } from '../files/config/load';
import { GpuDevice } from '../engine/gpu/device';
import { Runtime } from '../engine/gpu/runtime';
import { train, TrainResult } from '../engine/train/trainer';
import { describeAdapters } from '../engine/train/adapters';
import type { TrainConfig } from '../files/config/schema';
import type { EvalMetrics } from '../engine/train/evaluate';
import { KernelProfiler, formatProfile } from '../engine/gpu/profiler';
import { describePrecision } from '../engine/train/mixed-precision';

export interface TrainCommandOptions {
  resume?: string;
  fromCheckpoint?: number;
  output?: string;
  steps?: number;
  json?: boolean;
  profile?: boolean;
  /** Called with the result (demo prints what the model learned). */
  quiet?: boolean;
}

export function fmtMetrics(m: EvalMetrics): string {
  const base = `loss ${m.loss.toFixed(4)}  acc ${(100 * m.accuracy).toFixed(1)}%  HR@10 ${(100 * m.hr10).toFixed(1)}%`;
  // Next-item models also rank the full catalogue (seen items removed): the recommender metrics.
  return m.ndcg10 === undefined ? base : `${base}  full ranking: NDCG@10 ${m.ndcg10.toFixed(4)}  HR@10 ${(100 * (m.hr10Full ?? NaN)).toFixed(1)}%  MRR ${(m.mrr ?? NaN).toFixed(4)}`;
}

export async function runTrain(config: TrainConfig, configPath: string | undefined, opts: TrainCommandOptions): Promise<TrainResult> {
  if (opts.steps) config.train = { ...config.train, steps: opts.steps, epochs: undefined };
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  // Per-kernel CPU time in dispatch() and, with 'timestamp-query', GPU time (one pass per dispatch while profiling).
  const profiler = opts.profile ? new KernelProfiler(rt).attach() : null;
  const err = process.stderr;
  const bar = new SingleBar(
    { format: ' {bar} {percentage}% | step {value}/{total} | loss {loss} | {rate} step/s | eta {eta_formatted}', hideCursor: true, stream: err, clearOnComplete: true, noTTYOutput: false, notTTYSchedule: 5000 },
    Presets.shades_classic,
  );
  const cancel = new AbortController();
  const onSigint = () => {
    if (cancel.signal.aborted) process.exit(130);
    err.write('\nbasin: stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)\n');
    cancel.abort();
  };
  process.on('SIGINT', onSigint);
  const log = (s: string) => {
    if (err.isTTY) bar.stop();
    err.write(s + '\n');
  };
  try {
    const result = await train({
      rt,
      config,
      configPath,
      outputDir: opts.output ? path.resolve(opts.output) : undefined,
      resume: opts.resume,
      resumeStep: opts.fromCheckpoint,
      signal: cancel.signal,
      events: {
        onStart: (i) => {
          err.write(`basin: ${config.name} — ${i.model.type}, ${i.parameters.toLocaleString('en-US')} parameters on ${gpu.info.description || gpu.info.vendor} (${gpu.info.backend})\n`);
          err.write(`basin: run folder ${i.runDir}${i.startStep ? ` (resuming at step ${i.startStep})` : ''}\n`);
          if (i.init) {
            err.write(`basin: fine-tuning from ${i.init.file}: ${i.init.loaded.length} tensors loaded`);
            err.write(i.init.fresh.length ? `; fresh initialization for ${i.init.fresh.join(', ')}\n` : '\n');
            if (i.init.unused.length) err.write(`basin: not in this model (unused): ${i.init.unused.join(', ')}\n`);
          }
          if (i.frozen?.length) err.write(`basin: frozen (no gradient, no update): ${i.frozen.join(', ')}\n`);
          if (i.adapters) err.write(`basin: ${describeAdapters(i.adapters, i.parameters, i.trainable ?? i.adapters.parameters)}\n`);
          if (i.optimizer?.stateBytes !== undefined) err.write(`basin: optimizer ${i.optimizer.name}: state ${(i.optimizer.stateBytes / Math.max(1, i.parameters)).toFixed(2)} bytes/parameter (AdamW would keep 8.00)\n`);
          if (i.precision && i.precision.requested !== 'f32') err.write(`basin: ${describePrecision(i.precision)}\n`);
          bar.start(i.totalSteps, i.startStep, { loss: '-', rate: '-' });
        },
        onLog: (l) => {
          bar.update(l.step, { loss: l.loss.toFixed(4), rate: l.stepsPerSec.toFixed(1) });
          if (opts.json) process.stdout.write(JSON.stringify({ type: 'log', ...l }) + '\n');
        },
        onEval: (step, m) => {
          const wasTty = err.isTTY;
          log(`step ${String(step).padStart(6)}  validation: ${fmtMetrics(m)}`);
          if (wasTty) bar.start(bar.getTotal(), step, {});
          if (opts.json) process.stdout.write(JSON.stringify({ type: 'eval', step, ...m }) + '\n');
        },
        onCheckpoint: (step, file) => {
          if (opts.json) process.stdout.write(JSON.stringify({ type: 'checkpoint', step, file }) + '\n');
        },
      },
    });
    bar.stop();
    if (result.status === 'cancelled') err.write(`basin: cancelled at step ${result.steps}; resume with --resume ${result.runDir}\n`);
    if (profiler) await printProfile(rt, profiler, result.steps);
    return result;
  } finally {
    bar.stop();
    process.off('SIGINT', onSigint);
    gpu.destroy();
  }
}

async function printProfile(rt: Runtime, profiler: KernelProfiler, steps: number): Promise<void> {
  const c = rt.counters;
  await profiler.drain();
  profiler.detach();
  process.stderr.write(`\nprofile: ${c.dispatches.toLocaleString('en-US')} dispatches, ${c.submits.toLocaleString('en-US')} submits over ${steps} steps (${(c.dispatches / Math.max(1, steps)).toFixed(1)} dispatches/step, ` +
    `${(c.submits / Math.max(1, steps)).toFixed(2)} submits/step; evaluation and statistics included)\n`);
  if (!profiler.gpuTiming) process.stderr.write('  (this device has no timestamp-query: CPU time spent recording each kernel only)\n');
  for (const line of formatProfile(profiler.rows(), steps)) process.stderr.write(line + '\n');
}

export async function trainCommand(configFile: string, opts: TrainCommandOptions): Promise<void> {
  if (opts.fromCheckpoint !== undefined && !opts.resume) throw new Error('--from-checkpoint needs --resume <runDir>');
  const { config, path: file } = loadConfig(configFile);
  const result = await runTrain(config, file, opts);
  if (result.eval) process.stderr.write(`basin: final validation: ${fmtMetrics(result.eval)} (chance: ${fmtMetrics(result.chance!)})\n`);
  if (result.test) process.stderr.write(`basin: test${result.best && result.testStep === result.best.step && result.testStep !== result.steps ? ` (the weights of step ${result.testStep}, the best ${result.best.metric})` : ''}: ${fmtMetrics(result.test)}\n`);
  process.stdout.write(`${result.checkpoint ? path.join(result.runDir, result.checkpoint) : result.runDir}\n`);
}
