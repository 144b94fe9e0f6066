// Dynamic loss scaling for mixed-precision training. f16 holds magnitudes from 6e-8 (subnormal) to 65504: small
// activation gradients would round to zero, so the loss's gradient seed is S (2^15 by default) instead of 1 and
// every gradient arrives S times larger; the f32 gradients are divided by S before clipping and the optimizer
// step. Too large an S overflows f16 (an Inf in some gradient): that step is skipped (the optimizer's non-finite
// guard already drops an update whose gradient norm is not finite) and S halves; after `growthInterval` good
// steps in a row S doubles, probing for the largest S that does not overflow. An S that falls below `minScale`
// means the gradients are not finite whatever the scale: training stops with the trainer's NonFiniteError.
//
// The rules run on the GPU (kernels/loss_scale.wgsl) so a step never waits for a readback; LossScaleRules is
// their CPU reference (unit-tested), and LossScaler the GPU state the trainer reads on logging steps and saves
// beside each checkpoint (`checkpoints/step-<n>.loss-scale.json`), so a resumed run continues with the exact S.
import * as fs from 'node:fs';
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import type { GradNorms } from '../optim/clip';
import type { ParameterStore } from '../optim/params';
import { Tensor, view } from '../tensor/tensor';
import { writeFileAtomic } from '../../files/atomic';

export interface LossScaleOptions {
  /** The scale at the start (default 2^15). */
  initial?: number;
  /** Good steps in a row after which the scale doubles (default 2000). */
  growthInterval?: number;
  /** A scale below this after halving stops training (default 1). */
  minScale?: number;
}

export const LOSS_SCALE_DEFAULTS = { initial: 2 ** 15, growthInterval: 2000, minScale: 1 } as const;

/** Growth stops here: a scale this large already overflows f16 on any gradient above 2^-8. */
export const MAX_LOSS_SCALE = 2 ** 24;

/** What the scaler has done so far (read back on logging steps, saved with checkpoints). */
export interface LossScaleState {
  scale: number;
  /** Good steps since the scale last changed. */
  goodSteps: number;
  /** Steps skipped because the scaled gradient was not finite, in total. */
  skipped: number;
  /** The last skipped step, 0 when none. */
  lastSkippedStep: number;
}

/** The options with defaults applied, checked: a clear message for each bad value. */
export function resolveLossScale(o: LossScaleOptions = {}): Required<LossScaleOptions> {
  const r = {
    initial: o.initial ?? LOSS_SCALE_DEFAULTS.initial,
    growthInterval: o.growthInterval ?? LOSS_SCALE_DEFAULTS.growthInterval,
    minScale: o.minScale ?? LOSS_SCALE_DEFAULTS.minScale,
  };
  const bad = (what: string) => {
    throw new RangeError(`train.lossScale.${what}`);
  };
  if (!(Number.isFinite(r.initial) && r.initial > 0 && r.initial <= MAX_LOSS_SCALE)) bad(`initial must be a number in (0, 2^24], got ${r.initial}`);
  if (!(Number.isInteger(r.growthInterval) && r.growthInterval >= 1)) bad(`growthInterval must be an integer ≥ 1, got ${r.growthInterval}`);
  if (!(Number.isFinite(r.minScale) && r.minScale > 0 && r.minScale <= r.initial)) bad(`minScale must be a number in (0, initial], got ${r.minScale} (initial ${r.initial})`);
  return r;
}

/** What one step's outcome does to the scale. */
export type LossScaleOutcome = 'step' | 'skip' | 'stop';

/** The scaler's rules on the host: the reference for kernels/loss_scale.wgsl (`update`). */
export class LossScaleRules {
  readonly opts: Required<LossScaleOptions>;
  state: LossScaleState;

  constructor(opts: LossScaleOptions = {}) {
    this.opts = resolveLossScale(opts);
    this.state = { scale: Math.fround(this.opts.initial), goodSteps: 0, skipped: 0, lastSkippedStep: 0 };
  }

  /** Apply one step whose (unscaled) gradient was `finite` or not. */
  update(step: number, finite: boolean): LossScaleOutcome {
    const s = this.state;
    if (finite) {
      s.goodSteps++;
      if (s.goodSteps >= this.opts.growthInterval) {
        s.scale = Math.min(Math.fround(s.scale * 2), MAX_LOSS_SCALE);
        s.goodSteps = 0;
      }
      return 'step';
    }
    s.scale = Math.fround(s.scale * 0.5);
    s.goodSteps = 0;
    s.skipped++;
    s.lastSkippedStep = step;
    return s.scale >= this.opts.minScale ? 'skip' : 'stop';
  }
}

const WG = 256;
const UNSCALE: KernelSpec = { file: 'loss_scale', entry: 'unscale', bindings: ['rw', 'read'], overrides: { WG } };
const UPDATE: KernelSpec = { file: 'loss_scale', entry: 'update', bindings: ['rw', 'rw'] };
const STATE_BYTES = 16;

/** The scaler's state on the GPU and the dispatches of one step. */
export class LossScaler {
  readonly opts: Required<LossScaleOptions>;
  private readonly buffer: GPUBuffer;
  private destroyed = false;

  constructor(readonly rt: Runtime, opts: LossScaleOptions = {}) {
    this.opts = resolveLossScale(opts);
    this.buffer = rt.device.createBuffer({ size: STATE_BYTES, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: 'loss-scale' });
    rt.pool.trackExternal(STATE_BYTES);
    this.load({ scale: this.opts.initial, goodSteps: 0, skipped: 0, lastSkippedStep: 0 });
  }

  /** The gradient seed for backward(loss, seed): a view of S, shaped like the (one-element) loss. */
  seed(loss: Tensor): Tensor {
    this.assertAlive();
    return view(this.rt, this.buffer, 0, loss.shape);
  }

  /** Record grads *= 1/S over the store's flat gradient buffer (before clipping and the optimizer step). */
  unscale(store: ParameterStore): void {
    this.assertAlive();
    const state = { buffer: this.buffer, offset: 0, size: STATE_BYTES };
    for (const c of store.chunks) {
      const b = store.grads.chunkBinding(c);
      const n = b.size / 4;
      this.rt.dispatch(UNSCALE, [b, state], { values: [n, 0, 0, 0] }, Math.ceil(n / WG));
    }
  }

  /** Record the update of S from the norms the optimizer computed for this step (after optimizer.step()). */
  update(norms: GradNorms, step: number): void {
    this.assertAlive();
    const n = norms.store.entries.length;
    this.rt.dispatch(
      UPDATE,
      [norms.binding(), { buffer: this.buffer, offset: 0, size: STATE_BYTES }],
      { values: [n, step, this.opts.growthInterval, 0, this.opts.minScale, MAX_LOSS_SCALE, 0, 0], format: 'uuuuffuu' },
      1,
    );
  }

  /** The state after the work recorded so far (submits it, never stalls the queue). */
  async readAsync(): Promise<LossScaleState> {
    this.assertAlive();
    const bytes = await this.rt.readBytes({ buffer: this.buffer, offset: 0, size: STATE_BYTES });
    const u = new Uint32Array(bytes);
    return { scale: new Float32Array(bytes, 0, 1)[0], goodSteps: u[1], skipped: u[2], lastSkippedStep: u[3] };
  }

  /** Set the state (start, resume), in order with the recorded work. */
  load(s: LossScaleState): void {
    this.assertAlive();
    const data = new ArrayBuffer(STATE_BYTES);
    new Float32Array(data, 0, 1)[0] = s.scale;
    new Uint32Array(data, 4, 3).set([s.goodSteps, s.skipped, s.lastSkippedStep]);
    this.rt.write({ buffer: this.buffer, offset: 0, size: STATE_BYTES }, new Uint8Array(data));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.rt.flush(); // recorded work may still use the buffer
    this.rt.pool.trackExternal(-STATE_BYTES);
    this.rt.pool.onDestroy?.(this.buffer);
    this.buffer.destroy();
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('LossScaler was used after destroy()');
  }
}

// ---- the state beside a checkpoint ----------------------------------------------------------------------

/** `checkpoints/step-<n>.loss-scale.json` beside the weights file `checkpoints/step-<n>.safetensors`. */
export function lossScalePath(weightsFile: string): string {
  return weightsFile.replace(/\.safetensors$/, '.loss-scale.json');
}

export async function writeLossScaleState(file: string, s: LossScaleState): Promise<void> {
  await writeFileAtomic(file, JSON.stringify({ format: 'basin-loss-scale-1', ...s }, null, 1) + '\n');
}

/** The saved state, or null when the file does not exist (a checkpoint written by an f32 run). */
export async function readLossScaleState(file: string): Promise<LossScaleState | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  const num = (k: string, ok: (x: number) => boolean) => {
    const x = v[k];
    if (typeof x !== 'number' || !ok(x)) throw new Error(`${file}: "${k}" must be ${k === 'scale' ? 'a positive finite number' : 'an integer ≥ 0'}, got ${JSON.stringify(x)}`);
    return x;
  };
  const count = (x: number) => Number.isInteger(x) && x >= 0;
  return {
    scale: num('scale', (x) => Number.isFinite(x) && x > 0),
    goodSteps: num('goodSteps', count),
    skipped: num('skipped', count),
    lastSkippedStep: num('lastSkippedStep', count),
  };
}
