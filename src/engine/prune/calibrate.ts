// The calibration pass of Wanda and SparseGPT: `batches` training batches through the model (no gradient), with
// an observer on each targeted Linear that accumulates, on the GPU, what the score needs from the layer's input
// X [rows, in]: the column sums of squares Σ_r x_rj² (Wanda: ‖X_j‖₂²) and/or the Gram matrix XᵀX (SparseGPT's
// Hessian, one matmul per batch). Training batches, not validation ones: the sweep's metrics stay held out.
// By default every target is observed in one pass over the model as its live weights are (the DENSE model for
// Wanda and for SparseGPT's one-pass mode). SparseGPT's sequential mode (src/engine/prune/sparsegpt.ts) observes
// one stage at a time (`only`: the targets that read the same input) with the earlier stages already pruned in
// the live weights, and stops each forward once that stage has seen its input (`stopEarly`): the rest of the
// model would compute nothing it reads.
import { matmul } from '../ops/matmul';
import { axpbyInPlace, zeros } from '../ops/basic';
import { Tensor, keep, noGrad, tidy } from '../tensor/tensor';
import { batchInputs } from '../train/forward';
import { accumulateColSqSum } from './kernels';
import type { PruneModel } from './session';

export interface Calibration {
  /** Rows (input vectors) seen per target. */
  rows: number[];
  /** Per target: Σ_r x_rj² [in], or null when not asked for. */
  colSq: (Tensor | null)[];
  /** Per target: XᵀX [in, in] (f32 on the GPU), or null when not asked for. */
  gram: (Tensor | null)[];
  dispose(): void;
}

export class CalibrationDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalibrationDataError';
  }
}

export interface CalibrateOptions {
  batches: number;
  colSq?: boolean;
  gram?: boolean;
  /** Observe only these targets (indices into pm.targets); the others' entries stay null / 0. Default: all. */
  only?: readonly number[];
  /** End each forward as soon as every observed target has seen its input of the batch. */
  stopEarly?: boolean;
  signal?: AbortSignal;
}

/** Thrown by an observer to end a forward whose remaining layers nobody observes; caught inside the tidy scope. */
class StopForward extends Error {}

export async function calibrate(pm: PruneModel, opts: CalibrateOptions): Promise<Calibration> {
  const rt = pm.rt;
  const observed = new Set(opts.only ?? pm.targets.map((_, i) => i));
  const missing = pm.targets.filter((t, i) => observed.has(i) && !t.layer).map((t) => t.name);
  if (missing.length) throw new CalibrationDataError(`the calibration pass observes Linear layers' inputs; ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a Linear layer's weight`);
  const data = await pm.data();
  const rows = pm.targets.map(() => 0);
  const colSq = pm.targets.map((t, i) => (opts.colSq && observed.has(i) ? keep(zeros(rt, [t.cols])) : null));
  const gram = pm.targets.map((t, i) => (opts.gram && observed.has(i) ? keep(zeros(rt, [t.cols, t.cols])) : null));
  const index = new Map([...observed].map((i) => [pm.targets[i].layer!, i]));
  let seenThisBatch = 0;
  for (const [layer, i] of index) {
    layer.observer = (x) => {
      const t = pm.targets[i];
      const x2 = x.reshape([x.size / t.cols, t.cols]);
      rows[i] += x2.shape[0];
      if (colSq[i]) accumulateColSqSum(x2, colSq[i]!);
      if (gram[i]) axpbyInPlace(gram[i]!, matmul(x2, x2, { transA: true }), 1, 1);
      if (opts.stopEarly && ++seenThisBatch === index.size) throw new StopForward();
    };
  }
  pm.model.eval();
  try {
    const total = Math.min(opts.batches, Math.max(1, data.totalSteps));
    for (let s = 1; s <= total; s++) {
      if (opts.signal?.aborted) throw Object.assign(new Error('the calibration pass was cancelled'), { name: 'AbortError' });
      const batch = data.trainBatch(s);
      seenThisBatch = 0;
      // Through the head too, so a target that is the output layer is observed as well. A StopForward is caught
      // inside tidy so the scope's tensors are still freed.
      noGrad(() =>
        tidy(() => {
          try {
            void pm.model.head.logits(pm.model.hidden(batchInputs(rt, batch)));
          } catch (e) {
            if (!(e instanceof StopForward)) throw e;
          }
        }),
      );
      // One batch in flight at a time keeps the pool's memory flat.
      await rt.sync();
    }
  } finally {
    for (const layer of index.keys()) layer.observer = null;
    pm.model.train();
  }
  const unseen = pm.targets.filter((_, i) => observed.has(i) && rows[i] === 0).map((t) => t.name);
  if (unseen.length) throw new CalibrationDataError(`the calibration pass reached no input of ${unseen.join(', ')}`);
  return {
    rows,
    colSq,
    gram,
    dispose() {
      for (const t of [...colSq, ...gram]) t?.dispose();
    },
  };
}

/**
 * The targets grouped into stages in the order the forward reads them: targets whose layers read the same input
 * tensor (q, k, v of an attention) form one stage. A stage's inputs depend only on earlier stages, so pruning
 * stage by stage feeds each stage the outputs of the already-pruned earlier ones. One batch, no accumulation.
 */
export async function forwardStages(pm: PruneModel): Promise<number[][]> {
  const rt = pm.rt;
  const missing = pm.targets.filter((t) => !t.layer).map((t) => t.name);
  if (missing.length) throw new CalibrationDataError(`the calibration pass observes Linear layers' inputs; ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a Linear layer's weight`);
  const data = await pm.data();
  const stages: { input: Tensor; members: number[] }[] = [];
  const layers = pm.targets.map((t, i) => [t.layer!, i] as const);
  for (const [layer, i] of layers) {
    layer.observer = (x) => {
      const last = stages[stages.length - 1];
      if (last && last.input === x) last.members.push(i);
      else if (!stages.some((s) => s.members.includes(i))) stages.push({ input: x, members: [i] });
    };
  }
  pm.model.eval();
  try {
    noGrad(() => tidy(() => void pm.model.head.logits(pm.model.hidden(batchInputs(rt, data.trainBatch(1))))));
    await rt.sync();
  } finally {
    for (const [layer] of layers) layer.observer = null;
    pm.model.train();
  }
  const unseen = pm.targets.filter((_, i) => !stages.some((s) => s.members.includes(i))).map((t) => t.name);
  if (unseen.length) throw new CalibrationDataError(`the calibration pass reached no input of ${unseen.join(', ')}`);
  return stages.map((s) => s.members);
}
