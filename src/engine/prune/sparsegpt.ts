// SparseGPT on a whole model (arXiv 2301.00774; ../shared/notes/algorithms.md §3): per target the damped Hessian
// H = XᵀX of its calibration inputs, factored once (H⁻¹ = UᵀU), then the OBS prune-and-update of
// src/engine/cpu/prune.ts (CPU, float64) at a density, written into the live weights.
//
// Whose inputs X are:
// - sequential (the paper, the default): the targets are pruned stage by stage in the order the forward reads
//   them (calibrate.ts forwardStages: q/k/v share a stage), each stage's H from the inputs that the already-pruned
//   earlier stages produce. Those inputs depend on the density, so each density runs its own staged calibration:
//   one pass over the calibration batches per stage after the first, each forward ended once the stage has seen
//   its input. The first stage reads the model's input, which no pruning changes: its dense factors are reused.
// - one-pass: every H from the dense model's inputs, factored once and reused at every density.
import type { NmPattern } from '../../files/prune/options';
import type { PruneScoreConfig } from '../../files/registry/prune-scores';
import { cpuSparseGpt, sparseGptPrepare, type SparseGptPrep } from '../cpu/prune';
import { fromArray, keep, type Tensor } from '../tensor/tensor';
import { calibrate, forwardStages } from './calibrate';
import type { MaskPoint } from './masks';
import type { PruneModel } from './session';

export type SparseGptConfig = Extract<PruneScoreConfig, { type: 'sparsegpt' }>;

export interface SparseGptRunOptions {
  signal?: AbortSignal;
  /** Sees the XᵀX (float64, [in, in], undamped) each target is pruned with (tests compare it to a CPU recomputation). */
  onHessian?(target: number, h: Float64Array): void;
}

export class SparseGpt {
  private constructor(
    private readonly pm: PruneModel,
    private readonly cfg: SparseGptConfig,
    /** Per target: its dense weights (host copy) and the factors of its dense-input Hessian. */
    private readonly dense: Float32Array[],
    private readonly densePreps: SparseGptPrep[],
    /** Per target: the dense-input XᵀX (kept for onHessian in one-pass mode). */
    private readonly denseGrams: Float64Array[],
    /** Sequential mode: the stages (target indices), in forward order; null in one-pass mode. */
    private readonly stages: number[][] | null,
  ) {}

  /** The dense calibration pass (every target at once) and its factors; the stages in sequential mode. */
  static async prepare(pm: PruneModel, cfg: SparseGptConfig, signal?: AbortSignal): Promise<SparseGpt> {
    pm.restore(); // the dense pass must see the dense weights, whatever an earlier point left in the live views
    const stages = cfg.calibration === 'sequential' ? await forwardStages(pm) : null;
    const cal = await calibrate(pm, { batches: cfg.batches, gram: true, signal });
    const dense: Float32Array[] = [];
    const preps: SparseGptPrep[] = [];
    const grams: Float64Array[] = [];
    try {
      for (const [i, t] of pm.targets.entries()) {
        const g = Float64Array.from((await cal.gram[i]!.toArray()) as Float32Array);
        grams.push(g);
        preps.push(sparseGptPrepare(g, t.cols, cfg.damp));
        dense.push(Float32Array.from((await t.dense.toArray()) as Float32Array));
      }
    } finally {
      cal.dispose();
    }
    return new SparseGpt(pm, cfg, dense, preps, grams, stages);
  }

  /**
   * Its ranking (reported, and what a plain mask would use): the OBS saliency w²/U_jj² of the dense-input factors,
   * U_jj² being [H⁻¹]_jj once the earlier columns are eliminated — what SparseGPT compares within a block.
   */
  saliencies(): Tensor[] {
    return this.pm.targets.map((t, i) => {
      const w = this.dense[i];
      const u = this.densePreps[i].u;
      const sal = new Float32Array(t.size);
      for (let k = 0; k < t.size; k++) {
        const j = k % t.cols;
        sal[k] = (w[k] * w[k]) / u[j * t.cols + j] ** 2;
      }
      return keep(fromArray(this.pm.rt, sal, [t.rows, t.cols]));
    });
  }

  /** Prunes every target to a density (or N:M) with the OBS update, written into the live weights. */
  async apply(density: number, pattern: NmPattern | null, opts: SparseGptRunOptions = {}): Promise<MaskPoint> {
    const pm = this.pm;
    const kept = pm.targets.map(() => 0);
    const pruneTarget = (i: number, prep: SparseGptPrep) => {
      const { weight, mask } = cpuSparseGpt(this.dense[i], pm.targets[i].rows, prep, { density, blockSize: this.cfg.blockSize, pattern });
      pm.rt.write(pm.targets[i].live.binding(), weight);
      let n = 0;
      for (const b of mask) n += b;
      kept[i] = n;
    };
    if (!this.stages) {
      for (const i of pm.targets.keys()) {
        opts.onHessian?.(i, this.denseGrams[i]);
        pruneTarget(i, this.densePreps[i]);
      }
    } else {
      // Every stage starts from the dense weights of the later ones (a previous point left them pruned).
      pm.restore();
      for (const [s, stage] of this.stages.entries()) {
        if (s === 0) {
          for (const i of stage) {
            opts.onHessian?.(i, this.denseGrams[i]);
            pruneTarget(i, this.densePreps[i]);
          }
          continue;
        }
        const cal = await calibrate(pm, { batches: this.cfg.batches, gram: true, only: stage, stopEarly: true, signal: opts.signal });
        try {
          for (const i of stage) {
            const g = Float64Array.from((await cal.gram[i]!.toArray()) as Float32Array);
            opts.onHessian?.(i, g);
            pruneTarget(i, sparseGptPrepare(g, pm.targets[i].cols, this.cfg.damp));
          }
        } finally {
          cal.dispose();
        }
      }
    }
    const total = kept.reduce((a, b) => a + b, 0);
    return { layers: pm.targets.map((t, i) => kept[i] / t.size), kept: total / pm.targetElements };
  }
}
