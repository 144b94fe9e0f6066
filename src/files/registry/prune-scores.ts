// The pruning scores `basin prune --score` and the prune-sweep job can name: metadata only. Kernels in
// kernels/prune.wgsl, CPU references in src/engine/cpu/prune.ts, the factories in src/engine/prune/scores.ts.
// Formulas and sources: ../shared/notes/algorithms.md §3. A score ranks a tensor's entries: the mask keeps the
// highest ones (per output row, per tensor or across all targeted tensors, see src/files/prune/options.ts).
//
// `needs` says what a score needs besides the weights: the training statistics saved beside the checkpoint
// (curvature) or a calibration pass over training batches (wanda, sparsegpt). A missing need is an error before
// any work, naming what to add.
import { ConfigUnion, defineEntry, Registry } from './entry';

const batches = (dflt: number) =>
  ({ type: 'integer', minimum: 1, default: dflt, doc: 'Training batches of the calibration pass (the inputs of each targeted layer are captured).' }) as const;

export const magnitude = defineEntry({
  kind: 'prune-score',
  name: 'magnitude',
  title: 'Magnitude: |w| (|τ| for a task vector).',
  source: 'Han et al. 2015 (arXiv 1506.02626)',
  params: {},
});

export const random = defineEntry({
  kind: 'prune-score',
  name: 'random',
  title: 'Random: uniform scores, the floor every other score must beat.',
  params: { seed: { type: 'integer', minimum: 0, default: 0, doc: 'Seed of the scores (a sweep is reproducible).' } },
});

export const curvature = defineEntry({
  kind: 'prune-score',
  name: 'curvature',
  title: 'Curvature (OBD): w² ⊙ F̂ with F̂ the rank-1 second moment of the training statistics; no data pass.',
  doc:
    'F̂_ij = R_i·C_j/ΣR from `stats/step-<n>.safetensors` (`<name>.v_row`, `<name>.v_col`: row and column sums of ' +
    'AdamW’s v, or Adafactor’s factors), computed in the kernel, never as a dense buffer. For a task vector τ²⊙F̂. ' +
    'Needs a run trained with `train.statsEvery > 0` (statistics are written at each checkpoint).',
  source: 'LeCun et al. 1990 (Optimal Brain Damage); arXiv 2512.17109 (UMTAM)',
  needs: { statistics: true },
  params: {},
});

export const wanda = defineEntry({
  kind: 'prune-score',
  name: 'wanda',
  title: 'Wanda: |W_ij|·‖X_j‖₂ with the input norms of a calibration pass; compare within output rows.',
  source: 'arXiv 2306.11695',
  needs: { data: true },
  params: { batches: batches(16) },
});

/**
 * Scores whose paper compares weights within each output row: a prune or sweep of only these scores defaults to
 * `granularity: row` (others, and mixed sweeps, to `tensor`, so every score of one sweep is cut the same way).
 */
export const ROW_WISE_SCORES: ReadonlySet<string> = new Set([wanda.name]);

export const sparsegpt = defineEntry({
  kind: 'prune-score',
  name: 'sparsegpt',
  title: 'SparseGPT: per layer OBS with the damped Hessian XᵀX of calibration inputs; updates the kept weights.',
  doc:
    'H = XᵀX + damp·mean(diag H)·I; H⁻¹ = UᵀU (U upper Cholesky); columns in blocks of `blockSize`: the block’s ' +
    'lowest w²/U_jj² are pruned (unstructured: across the block’s rows, as the reference does, so `granularity` ' +
    'does not apply; N:M: per row), and each pruned column’s error is spread over the later columns. Both the sweep ' +
    '(at every density) and `apply` run this weight update. The [in, in] solve runs on the CPU in float64 (inputs ' +
    'up to 1024). `calibration: sequential` (the default, as the paper does) prunes the layers in the order the ' +
    'forward reads them, each stage’s H from the inputs the already-pruned earlier layers produce (layers reading ' +
    'the same input, like q/k/v, share a stage): since those inputs depend on the density, every sweep point runs ' +
    'its own staged calibration (stages × `batches` partial forwards). `one-pass`: every H from the dense model’s ' +
    'inputs, computed once for all densities (faster, less exact). The ranking the sweep reports is from the dense H.',
  source: 'arXiv 2301.00774',
  needs: { data: true },
  params: {
    batches: batches(16),
    damp: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.01, doc: 'Dampening: a fraction of the mean diagonal of H added to the diagonal.' },
    blockSize: { type: 'integer', minimum: 1, default: 128, doc: 'Columns per lazy-update block (the mask is chosen per block).' },
    calibration: {
      type: 'string',
      enum: ['sequential', 'one-pass'],
      default: 'sequential',
      doc: 'Whose inputs each layer’s Hessian comes from: `sequential`, the already-pruned earlier layers’ (the paper; one calibration per density); `one-pass`, the dense model’s (one calibration for every density).',
    },
  },
});

export const PRUNE_SCORE_ENTRIES = [magnitude, random, curvature, wanda, sparsegpt] as const;
export const pruneScoreRegistry = new Registry('prune-score', PRUNE_SCORE_ENTRIES);
export type PruneScoreConfig = ConfigUnion<typeof PRUNE_SCORE_ENTRIES>;
export type PruneScoreName = PruneScoreConfig['type'];
