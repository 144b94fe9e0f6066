// Data sources a config can name (`data.type`): metadata only. Loaders and factories: src/engine/data/
// (synthetic.ts, movielens.ts, registry.ts). A source says what it gives (token sequences or feature vectors), so
// the loader can tell which models it fits without a list of pairs.
import type { FieldProblem, ModelInput } from './models';
import { ConfigUnion, Registry, RegistryEntry } from './entry';

export interface DataEntry extends RegistryEntry {
  readonly kind: 'data';
  /** What a batch holds; a model with the same `input` can train on it. */
  readonly gives: ModelInput;
  /** Cross-field checks against the model section (`given`: the data section as written, before defaults). */
  check?(data: Record<string, any>, ctx: { model: Record<string, any>; given: Record<string, unknown> }): FieldProblem[];
  /** Fills the defaults that depend on the model section. */
  derive?(data: Record<string, any>, ctx: { model: Record<string, any> }): void;
}

function defineData<const E extends DataEntry>(e: E): E {
  return e;
}

const positiveInt = (doc: string, dflt: number) => ({ type: 'integer', minimum: 1, default: dflt, doc }) as const;

const seed = {
  type: 'integer',
  minimum: 0,
  maximum: 4294967295,
  derived: true,
  doc: 'Seed of the data generator and of the train/validation split. Default: the top-level `seed`.',
} as const;

const validFraction = {
  type: 'number',
  minimum: 0,
  exclusiveMaximum: 1,
  default: 0.1,
  doc: 'Fraction of the examples (sequences, users or samples) held out for validation, chosen deterministically from the seed.',
} as const;

export const syntheticSequences = defineData({
  kind: 'data',
  name: 'synthetic-sequences',
  title: 'Sequences from a sparse random Markov chain: each item has a few likely successors, so the next item is learnable.',
  gives: 'tokens',
  params: {
    sequences: positiveInt('Number of sequences to generate.', 2000),
    length: { type: 'integer', minimum: 2, derived: true, doc: 'Items per sequence. Default: `model.seqLen` + 1 (one full training window).' },
    vocab: { type: 'integer', minimum: 2, derived: true, doc: 'Items are ids 1..vocab-1 (0 is padding). Default: `model.vocab`; at most `model.vocab`.' },
    branching: positiveInt('How many likely successors each item has.', 3),
    noise: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 0.1,
      doc: 'Probability that the next item is uniformly random instead of one of the likely successors.',
    },
    seed,
    validFraction,
  },
  check(d, { model, given }) {
    return given.vocab !== undefined && model.vocab !== undefined && d.vocab > model.vocab
      ? [{ field: 'vocab', message: `must be at most model.vocab (${model.vocab}), got ${d.vocab}` }]
      : [];
  },
  derive(d, { model }) {
    d.vocab ??= model.vocab;
    d.length ??= model.seqLen + 1;
  },
});

export const syntheticClassification = defineData({
  kind: 'data',
  name: 'synthetic-classification',
  title: 'Samples drawn from one Gaussian cluster per class.',
  gives: 'features',
  params: {
    samples: positiveInt('Number of samples to generate.', 4000),
    inputs: { type: 'integer', minimum: 1, derived: true, doc: 'Number of features. Default: `model.inputs` (and it must equal it).' },
    classes: { type: 'integer', minimum: 2, derived: true, doc: 'Number of classes. Default: `model.classes` (and it must equal it).' },
    noise: { type: 'number', minimum: 0, default: 0.5, doc: 'Standard deviation of each cluster; the cluster centres are drawn from a unit normal.' },
    seed,
    validFraction,
  },
  check(d, { model, given }) {
    const out: FieldProblem[] = [];
    for (const f of ['inputs', 'classes'] as const) {
      if (given[f] !== undefined && model[f] !== undefined && d[f] !== model[f]) out.push({ field: f, message: `must equal model.${f} (${model[f]}), got ${d[f]}` });
    }
    return out;
  },
  derive(d, { model }) {
    d.inputs ??= model.inputs;
    d.classes ??= model.classes;
  },
});

export const movielens = defineData({
  kind: 'data',
  name: 'movielens',
  title: 'MovieLens ratings as per-user, time-ordered item sequences (item ids remapped to 1..V, 0 = padding).',
  gives: 'tokens',
  params: {
    path: {
      type: 'string',
      minLength: 1,
      required: true,
      doc: "Folder holding ratings.csv (userId,movieId,rating,timestamp), or the CSV file itself; relative paths are resolved from the config file's folder.",
    },
    minRating: { type: 'number', minimum: 0, default: 0, doc: 'Keep only ratings at or above this value (0 keeps every rating as an interaction).' },
    maxItems: {
      type: 'integer',
      minimum: 1,
      derived: true,
      doc: 'Keep the `maxItems` most frequent movies (others are dropped from the sequences). Default and maximum: `model.vocab` − 1.',
    },
    minLength: { type: 'integer', minimum: 2, default: 2, doc: 'Drop users whose sequence is shorter than this after filtering.' },
    seed,
    validFraction,
  },
  check(d, { model, given }) {
    return given.maxItems !== undefined && model.vocab !== undefined && d.maxItems > model.vocab - 1
      ? [{ field: 'maxItems', message: `must be at most model.vocab − 1 (${model.vocab - 1}; id 0 is padding), got ${d.maxItems}` }]
      : [];
  },
  derive(d, { model }) {
    d.maxItems ??= model.vocab - 1;
  },
});

export const DATA_ENTRIES = [syntheticSequences, syntheticClassification, movielens] as const;
export const dataRegistry = new Registry<DataEntry>('data', DATA_ENTRIES);
export type DataConfig = ConfigUnion<typeof DATA_ENTRIES>;
export type SyntheticSequencesDataConfig = Extract<DataConfig, { type: 'synthetic-sequences' }>;
export type SyntheticClassificationDataConfig = Extract<DataConfig, { type: 'synthetic-classification' }>;
export type MovielensDataConfig = Extract<DataConfig, { type: 'movielens' }>;
