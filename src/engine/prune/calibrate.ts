// The calibration pass of Wanda and SparseGPT: `batches` training batches through the model (no gradient), with
// an observer on each targeted Linear that accumulates, on the GPU, what the score needs from the layer's input
// X [rows, in]: the column sums of squares Σ_r x_rj² (Wanda: ‖X_j‖₂²) and/or the Gram matrix XᵀX (SparseGPT's
// Hessian, one matmul per batch). Training batches, not validation ones: the sweep's metrics stay held out.
// All layers see the DENSE model's inputs (one pass for every layer, as Wanda does; SparseGPT's reference feeds
// each layer the already-pruned previous layers' outputs — a refinement this single pass leaves out).
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

export async function calibrate(pm: PruneModel, opts: { batches: number; colSq?: boolean; gram?: boolean; signal?: AbortSignal }): Promise<Calibration> {
  const rt = pm.rt;
  const missing = pm.targets.filter((t) => !t.layer).map((t) => t.name);
  if (missing.length) throw new CalibrationDataError(`the calibration pass observes Linear layers' inputs; ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a Linear layer's weight`);
  const data = await pm.data();
  const rows = pm.targets.map(() => 0);
  const colSq = pm.targets.map((t) => (opts.colSq ? keep(zeros(rt, [t.cols])) : null));
  const gram = pm.targets.map((t) => (opts.gram ? keep(zeros(rt, [t.cols, t.cols])) : null));
  const index = new Map(pm.targets.map((t, i) => [t.layer!, i]));
  for (const [layer, i] of index) {
    layer.observer = (x) => {
      const t = pm.targets[i];
      const x2 = x.reshape([x.size / t.cols, t.cols]);
      rows[i] += x2.shape[0];
      if (colSq[i]) accumulateColSqSum(x2, colSq[i]!);
      if (gram[i]) axpbyInPlace(gram[i]!, matmul(x2, x2, { transA: true }), 1, 1);
    };
  }
  pm.model.eval();
  try {
    const total = Math.min(opts.batches, Math.max(1, data.totalSteps));
    for (let s = 1; s <= total; s++) {
      if (opts.signal?.aborted) throw Object.assign(new Error('the calibration pass was cancelled'), { name: 'AbortError' });
      const batch = data.trainBatch(s);
      // Through the head too, so a target that is the output layer is observed as well.
      noGrad(() => tidy(() => void pm.model.head.logits(pm.model.hidden(batchInputs(rt, batch)))));
      // One batch in flight at a time keeps the pool's memory flat.
      await rt.sync();
    }
  } finally {
    for (const layer of index.keys()) layer.observer = null;
    pm.model.train();
  }
  const unseen = pm.targets.filter((_, i) => rows[i] === 0).map((t) => t.name);
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
