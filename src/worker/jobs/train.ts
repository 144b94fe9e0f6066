// `train`: trains from a config, or resumes a run folder, with the engine's train(). Cancellation stops after the
// current step with a checkpoint (the reply then says `status: 'cancelled'`); statistics frames go out on the
// binary side channel as the trainer appends them to stats.bin.
import * as path from 'node:path';
import { SideRecordKind, type JobParams, type JobResult, type TrainJobProgress, type TrainJobResult } from '../../protocol/worker';
import { loadConfig } from '../../files/config/load';
import type { TrainConfig } from '../../files/config/schema';
import { openRun } from '../../files/run-record';
import { train, type TrainEvents } from '../../engine/train/trainer';
import { InvalidJobParamsError, optionalAbsolutePath, type JobHandler } from './context';
import { withGpu } from './gpu';
import { ThrottledProgress } from './throttle';

/** Progress notifications per second of a train job, at most. */
const TRAIN_PROGRESS_PER_SEC = 10;

async function trainConfigFor(params: JobParams<'train'>): Promise<{ config: TrainConfig; configPath: string | undefined }> {
  const configPath = optionalAbsolutePath('configPath', params.configPath);
  const resume = optionalAbsolutePath('resume', params.resume, 'an absolute path of a run folder');
  if (configPath) {
    // ConfigError: `<file>:<line>:<col>: <field>: <message>`, one line per problem (→ InvalidParams).
    const { config, path: file } = loadConfig(configPath);
    return { config, configPath: file };
  }
  if (!resume) throw new InvalidJobParamsError('a train job needs configPath or resume');
  const run = await openRun(resume);
  const rec = run.record;
  if (!rec.config || typeof rec.config !== 'object') throw new InvalidJobParamsError(`${run.runJsonPath}: the run records no config to resume with`);
  return { config: rec.config as TrainConfig, configPath: rec.configPath ?? undefined };
}

export const trainJob: JobHandler<'train'> = async (params, ctx) => {
  let resume: string | undefined;
  if (params.resume) {
    const run = await openRun(params.resume).catch((e: Error) => {
      throw new InvalidJobParamsError(e.message);
    });
    if (!run.latestCheckpoint()) throw new InvalidJobParamsError(`${run.dir} has no checkpoint to resume from`);
    resume = run.dir;
  }
  const { config, configPath } = await trainConfigFor(params);
  const outputDir = params.outputDir ? path.resolve(params.outputDir) : undefined;

  return withGpu(ctx, () => ({ ...emptyProgress(config), phase: 'queued' }), async (rt, gpu) => {
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    const progress = new ThrottledProgress<TrainJobProgress>((p) => {
      const fraction = p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : undefined;
      ctx.progress(p, { fraction, message: progressMessage(p) });
    }, 1000 / TRAIN_PROGRESS_PER_SEC);
    let state: TrainJobProgress = emptyProgress(config);
    const update = (patch: Partial<TrainJobProgress>, urgent = false): void => {
      state = { ...state, ...patch };
      progress.post(state, urgent);
    };

    const events: TrainEvents = {
      onStart: (i) => {
        ctx.log('info', `train ${config.name}: ${i.model.type}, ${i.parameters.toLocaleString('en-US')} parameters on ${gpu.info.description || gpu.info.vendor} (${gpu.info.backend}); run folder ${i.runDir}${i.startStep ? `, resuming at step ${i.startStep}` : ''}`);
        update({ phase: 'started', runDir: i.runDir, step: i.startStep, startStep: i.startStep, totalSteps: i.totalSteps, parameters: i.parameters }, true);
      },
      onLog: (l) => update({ phase: 'step', step: l.step, totalSteps: l.totalSteps, loss: l.loss, lr: l.lr, gradNorm: l.gradNorm, stepsPerSec: l.stepsPerSec }),
      onEval: (step, m) => update({ phase: 'eval', step: Math.max(state.step, step), val: { ...m }, valStep: step }),
      onCheckpoint: (step, file) => update({ phase: 'checkpoint', step: Math.max(state.step, step), checkpoint: file, checkpointStep: step }),
      onStats: (step, frame) => {
        if (state.runDir) ctx.sendBinary(SideRecordKind.Stats, state.runDir, step, frame);
      },
    };

    try {
      const r = await train({ rt, config, configPath, outputDir, resume, signal: abort.signal, events });
      progress.post({ ...state, step: r.steps });
      progress.flush();
      return toResult(r, state.totalSteps);
    } finally {
      progress.flush();
      sub.dispose();
    }
  });
};

function toResult(r: Awaited<ReturnType<typeof train>>, totalSteps: number): JobResult<'train'> {
  const result: TrainJobResult = {
    runDir: r.runDir,
    status: r.status,
    steps: r.steps,
    totalSteps,
    lastLoss: Number.isFinite(r.lastLoss) ? r.lastLoss : null,
    eval: r.eval ? { ...r.eval } : null,
    chance: r.chance ? { ...r.chance } : null,
    checkpoint: r.checkpoint ? path.resolve(r.runDir, r.checkpoint) : null,
  };
  return result;
}

function emptyProgress(config: TrainConfig): TrainJobProgress {
  return { phase: 'started', runDir: '', name: config.name, step: 0, totalSteps: 0, startStep: 0 };
}

function progressMessage(p: TrainJobProgress): string {
  const parts = [`step ${p.step}/${p.totalSteps}`];
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.stepsPerSec !== undefined && Number.isFinite(p.stepsPerSec)) parts.push(`${p.stepsPerSec.toFixed(1)} steps/s`);
  return parts.join(' · ');
}

