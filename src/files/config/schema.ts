// The training config (`*.basin.yaml`, `*.basin.json`): ONE source of truth.
//
// `trainConfigSchema` (JSON Schema draft-07, with a description on every field and defaults) drives both the
// loader's validation (Ajv, see load.ts) and VS Code's hover/completion (package.json contributes
// schemas/train-config.schema.json). That file is generated from this object:
//
//     npx tsx src/files/config/write-schema.ts
//
// and test/unit/config.test.ts fails when it is stale. `TrainConfig` below is the config after defaults are
// applied (Ajv fills the schema defaults; load.ts fills the few defaults that depend on other fields); the
// config test checks that its fields, the schema's and the loaded examples' agree.
//
// Variants (model.type, data.type, train.optimizer.type, train.schedule.type) are `oneOf` branches selected by
// their `type` (Ajv's `discriminator` keyword, which editors ignore), so each branch has its own defaults and
// its own unknown-field check. A section that is written must name its `type` (Ajv's discriminator needs it
// required, and an editor, which applies no defaults, would otherwise see a typeless object differently from the
// loader); a section left out entirely defaults to its first variant.

const positiveInt = (description: string, dflt?: number) =>
  ({ type: 'integer', minimum: 1, description, ...(dflt === undefined ? {} : { default: dflt }) }) as const;

const validFraction = {
  type: 'number',
  minimum: 0,
  exclusiveMaximum: 1,
  default: 0.1,
  description: 'Fraction of the examples (sequences, users or samples) held out for validation, chosen deterministically from the seed.',
} as const;

const dataSeed = {
  type: 'integer',
  minimum: 0,
  maximum: 4294967295,
  description: 'Seed of the data generator and of the train/validation split. Default: the top-level `seed`.',
} as const;

export const trainConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Basin training config',
  description: 'A Basin training run: the model, the data, and how to train it. Run it with `basin train <file>`.',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string', description: 'The JSON Schema this file follows (optional; for editors).' },
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      maxLength: 64,
      description:
        'Run name: letters, digits, ".", "_" and "-". Run folders are <output>/<name>-<yyyymmdd-hhmmss>. Default: the config file name without `.basin.yaml` / `.basin.json`.',
    },
    seed: {
      type: 'integer',
      minimum: 0,
      maximum: 4294967295,
      default: 1,
      description: 'Seed of every random choice (initialization, dropout, data order, synthetic data). The same seed and config give the same run.',
    },
    model: {
      type: 'object',
      description: 'The model to train. Default: a transformer with the defaults below.',
      default: { type: 'transformer' },
      required: ['type'],
      discriminator: { propertyName: 'type' },
      properties: {
        type: {
          type: 'string',
          enum: ['transformer', 'mlp'],
          description: '`transformer`: a causal transformer predicting the next token over a vocabulary. `mlp`: a classifier over feature vectors.',
        },
      },
      oneOf: [
        {
          type: 'object',
          description: 'A causal (decoder-only) transformer: next-token prediction over `vocab` tokens (id 0 is padding).',
          additionalProperties: false,
          properties: {
            type: { const: 'transformer', description: 'A causal transformer over a vocabulary.' },
            vocab: {
              type: 'integer',
              minimum: 2,
              default: 128,
              description: 'Vocabulary size: token / item ids are 0..vocab-1, and id 0 is reserved for padding.',
            },
            dModel: positiveInt('Width of the residual stream (embedding size); must be divisible by `heads`.', 64),
            layers: positiveInt('Number of transformer blocks.', 2),
            heads: positiveInt('Attention heads per block; `dModel` must be divisible by it.', 4),
            seqLen: positiveInt('Context length: tokens per training example.', 32),
            mlpRatio: {
              type: 'number',
              exclusiveMinimum: 0,
              default: 4,
              description: 'Hidden width of each block\'s MLP as a multiple of `dModel` (rounded to an integer width).',
            },
            dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1, description: 'Dropout probability (training only).' },
          },
        },
        {
          type: 'object',
          description: 'A multi-layer perceptron classifier.',
          additionalProperties: false,
          required: ['inputs', 'classes'],
          properties: {
            type: { const: 'mlp', description: 'A multi-layer perceptron classifier.' },
            inputs: positiveInt('Number of input features.'),
            hidden: {
              type: 'array',
              items: positiveInt('Width of one hidden layer.'),
              default: [64, 64],
              description: 'Widths of the hidden layers, input side first. `[]` gives a linear classifier.',
            },
            classes: { type: 'integer', minimum: 2, description: 'Number of classes.' },
            activation: { type: 'string', enum: ['relu', 'gelu'], default: 'relu', description: 'Activation between layers.' },
            dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, description: 'Dropout probability after each hidden layer (training only).' },
          },
        },
      ],
    },
    data: {
      type: 'object',
      description: 'Where the examples come from. Default: synthetic sequences with the defaults below.',
      default: { type: 'synthetic-sequences' },
      required: ['type'],
      discriminator: { propertyName: 'type' },
      properties: {
        type: {
          type: 'string',
          enum: ['synthetic-sequences', 'synthetic-classification', 'movielens'],
          description:
            '`synthetic-sequences`: item sequences from a sparse random Markov chain (for `transformer`). `synthetic-classification`: Gaussian clusters (for `mlp`). `movielens`: per-user, time-ordered movie sequences from a MovieLens ratings.csv (for `transformer`).',
        },
      },
      oneOf: [
        {
          type: 'object',
          description: 'Sequences from a sparse random Markov chain: each item has a few likely successors, so the next item is learnable.',
          additionalProperties: false,
          properties: {
            type: { const: 'synthetic-sequences', description: 'Synthetic Markov-chain item sequences.' },
            sequences: positiveInt('Number of sequences to generate.', 2000),
            length: {
              type: 'integer',
              minimum: 2,
              description: 'Items per sequence. Default: `model.seqLen` + 1 (one full training window).',
            },
            vocab: {
              type: 'integer',
              minimum: 2,
              description: 'Items are ids 1..vocab-1 (0 is padding). Default: `model.vocab`; at most `model.vocab`.',
            },
            branching: positiveInt('How many likely successors each item has.', 3),
            noise: {
              type: 'number',
              minimum: 0,
              maximum: 1,
              default: 0.1,
              description: 'Probability that the next item is uniformly random instead of one of the likely successors.',
            },
            seed: dataSeed,
            validFraction,
          },
        },
        {
          type: 'object',
          description: 'Samples drawn from one Gaussian cluster per class.',
          additionalProperties: false,
          properties: {
            type: { const: 'synthetic-classification', description: 'Synthetic Gaussian clusters.' },
            samples: positiveInt('Number of samples to generate.', 4000),
            inputs: positiveInt('Number of features. Default: `model.inputs` (and it must equal it).'),
            classes: { type: 'integer', minimum: 2, description: 'Number of classes. Default: `model.classes` (and it must equal it).' },
            noise: {
              type: 'number',
              minimum: 0,
              default: 0.5,
              description: 'Standard deviation of each cluster; the cluster centres are drawn from a unit normal.',
            },
            seed: dataSeed,
            validFraction,
          },
        },
        {
          type: 'object',
          description: 'MovieLens ratings as per-user, time-ordered item sequences (item ids remapped to 1..V, 0 = padding).',
          additionalProperties: false,
          required: ['path'],
          properties: {
            type: { const: 'movielens', description: 'MovieLens ratings.csv.' },
            path: {
              type: 'string',
              minLength: 1,
              description: 'Folder holding ratings.csv (userId,movieId,rating,timestamp), or the CSV file itself; relative paths are resolved from the config file\'s folder.',
            },
            minRating: {
              type: 'number',
              minimum: 0,
              default: 0,
              description: 'Keep only ratings at or above this value (0 keeps every rating as an interaction).',
            },
            maxItems: positiveInt('Keep the `maxItems` most frequent movies (others are dropped from the sequences). Default and maximum: `model.vocab` − 1.'),
            minLength: {
              type: 'integer',
              minimum: 2,
              default: 2,
              description: 'Drop users whose sequence is shorter than this after filtering.',
            },
            seed: dataSeed,
            validFraction,
          },
        },
      ],
    },
    train: {
      type: 'object',
      description: 'How to train.',
      default: {},
      additionalProperties: false,
      properties: {
        steps: positiveInt('Optimizer steps to run. Set `steps` or `epochs`, not both; default 600 when neither is set.'),
        epochs: { type: 'number', exclusiveMinimum: 0, description: 'Passes over the training split (instead of `steps`); fractions allowed.' },
        batchSize: positiveInt('Examples per optimizer step.', 32),
        optimizer: {
          type: 'object',
          description: 'The optimizer. Default: AdamW with the defaults below.',
          default: { type: 'adamw' },
          required: ['type'],
          discriminator: { propertyName: 'type' },
          properties: {
            type: { type: 'string', enum: ['adamw', 'sgd'], description: '`adamw` (decoupled weight decay) or `sgd` (with momentum).' },
          },
          oneOf: [
            {
              type: 'object',
              description: 'AdamW: Adam with decoupled weight decay.',
              additionalProperties: false,
              properties: {
                type: { const: 'adamw', description: 'AdamW.' },
                lr: { type: 'number', exclusiveMinimum: 0, default: 0.003, description: 'Peak learning rate (the schedule scales it).' },
                betas: {
                  type: 'array',
                  items: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
                  minItems: 2,
                  maxItems: 2,
                  default: [0.9, 0.999],
                  description: 'Decay rates [β1, β2] of the first and second moment estimates.',
                },
                eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8, description: 'Added to the denominator for numerical stability.' },
                weightDecay: { type: 'number', minimum: 0, default: 0.01, description: 'Decoupled weight decay (multiplied by the learning rate).' },
              },
            },
            {
              type: 'object',
              description: 'Stochastic gradient descent with momentum.',
              additionalProperties: false,
              properties: {
                type: { const: 'sgd', description: 'SGD.' },
                lr: { type: 'number', exclusiveMinimum: 0, default: 0.1, description: 'Peak learning rate (the schedule scales it).' },
                momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9, description: 'Momentum coefficient (0 disables momentum).' },
                nesterov: { type: 'boolean', default: false, description: 'Use Nesterov momentum.' },
                weightDecay: { type: 'number', minimum: 0, default: 0, description: 'L2 weight decay added to the gradient.' },
              },
            },
          ],
        },
        schedule: {
          type: 'object',
          description: 'Learning-rate schedule. Default: cosine with the defaults below.',
          default: { type: 'cosine' },
          required: ['type'],
          discriminator: { propertyName: 'type' },
          properties: {
            type: {
              type: 'string',
              enum: ['cosine', 'constant'],
              description: '`cosine`: linear warmup, then cosine decay to `minLrRatio` × lr. `constant`: linear warmup, then constant.',
            },
          },
          oneOf: [
            {
              type: 'object',
              description: 'Linear warmup, then cosine decay.',
              additionalProperties: false,
              properties: {
                type: { const: 'cosine', description: 'Cosine decay.' },
                warmup: { type: 'integer', minimum: 0, default: 50, description: 'Warmup steps (learning rate rising linearly from 0).' },
                minLrRatio: {
                  type: 'number',
                  minimum: 0,
                  maximum: 1,
                  default: 0.1,
                  description: 'Final learning rate as a fraction of the peak.',
                },
              },
            },
            {
              type: 'object',
              description: 'Linear warmup, then a constant learning rate.',
              additionalProperties: false,
              properties: {
                type: { const: 'constant', description: 'Constant learning rate.' },
                warmup: { type: 'integer', minimum: 0, default: 0, description: 'Warmup steps (learning rate rising linearly from 0).' },
              },
            },
          ],
        },
        gradClip: { type: 'number', minimum: 0, default: 1, description: 'Clip the global gradient norm to this value; 0 disables clipping.' },
        evalEvery: { type: 'integer', minimum: 0, default: 100, description: 'Evaluate on the validation split every N steps (and at the end); 0: only at the end.' },
        checkpointEvery: {
          type: 'integer',
          minimum: 0,
          default: 200,
          description: 'Save a checkpoint (weights + optimizer state) every N steps (and at the end); 0: only at the end.',
        },
        statsEvery: {
          type: 'integer',
          minimum: 0,
          default: 50,
          description:
            'Compute per-layer training statistics on the GPU every N steps, at each checkpoint and at the end: gradient, weight and momentum norms, update/weight ratio, and AdamW curvature summaries (mean, max, quantiles, log histogram, row and column sums of v). Frames go to stats.bin, the checkpoint samples to stats/step-<n>.safetensors. 0 disables them.',
        },
        logEvery: positiveInt('Append a line to metrics.jsonl (step, loss, lr, gradient norm) every N steps.', 10),
      },
    },
    output: {
      type: 'string',
      minLength: 1,
      default: 'runs',
      description: 'Folder for run folders (<output>/<name>-<timestamp>); relative paths are resolved from the config file\'s folder.',
    },
  },
} as const;

/** The exact text of schemas/train-config.schema.json. */
export function schemaFileText(): string {
  return JSON.stringify(trainConfigSchema, null, 2) + '\n';
}

// ------------------------------------------------------------------------------------ the config after defaults

export interface TransformerModelConfig {
  type: 'transformer';
  vocab: number;
  dModel: number;
  layers: number;
  heads: number;
  seqLen: number;
  mlpRatio: number;
  dropout: number;
}

export interface MlpModelConfig {
  type: 'mlp';
  inputs: number;
  hidden: number[];
  classes: number;
  activation: 'relu' | 'gelu';
  dropout: number;
}

export type ModelConfig = TransformerModelConfig | MlpModelConfig;

export interface SyntheticSequencesDataConfig {
  type: 'synthetic-sequences';
  sequences: number;
  length: number;
  vocab: number;
  branching: number;
  noise: number;
  seed: number;
  validFraction: number;
}

export interface SyntheticClassificationDataConfig {
  type: 'synthetic-classification';
  samples: number;
  inputs: number;
  classes: number;
  noise: number;
  seed: number;
  validFraction: number;
}

export interface MovielensDataConfig {
  type: 'movielens';
  /** As written in the config; resolve it with `resolveConfigPath()`. */
  path: string;
  minRating: number;
  maxItems: number;
  minLength: number;
  seed: number;
  validFraction: number;
}

export type DataConfig = SyntheticSequencesDataConfig | SyntheticClassificationDataConfig | MovielensDataConfig;

export interface AdamWConfig {
  type: 'adamw';
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface SgdConfig {
  type: 'sgd';
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

export type OptimizerConfig = AdamWConfig | SgdConfig;

export interface CosineScheduleConfig {
  type: 'cosine';
  warmup: number;
  minLrRatio: number;
}

export interface ConstantScheduleConfig {
  type: 'constant';
  warmup: number;
}

export type ScheduleConfig = CosineScheduleConfig | ConstantScheduleConfig;

export interface TrainSectionConfig {
  /** Exactly one of `steps` and `epochs` is set after loading (steps = 600 when the file sets neither). */
  steps?: number;
  epochs?: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  gradClip: number;
  evalEvery: number;
  checkpointEvery: number;
  statsEvery: number;
  logEvery: number;
}

export interface TrainConfig {
  $schema?: string;
  name: string;
  seed: number;
  model: ModelConfig;
  data: DataConfig;
  train: TrainSectionConfig;
  /** As written in the config; resolve it with `resolveConfigPath()`. */
  output: string;
}

/** Default of train.steps when neither steps nor epochs is set. */
export const DEFAULT_STEPS = 600;

/**
 * The number of optimizer steps a config asks for: `train.steps`, or `ceil(train.epochs × batchesPerEpoch)` when
 * the config counts in epochs (the batch count is only known once the data is built).
 */
export function totalSteps(train: Pick<TrainSectionConfig, 'steps' | 'epochs'>, batchesPerEpoch: number): number {
  if (train.steps !== undefined) return train.steps;
  if (train.epochs !== undefined) return Math.max(1, Math.ceil(train.epochs * batchesPerEpoch));
  return DEFAULT_STEPS;
}
