// Evaluates a run folder's checkpoint: the model, data and loss of the config recorded in its run.json, the
// weights of `checkpoints/step-<n>.safetensors` (the latest, or a given step), the validation split, the trainer's
// metrics (the same evaluate() it runs every evalEvery steps). Used by the worker's `eval` job; nothing here
// writes to the run folder.
import * as fs from 'node:fs';
import type { Runtime } from '../gpu/runtime';
import type { TrainConfig } from '../../files/config/schema';
import { modelWeightsFile, openRun, type RunFolder } from '../../files/run-record';
import { checkpointAdapters } from '../../files/adapter-checkpoint';
import { makeLoss } from '../loss/registry';
import { loadWeights } from './checkpoint';
import { buildTrainingData, type TrainingData } from './data-source';
import { evaluate, type EvalMetrics } from './evaluate';
import { materializeModel, modelSpec } from './trainer';

export interface EvalCheckpointProgress {
  /** 'loading': data and weights (batches 0 until the data is built); 'evaluating': after each batch. */
  phase: 'loading' | 'evaluating';
  batch: number;
  batches: number;
}

export interface EvalCheckpointOptions {
  rt: Runtime;
  /** The run folder. */
  runDir: string;
  /** The checkpoint's step; default: the latest checkpoint. */
  step?: number;
  /** Checked between batches: an aborted evaluation throws an AbortError. */
  signal?: AbortSignal;
  onProgress?(p: EvalCheckpointProgress): void;
}

export interface EvalCheckpointResult {
  step: number;
  /** Absolute path of the weights evaluated. */
  checkpoint: string;
  metrics: EvalMetrics;
  /** What a uniform random guess scores on the same data. */
  chance: EvalMetrics;
  /** Validation batches evaluated. */
  batches: number;
}

/** A checkpoint that cannot be evaluated: no such step, no weights, no config (a bad request, not a failure). */
export class CheckpointNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointNotFoundError';
  }
}

/**
 * The weights file of a run's checkpoint at `step` (recorded or on disk), or of its latest one. An adapter run's is
 * the checkpoint itself, adapters included: a reader that wants a plain model passes it to `modelWeightsFile()`.
 */
export function findCheckpoint(run: RunFolder, step?: number): { step: number; file: string } {
  if (step === undefined) {
    const latest = run.latestCheckpoint();
    if (!latest) throw new CheckpointNotFoundError(`${run.dir} has no checkpoint to evaluate`);
    return { step: latest.step, file: modelWeightsFile(latest.absPath, { withAdapters: true }) }; // a LoRA run: its merged weights
  }
  const recorded = run.record.checkpoints.find((c) => c.step === step);
  const file = run.resolve(recorded?.path ?? run.checkpointPath(step));
  if (!fs.existsSync(file)) {
    const steps = run.record.checkpoints.map((c) => c.step);
    throw new CheckpointNotFoundError(`${run.dir} has no checkpoint at step ${step}${steps.length ? ` (checkpoints: ${steps.join(', ')})` : ''}`);
  }
  return { step, file: modelWeightsFile(file, { withAdapters: true }) };
}

/** The training config a run recorded (every default applied), with the config file it came from. */
export function runConfig(run: RunFolder): { config: TrainConfig; configPath: string | undefined } {
  const config = run.record.config as Partial<TrainConfig> | null;
  if (!config || typeof config !== 'object' || !config.model || !config.data || !config.train) {
    throw new CheckpointNotFoundError(`${run.runJsonPath} records no training config (model, data, train) to evaluate with`);
  }
  return { config: config as TrainConfig, configPath: run.record.configPath ?? undefined };
}

export async function evaluateCheckpoint(opts: EvalCheckpointOptions): Promise<EvalCheckpointResult> {
  const { rt, signal } = opts;
  const run = await openRun(opts.runDir);
  const { config, configPath } = runConfig(run);
  const ck = findCheckpoint(run, opts.step);
  opts.onProgress?.({ phase: 'loading', batch: 0, batches: 0 });

  const data = await buildTrainingData(config, configPath);
  const batches = countBatches(data);
  if (batches === 0) throw new Error(`the validation split of ${run.name} is empty: nothing to evaluate`);
  throwIfAborted(signal);
  opts.onProgress?.({ phase: 'loading', batch: 0, batches });

  // An adapter run's checkpoint holds the adapters and says how they are built: the model gets them too.
  const { model, store } = materializeModel(rt, modelSpec(config), config.seed, undefined, checkpointAdapters(ck.file) ?? undefined);
  try {
    // The trainer's own checks (names, dtypes, shapes, finite values): CheckpointMismatchError says what differs.
    await loadWeights(ck.file, store);
    throwIfAborted(signal);
    let done = 0;
    const counted = withBatchHook(data, () => {
      // Between batches: the previous one is read back, the next not yet recorded.
      throwIfAborted(signal);
      if (done > 0) opts.onProgress?.({ phase: 'evaluating', batch: done, batches });
      done++;
    });
    const metrics = await evaluate(rt, model, counted, makeLoss(config.train.loss));
    return { step: ck.step, checkpoint: ck.file, metrics: { ...metrics }, chance: { ...data.chance }, batches };
  } finally {
    await rt.sync().catch(() => undefined);
    store.destroy();
  }
}

function countBatches(data: TrainingData): number {
  // Batches are made on demand from the split (deterministic), so counting them holds none in memory.
  let n = 0;
  for (const _ of data.validBatches()) n++;
  return n;
}

/** The same data, calling `before` ahead of each validation batch and once after the last. */
function withBatchHook(data: TrainingData, before: () => void): TrainingData {
  return {
    ...data,
    *validBatches() {
      for (const b of data.validBatches()) {
        before();
        yield b;
      }
      before();
    },
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const e = new Error('the evaluation was cancelled');
  e.name = 'AbortError';
  throw e;
}
