// Optimizer and schedule factories by config name. The entries (names, parameters with defaults and ranges,
// docs, sources) are in src/files/registry/optimizers.ts and schedules.ts; TypeScript checks that every entry
// has a factory here and nothing else does. Adding an optimizer: its entry there, its class beside this file,
// its kernel in kernels/, its CPU reference in src/engine/cpu/optim.ts, and one line below.
import { optimizerRegistry, type OptimizerConfig } from '../../files/registry/optimizers';
import { scheduleRegistry, type ScheduleConfig } from '../../files/registry/schedules';
import { Adafactor } from './adafactor';
import { AdamW } from './adamw';
import { Mao } from './mao';
import type { GradNorms } from './clip';
import type { Optimizer } from './optimizer';
import type { ParameterStore } from './params';
import { LrSchedule, constant, warmupCosine } from './schedule';
import { SGD } from './sgd';

/** What every optimizer gets besides its own section. */
export interface OptimizerContext {
  store: ParameterStore;
  /** Clip the global gradient norm to this (0: no clipping). */
  maxGradNorm: number;
  gradNorms?: GradNorms;
}

type OptimizerFactories = { [N in OptimizerConfig['type']]: (cfg: Extract<OptimizerConfig, { type: N }>, ctx: OptimizerContext) => Optimizer };

const OPTIMIZERS: OptimizerFactories = {
  adamw: (c, { store, maxGradNorm, gradNorms }) => new AdamW(store, { betas: [c.betas[0], c.betas[1]], eps: c.eps, weightDecay: c.weightDecay, maxGradNorm, gradNorms }),
  sgd: (c, { store, maxGradNorm, gradNorms }) => new SGD(store, { momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay, maxGradNorm, gradNorms }),
  adafactor: (c, { store, maxGradNorm, gradNorms }) =>
    new Adafactor(store, {
      beta2Decay: c.beta2Decay,
      beta1: c.beta1,
      eps1: c.eps1,
      eps2: c.eps2,
      clipThreshold: c.clipThreshold,
      scaleParameter: c.scaleParameter,
      weightDecay: c.weightDecay,
      maxGradNorm,
      gradNorms,
    }),
  mao: (c, { store, maxGradNorm, gradNorms }) =>
    new Mao(store, {
      betas: [c.betas[0], c.betas[1]],
      eps: c.eps,
      rank: c.rank,
      refitEvery: c.refitEvery,
      powerIters: c.powerIters,
      pMax: c.pMax,
      clipThreshold: c.clipThreshold,
      weightDecay: c.weightDecay,
      errorFeedback: c.errorFeedback,
      errorFeedbackPrecision: c.errorFeedbackPrecision as 'bf16' | 'f32',
      residual: c.residual,
      residualWeight: c.residualWeight,
      maxGradNorm,
      gradNorms,
    }),
};

/** The optimizer a config section names (unknown names throw, listing the known ones). */
export function makeOptimizer(cfg: OptimizerConfig, ctx: OptimizerContext): Optimizer {
  optimizerRegistry.get(cfg.type);
  return (OPTIMIZERS[cfg.type] as (c: OptimizerConfig, ctx: OptimizerContext) => Optimizer)(cfg, ctx);
}

type ScheduleFactories = { [N in ScheduleConfig['type']]: (cfg: Extract<ScheduleConfig, { type: N }>, lr: number, totalSteps: number) => LrSchedule };

const SCHEDULES: ScheduleFactories = {
  cosine: (c, lr, totalSteps) => warmupCosine(lr, { warmupSteps: Math.min(c.warmup, totalSteps), totalSteps, minLrRatio: c.minLrRatio }),
  constant: (c, lr, totalSteps) => constant(lr, Math.min(c.warmup, totalSteps)),
};

/** The learning-rate schedule of a config section for a run of totalSteps with peak lr. */
export function makeLrSchedule(cfg: ScheduleConfig, lr: number, totalSteps: number): LrSchedule {
  scheduleRegistry.get(cfg.type);
  return (SCHEDULES[cfg.type] as (c: ScheduleConfig, lr: number, total: number) => LrSchedule)(cfg, lr, totalSteps);
}
