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

export const sasrec = defineModel({
  kind: 'model',
  name: 'sasrec',
  title: 'SASRec (Kang & McAuley 2018): a causal self-attentive next-item model whose output layer is its own item table.',
  doc:
    'Item table E [items + 1, hidden] (id 0 = padding, masked to zero at the input), learned positions, embedding scaled by √hidden, ' +
    'pre-LayerNorm blocks `x + Dropout(g(LayerNorm(x)))` with causal attention and a ReLU point-wise FFN of width `hidden`, a final layer norm; ' +
    'scores are hidden · Eᵀ with the SAME table (no bias). Sequences are right-padded (positions count from the first item of a window).',
  input: 'tokens',
  source: 'arXiv:1808.09781',
  params: {
    items: { type: 'integer', minimum: 1, default: 2000, doc: 'Number of items: ids are 1..items (0 is padding), so the item table has items + 1 rows. At least the data\'s item count (movielens: `data.maxItems`).' },
    hidden: positiveInt('Width d of the item embeddings and of the residual stream; must be divisible by `heads`.', 64),
    blocks: positiveInt('Number of self-attention blocks.', 2),
    heads: positiveInt('Attention heads per block (the paper uses 1); `hidden` must be divisible by it.', 1),
    maxLen: positiveInt('Longest history n the model reads (learned positions 0..maxLen-1); training windows have this length.', 200),
    dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.2, doc: 'Dropout probability on the embeddings and after each sub-layer (training only).' },
    attentionDropout: {
      type: 'number',
      minimum: 0,
      exclusiveMaximum: 1,
      default: 0,
      doc: 'Dropout probability on the attention weights (training only), as in the paper\'s reference code (there equal to `dropout`); 0 leaves them whole.',
    },
  },
  check(m) {
    return m.hidden % m.heads !== 0 ? [{ field: 'heads', message: `must divide model.hidden (${m.hidden}), got ${m.heads}` }] : [];
  },
  parameters(m) {
    const d = m.hidden;
    // item table (shared with the output) and positions; per block two layer norms, q/k/v/o, the FFN (d → d → d); the final norm.
    const block = 2 * (2 * d) + 4 * (d * d + d) + 2 * (d * d + d);
    return (m.items + 1) * d + m.maxLen * d + m.blocks * block + 2 * d;
  },
});

export const MODEL_ENTRIES = [transformer, mlp, sasrec] as const;
export const modelRegistry = new Registry<ModelEntry>('model', MODEL_ENTRIES);
export type ModelConfig = ConfigUnion<typeof MODEL_ENTRIES>;
export type TransformerModelConfig = Extract<ModelConfig, { type: 'transformer' }>;
export type MlpModelConfig = Extract<ModelConfig, { type: 'mlp' }>;
export type SasrecModelConfig = Extract<ModelConfig, { type: 'sasrec' }>;
