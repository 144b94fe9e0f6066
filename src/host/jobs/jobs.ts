// The host's job manager (`ctx.jobs`): runs jobs of any kind in the worker with a cancellable progress
// notification and a status-bar item, keeps the list of running jobs, and tells the rest of the extension what
// happens through events (the Runs view refreshes on them). What a kind adds — its status text, its result
// message, run-folder bookkeeping, side-channel records — comes from its JobKindHost (kinds/*.ts).
//
// A job ends in one of three ways:
//   completed  the worker answered with the result;
//   cancelled  Cancel (notification, status bar, `basin.cancelJob`); a kind may also answer normally and call
//              that cancelled (train stops after the current step and keeps a checkpoint there);
//   failed     bad params (InvalidParams, e.g. `<file>:<line>:<col>: …` for a config), a lost device, or the
//              worker process dying (native abort, OOM, SIGKILL): the message says why (exit code or signal and
//              the tail of its stderr); the next job starts a fresh worker.
// Jobs run one at a time on the GPU: a second one waits in the worker (queued) until the first ends.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-jsonrpc/node';
import { requireTrust } from '../trust';
import type { WorkerClient } from './worker-client';
import { WorkerExitedError, describeExit } from './worker-process';
import { WorkerErrorCodes, type JobKind, type JobParams, type JobProgress, type SideRecord } from '../../protocol/worker';
import type {
  AnyJobInfo,
  JobEndEvent,
  JobError,
  JobInfo,
  JobKindHost,
  JobKindHosts,
  JobOutcome,
  JobProgressEvent,
} from './job-types';

export type * from './job-types';

/** What the manager needs of the extension (the Ctx provides it): the worker, the log, a way to end the worker. */
export interface JobManagerHost {
  readonly worker: Pick<WorkerClient, 'runJob' | 'onSideRecord'>;
  readonly log: Pick<vscode.LogOutputChannel, 'info' | 'warn' | 'error' | 'show'>;
  /** Ends the worker process (a job that ignores Cancel). */
  stopWorker(): Promise<void>;
}

export interface RunOptions {
  /** false: no progress notification and no end message (tests, scripted use). */
  notify?: boolean;
}

/** After Cancel, how long to wait for the worker to stop before ending the worker process. */
const CANCEL_KILL_AFTER_MS = 30_000;
const QUEUED_LINE = 'waiting for another job to finish';
/** Said at once on Cancel: the job itself ends at its next step boundary, after writing its checkpoint. */
const STOPPING_LINE = 'stopping…';

export class JobManager implements vscode.Disposable {
  private readonly jobs = new Map<string, { info: AnyJobInfo; cts: vscode.CancellationTokenSource }>();
  private readonly kinds: JobKindHosts = {};
  private nextId = 1;
  private sideSub: { dispose(): void } | undefined;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];

  private readonly startEmitter = new vscode.EventEmitter<AnyJobInfo>();
  private readonly progressEmitter = new vscode.EventEmitter<JobProgressEvent>();
  private readonly endEmitter = new vscode.EventEmitter<JobEndEvent>();
  /** A job was accepted and sent to the worker (its `runDir` may not be known yet: see JobInfo.runDir). */
  readonly onDidStart: vscode.Event<AnyJobInfo> = this.startEmitter.event;
  /** Progress of a job (at most ~10 per second per job for train and eval); narrow with `e.kind`. */
  readonly onDidProgress: vscode.Event<JobProgressEvent> = this.progressEmitter.event;
  /** A job ended (completed, cancelled or failed). Fired after it left `active`. */
  readonly onDidEnd: vscode.Event<JobEndEvent> = this.endEmitter.event;

  /**
   * Whether jobs may run. Jobs never run in an untrusted workspace (a config can point at any file, a job runs
   * native GPU code). Replaceable for tests only.
   */
  isTrusted: () => boolean = () => vscode.workspace.isTrusted;

  constructor(private readonly host: JobManagerHost) {
    this.statusItem = vscode.window.createStatusBarItem('basin.jobs', vscode.StatusBarAlignment.Left, 10);
    this.statusItem.name = 'Basin Jobs';
    this.statusItem.command = 'basin.showLog';
    this.disposables.push(this.statusItem, this.startEmitter, this.progressEmitter, this.endEmitter);
  }

  /** Adds a kind's host part (kinds/index.ts registers every one). */
  registerKind<K extends JobKind>(part: JobKindHost<K>): void {
    (this.kinds as Record<string, JobKindHost<K>>)[part.kind] = part;
  }

  /** The running jobs (queued ones included), oldest first. */
  get active(): readonly AnyJobInfo[] {
    return [...this.jobs.values()].map((j) => j.info);
  }

  /** The running job that holds this run folder (of this kind, when given), if any. */
  jobOfRun(runDir: string, kind?: JobKind): AnyJobInfo | undefined {
    const want = path.resolve(runDir);
    return this.active.find((j) => (kind === undefined || j.kind === kind) && j.runDir !== undefined && path.resolve(j.runDir) === want);
  }

  /** True when jobs may start here; otherwise shows why (untrusted workspace) and returns false. */
  checkTrust(what = 'training'): boolean {
    if (this.isTrusted()) return true;
    // requireTrust shows the reason and a way to trust the workspace (it checks the real trust state itself).
    requireTrust(what);
    this.host.log.warn(`not starting ${what}: this workspace is not trusted (Basin runs no job in an untrusted workspace).`);
    return false;
  }

  /**
   * Runs a job of any kind. Resolves when the job has ended — it never rejects for a job failure (see
   * JobOutcome.status/error) — or at once with undefined when no job may start (untrusted workspace, or the
   * kind refused). Shows a cancellable progress notification while it runs, unless `notify` is false.
   */
  async run<K extends JobKind>(kind: K, params: JobParams<K>, opts: RunOptions = {}): Promise<JobOutcome<K> | undefined> {
    const part = this.kindHost(kind);
    if (!this.checkTrust(part.activity?.(params) ?? `running a ${kind} job`)) return undefined;
    const refusal = part.refuse?.(params);
    if (refusal) {
      void vscode.window.showWarningMessage(`Basin: ${refusal}`);
      return undefined;
    }
    this.listenToSideChannel();
    const cts = new vscode.CancellationTokenSource();
    // Unique per host session; distinct from WorkerClient's own ids (`<kind>-<pid>-<n>`).
    const id = `${kind}-job-${this.nextId++}`;
    const described = part.describe?.(params) ?? { name: kind };
    const info: JobInfo<K> = {
      id,
      kind,
      params,
      runDir: described.runDir,
      name: described.name,
      startedAt: Date.now(),
      queued: false,
      cancelRequested: false,
    };
    this.jobs.set(id, { info: info as AnyJobInfo, cts });
    this.updateStatus();
    void vscode.commands.executeCommand('setContext', 'basin.jobRunning', true);
    this.host.log.info(`${this.title(info)} (job ${id})`);
    this.startEmitter.fire(info as AnyJobInfo);

    const run = this.runInWorker(info, cts.token);
    if (opts.notify !== false) this.showProgress(info, run);
    const outcome = await run;
    cts.dispose();
    return outcome;
  }

  /** Cancels a running job by id or run folder (all of them without one). Returns how many were asked to stop. */
  cancel(jobIdOrRunDir?: string): number {
    let n = 0;
    for (const { info, cts } of this.jobs.values()) {
      if (jobIdOrRunDir !== undefined && info.id !== jobIdOrRunDir && info.runDir !== jobIdOrRunDir) continue;
      if (info.cancelRequested) continue;
      info.cancelRequested = true;
      this.host.log.info(`cancelling job ${info.id} (${info.name})`);
      cts.cancel();
      n++;
      // A worker stuck in native code would never answer: end the process after a cap (the last checkpoint stays).
      const timer = setTimeout(() => {
        if (this.jobs.has(info.id)) {
          this.host.log.warn(`job ${info.id} did not stop within ${CANCEL_KILL_AFTER_MS / 1000} s of Cancel: ending the worker`);
          void this.host.stopWorker();
        }
      }, CANCEL_KILL_AFTER_MS);
      timer.unref?.();
    }
    this.updateStatus();
    return n;
  }

  /** The line that describes a job's latest progress (status bar, notification, Cancel Job's picker). */
  progressLine(job: AnyJobInfo): string {
    if (job.cancelRequested) return STOPPING_LINE;
    if (job.queued) return QUEUED_LINE;
    const part = this.kindHost(job.kind) as JobKindHost<JobKind>;
    return part.progressLine ? part.progressLine(job) : (job.message ?? '');
  }

  dispose(): void {
    for (const { cts } of this.jobs.values()) cts.cancel();
    this.sideSub?.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  // -------------------------------------------------------------------------------------------------------------

  private kindHost<K extends JobKind>(kind: K): JobKindHost<K> {
    return (this.kinds[kind] as JobKindHost<K> | undefined) ?? { kind };
  }

  private title(job: JobInfo): string {
    const part = this.kindHost(job.kind) as JobKindHost<JobKind>;
    return part.title?.(job) ?? `${job.kind} ${job.name}`;
  }

  private summary(job: JobInfo, result: unknown): string {
    const part = this.kindHost(job.kind) as JobKindHost<JobKind>;
    return part.summary?.(result as never, job) ?? JSON.stringify(result)?.slice(0, 300) ?? 'no result';
  }

  /** Side-channel records go to the kind of the job that sent them. */
  private listenToSideChannel(): void {
    if (this.sideSub) return;
    this.sideSub = this.host.worker.onSideRecord((r: SideRecord) => {
      const job = this.jobs.get(r.jobId)?.info;
      if (!job) return;
      (this.kindHost(job.kind) as JobKindHost<JobKind>).onRecord?.(job, r);
    });
  }

  private async runInWorker<K extends JobKind>(info: JobInfo<K>, token: vscode.CancellationToken): Promise<JobEndEvent<K>> {
    const part = this.kindHost(info.kind);
    let end: JobEndEvent<JobKind>;
    const kind = info.kind as JobKind;
    const job = info as JobInfo;
    try {
      const result = await this.host.worker.runJob(info.kind, info.params, {
        token,
        jobId: info.id,
        onProgress: (p: JobProgress<K>) => {
          info.progress = p.data;
          info.message = p.message;
          info.fraction = p.fraction;
          info.queued = p.queued === true;
          part.learn?.(info, p.data);
          this.updateStatus();
          this.progressEmitter.fire({ kind: info.kind, job: info, progress: p.data } as JobProgressEvent);
        },
      });
      end = { kind, job, status: part.endStatus?.(result.result) ?? 'completed', result: result.result } as JobEndEvent;
    } catch (e) {
      const error = toJobError(e);
      end = { kind, job, status: 'failed', error } as JobEndEvent;
      // Cancelled through the worker (before a train job's trainer ran, or any other kind): nothing failed.
      if (error.code === WorkerErrorCodes.Cancelled) end = { kind, job, status: 'cancelled' } as JobEndEvent;
      // Ending the worker after an unanswered Cancel is still a cancel.
      else if (info.cancelRequested && e instanceof WorkerExitedError && e.exit.expected) end = { kind, job, status: 'cancelled', error } as JobEndEvent;
    }
    info.queued = false;
    this.jobs.delete(info.id);
    try {
      await (part as JobKindHost<JobKind>).settle?.(end);
    } catch (e) {
      this.host.log.warn(`job ${info.id}: ${(e as Error).message}`);
    }
    this.updateStatus();
    if (this.jobs.size === 0) void vscode.commands.executeCommand('setContext', 'basin.jobRunning', false);
    this.logEnd(end);
    this.endEmitter.fire(end);
    return end as JobEndEvent<K>;
  }

  private logEnd(end: JobEndEvent): void {
    const { job } = end;
    const secs = ((Date.now() - job.startedAt) / 1000).toFixed(1);
    const what = `job ${job.id}: ${this.title(job)}`;
    if (end.status === 'completed') {
      this.host.log.info(`${what} completed in ${secs} s: ${this.summary(job, end.result)}`);
    } else if (end.status === 'cancelled') {
      this.host.log.info(`${what} cancelled after ${secs} s${end.result ? `: ${this.summary(job, end.result)}` : ''}`);
    } else {
      const exit = end.error?.exit;
      this.host.log.error(`${what} failed after ${secs} s: ${exit ? describeExit(exit, { withStderr: true }) : end.error?.message}`);
    }
  }

  /** The notification: cancellable, with the kind's progress line; and the message at the end. */
  private showProgress<K extends JobKind>(info: JobInfo<K>, run: Promise<JobEndEvent<K>>): void {
    const job = info as JobInfo as AnyJobInfo;
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Basin: ${this.title(job)}`, cancellable: true },
      async (progress, token) => {
        const sub1 = token.onCancellationRequested(() => this.cancel(info.id));
        let reported = 0;
        const sub2 = this.onDidProgress((e) => {
          if (e.job !== job) return;
          const pct = job.fraction !== undefined && !job.queued ? 100 * Math.min(1, Math.max(0, job.fraction)) : reported;
          const increment = Math.max(0, pct - reported);
          reported = Math.max(reported, pct);
          progress.report({ message: this.progressLine(job), increment });
        });
        try {
          await run;
        } finally {
          sub1.dispose();
          sub2.dispose();
        }
      },
    );
    void run.then((end) => this.notifyEnd(end as JobEndEvent));
  }

  private notifyEnd(end: JobEndEvent): void {
    const { job } = end;
    const part = this.kindHost(job.kind) as JobKindHost<JobKind>;
    const showLog = 'Show Log';
    const actions = part.endActions?.(end) ?? [];
    let text = part.endMessage?.(end);
    if (text === undefined) {
      if (end.status === 'completed') text = `Basin: ${job.name} finished — ${this.summary(job, end.result)}.`;
      else if (end.status === 'cancelled') text = `Basin: ${job.name} cancelled.`;
      else text = `Basin: ${job.name} failed: ${failureReason(end.error!)}`;
    }
    const show = end.status === 'failed' ? vscode.window.showErrorMessage : vscode.window.showInformationMessage;
    void show(text, ...actions.map((a) => a.title), showLog).then((choice) => {
      if (choice === showLog) this.host.log.show(true);
      else actions.find((a) => a.title === choice)?.run();
    });
  }

  /** The status bar item's text (tests read it: the item itself is not readable through the API). */
  get statusText(): string | undefined {
    return this.active.length ? this.statusItem.text : undefined;
  }

  private updateStatus(): void {
    const jobs = this.active;
    if (jobs.length === 0) {
      this.statusItem.hide();
      return;
    }
    // The item speaks for the job that runs (the newest running one), not for one that merely waits: waiting
    // jobs are counted ("+1 queued"); only when every job waits does a queued one take the item.
    const running = jobs.filter((x) => !x.queued);
    const queued = jobs.length - running.length;
    const j = running.length ? running[running.length - 1] : jobs[0];
    const extra: string[] = [];
    if (running.length > 1) extra.push(`+${running.length - 1} running`);
    if (queued > 0 && running.length) extra.push(`+${queued} queued`);
    if (!running.length && jobs.length > 1) extra.push(`+${jobs.length - 1} queued`);
    const icon = j.cancelRequested ? '$(debug-stop)' : '$(loading~spin)';
    const line = j.cancelRequested ? STOPPING_LINE : j.queued ? '(queued)' : this.progressLine(j);
    this.statusItem.text = `${icon} ${j.name}${line ? ` ${line}` : ''}${extra.length ? ` · ${extra.join(' · ')}` : ''}`;
    const tip = new vscode.MarkdownString(undefined, true);
    for (const job of jobs) {
      const part = this.kindHost(job.kind) as JobKindHost<JobKind>;
      tip.appendMarkdown(`**${job.name}** (${job.kind})${job.cancelRequested ? ' (stopping)' : job.queued ? ' (queued)' : ''}  \n`);
      const detail = job.queued ? QUEUED_LINE : (part.tooltipLine?.(job) ?? this.progressLine(job));
      if (detail) tip.appendMarkdown(`${detail}  \n`);
      if (job.runDir) tip.appendMarkdown(`\`${job.runDir}\`  \n`);
    }
    const command = (this.kindHost(j.kind) as JobKindHost<JobKind>).statusCommand?.(j);
    this.statusItem.command = command ?? 'basin.showLog';
    tip.appendMarkdown(`\nClick to ${command ? command.title.toLowerCase() : 'show the Basin log'}; \`Basin: Cancel Job\` stops a job.`);
    this.statusItem.tooltip = tip;
    this.statusItem.show();
  }
}

/** Why a job failed, in one line for a notification: the worker's exit and stderr tail, or the error's message. */
export function failureReason(err: JobError): string {
  if (err.exit) {
    const tail = err.exit.stderrTail.filter((l) => l.trim()).slice(-3).join(' | ');
    return `${describeExit(err.exit)}${tail ? ` stderr: ${tail.slice(0, 300)}` : ''}${err.exit.expected ? '' : ' The next job starts a fresh worker.'}`;
  }
  if (err.name === 'ConfigError') return `the config has problems: ${err.message.split('\n').slice(0, 3).join('; ')}`;
  return err.message.split('\n').slice(0, 3).join('; ');
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
