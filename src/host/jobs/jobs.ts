// The host's job manager (`ctx.jobs`): runs training jobs in the worker with a cancellable progress notification
// and a status-bar item, keeps the list of running jobs, and tells the rest of the extension what happens through
// events (the Runs view refreshes on them, the statistics panel draws the binary frames of `onStats`).
//
// A job ends in one of three ways:
//   completed  the trainer reached its last step;
//   cancelled  Cancel (notification, status bar, `basin.cancelJob`): the trainer stops after the current step and
//              writes a checkpoint at the step it reached, so `basin.resumeRun` continues from there;
//   failed     a bad config (InvalidParams, `<file>:<line>:<col>: …`), a non-finite loss, a lost device, or the
//              worker process dying (native abort, OOM, SIGKILL): the message says why (exit code or signal and
//              the tail of its stderr); run.json is marked failed by the host when the worker could not; the next
//              job starts a fresh worker.
// Jobs run one at a time on the GPU: a second one waits in the worker until the first ends.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-jsonrpc/node';
import type { Ctx } from '../ctx';
import { requireTrust } from '../trust';
import { WorkerExitedError, describeExit, type WorkerExit } from './worker-process';
import {
  SideRecordKind,
  WorkerErrorCodes,
  type SideRecord,
  type TrainJobParams,
  type TrainJobProgress,
  type TrainJobResult,
} from '../../protocol/worker';
import { openRun } from '../../files/run-record';

export type JobStatus = 'completed' | 'cancelled' | 'failed';

/** A job the manager runs (or ran). The object is live: `runDir`, `name` and `progress` fill in as the job runs. */
export interface JobInfo {
  /** Unique per host session; the same id the worker's progress notifications and side-channel records carry. */
  readonly id: string;
  readonly kind: 'train';
  /** Absolute config path (fresh runs; on resume, the config the worker loaded, when one was given). */
  readonly configPath?: string;
  /** Absolute run folder being resumed, for resume jobs. */
  readonly resume?: string;
  /**
   * Absolute run folder: known once the worker created (or opened) it — the first `onDidProgress`, phase
   * 'started' — and at once for resume jobs.
   */
  runDir?: string;
  /** Run name (the config's `name`; before the worker answers, the config's file name). */
  name: string;
  /** ms since the epoch. */
  readonly startedAt: number;
  /** The latest progress, if any came. */
  progress?: TrainJobProgress;
  /** Cancel was asked for. */
  cancelRequested: boolean;
}

export interface JobProgressEvent {
  job: JobInfo;
  progress: TrainJobProgress;
}

export interface JobEndEvent {
  job: JobInfo;
  status: JobStatus;
  /** The worker's result (completed, and cancelled once the trainer ran: it holds the checkpoint). */
  result?: TrainJobResult;
  /** Why it failed (status 'failed'). */
  error?: JobError;
}

export interface JobError {
  message: string;
  /** WorkerErrorCodes value of the worker's error reply, when the worker answered. */
  code?: number;
  /** The error's class name in the worker (ConfigError, NonFiniteError, DeviceLostError…). */
  name?: string;
  /** How the worker process ended, when it died during the job. */
  exit?: WorkerExit;
}

/** A statistics frame of a running training job (src/protocol/stats.ts's binary format, one frame). */
export interface JobStatsEvent {
  jobId: string;
  runDir: string;
  step: number;
  bytes: Uint8Array;
}

/** What a job-starting call resolves to: the end of the job, or undefined when none was started (untrusted…). */
export type JobOutcome = JobEndEvent;

/** After Cancel, how long to wait for the worker to stop before ending the worker process. */
const CANCEL_KILL_AFTER_MS = 30_000;

export class JobManager implements vscode.Disposable {
  private readonly jobs = new Map<string, { info: JobInfo; cts: vscode.CancellationTokenSource }>();
  private nextId = 1;
  private sideSub: { dispose(): void } | undefined;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];

  private readonly startEmitter = new vscode.EventEmitter<JobInfo>();
  private readonly progressEmitter = new vscode.EventEmitter<JobProgressEvent>();
  private readonly endEmitter = new vscode.EventEmitter<JobEndEvent>();
  private readonly statsEmitter = new vscode.EventEmitter<JobStatsEvent>();
  /** A job was accepted and sent to the worker (its `runDir` may not be known yet: see JobInfo.runDir). */
  readonly onDidStart: vscode.Event<JobInfo> = this.startEmitter.event;
  /** Progress of a job, at most ~10 per second per job; the first has phase 'started' and the run folder. */
  readonly onDidProgress: vscode.Event<JobProgressEvent> = this.progressEmitter.event;
  /** A job ended (completed, cancelled or failed). Fired after it left `active`. */
  readonly onDidEnd: vscode.Event<JobEndEvent> = this.endEmitter.event;
  /** Each statistics frame a running training job produces, as bytes (decode with src/protocol/stats.ts). */
  readonly onStats: vscode.Event<JobStatsEvent> = this.statsEmitter.event;

  /**
   * Whether jobs may run. Jobs never run in an untrusted workspace (a config can point at any file, a job runs
   * native GPU code). Replaceable for tests only.
   */
  isTrusted: () => boolean = () => vscode.workspace.isTrusted;

  constructor(private readonly ctx: Ctx) {
    this.statusItem = vscode.window.createStatusBarItem('basin.jobs', vscode.StatusBarAlignment.Left, 10);
    this.statusItem.name = 'Basin Jobs';
    this.statusItem.command = 'basin.showLog';
    this.disposables.push(this.statusItem, this.startEmitter, this.progressEmitter, this.endEmitter, this.statsEmitter);
  }

  /** The running jobs (queued ones included), oldest first. */
  get active(): readonly JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info);
  }

  /** The running job that holds this run folder, if any. */
  jobOfRun(runDir: string): JobInfo | undefined {
    const want = path.resolve(runDir);
    return this.active.find((j) => j.runDir !== undefined && path.resolve(j.runDir) === want);
  }

  /** True when jobs may start here; otherwise shows why (untrusted workspace) and returns false. */
  checkTrust(what = 'training'): boolean {
    if (this.isTrusted()) return true;
    // requireTrust shows the reason and a way to trust the workspace (it checks the real trust state itself).
    requireTrust(what);
    this.ctx.log.warn(`not starting ${what}: this workspace is not trusted (Basin runs no job in an untrusted workspace).`);
    return false;
  }

  /**
   * Trains from a config (`configPath`) or resumes a run folder (`resume`). Resolves when the job has ended —
   * it never rejects for a job failure (see JobOutcome.status/error) — or at once with undefined when no job may
   * start (untrusted workspace). Shows a cancellable progress notification while it runs.
   */
  async train(params: TrainJobParams, opts: { notify?: boolean } = {}): Promise<JobOutcome | undefined> {
    if (!this.checkTrust(params.resume ? 'resuming a run' : 'training')) return undefined;
    if (params.resume) {
      const holder = this.jobOfRun(params.resume);
      if (holder) {
        void vscode.window.showWarningMessage(`Basin: ${holder.name} is already training in this window.`);
        return undefined;
      }
    }
    this.listenToSideChannel();
    const cts = new vscode.CancellationTokenSource();
    // Unique per host session; distinct from WorkerClient's own ids (`<kind>-<pid>-<n>`).
    const id = `train-job-${this.nextId++}`;
    const fileName = params.configPath ? path.basename(params.configPath).replace(/\.basin\.(ya?ml|json)$/i, '') : undefined;
    const info: JobInfo = {
      id,
      kind: 'train',
      configPath: params.configPath,
      resume: params.resume ? path.resolve(params.resume) : undefined,
      runDir: params.resume ? path.resolve(params.resume) : undefined,
      name: fileName ?? (params.resume ? path.basename(params.resume) : 'run'),
      startedAt: Date.now(),
      cancelRequested: false,
    };
    this.jobs.set(id, { info, cts });
    this.updateStatus();
    void vscode.commands.executeCommand('setContext', 'basin.jobRunning', true);
    this.ctx.log.info(`${info.resume ? `resuming ${info.resume}` : `training ${params.configPath}`} (job ${id})`);
    this.startEmitter.fire(info);

    const run = this.runTrain(info, params, cts.token);
    if (opts.notify !== false) this.showProgress(info, run);
    const outcome = await run;
    cts.dispose();
    return outcome;
  }

  /** Cancels a running job (all of them without an id). Returns how many were asked to stop. */
  cancel(jobId?: string): number {
    let n = 0;
    for (const { info, cts } of this.jobs.values()) {
      if (jobId !== undefined && info.id !== jobId && info.runDir !== jobId) continue;
      if (info.cancelRequested) continue;
      info.cancelRequested = true;
      this.ctx.log.info(`cancelling job ${info.id} (${info.name})`);
      cts.cancel();
      n++;
      // A worker stuck in native code would never answer: end the process after a cap (the last checkpoint stays).
      const timer = setTimeout(() => {
        if (this.jobs.has(info.id)) {
          this.ctx.log.warn(`job ${info.id} did not stop within ${CANCEL_KILL_AFTER_MS / 1000} s of Cancel: ending the worker`);
          void this.ctx.stopWorker();
        }
      }, CANCEL_KILL_AFTER_MS);
      timer.unref?.();
    }
    this.updateStatus();
    return n;
  }

  dispose(): void {
    for (const { cts } of this.jobs.values()) cts.cancel();
    this.sideSub?.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  // -------------------------------------------------------------------------------------------------------------

  private listenToSideChannel(): void {
    if (this.sideSub) return;
    this.sideSub = this.ctx.worker.onSideRecord((r: SideRecord) => {
      if (r.kind !== SideRecordKind.Stats) return;
      this.statsEmitter.fire({ jobId: r.jobId, runDir: r.runDir, step: r.step, bytes: r.bytes });
    });
  }

  private async runTrain(info: JobInfo, params: TrainJobParams, token: vscode.CancellationToken): Promise<JobOutcome> {
    let end: JobEndEvent;
    try {
      const result = await this.ctx.worker.job('train', params, {
        token,
        jobId: info.id,
        onProgress: (p) => {
          const prog = p.data;
          // A 'waiting for the GPU' notification has no run folder yet.
          if (prog.runDir) info.runDir = prog.runDir;
          if (prog.name) info.name = prog.name;
          info.progress = prog;
          this.updateStatus();
          this.progressEmitter.fire({ job: info, progress: prog });
        },
      });
      info.runDir = result.runDir;
      end = { job: info, status: result.status, result };
    } catch (e) {
      end = { job: info, status: 'failed', error: toJobError(e) };
      // Cancelled before the trainer ran (e.g. while waiting for the GPU): nothing failed.
      if (end.error?.code === WorkerErrorCodes.Cancelled) end = { job: info, status: 'cancelled' };
      // Ending the worker after an unanswered Cancel is still a cancel: the last checkpoint stays resumable.
      else if (info.cancelRequested && e instanceof WorkerExitedError && e.exit.expected) end = { job: info, status: 'cancelled', error: end.error };
    }
    this.jobs.delete(info.id);
    if (end.status !== 'completed' && info.runDir) await this.markRunEnded(info.runDir, end);
    this.updateStatus();
    if (this.jobs.size === 0) void vscode.commands.executeCommand('setContext', 'basin.jobRunning', false);
    this.logEnd(end);
    this.endEmitter.fire(end);
    return end;
  }

  /** A run whose worker could not record the end (it died) still says 'running': record it. */
  private async markRunEnded(runDir: string, end: JobEndEvent): Promise<void> {
    try {
      const run = await openRun(runDir);
      if (run.record.status !== 'running') return;
      // Another live process (a CLI run) writes it: not ours to mark. (Our own live worker may be named there:
      // the trainer keeps the creator's pid on resume.)
      if (writerAlive(run.record.process) && run.record.process?.pid !== this.ctx.workerPid) return;
      const status = end.status === 'cancelled' ? 'cancelled' : 'failed';
      await run.finish(status, end.error ? { message: end.error.message } : undefined);
      this.ctx.log.info(`${runDir}: run.json marked ${status} (the worker could not)`);
    } catch (e) {
      this.ctx.log.warn(`could not update ${runDir}/run.json: ${(e as Error).message}`);
    }
  }

  private logEnd(end: JobEndEvent): void {
    const { job } = end;
    const secs = ((Date.now() - job.startedAt) / 1000).toFixed(1);
    if (end.status === 'completed') {
      const r = end.result!;
      this.ctx.log.info(`job ${job.id}: ${job.name} completed in ${secs} s: ${r.steps} steps, ${describeResult(r)}; run folder ${r.runDir}`);
    } else if (end.status === 'cancelled') {
      const ck = end.result?.checkpoint;
      this.ctx.log.info(`job ${job.id}: ${job.name} cancelled after ${secs} s${end.result ? ` at step ${end.result.steps}` : ''}${ck ? `; resumable from ${ck}` : ''}`);
    } else {
      const exit = end.error?.exit;
      this.ctx.log.error(`job ${job.id}: ${job.name} failed after ${secs} s: ${exit ? describeExit(exit, { withStderr: true }) : end.error?.message}`);
    }
  }

  /** The notification: cancellable, with the step and loss; and the message at the end. */
  private showProgress(info: JobInfo, run: Promise<JobOutcome>): void {
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Basin: ${info.resume ? 'resuming' : 'training'} ${info.name}`, cancellable: true },
      async (progress, token) => {
        const sub1 = token.onCancellationRequested(() => this.cancel(info.id));
        let reported = 0;
        const sub2 = this.onDidProgress(({ job, progress: p }) => {
          if (job !== info) return;
          const pct = p.totalSteps > 0 ? (100 * p.step) / p.totalSteps : 0;
          const increment = Math.max(0, pct - reported);
          reported = Math.max(reported, pct);
          progress.report({ message: progressLine(p), increment });
        });
        try {
          await run;
        } finally {
          sub1.dispose();
          sub2.dispose();
        }
      },
    );
    void run.then((end) => this.notifyEnd(end));
  }

  private notifyEnd(end: JobEndEvent): void {
    const { job } = end;
    const showLog = 'Show Log';
    if (end.status === 'completed') {
      void vscode.window.showInformationMessage(`Basin: ${job.name} finished — ${end.result!.steps} steps, ${describeResult(end.result!)}.`, showLog).then((c) => {
        if (c === showLog) this.ctx.log.show(true);
      });
    } else if (end.status === 'cancelled') {
      const resume = 'Resume';
      const ck = end.result?.checkpoint;
      const canResume = !!(job.runDir && (ck || job.resume));
      void vscode.window
        .showInformationMessage(
          `Basin: ${job.name} cancelled${end.result ? ` at step ${end.result.steps}` : ''}.${ck ? ' Its checkpoint can be resumed.' : ''}`,
          ...(canResume ? [resume] : []),
          showLog,
        )
        .then((c) => {
          if (c === resume && job.runDir) void vscode.commands.executeCommand('basin.resumeRun', job.runDir);
          else if (c === showLog) this.ctx.log.show(true);
        });
    } else {
      const err = end.error!;
      let why = err.message;
      if (err.exit) {
        const tail = err.exit.stderrTail.filter((l) => l.trim()).slice(-3).join(' | ');
        why = `${describeExit(err.exit)}${tail ? ` stderr: ${tail.slice(0, 300)}` : ''}${err.exit.expected ? '' : ' The next job starts a fresh worker.'}`;
      } else if (err.code === WorkerErrorCodes.InvalidParams) {
        why = `the config has problems: ${err.message.split('\n').slice(0, 3).join('; ')}`;
      }
      void vscode.window.showErrorMessage(`Basin: ${job.name} failed: ${why}`, showLog).then((c) => {
        if (c === showLog) this.ctx.log.show(true);
      });
    }
  }

  private updateStatus(): void {
    const jobs = this.active;
    if (jobs.length === 0) {
      this.statusItem.hide();
      return;
    }
    const j = jobs[jobs.length - 1];
    const p = j.progress;
    const more = jobs.length > 1 ? ` (+${jobs.length - 1})` : '';
    const icon = j.cancelRequested ? '$(debug-stop)' : '$(loading~spin)';
    this.statusItem.text = `${icon} ${j.name}${p && p.totalSteps ? ` ${progressLine(p)}` : p?.phase === 'queued' ? ' (queued)' : ''}${more}`;
    const tip = new vscode.MarkdownString(undefined, true);
    for (const job of jobs) {
      const q = job.progress;
      tip.appendMarkdown(`**${job.name}**${job.cancelRequested ? ' (stopping)' : ''}  \n`);
      if (q?.totalSteps) tip.appendMarkdown(`${progressLine(q)}${q.val ? ` · val ${Object.entries(q.val).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}` : ''}  \n`);
      if (job.runDir) tip.appendMarkdown(`\`${job.runDir}\`  \n`);
    }
    // Click: the live statistics of the newest job once it has a run folder, else the log.
    this.statusItem.command = j.runDir
      ? { command: 'basin.openStatistics', title: 'Open Statistics', arguments: [{ runDir: j.runDir }] }
      : 'basin.showLog';
    tip.appendMarkdown(`\nClick to ${j.runDir ? 'open the live statistics' : 'show the Basin log'}; \`Basin: Cancel Job\` stops a job.`);
    this.statusItem.tooltip = tip;
    this.statusItem.show();
  }
}

/** Whether the process recorded as a run's writer is alive on this machine. */
export function writerAlive(proc: { pid: number; host: string } | undefined): boolean {
  if (!proc || proc.host !== os.hostname() || proc.pid === process.pid) return false;
  try {
    process.kill(proc.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(4);
}

/** "step 120/500 · loss 0.4120 · 35.2 steps/s" */
export function progressLine(p: TrainJobProgress): string {
  if (p.phase === 'queued') return 'waiting for another job to finish';
  const parts = [`step ${p.step}/${p.totalSteps}`];
  if (p.loss !== undefined && Number.isFinite(p.loss)) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.stepsPerSec !== undefined && Number.isFinite(p.stepsPerSec)) parts.push(`${p.stepsPerSec.toFixed(1)} steps/s`);
  return parts.join(' · ');
}

function describeResult(r: TrainJobResult): string {
  const parts: string[] = [];
  if (r.lastLoss !== null) parts.push(`loss ${r.lastLoss.toFixed(4)}`);
  if (r.eval) {
    if (typeof r.eval.accuracy === 'number') parts.push(`val accuracy ${(100 * r.eval.accuracy).toFixed(1)}%`);
    if (typeof r.eval.loss === 'number') parts.push(`val loss ${r.eval.loss.toFixed(4)}`);
  }
  return parts.join(', ') || 'no metrics';
}

function toJobError(e: unknown): JobError {
  if (e instanceof WorkerExitedError) return { message: e.message, exit: e.exit };
  if (e instanceof ResponseError) {
    const data = e.data as { name?: string } | undefined;
    return { message: e.message, code: e.code, name: data?.name };
  }
  // A ResponseError from another copy of vscode-jsonrpc, or anything with a numeric code.
  const x = e as { message?: string; code?: unknown; data?: { name?: string } };
  return { message: x?.message ?? String(e), code: typeof x?.code === 'number' ? x.code : undefined, name: x?.data?.name };
}
