// Early stopping (`train.earlyStopping`): after each evaluation the trainer asks the stopper whether the metric
// improved (then it checkpoints that step, so the best weights are always on disk) and whether `patience`
// evaluations have passed without improvement (then it stops, status completed, with the reason recorded).
// The state is a pure function of the evaluations so far, so a resumed run rebuilds it from metrics.jsonl.
import * as fs from 'node:fs';
import type { EvalMetrics } from './evaluate';

/** Every metric an evaluation can report (typed so a new EvalMetrics field must be added here). */
const METRICS: Record<keyof EvalMetrics, true> = { loss: true, accuracy: true, hr10: true, ndcg10: true, hr10Full: true, mrr: true, coverage10: true };
export const EVAL_METRICS = Object.keys(METRICS).map((k) => `val_${k}`);

export interface EarlyStoppingConfig {
  metric: string;
  mode?: 'min' | 'max';
  patience: number;
  minDelta: number;
}

/** `loss` and `val_loss` name the same metric; the stopper and run.json use the `val_` form. */
export function metricKey(metric: string): string {
  return metric.startsWith('val_') ? metric : `val_${metric}`;
}

/** Lower is better for losses, perplexity and errors; higher for everything else (accuracy, ndcg, recall…). */
export function defaultMode(metric: string): 'min' | 'max' {
  return /loss|perplexity|ppl|error|mse|mae/i.test(metric) ? 'min' : 'max';
}

export interface EarlyStopUpdate {
  improved: boolean;
  stop: boolean;
}

export class EarlyStopper {
  readonly key: string;
  readonly mode: 'min' | 'max';
  best: { step: number; value: number } | null = null;
  /** Evaluations since the last improvement. */
  stale = 0;

  constructor(readonly cfg: EarlyStoppingConfig) {
    if (!Number.isInteger(cfg.patience) || cfg.patience < 1) throw new Error(`train.earlyStopping.patience must be an integer ≥ 1, got ${cfg.patience}`);
    this.key = metricKey(cfg.metric);
    // A misspelt metric fails before training, not at the first evaluation (a metric this model does not report,
    // such as ndcg10 of a classifier, is caught by update()).
    if (!EVAL_METRICS.includes(this.key)) throw new Error(`train.earlyStopping.metric: "${cfg.metric}" is not a validation metric; they are ${EVAL_METRICS.join(', ')}`);
    this.mode = cfg.mode ?? defaultMode(cfg.metric);
  }

  /** One evaluation (`metrics` with `val_` keys). An unknown metric is an error listing those there are. */
  update(step: number, metrics: Readonly<Record<string, number>>): EarlyStopUpdate {
    const v = metrics[this.key];
    if (v === undefined) {
      const have = Object.keys(metrics).filter((k) => k.startsWith('val_'));
      throw new Error(`train.earlyStopping.metric: "${this.cfg.metric}" is not a validation metric of this run; it has ${have.join(', ')}`);
    }
    const better = this.best === null || (Number.isFinite(v) && (this.mode === 'min' ? v < this.best.value - this.cfg.minDelta : v > this.best.value + this.cfg.minDelta));
    if (better && Number.isFinite(v)) {
      this.best = { step, value: v };
      this.stale = 0;
      return { improved: true, stop: false };
    }
    this.stale++;
    return { improved: false, stop: this.stale >= this.cfg.patience };
  }

  /** Why training stopped (after update() returned stop). */
  reason(step: number): string {
    const b = this.best!;
    return `early stopping at step ${step}: ${this.key} did not improve by more than ${this.cfg.minDelta} for ${this.stale} evaluation${this.stale > 1 ? 's' : ''} (mode ${this.mode}); best ${b.value} at step ${b.step}`;
  }

  /** What run.json's lastMetrics gets: `best_step`, `best_<metric>` (and `stop_reason` when it stopped). */
  summary(stopReason: string | null): Record<string, number | string> {
    return {
      ...(this.best ? { best_step: this.best.step, [`best_${this.key}`]: this.best.value } : {}),
      ...(stopReason ? { stop_reason: stopReason } : {}),
    };
  }

  /**
   * Resume: replays the evaluations recorded in metrics.jsonl up to `upTo` (the rows after it were dropped by the
   * trainer already). Returns whether those evaluations had already reached the stopping point.
   */
  replay(metricsFile: string, upTo: number): boolean {
    let text = '';
    try {
      text = fs.readFileSync(metricsFile, 'utf8');
    } catch {
      return false;
    }
    let stop = false;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line);
      } catch {
        continue; // a torn last line
      }
      const step = row.step;
      if (typeof step !== 'number' || step > upTo || typeof row[this.key] !== 'number') continue;
      stop = this.update(step, row as Record<string, number>).stop || stop;
    }
    return stop;
  }
}
