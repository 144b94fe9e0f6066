// The prune-score factories, keyed by the registry's entries (src/files/registry/prune-scores.ts): TypeScript
// refuses a score without a factory or a factory without an entry. A factory computes one score tensor per
// target on the GPU (kernels/prune.wgsl); SparseGPT adds `reconstruct`, the OBS weight update at a density
// (src/engine/prune/sparsegpt.ts), since its quality comes from updating the kept weights, not its ranking alone.
//
// checkScoreNeeds() runs before any work: curvature without statistics names the missing file (or tensors)
// and how to get them; Wanda/SparseGPT without calibration data say what the config must name.
import { rowSumsAllZero, zeroStatisticsProblem } from '../../files/merge/model-files';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsHeader, readTensor } from '../../files/safetensors';
import { PruneOptionError, type NmPattern } from '../../files/prune/options';
import type { RegistryEntry } from '../../files/registry/entry';
import { pruneScoreRegistry, type PruneScoreConfig, type PruneScoreName } from '../../files/registry/prune-scores';
import { fromArray, keep, type Tensor } from '../tensor/tensor';
import { calibrate } from './calibrate';
import type { MaskPoint } from './masks';
import { SparseGpt } from './sparsegpt';
import { scoreCurvature, scoreMagnitude, scoreRandom, scoreWanda } from './kernels';
import type { PruneModel } from './session';
import type { PruneSource } from './source';

/** The largest input dimension SparseGPT's CPU float64 solve accepts ([in, in] Cholesky, O(in³)). */
export const SPARSEGPT_MAX_IN = 1024;

export interface ScoreSet {
  score: PruneScoreConfig;
  /** One score per target, parallel to pm.targets (kept tensors; dispose()). */
  scores: Tensor[];
  /**
   * SparseGPT: every target pruned to a density (or N:M) with the OBS update, written into the live weights
   * (src/engine/prune/sparsegpt.ts; sequential mode runs its staged calibration here).
   */
  reconstruct?(density: number, pattern: NmPattern | null, signal?: AbortSignal): Promise<MaskPoint>;
  /** Wall time of the scoring (calibration pass included), ms. */
  ms: number;
  dispose(): void;
}

export class MissingNeedError extends Error {
  constructor(
    readonly score: string,
    message: string,
  ) {
    super(`${score}: ${message}`);
    this.name = 'MissingNeedError';
  }
}

/** Refuses, before any work, a score whose needs (statistics, calibration data) the source cannot meet. */
export async function checkScoreNeeds(score: PruneScoreConfig, source: PruneSource, targets: readonly { name: string; shape: readonly number[] }[], base?: string): Promise<void> {
  const entry: RegistryEntry = pruneScoreRegistry.get(score.type);
  if (entry.needs?.statistics) {
    if (!fs.existsSync(source.statsFile)) {
      throw new MissingNeedError(
        score.type,
        `needs the training statistics of the checkpoint (step ${source.step} of ${source.run.dir}): ${source.statsFile} does not exist. ` +
          'Train with `train.statsEvery` > 0 (statistics are written at each checkpoint) and prune that checkpoint.',
      );
    }
    const h = await readSafetensorsHeader(source.statsFile);
    const lacking = targets.filter((t) => !h.tensors[`${t.name}.v_row`] || !h.tensors[`${t.name}.v_col`]).map((t) => t.name);
    if (lacking.length) throw new MissingNeedError(score.type, `${source.statsFile} has no v_row/v_col for ${lacking.join(', ')} (statistics of the second moment: train with AdamW, Adafactor or another optimizer that keeps one)`);
    // Zeros everywhere (an SGD run): every score would be 0 and the pruning order arbitrary.
    if (targets.length && (await rowSumsAllZero(targets.map((t) => t.name), async (n) => (await readTensor(source.statsFile, n, h)).data as ArrayLike<number>))) {
      throw new MissingNeedError(score.type, `${zeroStatisticsProblem(source.statsFile, source.config, ' of the pruned weights')}, so they rank no weight above another: train with AdamW, Adafactor or mao, or prune with magnitude or wanda`);
    }
  }
  if (entry.needs?.data) {
    const d = source.config.data as { type?: string } | undefined;
    if (!d?.type) {
      throw new MissingNeedError(
        score.type,
        `needs calibration data: the run's config (${source.configPath ?? source.run.runJsonPath}) must name a data section (data: { type: … }) whose training batches feed the calibration pass`,
      );
    }
    // A data file read from disk (movielens, interactions) must still be where the run's config says, checked
    // here so a moved dataset is named before the GPU work starts rather than by the loader halfway through.
    const file = (d as { path?: unknown }).path;
    if (typeof file === 'string') {
      const abs = path.resolve(source.configPath ? path.dirname(path.resolve(source.configPath)) : process.cwd(), file);
      if (!fs.existsSync(abs)) {
        throw new MissingNeedError(score.type, `needs calibration data: ${abs} (data.path of ${source.configPath ?? source.run.runJsonPath}) does not exist; put the data back there or prune with magnitude or curvature`);
      }
    }
  }
  if (score.type === 'sparsegpt') {
    if (base) throw new PruneOptionError('base', 'sparsegpt updates the kept weights to rebuild each layer’s output: it does not apply to a task vector (use magnitude, curvature or wanda)');
    const big = targets.filter((t) => t.shape[1] > SPARSEGPT_MAX_IN);
    if (big.length) throw new MissingNeedError('sparsegpt', `its [in, in] solve runs on the CPU for inputs up to ${SPARSEGPT_MAX_IN}: ${big.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ')} ${big.length > 1 ? 'are' : 'is'} wider`);
  }
}

type Factory<N extends PruneScoreName> = (pm: PruneModel, score: Extract<PruneScoreConfig, { type: N }>, signal?: AbortSignal) => Promise<Omit<ScoreSet, 'score' | 'ms' | 'dispose'>>;
type Factories = { [N in PruneScoreName]: Factory<N> };

const FACTORIES: Factories = {
  magnitude: async (pm) => ({ scores: pm.targets.map((t) => keep(scoreMagnitude(t.dense, t.base ?? undefined))) }),
  random: async (pm, s) => ({ scores: pm.targets.map((t, i) => keep(scoreRandom(t.dense, s.seed, i))) }),
  curvature: async (pm) => {
    const file = pm.source.statsFile;
    const h = await readSafetensorsHeader(file);
    const scores: Tensor[] = [];
    for (const t of pm.targets) {
      const r = Float32Array.from((await readTensor(file, `${t.name}.v_row`, h)).data as ArrayLike<number>);
      const c = Float32Array.from((await readTensor(file, `${t.name}.v_col`, h)).data as ArrayLike<number>);
      if (r.length !== t.rows || c.length !== t.cols) {
        throw new MissingNeedError('curvature', `${file}: ${t.name}.v_row [${r.length}] / v_col [${c.length}] do not fit the weight [${t.rows}, ${t.cols}]`);
      }
      let sumR = 0;
      for (const x of r) sumR += x;
      const rT = fromArray(pm.rt, r, [t.rows]);
      const cT = fromArray(pm.rt, c, [t.cols]);
      scores.push(keep(scoreCurvature(t.dense, rT, cT, t.base ?? undefined, sumR)));
      rT.dispose();
      cT.dispose();
    }
    return { scores };
  },
  wanda: async (pm, s, signal) => {
    const cal = await calibrate(pm, { batches: s.batches, colSq: true, signal });
    try {
      return { scores: pm.targets.map((t, i) => keep(scoreWanda(t.dense, cal.colSq[i]!, t.base ?? undefined))) };
    } finally {
      await pm.rt.sync();
      cal.dispose();
    }
  },
  sparsegpt: async (pm, s, signal) => {
    const sg = await SparseGpt.prepare(pm, s, signal);
    return { scores: sg.saliencies(), reconstruct: (density, pattern, sig) => sg.apply(density, pattern, { signal: sig ?? signal }) };
  },
};

/** Computes a score for every target of the model (on the dense values). */
export async function computeScores(pm: PruneModel, score: PruneScoreConfig, signal?: AbortSignal): Promise<ScoreSet> {
  const t0 = performance.now();
  const f = FACTORIES[score.type] as (pm: PruneModel, s: PruneScoreConfig, signal?: AbortSignal) => ReturnType<Factory<PruneScoreName>>;
  const out = await f(pm, score, signal);
  await pm.rt.sync();
  return {
    ...out,
    score,
    ms: performance.now() - t0,
    dispose() {
      for (const t of out.scores) t.dispose();
    },
  };
}
