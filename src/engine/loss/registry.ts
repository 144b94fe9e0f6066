// Loss factories by config name (`train.loss.type`); the entries are in src/files/registry/losses.ts.
import { lossRegistry, type LossConfig } from '../../files/registry/losses';
import { crossEntropyLoss } from './cross-entropy';
import { cceLoss } from './cce';
import { bceLoss, cceMinusLoss, gbceLoss, sampledSoftmaxLoss } from './sampled';
import type { LossFn } from './loss';

type Factories = { [N in LossConfig['type']]: (cfg: Extract<LossConfig, { type: N }>) => LossFn };

const FACTORIES: Factories = {
  'cross-entropy': () => crossEntropyLoss,
  cce: (c) => cceLoss({ gradFilter: c.gradFilter }),
  'cce-minus': (c) => cceMinusLoss(c),
  'sampled-softmax': (c) => sampledSoftmaxLoss(c),
  bce: (c) => bceLoss(c),
  gbce: (c) => gbceLoss(c),
};

export function makeLoss(cfg: LossConfig): LossFn {
  lossRegistry.get(cfg.type);
  return (FACTORIES[cfg.type] as (c: LossConfig) => LossFn)(cfg);
}
