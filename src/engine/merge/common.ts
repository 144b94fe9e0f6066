// What the GPU merge (tensor-merge.ts) and its CPU reference (src/engine/cpu/merge.ts) share, so that both make
// the same decisions bit for bit: parameter resolution with the registry's defaults, the counter-based RNG of
// the random drops (DARE, DELLA), the integer DELLA keep test, the trim counts, and the stats' shape.
import { MERGE_METHOD_ENTRIES, type MergeMethodName } from '../../files/registry/merge-methods';

export type { MergeMethodName };

/** Per-tensor summary of a merge (read back after the merged tensor; see tensor-merge.ts). */
export interface TensorMergeStats {
  /** Per expert: fraction of the tensor's entries the method kept (after trims or drops, before sign election). */
  keptFraction: number[];
  /** Fraction of entries where the kept task-vector entries of different experts have opposite signs (0 without a base). */
  signConflict: number;
  /** ‖θ* − θ₀‖, or ‖θ* − mean_t θ_t‖ without a base. */
  deltaNorm: number;
  /** Per expert Σ s_t over the tensor (curvature: τ²⊙F̂; others: τ²); absent without a base. */
  saliencyMass?: number[];
}

export type ParamValues = Record<string, number | boolean>;

function entryOf(method: MergeMethodName) {
  const e = MERGE_METHOD_ENTRIES.find((m) => m.name === method);
  if (!e) throw new Error(`unknown merge method '${method}' (known: ${MERGE_METHOD_ENTRIES.map((m) => m.name).join(', ')})`);
  return e;
}

/** A numeric parameter: the given value, else the registry's default (per-model values win over global ones). */
export function numParam(method: MergeMethodName, name: string, own: ParamValues | undefined, global: ParamValues, fallback?: number): number {
  const v = own?.[name] ?? global[name];
  if (v !== undefined) {
    const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
    if (!Number.isFinite(n)) throw new Error(`merge ${method}: parameter '${name}' is ${v}, not a finite number`);
    return n;
  }
  const spec = (entryOf(method).params as Record<string, { default?: unknown }>)[name];
  if (spec && typeof spec.default === 'number') return spec.default;
  if (fallback !== undefined) return fallback;
  throw new Error(`merge ${method}: parameter '${name}' has no value and no default`);
}

export function boolParam(method: MergeMethodName, name: string, global: ParamValues): boolean {
  const v = global[name];
  if (v !== undefined) return typeof v === 'boolean' ? v : v !== 0;
  const spec = (entryOf(method).params as Record<string, { default?: unknown }>)[name];
  return spec && typeof spec.default === 'boolean' ? spec.default : false;
}

export function methodNeedsBase(method: MergeMethodName): boolean {
  return !!(entryOf(method) as { needs?: { base?: boolean } }).needs?.base;
}

// ---- counter-based RNG (identical in kernels/merge.wgsl) ------------------------------------------------------

/** lowbias32 (Wellons' hash prospector): a bijection on u32 with good avalanche; also in kernels/dropout.wgsl. */
export function mix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-8 bytes of a tensor name: the same seed draws different masks for different tensors. */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

/** The per-(seed, tensor, expert) key, computed on the host; the kernels only hash the element index with it. */
export function dropKey(seed: number, name: string, expert: number): number {
  const k0 = mix32((seed + 0x9e3779b9) >>> 0);
  const k1 = mix32((k0 ^ nameHash(name)) >>> 0);
  return mix32((k1 + Math.imul(expert + 1, 0x85ebca6b)) >>> 0);
}

/** The element hash: two rounds keyed by `key` (as kernels/dropout.wgsl), uniform on u32. */
export function elementHash(key: number, i: number): number {
  return mix32((mix32((i ^ key) >>> 0) + key) >>> 0);
}

/** DARE keeps element i iff elementHash < this (P(keep) = density to within 2⁻³²). */
export function dareThreshold(density: number): number {
  return Math.min(Math.max(Math.round(density * 4294967296), 0), 4294967295);
}

/**
 * DELLA's keep probability of the entry of rank r (0 = smallest |τ| of its row) among `cols`:
 * p = lo + ε·r/D with lo = density − ε/2, D = cols − 1 (a one-column row: p = density). The keep test is exact
 * integer arithmetic on the GPU and here: with U the 32-bit hash, LO = round(lo·2³²), E = round(ε·2³²), keep iff
 * U < LO or (U − LO)·D < E·r, as 64-bit products — no float rounding can make the two disagree.
 */
export function dellaConstants(density: number, epsilon: number): { lo: number; loQ: number; epsQ: number } {
  const lo = density - epsilon / 2;
  return {
    lo,
    loQ: Math.min(Math.max(Math.round(lo * 4294967296), 0), 4294967295),
    epsQ: Math.min(Math.max(Math.round(epsilon * 4294967296), 0), 4294967295),
  };
}

/** DELLA ranks within rows of the tensor viewed as [shape[0], rest]; a vector (or scalar) is one row (as mergekit). */
export function dellaView(shape: readonly number[]): { rows: number; cols: number } {
  const n = shape.reduce((a, b) => a * b, 1);
  return shape.length >= 2 ? { rows: shape[0], cols: n / shape[0] } : { rows: 1, cols: n };
}

export function dellaRankTerms(r: number, cols: number): { r: number; d: number } {
  return cols > 1 ? { r, d: cols - 1 } : { r: 1, d: 2 };
}

export function dellaKeep(u: number, loQ: number, epsQ: number, r: number, d: number): boolean {
  if (u < loQ) return true;
  return BigInt(u - loQ) * BigInt(d) < BigInt(epsQ) * BigInt(r);
}

/** Entries a top-density trim keeps: ⌊density·n⌋, at least 1 (mergekit refuses 0; we keep the largest). */
export function trimCount(density: number, n: number): number {
  return Math.min(n, Math.max(1, Math.floor(density * n)));
}

/**
 * Breadcrumbs' band over the descending |τ| order: skip the nTop largest, keep the next `keep` (mergekit's
 * magnitude_outliers: nTop = ⌊γn⌋, keep = ⌊density·n⌋, and nTop shrinks when both do not fit). With nTop = 0
 * the largest entries are kept (mergekit's slice `[n_bot:-0]` would keep nothing there: a bug we do not copy).
 */
export function breadcrumbsBand(density: number, gamma: number, n: number): { nTop: number; keep: number } {
  const keep = trimCount(density, n);
  let nTop = Math.floor(gamma * n);
  if (n - keep - nTop < 0) nTop = n - keep;
  return { nTop, keep };
}

/** The trimmed/dropped/elected family of each method (how mergeTensor runs it). */
export type MaskKind = 'none' | 'topk' | 'band' | 'bernoulli' | 'della';

export const GTA_METHODS: Partial<Record<MergeMethodName, { mask: MaskKind; consensus: boolean }>> = {
  task_arithmetic: { mask: 'none', consensus: false },
  ties: { mask: 'topk', consensus: true },
  dare_linear: { mask: 'bernoulli', consensus: false },
  dare_ties: { mask: 'bernoulli', consensus: true },
  breadcrumbs: { mask: 'band', consensus: false },
  breadcrumbs_ties: { mask: 'band', consensus: true },
  della: { mask: 'della', consensus: true },
};

/** slerp's parallel fallback threshold and the norm floor (mergekit's values). */
export const SLERP_DOT_THRESHOLD = 0.9995;
export const NORM_EPS = 1e-8;
/** regmean: the diagonal of Σ G is raised by this times its mean, so an input no sample touched stays solvable. */
export const REGMEAN_JITTER = 1e-6;
