// The merge kind's host part: names a job after its merge config, words progress as "tensor 12/40", says where the
// merged model went, and offers "Reveal Output" / "Open in Merge Panel" at the end. Previews and the saliency
// grid (the merge panel's quiet jobs) run with `notify: false`, so only a real merge shows a notification.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { MergeJobParams, MergeJobResult } from '../../../protocol/worker';
import type { JobEndAction, JobEndEvent, JobInfo, JobKindHost } from '../job-types';

export class MergeJobHost implements JobKindHost<'merge'> {
  readonly kind = 'merge';

  activity(params: MergeJobParams): string {
    return params.preview ? 'previewing a merge' : 'merging models';
  }

  describe(params: MergeJobParams): { name: string } {
    return { name: path.basename(params.configFile).replace(/\.merge\.ya?ml$/i, '') };
  }

  title(job: JobInfo<'merge'>): string {
    return `${job.params.preview ? 'previewing' : 'merging'} ${job.name}`;
  }

  progressLine(job: JobInfo<'merge'>): string {
    const p = job.progress;
    if (!p) return '';
    if (p.phase === 'queued') return 'waiting for another job to finish';
    if (p.phase === 'planning' || p.total === 0) return 'reading the models';
    return `tensor ${p.done}/${p.total}`;
  }

  summary(r: MergeJobResult): string {
    return r.output ? `${r.tensors.length} tensors → ${r.output} (${r.seconds.toFixed(1)} s)` : `preview of ${r.tensors.length} tensors (${r.seconds.toFixed(2)} s)`;
  }

  endMessage(end: JobEndEvent<'merge'>): string | undefined {
    if (end.status !== 'completed' || !end.result) return undefined;
    return `Basin: merged ${end.job.name} — ${this.summary(end.result)}.`;
  }

  endActions(end: JobEndEvent<'merge'>): JobEndAction[] {
    const out = end.result?.output;
    if (end.status !== 'completed' || !out) return [];
    return [
      { title: 'Reveal Output', run: () => void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(out)) },
      { title: 'Open in Merge Panel', run: () => void vscode.commands.executeCommand('basin.openMergePanel', vscode.Uri.file(end.job.params.configFile)) },
    ];
  }
}
