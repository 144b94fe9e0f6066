// Learning-rate schedules, evaluated on the host: the optimizer takes lr per step as a uniform, so a schedule is
// a plain function of the step index and costs the GPU nothing.
// `step` is the 1-based number of the update about to be taken, the same count as Optimizer.stepCount after it
// (1 for the first optimizer.step(); the trainer's loop counter). So lr(warmupSteps) = lr and lr(totalSteps), the
// last update of a run, is exactly minLrRatio·lr.

export type LrSchedule = (step: number) => number;

export interface ConstantSchedule {
  kind: 'constant';
  lr: number;
  warmupSteps?: number;
}

export interface CosineSchedule {
  kind: 'cosine';
  lr: number;
  warmupSteps?: number;
  totalSteps: number;
  /** The final lr as a fraction of lr (default 0.1). */
  minLrRatio?: number;
}

export type ScheduleConfig = ConstantSchedule | CosineSchedule;

function check(lr: number, warmup: number): void {
  if (!Number.isFinite(lr) || lr < 0) throw new Error(`schedule: lr must be a finite number ≥ 0, got ${lr}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`schedule: warmupSteps must be an integer ≥ 0, got ${warmup}`);
}

/**
 * Linear warmup from 0: lr·step/warmupSteps for step ≤ warmupSteps. The first update (step 1) gets
 * lr/warmupSteps, so no update is wasted with lr = 0.
 */
function warmupFactor(step: number, warmup: number): number {
  return step < warmup ? Math.max(0, step) / warmup : 1;
}

export function constant(lr: number, warmupSteps = 0): LrSchedule {
  check(lr, warmupSteps);
  return (step) => lr * warmupFactor(step, warmupSteps);
}

/**
 * Warmup, then cosine decay from lr (at step warmupSteps) to minLrRatio·lr (at step totalSteps and after):
 * lr_min + ½(lr − lr_min)(1 + cos(π·(step − warmup)/(total − warmup))).
 */
export function warmupCosine(lr: number, opts: { warmupSteps?: number; totalSteps: number; minLrRatio?: number }): LrSchedule {
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  const ratio = opts.minLrRatio ?? 0.1;
  check(lr, warmup);
  if (!Number.isInteger(total) || total < warmup) throw new Error(`schedule: totalSteps (${total}) must be an integer ≥ warmupSteps (${warmup})`);
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`schedule: minLrRatio must be in [0, 1], got ${ratio}`);
  const minLr = lr * ratio;
  return (step) => {
    if (step < warmup) return lr * warmupFactor(step, warmup);
    if (step >= total) return minLr;
    const progress = (step - warmup) / (total - warmup);
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

export function makeSchedule(cfg: ScheduleConfig): LrSchedule {
  switch (cfg.kind) {
    case 'constant':
      return constant(cfg.lr, cfg.warmupSteps ?? 0);
    case 'cosine':
      return warmupCosine(cfg.lr, cfg);
    default:
      throw new Error(`unknown schedule kind '${(cfg as { kind: string }).kind}' (constant, cosine)`);
  }
}
