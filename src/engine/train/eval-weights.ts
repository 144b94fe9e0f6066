// Evaluating any weights file against a task: a training config says the model, the data and the loss; the
// weights come from a checkpoint, a merged model or any safetensors file of the same architecture (F32, F16 or
// BF16; tensors matched by name and shape as `init.from` does). The data and the model are built once, so one
// evaluator scores many models on its task (the merge study, `basin eval`).
import type { TrainConfig } from '../../files/config/schema';
import type { Runtime } from '../gpu/runtime';
import { makeLoss } from '../loss/registry';
import type { LossFn } from '../loss/loss';
import type { Model } from '../nn/models';
import type { ParameterStore } from '../optim/params';
import { buildTrainingData, type TrainingData } from './data-source';
import { evaluate, evaluateTest, hasTestSplit, type EvalMetrics } from './evaluate';
import { initFromCheckpoint } from './fine-tune';
import { materializeModel, modelSpec } from './trainer';
import { checkpointAdapters } from '../../files/adapter-checkpoint';

export class WeightsEvaluator {
  private constructor(
    private readonly rt: Runtime,
    readonly config: TrainConfig,
    readonly data: TrainingData,
    private readonly model: Model,
    private readonly store: ParameterStore,
    private readonly loss: LossFn,
  ) {}

  static async create(rt: Runtime, config: TrainConfig, configPath?: string): Promise<WeightsEvaluator> {
    const data = await buildTrainingData(config, configPath);
    const { model, store } = materializeModel(rt, modelSpec(config), config.seed);
    return new WeightsEvaluator(rt, config, data, model, store, makeLoss(config.train.loss));
  }

  /** The validation metrics of the weights in `file` on this evaluator's task. */
  async evaluate(file: string): Promise<EvalMetrics> {
    return this.withWeights(file, async (model) => ({ ...(await evaluate(this.rt, model, this.data, this.loss)) }));
  }

  /** Whether the task's data has a test split (interactions' held-out targets, synthetic tasks' fresh sequences). */
  get hasTest(): boolean {
    return hasTestSplit(this.data);
  }

  /** The test metrics of the weights in `file`; null when the task's data has no test split. */
  async evaluateTest(file: string): Promise<EvalMetrics | null> {
    if (!this.hasTest) return null;
    return this.withWeights(file, async (model) => {
      const m = await evaluateTest(this.rt, model, this.data, this.loss);
      return m && { ...m };
    });
  }

  /** Runs `fn` on the task's model holding the weights of `file`. */
  private async withWeights<T>(file: string, fn: (model: Model) => Promise<T>): Promise<T> {
    // An adapter run's checkpoint: the task's model with those adapters, built for this file (the plain model would
    // leave the adapter tensors unused and score the base instead).
    const adapters = checkpointAdapters(file);
    if (adapters) {
      const { model, store } = materializeModel(this.rt, modelSpec(this.config), this.config.seed, undefined, adapters);
      try {
        await initFromCheckpoint(file, store, { partial: false });
        return await fn(model);
      } finally {
        await this.rt.sync().catch(() => undefined);
        store.destroy();
      }
    }
    await initFromCheckpoint(file, this.store, { partial: false });
    return fn(this.model);
  }

  destroy(): void {
    this.store.destroy();
  }
}
