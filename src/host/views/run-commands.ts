// Commands on run folders: Refresh Runs, Reveal Run Folder, Delete Run. Each takes what the Runs view's context
// menu passes (an element with `runDir`), a run folder Uri or path, or nothing (then asks with a quick pick).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Cmd, Ctx } from '../ctx';
import { RUN_FILE } from '../../files/run-record';
import { samePath, writerAlive, type RunInfo } from './run-index';

/** The run folder named by a command argument: `{ runDir }`, a Uri (of the folder or its run.json) or a path. */
export function runDirOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return resolveRunPath(arg);
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? resolveRunPath(arg.fsPath) : undefined;
  if (arg && typeof arg === 'object') {
    const dir = (arg as { runDir?: unknown }).runDir;
    if (typeof dir === 'string') return resolveRunPath(dir);
  }
  return undefined;
}

function resolveRunPath(p: string): string {
  const abs = path.resolve(p);
  return path.basename(abs) === RUN_FILE ? path.dirname(abs) : abs;
}

async function pickRun(ctx: Ctx, placeHolder: string): Promise<string | undefined> {
  await ctx.runs.ready();
  const runs = ctx.runs.list();
  if (!runs.length) {
    void vscode.window.showInformationMessage(`Basin found no run folders (${ctx.runs.include}).`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    runs.map((r) => ({ label: r.name, description: r.record?.status ?? 'unreadable', detail: r.dir, dir: r.dir })),
    { placeHolder, matchOnDetail: true },
  );
  return pick?.dir;
}

/** Whether a job of this window (queued or running) holds the run folder. */
export function jobHoldsRun(ctx: Ctx, dir: string): boolean {
  return ctx.jobs.active.some((j) => j.runDir !== undefined && samePath(j.runDir, dir));
}

/** Basin: Refresh Runs. Finds the run folders again; returns how many there are. */
export function refreshRuns(ctx: Ctx): Cmd {
  return async (): Promise<number> => {
    await ctx.runs.rescan();
    return ctx.runs.list().length;
  };
}

/** Basin: Reveal Run Folder. In the Explorer when the folder is in the workspace, else in the OS file manager. */
export function revealRun(ctx: Ctx): Cmd {
  return async (arg?: unknown): Promise<void> => {
    const dir = runDirOf(arg) ?? (await pickRun(ctx, 'Run folder to reveal'));
    if (!dir) return;
    const uri = vscode.Uri.file(dir);
    if (vscode.workspace.getWorkspaceFolder(uri)) await vscode.commands.executeCommand('revealInExplorer', uri);
    else await vscode.commands.executeCommand('revealFileInOS', uri);
  };
}

export interface DeleteRunOptions {
  /**
   * false: delete without the modal confirmation. For tests and scripted use only; the context menu passes no
   * options, so a person always confirms.
   */
  confirm?: boolean;
}

/**
 * Basin: Delete Run. Asks (modal), then deletes the run folder and everything in it. Refuses a folder without
 * run.json, and a run that is being written: a job of this window holds it, or its run.json says 'running' and
 * its process is alive on this machine. Returns true when the folder was deleted.
 */
export function deleteRun(ctx: Ctx): Cmd {
  return async (arg?: unknown, options?: DeleteRunOptions): Promise<boolean> => {
    const dir = runDirOf(arg) ?? (await pickRun(ctx, 'Run folder to delete'));
    if (!dir) return false;
    if (!fs.existsSync(path.join(dir, RUN_FILE))) {
      void vscode.window.showErrorMessage(`Basin deletes only run folders: ${dir} has no ${RUN_FILE}.`);
      return false;
    }
    const info: RunInfo | undefined = ctx.runs.get(dir) ?? (await ctx.runs.refreshRun(dir));
    const name = info?.name ?? path.basename(dir);
    if (jobHoldsRun(ctx, dir) || writerAlive(info?.record)) {
      void vscode.window.showWarningMessage(`Run "${name}" is still running. Cancel its job before deleting it.`);
      return false;
    }
    const confirm = !(options && typeof options === 'object' && !Array.isArray(options) && options.confirm === false);
    if (confirm) {
      const n = info?.checkpoints.length ?? 0;
      const choice = await vscode.window.showWarningMessage(
        `Delete run "${name}"?`,
        {
          modal: true,
          detail: `This deletes the folder ${dir} with its metrics${n ? ` and ${n} checkpoint${n === 1 ? '' : 's'}` : ''}. It cannot be undone.`,
        },
        'Delete',
      );
      if (choice !== 'Delete') return false;
    }
    try {
      await fs.promises.rm(dir, { recursive: true, force: true });
    } catch (e) {
      void vscode.window.showErrorMessage(`Basin could not delete ${dir}: ${(e as Error).message}`);
      await ctx.runs.refreshRun(dir);
      return false;
    }
    ctx.log.info(`Deleted run folder ${dir}`);
    await ctx.runs.refreshRun(dir);
    return true;
  };
}
