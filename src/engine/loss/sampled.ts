// Sampled recommender losses: per row the positive (its target) and K negatives [rows, K]; kernels in
// kernels/rec_loss.wgsl (logits of the 1 + K columns, per-row loss, G in place, dX gathered, dE scattered by a
// CAS-loop float add on atomic<u32>). One op, `sampledLoss`, in two modes:
//   softmax  one softmax over the positive and the kept negatives; every negative's logit gets `corr` added and
//            (logQ) log Q(item) subtracted. CCE− (arXiv 2509.09682): corr = log(V−1) − log(1+K), no table.
//            Sampled softmax: logQ on → corr = log(V−1) for the uniform sampler (−log Q of a draw over the V−1
//            non-padding items), or the popularity table's log Q(item); logQ off → no correction.
//   bce      one sigmoid per logit: loss = β·softplus(−s₀) + Σⱼ softplus(sⱼ), the sum over the row's kept
//            negatives, mean over counted rows; β = 1 is BCE, gBCE's β = α(t(1 − 1/α) + 1/α), α = K/(V−1).
// A negative equal to the row's target (or outside [0, V)) is masked: it takes no part in the loss or gradient.
// Memory: the [rows, 1 + K] logits (reused for G) and an LSE per row: O(N·K), never O(N·V).
//
// The loss entries sample their own negatives on the GPU when the batch brings none (batch.negatives), with the
// entry's `seed` and a step counter that advances per training call (negatives.ts: deterministic by seed and
// step). The popularity sampler needs the items' weights (e.g. training counts): setItemPopularity(loss, w).
import type { KernelSpec } from '../gpu/kernels';
import { leafGradSink, record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape, fromArray, rowRanges } from '../tensor/tensor';
import { fillInPlace } from '../ops/basic';
import { checkHeadShapes, itemSpans } from './cce';
import { buildAliasTable, logQTable, sampleNegatives, type AliasTable } from './negatives';
import { gbceBeta } from '../cpu/rec-loss';
import type { LossBatch, LossFn } from './loss';
import type { OutputHead } from '../nn/models';

const WG = 64;
const LOGITS: KernelSpec = { file: 'rec_loss', entry: 'rl_logits', bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'], overrides: { WG } };
const ROWS: KernelSpec = { file: 'rec_loss', entry: 'rl_rows', bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG } };
const GRAD: KernelSpec = { file: 'rec_loss', entry: 'rl_grad', bindings: ['rw', 'read', 'read', 'read', 'read'], overrides: { WG } };
const DX: KernelSpec = { file: 'rec_loss', entry: 'rl_dx', bindings: ['read', 'read', 'read', 'read', 'rw'], overrides: { WG } };
const DE: KernelSpec = { file: 'rec_loss', entry: 'rl_de', bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'], overrides: { WG } };
const REDUCE: KernelSpec = { file: 'cross_entropy', entry: 'ce_reduce', bindings: ['read', 'read', 'rw', 'rw'], overrides: { WG: 64 } };
const FMT = 'uuuuuuuuuuuuffuuuu';

export interface SampledLossOptions {
  mode: 'softmax' | 'bce';
  /** softmax: added to every negative's logit. */
  corr?: number;
  /** softmax: log Q(item) [V], subtracted from every negative's logit. */
  logq?: Tensor | null;
  /** bce: the positive's exponent (gBCE); 1 = BCE. */
  beta?: number;
}

/**
 * The sampled loss of hidden [rows, d] against the head (weight [V, d], bias [V] | null), targets i32 [rows]
 * (−1 = ignored) and negatives i32 [rows, K]: a scalar, mean over counted rows. Gradients to hidden, weight, bias.
 */
export function sampledLoss(hidden: Tensor, weight: Tensor, bias: Tensor | null, targets: Tensor, negatives: Tensor, opts: SampledLossOptions): Tensor {
  const { rows, v, d } = checkHeadShapes('sampledLoss', hidden, weight, bias, targets);
  if (negatives.dtype !== 'i32' || negatives.rank !== 2 || negatives.shape[0] !== rows || negatives.shape[1] < 1) {
    throw new ShapeError(`sampledLoss: negatives must be i32 [rows, K ≥ 1] with the ${rows} rows of hidden ${fmtShape(hidden.shape)}, got ${negatives.dtype} ${fmtShape(negatives.shape)}`);
  }
  const k = negatives.shape[1];
  const mode = opts.mode === 'bce' ? 1 : 0;
  if (opts.logq && opts.logq.size !== v) throw new ShapeError(`sampledLoss: logq ${fmtShape(opts.logq.shape)} does not match the ${v} items of the weight ${fmtShape(weight.shape)}`);
  const rt = hidden.rt;
  const cols = k + 1;
  const eRanges = rowRanges(weight, d, { where: 'sampledLoss (the head weight)' });
  const spans = itemSpans(eRanges);
  const owned: Tensor[] = [];
  const dummy = () => {
    const t = fromArray(rt, [0], [1]);
    owned.push(t);
    return t;
  };
  const bT = bias ?? dummy();
  const logqT = opts.logq ?? dummy();
  const uni = (a: number, b: number, r0: number, lead: number, first: number): number[] => [
    rows, v, d, k, bias ? 1 : 0, a, b, r0, lead, first, mode, opts.logq ? 1 : 0, opts.corr ?? 0, opts.beta ?? 1, 0, 0, 0, 0,
  ];

  const s = empty(rt, [rows, cols]);
  spans.forEach((sp, i) => {
    rt.dispatch(LOGITS, [hidden.binding(), sp.e.binding, bT.binding(), targets.binding(), negatives.binding(), logqT.binding(), s.binding()],
      { values: uni(sp.a, sp.b, sp.e.r0, sp.e.lead, i === 0 ? 1 : 0), format: FMT }, Math.ceil((rows * cols) / WG));
  });
  const lse = empty(rt, [rows]);
  const rowLoss = empty(rt, [rows]);
  rt.dispatch(ROWS, [s.binding(), targets.binding(), lse.binding(), rowLoss.binding()], { values: uni(0, v, 0, 0, 0), format: FMT }, Math.ceil(rows / WG));
  const out = empty(rt, []);
  const count = empty(rt, [1]);
  rt.dispatch(REDUCE, [rowLoss.binding(), targets.binding(), out.binding(), count.binding()], { values: [rows, v, -1, 1], format: 'uuiu' }, 1);
  rowLoss.dispose();

  const inputs = bias ? [hidden, weight, bias, targets, negatives] : [hidden, weight, targets, negatives];
  const res = record(out, opts.mode === 'bce' ? 'bceLoss' : 'sampledSoftmax', inputs, (g) => {
    rt.dispatch(GRAD, [s.binding(), targets.binding(), lse.binding(), g.binding(), count.binding()], { values: uni(0, v, 0, 0, 0), format: FMT }, Math.ceil((rows * cols) / WG));
    let dx: Tensor | null = null;
    if (hidden.requiresGrad) {
      dx = empty(rt, hidden.shape);
      spans.forEach((sp, i) => {
        rt.dispatch(DX, [s.binding(), sp.e.binding, targets.binding(), negatives.binding(), dx!.binding()],
          { values: uni(sp.a, sp.b, sp.e.r0, sp.e.lead, i > 0 ? 1 : 0), format: FMT }, Math.ceil((rows * Math.ceil(d / 4)) / WG));
      });
    }
    const wantW = weight.requiresGrad;
    const wantB = !!bias && bias.requiresGrad;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (wantW || wantB) {
      // The scatter adds into its targets: a leaf's gradient directly, else zeroed dense tensors.
      const wSink = wantW ? leafGradSink(weight) : null;
      const bSink = wantB ? leafGradSink(bias!) : null;
      const dwT = wSink ?? fillInPlace(empty(rt, weight.shape), 0);
      const dbT = bSink ?? fillInPlace(empty(rt, [bias ? v : 1]), 0);
      for (const r of rowRanges(dwT, d, { where: 'sampledLoss backward (the head weight gradient)' })) {
        rt.dispatch(DE, [s.binding(), hidden.binding(), targets.binding(), negatives.binding(), r.binding, dbT.binding()],
          { values: uni(r.r0, r.r1, r.r0, r.lead, 0), format: FMT }, Math.ceil((rows * cols) / WG));
      }
      if (wantW && !wSink) dw = dwT;
      else if (!wSink) dwT.dispose();
      if (wantB && !bSink) db = dbT;
      else if (!bSink) dbT.dispose();
    }
    return bias ? [dx, dw, db, null, null] : [dx, dw, null, null];
  });
  if (!res.gradFn) {
    s.dispose();
    lse.dispose();
    count.dispose();
  }
  for (const t of owned) t.dispose();
  return res;
}

// ---- loss entries ---------------------------------------------------------------------------------------------

export type Sampler = 'uniform' | 'popularity';

export interface SampledEntryOptions {
  negatives: number;
  sampler: Sampler;
  seed: number;
}

interface SamplerState {
  step: number;
  weights: Float64Array | null;
  alias: AliasTable | null;
  logq: Float32Array | null;
}

const samplerStates = new WeakMap<LossFn, SamplerState>();

/**
 * The item weights (e.g. training interaction counts, [V], item 0 = padding) for a loss entry whose sampler is
 * 'popularity'. Needed before the first call that has to sample its own negatives.
 */
export function setItemPopularity(loss: LossFn, weights: ArrayLike<number>): void {
  const st = samplerStates.get(loss);
  if (!st) throw new Error('setItemPopularity: this loss samples no negatives (cce-minus, sampled-softmax, bce, gbce do)');
  st.weights = Float64Array.from(weights);
  st.alias = buildAliasTable(st.weights);
  st.logq = logQTable(st.weights);
}

function requirePopularity(st: SamplerState, v: number, where: string): void {
  if (!st.alias || !st.logq) {
    throw new Error(`${where}: sampler 'popularity' needs the items' weights: call setItemPopularity(loss, counts) first (or use sampler 'uniform')`);
  }
  if (st.logq.length !== v) throw new ShapeError(`${where}: setItemPopularity gave ${st.logq.length} weights for a head of ${v} items`);
}

/** The batch's negatives, or K drawn on the GPU by the entry's sampler (step advances per training call). */
function negativesFor(where: string, head: OutputHead, batch: LossBatch, o: SampledEntryOptions, st: SamplerState, training: boolean): { neg: Tensor; own: boolean } {
  if (batch.negatives) return { neg: batch.negatives, own: false };
  const v = head.weight.shape[0];
  if (o.sampler === 'popularity') requirePopularity(st, v, where);
  const neg = sampleNegatives(head.weight.rt, batch.targets, {
    k: o.negatives, numItems: v, sampler: o.sampler, popularity: st.alias ?? undefined, seed: o.seed, step: st.step,
  });
  if (training) st.step++;
  return { neg, own: true };
}

function entry(where: string, o: SampledEntryOptions, body: (hidden: Tensor, head: OutputHead, targets: Tensor, neg: Tensor, st: SamplerState) => Tensor): LossFn {
  const st: SamplerState = { step: 0, weights: null, alias: null, logq: null };
  const fn: LossFn = (hidden, head, batch, opts) => {
    const { neg } = negativesFor(where, head, batch, o, st, opts.training);
    // A sampled tensor is an input of the recorded op; the caller's tidy() scope disposes it with the step.
    return { loss: body(hidden, head, batch.targets, neg, st) };
  };
  samplerStates.set(fn, st);
  return fn;
}

/** CCE− : positive + K negatives in one softmax, negatives corrected by log(V−1) − log(1+K). */
export function cceMinusLoss(o: SampledEntryOptions): LossFn {
  return entry('cce-minus', o, (h, head, t, neg) => {
    const v = head.weight.shape[0];
    const k = neg.shape[1];
    return sampledLoss(h, head.weight, head.bias, t, neg, { mode: 'softmax', corr: Math.log(Math.max(1, v - 1)) - Math.log(1 + k) });
  });
}

/** Sampled softmax with (logQ) or without the log Q(item) correction of the negatives. */
export function sampledSoftmaxLoss(o: SampledEntryOptions & { logQ: boolean }): LossFn {
  return entry('sampled-softmax', o, (h, head, t, neg, st) => {
    const v = head.weight.shape[0];
    if (!o.logQ) return sampledLoss(h, head.weight, head.bias, t, neg, { mode: 'softmax' });
    if (o.sampler === 'uniform') return sampledLoss(h, head.weight, head.bias, t, neg, { mode: 'softmax', corr: Math.log(Math.max(1, v - 1)) });
    requirePopularity(st, v, 'sampled-softmax');
    const logq = fromArray(h.rt, st.logq!, [v]);
    return sampledLoss(h, head.weight, head.bias, t, neg, { mode: 'softmax', logq });
  });
}

/** BCE: one positive and K negatives, a sigmoid each. */
export function bceLoss(o: SampledEntryOptions): LossFn {
  return entry('bce', o, (h, head, t, neg) => sampledLoss(h, head.weight, head.bias, t, neg, { mode: 'bce', beta: 1 }));
}

/** gBCE (gSASRec): BCE with the positive's sigmoid raised to β(K, V, t). */
export function gbceLoss(o: SampledEntryOptions & { t: number }): LossFn {
  return entry('gbce', o, (h, head, tg, neg) => {
    const v = head.weight.shape[0];
    const beta = gbceBeta(neg.shape[1], v, o.t);
    return sampledLoss(h, head.weight, head.bias, tg, neg, { mode: 'bce', beta });
  });
}
