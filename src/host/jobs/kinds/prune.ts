// The prune kinds' host parts: a sweep is named after its run and worded "magnitude at 40.0% (5/7)"; an apply
// says what it wrote and offers "Reveal Output" and "Open Report". The prune panel runs both with its own
// progress display (the sweep quietly, `notify: false`; Apply with the notification, which has Cancel).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { PruneApplyJobParams, PruneApplyJobResult, PruneSweepJobParams, PruneSweepJobProgress, PruneSweepJobResult } from '../../../protocol/worker';
import type { JobEndAction, JobEndEvent, JobInfo, JobKindHost } from '../job-types';

/** A short name for a prune source: the run folder's name (a checkpoint's run, a config's file name). */
export function pruneSourceName(source: string): string {
  const m = /[\\/]checkpoints[\\/]step-(\d+)\.safetensors$/.exec(source);
  if (m) return `${path.basename(path.dirname(path.dirname(source)))} @ step ${m[1]}`;
  return path.basename(source).replace(/\.basin\.(ya?ml|json)$/i, '');
}

const pct = (d: number) => `${(100 * d).toFixed(1)}%`;

export class PruneSweepJobHost implements JobKindHost<'prune-sweep'> {
  readonly kind = 'prune-sweep';

  activity(): string {
    return 'running a pruning sweep';
  }

  describe(params: PruneSweepJobParams): { name: string } {
    return { name: pruneSourceName(params.source) };
  }

  title(job: JobInfo<'prune-sweep'>): string {
    return `pruning sweep of ${job.name}`;
  }

  learn(job: JobInfo<'prune-sweep'>, p: PruneSweepJobProgress): void {
    if (p.runDir && !job.runDir) job.runDir = p.runDir;
  }

  progressLine(job: JobInfo<'prune-sweep'>): string {
    const p = job.progress;
    if (!p) return '';
    if (p.phase === 'queued') return 'waiting for another job to finish';
    if (p.phase === 'dense' || p.phase === 'started') return `evaluating the dense model (${p.done}/${p.total})`;
    if (p.phase === 'scores') return `scoring ${p.score} (${p.done}/${p.total})`;
    return `${p.score} at ${pct(p.density ?? 1)} (${p.done}/${p.total})`;
  }

  summary(r: PruneSweepJobResult): string {
    return `${r.points} points in ${(r.ms / 1000).toFixed(1)} s → ${path.basename(r.file)}`;
  }

  endActions(end: JobEndEvent<'prune-sweep'>): JobEndAction[] {
    const r = end.result;
    if (end.status !== 'completed' || !r) return [];
    return [{ title: 'Open in Prune Panel', run: () => void vscode.commands.executeCommand('basin.previewPruning', { source: r.checkpoint, sweepFile: r.file }) }];
  }
}

export class PruneApplyJobHost implements JobKindHost<'prune-apply'> {
  readonly kind = 'prune-apply';

  activity(): string {
    return 'writing a pruned checkpoint';
  }

  describe(params: PruneApplyJobParams): { name: string } {
    return { name: pruneSourceName(params.source) };
  }

  title(job: JobInfo<'prune-apply'>): string {
    return `pruning ${job.name} (${job.params.score} at ${pct(job.params.density)})`;
  }

  progressLine(job: JobInfo<'prune-apply'>): string {
    const p = job.progress;
    if (!p) return '';
    if (p.phase === 'queued') return 'waiting for another job to finish';
    return p.phase === 'writing' ? 'writing the pruned checkpoint' : 'scoring, masking and evaluating';
  }

  summary(r: PruneApplyJobResult): string {
    const loss = r.pruned && r.dense ? `, loss ${r.dense.loss.toFixed(4)} → ${r.pruned.loss.toFixed(4)}` : '';
    return `${r.score} kept ${pct(r.kept)}${loss} → ${r.weights}`;
  }

  endMessage(end: JobEndEvent<'prune-apply'>): string | undefined {
    if (end.status !== 'completed' || !end.result) return undefined;
    return `Basin: pruned ${end.job.name} — ${this.summary(end.result)}.`;
  }

  endActions(end: JobEndEvent<'prune-apply'>): JobEndAction[] {
    const r = end.result;
    if (end.status !== 'completed' || !r) return [];
    return [
      { title: 'Reveal Output', run: () => void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(r.weights)) },
      { title: 'Open Report', run: () => void vscode.commands.executeCommand('vscode.open', vscode.Uri.file(r.report)) },
    ];
  }
}
