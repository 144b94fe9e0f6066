// Adafactor (Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", arXiv 1804.04235),
// parameterised as PyTorch's torch.optim.Adafactor: relative step size min(lr, 1/√t), β2ₜ = 1 − t^beta2Decay,
// update clipping by RMS, the step scaled by the weight's RMS, decoupled weight decay. No momentum by default.
//
// State: a tensor of rank ≥ 2, viewed as a matrix [rows, cols] (shape[0] × the rest, as the statistics do), keeps
// its row and column means of g² — `vr` [rows] and `vc` [cols] — instead of a dense second moment; a vector keeps
// a dense `v`. All of them live in ONE small GPU buffer (`second`), per tensor at its own offsets; the optional
// first moment `m` (beta1 > 0) is a flat buffer with the store's layout. Kernels: kernels/adafactor.wgsl, four
// dispatches per matrix and two per vector. CPU reference: adafactorStepCpu in src/engine/cpu/optim.ts.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { matrixView } from '../../protocol/stats';
import { GradNorms } from './clip';
import type { Optimizer, OptimizerSnapshot, OptimizerStateInput, OptimizerStatistics, StateTensorInfo } from './optimizer';
import { FlatBuffer, ParamEntry, ParameterStore } from './params';

const WG = 256;
const spec = (entry: string, bindings: KernelSpec['bindings']): KernelSpec => ({ file: 'adafactor', entry, bindings, overrides: { WG } });
const BINDINGS = ['rw', 'read', 'rw', 'rw', 'rw', 'read'] as const;
const ROWS = spec('af_rows', BINDINGS);
const COLS = spec('af_cols', BINDINGS);
const SCALARS = spec('af_scalars', BINDINGS);
const UPDATE = spec('af_update', BINDINGS);

const USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const USE_SKIP = 1;
const USE_CLIP = 2;

export interface AdafactorOptions {
  beta2Decay?: number;
  beta1?: number;
  eps1?: number;
  eps2?: number;
  clipThreshold?: number;
  scaleParameter?: boolean;
  weightDecay?: number;
  maxGradNorm?: number;
  skipNonFinite?: boolean;
  gradNorms?: GradNorms;
}

/** Where one tensor's second moment lives in the `second` buffer. */
interface Slot {
  entry: ParamEntry;
  factored: boolean;
  rows: number;
  cols: number;
  /** Offsets (elements) of vr and vc (factored) or of v (a vector). */
  rOff: number;
  cOff: number;
  vOff: number;
}

export class Adafactor implements Optimizer {
  readonly name = 'adafactor';
  readonly gradNorms: GradNorms;
  readonly maxGradNorm: number;
  readonly skipNonFinite: boolean;
  readonly beta2Decay: number;
  readonly beta1: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly clipThreshold: number;
  readonly scaleParameter: boolean;
  readonly weightDecay: number;
  /** The first moment (beta1 > 0), flat with the store's layout. */
  readonly m: FlatBuffer | null;
  private readonly second: GPUBuffer;
  private readonly secondFloats: number;
  private readonly scalars: GPUBuffer;
  private readonly placeholder: GPUBuffer;
  private readonly slots: Slot[];
  private steps = 0;
  private readonly ownsNorms: boolean;
  private destroyed = false;

  constructor(readonly store: ParameterStore, opts: AdafactorOptions = {}) {
    if (!store.isMaterialized) throw new Error('materialize the parameter store before making an optimizer');
    this.maxGradNorm = opts.maxGradNorm ?? 0;
    this.skipNonFinite = opts.skipNonFinite ?? true;
    this.beta2Decay = opts.beta2Decay ?? -0.8;
    this.beta1 = opts.beta1 ?? 0;
    this.eps1 = opts.eps1 ?? 1.1920929e-7;
    this.eps2 = opts.eps2 ?? 1e-3;
    this.clipThreshold = opts.clipThreshold ?? 1;
    this.scaleParameter = opts.scaleParameter ?? true;
    this.weightDecay = opts.weightDecay ?? 0;
    const checks: [string, boolean][] = [
      ['maxGradNorm must be a finite number ≥ 0', this.maxGradNorm >= 0 && Number.isFinite(this.maxGradNorm)],
      ['beta2Decay must be < 0', this.beta2Decay < 0],
      ['beta1 must be in [0, 1)', this.beta1 >= 0 && this.beta1 < 1],
      // eps1² must stay a normal f32: a floor that underflows to 0 makes 0/√0 = NaN for untouched rows.
      ['eps1 must be ≥ 1e-18', this.eps1 >= 1e-18],
      ['eps2 must be > 0', this.eps2 > 0],
      ['clipThreshold must be > 0', this.clipThreshold > 0],
      ['weightDecay must be ≥ 0', this.weightDecay >= 0],
    ];
    for (const [what, ok] of checks) if (!ok) throw new Error(`Adafactor: ${what}`);

    const rt = store.runtime;
    // Each tensor is bound whole by the per-tensor kernels: refuse up front, by name, what one binding cannot hold.
    for (const e of store.entries) {
      if (e.size * 4 > rt.maxBindingBytes) {
        throw new Error(
          `Adafactor: parameter '${e.name}' (${e.shape.join('×')}, ${(e.size * 4 / 2 ** 20).toFixed(1)} MiB) is larger than one GPU binding ` +
            `(${(rt.maxBindingBytes / 2 ** 20).toFixed(0)} MiB on this device), and Adafactor's kernels bind a tensor whole; use adamw or sgd (chunked) for this model, or make the tensor smaller`,
        );
      }
    }
    let off = 0;
    this.slots = store.entries.map((e) => {
      const factored = e.shape.length >= 2;
      const { rows, cols } = matrixView(e.shape);
      const s: Slot = { entry: e, factored, rows, cols, rOff: 0, cOff: 0, vOff: 0 };
      if (factored) {
        s.rOff = off;
        s.cOff = off + rows;
        off += rows + cols;
      } else {
        s.vOff = off;
        off += e.size;
      }
      return s;
    });
    this.secondFloats = off;
    const dev = rt.device;
    this.second = dev.createBuffer({ size: Math.max(16, off * 4), usage: USAGE, label: 'adafactor:second' });
    this.scalars = dev.createBuffer({ size: Math.max(16, store.entries.length * 16), usage: USAGE, label: 'adafactor:scalars' });
    this.placeholder = dev.createBuffer({ size: 256, usage: USAGE, label: 'adafactor:no-momentum' });
    rt.pool.trackExternal(this.second.size + this.scalars.size + this.placeholder.size);
    this.m = this.beta1 > 0 ? store.allocLike('m') : null;
    if (opts.gradNorms && opts.gradNorms.store !== store) throw new Error('gradNorms belongs to another parameter store');
    this.ownsNorms = !opts.gradNorms;
    this.gradNorms = opts.gradNorms ?? new GradNorms(store);
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Bytes of optimizer state on the GPU (what Adafactor saves against AdamW's 2 floats per parameter). */
  get stateBytes(): number {
    return this.secondFloats * 4 + (this.m ? this.store.bytes : 0);
  }

  step(lr: number): void {
    if (this.destroyed) throw new Error('adafactor: step() after destroy()');
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`adafactor: learning rate must be a finite number ≥ 0, got ${lr}`);
    const t = ++this.steps;
    const s = this.store;
    const rt = s.runtime;
    const mode = (this.skipNonFinite ? USE_SKIP : 0) | (this.maxGradNorm > 0 ? USE_CLIP : 0);
    if (mode) this.gradNorms.compute(t);
    const oneMinusBeta2 = t ** this.beta2Decay;
    const rho = Math.min(lr, 1 / Math.sqrt(t));
    const second: BufferBinding = { buffer: this.second, offset: 0, size: this.second.size };
    const scalars: BufferBinding = { buffer: this.scalars, offset: 0, size: this.scalars.size };
    const norms = this.gradNorms.binding();
    const n = s.entries.length;
    for (const sl of this.slots) {
      const e = sl.entry;
      if (e.flags.frozen || e.size === 0) continue;
      const range = { offset: e.offset * 4, size: e.size * 4 };
      const bufs: BufferBinding[] = [
        { buffer: s.params.buffer, ...range },
        { buffer: s.grads.buffer, ...range },
        second,
        scalars,
        this.m ? { buffer: this.m.buffer, ...range } : { buffer: this.placeholder, offset: 0, size: 256 },
        norms,
      ];
      const decayKeep = e.flags.decay ? 1 - lr * this.weightDecay : 1;
      const u = {
        values: [
          sl.rows, sl.cols, sl.factored ? 1 : 0, mode, n, e.index, sl.rOff, sl.cOff, sl.vOff, this.m ? 1 : 0, this.scaleParameter ? 1 : 0, 0,
          this.maxGradNorm, oneMinusBeta2, this.eps1, this.eps2, this.clipThreshold, rho, decayKeep, this.beta1,
        ],
        format: 'uuuuuuuuuuuuffffffff',
      };
      if (sl.factored) {
        rt.dispatch(ROWS, bufs, u, sl.rows);
        rt.dispatch(COLS, bufs, u, sl.cols);
      }
      rt.dispatch(SCALARS, bufs, u, 1);
      rt.dispatch(UPDATE, bufs, u, Math.ceil(e.size / WG));
    }
  }

  state(): Record<string, FlatBuffer> {
    return this.m ? { m: this.m } : {};
  }

  statistics(): OptimizerStatistics {
    return {
      momentum: this.m ? { state: 'm' } : null,
      secondMoment: { layout: 'factored', row: 'vr', col: 'vc', dense: 'v' },
    };
  }

  stateTensors(): StateTensorInfo[] {
    const out: StateTensorInfo[] = [];
    for (const sl of this.slots) {
      const p = sl.entry.name;
      if (sl.factored) out.push({ state: 'vr', param: p, shape: [sl.rows] }, { state: 'vc', param: p, shape: [sl.cols] });
      else out.push({ state: 'v', param: p, shape: [...sl.entry.shape] });
    }
    if (this.m) for (const e of this.store.entries) out.push({ state: 'm', param: e.name, shape: [...e.shape] });
    return out;
  }

  async readState(state: string): Promise<Map<string, Float32Array>> {
    if (state === 'm') {
      if (!this.m) throw new Error('adafactor: no first moment (beta1 is 0)');
      return this.m.readAll();
    }
    if (state !== 'vr' && state !== 'vc' && state !== 'v') throw new Error(`adafactor: no state named '${state}' (vr, vc, v${this.m ? ', m' : ''})`);
    const all = await this.readSecond();
    const out = new Map<string, Float32Array>();
    for (const sl of this.slots) {
      if (state === 'vr' && sl.factored) out.set(sl.entry.name, all.slice(sl.rOff, sl.rOff + sl.rows));
      else if (state === 'vc' && sl.factored) out.set(sl.entry.name, all.slice(sl.cOff, sl.cOff + sl.cols));
      else if (state === 'v' && !sl.factored) out.set(sl.entry.name, all.slice(sl.vOff, sl.vOff + sl.entry.size));
    }
    return out;
  }

  async snapshot(): Promise<OptimizerSnapshot> {
    const buffers: OptimizerSnapshot['buffers'] = {};
    for (const st of ['vr', 'vc', 'v', ...(this.m ? ['m'] : [])]) {
      const map = await this.readState(st);
      if (map.size) buffers[st] = map;
    }
    return { optimizer: this.name, step: this.steps, buffers };
  }

  loadState(input: OptimizerStateInput): void {
    if (!Number.isInteger(input.step) || input.step < 0) throw new Error(`adafactor: bad step count ${input.step}`);
    const host = new Float32Array(this.secondFloats);
    const get = (state: string, param: string, len: number): Float32Array => {
      const b = input.buffers[state];
      const d = b && !(b instanceof Float32Array) ? b.get(param) : undefined;
      if (!d) throw new Error(`adafactor: the snapshot has no ${state} for '${param}'`);
      if (d.length !== len) throw new Error(`adafactor: ${state} of '${param}' has ${d.length} values, expected ${len}`);
      return d;
    };
    for (const sl of this.slots) {
      const p = sl.entry.name;
      if (sl.factored) {
        host.set(get('vr', p, sl.rows), sl.rOff);
        host.set(get('vc', p, sl.cols), sl.cOff);
      } else host.set(get('v', p, sl.entry.size), sl.vOff);
    }
    const rt = this.store.runtime;
    if (this.secondFloats) rt.write({ buffer: this.second, offset: 0, size: this.secondFloats * 4 }, host);
    if (this.m) {
      const mb = input.buffers.m;
      if (!mb) throw new Error('adafactor: the snapshot has no first moment m (beta1 > 0)');
      this.m.loadAll(mb);
    }
    this.steps = input.step;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const rt = this.store.runtime;
    rt.flush();
    rt.pool.trackExternal(-(this.second.size + this.scalars.size + this.placeholder.size));
    for (const b of [this.second, this.scalars, this.placeholder]) {
      rt.pool.onDestroy?.(b);
      b.destroy();
    }
    this.m?.destroy();
    if (this.ownsNorms) this.gradNorms.destroy();
  }

  private async readSecond(): Promise<Float32Array> {
    if (!this.secondFloats) return new Float32Array(0);
    return new Float32Array(await this.store.runtime.readBytes({ buffer: this.second, offset: 0, size: this.secondFloats * 4 }));
  }
}
