// Gradient norms on the GPU, for clipping and for the non-finite guard, without a readback inside the step.
// compute() records three small dispatches (kernels/gradnorm.wgsl) that leave per-tensor sums of squares and
// their total in a [numTensors + 1] f32 buffer; the optimizer kernels read the total from there. The trainer
// reads the buffer when it wants (every N steps, or lagged by a step) with readAsync(), which never stalls the
// queue: the copy is recorded in order and the promise resolves once the GPU gets there.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { FLAT_BLOCK, ParamEntry, ParameterStore } from './params';

const WG = 256;
const OVERRIDES = { WG, BLOCK: FLAT_BLOCK };
const BLOCKS: KernelSpec = { file: 'gradnorm', entry: 'sumsq_blocks', bindings: ['read', 'read', 'read', 'rw'], overrides: OVERRIDES };
const TENSORS: KernelSpec = { file: 'gradnorm', entry: 'sumsq_tensors', bindings: ['read', 'read', 'rw'], overrides: OVERRIDES };
const TOTAL: KernelSpec = { file: 'gradnorm', entry: 'sumsq_total', bindings: ['read', 'rw'], overrides: OVERRIDES };

const USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC

/** An f32 is NaN or ±Inf. */
export function isNonFinite(x: number): boolean {
  return !Number.isFinite(x);
}

/** The first (layout order) non-frozen parameter whose gradient sum of squares is NaN or ±Inf, or null. */
export function firstNonFinite(sumsq: ArrayLike<number>, entries: readonly ParamEntry[]): string | null {
  for (const e of entries) {
    if (!e.flags.frozen && isNonFinite(sumsq[e.index])) return e.name;
  }
  return null;
}

/** What readAsync() returns: gradient norms as of the last compute() recorded before the read. */
export class GradNormReport {
  constructor(
    /** Σg² per tensor, in entry order. */
    readonly sumsq: Float32Array,
    /** Σg² over the non-frozen tensors (what clipping and the guard use). */
    readonly totalSumsq: number,
    private readonly entriesRef: readonly ParamEntry[],
    /**
     * The first step (as passed to compute()) whose gradient was not finite, and its first non-finite tensor,
     * latched on the GPU at that step; null while every step so far was finite.
     */
    readonly firstNonFiniteStep: { step: number; tensor: string | null } | null = null,
  ) {}

  /** ‖g‖₂ per tensor, in entry order. */
  get norms(): Float32Array {
    return this.sumsq.map(Math.sqrt);
  }

  get total(): number {
    return Math.sqrt(this.totalSumsq);
  }

  /** False when the optimizer skipped (or would skip) this step. A finite total whose square overflowed f32 counts as non-finite. */
  get finite(): boolean {
    return Number.isFinite(this.totalSumsq);
  }

  /** Norm of one parameter's gradient by name. */
  norm(name: string): number {
    const e = this.entriesRef.find((x) => x.name === name);
    if (!e) throw new Error(`no parameter named '${name}' in this report`);
    return Math.sqrt(this.sumsq[e.index]);
  }

  firstNonFinite(entries: readonly ParamEntry[] = this.entriesRef): string | null {
    return firstNonFinite(this.sumsq, entries);
  }
}

export class GradNorms {
  /** [numTensors + 1] f32: Σg² per tensor, then the total over non-frozen tensors. */
  readonly buffer: GPUBuffer;
  private partials: GPUBuffer;
  private destroyed = false;

  constructor(readonly store: ParameterStore) {
    const rt = store.runtime;
    const n = store.entries.length;
    this.buffer = rt.device.createBuffer({ size: Math.max(16, (n + 3) * 4), usage: USAGE, label: 'grad-norms' });
    this.partials = rt.device.createBuffer({ size: Math.max(16, store.numBlocks * 4), usage: USAGE, label: 'grad-norm-partials' });
    rt.pool.trackExternal(this.buffer.size + this.partials.size);
  }

  /**
   * The buffer, for kernels that consume the norms (optimizers): [numTensors + 1] sums of squares, then the
   * non-finite latch (first bad step, its first bad tensor) as u32 bit patterns.
   */
  binding(): BufferBinding {
    return { buffer: this.buffer, offset: 0, size: (this.store.entries.length + 3) * 4 };
  }

  /**
   * Record the dispatches that fill the buffer from the current gradients. `step` (1-based, 0: none) is latched on
   * the GPU if this is the first step with a non-finite gradient (see GradNormReport.firstNonFiniteStep).
   */
  compute(step = 0): void {
    this.assertAlive();
    const s = this.store;
    const rt = s.runtime;
    const grads = s.grads;
    const partials: BufferBinding = { buffer: this.partials, offset: 0, size: this.partials.size };
    for (const c of s.chunks) {
      rt.dispatch(BLOCKS, [grads.chunkBinding(c), s.segments, s.blocks, partials], { values: [c.blockBase, c.numBlocks, c.elemBase, 0] }, c.numBlocks);
    }
    const n = s.entries.length;
    rt.dispatch(TENSORS, [partials, s.segments, this.binding()], { values: [n, 0, 0, 0] }, n);
    rt.dispatch(TOTAL, [s.segments, this.binding()], { values: [n, step, 0, 0] }, 1);
  }

  /** Copy the buffer as it will be after the work recorded so far; submits that work, never waits for it. */
  async readAsync(): Promise<GradNormReport> {
    this.assertAlive();
    const entries = this.store.entries;
    const bytes = await this.store.runtime.readBytes(this.binding());
    const all = new Float32Array(bytes);
    const latch = new Uint32Array(bytes, (entries.length + 1) * 4, 2);
    const first = latch[0] ? { step: latch[0], tensor: entries[latch[1]]?.name ?? null } : null;
    return new GradNormReport(all.slice(0, entries.length), all[entries.length], entries, first);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const rt = this.store.runtime;
    rt.flush(); // recorded work may still use the buffers (see FlatBuffer.destroy)
    rt.pool.trackExternal(-(this.buffer.size + this.partials.size));
    for (const b of [this.buffer, this.partials]) {
      rt.pool.onDestroy?.(b);
      b.destroy();
    }
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('GradNorms was used after destroy()');
  }
}
