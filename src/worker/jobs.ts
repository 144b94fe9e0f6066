// Job handlers, one per kind of src/protocol/worker.ts's JobKinds. A handler gets its params and a context
// (cancellation, progress, log) and returns the kind's result; throwing fails the job.
import * as path from 'node:path';
import type { CancellationToken } from 'vscode-jsonrpc';
import {
  SideRecordKind,
  type JobKind,
  type JobParams,
  type JobProgressData,
  type JobResult,
  type LogLevel,
  type TrainJobProgress,
  type TrainJobResult,
} from '../protocol/worker';
import type { GpuDevice } from '../engine/gpu/device';
import { Runtime } from '../engine/gpu/runtime';
import { loadConfig } from '../files/config/load';
import type { TrainConfig } from '../files/config/schema';
import { openRun } from '../files/run-record';
import { train, type TrainEvents } from '../engine/train/trainer';

export class JobCancelledError extends Error {
  constructor(jobId: string) {
    super(`Job ${jobId} was cancelled.`);
    this.name = 'JobCancelledError';
  }
}

/** Parameters that cannot work (mapped to WorkerErrorCodes.InvalidParams). */
export class InvalidJobParamsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidJobParamsError';
  }
}

export interface JobContext<K extends JobKind> {
  readonly jobId: string;
  readonly token: CancellationToken;
  /** Throws JobCancelledError once cancellation was requested: call it between units of work. */
  throwIfCancelled(): void;
  progress(data: JobProgressData<K>, opts?: { fraction?: number; message?: string }): void;
  log(level: LogLevel, message: string): void;
  /** The process's GPU device (made once, shared by every job; a lost device is replaced). */
  gpu(): Promise<GpuDevice>;
  /** Sends bytes on the binary side channel; false when there is none or the record was dropped. */
  sendBinary(kind: SideRecordKind, runDir: string, step: number, bytes: Uint8Array): boolean;
}

export type JobHandler<K extends JobKind> = (params: JobParams<K>, ctx: JobContext<K>) => Promise<JobResult<K>>;
export type JobHandlers = { [K in JobKind]: JobHandler<K> };

function sleep(ms: number, token: CancellationToken): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const sub = token.onCancellationRequested(done);
    function done(): void {
      clearTimeout(timer);
      sub.dispose();
      resolve();
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// GPU jobs: one at a time per process (the engine's tensor scopes are per process), on one Runtime per device so
// that compiled pipelines are reused from job to job.

let gpuQueue: Promise<void> = Promise.resolve();

/** Runs `fn` when no other GPU job runs; a job cancelled while it waits fails with JobCancelledError. */
async function exclusiveGpu<T>(ctx: JobContext<JobKind>, onWait: () => void, fn: () => Promise<T>): Promise<T> {
  const prev = gpuQueue;
  let release!: () => void;
  gpuQueue = new Promise<void>((r) => (release = r));
  try {
    let waiting = true;
    const timer = setTimeout(() => waiting && onWait(), 50);
    await new Promise<void>((resolve, reject) => {
      const sub = ctx.token.onCancellationRequested(() => {
        sub.dispose();
        reject(new JobCancelledError(ctx.jobId));
      });
      void prev.then(() => {
        sub.dispose();
        resolve();
      });
    }).finally(() => {
      waiting = false;
      clearTimeout(timer);
    });
    // The previous job is done; a cancellation that came meanwhile still counts.
    ctx.throwIfCancelled();
    return await fn();
  } finally {
    // Release only after our predecessor has: a cancelled waiter must not let the next job start early.
    void prev.then(release);
  }
}

const runtimes = new WeakMap<GpuDevice, Runtime>();

function runtimeFor(gpu: GpuDevice): Runtime {
  let rt = runtimes.get(gpu);
  if (!rt) {
    rt = new Runtime(gpu);
    runtimes.set(gpu, rt);
  }
  return rt;
}

/** Progress notifications of a train job: at most one per `intervalMs`, the latest state always delivered. */
class ThrottledProgress {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: TrainJobProgress | undefined;

  constructor(
    private readonly send: (p: TrainJobProgress) => void,
    private readonly intervalMs: number,
  ) {}

  /** `urgent`: send now whatever the interval (the first notification). */
  post(p: TrainJobProgress, urgent = false): void {
    this.pending = p;
    const wait = this.last + this.intervalMs - performance.now();
    if (urgent || wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (!p) return;
    this.last = performance.now();
    this.send(p);
  }
}

/** Progress notifications per second of a train job, at most. */
const TRAIN_PROGRESS_PER_SEC = 10;

async function trainConfigFor(params: JobParams<'train'>): Promise<{ config: TrainConfig; configPath: string | undefined }> {
  if (params.configPath !== undefined && (typeof params.configPath !== 'string' || !path.isAbsolute(params.configPath))) {
    throw new InvalidJobParamsError(`configPath must be an absolute path, got ${JSON.stringify(params.configPath)}`);
  }
  if (params.resume !== undefined && (typeof params.resume !== 'string' || !path.isAbsolute(params.resume))) {
    throw new InvalidJobParamsError(`resume must be an absolute path of a run folder, got ${JSON.stringify(params.resume)}`);
  }
  if (params.configPath) {
    // ConfigError: `<file>:<line>:<col>: <field>: <message>`, one line per problem (→ InvalidParams).
    const { config, path: file } = loadConfig(params.configPath);
    return { config, configPath: file };
  }
  if (!params.resume) throw new InvalidJobParamsError('a train job needs configPath or resume');
  const run = await openRun(params.resume);
  const rec = run.record;
  if (!rec.config || typeof rec.config !== 'object') throw new InvalidJobParamsError(`${run.runJsonPath}: the run records no config to resume with`);
  return { config: rec.config as TrainConfig, configPath: rec.configPath ?? undefined };
}

async function trainJob(params: JobParams<'train'>, ctx: JobContext<'train'>): Promise<JobResult<'train'>> {
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

  return exclusiveGpu(ctx, () => ctx.progress({ ...emptyProgress(config), phase: 'queued' }, { message: 'waiting for another job to finish' }), async () => {
    const gpu = await ctx.gpu();
    const rt = runtimeFor(gpu);
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    const progress = new ThrottledProgress((p) => {
      const fraction = p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : undefined;
      ctx.progress(p, { fraction, message: progressMessage(p) });
    }, 1000 / TRAIN_PROGRESS_PER_SEC);
    let state: TrainJobProgress = emptyProgress(config);
    const update = (patch: Partial<TrainJobProgress>, urgent = false): void => {
      state = { ...state, ...patch };
      progress.post(state, urgent);
    };

    // `onStats` is declared by the trainer once it writes statistics; until then it is simply never called.
    const events: TrainEvents & { onStats?(step: number, frame: Uint8Array): void } = {
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
      const result: TrainJobResult = {
        runDir: r.runDir,
        status: r.status,
        steps: r.steps,
        totalSteps: state.totalSteps,
        lastLoss: Number.isFinite(r.lastLoss) ? r.lastLoss : null,
        eval: r.eval ? { ...r.eval } : null,
        chance: r.chance ? { ...r.chance } : null,
        checkpoint: r.checkpoint ? path.resolve(r.runDir, r.checkpoint) : null,
      };
      return result;
    } catch (e) {
      progress.flush();
      // The runtime may hold recorded work that refers to the failed job's freed buffers: start afresh.
      runtimes.delete(gpu);
      throw e;
    } finally {
      sub.dispose();
    }
  });
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

export const jobHandlers: JobHandlers = {
  train: trainJob,

  async selfTest(params, ctx) {
    const steps = Math.max(0, Math.floor(params.steps));
    for (let step = 1; step <= steps; step++) {
      await sleep(params.intervalMs, ctx.token);
      ctx.throwIfCancelled();
      if (params.failAtStep === step) throw new Error(`selfTest failed at step ${step} as asked`);
      ctx.progress({ step }, { fraction: step / steps, message: `step ${step}/${steps}` });
    }
    return { steps };
  },
};
