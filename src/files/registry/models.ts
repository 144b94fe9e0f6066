// Models a config can name (`model.type`): metadata only. Classes and factories: src/engine/nn/ (models.ts,
// registry.ts). A model maps a batch to hidden states; the loss owns the output layer (see losses.ts).
import { ConfigUnion, Registry, RegistryEntry } from './entry';

/** What a model reads: token ids [batch, time] or feature vectors [batch, features]. */
export type ModelInput = 'tokens' | 'features';

/** A problem with one field of a section, found across fields (after schema validation, defaults applied). */
export interface FieldProblem {
  /** Field name inside the section (`heads`), or a dotted path from the config root when it starts with '/'. */
  field: string;
  message: string;
  /** Point at the field's key instead of its value. */
  at?: 'value' | 'key';
}

export interface ModelEntry extends RegistryEntry {
  readonly kind: 'model';
  readonly input: ModelInput;
  /** Checks across the section's own fields. */
  check?(model: Record<string, any>): FieldProblem[];
  /** The number of parameters the model will have (for sizes shown before anything is built, and warm-up limits). */
  parameters(model: Record<string, any>): number;
}

const positiveInt = (doc: string, dflt: number) => ({ type: 'integer', minimum: 1, default: dflt, doc }) as const;

function defineModel<const E extends ModelEntry>(e: E): E {
  return e;
}

export const transformer = defineModel({
  kind: 'model',
  name: 'transformer',
  title: 'A causal (decoder-only) transformer: next-token prediction over `vocab` tokens (id 0 is padding).',
  input: 'tokens',
  params: {
    vocab: { type: 'integer', minimum: 2, default: 128, doc: 'Vocabulary size: token / item ids are 0..vocab-1, and id 0 is reserved for padding.' },
    dModel: positiveInt('Width of the residual stream (embedding size); must be divisible by `heads`.', 64),
    layers: positiveInt('Number of transformer blocks.', 2),
    heads: positiveInt('Attention heads per block; `dModel` must be divisible by it.', 4),
    seqLen: positiveInt('Context length: tokens per training example.', 32),
    mlpRatio: { type: 'number', exclusiveMinimum: 0, default: 4, doc: "Hidden width of each block's MLP as a multiple of `dModel` (rounded to an integer width)." },
    dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1, doc: 'Dropout probability (training only).' },
  },
  check(m) {
    return m.dModel % m.heads !== 0 ? [{ field: 'heads', message: `must divide model.dModel (${m.dModel}), got ${m.heads}` }] : [];
  },
  parameters(m) {
    const d = m.dModel;
    const h = Math.max(1, Math.round(d * m.mlpRatio));
    // token and position tables; per block two layer norms, q/k/v/o, the MLP; the final norm; the output head.
    const block = 2 * (2 * d) + 4 * (d * d + d) + (d * h + h) + (h * d + d);
    return m.vocab * d + m.seqLen * d + m.layers * block + 2 * d + (m.vocab * d + m.vocab);
  },
});

export const mlp = defineModel({
  kind: 'model',
  name: 'mlp',
  title: 'A multi-layer perceptron classifier.',
  input: 'features',
  params: {
    inputs: { type: 'integer', minimum: 1, required: true, doc: 'Number of input features.' },
    hidden: {
      type: 'array',
      items: { type: 'integer', minimum: 1, doc: 'Width of one hidden layer.' },
      default: [64, 64],
      doc: 'Widths of the hidden layers, input side first. `[]` gives a linear classifier.',
    },
    classes: { type: 'integer', minimum: 2, required: true, doc: 'Number of classes.' },
    activation: { type: 'string', enum: ['relu', 'gelu'], default: 'relu', doc: 'Activation between layers.' },
    dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, doc: 'Dropout probability after each hidden layer (training only).' },
  },
  parameters(m) {
    const widths = [m.inputs, ...m.hidden, m.classes];
    let n = 0;
    for (let i = 1; i < widths.length; i++) n += widths[i - 1] * widths[i] + widths[i];
    return n;
  },
});

export const MODEL_ENTRIES = [transformer, mlp] as const;
export const modelRegistry = new Registry<ModelEntry>('model', MODEL_ENTRIES);
export type ModelConfig = ConfigUnion<typeof MODEL_ENTRIES>;
export type TransformerModelConfig = Extract<ModelConfig, { type: 'transformer' }>;
export type MlpModelConfig = Extract<ModelConfig, { type: 'mlp' }>;
