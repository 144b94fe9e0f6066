// Training losses a config can name (`train.loss.type`): metadata only. A loss owns the output layer: it gets the
// model's hidden states, the output head (its weight table [classes, hidden] and bias) and the batch (targets,
// and for recommender losses negatives and user ids), so a loss that never forms the full logits can be
// registered beside the one that does. Factories: src/engine/loss/registry.ts.
import { ConfigUnion, defineEntry, Registry } from './entry';

export const crossEntropy = defineEntry({
  kind: 'loss',
  name: 'cross-entropy',
  title: 'Softmax cross-entropy over every class (the full logits), padding targets ignored.',
  source: 'PyTorch torch.nn.functional.cross_entropy (mean over non-ignored rows)',
  params: {},
});

export const LOSS_ENTRIES = [crossEntropy] as const;
export const lossRegistry = new Registry('loss', LOSS_ENTRIES);
export type LossConfig = ConfigUnion<typeof LOSS_ENTRIES>;
export type LossName = LossConfig['type'];
