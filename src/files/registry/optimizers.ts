// The optimizers a config can name (`train.optimizer.type`): metadata only. Factories and the GPU code:
// src/engine/optim/registry.ts and one file per optimizer beside it (adamw.ts, sgd.ts, adafactor.ts); kernels in
// kernels/optim.wgsl and kernels/adafactor.wgsl; CPU references in src/engine/cpu/optim.ts.
import { ConfigUnion, defineEntry, Registry } from './entry';

const lr = (dflt: number) => ({ type: 'number', exclusiveMinimum: 0, default: dflt, doc: 'Peak learning rate (the schedule scales it).' }) as const;

export const adamw = defineEntry({
  kind: 'optimizer',
  name: 'adamw',
  title: 'AdamW: Adam with decoupled weight decay.',
  doc: 'Keeps a dense first moment m and second moment v per parameter (2 floats per weight). v is the curvature the statistics panel shows.',
  source: 'arXiv 1711.05101; PyTorch torch.optim.AdamW',
  params: {
    lr: lr(0.003),
    betas: {
      type: 'array',
      items: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
      minItems: 2,
      maxItems: 2,
      default: [0.9, 0.999],
      doc: 'Decay rates [β1, β2] of the first and second moment estimates.',
    },
    eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8, doc: 'Added to the denominator for numerical stability.' },
    weightDecay: { type: 'number', minimum: 0, default: 0.01, doc: 'Decoupled weight decay (multiplied by the learning rate).' },
  },
});

export const sgd = defineEntry({
  kind: 'optimizer',
  name: 'sgd',
  title: 'Stochastic gradient descent with momentum.',
  source: 'PyTorch torch.optim.SGD',
  params: {
    lr: lr(0.1),
    momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9, doc: 'Momentum coefficient (0 disables momentum).' },
    nesterov: { type: 'boolean', default: false, doc: 'Use Nesterov momentum.' },
    weightDecay: { type: 'number', minimum: 0, default: 0, doc: 'L2 weight decay added to the gradient.' },
  },
});

export const adafactor = defineEntry({
  kind: 'optimizer',
  name: 'adafactor',
  title: 'Adafactor: factored second moment (row and column statistics), no momentum by default.',
  doc:
    'For a weight viewed as a matrix [rows, cols] it keeps rows + cols floats of second moment (R, C) instead of rows·cols; V̂ = R·Cᵀ / mean(R). ' +
    'Vectors (biases, norms) keep a dense second moment. The update is clipped to RMS ≤ `clipThreshold` and, with `scaleParameter`, scaled by the RMS of the weight (relative step size).',
  source: 'arXiv 1804.04235 (Shazeer & Stern); parameterised as PyTorch torch.optim.Adafactor',
  params: {
    lr: { type: 'number', exclusiveMinimum: 0, default: 0.01, doc: 'Peak learning rate; the step size is min(lr, 1/√t) (times the weight RMS with `scaleParameter`).' },
    beta2Decay: {
      type: 'number',
      exclusiveMaximum: 0,
      default: -0.8,
      doc: 'The second-moment decay follows β2ₜ = 1 − t^beta2Decay (so early steps average over few gradients).',
    },
    beta1: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, doc: 'Momentum of the clipped update (0: none, the memory-saving default; > 0 keeps a dense first moment).' },
    eps1: {
      type: 'number',
      minimum: 1e-18,
      default: 1.1920929e-7,
      doc: 'Regulariser: V̂ is floored at eps1² (and mean(R) at eps1). Default: float32 machine epsilon, as PyTorch. At least 1e-18, so that eps1² stays a normal float32 (a zero floor turns zero gradients into NaN).',
    },
    eps2: { type: 'number', exclusiveMinimum: 0, default: 0.001, doc: 'Floor of the weight RMS in the relative step size.' },
    clipThreshold: { type: 'number', exclusiveMinimum: 0, default: 1, doc: 'Update clipping: the update is divided by max(1, RMS(update) / clipThreshold).' },
    scaleParameter: { type: 'boolean', default: true, doc: 'Scale the step by max(eps2, RMS(weight)) (relative step size).' },
    weightDecay: { type: 'number', minimum: 0, default: 0, doc: 'Decoupled weight decay (multiplied by the learning rate).' },
  },
});

export const mao = defineEntry({
  kind: 'optimizer',
  name: 'mao',
  title: 'mao: momentum-aware optimizer — low-rank momentum, factored second moment (below AdamW\'s memory).',
  doc:
    'For a weight viewed as a matrix [m, n] with min(m, n) > rank it keeps the momentum as U [m, r]·S [r, r]·V [n, r]ᵀ plus the residual E (bfloat16, `errorFeedback`), and Adafactor\'s row/column second moment R [m], C [n]: ' +
    '(m + n)(r + 1) + r² floats and 2 bytes per weight, against AdamW\'s 8 bytes per weight (without E: the factors only, less exact momentum). Update: P = min((V̂ + eps)^(−1/2), pMax), W ← W − lr·P ⊙ M̃ (M̃ = β1·U·S·Vᵀ + (1 − β1)·g, bias corrected), ' +
    'the update RMS clipped to `clipThreshold`, decoupled weight decay. Between refits U, V stay fixed and S follows M̃ in their subspace; every `refitEvery` steps the subspaces ' +
    'are refitted to M̃ by randomized subspace iteration on the GPU. Vectors and smaller matrices: dense Adam state. `errorFeedback` (default on) keeps the dense residual E = M̃ − U·S·Vᵀ in bfloat16, which makes the momentum exact up to its rounding: without it, the rank-r momentum reaches AdamW\'s loss only where the momentum is nearly low-rank.',
  source: 'UMTAM arXiv 2512.17109; MoFaSGD arXiv 2507.08091 (low-rank momentum); Adafactor arXiv 1804.04235 (factored second moment)',
  params: {
    lr: lr(0.003),
    betas: {
      type: 'array',
      items: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
      minItems: 2,
      maxItems: 2,
      default: [0.9, 0.999],
      doc: 'Decay rates [β1, β2] of the (low-rank) momentum and the (factored) second moment.',
    },
    eps: { type: 'number', minimum: 1e-30, default: 1e-16, doc: 'Added to V̂ inside the inverse square root (1e-16 ≈ AdamW\'s 1e-8 added to √v).' },
    rank: { type: 'integer', minimum: 1, maximum: 128, default: 32, doc: 'Rank r of the momentum factors; matrices with min(m, n) ≤ rank keep dense Adam state instead.' },
    refitEvery: { type: 'integer', minimum: 1, default: 20, doc: 'Steps between refits of the momentum subspaces (subspace iteration on the GPU); in between, the core S follows M̃ in the fixed subspaces.' },
    powerIters: { type: 'integer', minimum: 0, maximum: 8, default: 1, doc: 'Power iterations per refit (each costs two products with M̃; the start is the previous subspace).' },
    pMax: { type: 'number', exclusiveMinimum: 0, default: 10000, doc: 'Clamp of the preconditioner P = (V̂ + eps)^(−1/2) (caps the step where the second moment is tiny).' },
    clipThreshold: { type: 'number', exclusiveMinimum: 0, default: 1, doc: 'Update clipping: the update is divided by max(1, RMS(update) / clipThreshold), per tensor.' },
    weightDecay: { type: 'number', minimum: 0, default: 0.01, doc: 'Decoupled weight decay (multiplied by the learning rate).' },
    errorFeedback: { type: 'boolean', default: true, doc: 'Keep the dense residual E = M̃ − U·S·Vᵀ in bfloat16 (2 bytes per factored weight): the momentum is exact up to E\'s rounding. false: the factors alone ((m + n)(r + 1) + r² floats per matrix), whose rank-r momentum costs quality where the momentum is not low-rank (bench optimizer-quality).' },
    errorFeedbackPrecision: { type: 'string', enum: ['bf16', 'f32'], default: 'bf16', doc: 'How E is held and checkpointed: bf16 (2 bytes per weight; rounded to nearest even) or f32 (4 bytes).' },
    residual: {
      type: 'boolean',
      default: true,
      doc: 'Update with the low-rank momentum plus the gradient\'s part outside its subspaces at full weight (false: the plain M̃ = β1·U·S·Vᵀ + (1−β1)·g, which keeps only (1−β1) of that part). Ignored with errorFeedback (the momentum is then exact).',
    },
    residualWeight: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 1,
      doc: 'ρ: the weight of the gradient\'s part outside the momentum\'s subspaces in the residual form, m̂ = U·(β1·S + (1−β1)·T)·Vᵀ/(1 − β1ᵗ) + ρ·(g − U·T·Vᵀ). That part has no momentum to average its noise, so a ρ below 1 damps it.',
    },
  },
});

export const OPTIMIZER_ENTRIES = [adamw, sgd, adafactor, mao] as const;
export const optimizerRegistry = new Registry('optimizer', OPTIMIZER_ENTRIES);
export type OptimizerConfig = ConfigUnion<typeof OPTIMIZER_ENTRIES>;
export type OptimizerName = OptimizerConfig['type'];
