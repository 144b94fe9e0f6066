// The extension's context: owns the disposables, the output channel and the (lazily started) worker client.
// Commands are factories `(ctx) => handler`, so a handler always sees the live state (e.g. a worker restarted
// after a crash), never a value captured at activation.
import * as vscode from 'vscode';
import { WorkerClient } from './jobs/worker-client';
import { describeExit, type WorkerExit } from './jobs/worker-process';
import { JobManager } from './jobs/jobs';
import { registerJobKinds, type JobKindParts } from './jobs/kinds';
import type { TrainJobHost } from './jobs/kinds/train';
import { RunIndex } from './views/run-index';
import { KernelWarmUp } from './jobs/warm-up';
import type { LogLevel } from '../protocol/worker';

export type Cmd = (...args: any[]) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
export type CommandFactory = (ctx: Ctx) => Cmd;

export class Ctx implements vscode.Disposable {
  readonly log: vscode.LogOutputChannel;
  private readonly subscriptions: vscode.Disposable[] = [];
  private workerClient: WorkerClient | undefined;
  private runIndex: RunIndex | undefined;
  private jobManager: JobManager | undefined;
  private jobKinds: JobKindParts | undefined;
  private kernelWarmUp: KernelWarmUp | undefined;
  private readonly workerExitEmitter = new vscode.EventEmitter<WorkerExit>();
  /** Every end of a worker process (crash or not). */
  readonly onDidWorkerExit = this.workerExitEmitter.event;

  constructor(readonly extCtx: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('Basin', { log: true });
    this.push(this.log, this.workerExitEmitter);
  }

  push(...ds: vscode.Disposable[]): void {
    this.subscriptions.push(...ds);
  }

  registerCommand(name: string, factory: CommandFactory): void {
    this.push(vscode.commands.registerCommand(`basin.${name}`, factory(this)));
  }

  /** The worker client. Creating it starts nothing: the process starts with the first request. */
  get worker(): WorkerClient {
    if (!this.workerClient) {
      const client = new WorkerClient({
        workerPath: vscode.Uri.joinPath(this.extCtx.extensionUri, 'dist', 'worker.js').fsPath,
        nodePath: () => vscode.workspace.getConfiguration('basin').get<string>('worker.nodePath')?.trim() || undefined,
        cwd: this.extCtx.extensionUri.fsPath,
        log: (level, message) => this.write(level, message),
      });
      client.onDidExit((exit) => this.onWorkerExit(exit));
      this.workerClient = client;
    }
    return this.workerClient;
  }

  /** The workspace's run folders (`basin.runs.include`): scanned on first use, then kept current by file watchers. */
  get runs(): RunIndex {
    if (!this.runIndex) {
      this.runIndex = new RunIndex(this.log);
      this.push(this.runIndex);
    }
    return this.runIndex;
  }

  /** Jobs of every kind: run, cancel, the events (onDidStart, onDidProgress, onDidEnd) and `active`. */
  get jobs(): JobManager {
    if (!this.jobManager) {
      // The manager sees only what it needs of this context (JobManagerHost): it does not import Ctx.
      const jobs = (this.jobManager = new JobManager(this));
      this.jobKinds = registerJobKinds(jobs, this);
      this.push(jobs, this.jobKinds.train);
      // The run index (Runs view, config lenses) learns of a job's run folder from the job itself, not only from
      // its file watchers: those can miss a folder created soon after the window opened.
      const told = new Set<string>();
      this.push(
        jobs.onDidProgress(({ job }) => {
          if (!job.runDir || told.has(job.runDir)) return;
          told.add(job.runDir);
          if (!this.runs.get(job.runDir)) void this.runs.refreshRun(job.runDir);
        }),
        jobs.onDidEnd(({ job }) => {
          if (job.runDir) void this.runs.refreshRun(job.runDir);
        }),
      );
    }
    return this.jobManager;
  }

  /** Compiles a shown config's GPU kernels ahead of ▶ Train (jobs/warm-up.ts). Made at activation by startWarmUp. */
  get warmUp(): KernelWarmUp {
    if (!this.kernelWarmUp) {
      this.kernelWarmUp = new KernelWarmUp(this);
      this.push(this.kernelWarmUp);
    }
    return this.kernelWarmUp;
  }

  /** The train kind's host part: its live statistics frames (`onStats`). */
  get trainJobs(): TrainJobHost {
    void this.jobs;
    return this.jobKinds!.train;
  }

  /** The worker is compiling a config's kernels ahead (the train kind's status line says so). */
  get warmingNow(): boolean {
    return this.kernelWarmUp?.warming !== undefined;
  }

  /** Pid of the running worker process, if any (for tests and diagnostics). */
  get workerPid(): number | undefined {
    return this.workerClient?.pid;
  }

  private write(level: LogLevel, message: string): void {
    this.log[level](message);
  }

  private onWorkerExit(exit: WorkerExit): void {
    this.kernelWarmUp?.workerExited();
    this.workerExitEmitter.fire(exit);
    if (exit.expected) {
      this.log.info(describeExit(exit));
      return;
    }
    // A crash: say so, with the exit code or signal and the tail of stderr. The next request starts a fresh worker.
    this.log.error(`${describeExit(exit, { withStderr: true })}\nThe next request starts a fresh worker.`);
    // Jobs that were running report the crash themselves (with the same exit and stderr): one message, not two.
    if (this.jobManager?.active.length) return;
    const tail = exit.stderrTail.filter((l) => l.trim()).slice(-3).join(' | ');
    void vscode.window
      .showErrorMessage(`${describeExit(exit)}${tail ? ` stderr: ${tail.slice(0, 300)}` : ''} The next request starts a fresh worker.`, 'Show Output')
      .then((choice) => {
        if (choice) this.log.show(true);
      });
  }

  /** Ends the worker process, if one runs, and waits until it is gone (a few seconds at most). */
  async stopWorker(): Promise<void> {
    await this.workerClient?.stop();
  }

  dispose(): void {
    // The worker gets SIGTERM now and SIGKILL after a short cap; VS Code does not wait for the promise.
    void this.workerClient?.dispose();
    this.workerClient = undefined;
    for (const d of this.subscriptions.splice(0).reverse()) {
      try {
        d.dispose();
      } catch (e) {
        console.error('basin: dispose failed', e);
      }
    }
  }
}
