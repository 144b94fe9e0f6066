// The loss interface: a loss owns the output layer. It takes the model's hidden states, the output head (weight
// table [classes, hidden] + bias) and the batch, and returns a scalar loss tensor (recorded on the autograd tape).
// Cross-entropy forms the full logits through the head; recommender losses (sampled softmax, CCE, CCE−) read the
// head's table in blocks and never write the [rows, classes] logits.
import type { OutputHead } from '../nn/models';
import type { Tensor } from '../tensor/tensor';

export interface LossBatch {
  /** i32 [rows]: the class (item) of each row; −1 = ignored (padding). */
  targets: Tensor;
  /** i32 [rows, k]: sampled negative classes per row (losses that need them). */
  negatives?: Tensor;
  /** i32 [rows]: the user of each row (per-user losses and metrics). */
  users?: Tensor;
}

export interface LossOptions {
  /** A training step: the loss may reuse buffers that backward no longer needs (e.g. overwrite the logits). */
  training: boolean;
}

export interface LossOutput {
  /** Scalar loss (shape []), mean over the rows that are not ignored. */
  loss: Tensor;
  /** The full logits when the loss formed them anyway (evaluation reuses them; garbage after a training backward). */
  logits?: Tensor;
}

export type LossFn = (hidden: Tensor, head: OutputHead, batch: LossBatch, opts: LossOptions) => LossOutput;
