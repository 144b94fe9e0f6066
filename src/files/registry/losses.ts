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

// Recommender losses (src/engine/loss/cce.ts, sampled.ts): they read the head's table [items, hidden] (a shared
// item table in SASRec-like models) and never form the [rows, items] logits. The sampled ones draw their own
// negatives on the GPU when the batch brings none (uniform over items 1..V−1 without the target, item 0 being
// padding; or by popularity, which needs the items' weights: setItemPopularity in src/engine/loss/sampled.ts).
const negativesParam = (dflt: number) =>
  ({ type: 'integer', default: dflt, minimum: 1, maximum: 65536, doc: 'Sampled negatives per row (K); a negative equal to the row\'s target is masked.' }) as const;
const samplerParam = {
  type: 'string',
  enum: ['uniform', 'popularity'],
  default: 'uniform',
  doc: 'How negatives are drawn: `uniform` over items 1..V−1 without the target, or `popularity` (alias table over the items\' weights).',
} as const;
const seedParam = { type: 'integer', default: 0, minimum: 0, maximum: 4294967295, doc: 'Seed of the negative sampler; draws are a function of (seed, step).' } as const;

export const cce = defineEntry({
  kind: 'loss',
  name: 'cce',
  title: 'Cut Cross-Entropy: full softmax cross-entropy over every item, computed tile by tile without the logits.',
  doc: 'Equal to `cross-entropy` (loss and gradients) with O(rows + items·hidden) memory instead of rows × items logits.',
  source: 'arXiv 2411.09009 (Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models)',
  params: {
    gradFilter: {
      type: 'number',
      default: 0,
      minimum: 0,
      maximum: 0.5,
      doc: 'Backward skips item tiles whose probabilities are all below this (2^-12 = 0.000244 in the paper); 0 = off, exact gradients.',
    },
  },
});

export const cceMinus = defineEntry({
  kind: 'loss',
  name: 'cce-minus',
  title: 'CCE−: softmax over the positive and K sampled negatives, negatives corrected by log(V−1) − log(1+K).',
  source: 'arXiv 2509.09682 (CCE with negative sampling; code On-Point-RND/MemoryEfficientSRS)',
  params: { negatives: negativesParam(256), sampler: samplerParam, seed: seedParam },
});

export const sampledSoftmax = defineEntry({
  kind: 'loss',
  name: 'sampled-softmax',
  title: 'Sampled softmax cross-entropy: the positive and K sampled negatives, optionally logQ-corrected.',
  source: 'Jean et al. 2015; Yi et al. 2019 (logQ correction)',
  params: {
    negatives: negativesParam(256),
    sampler: samplerParam,
    logQ: { type: 'boolean', default: true, doc: 'Subtract log Q(item), the sampler\'s probability of drawing the item, from each negative\'s logit.' },
    seed: seedParam,
  },
});

export const bce = defineEntry({
  kind: 'loss',
  name: 'bce',
  title: 'Binary cross-entropy: a sigmoid on the positive and on each of K sampled negatives (original SASRec).',
  source: 'Kang & McAuley 2018 (SASRec)',
  params: { negatives: negativesParam(1), sampler: samplerParam, seed: seedParam },
});

export const gbce = defineEntry({
  kind: 'loss',
  name: 'gbce',
  title: 'gBCE: BCE with the positive\'s sigmoid raised to β = α(t(1 − 1/α) + 1/α), α = K/(V−1) (gSASRec).',
  source: 'arXiv 2308.07192 (gSASRec)',
  params: {
    negatives: negativesParam(256),
    t: { type: 'number', default: 0.75, minimum: 0, maximum: 1, doc: 'Calibration t: 0 = plain BCE, 1 = fully calibrated; the paper recommends 0.75.' },
    sampler: samplerParam,
    seed: seedParam,
  },
});

export const LOSS_ENTRIES = [crossEntropy, cce, cceMinus, sampledSoftmax, bce, gbce] as const;
export const lossRegistry = new Registry('loss', LOSS_ENTRIES);
export type LossConfig = ConfigUnion<typeof LOSS_ENTRIES>;
export type LossName = LossConfig['type'];
