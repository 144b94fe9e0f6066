// Bounded-memory handling of statistics frames, shared by the host (which reads stats.bin and the live feed) and
// the statistics webview (which keeps decoded frames). Pure TypeScript: no Node, no DOM, no vscode.
//
//   FrameIndexer   splits a byte stream (stats.bin read in chunks, or appended to) into encoded frames without
//                  decoding payloads: a frame's length comes from its header; the tensor list of consecutive
//                  frames is usually identical, so a header is fully parsed only when its tensor part changes.
//   FrameStore     keeps the last `recent` frames in full plus at most `history` older ones, evenly thinned
//                  (every other one dropped when full), within a byte budget; dedups by step and handles a resumed
//                  run whose steps go back.
//   ScalarHistory  the per-tensor scalars of every frame (36 bytes per tensor per frame, 4 more per extra the
//                  frame carries: mao's captured energy, a fine-tune's saliency mass), thinned the same way past
//                  its cap: what the per-layer "over steps" charts ask for at full resolution.
//   lossGap, capturedOverall(Series), saliencyShares, roleCounts   the fine-tuning and mao summaries the panel draws.
//   LineSplitter   metrics.jsonl appended to in chunks: complete lines out, the torn tail kept for next time.

import { checkExtras, EXTRA_KEYS, frameFloats, HIST_BINS, SCALAR_KEYS, StatsFormatError, statsHeaderLength, type ExtraKey, type ScalarKey, type StatsExtras, type StatsTensorInfo, type TensorRole } from '../stats';
import type { LayerHistory, MetricRow, ScalarHistoryPayload } from './stats';

const NSC = SCALAR_KEYS.length;

export interface FrameInfo {
  step: number;
  time: number;
  /** The encoded frame (its own copy, or a view of the caller's bytes; see FrameIndexer). */
  bytes: Uint8Array;
  tensors: StatsTensorInfo[];
  /** The header's per-sample extras (mao's captured energy, a fine-tune's saliency mass), when it has them. */
  extras?: StatsExtras;
  /** Byte offset of the payload inside `bytes`. */
  payloadOffset: number;
}

const TENSORS_KEY = '"tensors"';

/** Parses frame headers, reusing the previous tensor list when a header's tensor part is unchanged. */
export class HeaderCache {
  private lastTensorsText = '';
  private lastTensors: StatsTensorInfo[] = [];
  private lastFloats = 0;
  private readonly decoder = new TextDecoder();

  /**
   * The frame at `offset`: null when `bytes` ends before it does; throws StatsFormatError on malformed bytes.
   * `bytes` in the result is a view (subarray) of the input.
   */
  scan(bytes: Uint8Array, offset: number): FrameInfo | null {
    const hlen = statsHeaderLength(bytes, offset);
    if (hlen === null) return null;
    const text = this.decoder.decode(bytes.subarray(offset + 8, offset + 8 + hlen));
    const ti = text.indexOf(TENSORS_KEY);
    const tensorsText = ti >= 0 ? text.slice(ti).trimEnd() : '';
    let step: number;
    let time: number;
    let tensors: StatsTensorInfo[];
    let floats: number;
    let extras: unknown;
    if (ti >= 0 && tensorsText === this.lastTensorsText) {
      // Same tensor list as the previous frame: only step, time and the extras (written before it) are new.
      let head: { step?: unknown; time?: unknown; extras?: unknown };
      try {
        head = JSON.parse(`${text.slice(0, ti)}"tensors":[]}`) as typeof head;
      } catch (e) {
        throw new StatsFormatError(`stats frame at byte ${offset}: header is not JSON (${(e as Error).message})`);
      }
      step = head.step as number;
      time = head.time as number;
      extras = head.extras;
      tensors = this.lastTensors;
      floats = this.lastFloats;
    } else {
      let header: { step?: unknown; time?: unknown; extras?: unknown; tensors?: unknown };
      try {
        header = JSON.parse(text) as typeof header;
      } catch (e) {
        throw new StatsFormatError(`stats frame at byte ${offset}: header is not JSON (${(e as Error).message})`);
      }
      if (!header || !Array.isArray(header.tensors)) throw new StatsFormatError(`stats frame at byte ${offset}: header lacks tensors`);
      for (const t of header.tensors as StatsTensorInfo[]) {
        if (!t || typeof t.name !== 'string' || !Number.isInteger(t.rows) || !Number.isInteger(t.cols) || t.rows < 0 || t.cols < 0 || !Array.isArray(t.shape)) {
          throw new StatsFormatError(`stats frame at byte ${offset}: a tensor entry is malformed`);
        }
      }
      step = header.step as number;
      time = header.time as number;
      extras = header.extras;
      tensors = header.tensors as StatsTensorInfo[];
      floats = frameFloats(tensors);
      if (ti >= 0) {
        this.lastTensorsText = tensorsText;
        this.lastTensors = tensors;
        this.lastFloats = floats;
      }
    }
    if (typeof step !== 'number' || !Number.isFinite(step)) throw new StatsFormatError(`stats frame at byte ${offset}: header lacks a step`);
    checkExtras(extras, tensors.length, `stats frame at byte ${offset}`);
    const payloadStart = offset + 8 + hlen;
    const end = payloadStart + floats * 4;
    if (bytes.length < end) return null;
    const info: FrameInfo = { step, time: typeof time === 'number' ? time : 0, bytes: bytes.subarray(offset, end), tensors, payloadOffset: 8 + hlen };
    if (extras) info.extras = extras;
    return info;
  }
}

/**
 * Splits appended bytes into frames. push() takes the next chunk of the stream and returns the frames completed
 * by it, each with its own copy of the bytes (so chunks can be reused); an incomplete tail waits for more.
 */
export class FrameIndexer {
  private carry = new Uint8Array(0);
  private readonly headers = new HeaderCache();
  /** Bytes consumed as whole frames so far. */
  consumed = 0;

  push(chunk: Uint8Array): FrameInfo[] {
    let buf: Uint8Array;
    if (this.carry.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.carry.length + chunk.length);
      buf.set(this.carry, 0);
      buf.set(chunk, this.carry.length);
    }
    const out: FrameInfo[] = [];
    let off = 0;
    for (;;) {
      const f = this.headers.scan(buf, off);
      if (!f) break;
      out.push({ ...f, bytes: f.bytes.slice() });
      off += f.bytes.length;
    }
    this.consumed += off;
    this.carry = buf.slice(off);
    return out;
  }

  /** Bytes waiting for the rest of their frame. */
  get pending(): number {
    return this.carry.length;
  }

  reset(): void {
    this.carry = new Uint8Array(0);
    this.consumed = 0;
  }
}

/** The scalars of every tensor of a frame, tensor-major: [t * SCALAR_KEYS.length + k]. Reads only those floats. */
export function frameScalars(f: FrameInfo): Float32Array {
  const out = new Float32Array(f.tensors.length * NSC);
  const dv = new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength);
  let p = f.payloadOffset;
  for (let t = 0; t < f.tensors.length; t++) {
    for (let k = 0; k < NSC; k++) out[t * NSC + k] = dv.getFloat32(p + k * 4, true);
    p += (NSC + HIST_BINS + f.tensors[t].rows + f.tensors[t].cols) * 4;
  }
  return out;
}

export interface FrameStoreOptions {
  /** Frames kept in full at the end. */
  recent: number;
  /** Older frames kept (evenly thinned). */
  history: number;
  /** Byte budget over all kept frames; the newest frame is always kept whatever its size. */
  maxBytes: number;
}

export const DEFAULT_FRAME_STORE: FrameStoreOptions = { recent: 48, history: 48, maxBytes: 192 * 1024 * 1024 };

/**
 * Keeps a bounded set of frames: the last `recent` in full, and at most `history` older ones spread over the run.
 * Generic over what a frame is (encoded bytes on the host, decoded frames in the webview).
 */
export class FrameStore<T> {
  private recentList: T[] = [];
  private historyList: T[] = [];
  private bytes = 0;
  /** Frames added (after dedup) since the start or the last clear. */
  total = 0;
  /** Bumped when frames were dropped from the middle or the end (a resumed run): consumers re-read everything. */
  generation = 0;

  constructor(
    private readonly stepOf: (f: T) => number,
    private readonly sizeOf: (f: T) => number,
    readonly opts: FrameStoreOptions = DEFAULT_FRAME_STORE,
  ) {}

  get lastStep(): number | null {
    const l = this.recentList.length ? this.recentList : this.historyList;
    return l.length ? this.stepOf(l[l.length - 1]) : null;
  }

  get size(): number {
    return this.recentList.length + this.historyList.length;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** Kept frames, oldest first. */
  frames(): T[] {
    return this.historyList.concat(this.recentList);
  }

  latest(): T | undefined {
    return this.recentList[this.recentList.length - 1] ?? this.historyList[this.historyList.length - 1];
  }

  /** The kept frame at `step`, or the last one before it. */
  atOrBefore(step: number): T | undefined {
    const all = this.frames();
    let best: T | undefined;
    for (const f of all) if (this.stepOf(f) <= step) best = f;
    return best;
  }

  /**
   * Adds a frame. A frame whose step equals the last one's is a duplicate (the live feed and the file tail both
   * deliver it): skipped, returns false. A step below the last one means the run was resumed from an earlier
   * checkpoint: frames at or after that step are dropped first.
   */
  add(f: T): boolean {
    const step = this.stepOf(f);
    const last = this.lastStep;
    if (last !== null && step === last) return false;
    if (last !== null && step < last) {
      const keep = (x: T) => this.stepOf(x) < step;
      this.recentList = this.recentList.filter(keep);
      this.historyList = this.historyList.filter(keep);
      this.bytes = 0;
      for (const x of this.frames()) this.bytes += this.sizeOf(x);
      this.generation++;
    }
    this.recentList.push(f);
    this.bytes += this.sizeOf(f);
    this.total++;
    while (this.recentList.length > this.opts.recent) {
      this.historyList.push(this.recentList.shift()!);
      if (this.historyList.length > this.opts.history) this.thinHistory();
    }
    while (this.bytes > this.opts.maxBytes && this.size > 1) {
      if (this.historyList.length > 1) this.thinHistory();
      else if (this.historyList.length === 1) this.bytes -= this.sizeOf(this.historyList.pop()!);
      else this.bytes -= this.sizeOf(this.recentList.shift()!);
    }
    return true;
  }

  clear(): void {
    this.recentList = [];
    this.historyList = [];
    this.bytes = 0;
    this.total = 0;
    this.generation++;
  }

  /** Drops every other history frame, keeping the oldest (the run's start) and the newest. */
  private thinHistory(): void {
    const h = this.historyList;
    if (h.length <= 2) {
      this.bytes -= this.sizeOf(h.shift()!);
      return;
    }
    const kept: T[] = [];
    for (let i = 0; i < h.length; i++) {
      if (i % 2 === 0 || i === h.length - 1) kept.push(h[i]);
      else this.bytes -= this.sizeOf(h[i]);
    }
    this.historyList = kept;
  }
}

/** Per extra key, one value per tensor (NaN where the tensor has none). */
export type HistoryExtras = Partial<Record<ExtraKey, Float32Array>>;

export interface HistoryPoint {
  step: number;
  names: string[];
  scalars: Float32Array;
  extras?: HistoryExtras;
}

/** A frame's extras as Float32 arrays aligned with its tensors (NaN for null); undefined without extras. */
export function extrasArrays(extras: StatsExtras | undefined, n: number): HistoryExtras | undefined {
  if (!extras) return undefined;
  const out: HistoryExtras = {};
  let any = false;
  for (const k of EXTRA_KEYS) {
    const a = extras[k];
    if (!a) continue;
    const f = new Float32Array(n).fill(NaN);
    for (let i = 0; i < Math.min(n, a.length); i++) if (typeof a[i] === 'number') f[i] = a[i] as number;
    out[k] = f;
    any = true;
  }
  return any ? out : undefined;
}

/**
 * Every frame's per-tensor scalars (not the histograms or profiles), for full-resolution "over steps" charts.
 * Past `cap` points it drops every other point (older steps get sparser first only in the sense that the whole
 * series is halved; new points keep arriving at full rate until the next halving).
 */
export class ScalarHistory {
  private points: HistoryPoint[] = [];
  private readonly indexCache = new WeakMap<string[], Map<string, number>>();

  constructor(readonly cap = 2048) {}

  get length(): number {
    return this.points.length;
  }

  add(step: number, names: string[], scalars: Float32Array, extras?: HistoryExtras): void {
    const last = this.points[this.points.length - 1];
    if (last && step === last.step) return;
    if (last && step < last.step) this.points = this.points.filter((p) => p.step < step);
    this.points.push(extras ? { step, names, scalars, extras } : { step, names, scalars });
    if (this.points.length > this.cap) this.points = this.points.filter((_, i) => i % 2 === 0 || i === this.points.length - 1);
  }

  addFrame(f: FrameInfo): void {
    this.add(f.step, this.namesOf(f.tensors), frameScalars(f), extrasArrays(f.extras, f.tensors.length));
  }

  /** The kept points, oldest first (read-only views: summaries over steps, e.g. the mean captured energy). */
  allPoints(): readonly HistoryPoint[] {
    return this.points;
  }

  clear(): void {
    this.points = [];
  }

  private lastTensors: StatsTensorInfo[] | null = null;
  private lastNames: string[] = [];
  /** One names array per distinct tensor list (shared by consecutive frames). */
  private namesOf(tensors: StatsTensorInfo[]): string[] {
    if (tensors !== this.lastTensors) {
      this.lastTensors = tensors;
      this.lastNames = tensors.map((t) => t.name);
    }
    return this.lastNames;
  }

  private indexOf(names: string[], tensor: string): number {
    let m = this.indexCache.get(names);
    if (!m) {
      m = new Map(names.map((n, i) => [n, i]));
      this.indexCache.set(names, m);
    }
    return m.get(tensor) ?? -1;
  }

  /** Steps of the kept points. */
  steps(): number[] {
    return this.points.map((p) => p.step);
  }

  /**
   * The history for `names` (normally the latest frame's tensors) as one Float32 block, thinned evenly to at most
   * `maxPoints` points (the first and the last always kept).
   */
  toPayload(names: string[], maxPoints = 256): ScalarHistoryPayload {
    let pts = this.points;
    if (pts.length > maxPoints) {
      const pick: HistoryPoint[] = [];
      for (let i = 0; i < maxPoints; i++) pick.push(pts[Math.round((i * (pts.length - 1)) / (maxPoints - 1))]);
      pts = pick;
    }
    const T = names.length;
    const data = new Float32Array(pts.length * T * NSC);
    const keys = EXTRA_KEYS.filter((k) => pts.some((p) => p.extras?.[k]));
    const extras: Partial<Record<ExtraKey, Float32Array>> = {};
    for (const k of keys) extras[k] = new Float32Array(pts.length * T).fill(NaN);
    pts.forEach((p, j) => {
      const base = j * T * NSC;
      const same = p.names === names || (p.names.length === T && p.names.every((n, i) => n === names[i]));
      for (const k of keys) {
        const src = p.extras?.[k];
        if (!src) continue;
        if (same) extras[k]!.set(src.subarray(0, T), j * T);
        else for (let t = 0; t < T; t++) {
          const i = this.indexOf(p.names, names[t]);
          if (i >= 0) extras[k]![j * T + t] = src[i];
        }
      }
      if (same) {
        data.set(p.scalars.subarray(0, T * NSC), base);
        return;
      }
      for (let t = 0; t < T; t++) {
        const i = this.indexOf(p.names, names[t]);
        for (let k = 0; k < NSC; k++) data[base + t * NSC + k] = i < 0 ? NaN : p.scalars[i * NSC + k];
      }
    });
    const out: ScalarHistoryPayload = { steps: pts.map((p) => p.step), names, data: data.buffer };
    if (keys.length) out.extras = Object.fromEntries(keys.map((k) => [k, extras[k]!.buffer])) as ScalarHistoryPayload['extras'];
    return out;
  }

  /** Replaces the history with a payload's points. */
  loadPayload(h: ScalarHistoryPayload): void {
    this.points = [];
    const T = h.names.length;
    const all = new Float32Array(h.data);
    const ex = EXTRA_KEYS.filter((k) => h.extras?.[k]).map((k) => [k, new Float32Array(h.extras![k]!)] as const);
    h.steps.forEach((step, j) => {
      const p: HistoryPoint = { step, names: h.names, scalars: all.subarray(j * T * NSC, (j + 1) * T * NSC) };
      if (ex.length) {
        // A point whose values are all NaN had no extras (a frame of an older writer, or before mao started).
        const e: HistoryExtras = {};
        for (const [k, a] of ex) {
          const v = a.subarray(j * T, (j + 1) * T);
          if (v.some((x) => !Number.isNaN(x))) e[k] = v;
        }
        if (Object.keys(e).length) p.extras = e;
      }
      this.points.push(p);
    });
  }

  /** Extra `key` of one tensor over the points that have it. */
  extraSeries(tensor: string, key: ExtraKey): { steps: number[]; values: number[] } {
    const steps: number[] = [];
    const values: number[] = [];
    for (const p of this.points) {
      const a = p.extras?.[key];
      if (!a) continue;
      const i = this.indexOf(p.names, tensor);
      if (i < 0 || Number.isNaN(a[i])) continue;
      steps.push(p.step);
      values.push(a[i]);
    }
    return { steps, values };
  }

  /** Scalar `key` of every tensor at every point, for charts: { steps, values[point] } for tensor `tensor`. */
  series(tensor: string, key: ScalarKey): { steps: number[]; values: number[] } {
    const k = SCALAR_KEYS.indexOf(key);
    const steps: number[] = [];
    const values: number[] = [];
    for (const p of this.points) {
      const i = this.indexOf(p.names, tensor);
      if (i < 0) continue;
      steps.push(p.step);
      values.push(p.scalars[i * NSC + k]);
    }
    return { steps, values };
  }

  /** The tensor's scalars over steps; null when no frame has it. Non-finite values become null. */
  get(tensor: string): LayerHistory | null {
    const steps: number[] = [];
    const scalars = Object.fromEntries(SCALAR_KEYS.map((k) => [k, [] as (number | null)[]])) as Record<ScalarKey, (number | null)[]>;
    const extras: Partial<Record<ExtraKey, (number | null)[]>> = {};
    for (const p of this.points) {
      const i = this.indexOf(p.names, tensor);
      if (i < 0) continue;
      for (const k of EXTRA_KEYS) {
        const v = p.extras?.[k]?.[i];
        if (v !== undefined && Number.isFinite(v)) extras[k] ??= new Array<number | null>(steps.length).fill(null);
        extras[k]?.push(v !== undefined && Number.isFinite(v) ? v : null);
      }
      steps.push(p.step);
      for (let k = 0; k < NSC; k++) {
        const v = p.scalars[i * NSC + k];
        scalars[SCALAR_KEYS[k]].push(Number.isFinite(v) ? v : null);
      }
    }
    if (!steps.length) return null;
    return Object.keys(extras).length ? { tensor, steps, scalars, extras } : { tensor, steps, scalars };
  }
}

/** Splits appended text into complete lines; the part after the last newline waits for the next chunk. */
export class LineSplitter {
  private tail = '';

  push(text: string): string[] {
    const s = this.tail + text;
    const lines = s.split('\n');
    this.tail = lines.pop() ?? '';
    return lines.filter((l) => l.trim() !== '');
  }

  /** The unterminated last line (a finished file may lack the final newline). */
  flush(): string[] {
    const t = this.tail;
    this.tail = '';
    return t.trim() ? [t] : [];
  }
}

/** The ArrayBuffer holding exactly `bytes` (copied unless the view already spans its whole buffer). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer as ArrayBuffer;
}

// ------------------------------------------------------------------------------ fine-tuning and mao summaries

/**
 * The overfitting gap at each evaluation: validation loss minus the training loss around the same step — the mean
 * of the training losses logged since the previous evaluation (one batch's loss is noisy), or the last one logged
 * before it when none was logged in between. Rows in file order (the trainer logs a step's loss before its
 * evaluation).
 */
export function lossGap(rows: readonly MetricRow[], trainKey = 'loss', valKey = 'val_loss'): { steps: number[]; gaps: number[] } {
  const steps: number[] = [];
  const gaps: number[] = [];
  let sum = 0;
  let count = 0;
  let last: number | null = null;
  for (const r of rows) {
    const t = r[trainKey];
    if (typeof t === 'number') {
      sum += t;
      count++;
      last = t;
    }
    const v = r[valKey];
    if (typeof v !== 'number') continue;
    const train = count ? sum / count : last;
    if (train === null) continue;
    steps.push(r.step);
    gaps.push(v - train);
    sum = 0;
    count = 0;
  }
  return { steps, gaps };
}

/**
 * mao's captured momentum energy over all its factored tensors: Σ‖U·S·Vᵀ‖² / Σ‖M̃‖², each tensor's total energy
 * being momentumNorm² / fraction (momentumNorm is ‖U·S·Vᵀ‖_F, the factors' norm). Tensors without a fraction (NaN:
 * dense momentum) are left out; when no tensor has momentum yet it is the plain mean of the fractions. Null when
 * no tensor has one.
 */
export function capturedOverall(fractions: ArrayLike<number>, momentumNorms: ArrayLike<number>): { overall: number; tensors: number } | null {
  let kept = 0;
  let total = 0;
  let n = 0;
  let mean = 0;
  for (let i = 0; i < fractions.length; i++) {
    const f = fractions[i];
    if (!Number.isFinite(f)) continue;
    n++;
    mean += f;
    const m2 = momentumNorms[i] ** 2;
    if (f > 0 && Number.isFinite(m2) && m2 > 0) {
      kept += m2;
      total += m2 / f;
    }
  }
  if (!n) return null;
  return { overall: total > 0 ? kept / total : mean / n, tensors: n };
}

/** capturedOverall of each history point that has captured energies: the summary line over steps. */
export function capturedOverallSeries(points: readonly HistoryPoint[]): { steps: number[]; values: number[] } {
  const at = SCALAR_KEYS.indexOf('momentumNorm');
  const steps: number[] = [];
  const values: number[] = [];
  for (const p of points) {
    const f = p.extras?.capturedEnergy;
    if (!f) continue;
    const norms = new Float32Array(f.length);
    for (let i = 0; i < f.length; i++) norms[i] = p.scalars[i * NSC + at];
    const c = capturedOverall(f, norms);
    if (!c) continue;
    steps.push(p.step);
    values.push(c.overall);
  }
  return { steps, values };
}

/** Tensors by saliency mass, largest first, with their share of the total (tensors without one left out). */
export function saliencyShares(tensors: readonly { name: string; saliencyMass?: number }[]): { name: string; mass: number; share: number }[] {
  const withMass = tensors.filter((t): t is { name: string; saliencyMass: number } => typeof t.saliencyMass === 'number' && Number.isFinite(t.saliencyMass));
  const total = withMass.reduce((a, t) => a + t.saliencyMass, 0);
  return withMass.map((t) => ({ name: t.name, mass: t.saliencyMass, share: total > 0 ? t.saliencyMass / total : 0 })).sort((a, b) => b.mass - a.mass);
}

/** How many tensors have each role; `unknown`: frames of older writers record none. */
export function roleCounts(tensors: readonly { role?: TensorRole }[]): Record<TensorRole | 'unknown', number> {
  const out = { trained: 0, frozen: 0, lora: 0, adapter: 0, unknown: 0 };
  for (const t of tensors) out[t.role ?? 'unknown']++;
  return out;
}
