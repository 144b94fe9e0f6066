// SGD with momentum, Nesterov momentum and (L2, coupled) weight decay, as torch.optim.SGD defines them, over the
// flat layout: one kernel per step, per-tensor decay/frozen flags, optional clipping and the non-finite guard.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { FlatOptimizer, FlatOptimizerOptions, OPTIM_OVERRIDES, type OptimizerStatistics } from './optimizer';
import { FlatBuffer, FlatChunk, ParameterStore } from './params';

const SGD_SPEC: KernelSpec = { file: 'optim', entry: 'sgd', bindings: ['rw', 'read', 'rw', 'read', 'read', 'read'], overrides: OPTIM_OVERRIDES };

export interface SGDOptions extends FlatOptimizerOptions {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends FlatOptimizer {
  readonly name = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  /** The momentum buffer (null without momentum: plain SGD keeps no state). */
  readonly buf: FlatBuffer | null;
  // Stands in for the momentum binding when there is none; the kernel never touches it then.
  private placeholder: GPUBuffer | null = null;

  constructor(store: ParameterStore, opts: SGDOptions = {}) {
    super(store, opts);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = opts.weightDecay ?? 0;
    if (!(this.momentum >= 0 && this.momentum < 1)) throw new Error(`SGD: momentum must be in [0, 1), got ${this.momentum}`);
    if (!(this.dampening >= 0 && this.dampening <= 1)) throw new Error(`SGD: dampening must be in [0, 1], got ${this.dampening}`);
    if (!(this.weightDecay >= 0)) throw new Error(`SGD: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    if (this.nesterov && (this.momentum === 0 || this.dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
    if (this.momentum > 0) this.buf = store.allocLike('momentum');
    else {
      this.buf = null;
      this.placeholder = store.runtime.device.createBuffer({ size: 256, usage: 0x80 | 0x08, label: 'sgd-no-momentum' });
    }
  }

  protected kernel(): KernelSpec {
    return SGD_SPEC;
  }

  protected stateBindings(c: FlatChunk): BufferBinding[] {
    return [this.buf ? this.buf.chunkBinding(c) : { buffer: this.placeholder!, offset: 0, size: 256 }];
  }

  protected hyper(t: number, lr: number): { values: number[]; format: string } {
    return { values: [lr, this.momentum, this.dampening, this.weightDecay, this.nesterov ? 1 : 0, t === 1 ? 1 : 0], format: 'ffffuu' };
  }

  state(): Record<string, FlatBuffer> {
    return this.buf ? { momentum: this.buf } : {};
  }

  statistics(): OptimizerStatistics {
    return { momentum: this.buf ? { state: 'momentum' } : null, secondMoment: null };
  }

  override destroy(): void {
    if (this.destroyed) return;
    super.destroy(); // flushes recorded work before destroying
    this.placeholder?.destroy();
  }
}
