// Causal multi-head self-attention, fused (flash-attention style): one forward kernel computes each query row's
// softmax online and saves its log-sum-exp; backward is one kernel for dQ (which also saves δ = rowsum(dO ⊙ O))
// and one for dK and dV, both recomputing the probabilities from the saved log-sum-exp. No [T, T] matrix is
// stored and no atomics are used. Kernels: kernels/attention.wgsl.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape } from '../tensor/tensor';
import { dropoutThreshold } from '../cpu/dropout';

/** Largest head dimension the kernels support (their per-invocation vectors have a fixed size). */
export const MAX_HEAD_DIM = 128;

/** Per-invocation vector sizes compiled: the smallest that holds hd (fewer registers / less stack for small heads). */
const HD_BUCKETS = [16, 32, 64, MAX_HEAD_DIM];
const WG = 64;

/** Dropout on the attention probabilities: drop probability p, the mask a hash of (seed, query row, key). */
export interface AttentionDropout {
  p: number;
  seed: number;
}

/**
 * q, k, v f32 [B, T, D] → [B, T, D]: softmax(q·kᵀ/√hd + causal mask)·v per head, where head h of nHeads is the
 * column slice h·hd … (h+1)·hd − 1 of D (hd = D / nHeads) in every input and in the output. Query t attends to
 * keys 0..t. With `dropout`, each probability is dropped with probability p and the kept ones scaled by
 * 1/(1 − p) (SASRec's dropout on the attention weights); the mask is regenerated in backward from the seed.
 */
export function causalSelfAttention(q: Tensor, k: Tensor, v: Tensor, nHeads: number, dropout?: AttentionDropout | null): Tensor {
  for (const [t, what] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    if (t.dtype !== 'f32') throw new TypeError(`causalSelfAttention: ${what} must be f32, got ${t.dtype} ${fmtShape(t.shape)}`);
  }
  if (q.rank !== 3) throw new ShapeError(`causalSelfAttention: q must be [B, T, D], got ${fmtShape(q.shape)}`);
  for (const [t, what] of [[k, 'k'], [v, 'v']] as const) {
    if (t.rank !== 3 || t.shape.some((n, i) => n !== q.shape[i])) {
      throw new ShapeError(`causalSelfAttention: ${what} ${fmtShape(t.shape)} does not match q ${fmtShape(q.shape)}`);
    }
  }
  const [b, t, d] = q.shape;
  if (!Number.isInteger(nHeads) || nHeads < 1 || d % nHeads !== 0) {
    throw new ShapeError(`causalSelfAttention: D = ${d} of q ${fmtShape(q.shape)} is not divisible by nHeads = ${nHeads}`);
  }
  const hd = d / nHeads;
  if (hd > MAX_HEAD_DIM) {
    throw new RangeError(`causalSelfAttention: head dimension ${hd} (q ${fmtShape(q.shape)}, ${nHeads} heads) exceeds the maximum ${MAX_HEAD_DIM} of kernels/attention.wgsl; use more heads`);
  }
  if (dropout && !(dropout.p >= 0 && dropout.p < 1)) throw new RangeError(`causalSelfAttention: dropout p must be in [0, 1), got ${dropout.p}`);
  const rt = q.rt;
  const rows = b * nHeads * t;
  const defines = { MAX_HD: HD_BUCKETS.find((n) => n >= hd)! };
  const drop = dropout && dropout.p > 0 ? dropout : null;
  const uniforms = {
    values: [b, t, d, nHeads, hd, rows, 1 / Math.sqrt(hd), drop ? 1 : 0, drop ? drop.seed >>> 0 : 0, drop ? dropoutThreshold(drop.p) : 0, drop ? 1 / (1 - drop.p) : 1, 0],
    format: 'uuuuuufuuufu',
  };
  const groups = Math.ceil(rows / WG);

  const out = empty(rt, q.shape);
  const lse = empty(rt, [b, nHeads, t]);
  const fwd: KernelSpec = { file: 'attention', entry: 'attn_forward', bindings: ['read', 'read', 'read', 'rw', 'rw'], overrides: { WG }, defines };
  rt.dispatch(fwd, [q.binding(), k.binding(), v.binding(), out.binding(), lse.binding()], uniforms, groups);

  const res = record(out, 'causalSelfAttention', [q, k, v], (g) => {
    const dq = empty(rt, q.shape);
    const delta = empty(rt, [b, nHeads, t]);
    const bq: KernelSpec = {
      file: 'attention', entry: 'attn_backward_q', bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'], overrides: { WG }, defines,
    };
    rt.dispatch(bq, [q.binding(), k.binding(), v.binding(), out.binding(), g.binding(), lse.binding(), dq.binding(), delta.binding()], uniforms, groups);
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (k.requiresGrad || v.requiresGrad) {
      dk = empty(rt, k.shape);
      dv = empty(rt, v.shape);
      const bkv: KernelSpec = {
        file: 'attention', entry: 'attn_backward_kv', bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'], overrides: { WG }, defines,
      };
      rt.dispatch(bkv, [q.binding(), k.binding(), v.binding(), g.binding(), lse.binding(), delta.binding(), dk.binding(), dv.binding()], uniforms, groups);
      if (!k.requiresGrad) {
        dk.dispose();
        dk = null;
      }
      if (!v.requiresGrad) {
        dv.dispose();
        dv = null;
      }
    }
    delta.dispose(); // returns to the pool only after the submit that runs both kernels
    if (!q.requiresGrad) {
      dq.dispose();
      return [null, dk, dv];
    }
    return [dq, dk, dv];
  });
  // Without a backward nobody reads the log-sum-exp again.
  if (!res.gradFn) lse.dispose();
  return res;
}
