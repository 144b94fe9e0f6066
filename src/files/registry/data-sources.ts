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

export const syntheticTasks = defineData({
  kind: 'data',
  name: 'synthetic-tasks',
  title: 'Several next-item tasks over one item set: each task its own sparse Markov chain (conflicting transition rules).',
  doc:
    'For merging and continual-learning studies: a base trains on the mixture (no `task`), experts fine-tune on one task each. ' +
    'The rules of task t depend only on `taskSeed` and t, so every run with the same `taskSeed` sees the same tasks; `seed` only draws the sequences. ' +
      'A test split of fresh sequences of the same tasks (as many as the validation split, from a seed of their own) is scored once at the end of training (`test_*`) and by `basin eval`.',
  gives: 'tokens',
  params: {
    tasks: { type: 'integer', minimum: 1, maximum: 64, default: 4, doc: 'How many tasks there are.' },
    task: { type: 'integer', minimum: 0, doc: 'Which task (0 … tasks − 1). Absent: the mixture of every task, in equal shares.' },
    taskSeed: { type: 'integer', minimum: 0, maximum: 4294967295, default: 1234, doc: 'Seed of the tasks’ transition rules (shared by the base and its experts).' },
    sequences: positiveInt('Number of sequences to generate (split evenly over the tasks of a mixture).', 2000),
    length: { type: 'integer', minimum: 2, derived: true, doc: 'Items per sequence. Default: `model.seqLen` + 1 (one full training window).' },
    vocab: { type: 'integer', minimum: 2, derived: true, doc: 'Items are ids 1..vocab-1 (0 is padding). Default: `model.vocab`; at most `model.vocab`.' },
    branching: positiveInt('How many likely successors each item has in each task.', 2),
    noise: { type: 'number', minimum: 0, maximum: 1, default: 0.05, doc: 'Probability that the next item is uniformly random instead of one of the likely successors.' },
    seed,
    validFraction,
  },
  check(d, { model, given }) {
    const out: FieldProblem[] = [];
    if (d.task !== undefined && d.task >= d.tasks) out.push({ field: 'task', message: `must be below tasks (${d.tasks}), got ${d.task}` });
    if (given.vocab !== undefined && model.vocab !== undefined && d.vocab > model.vocab) out.push({ field: 'vocab', message: `must be at most model.vocab (${model.vocab}), got ${d.vocab}` });
    return out;
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
      doc: 'Keep the `maxItems` most frequent movies (others are dropped from the sequences). Default and maximum: what the model holds (`model.vocab` − 1, or sasrec `model.items`).',
    },
    minLength: { type: 'integer', minimum: 2, default: 2, doc: 'Drop users whose sequence is shorter than this after filtering.' },
    seed,
    validFraction,
  },
  check(d, { model, given }) {
    const cap = itemCapacity(model);
    return given.maxItems !== undefined && cap !== undefined && d.maxItems > cap
      ? [{ field: 'maxItems', message: model.type === 'sasrec' ? `must be at most model.items (${cap}), got ${d.maxItems}` : `must be at most model.vocab − 1 (${cap}; id 0 is padding), got ${d.maxItems}` }]
      : [];
  },
  derive(d, { model }) {
    // sasrec holds items 1..model.items; a transformer ids 1..vocab − 1.
    d.maxItems ??= itemCapacity(model);
  },
});

/** The largest item id the model section can hold (transformer: vocab − 1; sasrec: items). */
const itemCapacity = (model: Record<string, any>): number | undefined => (model.type === 'sasrec' ? model.items : model.vocab !== undefined ? model.vocab - 1 : undefined);

export const interactions = defineData({
  kind: 'data',
  name: 'interactions',
  title: 'An interaction log (CSV/TSV with a column mapping, MovieLens ratings.csv or ratings.dat, `user item` lines) as per-user sequences, split leave-one-out or by global time.',
  doc:
    'Streams the file (any size), filters by rating and k-core, remaps items to 1..V by frequency (0 = padding) and splits: ' +
    '`leave-one-out` trains on each user\'s items but the last two (the second to last is the validation target, the last the test target; users with < 3 interactions are dropped); ' +
    '`temporal` puts the last `testFraction` of the interactions by time in the test period and holds a `validFraction` of the users out of training for validation. ' +
    'The validation sequences are each validation user\'s input followed by its target.',
  gives: 'tokens',
  params: {
    path: {
      type: 'string',
      minLength: 1,
      required: true,
      doc: "The log file, or a folder holding ratings.csv or ratings.dat; relative paths are resolved from the config file's folder.",
    },
    format: {
      type: 'string',
      enum: ['auto', 'delimited', 'movielens-csv', 'movielens-dat', 'user-item'],
      default: 'auto',
      doc: '`auto` goes by the name: *.dat → movielens-dat (UserID::MovieID::Rating::Timestamp), *.txt → user-item (`user item` per line, line order = time), ratings.csv → movielens-csv, other *.csv / *.tsv → delimited.',
    },
    delimiter: { type: 'string', minLength: 1, doc: 'delimited: the separator, one character (`tab` for a tab) or a longer string such as `::`. Default `,` (a tab for *.tsv).' },
    header: { type: 'boolean', doc: 'delimited: whether the first line names the columns. Default true.' },
    userColumn: { type: 'string', minLength: 1, doc: 'delimited: the user column, a header name or a 0-based index (digits).' },
    itemColumn: { type: 'string', minLength: 1, doc: 'delimited: the item column, a header name or a 0-based index (digits).' },
    timestampColumn: { type: 'string', minLength: 1, doc: 'delimited: the timestamp column (a number: seconds or any increasing unit). Absent: the line order is the time order.' },
    ratingColumn: { type: 'string', minLength: 1, doc: 'delimited: the rating column (needed by `minRating`). Absent: no ratings.' },
    skipBad: { type: 'boolean', default: false, doc: 'Skip malformed rows (wrong field count, a non-numeric timestamp or rating, an empty id) and count them, instead of stopping at the first with its file and line.' },
    minRating: { type: 'number', minimum: 0, default: 0, doc: 'Keep only interactions rated at or above this (0 keeps all).' },
    kCore: { type: 'integer', minimum: 0, default: 0, doc: 'Keep the k-core: repeatedly drop users and items with fewer than `kCore` interactions until none is left (0 or 1: off).' },
    maxItems: {
      type: 'integer',
      minimum: 1,
      derived: true,
      doc: 'Keep the `maxItems` most frequent items (others are dropped from the sequences). Default and maximum: what the model holds (`model.vocab` − 1, or sasrec `model.items`).',
    },
    maxLength: { type: 'integer', minimum: 3, doc: "Keep only each user's most recent `maxLength` interactions. Default: all." },
    split: { type: 'string', enum: ['leave-one-out', 'temporal'], default: 'leave-one-out', doc: 'The evaluation protocol (see above).' },
    testFraction: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.1, doc: 'temporal: the fraction of the interactions, latest first, in the test period.' },
    seed,
    validFraction: { ...validFraction, doc: 'temporal: the fraction of the users (with ≥ 2 interactions before the test period) held out of training for validation. Ignored by leave-one-out.' },
  },
  check(d, { model, given }) {
    const out: FieldProblem[] = [];
    const cap = itemCapacity(model);
    if (given.maxItems !== undefined && cap !== undefined && d.maxItems > cap) out.push({ field: 'maxItems', message: `must be at most ${model.type === 'sasrec' ? 'model.items' : 'model.vocab − 1'} (${cap}), got ${d.maxItems}` });
    if (d.format === 'delimited') for (const f of ['userColumn', 'itemColumn'] as const) if (d[f] === undefined) out.push({ field: f, message: 'is required with format delimited' });
    return out;
  },
  derive(d, { model }) {
    d.maxItems ??= itemCapacity(model);
  },
});

export const DATA_ENTRIES = [syntheticSequences, syntheticTasks, syntheticClassification, movielens, interactions] as const;
export const dataRegistry = new Registry<DataEntry>('data', DATA_ENTRIES);
export type DataConfig = ConfigUnion<typeof DATA_ENTRIES>;
export type SyntheticSequencesDataConfig = Extract<DataConfig, { type: 'synthetic-sequences' }>;
export type SyntheticClassificationDataConfig = Extract<DataConfig, { type: 'synthetic-classification' }>;
export type MovielensDataConfig = Extract<DataConfig, { type: 'movielens' }>;
