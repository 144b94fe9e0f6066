// The job commands: Basin: Train from Config, Resume Run, Evaluate Checkpoint, Cancel Job, Show Log. Factories
// (ctx) => handler, as in src/host/commands.ts; the work is in JobManager (ctx.jobs). Each job command resolves
// when its job has ended, with the JobOutcome (undefined when no job started), so tests and other commands can
// await it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Cmd, Ctx } from '../ctx';
import type { AnyJobInfo, JobOutcome } from './jobs';
import { writerAlive } from './kinds/train';
import { RUN_FILE, openRun } from '../../files/run-record';
import { isFinishedRun } from '../views/run-index';
import { CONFIG_FILE_GLOB, CONFIG_FILE_RE, CONFIG_FILE_WORDS } from '../../files/config/config-files';

export const CONFIG_RE = CONFIG_FILE_RE;
const CONFIG_GLOB = CONFIG_FILE_GLOB;
const EXCLUDE_GLOB = '**/{node_modules,.git,.vscode-test}/**';

/** A file path from a command argument: a Uri, a path string, or an object with `resourceUri`/`uri`/`fsPath`. */
function fileOf(arg: unknown): string | undefined {
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? arg.fsPath : undefined;
  if (typeof arg === 'string' && arg) return path.resolve(arg);
  if (arg && typeof arg === 'object') {
    const o = arg as { resourceUri?: unknown; uri?: unknown; fsPath?: unknown; scheme?: unknown };
    if (o.resourceUri) return fileOf(o.resourceUri);
    if (o.uri) return fileOf(o.uri);
    if (typeof o.fsPath === 'string' && (o.scheme === undefined || o.scheme === 'file')) return o.fsPath;
  }
  return undefined;
}

/** A run folder from a command argument: a path or Uri (of the folder or its run.json), or an object with `runDir`. */
export function runDirArg(arg: unknown): string | undefined {
  if (arg && typeof arg === 'object' && !(arg instanceof vscode.Uri)) {
    const d = (arg as { runDir?: unknown }).runDir;
    if (typeof d === 'string' && d) return path.resolve(d);
  }
  const f = fileOf(arg);
  if (!f) return undefined;
  return path.basename(f) === RUN_FILE ? path.dirname(f) : f;
}

async function pickConfig(): Promise<string | undefined> {
  const files = await vscode.workspace.findFiles(CONFIG_GLOB, EXCLUDE_GLOB, 500);
  if (files.length === 0) {
    void vscode.window.showInformationMessage(`Basin: no training config (${CONFIG_FILE_WORDS}) in this workspace.`);
    return undefined;
  }
  files.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  const pick = await vscode.window.showQuickPick(
    files.map((u) => ({ label: path.basename(u.fsPath), description: vscode.workspace.asRelativePath(path.dirname(u.fsPath)), file: u.fsPath })),
    { placeHolder: 'Config to train', matchOnDescription: true },
  );
  return pick?.file;
}

/**
 * Basin: Train from Config. Argument: the config's Uri (editor title button, code lens, Explorer); default: the
 * active editor's config; else a quick pick of the workspace's configs. An unsaved config is saved first.
 */
export function trainFromConfig(ctx: Ctx): Cmd {
  return async (arg?: unknown): Promise<JobOutcome<'train'> | undefined> => {
    if (!ctx.jobs.checkTrust('training')) return undefined;
    let file = fileOf(arg);
    if (!file) {
      const doc = vscode.window.activeTextEditor?.document;
      if (doc && doc.uri.scheme === 'file' && CONFIG_RE.test(doc.uri.fsPath)) file = doc.uri.fsPath;
    }
    file ??= await pickConfig();
    if (!file) return undefined;
    if (!CONFIG_RE.test(file)) {
      void vscode.window.showErrorMessage(`Basin: ${path.basename(file)} is not a training config (${CONFIG_FILE_WORDS}).`);
      return undefined;
    }
    const open = vscode.workspace.textDocuments.find((d) => d.uri.scheme === 'file' && path.resolve(d.uri.fsPath) === path.resolve(file!));
    if (open?.isDirty && !(await open.save())) {
      void vscode.window.showWarningMessage(`Basin: ${path.basename(file)} has unsaved changes that could not be saved; not training.`);
      return undefined;
    }
    return ctx.jobs.run('train', { configPath: path.resolve(file) });
  };
}

interface RunPick extends vscode.QuickPickItem {
  dir: string;
}

/** Run folders of the workspace that have a checkpoint (and, with `free`, that no training job of this window holds). */
async function runsWithCheckpoints(ctx: Ctx, opts: { free: boolean }): Promise<RunPick[]> {
  const files = await vscode.workspace.findFiles('**/run.json', EXCLUDE_GLOB, 2000);
  const picks: (RunPick & { time: string })[] = [];
  await Promise.all(
    files.map(async (u) => {
      const dir = path.dirname(u.fsPath);
      if (opts.free && ctx.jobs.jobOfRun(dir, 'train')) return;
      try {
        const run = await openRun(dir);
        const ck = run.latestCheckpoint();
        if (!ck) return;
        const r = run.record;
        if (opts.free && isFinishedRun(r, ck.step)) return; // nothing left to resume
        const total = (r.config as { train?: { steps?: number } } | null)?.train?.steps;
        picks.push({
          label: path.basename(dir),
          description: `${r.status} · checkpoint at step ${ck.step}${total ? ` of ${total}` : ''}`,
          detail: vscode.workspace.asRelativePath(dir),
          dir,
          time: r.updatedAt,
        });
      } catch {
        /* not a readable run: not offered */
      }
    }),
  );
  picks.sort((a, b) => b.time.localeCompare(a.time));
  return picks;
}

/** `fromCheckpoint` of a command argument (`{ runDir, fromCheckpoint }`: "Resume from step N instead"). */
function fromCheckpointArg(arg: unknown): number | undefined {
  if (!arg || typeof arg !== 'object' || arg instanceof vscode.Uri) return undefined;
  const s = (arg as { fromCheckpoint?: unknown }).fromCheckpoint;
  return typeof s === 'number' && Number.isInteger(s) && s >= 0 ? s : undefined;
}

/**
 * Basin: Resume Run. Argument: the run folder (path, Uri, its run.json, or a Runs-view item with `runDir`;
 * `{ runDir, fromCheckpoint }` resumes from that checkpoint's step instead of the latest); default: a quick pick
 * of the unfinished runs that have a checkpoint. Continues with the config recorded in the run. A finished run
 * (completed, or its latest checkpoint at its last step) is not resumed: there is nothing left to train.
 */
export function resumeRun(ctx: Ctx): Cmd {
  return async (arg?: unknown): Promise<JobOutcome<'train'> | undefined> => {
    if (!ctx.jobs.checkTrust('resuming a run')) return undefined;
    let dir = runDirArg(arg);
    if (!dir) {
      const picks = await runsWithCheckpoints(ctx, { free: true });
      if (picks.length === 0) {
        void vscode.window.showInformationMessage('Basin: no run with a checkpoint to resume in this workspace.');
        return undefined;
      }
      dir = (await vscode.window.showQuickPick(picks, { placeHolder: 'Run to resume from its latest checkpoint', matchOnDetail: true }))?.dir;
      if (!dir) return undefined;
    }
    if (!fs.existsSync(path.join(dir, RUN_FILE))) {
      void vscode.window.showErrorMessage(`Basin: ${dir} is not a run folder (no run.json).`);
      return undefined;
    }
    const fromCheckpoint = fromCheckpointArg(arg);
    try {
      const run = await openRun(dir);
      const rec = run.record;
      if (rec.status === 'running' && writerAlive(rec.process) && !ctx.jobs.jobOfRun(dir, 'train')) {
        void vscode.window.showWarningMessage(`Basin: ${path.basename(dir)} is still being trained by process ${rec.process!.pid}; stop it before resuming.`);
        return undefined;
      }
      const from = fromCheckpoint ?? run.latestCheckpoint()?.step;
      if (isFinishedRun(fromCheckpoint === undefined ? rec : { ...rec, status: 'cancelled' }, from)) {
        void vscode.window.showInformationMessage(`Basin: ${path.basename(dir)} is complete (its last checkpoint is step ${from}); there is nothing to resume. Train its config again for a new run.`);
        return undefined;
      }
    } catch {
      /* unreadable: the worker reports why */
    }
    return ctx.jobs.run('train', fromCheckpoint === undefined ? { resume: dir } : { resume: dir, fromCheckpoint });
  };
}

/** The checkpoint step a command argument names: `{ step }`, or a Runs-view checkpoint `{ checkpoint: { step } }`. */
function stepArg(arg: unknown): number | undefined {
  if (!arg || typeof arg !== 'object' || arg instanceof vscode.Uri) return undefined;
  const o = arg as { step?: unknown; checkpoint?: { step?: unknown } };
  const step = typeof o.step === 'number' ? o.step : o.checkpoint?.step;
  return typeof step === 'number' && Number.isInteger(step) && step >= 0 ? step : undefined;
}

/** A quick pick of a run's checkpoints, latest first; undefined when dismissed. */
async function pickCheckpoint(dir: string): Promise<{ step?: number } | undefined> {
  let steps: number[] = [];
  try {
    const run = await openRun(dir);
    steps = [...new Set(run.record.checkpoints.map((c) => c.step))].sort((a, b) => b - a);
  } catch {
    /* unreadable: the worker reports why */
  }
  if (steps.length <= 1) return {};
  const pick = await vscode.window.showQuickPick(
    [{ label: 'Latest checkpoint', description: `step ${steps[0]}`, step: undefined as number | undefined }, ...steps.map((s) => ({ label: `Step ${s}`, description: '', step: s as number | undefined }))],
    { placeHolder: `Checkpoint of ${path.basename(dir)} to evaluate` },
  );
  return pick ? { step: pick.step } : undefined;
}

/**
 * Basin: Evaluate Checkpoint. Argument: a Runs-view run (its latest checkpoint) or checkpoint (that step), a run
 * folder path or Uri, or `{ runDir, step? }`; default: quick picks of the run and the checkpoint. Evaluates the
 * checkpoint on the validation split of the run's config; the metrics appear in a notification and in the log.
 */
export function evaluateCheckpoint(ctx: Ctx): Cmd {
  return async (arg?: unknown): Promise<JobOutcome<'eval'> | undefined> => {
    if (!ctx.jobs.checkTrust('evaluating a checkpoint')) return undefined;
    let dir = runDirArg(arg);
    let step = stepArg(arg);
    if (!dir) {
      const picks = await runsWithCheckpoints(ctx, { free: false });
      if (picks.length === 0) {
        void vscode.window.showInformationMessage('Basin: no run with a checkpoint to evaluate in this workspace.');
        return undefined;
      }
      dir = (await vscode.window.showQuickPick(picks, { placeHolder: 'Run whose checkpoint to evaluate', matchOnDetail: true }))?.dir;
      if (!dir) return undefined;
      const chosen = await pickCheckpoint(dir);
      if (!chosen) return undefined;
      step = chosen.step;
    }
    if (!fs.existsSync(path.join(dir, RUN_FILE))) {
      void vscode.window.showErrorMessage(`Basin: ${dir} is not a run folder (no run.json).`);
      return undefined;
    }
    return ctx.jobs.run('eval', step === undefined ? { runDir: dir } : { runDir: dir, step });
  };
}

/**
 * The Cancel Job picker's items: each job with its progress, and on the second line its run folder's name (which
 * ends with the run's start time) and the time the job started, so that two runs of one config can be told apart.
 */
export function cancelPickItems(ctx: Pick<Ctx, 'jobs'>, jobs: readonly AnyJobInfo[]): (vscode.QuickPickItem & { id: string | undefined })[] {
  return [
    ...jobs.map((j) => ({
      label: j.name,
      description: ctx.jobs.progressLine(j) || 'starting',
      detail: `${j.runDir ? `${path.basename(j.runDir)} · ` : ''}started ${new Date(j.startedAt).toLocaleTimeString()}${j.runDir ? ` · ${vscode.workspace.asRelativePath(j.runDir)}` : ''}`,
      id: j.id as string | undefined,
    })),
    { label: 'All jobs', description: `${jobs.length} jobs`, detail: undefined, id: undefined },
  ];
}

/**
 * Basin: Cancel Job. Argument: a job id or run folder (optional); one running job is cancelled at once, among
 * several a quick pick asks which. Returns how many jobs were asked to stop.
 */
export function cancelJob(ctx: Ctx): Cmd {
  return async (arg?: unknown): Promise<number> => {
    const jobs = ctx.jobs.active;
    if (typeof arg === 'string' && arg) return ctx.jobs.cancel(arg) || ctx.jobs.cancel(path.resolve(arg));
    const dir = runDirArg(arg);
    if (dir) return ctx.jobs.cancel(dir);
    if (jobs.length === 0) {
      void vscode.window.showInformationMessage('Basin: no job is running.');
      return 0;
    }
    if (jobs.length === 1) return ctx.jobs.cancel(jobs[0].id);
    const pick = await vscode.window.showQuickPick(cancelPickItems(ctx, jobs), { placeHolder: 'Job to cancel', matchOnDetail: true });
    if (!pick) return 0;
    return ctx.jobs.cancel(pick.id);
  };
}

/** Basin: Show Log. The "Basin" output channel. */
export function showLog(ctx: Ctx): Cmd {
  return (): void => ctx.log.show(true);
}
