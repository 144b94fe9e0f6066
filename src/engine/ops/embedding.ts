// Embedding lookup: rows of a [V, D] table picked by an i32 index tensor of any shape. Backward scatter-adds the
// output gradient into a [V, D] gradient. Kernels: kernels/embedding.wgsl.
//
// Indices live on the GPU, so the host cannot check them without a read-back: an index outside [0, V) is
// checked in the kernels instead, reading as a zero row in forward and contributing nothing in backward.
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape } from '../tensor/tensor';
import { fillInPlace } from './basic';

const WG = 256;

/** table [V, D] f32, indices i32 of any shape → [...indices.shape, D]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  if (table.dtype !== 'f32' || table.rank !== 2) {
    throw new ShapeError(`embedding: table must be a 2-D f32 tensor [V, D], got ${table.dtype} ${fmtShape(table.shape)}`);
  }
  if (indices.dtype !== 'i32') {
    throw new TypeError(`embedding: indices must be i32, got ${indices.dtype} ${fmtShape(indices.shape)}`);
  }
  const [v, d] = table.shape;
  const n = indices.size;
  const out = empty(table.rt, [...indices.shape, d]);
  const uniforms = { values: [n, d, v, 0] };
  const gather: KernelSpec = { file: 'embedding', entry: 'embedding_gather', bindings: ['read', 'read', 'rw'] };
  table.rt.dispatch(gather, [table.binding(), indices.binding(), out.binding()], uniforms, Math.ceil((n * d) / WG));
  return record(out, 'embedding', [table, indices], (g) => {
    const dtable = fillInPlace(empty(table.rt, table.shape), 0);
    const scatter: KernelSpec = { file: 'embedding', entry: 'embedding_scatter', bindings: ['read', 'read', 'rw'] };
    table.rt.dispatch(scatter, [g.binding(), indices.binding(), dtable.binding()], uniforms, Math.ceil((n * d) / WG));
    return [dtable, null];
  });
}
