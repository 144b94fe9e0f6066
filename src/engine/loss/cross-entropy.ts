// Cross-entropy over every class: the head's full logits, then the fused cross-entropy kernel (ops/loss.ts,
// kernels/cross_entropy.wgsl). Phase 1's training loss, unchanged in its numbers.
import { crossEntropy } from '../ops/loss';
import type { LossFn } from './loss';

export const crossEntropyLoss: LossFn = (hidden, head, batch, opts) => {
  const logits = head.logits(hidden);
  // A training step never reads the logits after backward, so the loss's backward may overwrite them.
  const loss = crossEntropy(logits, batch.targets, { ignoreIndex: -1, overwriteLogits: opts.training });
  return { loss, logits };
};
