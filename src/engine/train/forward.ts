// One batch through a model and its loss: the model body gives hidden states, the registered loss owns the
// output layer (src/engine/loss/). Shared by the trainer, evaluation and the benchmarks.
import type { Runtime } from '../gpu/runtime';
import { crossEntropyLoss } from '../loss/cross-entropy';
import type { LossFn, LossOutput } from '../loss/loss';
import type { Model } from '../nn/models';
import { fromArray, type Tensor } from '../tensor/tensor';
import type { Batch } from './data-source';

/** The model input of a batch on the GPU: features [rows, features] or token ids [batch, seqLen]. */
export function batchInputs(rt: Runtime, batch: Batch): Tensor {
  return batch.features
    ? fromArray(rt, batch.features, [batch.rows, batch.features.length / batch.rows])
    : fromArray(rt, batch.inputs!, [batch.rows / batch.seqLen!, batch.seqLen!], 'i32');
}

/** The loss (and, when the loss formed them, the logits) of a batch; records autograd when parameters require grad. */
export function forwardBatch(rt: Runtime, model: Model, batch: Batch, opts: { training?: boolean; loss?: LossFn } = {}): LossOutput {
  const inputs = batchInputs(rt, batch);
  const targets = fromArray(rt, batch.targets, [batch.targets.length], 'i32');
  const hidden = model.hidden(inputs);
  const loss = opts.loss ?? crossEntropyLoss;
  return loss(hidden, model.head, { targets }, { training: opts.training ?? false });
}
