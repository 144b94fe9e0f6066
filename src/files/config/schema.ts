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
// Variants (model.type, data.type, train.optimizer.type, train.schedule.type, train.loss.type) are generated from
// the registries in ../registry/ (one entry per model, data source, optimizer, schedule, loss): `oneOf` branches
// selected by their `type` (Ajv's `discriminator` keyword, which editors ignore), so each branch has its own
// defaults and its own unknown-field check. Adding an optimizer is an entry there (and its factory in the engine):
// this file, the schema file, the validator's messages and the editor's completion follow.

import { dataRegistry, type DataConfig } from '../registry/data-sources';
import { lossRegistry, type LossConfig } from '../registry/losses';
import { modelRegistry, type ModelConfig } from '../registry/models';
import { optimizerRegistry, type OptimizerConfig } from '../registry/optimizers';
import { scheduleRegistry, type ScheduleConfig } from '../registry/schedules';
import { sectionSchema } from '../registry/schema';

export type { DataConfig, LossConfig, ModelConfig, OptimizerConfig, ScheduleConfig };
export type { MlpModelConfig, TransformerModelConfig } from '../registry/models';
export type { MovielensDataConfig, SyntheticClassificationDataConfig, SyntheticSequencesDataConfig } from '../registry/data-sources';

const positiveInt = (description: string, dflt?: number) =>
  ({ type: 'integer', minimum: 1, description, ...(dflt === undefined ? {} : { default: dflt }) }) as const;



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
    model: sectionSchema(modelRegistry, 'The model to train. Default: a transformer with the defaults below.'),
    data: sectionSchema(dataRegistry, 'Where the examples come from. Default: synthetic sequences with the defaults below.'),
    init: {
      type: 'object',
      additionalProperties: false,
      required: ['from'],
      description:
        'Start from a trained model’s weights (fine-tuning) with a fresh optimizer. Tensors are matched by name and shape; the run records the checkpoint as its base (`run.json` lineage), which merging and task-vector pruning use.',
      properties: {
        from: {
          type: 'string',
          minLength: 1,
          description:
            'A checkpoint (`.safetensors`), a run folder (its latest checkpoint) or a training config (`*.basin.yaml`: the latest checkpoint of its latest run); relative paths are resolved from the config file’s folder.',
        },
        partial: {
          type: 'boolean',
          default: false,
          description:
            'Allow tensors missing from the checkpoint or of another shape (e.g. a new output head): they keep their fresh initialization and are listed. Without it such a mismatch is an error that names them.',
        },
      },
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
        optimizer: sectionSchema(optimizerRegistry, 'The optimizer. Default: AdamW with the defaults below.'),
        schedule: sectionSchema(scheduleRegistry, 'Learning-rate schedule. Default: cosine with the defaults below.'),
        loss: sectionSchema(lossRegistry, 'The training loss; it owns the output layer. Default: cross-entropy over every class.'),
        gradClip: { type: 'number', minimum: 0, default: 1, description: 'Clip the global gradient norm to this value; 0 disables clipping.' },
        precision: {
          type: 'string',
          enum: ['f32', 'mixed'],
          default: 'f32',
          description:
            'Numeric precision. `f32`: everything in f32. `mixed`: the Linear layers multiply f16 copies of their weights and inputs with f32 sums (the f16 input is what the backward keeps: half the bytes), while the master weights, gradients, optimizer state, embeddings, layer norm, softmax, attention and the loss stay f32, with dynamic loss scaling (`lossScale`). Needs the adapter\'s shader-f16 feature; without it the run trains in f32 and says why (run.json `device.precision`).',
        },
        lossScale: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description:
            'Dynamic loss scaling (precision: mixed): the backward starts from the scale S, gradients are divided by S before clipping and the step; a step whose gradient overflows is skipped and S halves; S doubles after `growthInterval` good steps in a row. The scale and the skipped-step count are logged (metrics `lossScale`, `skippedSteps`) and saved with each checkpoint.',
          properties: {
            initial: { type: 'number', exclusiveMinimum: 0, maximum: 16777216, default: 32768, description: 'The scale S at the start (2^15).' },
            growthInterval: { type: 'integer', minimum: 1, default: 2000, description: 'Good steps in a row after which S doubles.' },
            minScale: {
              type: 'number',
              exclusiveMinimum: 0,
              default: 1,
              description: 'When halving takes S below this, the gradients are not finite whatever the scale: training stops, naming the step and the first non-finite layer.',
            },
          },
        },
        freeze: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          default: [],
          description:
            'Parameters that do not train (partial fine-tuning): name globs (`*` matches any characters, dots included; `?` one), e.g. `embed.*`, `blocks.0.*`. Frozen tensors take no gradient and no update: they stay bit-identical. A glob matching nothing is an error listing the names.',
        },
        unfreeze: {
          type: 'array',
          default: [],
          description: 'Progressive unfreezing: at each `step`, the frozen parameters matching `params` start training (with a fresh optimizer state).',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['step', 'params'],
            properties: {
              step: { type: 'integer', minimum: 1, description: 'The first step at which these parameters train.' },
              params: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Name globs of the parameters to unfreeze.' },
            },
          },
        },
        lora: {
          type: 'object',
          additionalProperties: false,
          required: ['rank'],
          description:
            'LoRA fine-tuning: the base model is frozen (release tensors with `unfreeze`, step 1) and each targeted Linear weight W [out, in] gains a trainable update (alpha/rank)·B·A with A [rank, in] (small random) and B [out, rank] (zero at the start), stored as `<weight>.lora_a` / `<weight>.lora_b`. Each checkpoint also writes `step-<n>.merged.safetensors` (W + (alpha/rank)·B·A, no adapter): the file eval, init.from, merging and pruning read.',
          properties: {
            rank: { type: 'integer', minimum: 1, description: 'Rank of the update (rows of A, columns of B).' },
            alpha: { type: 'number', exclusiveMinimum: 0, description: 'Scale numerator: the update is multiplied by alpha/rank. Default: rank (scale 1).' },
            targets: {
              type: 'array',
              items: { type: 'string', minLength: 1 },
              description:
                'Name globs of the Linear weights to adapt, e.g. `blocks.*.attn.q.weight`. Default: every Linear weight in `blocks.*` / `layers.*` except the output head. A glob matching no Linear weight is an error listing them.',
            },
            dropout: { type: 'number', minimum: 0, maximum: 0.95, default: 0, description: 'Dropout on the input of the LoRA branch only (training).' },
          },
        },
        adapters: {
          type: 'object',
          additionalProperties: false,
          required: ['size'],
          description:
            'Adapter fine-tuning (Houlsby): every transformer block gains a bottleneck h ← h + up(act(down(h))) on the output of its attention and of its MLP, before the residual add; the base model is frozen (release tensors with `unfreeze`) and only the adapters train. down [size, d] starts small and random, up [d, size] and both biases at zero, so training starts exactly at the base model. Tensors `blocks.<i>.adapter_attn.down.weight`, `….down.bias`, `….up.weight`, `….up.bias` (and `adapter_mlp`), saved in the checkpoints beside the frozen ones. Models with transformer blocks only (transformer, sasrec). Adapters are non-linear: they cannot be merged into the weights, so an adapter run cannot be merged or pruned.',
          properties: {
            size: { type: 'integer', minimum: 1, description: 'Bottleneck width (rows of down, columns of up); at most the model width d (dModel / hidden).' },
            targets: {
              type: 'array',
              items: { type: 'string', enum: ['attn', 'mlp'] },
              minItems: 1,
              uniqueItems: true,
              default: ['attn', 'mlp'],
              description: 'Where the adapters go: after the attention sublayer (`attn`), after the MLP (`mlp`), or both.',
            },
            activation: { type: 'string', enum: ['gelu', 'relu'], default: 'gelu', description: 'Non-linearity between down and up.' },
            initScale: {
              type: 'number',
              exclusiveMinimum: 0,
              description: 'Standard deviation of down’s initial weights (normal). Default: 1/√d. up starts at zero whatever this is, so the fresh adapter is the identity.',
            },
          },
        },
        earlyStopping: {
          type: 'object',
          additionalProperties: false,
          required: ['metric'],
          description:
            'Stop when a validation metric has not improved for `patience` evaluations (every `evalEvery` steps). Each improvement is checkpointed; run.json `lastMetrics` records `best_step`, `best_<metric>` and `stop_reason`.',
          properties: {
            metric: { type: 'string', minLength: 1, description: 'The validation metric, as in metrics.jsonl: `val_loss`, `val_accuracy`, `val_ndcg10`… (the `val_` prefix may be left out).' },
            mode: { type: 'string', enum: ['min', 'max'], description: 'Whether lower or higher is better. Default: min for losses and perplexity, max otherwise.' },
            patience: { type: 'integer', minimum: 1, default: 3, description: 'Evaluations without improvement before stopping.' },
            minDelta: { type: 'number', minimum: 0, default: 0, description: 'An evaluation improves only if it beats the best by more than this.' },
          },
        },
        ewc: {
          type: 'object',
          additionalProperties: false,
          required: ['from', 'lambda'],
          description:
            'Elastic weight consolidation against the previous task: adds (lambda/2)·Σ F̂⊙(θ−θ*)² to the loss (its gradient, on the GPU), θ* the previous weights and F̂ the rank-1 curvature R_i·C_j/ΣR from its statistics (v_row/v_col of stats/step-<n>.safetensors), normalised to mean 1 over all matrices. No Fisher pass; vectors (biases, norms) are not anchored.',
          properties: {
            from: {
              type: 'string',
              minLength: 1,
              description: 'The previous task: a run folder (its latest checkpoint) or a checkpoint `.safetensors` of a run trained with statsEvery > 0; relative to the config file’s folder.',
            },
            lambda: { type: 'number', minimum: 0, description: 'Strength of the penalty (in units of the mean curvature).' },
          },
        },
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

export interface TrainSectionConfig {
  /** Exactly one of `steps` and `epochs` is set after loading (steps = 600 when the file sets neither). */
  steps?: number;
  epochs?: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  loss: LossConfig;
  gradClip: number;
  /** `mixed`: f16 Linear products, f32 master weights, loss scaling (src/engine/train/mixed-precision.ts). */
  precision: 'f32' | 'mixed';
  /** Dynamic loss scaling of mixed precision (src/engine/train/loss-scale.ts; configs built in code may leave fields out). */
  lossScale: { initial?: number; growthInterval?: number; minScale?: number };
  /** Name globs of parameters that do not train. */
  freeze: string[];
  /** Progressive unfreezing: from `step` on, the parameters matching `params` train. */
  unfreeze: { step: number; params: string[] }[];
  /** LoRA fine-tuning (src/engine/train/lora.ts); `alpha` defaults to rank, `targets` to blocks/layers weights. */
  lora?: { rank: number; alpha?: number; targets?: string[]; dropout: number };
  /** Adapter fine-tuning (src/engine/train/adapters.ts); `initScale` defaults to 1/√d. */
  adapters?: { size: number; targets: ('attn' | 'mlp')[]; activation: 'gelu' | 'relu'; initScale?: number };
  /** Early stopping on a validation metric (src/engine/train/early-stopping.ts); `mode` defaults from the metric. */
  earlyStopping?: { metric: string; mode?: 'min' | 'max'; patience: number; minDelta: number };
  /** EWC from the previous task's weights and stored curvature (src/engine/train/ewc.ts). */
  ewc?: { from: string; lambda: number };
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
  /** Fine-tuning: start from these weights (`from` as written; resolve it with `resolveConfigPath()`). */
  init?: { from: string; partial: boolean };
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
