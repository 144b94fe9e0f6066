// Code lenses on training configs (`*.basin.yaml`, `*.basin.yml`, `*.basin.json`) and on nothing else:
//   ▶ Train                       basin.trainFromConfig(<document Uri>)
//   ↻ Resume from step n          basin.resumeRun({ runDir })      the newest stopped, unfinished run of this config with a checkpoint
//   Open last run's statistics    basin.openStatistics({ runDir }) when this config has a run
//   Preview pruning               basin.previewPruning({ runDir, checkpoint }) on the newest finished run's last checkpoint
// on the `model:` line (the first line when there is none). "A run of this config" is a run folder whose
// run.json `configPath` is this file. The lenses follow the run index, which file watchers keep current.
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { isFinishedRun, latestExistingCheckpoint, type RunIndex } from '../views/run-index';
import { CONFIG_FILE_GLOB } from '../../files/config/config-files';

export const CONFIG_PATTERN = CONFIG_FILE_GLOB;
/** Training configs on disk (untitled documents have no file name to match, and no runs). */
export const CONFIG_SELECTOR: vscode.DocumentSelector = [{ scheme: 'file', pattern: CONFIG_PATTERN }];

/** The line to put the lenses on: the top-level `model` key, else the first line. */
export function lensLine(document: vscode.TextDocument): number {
  const json = /\.json$/i.test(document.fileName);
  const re = json ? /^\s*"model"\s*:/ : /^model\s*:/;
  const n = Math.min(document.lineCount, 5000);
  for (let i = 0; i < n; i++) if (re.test(document.lineAt(i).text)) return i;
  return 0;
}

export class ConfigLensProvider implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;
  private readonly sub: vscode.Disposable;

  constructor(private readonly runs: RunIndex) {
    this.sub = runs.onDidChange(() => this.emitter.fire());
  }

  async provideCodeLenses(document: vscode.TextDocument): Promise<vscode.CodeLens[]> {
    const range = new vscode.Range(lensLine(document), 0, lensLine(document), 0);
    const lenses = [
      new vscode.CodeLens(range, {
        title: '▶ Train',
        tooltip: 'Train a model with this config (Basin: Train from Config)',
        command: 'basin.trainFromConfig',
        arguments: [document.uri],
      }),
    ];
    const runs = await this.runs.runsOfConfig(document.uri.fsPath); // newest first
    // Not a run that is still being written (an interrupted one, 'running' but its process gone, is resumable), and
    // not a finished one: there is nothing left to train there (and resuming it would overwrite its metrics).
    const resumable = runs.find(
      (r) => r.record && (r.record.status !== 'running' || r.interrupted) && r.checkpoints.some((c) => c.exists) && !isFinishedRun(r.record, latestExistingCheckpoint(r)?.step),
    );
    if (resumable) {
      const step = Math.max(...resumable.checkpoints.filter((c) => c.exists).map((c) => c.step));
      lenses.push(
        new vscode.CodeLens(range, {
          title: `↻ Resume from step ${step}`,
          tooltip: `Resume run ${resumable.name} (${resumable.dir}) from its last checkpoint, step ${step}`,
          command: 'basin.resumeRun',
          arguments: [{ runDir: resumable.dir }],
        }),
      );
    }
    const last = runs[0];
    if (last) {
      lenses.push(
        new vscode.CodeLens(range, {
          title: "Open last run's statistics",
          tooltip: `Training statistics of ${last.dir}`,
          command: 'basin.openStatistics',
          arguments: [{ runDir: last.dir }],
        }),
      );
    }
    // Preview pruning: the newest finished run's last checkpoint (a sweep of a run still training would race it).
    const finished = runs.find((r) => r.record && isFinishedRun(r.record, latestExistingCheckpoint(r)?.step) && latestExistingCheckpoint(r));
    const ck = finished && latestExistingCheckpoint(finished);
    if (finished && ck) {
      lenses.push(
        new vscode.CodeLens(range, {
          title: 'Preview pruning',
          tooltip: `The pruning trade-off of ${finished.name} at step ${ck.step} (Basin: Preview Pruning)`,
          command: 'basin.previewPruning',
          arguments: [{ runDir: finished.dir, checkpoint: { file: ck.file, step: ck.step } }],
        }),
      );
    }
    return lenses;
  }

  dispose(): void {
    this.sub.dispose();
    this.emitter.dispose();
  }
}

export function registerConfigLenses(ctx: Ctx): ConfigLensProvider {
  const provider = new ConfigLensProvider(ctx.runs);
  ctx.push(provider, vscode.languages.registerCodeLensProvider(CONFIG_SELECTOR, provider));
  return provider;
}
