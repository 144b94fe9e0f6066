// Matrix multiply family: matmul (2-D and batched, operands transposed in place) and linear (x·Wᵀ + b with the
// bias fused into the kernel's epilogue), each with its backward. Kernel: kernels/matmul.wgsl.
//
// Every product goes through gemm(): C[b] = op(A[b]) · op(B[b]) (+ bias), where a batch stride of 0 shares a
// 2-D operand across the batch and `sumBatch` makes the batch part of the contraction (the gradient of a shared
// operand). gemm folds the batch into M or K where the memory layout allows, so the kernel sees one large
// matrix instead of many small ones.
//
// linear() with a weight above the binding limit (an output layer over a large vocabulary) runs per row chunk
// of the weight (linearChunked); everything else binds its operands whole, and the runtime refuses an operand
// above the limit by name before recording anything.
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import { leafGradSink, needsGrad, record } from '../autograd/tape';
import { BindingLimitError, ShapeError, Tensor, bindingLimitError, empty, fmtBytes, fmtShape, numel, rowRanges, view } from '../tensor/tensor';
import { axpbyInPlace, copyColumns } from './basic';
import { castF16 } from './convert';
import { sum } from './reduce';

export interface MatmulOptions {
  /** Read a as its transpose: a is stored [..., K, M]. */
  transA?: boolean;
  /** Read b as its transpose: b is stored [..., N, K]. */
  transB?: boolean;
}

/** Tile shape of the register-blocked kernel: invocations per workgroup and the block of C each computes. */
export interface MatmulTiles {
  wgx: number;
  wgy: number;
  /** Rows per invocation, 1..8. */
  tm: number;
  /** vec4 column groups per invocation, 1..2. */
  tn4: number;
}

const SOFT_TILES: MatmulTiles = { wgx: 8, wgy: 8, tm: 8, tn4: 2 };
const GPU_TILES: MatmulTiles = { wgx: 16, wgy: 16, tm: 4, tn4: 1 };
let tileOverride: MatmulTiles | null = null;

/** Force a tile shape (benchmarks and tests); null restores the choice by adapter. Returns the previous one. */
export function setMatmulTiles(t: MatmulTiles | null): MatmulTiles | null {
  const prev = tileOverride;
  tileOverride = t;
  return prev;
}

let vecMode: 'auto' | 'scalar' | 'wide' = 'auto';

/** kernels/matmul.wgsl's element type for A and B: f32, or f16 (mixed precision; the entries end in _f16). */
const F32_DEFINES = { E: 'f32', V4: 'vec4f', ENABLE: '', SUFFIX: '' } as const;
const F16_DEFINES = { E: 'f16', V4: 'vec4<f16>', ENABLE: 'enable f16;', SUFFIX: '_f16' } as const;

/**
 * On software adapters, products of at least this many multiply-adds (m·n·k per output batch) use the 16 × 16
 * block kernel (matmul_vec4_wide): twice the throughput, but a slower first compile that small products (tests,
 * small models) should not pay. Real GPUs keep the 8 × 8 kernel until a shared-memory variant is tuned there.
 */
const WIDE_MIN_MACS = 1 << 26;

/**
 * 'scalar' forces the scalar-load kernel (matmul_reg) for every shape; 'auto' uses matmul_vec4 where the dims
 * allow (and matmul_vec4_wide for large products on software adapters); 'wide' uses matmul_vec4_wide wherever
 * it applies. Tests use it to run every kernel on the same shapes. Returns the previous mode.
 */
export function setMatmulVec4(mode: 'auto' | 'scalar' | 'wide'): 'auto' | 'scalar' | 'wide' {
  const prev = vecMode;
  vecMode = mode;
  return prev;
}

function tilesFor(rt: Runtime): MatmulTiles {
  return tileOverride ?? (rt.gpu.info.fallback ? SOFT_TILES : GPU_TILES);
}

interface Gemm {
  a: Tensor;
  b: Tensor;
  transA: boolean;
  transB: boolean;
  batch: number;
  m: number;
  n: number;
  k: number;
  /** Batch strides in elements; 0 shares the operand across the batch. */
  sa: number;
  sb: number;
  /** Σ over the batch into one [m, n] result. */
  sumBatch: boolean;
  bias?: Tensor;
  outShape: readonly number[];
  /** Write into this tensor (outShape's size) instead of a new one. */
  out?: Tensor;
}

/** Record one matmul dispatch (no autograd). */
function gemm(q: Gemm): Tensor {
  let { batch, m, k, sumBatch } = q;
  const { n } = q;
  let { sa, sb } = q;
  // Σ_b A[b]ᵀ·B[b] with A stored [K, M] and B [K, N] per batch: the batches stack along K.
  if (sumBatch && batch > 1 && q.transA && !q.transB && sa === k * m && sb === k * n) {
    k *= batch;
    batch = 1;
  }
  // A batched [batch, M, K] against a shared B: one [batch·M, K] matrix, and C's layout is the same.
  if (!sumBatch && batch > 1 && sb === 0 && !q.transA && sa === m * k) {
    m *= batch;
    batch = 1;
  }
  if (batch === 1) {
    sumBatch = false;
    sa = 0;
    sb = 0;
  }
  const rt = q.a.rt;
  const out = q.out ?? empty(rt, q.outShape);
  if (out.size === 0) return out;
  const t = tilesFor(rt);
  const overrides = { TRANS_A: q.transA ? 1 : 0, TRANS_B: q.transB ? 1 : 0, BIAS: q.bias ? 1 : 0, WGX: t.wgx, WGY: t.wgy };
  // f16 operands (mixed precision): the same kernels on f16 loads, f32 sums.
  const half = q.a.dtype === 'f16';
  // vec4 loads and stores need K and N (and M when A is transposed) to be multiples of 4.
  const vec4 = vecMode !== 'scalar' && k % 4 === 0 && n % 4 === 0 && (!q.transA || m % 4 === 0);
  const wide = !half && vec4 && !q.transA && (vecMode === 'wide' || (vecMode === 'auto' && rt.gpu.info.fallback && m * n * k >= WIDE_MIN_MACS));
  const block = wide ? 16 : 8;
  const tilesX = vec4 ? Math.ceil(n / (t.wgx * block)) : Math.ceil(n / (t.wgx * t.tn4 * 4));
  const tilesY = vec4 ? Math.ceil(m / (t.wgy * block)) : Math.ceil(m / (t.wgy * t.tm));
  const outBatches = sumBatch ? 1 : batch;
  // f16 operands (mixed precision) use the same file with f16 loads (kernels/matmul.wgsl's defines).
  const defines = half ? F16_DEFINES : F32_DEFINES;
  const suffix = half ? '_f16' : '';
  const spec: KernelSpec = vec4
    ? { file: 'matmul', entry: `${wide ? 'matmul_vec4_wide' : 'matmul_vec4'}${suffix}`, bindings: ['read', 'read', 'read', 'rw'], overrides, defines }
    : { file: 'matmul', entry: `matmul_reg${suffix}`, bindings: ['read', 'read', 'read', 'rw'], overrides: { ...overrides, TM: t.tm, TN4: t.tn4 }, defines };
  // Without a bias its binding is unused; a stands in (two read-only bindings may alias).
  const bufs = [q.a.binding(), q.b.binding(), (q.bias ?? q.a).binding(), out.binding()];
  const values = [m, n, k, batch, sa, sb, sumBatch ? 0 : m * n, sumBatch ? 1 : 0, tilesX, tilesY, 0, 0];
  rt.dispatch(spec, bufs, { values }, tilesX * tilesY * outBatches);
  return out;
}

function assertF32(x: Tensor, op: string): void {
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
}

/** Both operands f32, or both f16 (the mixed-precision product: no gradient flows into f16 copies). */
function assertOperands(a: Tensor, b: Tensor, op: string): void {
  if (a.dtype === 'f16' && b.dtype === 'f16') {
    if (!a.rt.hasF16) throw new Error(`${op}: f16 operands need the device's shader-f16 feature, which this device lacks`);
    if (a.requiresGrad || b.requiresGrad) throw new TypeError(`${op}: f16 operands take no gradient (train the f32 master weights; see linearHalf)`);
    return;
  }
  if (a.dtype === 'f16' || b.dtype === 'f16') {
    throw new TypeError(`${op}: operands must both be f32 or both f16, got ${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}`);
  }
  assertF32(a, op);
  assertF32(b, op);
}

/**
 * Matrix product of the last two dims. a is [..., M, K] (transA: [..., K, M]) and b is [..., K, N]
 * (transB: [..., N, K]); the leading (batch) dims must be equal, or one operand is 2-D and shared across the
 * other's batch. Transposed operands are read in place. Result: [..., M, N], f32. Both operands may be f16 (the
 * product accumulates in f32; such operands take no gradient).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  assertOperands(a, b, 'matmul');
  const transA = Boolean(opts.transA);
  const transB = Boolean(opts.transB);
  const desc = () => `${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} × ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`;
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: both operands need at least 2 dims, got ${desc()}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new ShapeError(`matmul: inner dims differ (${k} vs ${kb}) in ${desc()}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  let batchShape: readonly number[];
  if (a.rank === 2) batchShape = bBatch;
  else if (b.rank === 2) batchShape = aBatch;
  else if (aBatch.length === bBatch.length && aBatch.every((d, i) => d === bBatch[i])) batchShape = aBatch;
  else throw new ShapeError(`matmul: batch dims must match or one operand must be 2-D, got ${desc()}`);
  const batch = numel(batchShape);
  const sa = a.rank === 2 ? 0 : m * k;
  const sb = b.rank === 2 ? 0 : k * n;
  const out = gemm({ a, b, transA, transB, batch, m, n, k, sa, sb, sumBatch: false, outShape: [...batchShape, m, n] });

  return record(out, 'matmul', [a, b], (g) => {
    const sg = m * n;
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (a.requiresGrad) {
      // op(A)' = g · op(B)ᵀ; stored transposed, A' = op(B) · gᵀ. A shared A sums over the batch.
      const shared = a.rank === 2 && batch > 1 && sb !== 0;
      const base = { batch, sumBatch: shared, outShape: a.shape };
      da = transA
        ? gemm({ ...base, a: b, b: g, transA: transB, transB: true, m: k, n: m, k: n, sa: sb, sb: sg })
        : gemm({ ...base, a: g, b, transA: false, transB: !transB, m, n: k, k: n, sa: sg, sb });
    }
    if (b.requiresGrad) {
      // op(B)' = op(A)ᵀ · g; stored transposed, B' = gᵀ · op(A).
      const shared = b.rank === 2 && batch > 1 && sa !== 0;
      const base = { batch, sumBatch: shared, outShape: b.shape };
      db = transB
        ? gemm({ ...base, a: g, b: a, transA: true, transB: transA, m: n, n: k, k: m, sa: sg, sb: sa })
        : gemm({ ...base, a, b: g, transA: !transA, transB: false, m: k, n, k: m, sa, sb: sg });
    }
    return [da, db];
  });
}

/** The gradient of linear's bias: Σ over the rows of g ([rows, out]); null when the bias needs none. */
function biasGrad(g: Tensor, bias: Tensor, rows: number, outF: number): Tensor | null {
  if (!bias.requiresGrad) return null;
  const g2 = g.reshape([rows, outF]);
  const db = sum(g2, 0);
  g2.dispose();
  return db;
}

/**
 * y = x·Wᵀ + b for x [..., in], weight [out, in] (PyTorch layout) and bias [out]; the bias is added in the
 * matmul's epilogue. Result: [..., out].
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  assertF32(x, 'linear');
  assertF32(weight, 'linear');
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got ${fmtShape(weight.shape)} for input ${fmtShape(x.shape)}`);
  const [outF, inF] = weight.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not end in ${inF}, the in-features of weight ${fmtShape(weight.shape)}`);
  }
  if (bias) {
    assertF32(bias, 'linear');
    if (bias.rank !== 1 || bias.shape[0] !== outF) throw new ShapeError(`linear: bias ${fmtShape(bias.shape)} does not match weight ${fmtShape(weight.shape)}`);
  }
  const rows = numel(x.shape.slice(0, -1));
  const outShape = [...x.shape.slice(0, -1), outF];
  if (weight.size * 4 > x.rt.maxBindingBytes) return linearChunked(x, weight, bias, rows, outShape);
  if (needsGrad(weight)) countSaved(x, x.size * 4); // dW needs x
  const y = gemm({ a: x, b: weight, transA: false, transB: true, batch: 1, m: rows, n: outF, k: inF, sa: 0, sb: 0, sumBatch: false, bias, outShape });
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(y, 'linear', inputs, (g) => {
    const one = { batch: 1, sa: 0, sb: 0, sumBatch: false };
    // dx = g · W ([rows, out] × [out, in]); dW = gᵀ · x ([out, rows] × [rows, in]); db = Σ_rows g.
    const dx = x.requiresGrad ? gemm({ ...one, a: g, b: weight, transA: false, transB: false, m: rows, n: inF, k: outF, outShape: x.shape }) : null;
    const dw = weight.requiresGrad ? gemm({ ...one, a: g, b: x, transA: true, transB: false, m: outF, n: inF, k: rows, outShape: weight.shape }) : null;
    return bias ? [dx, dw, biasGrad(g, bias, rows, outF)] : [dx, dw];
  });
}

/**
 * Bytes of layer inputs that linear() and linearHalf() held for their backward (the input x that dW = gᵀ·x reads),
 * summed since the caller last set it to 0: 4 per element in f32, 2 for linearHalf's f16 copy. Benchmarks and tests
 * read it to state what mixed precision saves in saved activations.
 */
export const linearSaved = { bytes: 0 };

/** Inputs already counted in linearSaved: layers that share an input (q, k, v) share what they keep. */
const counted = new WeakSet<Tensor>();

function countSaved(t: Tensor, bytes: number): void {
  if (counted.has(t)) return;
  counted.add(t);
  linearSaved.bytes += bytes;
}

/**
 * The f16 copy of each input already cast while recording gradients: q, k and v read the same x, and one copy
 * (one cast, one saved tensor) serves the three. Keyed by the tensor object (a disposed input's buffer reused by
 * a new tensor is a new key); a copy disposed with its tidy() scope is cast again.
 */
const halfInputs = new WeakMap<Tensor, Tensor>();

/**
 * linear() in mixed precision: y = x·Wᵀ + b with x and W rounded to f16 and the products summed in f32 (the f16
 * kernel of gemm), y and the bias f32. `weight16` is the f16 copy of `weight` that the caller keeps fresh (cast
 * once per optimizer step, src/engine/train/mixed-precision.ts); the f32 weight is the master copy, the one that
 * takes the gradient. What the backward keeps is the f16 copy of x: half the bytes of linear()'s f32 input.
 * Backward: the output gradient is rounded to f16 too (it arrives multiplied by the loss scale, which keeps small
 * values above f16's underflow), dx = g16·W16 and dW = g16ᵀ·x16 are summed in f32 and land as f32 gradients;
 * an f16 overflow there is an Inf the loss scaler sees and answers by skipping the step.
 * A weight above one binding falls back to linear() (its row-chunked path is f32 only).
 */
export function linearHalf(x: Tensor, weight: Tensor, weight16: Tensor, bias?: Tensor): Tensor {
  if (weight16.dtype !== 'f16' || weight16.size !== weight.size) {
    throw new TypeError(`linearHalf: the half copy of ${fmtShape(weight.shape)} must be f16 of the same shape, got ${weight16.dtype} ${fmtShape(weight16.shape)}`);
  }
  if (weight.size * 4 > x.rt.maxBindingBytes) return linear(x, weight, bias);
  assertF32(x, 'linear');
  assertF32(weight, 'linear');
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got ${fmtShape(weight.shape)} for input ${fmtShape(x.shape)}`);
  const [outF, inF] = weight.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not end in ${inF}, the in-features of weight ${fmtShape(weight.shape)}`);
  }
  if (bias) {
    assertF32(bias, 'linear');
    if (bias.rank !== 1 || bias.shape[0] !== outF) throw new ShapeError(`linear: bias ${fmtShape(bias.shape)} does not match weight ${fmtShape(weight.shape)}`);
  }
  const rows = numel(x.shape.slice(0, -1));
  const outShape = [...x.shape.slice(0, -1), outF];
  const one = { batch: 1, sa: 0, sb: 0, sumBatch: false };
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const training = needsGrad(...inputs);
  const cached = training ? halfInputs.get(x) : undefined;
  const x16 = cached && !cached.isDisposed ? cached : castF16(x);
  const y = gemm({ ...one, a: x16, b: weight16, transA: false, transB: true, m: rows, n: outF, k: inF, bias, outShape });
  if (!training) {
    x16.dispose(); // recorded work keeps its buffer until submitted (the pool reuses it only after that)
    return y;
  }
  halfInputs.set(x, x16);
  if (weight.requiresGrad) countSaved(x16, x16.byteSize);
  return record(y, 'linear_f16', inputs, (g) => {
    const g16 = castF16(g);
    const dx = x.requiresGrad ? gemm({ ...one, a: g16, b: weight16, transA: false, transB: false, m: rows, n: inF, k: outF, outShape: x.shape }) : null;
    const dw = weight.requiresGrad ? gemm({ ...one, a: g16, b: x16, transA: true, transB: false, m: outF, n: inF, k: rows, outShape: weight.shape }) : null;
    g16.dispose();
    return bias ? [dx, dw, biasGrad(g, bias, rows, outF)] : [dx, dw];
  });
}

/**
 * linear() for a weight [out, in] above the binding limit whose output [rows, out] fits one binding: the weight is
 * cut into row chunks that each fit a binding (plain views at 256-byte-aligned offsets), and chunk c computes
 * the logits of output columns [r0, r1):
 *   forward   y[:, r0:r1] = x · W[r0:r1]ᵀ + b[r0:r1]   (gemm into a [rows, r1 − r0] temporary, placed by copyColumns)
 *   backward  dx = Σ_c g[:, r0:r1] · W[r0:r1];  dW[r0:r1] = g[:, r0:r1]ᵀ · x, added straight into a leaf
 *             weight's gradient (leafGradSink), else written into a view of a full-size dW;
 *             db = Σ_rows g as in the unchunked path.
 * An output above one binding is refused: that needs a loss fused with the output layer (not done here).
 */
function linearChunked(x: Tensor, weight: Tensor, bias: Tensor | undefined, rows: number, outShape: number[]): Tensor {
  const rt = x.rt;
  const [outF, inF] = weight.shape;
  const limit = rt.maxBindingBytes;
  // Every check before anything is allocated or recorded.
  const yBytes = rows * outF * 4;
  if (yBytes > limit) {
    const what = weight.name ? `${weight.name} ${fmtShape(weight.shape)}` : `weight ${fmtShape(weight.shape)}`;
    throw new BindingLimitError(
      `linear: the output ${fmtShape(outShape)} of ${what} needs ${fmtBytes(yBytes)} (${yBytes} bytes) in one storage ` +
        `binding, over this device's limit of ${fmtBytes(limit)} (${limit} bytes, maxStorageBufferBindingSize). ` +
        `The weight may be split over bindings, the output may not (a loss fused with the output layer would avoid it): ` +
        `use fewer rows per batch (batch size × sequence length) or a smaller number of outputs (vocabulary).`,
      `linear output ${fmtShape(outShape)}`,
      yBytes,
      limit,
    );
  }
  if (x.size * 4 > limit) throw bindingLimitError(x, x.size * 4, limit, 'linear input');
  const ranges = rowRanges(weight, inF, { where: 'linear', aligned: true });
  const chunkOf = (r0: number, r1: number, offset: number) => view(rt, weight.storage.buffer, offset, [r1 - r0, inF]);
  const one = { batch: 1, sa: 0, sb: 0, sumBatch: false };

  const y = empty(rt, outShape);
  for (const r of ranges) {
    const n = r.r1 - r.r0;
    const w = chunkOf(r.r0, r.r1, r.binding.offset);
    // The bias slice is copied: r0 · 4 bytes is rarely a 256-byte-aligned offset.
    const b = bias ? copyColumns({ t: empty(rt, [n]), stride: n, col: 0 }, { t: bias, stride: outF, col: r.r0 }, 1, n) : undefined;
    const part = gemm({ ...one, a: x, b: w, transA: false, transB: true, m: rows, n, k: inF, bias: b, outShape: [rows, n] });
    copyColumns({ t: y, stride: outF, col: r.r0 }, { t: part, stride: n, col: 0 }, rows, n);
    // Released buffers are reused only by later recorded work, so disposing right after recording is safe.
    for (const t of [w, b, part]) t?.dispose();
  }

  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(y, 'linear', inputs, (g) => {
    let dx: Tensor | null = null;
    // A leaf weight (a parameter) takes each chunk's dW straight into its gradient, so the backward never holds
    // a second weight-sized tensor; otherwise a full-size dW for backward() to route.
    const sink = weight.requiresGrad ? leafGradSink(weight) : null;
    const dw = weight.requiresGrad && !sink ? empty(rt, weight.shape) : null;
    for (const r of ranges) {
      const n = r.r1 - r.r0;
      const gc = copyColumns({ t: empty(rt, [rows, n]), stride: n, col: 0 }, { t: g, stride: outF, col: r.r0 }, rows, n);
      if (x.requiresGrad) {
        const w = chunkOf(r.r0, r.r1, r.binding.offset);
        const part = gemm({ ...one, a: gc, b: w, transA: false, transB: false, m: rows, n: inF, k: n, outShape: x.shape });
        if (!dx) dx = part;
        else {
          axpbyInPlace(dx, part, 1, 1);
          part.dispose();
        }
        w.dispose();
      }
      const dst = sink ?? dw;
      if (dst) {
        // Rows [r0, r1) start at the same offset within dW (or the gradient) as the chunk does within the weight,
        // where rowRanges put it on a 256-byte boundary.
        const rowsView = view(rt, dst.storage.buffer, dst.storage.offset + (r.binding.offset - weight.storage.offset), [n, inF]);
        if (dst === dw) gemm({ ...one, a: gc, b: x, transA: true, transB: false, m: n, n: inF, k: rows, outShape: rowsView.shape, out: rowsView });
        else {
          const part = gemm({ ...one, a: gc, b: x, transA: true, transB: false, m: n, n: inF, k: rows, outShape: [n, inF] });
          axpbyInPlace(rowsView, part, 1, 1);
          part.dispose();
        }
        rowsView.dispose();
      }
      gc.dispose();
    }
    return bias ? [dx, dw, biasGrad(g, bias, rows, outF)] : [dx, dw];
  });
}
