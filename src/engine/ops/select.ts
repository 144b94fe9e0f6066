// Top-k selection on the GPU without sorting: kthLargest() finds the k-th largest element of a tensor (by value,
// or by magnitude) as a threshold KEY, and topKMask() turns thresholds into a 0/1 mask. Used by the merge methods
// (TIES, breadcrumbs, curvature trims) and meant for the pruning scores. Kernels: kernels/select.wgsl; CPU
// reference: src/engine/cpu/select.ts.
//
// Ties: every element's key is (value key, ~index), all distinct, so the k largest KEYS are exactly k elements:
// among equal values the lower indices are kept first. An all-equal tensor keeps its first k elements.
// Inputs must be finite: a NaN orders above +Inf (signed mode) or above every finite magnitude (abs mode).
//
// Cost: 3 histogram passes over the tensor (each reads it once; digits of 11, 11 and 10 bits) and as many
// one-workgroup scans, then one pass that counts the elements of the threshold's value per block of 2^14, and one
// workgroup that walks the block holding the threshold: 4 reads of the tensor whether ties straddle the threshold
// or not. Tensors above one binding are processed in binding-sized spans.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { Tensor, ShapeError, empty, fmtShape } from '../tensor/tensor';

const WG = 256;
/**
 * Elements per invocation: 64 × 256 per workgroup, so a pass flushes few workgroup histograms into the global one
 * (and a software rasterizer, which pays per workgroup, runs few of them).
 */
const ITEMS = 64;
/** Elements per block of sel_count (kernels/select.wgsl BLOCK_SHIFT); a workgroup's WG × ITEMS must not exceed it. */
export const SELECT_BLOCK = 1 << 14;
if (WG * ITEMS > SELECT_BLOCK) throw new Error('select: a workgroup must span at most two count blocks');
const spec = (entry: string, bindings: KernelSpec['bindings'], wg = WG): KernelSpec => ({ file: 'select', entry, bindings, overrides: { WG: wg } });
const INIT = spec('sel_init', ['rw', 'rw', 'rw']);
/** Radix digits of the value key (kernels/select.wgsl digit_shift/digit_width) and the histogram's bins. */
const STAGES = [0, 1, 2];
const BINS = 2048;
const HIST: KernelSpec = { file: 'select', entry: 'sel_hist', bindings: ['read', 'read', 'rw'], overrides: { WG, ITEMS } };
const SCAN: KernelSpec = { file: 'select', entry: 'sel_scan', bindings: ['rw', 'rw'] };
const COUNT: KernelSpec = { file: 'select', entry: 'sel_count', bindings: ['read', 'read', 'rw'], overrides: { WG, ITEMS } };
const BLOCKS: KernelSpec = { file: 'select', entry: 'sel_blocks', bindings: ['rw', 'read'] };
const FIND: KernelSpec = { file: 'select', entry: 'sel_find', bindings: ['read', 'rw'] };
const MASK = spec('topk_mask', ['read', 'read', 'rw']);
/** Uniform layout of kernels/select.wgsl (SelParams). */
const FORMAT = 'uuuuuuuuu';

/** The threshold of a top-k selection: a u32 tensor [4] on the GPU, (value key, ~index key, _, _). */
export interface TopKThreshold {
  /** u32 [4]: [0] the value key and [1] the inverted-index key of the k-th largest element. */
  key: Tensor;
  k: number;
  n: number;
  abs: boolean;
}

export interface SelectOptions {
  /** Rank by |x| instead of x (default false). */
  abs?: boolean;
}

/** Consecutive element spans of t that each fit one binding: (first element, count, binding, lead). */
interface Piece {
  /** Global index of the first element. */
  start: number;
  n: number;
  binding: BufferBinding;
  /** Elements from the binding's start to the first element. */
  lead: number;
}

function spans(t: Tensor, elemsFrom = 0, count = t.size, globalStart = 0): Piece[] {
  const step = Math.floor(t.rt.maxBindingBytes / 256) * 64 - 64;
  const out: Piece[] = [];
  if (t.size * 4 <= t.rt.maxBindingBytes && elemsFrom === 0 && count === t.size) {
    return [{ start: globalStart, n: t.size, binding: t.binding(), lead: 0 }];
  }
  for (let s = elemsFrom; s < elemsFrom + count; s += step) {
    const n = Math.min(step, elemsFrom + count - s);
    const byte = t.storage.offset + s * 4;
    const bindStart = Math.floor(byte / 256) * 256;
    const lead = (byte - bindStart) / 4;
    out.push({ start: globalStart + s, n, lead, binding: { buffer: t.storage.buffer, offset: bindStart, size: Math.max(4, (lead + n) * 4) } });
  }
  return out;
}

/** A select's GPU state: the key (state, returned), the histogram and the block counts (freed at the end). */
interface SelState {
  key: Tensor;
  hist: Tensor;
  counts: Tensor;
  n: number;
  k: number;
  abs: number;
}

function uniforms(st: SelState, piece: { n: number; lead: number; start: number } | null, stage = 0) {
  return { values: [piece ? piece.n : st.n, piece ? piece.lead : 0, piece ? piece.start : 0, st.abs, stage, st.k, 0, 0, 0], format: FORMAT };
}

function beginSelect(rt: Tensor['rt'], n: number, k: number, abs: boolean): SelState {
  const made: Tensor[] = [];
  const make = (size: number) => {
    const t = empty(rt, [size], 'u32');
    made.push(t);
    return t;
  };
  try {
    const st: SelState = { key: make(4), hist: make(BINS), counts: make(Math.ceil(n / SELECT_BLOCK)), n, k, abs: abs ? 1 : 0 };
    rt.dispatch(INIT, [st.key.binding(), st.hist.binding(), st.counts.binding()], uniforms(st, null), 1);
    return st;
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
}

function disposeSelect(st: SelState): void {
  st.key.dispose();
  st.hist.dispose();
  st.counts.dispose();
}

const groups = (n: number) => Math.ceil(n / (WG * ITEMS));

/** The work of each step of a select on one piece (a binding-sized span of x, at global index `start`). */
const steps = {
  hist: (rt: Tensor['rt'], st: SelState, s: Piece, stage: number) => rt.dispatch(HIST, [s.binding, st.key.binding(), st.hist.binding()], uniforms(st, s, stage), groups(s.n)),
  scan: (rt: Tensor['rt'], st: SelState, stage: number) => rt.dispatch(SCAN, [st.key.binding(), st.hist.binding()], uniforms(st, null, stage), 1),
  count: (rt: Tensor['rt'], st: SelState, s: Piece) => rt.dispatch(COUNT, [s.binding, st.key.binding(), st.counts.binding()], uniforms(st, s), groups(s.n)),
  blocks: (rt: Tensor['rt'], st: SelState) => rt.dispatch(BLOCKS, [st.key.binding(), st.counts.binding()], uniforms(st, null), 1),
  /** One workgroup; it does nothing unless the piece overlaps the block sel_blocks chose (pieces in index order). */
  find: (rt: Tensor['rt'], st: SelState, s: Piece) => rt.dispatch(FIND, [s.binding, st.key.binding()], uniforms(st, s), 1),
};

function endSelect(st: SelState): TopKThreshold {
  st.hist.dispose();
  st.counts.dispose();
  return { key: st.key, k: st.k, n: st.n, abs: st.abs === 1 };
}

function checkK(k: number, n: number, what: string): void {
  // Indices are u32 in the keys and the kernels' parameters: a larger tensor would wrap silently.
  if (n > 0xffffffff) throw new ShapeError(`${what}: ${n} elements; a select handles at most 2^32 − 1 (u32 indices)`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new ShapeError(`${what}: k = ${k} is outside [1, ${n}]`);
}

/**
 * The k-th largest element of x (1 ≤ k ≤ x.size) as a threshold: the elements whose key is ≥ it are exactly the
 * top k (ties by lower index). All GPU work, recorded in order; read it with thresholdValue() if needed.
 */
export function kthLargest(x: Tensor, k: number, opts: SelectOptions = {}): TopKThreshold {
  if (x.dtype !== 'f32') throw new TypeError(`kthLargest: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  checkK(k, x.size, `kthLargest of ${x.name ?? 'a tensor'} ${fmtShape(x.shape)}`);
  const rt = x.rt;
  const st = beginSelect(rt, x.size, k, !!opts.abs);
  try {
    const pieces = spans(x);
    for (const stage of STAGES) {
      for (const s of pieces) steps.hist(rt, st, s, stage);
      steps.scan(rt, st, stage);
    }
    for (const s of pieces) steps.count(rt, st, s);
    steps.blocks(rt, st);
    for (const s of pieces) steps.find(rt, st, s);
  } catch (e) {
    disposeSelect(st);
    throw e;
  }
  return endSelect(st);
}

/**
 * A u32 mask (1 = kept) of x's elements whose key is ≥ `lower` and, when `upper` is given, < `upper`: with
 * lower = kthLargest(x, a + b) and upper = kthLargest(x, a) it keeps ranks a+1 … a+b (breadcrumbs' band).
 * Both thresholds must come from x with the same `abs`. `into` reuses a u32 tensor of x's size.
 */
export function topKMask(x: Tensor, lower: TopKThreshold, upper?: TopKThreshold | null, into?: Tensor): Tensor {
  for (const t of [lower, upper]) {
    if (t && (t.n !== x.size || (upper && t.abs !== lower.abs))) throw new ShapeError(`topKMask: threshold of ${t.n} elements does not belong to ${fmtShape(x.shape)}`);
  }
  const rt = x.rt;
  const mask = into ?? empty(rt, x.shape, 'u32');
  if (mask.size !== x.size || mask.dtype !== 'u32') throw new ShapeError(`topKMask: mask ${fmtShape(mask.shape)} ${mask.dtype} does not match ${fmtShape(x.shape)}`);
  // Both thresholds in one small buffer: [0..3] lower, [4..7] upper.
  const thr = empty(rt, [8], 'u32');
  rt.copy(lower.key.range(), thr.range(), 16);
  if (upper) rt.copy(upper.key.range(), { buffer: thr.storage.buffer, offset: thr.storage.offset + 16, size: 16 }, 16);
  const ms = spans(mask);
  for (const s of spans(x)) {
    const m = ms.length === 1 ? ms[0] : spans(mask, s.start, s.n)[0];
    rt.dispatch(MASK, [s.binding, thr.binding(), m.binding], { values: [s.n, s.lead, s.start, lower.abs ? 1 : 0, 0, 0, 0, upper ? 1 : 0, m.lead], format: FORMAT }, Math.ceil(s.n / WG));
  }
  thr.dispose();
  return mask;
}

/** Read a threshold back: the k-th largest value (|value| in abs mode) and its index. */
export async function thresholdValue(t: TopKThreshold): Promise<{ value: number; index: number }> {
  const a = (await t.key.toArray()) as Uint32Array;
  const hi = a[0];
  const bits = t.abs ? hi : hi & 0x80000000 ? hi & 0x7fffffff : ~hi >>> 0;
  const f = new Float32Array(new Uint32Array([bits]).buffer)[0];
  return { value: f, index: ~a[1] >>> 0 };
}


/** One select of kthLargestStreamed: the k-th largest of source `source`'s elements (by |x| with abs). */
export interface StreamedSelect {
  k: number;
  abs?: boolean;
  /** Which of the sweep's series (default 0). */
  source?: number;
}

/**
 * A sweep over the pieces of the selected series: `visit(source, x, start)` for each piece of each source, as an
 * f32 tensor and the global index of its first element (the piece may be freed once visit returns: the work is
 * recorded in order). Every source's pieces must come in index order, each once. With `within` (ranges of global
 * indices [from, to)), only the pieces overlapping them are needed (visiting more does no harm).
 */
export type SelectSweep = (visit: (source: number, x: Tensor, start: number) => void, within?: readonly (readonly [number, number])[]) => Promise<void>;

/**
 * kthLargest over series of n elements that are never held whole (the merge's row chunks), several selects at
 * once: each sweep of the series serves every select, so the series are read 4 times plus the blocks that hold
 * the thresholds, however many selects there are (a merge trims each expert's scores: one sweep reads the base and
 * every expert once). The same steps as kthLargest on the whole series, so the same thresholds bit for bit: the
 * histograms and block counts are sums, whatever the pieces. Each select's state is read back once, after the
 * count, to know which blocks the last sweep must visit.
 */
export async function kthLargestStreamed(rt: Tensor['rt'], n: number, selects: readonly StreamedSelect[], sweep: SelectSweep): Promise<TopKThreshold[]> {
  for (const s of selects) checkK(s.k, n, 'kthLargestStreamed');
  if (!selects.length) return [];
  const states: SelState[] = [];
  const piecesOf = (x: Tensor, start: number): Piece[] => {
    if (x.dtype !== 'f32') throw new TypeError(`kthLargestStreamed: expected f32 pieces, got ${x.dtype}`);
    return spans(x, 0, x.size, start);
  };
  const each = (step: (st: SelState, s: Piece) => void, within?: [number, number][]) =>
    sweep((source, x, start) => {
      const pieces = piecesOf(x, start);
      states.forEach((st, i) => {
        if ((selects[i].source ?? 0) === source) for (const s of pieces) step(st, s);
      });
    }, within);
  try {
    for (const s of selects) states.push(beginSelect(rt, n, s.k, !!s.abs));
    for (const stage of STAGES) {
      await each((st, s) => steps.hist(rt, st, s, stage));
      for (const st of states) steps.scan(rt, st, stage);
    }
    await each((st, s) => steps.count(rt, st, s));
    for (const st of states) steps.blocks(rt, st);
    const blocks = await Promise.all(states.map(async (st) => ((await st.key.toArray()) as Uint32Array)[3]));
    const within = [...new Set(blocks)].sort((a, b) => a - b).map((b): [number, number] => [b * SELECT_BLOCK, Math.min(n, (b + 1) * SELECT_BLOCK)]);
    await each((st, s) => steps.find(rt, st, s), within);
  } catch (e) {
    states.forEach(disposeSelect);
    throw e;
  }
  return states.map(endSelect);
}
