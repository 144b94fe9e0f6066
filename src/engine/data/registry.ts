// Data-source factories by config name (`data.type`); the entries (parameters, docs, what each gives) are in
// src/files/registry/data-sources.ts. A factory turns its config section into a split Dataset.
import * as path from 'node:path';
import type { TrainConfig } from '../../files/config/schema';
import { dataRegistry, type DataConfig } from '../../files/registry/data-sources';
import { splitIndices, splitTrainValid, takeRows } from './batches';
import type { Dataset } from './dataset';
import { loadMovielens } from './movielens';
import { syntheticClassification, syntheticSequences } from './synthetic';

interface DataContext {
  config: TrainConfig;
  /** Resolves relative paths (default: the working directory). */
  configFile?: string;
}

type Factories = { [N in DataConfig['type']]: (d: Extract<DataConfig, { type: N }>, ctx: DataContext) => Promise<Dataset> };

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
