// Top-k selection on the GPU without sorting: kthLargest() finds the k-th largest element of a tensor (by value,
// or by magnitude) as a threshold KEY, and topKMask() turns thresholds into a 0/1 mask. Used by the merge methods
// (TIES, breadcrumbs, curvature trims) and meant for the pruning scores. Kernels: kernels/select.wgsl; CPU
// reference: src/engine/cpu/select.ts.
//
// Ties: every element's key is (value key, ~index), all distinct, so the k largest KEYS are exactly k elements:
// among equal values the lower indices are kept first. An all-equal tensor keeps its first k elements.
// Inputs must be finite: a NaN orders above +Inf (signed mode) or above every finite magnitude (abs mode).
//
// Cost: 4 histogram passes over the tensor (each reads it once) and as many one-invocation scans, then either one
// pass that finds the highest tied index (when every element of the threshold's value is kept: the usual case)
// or ⌈log₂₅₆ n⌉ index passes (when ties straddle the threshold); the others are recorded too and return at once,
// since nothing is read back to choose. Tensors above one binding are processed in binding-sized spans.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding } from '../gpu/runtime';
import { Tensor, ShapeError, empty, fmtShape } from '../tensor/tensor';

const WG = 256;
const spec = (entry: string, bindings: KernelSpec['bindings'], wg = WG): KernelSpec => ({ file: 'select', entry, bindings, overrides: { WG: wg } });
const INIT = spec('sel_init', ['rw', 'rw']);
/**
 * Elements per invocation: 64 × 256 per workgroup, so a pass flushes few workgroup histograms into the global one
 * (and a software rasterizer, which pays per workgroup, runs few of them).
 */
const ITEMS = 64;
const HIST: KernelSpec = { file: 'select', entry: 'sel_hist', bindings: ['read', 'read', 'rw'], overrides: { WG, ITEMS } };
const SCAN: KernelSpec = { file: 'select', entry: 'sel_scan', bindings: ['rw', 'rw'] };
const TIE: KernelSpec = { file: 'select', entry: 'sel_tie', bindings: ['read', 'rw'], overrides: { WG, ITEMS } };
const TIE_DONE: KernelSpec = { file: 'select', entry: 'sel_tie_done', bindings: ['rw'] };
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

/** Index bytes (of ~index) that vary for n elements: ⌈log₂₅₆ n⌉, at least 1. */
export function indexBytes(n: number): number {
  let m = 1;
  while (m < 4 && n > 2 ** (8 * m)) m++;
  return m;
}

/** ~index prefix with the bytes that never vary (the high 4 − m bytes are all ones) already fixed. */
export function loInit(n: number): number {
  const m = indexBytes(n);
  return m === 4 ? 0 : (0xffffffff << (8 * m)) >>> 0;
}

/** Consecutive element spans of t that each fit one binding: (first element, count, binding, lead). */
function spans(t: Tensor, elemsFrom = 0, count = t.size): { start: number; n: number; binding: BufferBinding; lead: number }[] {
  const step = Math.floor(t.rt.maxBindingBytes / 256) * 64 - 64;
  const out: { start: number; n: number; binding: BufferBinding; lead: number }[] = [];
  if (t.size * 4 <= t.rt.maxBindingBytes && elemsFrom === 0 && count === t.size) {
    return [{ start: 0, n: t.size, binding: t.binding(), lead: 0 }];
  }
  for (let s = elemsFrom; s < elemsFrom + count; s += step) {
    const n = Math.min(step, elemsFrom + count - s);
    const byte = t.storage.offset + s * 4;
    const bindStart = Math.floor(byte / 256) * 256;
    const lead = (byte - bindStart) / 4;
    out.push({ start: s, n, lead, binding: { buffer: t.storage.buffer, offset: bindStart, size: Math.max(4, (lead + n) * 4) } });
  }
  return out;
}

/**
 * The k-th largest element of x (1 ≤ k ≤ x.size) as a threshold: the elements whose key is ≥ it are exactly the
 * top k (ties by lower index). All GPU work, recorded in order; read it with thresholdValue() if needed.
 */
export function kthLargest(x: Tensor, k: number, opts: SelectOptions = {}): TopKThreshold {
  if (x.dtype !== 'f32') throw new TypeError(`kthLargest: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  const n = x.size;
  if (!Number.isInteger(k) || k < 1 || k > n) throw new ShapeError(`kthLargest: k = ${k} is outside [1, ${n}] for ${x.name ?? 'a tensor'} ${fmtShape(x.shape)}`);
  const rt = x.rt;
  const abs = opts.abs ? 1 : 0;
  const key = empty(rt, [4], 'u32');
  const hist = empty(rt, [256], 'u32');
  const init = loInit(n);
  rt.dispatch(INIT, [key.binding(), hist.binding()], { values: [n, 0, 0, abs, 0, k, init, 0, 0], format: FORMAT }, 1);
  const passes = [0, 1, 2, 3];
  for (let q = 4 - indexBytes(n); q < 4; q++) passes.push(4 + q);
  const pieces = spans(x);
  for (const pass of passes) {
    for (const s of pieces) {
      rt.dispatch(HIST, [s.binding, key.binding(), hist.binding()], { values: [s.n, s.lead, s.start, abs, pass, k, init, 0, 0], format: FORMAT }, Math.ceil(s.n / (WG * ITEMS)));
    }
    rt.dispatch(SCAN, [key.binding(), hist.binding()], { values: [n, 0, 0, abs, pass, k, init, 0, 0], format: FORMAT }, 1);
    if (pass === 3) {
      // Tie mode (set by this scan when the threshold's value is kept whole): the highest tied index.
      for (const s of pieces) {
        rt.dispatch(TIE, [s.binding, key.binding()], { values: [s.n, s.lead, s.start, abs, 0, k, init, 0, 0], format: FORMAT }, Math.ceil(s.n / (WG * ITEMS)));
      }
      rt.dispatch(TIE_DONE, [key.binding()], { values: [n, 0, 0, abs, 0, k, init, 0, 0], format: FORMAT }, 1);
    }
  }
  hist.dispose();
  return { key, k, n, abs: !!opts.abs };
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


/**
 * kthLargest over a tensor of n elements that is never held whole (the merge's row chunks): `sweep(visit)` hands
 * over every piece once, in any order, as an f32 tensor and the global index of its first element (the piece may
 * be freed once visit returns; the work is recorded in order). The same passes as kthLargest on the whole tensor,
 * so the same threshold bit for bit: the histograms are counts and the tie pass a max, whatever the pieces. The
 * state is read back once after the last value byte, so only the needed sweeps run: the tie pass (the usual case)
 * or the index passes; 5 sweeps in all, usually.
 */
export async function kthLargestStreamed(
  rt: Tensor['rt'],
  n: number,
  k: number,
  opts: SelectOptions,
  sweep: (visit: (x: Tensor, start: number) => void) => Promise<void>,
): Promise<TopKThreshold> {
  if (!Number.isInteger(k) || k < 1 || k > n) throw new ShapeError(`kthLargestStreamed: k = ${k} is outside [1, ${n}]`);
  const abs = opts.abs ? 1 : 0;
  const key = empty(rt, [4], 'u32');
  const hist = empty(rt, [256], 'u32');
  const init = loInit(n);
  const u = (vals: number[]) => ({ values: vals, format: FORMAT });
  try {
    rt.dispatch(INIT, [key.binding(), hist.binding()], u([n, 0, 0, abs, 0, k, init, 0, 0]), 1);
    const histSweep = (pass: number) =>
      sweep((x, start) => {
        if (x.dtype !== 'f32') throw new TypeError(`kthLargestStreamed: expected f32 pieces, got ${x.dtype}`);
        for (const s of spans(x)) {
          rt.dispatch(HIST, [s.binding, key.binding(), hist.binding()], u([s.n, s.lead, start + s.start, abs, pass, k, init, 0, 0]), Math.ceil(s.n / (WG * ITEMS)));
        }
      });
    for (const pass of [0, 1, 2, 3]) {
      await histSweep(pass);
      rt.dispatch(SCAN, [key.binding(), hist.binding()], u([n, 0, 0, abs, pass, k, init, 0, 0]), 1);
    }
    const tieMode = ((await key.toArray()) as Uint32Array)[3] !== 0;
    if (tieMode) {
      await sweep((x, start) => {
        for (const s of spans(x)) rt.dispatch(TIE, [s.binding, key.binding()], u([s.n, s.lead, start + s.start, abs, 0, k, init, 0, 0]), Math.ceil(s.n / (WG * ITEMS)));
      });
      rt.dispatch(TIE_DONE, [key.binding()], u([n, 0, 0, abs, 0, k, init, 0, 0]), 1);
    } else {
      // Without tie mode the tie pass and sel_tie_done change nothing: only the index passes remain.
      for (let q = 4 - indexBytes(n); q < 4; q++) {
        await histSweep(4 + q);
        rt.dispatch(SCAN, [key.binding(), hist.binding()], u([n, 0, 0, abs, 4 + q, k, init, 0, 0]), 1);
      }
    }
  } catch (e) {
    key.dispose();
    throw e;
  } finally {
    hist.dispose();
  }
  return { key, k, n, abs: !!opts.abs };
}
