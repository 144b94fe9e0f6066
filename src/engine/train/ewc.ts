// Elastic weight consolidation from stored curvature (`train.ewc`): the loss gains (λ/2)·Σ F̂ ⊙ (θ − θ*)², θ* the
// previous task's weights, F̂ its curvature — with no Fisher pass: the previous run's statistics sidecar
// (`stats/step-<n>.safetensors`) holds, per weight viewed as a matrix, the row and column sums R, C of the optimizer's second
// moment v (AdamW's v ≈ E[g²], the diagonal empirical Fisher of its batches), and the rank-1 estimate
// V̂_ij = R_i·C_j/ΣR reproduces those sums exactly.
//
// Scale: F̂ = V̂ / mean(V̂), the mean over every anchored element of the model, so F̂ averages 1 and λ reads as
// "penalty per squared unit of weight drift at average curvature", independent of the loss's and v's scale.
// Relative importance across tensors is kept (a per-tensor normalisation would erase it).
//
// Only the penalty's GRADIENT λ·F̂⊙(θ−θ*) is applied (kernels/ewc.wgsl, added into the gradients after backward
// and before the optimizer step, so clipping and the optimizer see it like any loss term); the logged loss is the
// task loss alone. Every tensor is anchored, vectors (biases, norms) included: the statistics view a vector [n] as
// [n, 1], whose row sums are v itself, so its F̂ is exact. LoRA and bottleneck adapters (new tensors) are not
// anchored; frozen weights are skipped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RUN_FILE, modelWeightsFile, openRun } from '../../files/run-record';
import { readSafetensorsHeader, readTensor } from '../../files/safetensors';
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import type { ParameterStore } from '../optim/params';
import { Tensor, fromArray } from '../tensor/tensor';
import { isLoraParam } from './lora';
import { isAdapterParam } from '../../files/adapter-checkpoint';
import { matrixView } from '../../protocol/stats';

const WG = 256;
const EWC_GRAD: KernelSpec = { file: 'ewc', entry: 'ewc_grad', bindings: ['rw', 'read', 'read', 'read', 'read'] };

/** The previous task's statistics are not there (or not usable): names the file and how to get it. */
export class EwcStatsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EwcStatsError';
  }
}

export interface EwcSource {
  /** θ*: the previous task's model weights (a LoRA run's merged file). */
  weights: string;
  /** Its statistics sidecar of the same step. */
  stats: string;
  step: number;
}

/** A run folder (its latest checkpoint) or a run's checkpoint file → the weights and statistics files to read. */
export async function resolveEwcSource(from: string): Promise<EwcSource> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(from);
  } catch {
    throw new Error(`train.ewc.from: ${from} does not exist (give the previous task's run folder or one of its checkpoints)`);
  }
  let runDir: string;
  let step: number;
  let weights: string;
  if (st.isDirectory()) {
    if (!fs.existsSync(path.join(from, RUN_FILE))) throw new Error(`train.ewc.from: ${from} is a folder without ${RUN_FILE}: give a Basin run folder or a checkpoint of one`);
    const run = await openRun(from);
    const ck = run.latestCheckpoint();
    if (!ck) throw new Error(`train.ewc.from: the run ${from} has no checkpoint yet`);
    runDir = run.dir;
    step = ck.step;
    weights = modelWeightsFile(ck.absPath);
  } else {
    const m = /^step-(\d+)(\.merged)?\.safetensors$/.exec(path.basename(from));
    runDir = path.dirname(path.dirname(path.resolve(from)));
    if (!m || !fs.existsSync(path.join(runDir, RUN_FILE))) {
      throw new Error(`train.ewc.from: ${from} is not a checkpoint inside a Basin run folder (<run>/checkpoints/step-<n>.safetensors): EWC reads the curvature from that run's stats/ folder`);
    }
    step = Number(m[1]);
    weights = m[2] ? path.resolve(from) : modelWeightsFile(path.resolve(from));
  }
  const stats = path.join(runDir, 'stats', `step-${step}.safetensors`);
  if (!fs.existsSync(stats)) {
    throw new EwcStatsError(
      `train.ewc.from: the previous task's statistics ${stats} are missing (EWC takes its curvature from them). Train the previous task with train.statsEvery > 0: each checkpoint then writes stats/step-<n>.safetensors with the v_row/v_col it needs.`,
    );
  }
  return { weights, stats, step };
}

/** One anchored weight: θ*, R and C on the GPU, and its coefficient λ/(ΣR·mean). */
interface Anchor {
  name: string;
  rows: number;
  cols: number;
  coef: number;
  anchor: Tensor;
  rowv: Tensor;
  colv: Tensor;
}

/** CPU reference of the gradient the kernel adds: coef·R_i·C_j·(θ_ij − θ*_ij). */
export function cpuEwcGrad(theta: Float32Array, anchor: Float32Array, rowv: Float32Array, colv: Float32Array, coef: number): Float32Array {
  const cols = colv.length;
  const out = new Float32Array(theta.length);
  for (let i = 0; i < theta.length; i++) out[i] = coef * rowv[Math.floor(i / cols)] * colv[i % cols] * (theta[i] - anchor[i]);
  return out;
}

/** The penalty (λ/2)·Σ F̂⊙(θ−θ*)² on the CPU (for tests and reports). */
export function cpuEwcPenalty(theta: Float32Array, anchor: Float32Array, rowv: Float32Array, colv: Float32Array, coef: number): number {
  const cols = colv.length;
  let s = 0;
  for (let i = 0; i < theta.length; i++) {
    const d = theta[i] - anchor[i];
    s += rowv[Math.floor(i / cols)] * colv[i % cols] * d * d;
  }
  return 0.5 * coef * s;
}

export class EwcPenalty {
  private constructor(
    readonly store: ParameterStore,
    readonly lambda: number,
    readonly source: EwcSource,
    readonly anchors: Anchor[],
    /** Mean of V̂ over every anchored element (what F̂ is divided by). */
    readonly meanCurvature: number,
    /** Weights not anchored, with why (no statistics for them, zero curvature). */
    readonly skipped: string[],
  ) {}

  /**
   * Reads θ* and the curvature of every weight of the store (vectors too). A weight missing from the previous weights or of
   * another shape is an error naming the first mismatches (EWC needs the same architecture).
   */
  static async load(rt: Runtime, store: ParameterStore, source: EwcSource, lambda: number): Promise<EwcPenalty> {
    const wh = await readSafetensorsHeader(source.weights);
    const sh = await readSafetensorsHeader(source.stats);
    const problems: string[] = [];
    const skipped: string[] = [];
    const found: { name: string; rows: number; cols: number; R: Float32Array; C: Float32Array }[] = [];
    for (const e of store.entries) {
      if (isLoraParam(e.name) || isAdapterParam(e.name)) continue; // new tensors: nothing to anchor to
      // Any tensor as the statistics view it (protocol/stats.ts matrixView): a vector [n] is [n, 1], so its v_row
      // is v itself and V̂_i = R_i·ΣR/ΣR = v_i exactly; higher ranks are [shape[0], rest].
      const { rows, cols } = matrixView(e.shape);
      const w = wh.tensors[e.name];
      if (!w) {
        problems.push(`no tensor ${e.name} in ${source.weights}`);
        continue;
      }
      if (w.shape.length !== e.shape.length || w.shape.some((d, i) => d !== e.shape[i])) {
        problems.push(`${e.name} is [${w.shape.join(', ')}] in ${source.weights}, the model has [${e.shape.join(', ')}]`);
        continue;
      }
      const r = sh.tensors[`${e.name}.v_row`];
      const c = sh.tensors[`${e.name}.v_col`];
      if (!r || !c || r.shape[0] !== rows || c.shape[0] !== cols) {
        skipped.push(`${e.name} (no v_row/v_col of its shape in the statistics)`);
        continue;
      }
      const R = (await readTensor(source.stats, `${e.name}.v_row`, sh)).data as Float32Array;
      const C = (await readTensor(source.stats, `${e.name}.v_col`, sh)).data as Float32Array;
      found.push({ name: e.name, rows, cols, R, C });
    }
    if (problems.length) {
      throw new Error(`train.ewc.from: the previous task's weights do not fit this model: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
    }
    const sum = (a: Float32Array) => a.reduce((s, x) => s + x, 0);
    let total = 0;
    let elems = 0;
    const usable = found.filter((f) => {
      const sR = sum(f.R);
      const ok = sR > 0 && Number.isFinite(sR) && f.R.every((x) => x >= 0 && Number.isFinite(x)) && f.C.every((x) => x >= 0 && Number.isFinite(x));
      if (!ok) skipped.push(`${f.name} (zero or invalid curvature)`);
      else {
        total += sR; // ΣV̂ over the tensor = ΣR (= ΣC)
        elems += f.rows * f.cols;
      }
      return ok;
    });
    if (!usable.length) {
      throw new EwcStatsError(`train.ewc.from: ${source.stats} holds no usable v_row/v_col for this model's weights (was the previous task trained with an optimizer that keeps a second moment, e.g. adamw?)`);
    }
    const mean = total / elems;
    const anchors: Anchor[] = [];
    for (const f of usable) {
      const theta = (await readTensor(source.weights, f.name, wh)).data as Float32Array;
      anchors.push({
        name: f.name,
        rows: f.rows,
        cols: f.cols,
        coef: lambda / (sum(f.R) * mean),
        anchor: fromArray(rt, Float32Array.from(theta), [f.rows * f.cols]),
        rowv: fromArray(rt, f.R, [f.rows]),
        colv: fromArray(rt, f.C, [f.cols]),
      });
    }
    return new EwcPenalty(store, lambda, source, anchors, mean, skipped);
  }

  /** Adds λ·F̂⊙(θ−θ*) into the gradient of every anchored, trainable weight (after backward, before the step). */
  addGradients(): void {
    if (this.lambda === 0) return;
    for (const a of this.anchors) {
      if (this.store.entry(a.name).flags.frozen) continue;
      const p = this.store.get(a.name);
      const n = a.rows * a.cols;
      p.rt.dispatch(EWC_GRAD, [p.grad!.binding(), p.binding(), a.anchor.binding(), a.rowv.binding(), a.colv.binding()], { values: [n, a.cols, a.coef, 0], format: 'uufu' }, Math.ceil(n / WG));
    }
  }

  destroy(): void {
    for (const a of this.anchors) {
      a.anchor.dispose();
      a.rowv.dispose();
      a.colv.dispose();
    }
    this.anchors.length = 0;
  }
}
