// One tensor of a merge, on the GPU: the contract the streaming executor calls (mergeTensor), for every method
// of src/files/registry/merge-methods.ts. Kernels: kernels/merge.wgsl (and kernels/select.wgsl for the top-k
// trims); CPU reference: src/engine/cpu/merge.ts; shared decisions (RNG, trim counts, DELLA's keep test):
// ./common.ts. Formulas: notes/algorithms.md §2, with mergekit's semantics where it has the method:
//   - task-arithmetic family (generalized task arithmetic): τ_t = θ_t − θ₀, masked per tensor (top-k by |τ|,
//     breadcrumbs' band, DARE's Bernoulli drops rescaled by 1/density, DELLA's rank-dependent drops rescaled by
//     1/p), weighted w_t·τ_t; sign-elected methods keep the entries whose weighted sign agrees with
//     sign(Σ w_t τ_t) (≥ 0 elects +) and divide by the sum of the agreeing weights (normalize; 0 → 1); the others
//     sum and divide by Σ w_t (normalize). θ* = θ₀ + λ·mixed.
//   - Top-k ties are broken by index (ops/select.ts): exactly ⌊density·n⌋ (at least 1) entries are kept.
//   - Random drops hash (seed, tensor name, expert, index): the same seed gives the same merge, GPU = CPU exactly.
// Tensors above one GPU binding (rt.maxBindingBytes): the element-wise methods (linear, task_arithmetic, ties,
// dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, curvature, fisher) run over binding-sized chunks (inputs
// must start on 256-byte boundaries, as fresh or aligned tensors do); della (per-row sort), slerp, multislerp,
// model_stock and regmean bind them whole and are refused with rt.dispatch's BindingLimitError, by name.
// Tensors above the executor's chunk budget are merged in row chunks instead (mergeTensorChunked, below: the
// same passes per chunk, bit-identical results; regmean binds its whole Gram matrices to every chunk).
// Inputs are checked for NaN/Inf on the GPU in the passes that read them; `stats` rejects with an error naming
// the tensor and the model, so the executor must await `stats` before it writes `merged` anywhere.
import { ShapeError, Tensor, empty, fmtShape, keep, numel } from '../tensor/tensor';
import { zeros } from '../ops/basic';
import { MergeMethodName, ParamValues, TensorMergeStats, methodNeedsBase } from './common';
import { ChunkVisitor, Flag, MergeCtx, Prepared, REDUCE, WG, needsPrepare, prepareChunked, spanItems } from './methods';
import type { Runtime } from '../gpu/runtime';
import { matrixView } from '../../protocol/stats';
import { MERGE_PASSES } from './registry';

export type { TensorMergeStats, MergeMethodName };

export interface TensorMergeInput {
  /** Tensor name (errors, seeds). */
  name: string;
  shape: number[];
  /** f32, `shape`. */
  base: Tensor | null;
  /** f32, `shape` each. */
  experts: Tensor[];
  /** Resolved per-expert parameters (weight, density, epsilon, gamma…); missing ones take the registry default. */
  perModel: ParamValues[];
  /** Resolved global parameters (lambda, normalize, t, seed…). */
  global: ParamValues;
  /**
   * Per expert: second-moment row sums R [rows] and column sums C [cols] of the tensor viewed as [shape[0], rest];
   * F̂ = sqrt(R_i·C_j / ΣR) is computed in the kernels, never stored. null: no statistics (F̂ = 1, a magnitude trim).
   */
  curvature?: ({ row: Tensor; col: Tensor } | null)[];
  /** fisher: per expert dense diagonal Fisher, `shape`. */
  fisher?: Tensor[];
  /** regmean: per expert input Gram matrix [in, in] of a 2-D weight [out, in]. */
  gram?: Tensor[];
}

export interface TensorMergeResult {
  merged: Tensor;
  stats: Promise<TensorMergeStats>;
}

function validate(method: MergeMethodName, inp: TensorMergeInput): void {
  const what = `merge ${method}: tensor '${inp.name}'`;
  if (!inp.experts.length) throw new Error(`${what} has no experts`);
  if (inp.perModel.length !== inp.experts.length) throw new Error(`${what}: ${inp.perModel.length} per-model parameter sets for ${inp.experts.length} experts`);
  const n = numel(inp.shape);
  const check = (t: Tensor, who: string) => {
    if (t.dtype !== 'f32') throw new TypeError(`${what}: ${who} is ${t.dtype}, f32 expected`);
    if (t.size !== n) throw new ShapeError(`${what}: ${who} has shape ${fmtShape(t.shape)}, expected ${fmtShape(inp.shape)}`);
  };
  inp.experts.forEach((x, t) => check(x, `model ${t}`));
  if (inp.base) check(inp.base, 'the base model');
  if (methodNeedsBase(method) && !inp.base) throw new Error(`${what} needs a base model (merge_method ${method} works on task vectors θ_t − θ₀)`);
  if (inp.fisher) inp.fisher.forEach((f, t) => check(f, `the Fisher tensor of model ${t}`));
}

/**
 * Merge one tensor on the GPU. Throws at once on bad input; `stats` rejects on NaN/Inf inputs (see above).
 * `beforeStats` may record more work on `merged` (a copy out) into the submit that the stats' read makes.
 */
export function mergeTensor(method: MergeMethodName, input: TensorMergeInput, beforeStats?: (merged: Tensor) => void): TensorMergeResult {
  validate(method, input);
  const c = new MergeCtx(method, input);
  try {
    const out = empty(c.rt, input.shape, 'f32');
    out.name = input.name;
    const part = c.temp(zeros(c.rt, [c.G * c.F]));
    let extra: Flag[];
    try {
      extra = MERGE_PASSES[method](c, out, part);
    } catch (e) {
      out.dispose();
      throw e;
    }
    // The stats survive the caller's tidy() scope until read.
    const sums = keep(c.zerosN('f32', c.F));
    c.temps.splice(c.temps.indexOf(sums), 1);
    c.run(REDUCE, [part, sums], { G: c.G, sF: 1, sG: c.F, off: 0, cnt: c.F }, c.F);
    beforeStats?.(out);
    const stats = readStats(c, sums, extra);
    stats.catch(() => undefined); // an unawaited rejection must not crash the process; awaiting still throws
    return { merged: out, stats };
  } finally {
    c.dispose();
  }
}

async function readStats(c: MergeCtx, sums: Tensor, flags: Flag[]): Promise<TensorMergeStats> {
  try {
    const s = (await sums.toArray()) as Float32Array;
    const { E, n, method, inp } = c;
    for (let t = 0; t < E; t++) {
      if (s[2 * E + t] > 0) throw new Error(`merge ${method}: tensor '${inp.name}' of model ${t} has ${s[2 * E + t]} non-finite values (NaN/Inf)`);
    }
    if (s[3 * E] > 0) throw new Error(`merge ${method}: tensor '${inp.name}' of the base model has ${s[3 * E]} non-finite values (NaN/Inf)`);
    for (const f of flags) {
      if (f.index < 0) continue;
      const v = ((await f.t.toArray()) as Float32Array | Uint32Array)[f.index];
      if (v !== 0) throw new Error(f.message(v));
    }
    const hasBase = !!inp.base;
    return {
      keptFraction: Array.from({ length: E }, (_, t) => s[t] / n),
      signConflict: hasBase && n ? s[3 * E + 1] / n : 0,
      deltaNorm: Math.sqrt(Math.max(0, s[3 * E + 2])),
      saliencyMass: hasBase ? Array.from({ length: E }, (_, t) => s[E + t]) : undefined,
    };
  } finally {
    sums.dispose();
    for (const f of flags) f.t.dispose();
  }
}


// ---- row chunks ---------------------------------------------------------------------------------------------

/** Bytes of one f32 operand per chunk on a software adapter (see chunkRowsFor, defaultChunkBytes). */
export const DEFAULT_CHUNK_BYTES = 4 << 20;
/** …and on a hardware GPU: a [4096, 4096] f32 matrix is merged whole. */
export const HARDWARE_CHUNK_BYTES = 64 << 20;

/**
 * The chunk size of a merge not told one. On a software adapter (lavapipe) GPU buffers are host memory, so chunks
 * stay small and the host memory a merge holds is bounded by the chunk. On a hardware GPU a tensor of up to 64 MiB
 * of f32 per operand is merged whole: the methods that trim to a top-k then read its inputs once, where a chunked
 * merge reads them again for each sweep of the streamed select (4, plus the chunks holding the thresholds), which
 * caps its throughput far below the disk's; the ~10 operands of such a tensor (640 MiB) fit any GPU one merges on.
 * Larger tensors still go in chunks of that size, within one storage binding.
 */
export function defaultChunkBytes(rt: Runtime): number {
  if (rt.gpu.info.fallback) return DEFAULT_CHUNK_BYTES;
  return Math.min(HARDWARE_CHUNK_BYTES, rt.gpu.info.limits.maxStorageBufferBindingSize ?? DEFAULT_CHUNK_BYTES);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Rows per chunk when a tensor is merged in row chunks, or 0 to merge it whole. A chunk holds at most
 * `chunkBytes` of f32 per operand (inputs, accumulators, scores, output), so a merge's GPU memory is about
 * (operands per chunk) × chunkBytes — ties with two experts: base + 2 experts + 2 scores + 4 accumulators + the
 * output = 10 × chunkBytes — instead of ~10 whole f32 copies of the tensor (./methods.ts prepareChunked finds
 * the per-tensor quantities chunk by chunk too). Chunks are whole rows whose first element is a multiple of the
 * element-wise passes' span, so stats partials and dot partials line up with the whole tensor's: results and
 * stats are then bit-identical (regmean too: each chunk's rows solve against the whole Σ G, factored per chunk,
 * and B = Σ X_t·G̃_t is per row; the test checks it bit for bit). Whole instead: tensors within one chunk, vectors,
 * and shapes whose span-aligned row unit is above 4 chunks (an odd column count: its unit is `span` rows).
 */
export function chunkRowsFor(rt: Runtime, method: MergeMethodName, shape: readonly number[], chunkBytes: number): number {
  if (shape.length < 2 || !(chunkBytes > 0)) return 0;
  const { rows, cols } = matrixView(shape);
  if (rows * cols * 4 <= chunkBytes || cols === 0) return 0;
  const span = WG * spanItems(rt);
  const unit = span / gcd(cols, span);
  if (unit * cols * 4 > 4 * chunkBytes) return 0;
  const r = Math.max(unit, Math.floor(chunkBytes / 4 / cols / unit) * unit);
  return r >= rows ? 0 : r;
}

/** What mergeTensorChunked needs of a tensor: mergeTensor's input without the (whole) weights. */
export interface ChunkedMergeInput extends Omit<TensorMergeInput, 'base' | 'experts' | 'fisher'> {
  hasBase: boolean;
  experts: number;
  hasFisher: boolean;
  // gram (regmean): the whole [in, in] Gram matrices, bound to every chunk (a chunk's rows solve against all of Σ G).
}

/** Loads rows [r0, r1) of the inputs asked for as f32 tensors (the caller disposes them). */
export type ChunkLoader = (
  r0: number,
  r1: number,
  need: { base: boolean; experts: readonly number[]; fisher: boolean },
) => Promise<{ base: Tensor | null; experts: (Tensor | null)[]; fisher?: Tensor[] }>;

/**
 * mergeTensor over row chunks (see chunkRowsFor): yields each chunk's merged rows in order (valid until the
 * generator resumes: copy or write them first), then returns the whole tensor's stats. Methods with per-tensor
 * quantities (top-k thresholds, slerp/multislerp/model_stock's dots) first stream the chunks to find them
 * (methods.ts prepareChunked), then merge chunk by chunk; the others merge at once. Every chunk's passes are the
 * whole-tensor path's passes on the chunk with global hashes/rows/partials, so the result is the same bit for bit.
 * NaN/Inf inputs are only known at the end (the stats): the caller must not commit the output before it returns.
 */
export async function* mergeTensorChunked(rt: Runtime, method: MergeMethodName, input: ChunkedMergeInput, rowsPerChunk: number, load: ChunkLoader): AsyncGenerator<Tensor, TensorMergeStats> {
  const ph = zeros(rt, [4]);
  const E = input.experts;
  const whole: TensorMergeInput = { ...input, base: input.hasBase ? ph : null, experts: Array.from({ length: E }, () => ph) };
  if (methodNeedsBase(method) && !input.hasBase) throw new Error(`merge ${method}: tensor '${input.name}' needs a base model (merge_method ${method} works on task vectors θ_t − θ₀)`);
  let w: MergeCtx | null = null;
  let prepared: { pre: Prepared; flags: Flag[] } = { pre: {}, flags: [] };
  try {
    w = new MergeCtx(method, whole);
    const part = w.temp(zeros(rt, [w.G * w.F]));
    const { rows, cols } = w;
    const ranges: [number, number][] = [];
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) ranges.push([r0, Math.min(rows, r0 + rowsPerChunk)]);
    const chunkInput = (r0: number, r1: number, got: Awaited<ReturnType<ChunkLoader>>): TensorMergeInput => {
      const filler = got.experts.find((x) => x) ?? got.base;
      if (!filler) throw new Error(`merge ${method}: tensor '${input.name}': a chunk loaded no input`);
      // Experts a pass does not read are bound to a loaded chunk (never read): MergeCtx counts experts by slots.
      return { ...input, shape: [r1 - r0, ...input.shape.slice(1)], base: got.base, experts: got.experts.map((x) => x ?? filler), fisher: got.fisher };
    };
    const freeChunk = (got: Awaited<ReturnType<ChunkLoader>>) => {
      got.base?.dispose();
      for (const x of got.experts) x?.dispose();
      for (const x of got.fisher ?? []) x.dispose();
    };
    const visitor: ChunkVisitor = async (need, visit) => {
      for (const [r0, r1] of ranges) {
        if (need.within && !need.within.some(([a, b]) => a < r1 * cols && b > r0 * cols)) continue;
        const got = await load(r0, r1, { base: need.base && input.hasBase, experts: need.experts, fisher: false });
        const cc = new MergeCtx(method, chunkInput(r0, r1, got), { base0: r0 * cols, row0: r0, rows, part, pre: {} });
        try {
          visit(cc);
        } finally {
          cc.dispose();
          freeChunk(got);
        }
        await rt.sync(); // one chunk's uploads in flight: memory stays at a chunk
      }
    };
    if (needsPrepare(method, input)) prepared = await prepareChunked(w, part, visitor);
    const all = Array.from({ length: E }, (_, t) => t);
    for (const [r0, r1] of ranges) {
      const got = await load(r0, r1, { base: input.hasBase, experts: all, fisher: input.hasFisher });
      let cc: MergeCtx | null = null;
      let out: Tensor | null = null;
      try {
        const ci = chunkInput(r0, r1, got);
        validate(method, ci);
        cc = new MergeCtx(method, ci, { base0: r0 * cols, row0: r0, rows, part, pre: prepared.pre });
        out = empty(rt, ci.shape, 'f32');
        out.name = `${input.name} rows ${r0}..${r1}`;
        for (const f of MERGE_PASSES[method](cc, out, part)) f.t.dispose();
        yield out;
      } finally {
        out?.dispose();
        cc?.dispose();
        freeChunk(got);
      }
    }
    const sums = keep(w.zerosN('f32', w.F));
    w.temps.splice(w.temps.indexOf(sums), 1);
    w.run(REDUCE, [part, sums], { G: w.G, sF: 1, sG: w.F, off: 0, cnt: w.F }, w.F);
    const flags = prepared.flags;
    prepared.flags = [];
    return await readStats(w, sums, flags);
  } finally {
    for (const f of prepared.flags) f.t.dispose();
    for (const x of prepared.pre.thr ?? []) x?.t.dispose();
    prepared.pre.coef?.dispose();
    w?.dispose();
    ph.dispose();
  }
}
