// Data-source factories by config name (`data.type`); the entries (parameters, docs, what each gives) are in
// src/files/registry/data-sources.ts. A factory turns its config section into a split Dataset.
import * as path from 'node:path';
import type { TrainConfig } from '../../files/config/schema';
import { dataRegistry, type DataConfig } from '../../files/registry/data-sources';
import { splitIndices, splitTrainValid, takeRows } from './batches';
import type { Dataset } from './dataset';
import { loadMovielens } from './movielens';
import { loadInteractionSplit, validationSequences } from './interactions/source';
import { syntheticClassification, syntheticSequences } from './synthetic';

interface DataContext {
  config: TrainConfig;
  /** Resolves relative paths (default: the working directory). */
  configFile?: string;
}

type Factories = { [N in DataConfig['type']]: (d: Extract<DataConfig, { type: N }>, ctx: DataContext) => Promise<Dataset> };

/** XORed into a synthetic source's data seed for its test sequences (a seed no run draws its training data from by `seed + k`). */
export const TEST_SEED_MIX = 0x7e57ab1e;

/** The model's vocabulary when it reads tokens (ids past the data's own vocabulary stay unused). */
const modelVocab = (config: TrainConfig, fallback: number) => (config.model.type === 'transformer' ? config.model.vocab : fallback);

const FACTORIES: Factories = {
  'synthetic-sequences': async (d, { config }) => {
    const { rows, vocab } = syntheticSequences({ sequences: d.sequences, length: d.length, vocab: d.vocab, branching: d.branching, noise: d.noise, seed: d.seed });
    const { train, valid } = splitTrainValid(rows, d.validFraction, d.seed);
    return {
      kind: 'sequences',
      train,
      valid,
      vocab: modelVocab(config, vocab),
      summary: `synthetic sequences: ${rows.length} × ${d.length} over ${d.vocab - 1} items (branching ${d.branching}, noise ${d.noise}); ${train.length} train / ${valid.length} valid`,
    };
  },
  'synthetic-tasks': async (d, { config }) => {
    // Task t's rules come from (taskSeed, t) only; its sequences from (seed, t). A mixture takes an equal share of
    // each task; the split is per task, so a mixture's validation set holds every task.
    const which = d.task === undefined ? Array.from({ length: d.tasks }, (_, t) => t) : [d.task];
    const train: Int32Array[] = [];
    const valid: Int32Array[] = [];
    const test: Int32Array[] = [];
    which.forEach((t, i) => {
      const n = Math.floor(d.sequences / which.length) + (i < d.sequences % which.length ? 1 : 0);
      if (n === 0) return;
      const task = { length: d.length, vocab: d.vocab, branching: d.branching, noise: d.noise, chainSeed: (d.taskSeed + 104729 * (t + 1)) >>> 0 };
      const { rows } = syntheticSequences({ ...task, sequences: n, seed: (d.seed + 7919 * t) >>> 0 });
      const split = splitTrainValid(rows, d.validFraction, (d.seed + t) >>> 0);
      train.push(...split.train);
      valid.push(...split.valid);
      // The test split: as many fresh sequences of the same task as it has for validation, from a seed of its own
      // (TEST_SEED_MIX), so no run with any data seed trains on them by accident of seed arithmetic.
      if (split.valid.length) test.push(...syntheticSequences({ ...task, sequences: split.valid.length, seed: ((d.seed ^ TEST_SEED_MIX) + 7919 * t) >>> 0 }).rows);
    });
    const what = d.task === undefined ? `a mixture of ${d.tasks} tasks` : `task ${d.task} of ${d.tasks}`;
    return {
      kind: 'sequences',
      train,
      valid,
      vocab: modelVocab(config, d.vocab),
      summary: `synthetic tasks: ${what}, ${d.sequences} × ${d.length} over ${d.vocab - 1} items (branching ${d.branching}, noise ${d.noise}); ${train.length} train / ${valid.length} valid / ${test.length} test`,
      test,
    };
  },
  movielens: async (d, { config, configFile }) => {
    const base = configFile ? path.dirname(path.resolve(configFile)) : process.cwd();
    const ml = await loadMovielens({ path: path.resolve(base, d.path), minRating: d.minRating, maxItems: d.maxItems, minLength: d.minLength });
    const { train, valid } = splitTrainValid(ml.sequences, d.validFraction, d.seed);
    return {
      kind: 'sequences',
      train,
      valid,
      vocab: modelVocab(config, ml.vocab),
      itemIds: ml.itemIds,
      summary: `movielens: ${ml.sequences.length} users, ${ml.numItems} items, ${ml.counts.interactions.toLocaleString('en-US')} interactions; ${train.length} train / ${valid.length} valid users`,
    };
  },
  interactions: async (d, { config, configFile }) => {
    const { split, summary } = await loadInteractionSplit(d, configFile ? path.dirname(path.resolve(configFile)) : process.cwd());
    return { kind: 'sequences', train: split.train, valid: validationSequences(split), vocab: modelVocab(config, split.numItems + 1), summary, split };
  },
  'synthetic-classification': async (d) => {
    const all = syntheticClassification({ samples: d.samples, inputs: d.inputs, classes: d.classes, noise: d.noise, seed: d.seed });
    const { train, valid } = splitIndices(d.samples, d.validFraction, d.seed);
    return {
      kind: 'classification',
      train: takeRows(all.x, all.y, d.inputs, train),
      valid: takeRows(all.x, all.y, d.inputs, valid),
      inputs: d.inputs,
      classes: d.classes,
      summary: `synthetic classification: ${d.samples} samples, ${d.inputs} features, ${d.classes} classes (noise ${d.noise}); ${train.length} train / ${valid.length} valid`,
    };
  },
};

/** The split data set of a loaded config's data section. */
export function buildDataSource(config: TrainConfig, configFile?: string): Promise<Dataset> {
  const d = config.data;
  dataRegistry.get(d.type);
  return (FACTORIES[d.type] as (d: DataConfig, ctx: DataContext) => Promise<Dataset>)(d, { config, configFile });
}
