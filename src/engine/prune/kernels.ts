// GPU functions of kernels/prune.wgsl: one tensor [rows, cols] per dispatch, no autograd (pruning happens after
// training). Each has a CPU reference in src/engine/cpu/prune.ts and a test in test/gpu/prune.test.ts. A tensor
// above one binding is refused by rt.dispatch (BindingLimitError); the targets are per-layer weight matrices.
import type { KernelSpec } from '../gpu/kernels';
import { ShapeError, Tensor, empty, fmtShape } from '../tensor/tensor';

const WG = 256;
const spec = (entry: string, bindings: KernelSpec['bindings']): KernelSpec => ({ file: 'prune', entry, bindings, overrides: { WG } });
const SCORE_MAGNITUDE = spec('score_magnitude', ['read', 'read', 'rw']);
const SCORE_RANDOM = spec('score_random', ['rw']);
const SCORE_CURVATURE = spec('score_curvature', ['read', 'read', 'read', 'read', 'rw']);
const SCORE_WANDA = spec('score_wanda', ['read', 'read', 'read', 'rw']);
const COL_SQSUM = spec('col_sqsum', ['read', 'rw']);
const MASK_THRESHOLD = spec('mask_threshold', ['read', 'read', 'read', 'read', 'rw']);
const MASK_NM = spec('mask_nm', ['read', 'read', 'read', 'read', 'rw']);
const MASK_SELECT = spec('mask_select', ['read', 'read', 'read', 'rw']);

interface U {
  n: number;
  cols: number;
  rows?: number;
  flag?: number;
  seed?: number;
  salt?: number;
  m?: number;
  keep?: number;
  scale?: number;
}

function uniforms(u: U) {
  return {
    values: [u.n, u.cols, u.rows ?? 0, u.flag ?? 0, u.seed ?? 0, u.salt ?? 0, u.m ?? 0, u.keep ?? 0, u.scale ?? 0, 0, 0, 0],
    format: 'uuuuuuuufuuu',
  };
}

/** [rows, cols] of a weight matrix (a vector is one row). */
function matrix(t: Tensor, what: string): [number, number] {
  if (t.dtype !== 'f32') throw new ShapeError(`${what}: ${t.name ?? 'tensor'} is ${t.dtype}, expected f32`);
  if (t.rank === 2) return [t.shape[0], t.shape[1]];
  if (t.rank === 1) return [1, t.shape[0]];
  throw new ShapeError(`${what}: expected a matrix [rows, cols], got ${fmtShape(t.shape)}`);
}

function sameShape(a: Tensor, b: Tensor | undefined, what: string): void {
  if (b && a.shape.join() !== b.shape.join()) throw new ShapeError(`${what}: ${fmtShape(a.shape)} and base ${fmtShape(b.shape)} differ`);
}

const groups = (n: number) => Math.max(1, Math.ceil(n / WG));

/** |w| or |w − base|. */
export function scoreMagnitude(w: Tensor, base?: Tensor): Tensor {
  const [, cols] = matrix(w, 'magnitude score');
  sameShape(w, base, 'magnitude score');
  const out = empty(w.rt, w.shape);
  w.rt.dispatch(SCORE_MAGNITUDE, [w.binding(), (base ?? w).binding(), out.binding()], uniforms({ n: w.size, cols, flag: base ? 1 : 0 }), groups(w.size));
  return out;
}

/** Uniform [0, 1) scores from (seed, salt): salt separates tensors so they draw independent scores. */
export function scoreRandom(like: Tensor, seed: number, salt: number): Tensor {
  const [, cols] = matrix(like, 'random score');
  const out = empty(like.rt, like.shape);
  like.rt.dispatch(SCORE_RANDOM, [out.binding()], uniforms({ n: like.size, cols, seed: seed >>> 0, salt: salt >>> 0 }), groups(like.size));
  return out;
}

/** d²·R_i·C_j/ΣR with d = w or w − base; vRow [rows], vCol [cols] (row and column sums of the second moment). */
export function scoreCurvature(w: Tensor, vRow: Tensor, vCol: Tensor, base?: Tensor, sumR?: number): Tensor {
  const [rows, cols] = matrix(w, 'curvature score');
  sameShape(w, base, 'curvature score');
  if (vRow.size !== rows || vCol.size !== cols) {
    throw new ShapeError(`curvature score: weight ${fmtShape(w.shape)} needs v_row [${rows}] and v_col [${cols}], got ${fmtShape(vRow.shape)} and ${fmtShape(vCol.shape)}`);
  }
  const scale = sumR && sumR > 0 ? 1 / sumR : 0;
  const out = empty(w.rt, w.shape);
  w.rt.dispatch(SCORE_CURVATURE, [w.binding(), (base ?? w).binding(), vRow.binding(), vCol.binding(), out.binding()], uniforms({ n: w.size, cols, flag: base ? 1 : 0, scale }), groups(w.size));
  return out;
}

/** |d_ij|·sqrt(colSq_j), colSq [cols] the calibration inputs' column sums of squares. */
export function scoreWanda(w: Tensor, colSq: Tensor, base?: Tensor): Tensor {
  const [, cols] = matrix(w, 'wanda score');
  sameShape(w, base, 'wanda score');
  if (colSq.size !== cols) throw new ShapeError(`wanda score: weight ${fmtShape(w.shape)} needs input norms [${cols}], got ${fmtShape(colSq.shape)}`);
  const out = empty(w.rt, w.shape);
  w.rt.dispatch(SCORE_WANDA, [w.binding(), (base ?? w).binding(), colSq.binding(), out.binding()], uniforms({ n: w.size, cols, flag: base ? 1 : 0 }), groups(w.size));
  return out;
}

/** acc[j] += Σ_r x[r, j]² for inputs x [..., cols] (leading axes flattened into rows). */
export function accumulateColSqSum(x: Tensor, acc: Tensor): void {
  const cols = acc.size;
  if (x.rank < 1 || x.shape[x.rank - 1] !== cols) throw new ShapeError(`input norms: inputs ${fmtShape(x.shape)} do not end in the accumulator's ${fmtShape(acc.shape)}`);
  const rows = x.size / cols;
  x.rt.dispatch(COL_SQSUM, [x.binding(), acc.binding()], uniforms({ n: x.size, cols, rows }), groups(cols));
}

/**
 * out = score ≥ thr ? dense : (base or 0). `thr` holds one threshold per row ([rows]) or one for the tensor ([1]).
 * `out` may be the live parameter view: the dense values come from `dense`, never from `out`.
 */
export function maskThreshold(out: Tensor, dense: Tensor, score: Tensor, thr: Tensor, base?: Tensor): void {
  const [rows, cols] = matrix(dense, 'threshold mask');
  for (const [t, n] of [[out, 'output'], [score, 'score']] as const) {
    if (t.shape.join() !== dense.shape.join()) throw new ShapeError(`threshold mask: ${n} ${fmtShape(t.shape)} and weights ${fmtShape(dense.shape)} differ`);
  }
  sameShape(dense, base, 'threshold mask');
  if (thr.size !== 1 && thr.size !== rows) throw new ShapeError(`threshold mask: thresholds ${fmtShape(thr.shape)} fit neither [1] nor [${rows}] rows of ${fmtShape(dense.shape)}`);
  dense.rt.dispatch(
    MASK_THRESHOLD,
    [dense.binding(), (base ?? dense).binding(), score.binding(), thr.binding(), out.binding()],
    uniforms({ n: dense.size, cols, flag: base ? 1 : 0, keep: thr.size === rows && rows > 1 ? 1 : 0 }),
    groups(dense.size),
  );
}

/** N:M: out keeps the N largest scores of every M consecutive entries of each row (ties: lower index), exactly. */
export function maskNm(out: Tensor, dense: Tensor, score: Tensor, n: number, m: number, base?: Tensor): void {
  const [, cols] = matrix(dense, `${n}:${m} mask`);
  if (cols % m !== 0) throw new ShapeError(`${n}:${m} mask: the input dimension of ${fmtShape(dense.shape)} is not a multiple of ${m}`);
  if (score.shape.join() !== dense.shape.join() || out.shape.join() !== dense.shape.join()) {
    throw new ShapeError(`${n}:${m} mask: score ${fmtShape(score.shape)}, output ${fmtShape(out.shape)} and weights ${fmtShape(dense.shape)} must agree`);
  }
  sameShape(dense, base, `${n}:${m} mask`);
  // The 4th binding (thresholds) is unused by mask_nm; the score stands in so the layout matches mask_threshold.
  dense.rt.dispatch(MASK_NM, [dense.binding(), (base ?? dense).binding(), score.binding(), score.binding(), out.binding()], uniforms({ n: dense.size, cols, flag: base ? 1 : 0, m, keep: n }), groups(dense.size));
}


/** out = mask[offset + i] ≠ 0 ? dense : (base or 0); mask is u32 (1 = kept), e.g. ops/select.ts topKMask. */
export function maskSelect(out: Tensor, dense: Tensor, mask: Tensor, offset = 0, base?: Tensor): void {
  const [, cols] = matrix(dense, 'mask select');
  if (out.shape.join() !== dense.shape.join()) throw new ShapeError(`mask select: output ${fmtShape(out.shape)} and weights ${fmtShape(dense.shape)} differ`);
  if (mask.dtype !== 'u32' || offset + dense.size > mask.size) throw new ShapeError(`mask select: ${mask.dtype} mask ${fmtShape(mask.shape)} does not cover ${dense.size} elements from ${offset}`);
  sameShape(dense, base, 'mask select');
  dense.rt.dispatch(MASK_SELECT, [dense.binding(), (base ?? dense).binding(), mask.binding(), out.binding()], uniforms({ n: dense.size, cols, flag: base ? 1 : 0, salt: offset }), groups(dense.size));
}
