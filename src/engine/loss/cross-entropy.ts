// Cross-entropy over every class: the head's full logits, then the fused cross-entropy kernel (ops/loss.ts,
// kernels/cross_entropy.wgsl). Phase 1's training loss, unchanged in its numbers. When a batch's logits exceed one
// storage binding they are formed in pieces of rows (crossEntropyOverHead: the same loss, the same memory — every
// logit is kept for the backward — but no single binding holds them all).
import { crossEntropy, crossEntropyOverHead } from '../ops/loss';
import type { LossFn } from './loss';

export const crossEntropyLoss: LossFn = (hidden, head, batch, opts) => {
  const rows = hidden.shape[0];
  const classes = head.weight.shape[0];
  if (hidden.rank === 2 && rows * classes * 4 > hidden.rt.maxBindingBytes) {
    return { loss: crossEntropyOverHead(hidden, head.weight, head.bias, batch.targets, { ignoreIndex: -1 }) };
  }
  const logits = head.logits(hidden);
  // A training step never reads the logits after backward, so the loss's backward may overwrite them.
  const loss = crossEntropy(logits, batch.targets, { ignoreIndex: -1, overwriteLogits: opts.training });
  return { loss, logits };
};
