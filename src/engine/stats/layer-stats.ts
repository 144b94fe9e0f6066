// Per-layer training statistics, computed on the GPU over the flat layout of src/engine/optim/params.ts and read
// back as ONE compact payload per sample, already in the frame format of src/protocol/stats.ts.
//
// Per sample (kernels/stats.wgsl), whatever the number of tensors:
//   beforeStep()  one buffer copy of the parameters (w_prev, for ‖Δw‖), recorded only on sampled steps
//   sample(step)  stats_blocks (one dispatch per binding-sized chunk of the layout), stats_tensors (one dispatch),
//                 stats_profile (one per chunk), then one copy of the payload to a mapped buffer.
// Nothing waits: sample() records the work and returns a promise that resolves once the GPU gets there, so the
// trainer keeps recording steps and writes the frame when it arrives (in order: the promises resolve in the
// order the copies were submitted).
//
// Call order within a training step: backward → [beforeStep()] → optimizer.step(lr) → [sample(step)] →
// store.zeroGrads(). sample() reads the gradients the step used, so it must come before they are zeroed.
//
// Optimizers declare which state is what (Optimizer.statistics()): a dense momentum and a dense second moment are
// flat buffers the kernels read in place; a FACTORED second moment (Adafactor's row and column vectors) is read
// back (rows + cols floats per tensor) and its fields are filled on the host, exactly, by ./factored.ts. Without
// momentum, momentumNorm is 0; without a second moment, every v-derived field is 0 and the histogram empty (see
// the header of src/protocol/stats.ts).
//
// The header's optional fields (src/protocol/stats.ts): each tensor's `role` (./roles.ts) from the store's frozen
// flags at the sampled step (progressive unfreezing changes them); `extras.capturedEnergy` when the optimizer
// reports it (mao's Optimizer.capturedEnergy(), called right after the step like every other read here); and
// `extras.saliencyMass` when the collector is given the run's base checkpoint (./saliency.ts: the parameters are
// read back at the sampled step and the base read from disk, tensor by tensor — no dense buffer kept).
import * as fs from 'node:fs';
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding, Runtime } from '../gpu/runtime';
import type { Optimizer } from '../optim/optimizer';
import { FLAT_BLOCK, FlatBuffer, ParameterStore } from '../optim/params';
import type { WriteTensor } from '../../files/safetensors';
import { writeFileAtomic } from '../../files/atomic';
import { denseSecondMoment, factoredSecondMoment, lowRankNorm } from './factored';
import { sortedQuantile } from './quantiles';
import { tensorRole } from './roles';
import { BaseWeights, saliencyMass } from './saliency';
import {
  HIST_BINS,
  HIST_HI,
  HIST_LO,
  SCALAR_KEYS,
  StatsExtras,
  StatsFrame,
  StatsFrameHeader,
  TensorRole,
  StatsFormatError,
  StatsTensorInfo,
  decodeStatsFrame,
  encodeStatsFrame,
  matrixView,
  recordFloats,
} from '../../protocol/stats';

const WG = 256;
const PWG = 64;
/** u32 words per block partial (kernels/stats.wgsl PART). */
const PART = 6 + HIST_BINS;
const OVERRIDES = { WG, BLOCK: FLAT_BLOCK, PWG };
const BLOCKS: KernelSpec = {
  file: 'stats',
  entry: 'stats_blocks',
  bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'rw'],
  overrides: OVERRIDES,
};
const TENSORS: KernelSpec = { file: 'stats', entry: 'stats_tensors', bindings: ['read', 'read', 'read', 'read', 'rw'], overrides: OVERRIDES };
const PROFILE: KernelSpec = { file: 'stats', entry: 'stats_profile', bindings: ['read', 'read', 'read', 'read', 'rw'], overrides: OVERRIDES };
const SAMPLE: KernelSpec = { file: 'stats', entry: 'stats_sample', bindings: ['read', 'read', 'read', 'read', 'rw'], overrides: OVERRIDES };

/**
 * Quantiles of v come from a stratified random sample per tensor (kernels/stats.wgsl stats_sample): up to
 * SAMPLE_PER_TENSOR values each, fewer when there are many tensors (SAMPLE_TOTAL floats read back per sample in
 * all, but never below SAMPLE_MIN each). A tensor no larger than its budget is sampled whole: exact quantiles.
 */
const SAMPLE_PER_TENSOR = 4096;
const SAMPLE_TOTAL = 1 << 20;
const SAMPLE_MIN = 256;

const USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const Q_INDEX = { vP50: SCALAR_KEYS.indexOf('vP50'), vP90: SCALAR_KEYS.indexOf('vP90'), vP99: SCALAR_KEYS.indexOf('vP99') };
const UPDATE_RATIO = SCALAR_KEYS.indexOf('updateRatio');

interface ChunkPlan {
  blockBase: number;
  numBlocks: number;
  elemBase: number;
  elems: number;
  groupBase: number;
  numGroups: number;
  sampleGroupBase: number;
  numSampleGroups: number;
}

export class LayerStatsCollector {
  /** Tensor descriptions in frame order (= the store's layout order). */
  readonly tensors: readonly StatsTensorInfo[];
  /** Floats of one frame's payload. */
  readonly payloadFloats: number;
  private readonly rt: Runtime;
  private readonly table: GPUBuffer;
  private readonly groups: GPUBuffer;
  private readonly partials: GPUBuffer;
  private readonly payload: GPUBuffer;
  /** Stands in for the gradient norms when the optimizer has none (never read: maxNorm is 0 then). */
  private readonly normsPlaceholder: GPUBuffer | null;
  private readonly sampleTable: GPUBuffer;
  private readonly sampleGroups: GPUBuffer;
  private readonly sampleOut: GPUBuffer;
  /** Per tensor (layout order): where its sample starts in sampleOut, and its length. */
  private readonly samples: { base: number; count: number }[];
  private readonly sampleFloats: number;
  private samplesTaken = 0;
  private prev: FlatBuffer | null = null;
  private prevValid = false;
  private readonly plan: ChunkPlan[];
  private last: StatsFrame | null = null;
  private destroyed = false;
  /** A fine-tune's base checkpoint (saliency mass), null otherwise. */
  private readonly base: BaseWeights | null;
  /** Why the last saliency could not be computed (the base file unreadable), null when it was. */
  saliencyError: string | null = null;
  /** The tensors with their roles as of the last sample (the same objects while no role changes). */
  private withRoles: StatsTensorInfo[] = [];

  constructor(
    rt: Runtime,
    readonly store: ParameterStore,
    readonly optimizer: Optimizer,
    opts: { baseFile?: string | null } = {},
  ) {
    this.base = opts.baseFile ? new BaseWeights(opts.baseFile) : null;
    if (store.runtime !== rt) throw new Error('LayerStatsCollector: the parameter store lives on another runtime');
    this.rt = rt;
    const entries = store.entries;
    const n = entries.length;
    const tableData = new Uint32Array(Math.max(4, n * 4));
    const infos: StatsTensorInfo[] = [];
    let p = 0;
    const groupWords: number[] = [];
    const firstGroup: number[] = [];
    const endGroup: number[] = [];
    for (const e of entries) {
      const { rows, cols } = matrixView(e.shape);
      infos.push({ name: e.name, shape: [...e.shape], rows, cols });
      tableData[e.index * 4] = p;
      tableData[e.index * 4 + 1] = rows;
      tableData[e.index * 4 + 2] = cols;
      p += recordFloats({ rows, cols });
      firstGroup.push(groupWords.length / 2);
      // Empty tensors get no groups: their profile slots keep the zeros of the fresh payload buffer.
      if (e.size > 0) {
        for (let r = 0; r < rows; r += PWG) groupWords.push(e.index, r);
        for (let c = 0; c < cols; c += PWG) groupWords.push((e.index | 0x80000000) >>> 0, c);
      }
      endGroup.push(groupWords.length / 2);
    }
    if (p >= 2 ** 32 / 4) throw new Error(`LayerStatsCollector: a frame of ${p} floats is too large`);
    this.tensors = infos;
    this.payloadFloats = p;

    // Per chunk, the profile groups of the tensors it overlaps (a contiguous range: groups follow the layout).
    // Sample slots per tensor and their groups of PWG slots, in layout order (like the profile groups).
    const budget = Math.max(SAMPLE_MIN, Math.min(SAMPLE_PER_TENSOR, Math.floor(SAMPLE_TOTAL / Math.max(1, n))));
    const sampleWords: number[] = [];
    const sampleTableData = new Uint32Array(Math.max(2, n * 2));
    const firstSampleGroup: number[] = [];
    const endSampleGroup: number[] = [];
    let sbase = 0;
    this.samples = entries.map((e) => {
      const count = Math.min(e.size, budget);
      sampleTableData[e.index * 2] = sbase;
      sampleTableData[e.index * 2 + 1] = count;
      firstSampleGroup.push(sampleWords.length / 2);
      for (let i = 0; i < count; i += PWG) sampleWords.push(e.index, i);
      endSampleGroup.push(sampleWords.length / 2);
      const r = { base: sbase, count };
      sbase += count;
      return r;
    });
    this.sampleFloats = sbase;
    this.plan = store.chunks.map((c) => {
      const lo = c.elemBase;
      const hi = c.elemBase + c.elems;
      let gFirst = -1;
      let gEnd = -1;
      for (const e of entries) {
        if (e.size === 0 || e.offset >= hi || e.offset + e.size <= lo) continue;
        if (gFirst < 0) gFirst = firstGroup[e.index];
        gEnd = endGroup[e.index];
      }
      let sFirst = -1;
      let sEnd = -1;
      for (const e of entries) {
        if (e.size === 0 || e.offset >= hi || e.offset + e.size <= lo) continue;
        if (sFirst < 0) sFirst = firstSampleGroup[e.index];
        sEnd = endSampleGroup[e.index];
      }
      return {
        ...c,
        groupBase: Math.max(0, gFirst),
        numGroups: gFirst < 0 ? 0 : gEnd - gFirst,
        sampleGroupBase: Math.max(0, sFirst),
        numSampleGroups: sFirst < 0 ? 0 : sEnd - sFirst,
      };
    });

    const dev = rt.device;
    const mk = (bytes: number, label: string) => dev.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage: USAGE, label });
    this.table = mk(tableData.byteLength, 'stats-table');
    this.groups = mk(Math.max(8, groupWords.length * 4), 'stats-groups');
    this.partials = mk(Math.max(1, store.numBlocks) * PART * 4, 'stats-partials');
    this.payload = mk(p * 4, 'stats-payload');
    dev.queue.writeBuffer(this.table, 0, tableData);
    if (groupWords.length) dev.queue.writeBuffer(this.groups, 0, new Uint32Array(groupWords));
    this.normsPlaceholder = optimizer.gradNorms ? null : mk(16, 'stats-no-norms');
    this.sampleTable = mk(sampleTableData.byteLength, 'stats-sample-table');
    this.sampleGroups = mk(Math.max(8, sampleWords.length * 4), 'stats-sample-groups');
    this.sampleOut = mk(Math.max(4, this.sampleFloats * 4), 'stats-sample');
    dev.queue.writeBuffer(this.sampleTable, 0, sampleTableData);
    if (sampleWords.length) dev.queue.writeBuffer(this.sampleGroups, 0, new Uint32Array(sampleWords));
    rt.pool.trackExternal(this.externalBytes());
  }

  /** The optimizer's dense momentum and dense second-moment buffers, as it declares them (null: none or factored). */
  private stateBuffers(): { m: FlatBuffer | null; v: FlatBuffer | null } {
    const st = this.optimizer.state();
    const decl = this.optimizer.statistics();
    const pick = (name: string | undefined): FlatBuffer | null => {
      if (name === undefined) return null;
      const b = st[name];
      if (!b) throw new Error(`${this.optimizer.name} declares its state '${name}' for the statistics, but has no such dense buffer`);
      return b;
    };
    const sm = decl.secondMoment;
    const mom = decl.momentum;
    return { m: pick(mom && 'state' in mom ? mom.state : undefined), v: pick(sm?.layout === 'dense' ? sm.state : undefined) };
  }

  /** Reads a factored second moment back (recorded after this sample's work, so it is the same step's state). */
  private readFactors(): Promise<{ row: Map<string, Float32Array>; col: Map<string, Float32Array>; dense: Map<string, Float32Array> }> | null {
    const sm = this.optimizer.statistics().secondMoment;
    if (sm?.layout !== 'factored') return null;
    const o = this.optimizer;
    return Promise.all([o.readState(sm.row), o.readState(sm.col), o.readState(sm.dense)]).then(([row, col, dense]) => ({ row, col, dense }));
  }

  /** Reads a low-rank momentum back (mao: U, S, V per factored tensor, a dense state for the others). */
  private readLowRank(): Promise<{ u: Map<string, Float32Array>; s: Map<string, Float32Array>; v: Map<string, Float32Array>; dense: Map<string, Float32Array> }> | null {
    const mom = this.optimizer.statistics().momentum;
    if (!mom || !('layout' in mom)) return null;
    const o = this.optimizer;
    return Promise.all([o.readState(mom.u), o.readState(mom.s), o.readState(mom.v), o.readState(mom.dense)]).then(([u, s, v, dense]) => ({ u, s, v, dense }));
  }

  /**
   * Record a copy of the parameters as they are before the optimizer step, for the update ratio of the next
   * sample(). Call it only on steps that will be sampled (it costs one copy of the parameters).
   */
  beforeStep(): void {
    this.assertAlive();
    if (!this.prev) this.prev = this.store.allocLike('stats-prev');
    const bytes = this.store.bytes;
    if (bytes > 0) this.rt.copy({ buffer: this.store.params.buffer, offset: 0, size: bytes }, { buffer: this.prev.buffer, offset: 0, size: bytes }, bytes);
    this.prevValid = true;
  }

  /**
   * Record the statistics of the current state (right after optimizer.step(), before the gradients are zeroed)
   * and return the encoded frame once the GPU has computed it. Records its work synchronously, before the first
   * await: later steps recorded meanwhile do not change what it reads.
   */
  sample(step: number): Promise<Uint8Array> {
    this.assertAlive();
    const time = Date.now();
    const hasPrev = this.prevValid;
    this.prevValid = false;
    const tensors = this.tensorsWithRoles();
    this.record(hasPrev);
    const read = this.payloadFloats > 0 ? this.rt.readBytes({ buffer: this.payload, offset: 0, size: this.payloadFloats * 4 }) : Promise.resolve(new ArrayBuffer(0));
    const factors = this.readFactors();
    const lowRank = this.readLowRank();
    const denseV = this.stateBuffers().v !== null;
    const sampleRead = denseV && this.sampleFloats > 0 ? this.rt.readBytes({ buffer: this.sampleOut, offset: 0, size: this.sampleFloats * 4 }) : null;
    const energy = this.optimizer.capturedEnergy?.() ?? null;
    // Saliency needs a second moment (R, C): without one (SGD) there is nothing to weigh τ² by.
    const params = this.base && this.optimizer.statistics().secondMoment ? this.store.params.readFlat() : null;
    return Promise.all([read, factors, sampleRead, lowRank, energy, params]).then(async ([bytes, f, sampleBytes, lr, en, theta]) => {
      const payload = new Float32Array(bytes);
      if (f) this.fillFactored(payload, f);
      if (lr) this.fillLowRankMomentum(payload, lr);
      if (sampleBytes) this.fillSampledQuantiles(payload, new Float32Array(sampleBytes));
      this.finishPayload(payload, hasPrev);
      const extras: StatsExtras = {};
      if (en) extras.capturedEnergy = this.tensors.map((t) => clampEnergy(en.get(t.name)));
      if (theta) {
        const mass = await this.saliency(payload, theta);
        if (mass) extras.saliencyMass = mass;
      }
      const header: StatsFrameHeader = { step, time, ...(Object.keys(extras).length ? { extras } : {}), tensors };
      const frame = encodeStatsFrame(header, payload);
      const decoded = decodeStatsFrame(frame);
      if (decoded) this.last = decoded.frame;
      return frame;
    });
  }

  /** Every tensor with its role at this step (a new list only when a role changed: progressive unfreezing). */
  private tensorsWithRoles(): StatsTensorInfo[] {
    const roles: TensorRole[] = this.store.entries.map((e) => tensorRole(e.name, e.flags.frozen));
    if (this.withRoles.length === roles.length && this.withRoles.every((t, i) => t.role === roles[i])) return this.withRoles;
    this.withRoles = this.tensors.map((t, i) => ({ ...t, role: roles[i] }));
    return this.withRoles;
  }

  /**
   * Per tensor, Σ τ²⊙F̂ from the parameters read back at the sampled step (`theta`, the store's flat layout), the
   * base read from disk and R, C of this frame's payload; null where the base lacks the tensor. Null as a whole
   * (and `saliencyError` set) when the base cannot be read: the statistics go on without it.
   */
  private async saliency(payload: Float32Array, theta: Float32Array): Promise<(number | null)[] | null> {
    const out: (number | null)[] = [];
    let p = 0;
    try {
      for (const [k, t] of this.tensors.entries()) {
        const e = this.store.entries[k];
        const base = t.rows * t.cols > 0 ? await this.base!.read(t.name, t.shape) : null;
        const h = p + SCALAR_KEYS.length + HIST_BINS;
        out.push(base ? saliencyMass(theta.subarray(e.offset, e.offset + e.size), t.rows, t.cols, payload.subarray(h, h + t.rows), payload.subarray(h + t.rows, h + t.rows + t.cols), base) : null);
        p += recordFloats(t);
      }
    } catch (e) {
      this.saliencyError = `${this.base!.file}: ${(e as Error).message}`;
      return null;
    }
    this.saliencyError = null;
    return out;
  }

  /** The last frame sample() resolved, decoded (null before the first). */
  get latest(): StatsFrame | null {
    return this.last;
  }

  /** Dispatches one sample records (for budgets and tests). */
  get dispatchesPerSample(): number {
    return 1 + this.plan.length + this.plan.filter((c) => c.numGroups > 0).length + this.plan.filter((c) => c.numSampleGroups > 0).length;
  }

  private record(hasPrev: boolean): void {
    const s = this.store;
    const rt = this.rt;
    const { m, v } = this.stateBuffers();
    const n = s.entries.length;
    const partials: BufferBinding = { buffer: this.partials, offset: 0, size: this.partials.size };
    const payload: BufferBinding = { buffer: this.payload, offset: 0, size: this.payload.size };
    const table: BufferBinding = { buffer: this.table, offset: 0, size: this.table.size };
    for (const c of this.plan) {
      const params = s.params.chunkBinding(c);
      rt.dispatch(
        BLOCKS,
        [
          s.grads.chunkBinding(c),
          params,
          hasPrev && this.prev ? this.prev.chunkBinding(c) : params,
          m ? m.chunkBinding(c) : params,
          v ? v.chunkBinding(c) : params,
          s.segments,
          s.blocks,
          partials,
        ],
        { values: [c.blockBase, c.numBlocks, c.elemBase, hasPrev ? 1 : 0, m ? 1 : 0, v ? 1 : 0] },
        c.numBlocks,
      );
    }
    const gn = this.optimizer.gradNorms;
    const norms = gn ? gn.binding() : { buffer: this.normsPlaceholder!, offset: 0, size: 16 };
    const maxNorm = gn ? ((this.optimizer as { maxGradNorm?: number }).maxGradNorm ?? 0) : 0;
    rt.dispatch(TENSORS, [partials, s.segments, table, norms, payload], { values: [n, maxNorm], format: 'uf' }, n);
    if (!v) return; // the profile slots stay 0 (fresh buffer, never written)
    const groups: BufferBinding = { buffer: this.groups, offset: 0, size: this.groups.size };
    for (const c of this.plan) {
      if (!c.numGroups) continue;
      rt.dispatch(PROFILE, [v.chunkBinding(c), s.segments, table, groups, payload], { values: [c.groupBase, c.numGroups, c.elemBase, c.elemBase + c.elems, c.blockBase] }, c.numGroups);
    }
    const sTable: BufferBinding = { buffer: this.sampleTable, offset: 0, size: this.sampleTable.size };
    const sGroups: BufferBinding = { buffer: this.sampleGroups, offset: 0, size: this.sampleGroups.size };
    const sOut: BufferBinding = { buffer: this.sampleOut, offset: 0, size: this.sampleOut.size };
    const seed = (this.samplesTaken++ * 0x9e3779b9) >>> 0; // a fresh draw per sample, reproducible per run
    for (const c of this.plan) {
      if (!c.numSampleGroups) continue;
      rt.dispatch(SAMPLE, [v.chunkBinding(c), s.segments, sTable, sGroups, sOut], { values: [c.sampleGroupBase, c.numSampleGroups, c.elemBase, c.elemBase + c.elems, seed] }, c.numSampleGroups);
    }
  }

  /** p50/p90/p99 of a dense v from each tensor's sample (exact when the sample is the whole tensor). */
  private fillSampledQuantiles(payload: Float32Array, samples: Float32Array): void {
    let p = 0;
    this.tensors.forEach((t, k) => {
      const { base, count } = this.samples[k];
      const sorted = samples.slice(base, base + count).sort();
      payload[p + Q_INDEX.vP50] = sortedQuantile(sorted, 0.5);
      payload[p + Q_INDEX.vP90] = sortedQuantile(sorted, 0.9);
      payload[p + Q_INDEX.vP99] = sortedQuantile(sorted, 0.99);
      p += recordFloats(t);
    });
  }

  /** The v-derived fields of every tensor from a factored second moment (dense for the tensors it keeps dense). */
  private fillFactored(payload: Float32Array, f: { row: Map<string, Float32Array>; col: Map<string, Float32Array>; dense: Map<string, Float32Array> }): void {
    let p = 0;
    for (const t of this.tensors) {
      const R = f.row.get(t.name);
      const C = f.col.get(t.name);
      const V = f.dense.get(t.name);
      const fields = R && C ? factoredSecondMoment(R, C) : V ? denseSecondMoment(V, t.rows, t.cols) : null;
      if (fields) {
        payload[p + SCALAR_KEYS.indexOf('vMean')] = fields.vMean;
        payload[p + SCALAR_KEYS.indexOf('vMax')] = fields.vMax;
        payload[p + Q_INDEX.vP50] = fields.quantile(0.5);
        payload[p + Q_INDEX.vP90] = fields.quantile(0.9);
        payload[p + Q_INDEX.vP99] = fields.quantile(0.99);
        const h = p + SCALAR_KEYS.length;
        payload.set(fields.hist, h);
        payload.set(fields.vRow, h + HIST_BINS);
        payload.set(fields.vCol, h + HIST_BINS + t.rows);
      }
      p += recordFloats(t);
    }
  }

  /** momentumNorm of every tensor from a low-rank momentum (‖U·S·Vᵀ‖_F exactly) or its dense state. */
  private fillLowRankMomentum(payload: Float32Array, f: { u: Map<string, Float32Array>; s: Map<string, Float32Array>; v: Map<string, Float32Array>; dense: Map<string, Float32Array> }): void {
    const at = SCALAR_KEYS.indexOf('momentumNorm');
    let p = 0;
    for (const t of this.tensors) {
      const U = f.u.get(t.name);
      const S = f.s.get(t.name);
      const V = f.v.get(t.name);
      const D = f.dense.get(t.name);
      if (U && S && V) payload[p + at] = lowRankNorm(U, S, V, t.rows, t.cols);
      else if (D) payload[p + at] = Math.sqrt(D.reduce((a, x) => a + x * x, 0));
      p += recordFloats(t);
    }
  }

  /** Host part: NaN update ratios when no pre-step copy was taken (the quantiles were filled from v's samples or factors; 0 without a second moment). */
  private finishPayload(payload: Float32Array, hasPrev: boolean): void {
    let p = 0;
    for (const t of this.tensors) {
      if (!hasPrev) payload[p + UPDATE_RATIO] = NaN;
      p += recordFloats(t);
    }
  }

  private externalBytes(): number {
    return (
      this.table.size + this.groups.size + this.partials.size + this.payload.size + (this.normsPlaceholder?.size ?? 0) +
      this.sampleTable.size + this.sampleGroups.size + this.sampleOut.size
    );
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.rt.flush();
    this.rt.pool.trackExternal(-this.externalBytes());
    for (const b of [this.table, this.groups, this.partials, this.payload, this.normsPlaceholder, this.sampleTable, this.sampleGroups, this.sampleOut]) {
      if (!b) continue;
      this.rt.pool.onDestroy?.(b);
      b.destroy();
    }
    this.prev?.destroy();
    this.prev = null;
    this.base?.close();
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('LayerStatsCollector was used after destroy()');
  }
}

/** A captured-energy fraction as the frame stores it: within [0, 1] (rounding can step past), null when absent. */
function clampEnergy(v: number | undefined): number | null {
  if (v === undefined || !Number.isFinite(v)) return null;
  return Math.min(1, Math.max(0, v));
}

/**
 * The tensors of `stats/step-<n>.safetensors` for a frame: per weight `<name>.scalars` [SCALAR_KEYS.length]
 * (SCALAR_KEYS order), `<name>.v_hist` [HIST_BINS], `<name>.v_row` [rows], `<name>.v_col` [cols], and where the
 * frame has them `<name>.captured_energy` [1] and `<name>.saliency_mass` [1]; metadata names the step, the scalar
 * keys, the histogram range and (JSON, name → role) the roles.
 */
export function statsCheckpoint(frame: StatsFrame): { tensors: WriteTensor[]; metadata: Record<string, string> } {
  const tensors: WriteTensor[] = [];
  for (const t of frame.tensors) {
    const scalars = new Float32Array(SCALAR_KEYS.map((k) => t.scalars[k]));
    tensors.push({ name: `${t.name}.scalars`, dtype: 'F32', shape: [SCALAR_KEYS.length], data: scalars });
    tensors.push({ name: `${t.name}.v_hist`, dtype: 'F32', shape: [HIST_BINS], data: t.hist });
    tensors.push({ name: `${t.name}.v_row`, dtype: 'F32', shape: [t.rows], data: t.vRow });
    tensors.push({ name: `${t.name}.v_col`, dtype: 'F32', shape: [t.cols], data: t.vCol });
    if (t.capturedEnergy !== undefined) tensors.push({ name: `${t.name}.captured_energy`, dtype: 'F32', shape: [1], data: new Float32Array([t.capturedEnergy]) });
    if (t.saliencyMass !== undefined) tensors.push({ name: `${t.name}.saliency_mass`, dtype: 'F32', shape: [1], data: new Float32Array([t.saliencyMass]) });
  }
  const roles = Object.fromEntries(frame.tensors.filter((t) => t.role !== undefined).map((t) => [t.name, t.role]));
  const metadata: Record<string, string> = {
    format: 'basin-stats-1',
    step: String(frame.step),
    time: String(frame.time),
    scalarKeys: SCALAR_KEYS.join(','),
    histBins: String(HIST_BINS),
    histLo: String(HIST_LO),
    histHi: String(HIST_HI),
  };
  if (Object.keys(roles).length) metadata.roles = JSON.stringify(roles);
  return { tensors, metadata };
}

/**
 * Make a stats.bin safe to append to after resuming from `keepThroughStep`: keep the leading complete frames with
 * step ≤ keepThroughStep and increasing, drop the rest (frames a killed job wrote past its checkpoint, a torn tail,
 * or anything malformed from there on). Rewrites the file atomically only when something is dropped.
 */
export async function truncateStatsFile(file: string, keepThroughStep: number): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  let off = 0;
  let lastStep = -Infinity;
  for (;;) {
    let r: ReturnType<typeof decodeStatsFrame>;
    try {
      r = decodeStatsFrame(bytes, off);
    } catch (e) {
      if (e instanceof StatsFormatError) break;
      throw e;
    }
    if (!r || r.frame.step > keepThroughStep || r.frame.step <= lastStep) break;
    lastStep = r.frame.step;
    off = r.next;
  }
  if (off < bytes.length) await writeFileAtomic(file, bytes.subarray(0, off));
}
