// The data a config describes, split into train/validation: what the trainer calls.
import type { TrainConfig } from '../../files/config/schema';
import { buildDataSource } from './registry';
import type { SequenceSplit } from './interactions/splits';

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
      /** Interaction logs: the evaluation split (targets, inputs, seen items) for full-ranking metrics. */
      split?: SequenceSplit;
      /**
       * Synthetic sources: a test split of fresh sequences from the same distribution (another draw, never trained
       * or validated on), scored like the validation split.
       */
      test?: Int32Array[];
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
 * Builds the data set of a loaded config through the data-source registry (./registry.ts). `configFile` resolves
 * relative data paths (default: the working directory). The split is deterministic in data.seed.
 */
export async function buildDataset(config: TrainConfig, configFile?: string): Promise<Dataset> {
  return buildDataSource(config, configFile);
}
