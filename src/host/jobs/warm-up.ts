// Compiling a config's GPU kernels before ▶ Train: when a training config is shown in a trusted workspace and no
// job runs, the host asks the worker (starting it) to warm that config's kernels (WarmRequest: one throwaway step
// in a temporary folder). On a software adapter a machine's first run otherwise spends ~15–20 s compiling before
// its first step; a user who reads the config for that long then trains without the wait. Off with the setting
// `basin.worker.warmUp`. Once per config per worker process (a fresh worker after a crash warms again).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { WarmResult } from '../../protocol/worker';
import type { WorkerClient } from './worker-client';
import type { JobManager } from './jobs';
import { CONFIG_FILE_RE } from '../../files/config/config-files';

const CONFIG_RE = CONFIG_FILE_RE;
/** The config must stay in view this long first (flicking through files starts nothing). */
const SETTLE_MS = 800;

export interface WarmUpHost {
  readonly worker: Pick<WorkerClient, 'warm' | 'pid'>;
  readonly jobs: Pick<JobManager, 'active'>;
  readonly log: Pick<vscode.LogOutputChannel, 'info' | 'warn'>;
}

export interface WarmUpEvent {
  configPath: string;
  result?: WarmResult;
  error?: string;
}

export class KernelWarmUp implements vscode.Disposable {
  private readonly done = new Set<string>();
  private inFlight: { configPath: string; promise: Promise<void>; cts: vscode.CancellationTokenSource } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly subs: vscode.Disposable[] = [];
  private readonly emitter = new vscode.EventEmitter<WarmUpEvent>();
  /** A warm-up ended (tests and the editor bench wait on it). */
  readonly onDidWarm = this.emitter.event;

  constructor(private readonly host: WarmUpHost) {
    this.subs.push(
      this.emitter,
      vscode.window.onDidChangeActiveTextEditor((e) => this.consider(e?.document)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.consider(vscode.window.activeTextEditor?.document)),
    );
    this.consider(vscode.window.activeTextEditor?.document);
  }

  /** The config being warmed now, if any. */
  get warming(): string | undefined {
    return this.inFlight?.configPath;
  }

  /** Forgets what the last worker warmed (call on every worker exit: its pipelines died with it). */
  workerExited(): void {
    this.done.clear();
  }

  /** Warms a config now (unless done or not allowed); resolves when the warm-up ends. */
  async warm(configPath: string): Promise<WarmUpEvent | undefined> {
    const file = path.resolve(configPath);
    if (!this.allowed() || this.done.has(file) || this.inFlight) return undefined;
    const cts = new vscode.CancellationTokenSource();
    let event: WarmUpEvent = { configPath: file };
    const promise = (async () => {
      try {
        const result = await this.host.worker.warm(file, cts.token);
        event = { configPath: file, result };
        if (!result.skipped || result.skipped === 'already warm') this.done.add(file);
        this.host.log.info(`kernel warm-up for ${path.basename(file)}: ${result.skipped ?? `${result.kernels} kernel(s)`} in ${(result.ms / 1000).toFixed(1)} s`);
      } catch (e) {
        event = { configPath: file, error: (e as Error).message };
        this.host.log.warn(`kernel warm-up for ${path.basename(file)} failed: ${(e as Error).message}`);
      } finally {
        cts.dispose();
        this.inFlight = undefined;
        this.emitter.fire(event);
      }
    })();
    this.inFlight = { configPath: file, promise, cts };
    await promise;
    return event;
  }

  private allowed(): boolean {
    return vscode.workspace.isTrusted && vscode.workspace.getConfiguration('basin').get<boolean>('worker.warmUp', true) !== false;
  }

  private consider(doc: vscode.TextDocument | undefined): void {
    clearTimeout(this.timer);
    if (!doc || doc.uri.scheme !== 'file' || !CONFIG_RE.test(doc.uri.fsPath)) return;
    const file = doc.uri.fsPath;
    this.timer = setTimeout(() => {
      // A job holds the GPU (it compiles what it needs itself), or this config is warm already.
      if (this.host.jobs.active.length > 0 || vscode.window.activeTextEditor?.document.uri.fsPath !== file) return;
      void this.warm(file);
    }, SETTLE_MS);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.inFlight?.cts.cancel();
    for (const s of this.subs.splice(0)) s.dispose();
  }
}
