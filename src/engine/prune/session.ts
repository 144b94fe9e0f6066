// A model opened for pruning: built from the run's config, the checkpoint's weights loaded (checked like the
// trainer does), the targeted weight matrices found, and for each a DENSE COPY on the GPU (made once) from which
// every masked version is written back into the live parameter view. So a sweep point costs one mask dispatch
// per target, never a model copy; restore() writes the dense values back exactly. In task-vector mode the base's
// values of the targets are loaded too (pruned entries are reset to them).
import type { Runtime } from '../gpu/runtime';
import { checkBaseTensor, openBase } from './plan';
import { DEFAULT_TARGETS, PruneOptionError, selectTargets, type PruneOptions } from '../../files/prune/options';
import { makeLoss } from '../loss/registry';
import { Linear } from '../nn/layers';
import type { Model } from '../nn/models';
import type { ParameterStore } from '../optim/params';
import { copyInto, clone } from '../ops/basic';
import { Tensor, fromArray, keep } from '../tensor/tensor';
import { loadWeights } from '../train/checkpoint';
import { buildTrainingData, type TrainingData } from '../train/data-source';
import { evaluate, type EvalMetrics } from '../train/evaluate';
import { materializeModel, modelSpec } from '../train/trainer';
import type { PruneSource } from './source';

export interface PruneTarget {
  name: string;
  rows: number;
  cols: number;
  size: number;
  /** The store's view: what the model reads. */
  live: Tensor;
  /** The unpruned values (a kept copy made once). */
  dense: Tensor;
  /** Task-vector mode: the base's values. */
  base: Tensor | null;
  /** The layer whose weight this is (calibration observes its input); null for a weight outside a Linear. */
  layer: Linear | null;
}

export class PruneModel {
  private dataPromise: Promise<TrainingData> | null = null;

  private constructor(
    readonly rt: Runtime,
    readonly source: PruneSource,
    readonly model: Model,
    readonly store: ParameterStore,
    readonly targets: PruneTarget[],
    readonly options: PruneOptions,
  ) {}

  /** Loads the checkpoint, selects the targets (errors list the names) and loads the base. */
  static async open(rt: Runtime, source: PruneSource, options: PruneOptions): Promise<PruneModel> {
    const { model, store } = materializeModel(rt, modelSpec(source.config), source.config.seed);
    try {
      await loadWeights(source.checkpoint, store);
      const headName = store.entries.find((e) => e.shape.length === 2 && store.get(e.name) === model.head.weight)?.name;
      const chosen = selectTargets(store.entries, { targets: options.targets.length ? options.targets : [...DEFAULT_TARGETS], pattern: options.pattern }, headName ? [headName] : []);
      const layers = new Map<Tensor, Linear>();
      for (const m of model.modules()) if (m instanceof Linear) layers.set(m.weight.t, m);
      // The base of a task vector: one file, or a sharded (merged) model's index.
      const baseFile = options.base ? await openBase(options.base) : null;
      const targets: PruneTarget[] = [];
      try {
        for (const c of chosen) {
          const live = store.get(c.name);
          let baseValues: Float32Array | null = null;
          if (baseFile) {
            checkBaseTensor(baseFile, options.base!, c, source.checkpoint);
            baseValues = await baseFile.read(c.name).catch((e: unknown) => {
              throw new PruneOptionError('base', (e as Error).message); // a damaged shard is the base's error
            });
          }
          const dense = keep(clone(live));
          let base: Tensor | null = null;
          try {
            if (baseValues) base = keep(fromArray(rt, baseValues, c.shape));
          } catch (e) {
            dense.dispose();
            throw e;
          }
          targets.push({ name: c.name, rows: c.shape[0], cols: c.shape[1], size: c.shape[0] * c.shape[1], live, dense, base, layer: layers.get(live) ?? null });
        }
      } catch (e) {
        for (const t of targets) {
          t.dense.dispose();
          t.base?.dispose();
        }
        throw e;
      } finally {
        await baseFile?.close();
      }
      return new PruneModel(rt, source, model, store, targets, options);
    } catch (e) {
      store.destroy();
      throw e;
    }
  }

  /** The run's data (validation batches; training batches for calibration), built once. */
  data(): Promise<TrainingData> {
    this.dataPromise ??= buildTrainingData(this.source.config, this.source.configPath);
    return this.dataPromise;
  }

  /** The validation metrics of the model as its live weights now are. */
  async evaluate(): Promise<EvalMetrics> {
    return evaluate(this.rt, this.model, await this.data(), makeLoss(this.source.config.train.loss));
  }

  /** Writes the dense values back into every target (exact). */
  restore(): void {
    for (const t of this.targets) copyInto(t.live, t.dense);
  }

  get targetElements(): number {
    return this.targets.reduce((s, t) => s + t.size, 0);
  }

  destroy(): void {
    for (const t of this.targets) {
      t.dense.dispose();
      t.base?.dispose();
    }
    this.store.destroy();
  }
}
