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
// Inputs are checked for NaN/Inf on the GPU in the passes that read them; `stats` rejects with an error naming
// the tensor and the model, so the executor must await `stats` before it writes `merged` anywhere.
import { ShapeError, Tensor, empty, fmtShape, keep, numel } from '../tensor/tensor';
import { zeros } from '../ops/basic';
import { MergeMethodName, ParamValues, TensorMergeStats, methodNeedsBase } from './common';
import { Flag, MergeCtx, REDUCE } from './methods';
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

