// The optimizer interface and the shared machinery of flat optimizers. An optimizer is an object over a
// ParameterStore: step(lr) records GPU work and returns at once (the learning-rate schedule lives on the host).
// It DECLARES its state: every state tensor with its shape (stateTensors(): the checkpoint writes and checks
// `<state>.<param>` from it), and which state is what for the statistics (statistics(): the momentum, the second
// moment dense or factored into row/column vectors). Dense states are flat buffers with the store's layout
// (state(): AdamW's m and v, SGD's momentum), so one layer's slice is a view; factored states (Adafactor's vr/vc)
// are read with readState(). Optimizers are made by name through ./registry.ts.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { GradNorms } from './clip';
import { FLAT_BLOCK, FlatBuffer, FlatChunk, ParameterStore } from './params';

/** What a checkpoint holds of an optimizer: its step count and each state buffer, by parameter name. */
export interface OptimizerSnapshot {
  optimizer: string;
  step: number;
  /** State name (m, v, momentum, …) → parameter name → values. */
  buffers: Record<string, Map<string, Float32Array>>;
}

/** State to resume from: per state name, a map by parameter name or a whole flat array (store.totalElements). */
export interface OptimizerStateInput {
  step: number;
  buffers: Record<string, ReadonlyMap<string, Float32Array> | Float32Array>;
}

/** One state tensor as a checkpoint stores it (`<state>.<param>`, this shape). */
export interface StateTensorInfo {
  state: string;
  param: string;
  shape: number[];
  /** How it is held and checkpointed (default F32; mao's error-feedback residual is BF16). */
  dtype?: 'F32' | 'BF16';
}

/** Bytes per element of a state tensor's dtype. */
export function stateElementBytes(d: StateTensorInfo): number {
  return d.dtype === 'BF16' ? 2 : 4;
}

/** Which optimizer state the statistics pass reads as what (no `instanceof`, no fixed names). */
export interface OptimizerStatistics {
  /**
   * A dense first moment with the store's layout (a key of state()), or a LOW-RANK one (mao): per factored tensor
   * U [rows, r], an r×r core S and V [cols, r] with momentum ≈ U·S·Vᵀ, and a dense state for the other tensors, all
   * read with readState(). Null when the optimizer keeps none.
   */
  momentum: { state: string } | { layout: 'lowrank'; u: string; s: string; v: string; dense: string } | null;
  /**
   * The second moment (curvature proxy): dense with the store's layout (a key of state()), or factored — per
   * tensor of rank ≥ 2 a row vector [rows] and a column vector [cols] of g² means with V̂ = R·Cᵀ / mean(R), and a
   * dense state for the vectors — read with readState(). Null when the optimizer keeps none (SGD).
   */
  secondMoment: { layout: 'dense'; state: string } | { layout: 'factored'; row: string; col: string; dense: string } | null;
}

export interface Optimizer {
  readonly name: string;
  /** Steps taken (calls to step(), skipped non-finite steps included: the host cannot know without a readback). */
  readonly stepCount: number;
  /** The gradient norms the last step() computed (clipping, non-finite guard); read them with readAsync(). */
  readonly gradNorms?: GradNorms;
  /** Record one update of every non-frozen parameter from the gradients in store.grads. */
  step(lr: number): void;
  /** The dense state buffers by name (flat, the store's layout), for the statistics pass and sliceOf. */
  state(): Record<string, FlatBuffer>;
  /** Every state tensor with its shape: what a checkpoint holds, and what loading one checks. */
  stateTensors(): StateTensorInfo[];
  /** Bytes of optimizer state in total (what stateTensors() declares, on the GPU); absent: unknown. */
  readonly stateBytes?: number;
  statistics(): OptimizerStatistics;
  /** mao: per tensor name, the fraction in [0, 1] of the momentum's energy ‖·‖²_F its rank-r factors hold after the last step (dense-momentum tensors absent). Records its reads when called. */
  capturedEnergy?(): Promise<Map<string, number>>;
  /** One state read back, by parameter name (any state, dense or factored). */
  readState(state: string): Promise<Map<string, Float32Array>>;
  /** Read the state back (checkpoint). */
  snapshot(): Promise<OptimizerSnapshot>;
  /** Restore a snapshot (resume); the next step() is step number `step + 1`. */
  loadState(input: OptimizerStateInput): void;
  destroy(): void;
}

export interface FlatOptimizerOptions {
  /** Clip the global gradient norm to this value (0 or undefined: no clipping). */
  maxGradNorm?: number;
  /** Skip the whole update when any non-frozen gradient is NaN or ±Inf (default true). */
  skipNonFinite?: boolean;
  /** Share a GradNorms (e.g. the trainer's) instead of making one. */
  gradNorms?: GradNorms;
}

// mode bits of kernels/optim.wgsl
const USE_SKIP = 1;
const USE_CLIP = 2;

/**
 * Base of optimizers whose update is one elementwise kernel over the flat layout. A subclass names its kernel,
 * its state buffers (bound after params and grads, in order) and its hyperparameter uniforms.
 */
export abstract class FlatOptimizer implements Optimizer {
  abstract readonly name: string;
  /** Grad norms of the last step (when clipping or the guard is on): readAsync() whenever convenient. */
  readonly gradNorms: GradNorms;
  readonly maxGradNorm: number;
  readonly skipNonFinite: boolean;
  private steps = 0;
  private ownsNorms: boolean;
  protected destroyed = false;

  constructor(readonly store: ParameterStore, opts: FlatOptimizerOptions) {
    if (!store.isMaterialized) throw new Error('materialize the parameter store before making an optimizer');
    const maxNorm = opts.maxGradNorm ?? 0;
    if (!(maxNorm >= 0) || !Number.isFinite(maxNorm)) throw new Error(`maxGradNorm must be a finite number ≥ 0, got ${maxNorm}`);
    this.maxGradNorm = maxNorm;
    this.skipNonFinite = opts.skipNonFinite ?? true;
    if (opts.gradNorms && opts.gradNorms.store !== store) throw new Error('gradNorms belongs to another parameter store');
    this.ownsNorms = !opts.gradNorms;
    this.gradNorms = opts.gradNorms ?? new GradNorms(store);
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Bytes of optimizer state: one f32 per parameter per state buffer (AdamW: 8 per parameter, SGD: 4 or 0). */
  get stateBytes(): number {
    return Object.keys(this.state()).length * this.store.parameterCount * 4;
  }

  /** Whether step() computes gradient norms first (clipping or the non-finite guard is on). */
  get usesNorms(): boolean {
    return this.maxGradNorm > 0 || this.skipNonFinite;
  }

  protected abstract kernel(): KernelSpec;
  /** State buffers bound after params and grads, in binding order. */
  protected abstract stateBindings(chunk: FlatChunk): BufferBinding[];
  /** Uniform values after the common prefix (and their format letters), for step number t. */
  protected abstract hyper(t: number, lr: number): { values: number[]; format: string };

  step(lr: number): void {
    if (this.destroyed) throw new Error(`${this.name}: step() after destroy()`);
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`${this.name}: learning rate must be a finite number ≥ 0, got ${lr}`);
    const t = ++this.steps;
    const s = this.store;
    const rt = s.runtime;
    const mode = (this.skipNonFinite ? USE_SKIP : 0) | (this.maxGradNorm > 0 ? USE_CLIP : 0);
    if (mode) this.gradNorms.compute(t);
    const h = this.hyper(t, lr);
    const spec = this.kernel();
    const n = s.entries.length;
    for (const c of s.chunks) {
      rt.dispatch(
        spec,
        [s.params.chunkBinding(c), s.grads.chunkBinding(c), ...this.stateBindings(c), s.segments, s.blocks, this.gradNorms.binding()],
        { values: [c.blockBase, c.numBlocks, c.elemBase, n, mode, this.maxGradNorm, ...h.values], format: 'uuuuuf' + h.format },
        c.numBlocks,
      );
    }
  }

  abstract state(): Record<string, FlatBuffer>;
  abstract statistics(): OptimizerStatistics;

  stateTensors(): StateTensorInfo[] {
    const out: StateTensorInfo[] = [];
    for (const state of Object.keys(this.state())) for (const e of this.store.entries) out.push({ state, param: e.name, shape: [...e.shape] });
    return out;
  }

  async readState(state: string): Promise<Map<string, Float32Array>> {
    const b = this.state()[state];
    if (!b) throw new Error(`${this.name}: no state named '${state}' (${Object.keys(this.state()).join(', ') || 'it keeps none'})`);
    return b.readAll();
  }

  async snapshot(): Promise<OptimizerSnapshot> {
    const buffers: Record<string, Map<string, Float32Array>> = {};
    for (const [k, b] of Object.entries(this.state())) buffers[k] = await b.readAll();
    return { optimizer: this.name, step: this.steps, buffers };
  }

  loadState(input: OptimizerStateInput): void {
    if (!Number.isInteger(input.step) || input.step < 0) throw new Error(`${this.name}: bad step count ${input.step}`);
    const st = this.state();
    const want = Object.keys(st).sort().join(', ');
    const got = Object.keys(input.buffers).sort().join(', ');
    if (want !== got) throw new Error(`${this.name}: state has buffers [${want}], the snapshot has [${got}]`);
    for (const [k, b] of Object.entries(st)) b.loadAll(input.buffers[k]);
    this.steps = input.step;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of Object.values(this.state())) b.destroy();
    if (this.ownsNorms) this.gradNorms.destroy();
  }
}

export const OPTIM_OVERRIDES = { WG: 256, BLOCK: FLAT_BLOCK } as const;
