// The post-hoc data pass that Fisher merging and RegMean need (and that Basin's curvature method does without):
// for one expert, `batches` batches of ITS OWN task's training data (the config its run.json recorded) through its
// weights, accumulating on the GPU
//   fisher  the diagonal empirical Fisher E[g²] of every parameter (g: the gradient of the batch's mean loss — the
//           batch-gradient approximation; per-example gradients would cost a backward pass per row);
//   gram    per Linear weight [out, in], the input Gram matrix XᵀX [in, in] / rows (RegMean's G_t).
// The results are written to a safetensors file (`<param>` for Fisher, `<weight>.gram` for Gram matrices) so the
// streaming executor reads them tensor by tensor like any other input.
import { openRun } from '../../files/run-record';
import { writeSafetensors, type WriteTensor } from '../../files/safetensors';
import { backward } from '../autograd/tape';
import type { Runtime } from '../gpu/runtime';
import { makeLoss } from '../loss/registry';
import { Linear } from '../nn/layers';
import { axpbyInPlace, zeros } from '../ops/basic';
import { mul } from '../ops/elementwise';
import { matmul } from '../ops/matmul';
import { keep, noGrad, tidy, type Tensor } from '../tensor/tensor';
import { buildTrainingData } from '../train/data-source';
import { runConfig } from '../train/eval-checkpoint';
import { initFromCheckpoint } from '../train/fine-tune';
import { forwardBatch } from '../train/forward';
import { materializeModel, modelSpec } from '../train/trainer';

export class MergeDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeDataError';
  }
}

export interface DataPassOptions {
  rt: Runtime;
  /** The expert's Basin run folder: its config names the task's model, data and loss. */
  runDir: string;
  /** The weights to use (the checkpoint the plan reads). */
  weightsFile: string;
  fisher: boolean;
  gram: boolean;
  batches: number;
  /** Where to write the result. */
  out: string;
  signal?: AbortSignal;
}

export async function runMergeDataPass(o: DataPassOptions): Promise<{ file: string; batches: number }> {
  const { rt } = o;
  const run = await openRun(o.runDir);
  const { config, configPath } = runConfig(run);
  const data = await buildTrainingData(config, configPath);
  const { model, store } = materializeModel(rt, modelSpec(config), config.seed);
  const loss = makeLoss(config.train.loss);
  const fisher = new Map<string, Tensor>();
  const gram = new Map<string, { g: Tensor; rows: number; layer: Linear }>();
  try {
    await initFromCheckpoint(o.weightsFile, store, { partial: false });
    if (o.fisher) for (const e of store.entries) fisher.set(e.name, keep(zeros(rt, e.shape)));
    if (o.gram) {
      for (const [name, p] of model.namedParams()) {
        if (!name.endsWith('.weight')) continue;
        const layer = [...model.modules()].find((m): m is Linear => m instanceof Linear && m.weight === p);
        if (!layer) continue;
        const slot = { g: keep(zeros(rt, [layer.inFeatures, layer.inFeatures])), rows: 0, layer };
        gram.set(name, slot);
        layer.observer = (x) => {
          const x2 = x.reshape([x.size / layer.inFeatures, layer.inFeatures]);
          slot.rows += x2.shape[0];
          axpbyInPlace(slot.g, matmul(x2, x2, { transA: true }), 1, 1);
        };
      }
    }
    model.eval(); // no dropout: the Fisher of the model as it is used
    const total = Math.max(1, Math.min(o.batches, data.totalSteps));
    for (let s = 1; s <= total; s++) {
      if (o.signal?.aborted) throw Object.assign(new Error('the merge was cancelled'), { name: 'AbortError' });
      const batch = data.trainBatch(s);
      if (o.fisher) {
        tidy(() => backward(forwardBatch(rt, model, batch, { training: true, loss }).loss));
        tidy(() => {
          for (const e of store.entries) {
            const g = store.get(e.name).grad;
            if (g) axpbyInPlace(fisher.get(e.name)!, mul(g, g), 1, 1);
          }
        });
        store.zeroGrads();
      } else {
        noGrad(() => tidy(() => void forwardBatch(rt, model, batch, { loss })));
      }
      await rt.sync(); // one batch in flight keeps memory flat
    }
    const tensors: WriteTensor[] = [];
    for (const [name, t] of fisher) tensors.push({ name, dtype: 'F32', shape: t.shape, data: async () => (await t.toFloat32()).map((v) => v / total) });
    for (const [name, s] of gram) {
      if (s.rows === 0) throw new MergeDataError(`regmean: the data pass of ${o.runDir} reached no input of ${name}`);
      tensors.push({ name: `${name}.gram`, dtype: 'F32', shape: s.g.shape, data: async () => (await s.g.toFloat32()).map((v) => v / s.rows) });
    }
    await writeSafetensors(o.out, tensors, { format: 'basin-merge-data-1', batches: String(total) });
    return { file: o.out, batches: total };
  } finally {
    for (const s of gram.values()) {
      s.layer.observer = null;
      s.g.dispose();
    }
    for (const t of fisher.values()) t.dispose();
    store.destroy();
  }
}
