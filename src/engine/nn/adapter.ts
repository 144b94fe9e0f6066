// A bottleneck adapter (Houlsby et al. 2019, arXiv 1902.00751): y = h + up(act(down(h))) on a sublayer's output h
// [..., d], with down: d → size and up: size → d. `up` starts at zero (weight and bias), so a fresh adapter is the
// identity, bit for bit: h + 0. Transformer blocks carry one after attention and one after the MLP, named
// `adapter_attn` / `adapter_mlp` (src/engine/train/adapters.ts attaches them and says what trains).
import { add } from '../ops/elementwise';
import type { Tensor } from '../tensor/tensor';
import { constant } from './init';
import { Activation, Linear } from './layers';
import { Module } from './module';

/** Where a block applies an adapter: on the attention sublayer's output, on the MLP's. */
export type AdapterSite = 'attn' | 'mlp';
export const ADAPTER_SITES: readonly AdapterSite[] = ['attn', 'mlp'];

export class Adapter extends Module {
  readonly down: Linear;
  readonly up: Linear;

  /** `initStd`: standard deviation of down's initial weights (its bias, and all of up, start at zero). */
  constructor(readonly dim: number, readonly size: number, readonly act: Activation, initStd: number, rand: () => number) {
    super();
    this.down = this.child('down', new Linear(dim, size, rand, { std: initStd }));
    this.up = this.child('up', new Linear(size, dim, rand, { std: 0 }));
    // Exact zeros (normal(·, 0) can give −0): the adapter adds +0 to every element until `up` trains.
    this.up.weight.decl.init.set(constant(dim * size, 0));
  }

  /** h [..., dim] → h + up(act(down(h))); down's bias and activation are one fused kernel. */
  forward(h: Tensor): Tensor {
    return add(h, this.up.forward(this.down.forwardAct(h, this.act)));
  }
}

/** A block's adapters by site; null where it has none (the plain block). */
export type AdapterSlots = Record<AdapterSite, Adapter | null>;

/** A block that can take adapters: the demo transformer's and SASRec's. */
export interface AdaptableBlock extends Module {
  /** Width of the residual stream the adapters read and write. */
  readonly dim: number;
  readonly adapters: AdapterSlots;
  /** Registers `a` as this block's child `adapter_<site>` (before the model is bound to a parameter store). */
  addAdapter(site: AdapterSite, a: Adapter): void;
}

export function isAdaptableBlock(m: Module): m is AdaptableBlock {
  const b = m as Module & Partial<AdaptableBlock>;
  return typeof b.addAdapter === 'function' && b.adapters !== undefined && typeof b.dim === 'number';
}
