// The merge methods a merge config can name (`merge_method:` in a *.merge.yaml, mergekit's names): metadata only.
// Kernels in kernels/merge.wgsl, CPU references in src/engine/cpu/merge.ts, the per-tensor GPU functions and their
// factory table in src/engine/merge/. Formulas and sources: ../shared/notes/algorithms.md §2 (θ₀ the base,
// θ_t the experts, τ_t = θ_t − θ₀).
//
// Parameters follow mergekit: `perModel` ones may be written under `models[i].parameters` (and per slice source),
// the others only under the global `parameters`; a value may be a scalar, a list (a gradient interpolated across
// layers) or a list of `{filter, value}` matched against tensor names (src/files/merge/). `needs` says what a
// method needs besides the experts: a base model, the training statistics beside each expert's checkpoint, or a
// pass over data.
import { ConfigUnion, defineEntry, Registry } from './entry';

const weight = { type: 'number', default: 1, perModel: true, doc: 'Weight of this model in the combination.' } as const;
const density = {
  type: 'number',
  exclusiveMinimum: 0,
  maximum: 1,
  default: 1,
  perModel: true,
  doc: 'Fraction of the task vector’s entries kept (per tensor): 1 keeps all.',
} as const;
const lambda = { type: 'number', default: 1, doc: 'Scale of the merged task vector before it is added to the base.' } as const;
const normalize = (dflt: boolean) =>
  ({ type: 'boolean', default: dflt, doc: 'Divide by the sum of the weights (of the entries kept, for sign-elected methods).' }) as const;
const rescale = { type: 'boolean', default: true, doc: 'Rescale the kept deltas by 1/density (DARE), so the expected task vector is unchanged.' } as const;
const seed = { type: 'integer', minimum: 0, default: 0, doc: 'Seed of the random drops (a merge is reproducible).' } as const;

export const linear = defineEntry({
  kind: 'merge-method',
  name: 'linear',
  title: 'Weighted average of the models: θ* = Σ w_t θ_t / Σ w_t.',
  source: 'arXiv 2203.05482 (model soups); mergekit linear',
  params: { weight, normalize: normalize(true) },
});

export const slerp = defineEntry({
  kind: 'merge-method',
  name: 'slerp',
  title: 'Spherical interpolation of two models, per tensor (the base is t = 0).',
  doc: 'Falls back to linear interpolation where the two tensors are nearly parallel.',
  source: 'mergekit slerp',
  needs: { base: true },
  params: { t: { type: 'number', minimum: 0, maximum: 1, default: 0.5, expertShare: true, doc: 'Interpolation factor: 0 gives the base, 1 the other model.' } },
});

export const multislerp = defineEntry({
  kind: 'merge-method',
  name: 'multislerp',
  title: 'Spherical weighted average of any number of models (on the hypersphere, around the base when given).',
  source: 'mergekit multislerp',
  params: {
    weight,
    normalize_weights: { type: 'boolean', default: true, doc: 'Divide the weights by their sum.' },
    eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8, doc: 'Norms below this are treated as zero.' },
  },
});

export const taskArithmetic = defineEntry({
  kind: 'merge-method',
  name: 'task_arithmetic',
  title: 'Task arithmetic: θ* = θ₀ + λ Σ w_t τ_t.',
  source: 'arXiv 2212.04089; mergekit task_arithmetic',
  needs: { base: true },
  params: { weight, lambda, normalize: normalize(false) },
});

export const ties = defineEntry({
  kind: 'merge-method',
  name: 'ties',
  title: 'TIES: trim each task vector to its top-k by |τ|, elect the sign by mass, average the agreeing entries.',
  source: 'arXiv 2306.01708; mergekit ties',
  needs: { base: true },
  params: { weight, density, lambda, normalize: normalize(true) },
});

export const dareLinear = defineEntry({
  kind: 'merge-method',
  name: 'dare_linear',
  title: 'DARE then task arithmetic: drop each delta with probability 1 − density, rescale the rest.',
  source: 'arXiv 2311.03099; mergekit dare_linear',
  needs: { base: true },
  params: { weight, density, lambda, rescale, normalize: normalize(false), seed },
});

export const dareTies = defineEntry({
  kind: 'merge-method',
  name: 'dare_ties',
  title: 'DARE then TIES sign election and disjoint mean.',
  source: 'arXiv 2311.03099; mergekit dare_ties',
  needs: { base: true },
  params: { weight, density, lambda, rescale, normalize: normalize(true), seed },
});

const gamma = {
  type: 'number',
  minimum: 0,
  exclusiveMaximum: 1,
  default: 0.01,
  perModel: true,
  doc: 'Fraction of the largest-|τ| entries dropped (outliers), besides the smallest ones beyond `density`.',
} as const;

export const breadcrumbs = defineEntry({
  kind: 'merge-method',
  name: 'breadcrumbs',
  title: 'Model Breadcrumbs: drop both the smallest and the largest |τ| per tensor, then task arithmetic.',
  source: 'arXiv 2312.06795; mergekit breadcrumbs',
  needs: { base: true },
  params: { weight, density, gamma, lambda, normalize: normalize(false) },
});

export const breadcrumbsTies = defineEntry({
  kind: 'merge-method',
  name: 'breadcrumbs_ties',
  title: 'Model Breadcrumbs masks with TIES sign election and disjoint mean.',
  source: 'arXiv 2312.06795; mergekit breadcrumbs_ties',
  needs: { base: true },
  params: { weight, density, gamma, lambda, normalize: normalize(true) },
});

export const della = defineEntry({
  kind: 'merge-method',
  name: 'della',
  title: 'DELLA: magnitude-ranked drop probabilities (larger |τ| kept more often), rescale, then TIES election.',
  doc: 'Per row, keep probabilities rise linearly with the rank of |τ| from density − ε/2 to density + ε/2; kept entries are divided by their keep probability.',
  source: 'arXiv 2406.11617; mergekit della',
  needs: { base: true },
  params: {
    weight,
    density,
    epsilon: { type: 'number', minimum: 0, maximum: 1, default: 0.1, perModel: true, doc: 'Spread of the keep probabilities around `density`.' },
    lambda,
    normalize: normalize(true),
    seed,
  },
});

export const modelStock = defineEntry({
  kind: 'merge-method',
  name: 'model_stock',
  title: 'Model Stock: interpolate the experts’ average towards the base by the angle between their task vectors.',
  doc: 't = k·cosθ / (1 + (k − 1)·cosθ) with cosθ the mean pairwise cosine of the task vectors; θ* = t·mean(θ_t) + (1 − t)·θ₀. Needs at least two experts.',
  source: 'arXiv 2403.19522; mergekit model_stock',
  needs: { base: true },
  params: { filter_wise: { type: 'boolean', default: false, doc: 'Compute the angle per row instead of per tensor.' } },
});

export const fisher = defineEntry({
  kind: 'merge-method',
  name: 'fisher',
  title: 'Fisher merging: θ* = Σ w_t F_t θ_t / Σ w_t F_t, F_t the diagonal Fisher computed from data after training.',
  doc: 'The post-hoc baseline: a pass of `batches` batches of each task’s data per expert. Basin’s `curvature` method reads the same information from the training statistics instead.',
  source: 'arXiv 2111.09832 (Matena & Raffel)',
  needs: { data: true },
  params: {
    weight,
    batches: { type: 'integer', minimum: 1, default: 32, doc: 'Batches of each task’s data in the Fisher pass.' },
    floor: { type: 'number', minimum: 0, default: 1e-8, doc: 'Added to every Fisher value (entries no task saw fall back to the plain average).' },
  },
});

export const regmean = defineEntry({
  kind: 'merge-method',
  name: 'regmean',
  title: 'RegMean: per linear layer W* = (Σ G_t)⁻¹ Σ G_t W_t with G_t = X_tᵀX_t, the input Gram matrices from data.',
  doc: 'Other tensors (embeddings, norms, biases) are averaged. Off-diagonal Gram entries are scaled by `alpha` (the paper’s regularisation).',
  source: 'arXiv 2212.09849 (Jin et al.)',
  needs: { data: true },
  params: {
    weight,
    batches: { type: 'integer', minimum: 1, default: 32, doc: 'Batches of each task’s data for the Gram matrices.' },
    alpha: { type: 'number', minimum: 0, maximum: 1, default: 0.9, doc: 'Scale of the off-diagonal Gram entries (1: plain RegMean).' },
  },
});

export const curvature = defineEntry({
  kind: 'merge-method',
  name: 'curvature',
  title: 'Curvature-aware merging from the training statistics: saliency trim, curvature-weighted sign election and mean.',
  doc:
    'F̂_t = sqrt(R_t·C_tᵀ) from the row/column second-moment sums saved beside each expert’s checkpoint (AdamW, Adafactor or mao); ' +
    's_t = τ_t² ⊙ F̂_t; trim τ_t to its top `density` by s_t per tensor; σ = sign(Σ m_t ⊙ sign(τ_t) ⊙ F̂_t); ' +
    'τ* = Σ a_t F̂_t τ_t / Σ a_t F̂_t with a_t = w_t·m_t ⊙ [sign τ_t = σ]; θ* = θ₀ + λ·τ*. No data pass.',
  source: 'arXiv 2512.17109 (UMTAM, Alg. 2); arXiv 2509.11167 (OTA merging)',
  needs: { base: true, statistics: true },
  params: { weight, density: { ...density, default: 0.2 }, lambda },
});

export const MERGE_METHOD_ENTRIES = [
  linear,
  slerp,
  multislerp,
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  breadcrumbs,
  breadcrumbsTies,
  della,
  modelStock,
  fisher,
  regmean,
  curvature,
] as const;
export const mergeMethodRegistry = new Registry('merge-method', MERGE_METHOD_ENTRIES);
export type MergeMethodConfig = ConfigUnion<typeof MERGE_METHOD_ENTRIES>;
export type MergeMethodName = MergeMethodConfig['type'];
