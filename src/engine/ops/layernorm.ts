// Layer normalisation over the last axis. One kernel forward (saving mean and rstd per row); backward is one
// kernel for dx and one for the dweight/dbias column sums. Kernels: kernels/layernorm.wgsl.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape } from '../tensor/tensor';
import { rowLayout, sum } from './reduce';

const WG = 256;
/** dweight/dbias: rows per invocation at least this many, and about this many invocations in all. */
const PARAM_MIN_ROWS = 32;
const PARAM_TARGET = 32768;

/** The `_small` (invocation per row) or `_rows` (workgroup per row) variant of a kernel, and its grid. */
function rowKernel(x: Tensor, base: string, rows: number, d: number): { entry: string; wg: number; groups: number } {
  const { perWorkgroup, wg } = rowLayout(x.rt, rows, d);
  return { entry: `${base}_${perWorkgroup ? 'rows' : 'small'}`, wg, groups: perWorkgroup ? rows : Math.ceil(rows / wg) };
}

/** (x - mean) / sqrt(var + eps) · weight + bias over the last axis; weight and bias have shape [D]. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  for (const [t, what] of [[x, 'x'], [weight, 'weight'], [bias, 'bias']] as const) {
    if (t.dtype !== 'f32') throw new TypeError(`layerNorm: ${what} must be f32, got ${t.dtype} ${fmtShape(t.shape)}`);
  }
  if (x.rank === 0) throw new ShapeError(`layerNorm: x ${fmtShape(x.shape)} has no last axis`);
  const d = x.shape[x.rank - 1];
  for (const [t, what] of [[weight, 'weight'], [bias, 'bias']] as const) {
    if (t.rank !== 1 || t.shape[0] !== d) {
      throw new ShapeError(`layerNorm: ${what} ${fmtShape(t.shape)} does not match the last axis of x ${fmtShape(x.shape)}`);
    }
  }
  const rt = x.rt;
  const rows = d === 0 ? 0 : x.size / d;
  const out = empty(rt, x.shape);
  const mean = empty(rt, [rows]);
  const rstd = empty(rt, [rows]);
  const uniforms = { values: [rows, d, eps, 0, 0, 0, 0, 0], format: 'uufuuuuu' };
  const fk = rowKernel(x, 'layernorm', rows, d);
  const fwd: KernelSpec = { file: 'layernorm', entry: fk.entry, bindings: ['read', 'read', 'read', 'rw', 'rw', 'rw'], overrides: { WG: fk.wg } };
  rt.dispatch(fwd, [x.binding(), weight.binding(), bias.binding(), out.binding(), mean.binding(), rstd.binding()], uniforms, fk.groups);
  const res = record(out, 'layerNorm', [x, weight, bias], (g) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(rt, x.shape);
      const bk = rowKernel(x, 'layernorm_backward', rows, d);
      const spec: KernelSpec = { file: 'layernorm', entry: bk.entry, bindings: ['read', 'read', 'read', 'read', 'read', 'rw'], overrides: { WG: bk.wg } };
      rt.dispatch(spec, [g.binding(), x.binding(), weight.binding(), mean.binding(), rstd.binding(), dx.binding()], uniforms, bk.groups);
    }
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (weight.requiresGrad || bias.requiresGrad) {
      const [w, b] = paramGrads(g, x, mean, rstd, rows, d);
      if (weight.requiresGrad) dw = w;
      else w.dispose();
      if (bias.requiresGrad) db = b;
      else b.dispose();
    }
    return [dx, dw, db];
  });
  // Without a backward nobody reads the statistics again.
  if (!res.gradFn) {
    mean.dispose();
    rstd.dispose();
  }
  return res;
}

/** dweight = Σ_rows g·x̂ and dbias = Σ_rows g: per-chunk partials from one kernel, then a column sum. */
function paramGrads(g: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, rows: number, d: number): [Tensor, Tensor] {
  const rt = x.rt;
  let nchunks = Math.max(1, Math.min(Math.ceil(rows / PARAM_MIN_ROWS), Math.ceil(PARAM_TARGET / Math.max(d, 1))));
  const chunk = Math.max(1, Math.ceil(rows / nchunks));
  nchunks = Math.max(1, Math.ceil(rows / chunk));
  const dwPart = empty(rt, nchunks === 1 ? [d] : [nchunks, d]);
  const dbPart = empty(rt, nchunks === 1 ? [d] : [nchunks, d]);
  const spec: KernelSpec = { file: 'layernorm', entry: 'layernorm_backward_params', bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'] };
  rt.dispatch(spec, [g.binding(), x.binding(), mean.binding(), rstd.binding(), dwPart.binding(), dbPart.binding()],
    { values: [rows, d, 0, chunk, nchunks, 0, 0, 0], format: 'uufuuuuu' }, Math.ceil((nchunks * d) / WG));
  if (nchunks === 1) return [dwPart, dbPart];
  const dw = sum(dwPart, 0);
  const db = sum(dbPart, 0);
  dwPart.dispose();
  dbPart.dispose();
  return [dw, db];
}
