// Negative sampling on the GPU (kernels/rec_loss.wgsl: rl_sample). Counter-based: each draw is a hash of (seed,
// step, row, sample, attempt), so a batch's negatives are a pure function of (seed, step) — a resumed run redraws
// the same ones — and cpu/rec-loss.ts's sampleNegativesRef reproduces them exactly.
//   uniform:    over the items 1..V−1 without the row's target (item 0 is padding): a draw among the V − 2
//               others that steps over the target, so no rejection and no bias.
//   popularity: Walker/Vose alias table over given item weights (built on the host in f64; item 0 gets weight 0),
//               one column + one coin per draw; a draw equal to the target is redrawn (up to 32 attempts, then a
//               uniform non-target item, which only matters when the target holds nearly all the weight).
// A row whose target is −1 (padding) still gets negatives (uniform over 1..V−1); the losses ignore the row.
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import { ShapeError, Tensor, empty, fmtShape, fromArray } from '../tensor/tensor';
import type { AliasTable } from '../cpu/rec-loss';

export type { AliasTable } from '../cpu/rec-loss';

const WG = 64;
const SAMPLE: KernelSpec = { file: 'rec_loss', entry: 'rl_sample', bindings: ['read', 'read', 'read', 'rw'], overrides: { WG } };

/** Vose's alias method over non-negative weights (f64 on the host). Item 0 (padding) is given weight 0. */
export function buildAliasTable(weights: ArrayLike<number>): AliasTable {
  const v = weights.length;
  if (v < 3) throw new RangeError(`buildAliasTable: ${v} items; sampling negatives needs at least 3 (padding, a target and another)`);
  const w = new Float64Array(v);
  let total = 0;
  for (let i = 1; i < v; i++) {
    const x = weights[i];
    if (!(x >= 0) || !Number.isFinite(x)) throw new RangeError(`buildAliasTable: weight ${x} of item ${i} is not a finite number ≥ 0`);
    w[i] = x;
    total += x;
  }
  if (!(total > 0)) throw new RangeError('buildAliasTable: every item has weight 0');
  const scaled = Float64Array.from(w, (x) => (x * v) / total);
  const prob = new Float32Array(v);
  const alias = new Int32Array(v);
  const small: number[] = [];
  const large: number[] = [];
  scaled.forEach((x, i) => (x < 1 ? small : large).push(i));
  while (small.length && large.length) {
    const s = small.pop()!;
    const l = large[large.length - 1];
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    if (scaled[l] < 1) {
      large.pop();
      small.push(l);
    }
  }
  // Left-overs are 1 up to rounding; one of weight 0 (item 0 among them) must never be returned, so its column
  // hands every draw to an item that has weight.
  const some = w.findIndex((x) => x > 0);
  for (const i of [...large, ...small]) {
    prob[i] = w[i] > 0 ? 1 : 0;
    alias[i] = w[i] > 0 ? i : some;
  }
  return { prob, alias };
}

/** log Q(item) of one popularity draw: log(w / Σw), −∞ for weight 0 (such items are never drawn). */
export function logQTable(weights: ArrayLike<number>): Float32Array {
  let total = 0;
  for (let i = 1; i < weights.length; i++) total += weights[i];
  return Float32Array.from(weights, (x, i) => (i === 0 || x <= 0 ? -1e30 : Math.log(x / total)));
}

export interface SampleNegativesOptions {
  /** Negatives per row. */
  k: number;
  /** Catalog size V (items 0..V−1, 0 = padding). */
  numItems: number;
  sampler: 'uniform' | 'popularity';
  /** popularity: the alias table of the item weights (buildAliasTable), uploaded per call when given as host data. */
  popularity?: AliasTable | { prob: Tensor; alias: Tensor };
  seed: number;
  step: number;
}

/** i32 [rows, k] negatives for targets i32 [rows], never 0 and never the row's target. */
export function sampleNegatives(rt: Runtime, targets: Tensor, opts: SampleNegativesOptions): Tensor {
  const { k, numItems: v } = opts;
  if (targets.dtype !== 'i32') throw new TypeError(`sampleNegatives: targets must be i32, got ${targets.dtype} ${fmtShape(targets.shape)}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`sampleNegatives: k must be an integer ≥ 1, got ${k}`);
  if (!Number.isInteger(v) || v < 3) throw new RangeError(`sampleNegatives: numItems must be an integer ≥ 3 (padding 0, a target and another item), got ${v}`);
  const rows = targets.size;
  let prob: Tensor;
  let alias: Tensor;
  const owned: Tensor[] = [];
  if (opts.sampler === 'popularity') {
    const pop = opts.popularity;
    if (!pop) throw new Error("sampleNegatives: sampler 'popularity' needs the item weights' alias table (buildAliasTable)");
    if (pop.prob instanceof Tensor) {
      prob = pop.prob;
      alias = pop.alias as Tensor;
    } else {
      prob = fromArray(rt, pop.prob, [pop.prob.length]);
      alias = fromArray(rt, pop.alias as Int32Array, [pop.prob.length], 'i32');
      owned.push(prob, alias);
    }
    if (prob.size !== v) throw new ShapeError(`sampleNegatives: the alias table ${fmtShape(prob.shape)} does not match numItems ${v}`);
  } else if (opts.sampler === 'uniform') {
    prob = fromArray(rt, [0], [1]);
    alias = fromArray(rt, [0], [1], 'i32');
    owned.push(prob, alias);
  } else throw new RangeError(`sampleNegatives: unknown sampler '${String(opts.sampler)}' (uniform, popularity)`);
  const out = empty(rt, [rows, k], 'i32');
  const values = [rows, v, 0, k, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, opts.seed >>> 0, opts.step >>> 0, opts.sampler === 'popularity' ? 1 : 0, 0];
  rt.dispatch(SAMPLE, [targets.binding(), prob.binding(), alias.binding(), out.binding()], { values, format: 'uuuuuuuuuuuuffuuuu' }, Math.ceil((rows * k) / WG));
  for (const t of owned) t.dispose(); // back to the pool after the submit that reads them
  return out;
}
