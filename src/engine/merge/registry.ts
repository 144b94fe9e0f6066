// Merge-method passes by config name (`merge_method:`). The entries (names, parameters with defaults and ranges,
// needs, sources) are in src/files/registry/merge-methods.ts; TypeScript checks that every entry has its passes
// here and nothing else does. Adding a method: its entry there, its passes in ./methods.ts (kernels in
// kernels/merge.wgsl), its CPU reference in src/engine/cpu/merge.ts, and one line below.
import type { MergeMethodName } from '../../files/registry/merge-methods';
import { MergePasses, curvature, fisher, gta, normBased, regmean, weightedAverage } from './methods';
import { boolParam } from './common';

type MergeFactories = { [N in MergeMethodName]: MergePasses };

export const MERGE_PASSES: MergeFactories = {
  linear: (c, out, part) => weightedAverage(c, out, part, boolParam('linear', 'normalize', c.inp.global)),
  slerp: normBased,
  multislerp: normBased,
  task_arithmetic: gta,
  ties: gta,
  dare_linear: gta,
  dare_ties: gta,
  breadcrumbs: gta,
  breadcrumbs_ties: gta,
  della: gta,
  model_stock: normBased,
  fisher,
  // Non-2-D tensors (embeddings' biases, norms) and weights without Gram matrices are averaged.
  regmean: (c, out, part) => (c.inp.shape.length === 2 && c.inp.gram?.length ? regmean(c, out, part) : weightedAverage(c, out, part, true)),
  curvature,
};
