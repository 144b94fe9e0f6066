// Validation metrics: mean cross-entropy, top-1 accuracy and HR@10 (target among the 10 highest logits) over the
// rows whose target is not ignored.
import type { Runtime } from '../gpu/runtime';
import type { LossFn } from '../loss/loss';
import type { Model } from '../nn/models';
import { noGrad, tidy } from '../tensor/tensor';
import type { TrainingData } from './data-source';
import { batchInputs, forwardBatch } from './forward';

export interface EvalMetrics {
  loss: number;
  accuracy: number;
  hr10: number;
}

/** What guessing uniformly at random would score. */
export function chanceMetrics(classes: number): EvalMetrics {
  return { loss: Math.log(classes), accuracy: 1 / classes, hr10: Math.min(1, 10 / classes) };
}

/** Rank-based metrics of one row: how many logits beat the target's. */
export function rankOfTarget(logits: Float32Array, row: number, classes: number, target: number): number {
  const base = row * classes;
  const t = logits[base + target];
  let rank = 0;
  for (let j = 0; j < classes; j++) if (logits[base + j] > t) rank++;
  return rank;
}

/** Validation metrics of a model; the loss is the run's registered loss (default cross-entropy), ranks from the full logits. */
export async function evaluate(rt: Runtime, model: Model, data: TrainingData, loss?: LossFn): Promise<EvalMetrics> {
  model.eval();
  let lossSum = 0;
  let rows = 0;
  let hits1 = 0;
  let hits10 = 0;
  try {
    for (const batch of data.validBatches()) {
      const reads = noGrad(() =>
        tidy(() => {
          const out = forwardBatch(rt, model, batch, { loss });
          // A loss that never forms the full logits (sampled, CCE) leaves them to the head here.
          const logits = out.logits ?? model.head.logits(model.hidden(batchInputs(rt, batch)));
          return { loss: out.loss.toArray(), logits: logits.toArray() };
        }),
      );
      const [lossArr, logits] = await Promise.all([reads.loss, reads.logits]);
      const C = model.classes;
      let counted = 0;
      for (let r = 0; r < batch.targets.length; r++) {
        const y = batch.targets[r];
        if (y < 0) continue;
        counted++;
        const rank = rankOfTarget(logits as Float32Array, r, C, y);
        if (rank === 0) hits1++;
        if (rank < 10) hits10++;
      }
      lossSum += lossArr[0] * counted;
      rows += counted;
    }
  } finally {
    model.train();
  }
  if (rows === 0) return { loss: NaN, accuracy: NaN, hr10: NaN };
  return { loss: lossSum / rows, accuracy: hits1 / rows, hr10: hits10 / rows };
}
