// `train`: trains from a config, or resumes a run folder, with the engine's train(). Cancellation stops after the
// current step with a checkpoint (the reply then says `status: 'cancelled'`); statistics frames go out on the
// binary side channel as the trainer appends them to stats.bin.
import * as path from 'node:path';
import { SideRecordKind, type JobParams, type JobResult, type TrainJobProgress, type TrainJobResult } from '../../protocol/worker';
import { loadConfig } from '../../files/config/load';
import type { TrainConfig } from '../../files/config/schema';
import { openRun } from '../../files/run-record';
import { train, type TrainEvents } from '../../engine/train/trainer';
import { describePrecision } from '../../engine/train/mixed-precision';
import { InvalidJobParamsError, optionalAbsolutePath, type JobHandler } from './context';
import { isWarm, markWarm, withGpu } from './gpu';
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

/** What decides which kernels a training run compiles: the model, the optimizer, the loss, statistics on or off. */
export function warmKey(config: TrainConfig): string {
  const t = config.train;
  return JSON.stringify([config.model, t.optimizer?.type ?? null, t.loss ?? null, (t.statsEvery ?? 0) > 0]);
}

export const COMPILING_MESSAGE = 'compiling GPU kernels (first run only)…';

export const trainJob: JobHandler<'train'> = async (params, ctx) => {
  let resume: string | undefined;
  let resumeStep: number | undefined;
  if (params.fromCheckpoint !== undefined && !params.resume) throw new InvalidJobParamsError('fromCheckpoint needs resume (a run folder)');
  if (params.resume) {
    const run = await openRun(params.resume).catch((e: Error) => {
      throw new InvalidJobParamsError(e.message);
    });
    const latest = run.latestCheckpoint();
    if (!latest) throw new InvalidJobParamsError(`${run.dir} has no checkpoint to resume from`);
    if (params.fromCheckpoint !== undefined) {
      const step = params.fromCheckpoint;
      if (!Number.isInteger(step) || step < 0) throw new InvalidJobParamsError(`fromCheckpoint must be a checkpoint's step, got ${JSON.stringify(step)}`);
      if (!run.record.checkpoints.some((c) => c.step === step) && latest.step !== step) {
        throw new InvalidJobParamsError(`${run.dir} has no checkpoint at step ${step}`);
      }
      resumeStep = step;
    }
    // Resuming a finished run would run no step and then record "no metrics" over its real ones (run.json's
    // lastMetrics): refuse it, whatever the host offered.
    const from = resumeStep ?? latest.step;
    const total = (run.record.config as { train?: { steps?: unknown } } | null)?.train?.steps;
    if ((typeof total === 'number' && from >= total) || (resumeStep === undefined && run.record.status === 'completed')) {
      throw new InvalidJobParamsError(
        `${path.basename(run.dir)} is complete: it trained ${typeof total === 'number' ? `all ${total} steps` : 'to its end'} and its last checkpoint is step ${latest.step}; there is nothing to resume. Train the config again for a new run.`,
      );
    }
    resume = run.dir;
  }
  const { config, configPath } = await trainConfigFor(params);
  const outputDir = params.outputDir ? path.resolve(params.outputDir) : undefined;
  const key = warmKey(config);

  const whileWarming = () => ({ data: { ...emptyProgress(config), phase: 'compiling' as const, compiling: true }, message: COMPILING_MESSAGE });
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
    // A cold runtime compiles every kernel during the first step, synchronously (the JS thread is busy, nothing
    // else goes out): say so BEFORE it starts, and give the notification a moment to leave.
    const cold = !isWarm(rt, key);
    if (cold) {
      update({ phase: 'compiling', compiling: true }, true);
      await new Promise((r) => setTimeout(r, 20));
    }

    const events: TrainEvents = {
      onStart: (i) => {
        ctx.log('info', `train ${config.name}: ${i.model.type}, ${i.parameters.toLocaleString('en-US')} parameters on ${gpu.info.description || gpu.info.vendor} (${gpu.info.backend}); run folder ${i.runDir}${i.startStep ? `, resuming at step ${i.startStep}` : ''}`);
        if (i.precision && i.precision.requested !== 'f32') ctx.log(i.precision.reason ? 'warn' : 'info', `train ${config.name}: ${describePrecision(i.precision)}`);
        update({ phase: 'started', runDir: i.runDir, step: i.startStep, startStep: i.startStep, totalSteps: i.totalSteps, parameters: i.parameters }, true);
      },
      onLog: (l) => {
        markWarm(rt, key);
        update({ phase: 'step', step: l.step, totalSteps: l.totalSteps, loss: l.loss, lr: l.lr, gradNorm: l.gradNorm, stepsPerSec: l.stepsPerSec, compiling: undefined });
      },
      onEval: (step, m) => update({ phase: 'eval', step: Math.max(state.step, step), val: { ...m }, valStep: step }),
      onCheckpoint: (step, file) => update({ phase: 'checkpoint', step: Math.max(state.step, step), checkpoint: file, checkpointStep: step }),
      onStats: (step, frame) => {
        if (state.runDir) ctx.sendBinary(SideRecordKind.Stats, state.runDir, step, frame);
      },
    };

    try {
      // `resumeStep` is the engine's option for "resume from this checkpoint, not the latest" (TrainOptions); built
      // as a variable so that this compiles against an engine that does not have it yet.
      const options = { rt, config, configPath, outputDir, resume, resumeStep, signal: abort.signal, events };
      const r = await train(options);
      if (r.steps > state.startStep) markWarm(rt, key);
      progress.post({ ...state, step: r.steps });
      progress.flush();
      return toResult(r, state.totalSteps);
    } finally {
      progress.flush();
      sub.dispose();
    }
  }, whileWarming);
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
  if (p.compiling && p.step === p.startStep) return p.totalSteps ? `step ${p.step}/${p.totalSteps} · ${COMPILING_MESSAGE}` : COMPILING_MESSAGE;
  const parts = [`step ${p.step}/${p.totalSteps}`];
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.stepsPerSec !== undefined && Number.isFinite(p.stepsPerSec)) parts.push(`${p.stepsPerSec.toFixed(1)} steps/s`);
  return parts.join(' · ');
}

