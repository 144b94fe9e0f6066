// Mixed-precision training (train.precision: mixed): the usual recipe, on adapters with shader-f16.
//   f16   the Linear layers' products: an f16 copy of each weight (cast once per optimizer step, after it) and an
//         f16 copy of the layer's input, which is also what the backward keeps (ops/matmul.ts linearHalf); the
//         output gradient is rounded to f16 for the two backward products. Sums are f32 in every kernel.
//   f32   the master weights, their gradients and the optimizer state; embeddings, layer norm, softmax,
//         attention and the loss, as in the usual recipe (reductions, exponentials and normalisations lose too much
//         in f16, and they are a small share of the work); and a weight too large for one binding (its row-chunked
//         product is f32 only).
//   memory an activation read only by f16 Linear layers (a layer norm's output, the MLP's hidden activation) is
//         freed once they have cast it (nn/layers.ts releaseAfterHalfLayers): its f16 copy is what they keep.
//   loss scaling (./loss-scale.ts): the backward starts from S instead of 1 and the gradients are divided by S
//         before clipping and the step, so small f16 gradients do not flush to zero; an overflow skips the step.
// Without shader-f16 the run trains in f32 and says why once (onStart, run.json `device.precision`).
import * as path from 'node:path';
import type { Runtime } from '../gpu/runtime';
import type { Model } from '../nn/models';
import { Linear } from '../nn/layers';
import { castF16Into } from '../ops/convert';
import type { Optimizer } from '../optim/optimizer';
import type { ParameterStore } from '../optim/params';
import { Tensor, empty, keep } from '../tensor/tensor';
import type { TrainSectionConfig } from '../../files/config/schema';
import { LossScaler, lossScalePath, readLossScaleState, writeLossScaleState, type LossScaleState } from './loss-scale';

/** The precision a run asked for, the one it uses, and why they differ (recorded in run.json `device.precision`). */
export interface PrecisionReport {
  requested: 'f32' | 'mixed';
  used: 'f32' | 'mixed';
  /** Set when `used` differs from `requested`. */
  reason?: string;
  /** Mixed: the Linear layers whose products run in f16, and the starting loss scale. */
  halfLayers?: number;
  lossScale?: number;
}

/** What a config's precision becomes on this device. */
export function planPrecision(rt: Runtime, t: Pick<TrainSectionConfig, 'precision'>): PrecisionReport {
  const requested = t.precision ?? 'f32';
  if (requested === 'mixed' && !rt.hasF16) {
    const d = rt.gpu.info.description || rt.gpu.info.vendor || 'this adapter';
    // The adapter may have it and the device not: withheld on purpose (GpuDeviceOptions.withoutFeatures).
    const why = rt.gpu.adapter.features.has('shader-f16') ? `the device was created without ${d}'s shader-f16 feature (withheld on request, e.g. BASIN_DISABLE_FEATURES)` : `${d} has no shader-f16 feature`;
    return { requested, used: 'f32', reason: `${why}, so this run trains in f32` };
  }
  return { requested, used: requested };
}

/** A run's mixed precision: the f16 weight copies on the Linear layers and the loss scaler. */
export class MixedPrecision {
  private constructor(
    readonly rt: Runtime,
    private readonly store: ParameterStore,
    private readonly optimizer: Optimizer,
    private readonly layers: Linear[],
    readonly scaler: LossScaler,
  ) {}

  /**
   * Give every Linear layer whose weight fits one binding an f16 copy of its weight (cast now) and make the loss
   * scaler. The optimizer must compute gradient norms (its non-finite guard is what skips an overflowed step).
   */
  static attach(rt: Runtime, model: Model, store: ParameterStore, optimizer: Optimizer, t: Pick<TrainSectionConfig, 'lossScale'>): MixedPrecision {
    if (!rt.hasF16) throw new Error('mixed precision needs the shader-f16 feature (planPrecision() says when to fall back to f32)');
    if (!optimizer.gradNorms) throw new Error(`mixed precision: optimizer ${optimizer.name} computes no gradient norms, so it cannot skip an overflowed step`);
    const scaler = new LossScaler(rt, t.lossScale ?? {});
    const layers: Linear[] = [];
    for (const m of model.modules()) {
      if (!(m instanceof Linear) || m.half) continue;
      const w = m.weight.t;
      if (w.size * 4 > rt.maxBindingBytes) continue;
      m.half = keep(empty(rt, w.shape, 'f16'));
      layers.push(m);
    }
    const mp = new MixedPrecision(rt, store, optimizer, layers, scaler);
    mp.refreshHalfWeights();
    return mp;
  }

  get halfLayers(): number {
    return this.layers.length;
  }

  /** The gradient seed of the step's backward: S. */
  seed(loss: Tensor): Tensor {
    return this.scaler.seed(loss);
  }

  /** After backward, before anything reads the gradients (EWC's term, clipping, the step): grads /= S. */
  unscale(): void {
    this.scaler.unscale(this.store);
  }

  /** After optimizer.step(): update S from the step's gradient norms, then refresh the f16 weight copies. */
  afterStep(step: number): void {
    this.scaler.update(this.optimizer.gradNorms!, step);
    this.refreshHalfWeights();
  }

  /** One cast per weight: the copies the next forward reads. */
  refreshHalfWeights(): void {
    for (const l of this.layers) castF16Into(l.half!, l.weight.t);
  }

  readAsync(): Promise<LossScaleState> {
    return this.scaler.readAsync();
  }

  /** Metrics-row fields of a logging step. */
  static metrics(s: LossScaleState): { lossScale: number; skippedSteps: number } {
    return { lossScale: s.scale, skippedSteps: s.skipped };
  }

  /** Before a checkpoint's weights are written: the scaler's state beside them. */
  async save(runDir: string, weightsRel: string): Promise<void> {
    await writeLossScaleState(path.join(runDir, lossScalePath(weightsRel)), await this.scaler.readAsync());
  }

  /** Resume: the state saved with the checkpoint (a checkpoint of an f32 run has none: the initial scale stays). */
  async restore(runDir: string, weightsRel: string): Promise<LossScaleState | null> {
    const s = await readLossScaleState(path.join(runDir, lossScalePath(weightsRel)));
    if (s) this.scaler.load(s);
    return s;
  }

  destroy(): void {
    for (const l of this.layers) {
      l.half?.dispose();
      l.half = null;
    }
    this.scaler.destroy();
  }
}

/**
 * The trainer's start of a run's precision: plans it, records the plan in run.json (`device.precision`, beside
 * the adapter it was decided on), attaches mixed precision when it is used, and on resume restores the loss
 * scale saved with the checkpoint (`resumeWeights`: its weights file, run-relative).
 */
export async function startPrecision(o: {
  rt: Runtime;
  train: Pick<TrainSectionConfig, 'precision' | 'lossScale'>;
  model: Model;
  store: ParameterStore;
  optimizer: Optimizer;
  run: { dir: string; record: { device: object | null }; update(patch: { device: object }): Promise<void> };
  resumeWeights: string | null;
}): Promise<{ report: PrecisionReport; mixed: MixedPrecision | null }> {
  const report = planPrecision(o.rt, o.train);
  const mixed = report.used === 'mixed' ? MixedPrecision.attach(o.rt, o.model, o.store, o.optimizer, o.train) : null;
  if (mixed) {
    report.halfLayers = mixed.halfLayers;
    const restored = o.resumeWeights ? await mixed.restore(o.run.dir, o.resumeWeights) : null;
    report.lossScale = restored?.scale ?? mixed.scaler.opts.initial;
  }
  await o.run.update({ device: { ...(o.run.record.device ?? {}), precision: report } });
  return { report, mixed };
}

/** One line for the log: what the run computes in, and why when it is not what the config asked. */
export function describePrecision(r: PrecisionReport): string {
  if (r.reason) return `precision ${r.used} (train.precision is ${r.requested}: ${r.reason})`;
  if (r.used === 'f32') return 'precision f32';
  return `precision mixed: f16 products in ${r.halfLayers} Linear layers with f32 sums, f32 master weights, loss scale ${r.lossScale}`;
}

/** The trainer's NonFiniteError subject when the scale fell below its minimum. */
export function scaleStopSubject(s: LossScaleState, minScale: number): string {
  return `the gradient (mixed precision: the loss scale fell to ${s.scale}, below lossScale.minScale ${minScale}, after ${s.skipped} skipped steps)`;
}
