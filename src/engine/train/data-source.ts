// The trainer's view of data: deterministic batches by step (so a resumed run sees the same next batch) and a
// fixed validation set, built from the config's data section.
import type { TrainConfig } from '../../files/config/schema';
import { totalSteps } from '../../files/config/schema';
import { ClassificationBatcher, NextTokenBatcher } from '../data/batches';
import { buildDataset } from '../data/dataset';
import { chanceMetrics, EvalMetrics } from './evaluate';
import { leaveOneOutData, type LeaveOneOutData } from './leave-one-out';

export interface Batch {
  /** Rows of the loss: batch·seqLen for sequences, batch for classification. */
  rows: number;
  /** Token ids, row-major [rows / seqLen, seqLen] (sequences). */
  inputs?: Int32Array;
  seqLen?: number;
  /** Features, row-major [rows, features] (classification). */
  features?: Float32Array;
  /** One class per row; −1 = ignored (padding). */
  targets: Int32Array;
}

export interface TrainingData {
  /** Batch of the 1-based optimizer step. */
  trainBatch(step: number): Batch;
  validBatches(): Iterable<Batch>;
  /** Optimizer steps the config asks for (steps, or epochs × batches per epoch). */
  totalSteps: number;
  /** What a uniform random guess scores on this task. */
  chance: EvalMetrics;
  describe: string;
  /** Data with an evaluation split (the `interactions` source): leave-one-out queries, ranked by evaluate() instead of the validation windows. */
  leaveOneOut?: LeaveOneOutData;
  /** Data with a test split of fresh samples (the synthetic sources that have one): scored like validBatches(). */
  testBatches?: () => Iterable<Batch>;
}

export async function buildTrainingData(config: TrainConfig, configPath?: string): Promise<TrainingData> {
  const ds = await buildDataset(config, configPath);
  const B = config.train.batchSize;
  const seed = config.seed;
  if (ds.kind === 'sequences') {
    if (config.model.type !== 'transformer' && config.model.type !== 'sasrec') throw new Error(`data ${config.data.type} gives token sequences: use model.type transformer or sasrec`);
    // SASRec: windows of maxLen items; its item table has items + 1 rows, which must cover the data's ids.
    if (config.model.type === 'sasrec' && config.model.items + 1 < ds.vocab) throw new Error(`model.items (${config.model.items}) is smaller than the ${ds.vocab - 1} items of data ${config.data.type}: set model.items to at least ${ds.vocab - 1}`);
    const T = config.model.type === 'sasrec' ? config.model.maxLen : config.model.seqLen;
    const train = new NextTokenBatcher(ds.train, { batchSize: B, seqLen: T, seed, windows: 'all' });
    const valid = new NextTokenBatcher(ds.valid, { batchSize: B, seqLen: T, seed, shuffle: false, windows: 'all' });
    const test = ds.test?.length ? new NextTokenBatcher(ds.test, { batchSize: B, seqLen: T, seed, shuffle: false, windows: 'all' }) : null;
    const toBatch = (b: { inputs: Int32Array; targets: Int32Array; batch: number; seqLen: number }): Batch =>
      ({ rows: b.batch * b.seqLen, inputs: b.inputs, seqLen: b.seqLen, targets: b.targets });
    // Item ids are 1..vocab-1 (0 is padding), so chance is over vocab − 1 classes.
    return {
      trainBatch: (step) => toBatch(train.batchAt(step - 1)),
      *validBatches() {
        for (let i = 0; i < valid.batchesPerEpoch; i++) yield toBatch(valid.batchAt(i));
      },
      totalSteps: totalSteps(config.train, train.batchesPerEpoch),
      chance: chanceMetrics(ds.vocab - 1),
      describe: ds.summary,
      ...(ds.split ? { leaveOneOut: leaveOneOutData(ds.split, T, B) } : {}),
      ...(test
        ? {
            *testBatches() {
              for (let i = 0; i < test.batchesPerEpoch; i++) yield toBatch(test.batchAt(i));
            },
          }
        : {}),
    };
  }
  if (config.model.type !== 'mlp') throw new Error(`data ${config.data.type} gives feature vectors: use model.type mlp`);
  if (config.model.inputs !== ds.inputs || config.model.classes !== ds.classes) {
    throw new Error(`model expects ${config.model.inputs} inputs and ${config.model.classes} classes, data has ${ds.inputs} and ${ds.classes}`);
  }
  const train = new ClassificationBatcher(ds.train.x, ds.train.y, ds.inputs, { batchSize: B, seed });
  const valid = new ClassificationBatcher(ds.valid.x, ds.valid.y, ds.inputs, { batchSize: B, shuffle: false });
  const toBatch = (b: { inputs: Float32Array; targets: Int32Array; batch: number }): Batch => ({ rows: b.batch, features: b.inputs, targets: b.targets });
  return {
    trainBatch: (step) => toBatch(train.batchAt(step - 1)),
    *validBatches() {
      for (let i = 0; i < valid.batchesPerEpoch; i++) yield toBatch(valid.batchAt(i));
    },
    totalSteps: totalSteps(config.train, train.batchesPerEpoch),
    chance: chanceMetrics(ds.classes),
    describe: ds.summary,
  };
}
