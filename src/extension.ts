// Extension entry. Activation stays cheap: it registers commands and creates the output channel; no native code
// loads in the extension host and the worker process starts on the first request that needs it.
import * as vscode from 'vscode';
import { Ctx, type CommandFactory } from './host/ctx';
import * as commands from './host/commands';
import type { WorkerClient } from './host/jobs/worker-client';
import type { WorkerExit } from './host/jobs/worker-process';

/** Command name (after `basin.`) → factory. Each is also declared in package.json's contributes.commands. */
const COMMANDS: Record<string, CommandFactory> = {
  showGpuInfo: commands.showGpuInfo,
};

/** What activate() returns: a small handle for tests and diagnostics. Not a stable API. */
export interface BasinApi {
  /** Pid of the running worker process, undefined when none runs. */
  workerPid(): number | undefined;
  /** Every end of a worker process; `expected` is false for a crash. */
  onDidWorkerExit: vscode.Event<WorkerExit>;
  /** The worker client (GPU info, jobs); getting it starts no process. */
  readonly worker: WorkerClient;
}

let ctx: Ctx | undefined;

export function activate(context: vscode.ExtensionContext): BasinApi {
  const c = new Ctx(context);
  ctx = c;
  context.subscriptions.push(c);
  for (const [name, factory] of Object.entries(COMMANDS)) c.registerCommand(name, factory);
  return {
    workerPid: () => c.workerPid,
    onDidWorkerExit: c.onDidWorkerExit,
    get worker() {
      return c.worker;
    },
  };
}

export async function deactivate(): Promise<void> {
  // Ends the worker (SIGTERM, SIGKILL after a short cap) and waits for it; context.subscriptions then disposes the rest.
  const c = ctx;
  ctx = undefined;
  await c?.stopWorker();
}
