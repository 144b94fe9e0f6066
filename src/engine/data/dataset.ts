// The data a config describes, split into train/validation: what the trainer calls.
import * as path from 'node:path';
import type { DataConfig, TrainConfig } from '../../files/config/schema';
import { splitIndices, splitTrainValid, takeRows } from './batches';
import { loadMovielens } from './movielens';
import { syntheticClassification, syntheticSequences } from './synthetic';

export type Dataset =
  | {
      kind: 'sequences';
      train: Int32Array[];
      valid: Int32Array[];
      /** Token ids are 0..vocab-1 (0 = padding). */
      vocab: number;
      /** One line for logs, e.g. "movielens: 610 users, 2000 items, 100,836 ratings". */
      summary: string;
      /** MovieLens: the original movieId of each item id (index 0 = padding). */
      itemIds?: Int32Array;
    }
  | {
      kind: 'classification';
      train: { x: Float32Array; y: Int32Array };
      valid: { x: Float32Array; y: Int32Array };
      inputs: number;
      classes: number;
      summary: string;
    };

/**
 * Builds the data set of a loaded config. `configFile` resolves relative data paths (default: the working
 * directory). The split is deterministic in data.seed.
 */
export async function buildDataset(config: TrainConfig, configFile?: string): Promise<Dataset> {
  const d: DataConfig = config.data;
  switch (d.type) {
    case 'synthetic-sequences': {
      const { rows, vocab } = syntheticSequences({
        sequences: d.sequences,
        length: d.length,
        vocab: d.vocab,
        branching: d.branching,
        noise: d.noise,
        seed: d.seed,
      });
      const { train, valid } = splitTrainValid(rows, d.validFraction, d.seed);
      return {
        kind: 'sequences',
        train,
        valid,
        vocab: config.model.type === 'transformer' ? config.model.vocab : vocab,
        summary: `synthetic sequences: ${rows.length} × ${d.length} over ${d.vocab - 1} items (branching ${d.branching}, noise ${d.noise}); ${train.length} train / ${valid.length} valid`,
      };
    }
    case 'movielens': {
      const base = configFile ? path.dirname(path.resolve(configFile)) : process.cwd();
      const ml = await loadMovielens({ path: path.resolve(base, d.path), minRating: d.minRating, maxItems: d.maxItems, minLength: d.minLength });
      const { train, valid } = splitTrainValid(ml.sequences, d.validFraction, d.seed);
      return {
        kind: 'sequences',
        train,
        valid,
        vocab: config.model.type === 'transformer' ? config.model.vocab : ml.vocab,
        itemIds: ml.itemIds,
        summary: `movielens: ${ml.sequences.length} users, ${ml.numItems} items, ${ml.counts.interactions.toLocaleString('en-US')} interactions; ${train.length} train / ${valid.length} valid users`,
      };
    }
    case 'synthetic-classification': {
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
    }
  }
}
