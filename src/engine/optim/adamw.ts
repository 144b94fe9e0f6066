// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv 1711.05101) over the flat layout:
// one kernel per step updates every parameter, with per-tensor decay and frozen flags from the segments table,
// optional global-norm clipping and the non-finite guard (see optimizer.ts and kernels/optim.wgsl).
// Decay follows PyTorch's torch.optim.AdamW: p ← p·(1 − lr·λ) − …, i.e. λ is scaled by the scheduled lr.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { FlatOptimizer, FlatOptimizerOptions, OPTIM_OVERRIDES, type OptimizerStatistics } from './optimizer';
import { FlatBuffer, FlatChunk, ParameterStore } from './params';

const ADAMW: KernelSpec = { file: 'optim', entry: 'adamw', bindings: ['rw', 'read', 'rw', 'rw', 'read', 'read', 'read'], overrides: OPTIM_OVERRIDES };

export interface AdamWOptions extends FlatOptimizerOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW extends FlatOptimizer {
  readonly name = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** First and second moments, flat with the parameters' layout. */
  readonly m: FlatBuffer;
  readonly v: FlatBuffer;

  constructor(store: ParameterStore, opts: AdamWOptions = {}) {
    super(store, opts);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    for (const [k, x] of [['beta1', b1], ['beta2', b2]] as const) {
      if (!(x >= 0 && x < 1)) throw new Error(`AdamW: ${k} must be in [0, 1), got ${x}`);
    }
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    this.m = store.allocLike('m');
    this.v = store.allocLike('v');
  }

  protected kernel(): KernelSpec {
    return ADAMW;
  }

  protected stateBindings(c: FlatChunk): BufferBinding[] {
    return [this.m.chunkBinding(c), this.v.chunkBinding(c)];
  }

  protected hyper(t: number, lr: number): { values: number[]; format: string } {
    // Bias corrections in double precision on the host: 1 − β2ᵗ is tiny early on and loses digits in f32.
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    return { values: [lr, this.beta1, this.beta2, this.eps, this.weightDecay, lr / bc1, Math.sqrt(bc2)], format: 'fffffff' };
  }

  state(): Record<string, FlatBuffer> {
    return { m: this.m, v: this.v };
  }

  statistics(): OptimizerStatistics {
    return { momentum: { state: 'm' }, secondMoment: { layout: 'dense', state: 'v' } };
  }
}
