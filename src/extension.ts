// Extension entry. Activation stays cheap: it registers commands and creates the output channel; no native code
// loads in the extension host and the worker process starts on the first request that needs it.
// First import: its top-level line runs before every other module of the bundle (activation timing).
import { loadStartMs } from './host/load-clock';
import * as vscode from 'vscode';
import { Ctx, type CommandFactory } from './host/ctx';
import * as commands from './host/commands';
import * as jobCommands from './host/jobs/job-commands';
import type { JobManager } from './host/jobs/jobs';
import type { TrainJobHost } from './host/jobs/kinds/train';
import type { WorkerClient } from './host/jobs/worker-client';
import type { WorkerExit } from './host/jobs/worker-process';
import * as runCommands from './host/views/run-commands';
import { registerRunsView, type RunsTreeProvider } from './host/views/runs-tree';
import { registerGpuView } from './host/views/gpu-tree';
import { registerConfigLenses } from './host/lenses/config-lenses';
import { registerConfigDiagnostics } from './host/config/config-diagnostics';
import { registerConfigAssist } from './host/config/config-assist';
import type { KernelWarmUp } from './host/jobs/warm-up';
import { registerStatsPanel } from './host/panels/stats-panel';
import { registerMergePanel } from './host/panels/merge-panel';
import { registerPrunePanel } from './host/panels/prune-panel';
import { registerMergeCommands } from './host/merge/merge-commands';

/** Command name (after `basin.`) → factory. Each is also declared in package.json's contributes.commands. */
const COMMANDS: Record<string, CommandFactory> = {
  showGpuInfo: commands.showGpuInfo,
  trainFromConfig: jobCommands.trainFromConfig,
  resumeRun: jobCommands.resumeRun,
  evaluateCheckpoint: jobCommands.evaluateCheckpoint,
  cancelJob: jobCommands.cancelJob,
  showLog: jobCommands.showLog,
  refreshRuns: runCommands.refreshRuns,
  revealRun: runCommands.revealRun,
  deleteRun: runCommands.deleteRun,
};

/** What activate() returns: a small handle for tests and diagnostics. Not a stable API. */
export interface BasinApi {
  /** Pid of the running worker process, undefined when none runs. */
  workerPid(): number | undefined;
  /** Every end of a worker process; `expected` is false for a crash. */
  onDidWorkerExit: vscode.Event<WorkerExit>;
  /** The worker client (GPU info, jobs); getting it starts no process. */
  readonly worker: WorkerClient;
  /** Jobs of every kind: run(kind, params), events (onDidStart, onDidProgress, onDidEnd), `active`, cancel. */
  readonly jobs: JobManager;
  /** The train kind's host part: `onStats`, the live statistics frames of training jobs. */
  readonly trainJobs: TrainJobHost;
  /** The kernel warm-up (`onDidWarm`, `warm(configPath)`, `warming`). */
  readonly warmUp: KernelWarmUp;
  /** The Runs view's data (tests walk it: runs → checkpoints → tensors). */
  readonly runsView: RunsTreeProvider;
  /**
   * Extension-host clock (performance.now(), ms) when the bundle's top-level code started, when activate() was
   * called and when it returned: `basin bench editor` reads it.
   */
  readonly timing: { loadStartMs: number; activateStartMs: number; activateEndMs: number };
}

let ctx: Ctx | undefined;

export function activate(context: vscode.ExtensionContext): BasinApi {
  const timing = { loadStartMs, activateStartMs: performance.now(), activateEndMs: Number.NaN };
  const c = new Ctx(context);
  ctx = c;
  context.subscriptions.push(c);
  for (const [name, factory] of Object.entries(COMMANDS)) c.registerCommand(name, factory);
  // Side bar, code lenses and diagnostics: registration only; runs are scanned when a view or a config needs them,
  // and the config validator (yaml + ajv) loads with the first config opened.
  const runsView = registerRunsView(c);
  registerGpuView(c);
  registerConfigLenses(c);
  registerConfigDiagnostics(c);
  // Completion and hover in YAML configs, the "did you mean" quick fix (host/config/config-assist.ts).
  registerConfigAssist(c);
  // Compiles a shown config's GPU kernels before ▶ Train (starts the worker only when a config is in view).
  void c.warmUp;
  // basin.openStatistics, basin.statsPanelState and the `basin.stats` panel serializer (restores after reloads).
  registerStatsPanel(c);
  // The merge panel (basin.openMergePanel, the `basin.merge` serializer), New Merge, ▶ Merge and the *.merge.yaml lenses.
  registerMergeCommands(c, registerMergePanel(c));
  // The prune panel (basin.previewPruning, the `basin.prune` serializer).
  registerPrunePanel(c);
  timing.activateEndMs = performance.now();
  return {
    runsView,
    timing,
    workerPid: () => c.workerPid,
    onDidWorkerExit: c.onDidWorkerExit,
    get worker() {
      return c.worker;
    },
    get jobs() {
      return c.jobs;
    },
    get trainJobs() {
      return c.trainJobs;
    },
    get warmUp() {
      return c.warmUp;
    },
  };
}

export async function deactivate(): Promise<void> {
  // Ends the worker (SIGTERM, SIGKILL after a short cap) and waits for it; context.subscriptions then disposes the rest.
  const c = ctx;
  ctx = undefined;
  await c?.stopWorker();
}
