// The eval kind's host part: names the job after the run folder it evaluates, words progress as "batch 3/12",
// and shows the checkpoint's metrics in the end notification and, one per line, in the "Basin" output channel.
import * as path from 'node:path';
import type * as vscode from 'vscode';
import type { EvalJobParams, EvalJobResult } from '../../../protocol/worker';
import type { JobEndEvent, JobInfo, JobKindHost } from '../job-types';

export interface EvalKindEnv {
  readonly log: Pick<vscode.LogOutputChannel, 'info'>;
}

/** Metrics read best as percentages (fractions of rows). */
const FRACTION_METRICS = /^(accuracy|acc|hr\d*|hr\d*Full|recall\d*|precision\d*|ndcg\d*|mrr|coverage\d*)$/i;

export class EvalJobHost implements JobKindHost<'eval'> {
  readonly kind = 'eval';

  constructor(private readonly env: EvalKindEnv) {}

  activity(): string {
    return 'evaluating a checkpoint';
  }

  describe(params: EvalJobParams): { name: string; runDir: string } {
    const runDir = path.resolve(params.runDir);
    return { name: path.basename(runDir), runDir };
  }

  title(job: JobInfo<'eval'>): string {
    return `evaluating ${job.name} ${job.params.step === undefined ? '(latest checkpoint)' : `@ step ${job.params.step}`}`;
  }

  progressLine(job: JobInfo<'eval'>): string {
    const p = job.progress;
    if (!p) return '';
    if (p.phase === 'queued') return 'waiting for another job to finish';
    if (p.phase === 'loading' || p.batches === 0) return 'loading the checkpoint';
    return `batch ${p.batch}/${p.batches}`;
  }

  summary(r: EvalJobResult): string {
    return `step ${r.step}: ${formatMetrics(r.metrics)}`;
  }

  endMessage(end: JobEndEvent<'eval'>): string | undefined {
    if (end.status !== 'completed' || !end.result) return undefined;
    return `Basin: ${end.job.name} @ step ${end.result.step} — ${formatMetrics(end.result.metrics)}.`;
  }

  async settle(end: JobEndEvent<'eval'>): Promise<void> {
    if (end.status !== 'completed' || !end.result) return;
    const { metrics, step } = end.result;
    const keys = Object.keys(metrics);
    const width = Math.max(0, ...keys.map((k) => k.length));
    const lines = keys.map((k) => `  ${k.padEnd(width)}  ${metrics[k]}`);
    this.env.log.info(`evaluation of ${end.job.runDir} at step ${step} (validation split):\n${lines.join('\n')}`);
  }
}

/** "loss 0.3120, accuracy 91.2%, hr10 100.0%" */
export function formatMetrics(metrics: Record<string, number>): string {
  const parts = Object.entries(metrics).map(([k, v]) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return `${k} ${String(v)}`;
    if (FRACTION_METRICS.test(k) && v >= 0 && v <= 1) return `${k} ${(100 * v).toFixed(1)}%`;
    return `${k} ${Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4)}`;
  });
  return parts.join(', ') || 'no metrics';
}
