// Embedding lookup: rows of a [V, D] table picked by an i32 index tensor of any shape. Backward scatter-adds the
// output gradient into the table's gradient. Kernels: kernels/embedding.wgsl.
//
// Indices live on the GPU, so the host cannot check them without a read-back: an index outside [0, V) is
// checked in the kernels instead, reading as a zero row in forward and contributing nothing in backward.
//
// Tables above the binding limit (a 1M × 64 vocabulary is 256 MiB; lavapipe binds 128 MiB): the table and its
// gradient are bound one row range at a time (rowRanges), each dispatch handling the tokens whose index falls in
// its range. The output [..., D] and the indices are bound whole. For a leaf table (a parameter) the backward
// scatter-adds straight into its gradient (leafGradSink): no dense [V, D] temporary, no second pass to add it.
import type { KernelSpec } from '../gpu/kernels';
import { leafGradSink, record } from '../autograd/tape';
import { ShapeError, Tensor, empty, fmtShape, rowRanges } from '../tensor/tensor';
import { fillInPlace } from './basic';

const WG = 256;
const GATHER: KernelSpec = { file: 'embedding', entry: 'embedding_gather', bindings: ['read', 'read', 'rw'] };
const SCATTER: KernelSpec = { file: 'embedding', entry: 'embedding_scatter', bindings: ['read', 'read', 'rw'] };

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
  const rt = table.rt;
  // Planned before anything is allocated or recorded: a row too long for one binding throws here.
  const ranges = rowRanges(table, d, { where: 'embedding' });
  const out = empty(rt, [...indices.shape, d]);
  const groups = Math.ceil((n * d) / WG);
  ranges.forEach((r, i) => {
    const values = [n, d, v, r.r0, r.r1, r.lead, i === 0 ? 1 : 0, 0];
    rt.dispatch(GATHER, [r.binding, indices.binding(), out.binding()], { values }, groups);
  });
  return record(out, 'embedding', [table, indices], (g) => {
    // Directly into a leaf's gradient; otherwise a dense gradient for backward() to route (a table computed by
    // other ops, which could not be larger than one binding anyway).
    const sink = leafGradSink(table);
    const dtable = sink ?? fillInPlace(empty(rt, table.shape), 0);
    for (const r of rowRanges(dtable, d, { where: 'embedding backward' })) {
      const values = [n, d, v, r.r0, r.r1, r.lead, 0, 0];
      rt.dispatch(SCATTER, [g.binding(), indices.binding(), r.binding], { values }, groups);
    }
    return [sink ? null : dtable, null];
  });
}
