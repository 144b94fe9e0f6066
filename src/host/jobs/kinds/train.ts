// The train kind's host part: names a job after its config (or the run it resumes), refuses to resume a run that
// a job of this window trains, words progress as "step 120/500 · loss 0.4120 · 35.2 steps/s", offers Resume
// after a cancel, marks run.json when the worker died before it could, and turns the side channel's statistics
// records into `onStats` events (the statistics panel draws them live).
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { SideRecordKind, type JobParams, type TrainJobProgress, type TrainJobResult } from '../../../protocol/worker';
import { openRun, writerState } from '../../../files/run-record';
import type { JobEndAction, JobEndEvent, JobInfo, JobKindHost } from '../job-types';
import type { JobManager } from '../jobs';
import { CONFIG_FILE_RE } from '../../../files/config/config-files';

/** A statistics frame of a running training job (src/protocol/stats.ts's binary format, one frame). */
export interface JobStatsEvent {
  jobId: string;
  runDir: string;
  step: number;
  bytes: Uint8Array;
}

/** What the train kind needs of the extension besides the manager. */
export interface TrainKindEnv {
  readonly log: Pick<vscode.LogOutputChannel, 'info' | 'warn'>;
  /** Pid of the live worker: a run.json naming it as writer is ours to mark. */
  readonly workerPid: number | undefined;
  /**
   * Whether the worker is compiling kernels ahead (jobs/warm-up.ts): its thread is busy with the compiler, so a job
   * sent meanwhile hears nothing until that ends, and the status bar says why from the start.
   */
  readonly warmingNow?: boolean;
}

const CONFIG_SUFFIX = CONFIG_FILE_RE;

export class TrainJobHost implements JobKindHost<'train'>, vscode.Disposable {
  readonly kind = 'train';
  private readonly statsEmitter = new vscode.EventEmitter<JobStatsEvent>();
  /** Job id → the checkpoint step to offer after a resume failed on an unreadable checkpoint (see settle). */
  private readonly earlierCheckpoint = new Map<string, number>();
  /** Each statistics frame a running training job produces, as bytes (decode with src/protocol/stats.ts). */
  readonly onStats: vscode.Event<JobStatsEvent> = this.statsEmitter.event;

  constructor(
    private readonly jobs: Pick<JobManager, 'jobOfRun'>,
    private readonly env: TrainKindEnv,
  ) {}

  activity(params: JobParams<'train'>): string {
    return params.resume ? 'resuming a run' : 'training';
  }

  refuse(params: JobParams<'train'>): string | undefined {
    if (!params.resume) return undefined;
    const holder = this.jobs.jobOfRun(params.resume, 'train');
    return holder ? `${holder.name} is already training in this window.` : undefined;
  }

  describe(params: JobParams<'train'>): { name: string; runDir?: string } {
    const fromConfig = params.configPath ? path.basename(params.configPath).replace(CONFIG_SUFFIX, '') : undefined;
    const runDir = params.resume ? path.resolve(params.resume) : undefined;
    return { name: fromConfig ?? (runDir ? path.basename(runDir) : 'run'), runDir };
  }

  title(job: JobInfo<'train'>): string {
    return `${job.params.resume ? 'resuming' : 'training'} ${job.name}`;
  }

  progressLine(job: JobInfo<'train'>): string {
    if (!job.progress) return this.env.warmingNow ? COMPILING_LINE : '';
    return trainProgressLine(job.progress);
  }

  tooltipLine(job: JobInfo<'train'>): string {
    const p = job.progress;
    if (!p?.totalSteps) return '';
    return `${trainProgressLine(p)}${p.val ? ` · val ${Object.entries(p.val).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}` : ''}`;
  }

  learn(job: JobInfo<'train'>, p: TrainJobProgress): void {
    // A 'waiting for the GPU' notification has no run folder yet.
    if (p.runDir) job.runDir = p.runDir;
    if (p.name) job.name = p.name;
  }

  endStatus(result: TrainJobResult): 'completed' | 'cancelled' {
    return result.status;
  }

  summary(r: TrainJobResult): string {
    return `${r.steps} steps, ${describeTrainResult(r)}; run folder ${r.runDir}`;
  }

  endMessage(end: JobEndEvent<'train'>): string | undefined {
    const { job, result } = end;
    if (end.status === 'completed' && result) return `Basin: ${job.name} finished — ${result.steps} steps, ${describeTrainResult(result)}.`;
    if (end.status === 'cancelled') {
      return `Basin: ${job.name} cancelled${result ? ` at step ${result.steps}` : ''}.${result?.checkpoint ? ' Its checkpoint can be resumed.' : ''}`;
    }
    return undefined;
  }

  endActions(end: JobEndEvent<'train'>): JobEndAction[] {
    const { job } = end;
    const canResume = end.status === 'cancelled' && !!job.runDir && !!(end.result?.checkpoint || job.params.resume);
    if (canResume) return [{ title: 'Resume', run: () => void vscode.commands.executeCommand('basin.resumeRun', job.runDir) }];
    // The latest checkpoint could not be read: offer the one before it (the engine names the problem; run.json
    // lists the steps). fromCheckpoint restarts from that step.
    const earlier = end.status === 'failed' && job.params.resume ? this.earlierCheckpoint.get(job.id) : undefined;
    if (earlier !== undefined) {
      return [{ title: `Resume from step ${earlier} instead`, run: () => void vscode.commands.executeCommand('basin.resumeRun', { runDir: job.params.resume, fromCheckpoint: earlier }) }];
    }
    return [];
  }

  async settle(end: JobEndEvent<'train'>): Promise<void> {
    if (end.status !== 'completed' && end.job.runDir) await this.markRunEnded(end.job.runDir, end);
    if (end.status === 'failed' && end.job.params.resume && end.error && isUnreadableCheckpoint(end.error.message)) {
      const step = await earlierCheckpointStep(end.job.params.resume, end.job.params.fromCheckpoint, end.error.message);
      if (step !== undefined) this.earlierCheckpoint.set(end.job.id, step);
    }
  }

  onRecord(_job: JobInfo<'train'>, r: { kind: number; jobId: string; runDir: string; step: number; bytes: Uint8Array }): void {
    if (r.kind !== SideRecordKind.Stats) return;
    this.statsEmitter.fire({ jobId: r.jobId, runDir: r.runDir, step: r.step, bytes: r.bytes });
  }

  statusCommand(job: JobInfo<'train'>): vscode.Command | undefined {
    // The live statistics of the newest job once it has a run folder.
    return job.runDir ? { command: 'basin.openStatistics', title: 'Open the live statistics', arguments: [{ runDir: job.runDir }] } : undefined;
  }

  dispose(): void {
    this.statsEmitter.dispose();
  }

  /** A run whose worker could not record the end (it died) still says 'running': record it. */
  private async markRunEnded(runDir: string, end: JobEndEvent<'train'>): Promise<void> {
    try {
      const run = await openRun(runDir);
      if (run.record.status !== 'running') return;
      // Another live process (a CLI run) writes it: not ours to mark. (Our own live worker may be named there:
      // the trainer keeps the creator's pid on resume.)
      if (writerAlive(run.record.process) && run.record.process?.pid !== this.env.workerPid) return;
      const status = end.status === 'cancelled' ? 'cancelled' : 'failed';
      await run.finish(status, end.error ? { message: end.error.message } : undefined);
      this.env.log.info(`${runDir}: run.json marked ${status} (the worker could not)`);
    } catch (e) {
      this.env.log.warn(`could not update ${runDir}/run.json: ${(e as Error).message}`);
    }
  }
}

/** Whether a failure says the checkpoint to resume from could not be read (the engine's wording). */
export function isUnreadableCheckpoint(message: string): boolean {
  return /unreadable checkpoint/i.test(message);
}

/**
 * The step to offer after a resume failed on an unreadable checkpoint: the newest checkpoint recorded in run.json
 * below the one that failed (the step asked for, else the step the message names, else the latest recorded).
 */
export async function earlierCheckpointStep(runDir: string, failedFrom: number | undefined, message: string): Promise<number | undefined> {
  try {
    const run = await openRun(runDir);
    const steps = [...new Set(run.record.checkpoints.map((c) => c.step))].sort((a, b) => b - a);
    const named = /step[- ](\d+)/i.exec(message);
    const failed = failedFrom ?? (named ? Number(named[1]) : steps[0]);
    return steps.find((s) => s < failed);
  } catch {
    return undefined;
  }
}

/** Whether the process recorded as a run's writer is alive on this machine (not this process; unknown: no). */
export function writerAlive(proc: { pid: number; host: string } | undefined): boolean {
  return !!proc && proc.pid !== process.pid && writerState(proc) === 'alive';
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(4);
}

export const COMPILING_LINE = 'compiling GPU kernels, first run only…';

/** "step 120/500 · loss 0.4120 · 35.2 steps/s"; '' before the trainer said how many steps there are. */
export function trainProgressLine(p: TrainJobProgress): string {
  if (p.phase === 'queued') return 'waiting for another job to finish';
  // A cold worker's first step compiles every kernel (~20 s on a software adapter): say why nothing moves.
  if (p.phase === 'compiling' || (p.compiling && p.step === p.startStep)) return p.totalSteps ? `step ${p.step}/${p.totalSteps} · ${COMPILING_LINE}` : COMPILING_LINE;
  if (!p.totalSteps) return '';
  const parts = [`step ${p.step}/${p.totalSteps}`];
  if (p.loss !== undefined && Number.isFinite(p.loss)) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.stepsPerSec !== undefined && Number.isFinite(p.stepsPerSec)) parts.push(`${p.stepsPerSec.toFixed(1)} steps/s`);
  return parts.join(' · ');
}

function describeTrainResult(r: TrainJobResult): string {
  const parts: string[] = [];
  if (r.lastLoss !== null) parts.push(`loss ${r.lastLoss.toFixed(4)}`);
  if (r.eval) {
    if (typeof r.eval.accuracy === 'number') parts.push(`val accuracy ${(100 * r.eval.accuracy).toFixed(1)}%`);
    if (typeof r.eval.loss === 'number') parts.push(`val loss ${r.eval.loss.toFixed(4)}`);
  }
  return parts.join(', ') || 'no metrics';
}
