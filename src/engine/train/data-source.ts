// The trainer's view of data: deterministic batches by step (so a resumed run sees the same next batch) and a
// fixed validation set. Built from the config's data section.
import type { TrainConfig } from '../config/schema';
import type { EvalMetrics } from './evaluate';

export interface Batch {
  /** Rows of the loss: batch·seqLen for sequences, batch for classification. */
  rows: number;
  /** Token ids, row-major [batch, seqLen] (sequences). */
  inputs?: Int32Array;
  seqLen?: number;
  /** Features, row-major [rows, inputs] (classification). */
  features?: Float32Array;
  /** One class per row; −1 = ignored (padding). */
  targets: Int32Array;
}

export interface TrainingData {
  trainBatch(step: number): Batch;
  validBatches(): Iterable<Batch>;
  /** What a uniform random guess scores on this task. */
  chance: EvalMetrics | null;
  describe: string;
  dispose?(): void;
}

export async function buildTrainingData(config: TrainConfig, configPath?: string): Promise<TrainingData> {
  void config;
  void configPath;
  throw new Error('not wired yet');
}
