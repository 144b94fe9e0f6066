// The sparsity sweep: each score computed once on the dense weights; for each density (descending) the mask is a
// threshold of those scores (or the score's N:M pattern), written into the live parameter views from the dense
// copies (no model copy per point), and the validation metrics computed; the dense model is evaluated first and
// restored at the end. The sweep file (src/files/prune/sweep-file.ts) is rewritten atomically after the dense
// evaluation and after every point, so a reader sees points appear.
//
// SparseGPT's points run its OBS reconstruction at each density (CPU, float64): its quality comes from updating
// the kept weights, which a mask of its ranking would lose. Its weight update depends on the density, so there is
// no "one score, many thresholds" for it: in its default sequential mode every point also runs its own staged
// calibration (each layer's Hessian from the inputs of the earlier layers pruned at THAT density); in one-pass
// mode the dense-input Hessians and their factors are computed once. Its `scoresMs` is the dense pass and
// factors; the rest is in each point's `ms`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../gpu/runtime';
import { DEFAULT_DENSITIES, checkDensity, type PruneOptions } from '../../files/prune/options';
import { SWEEP_FORMAT, sweepFileName, sweepFileText, writeSweepFile, type SweepFile, type SweepMetrics, type SweepPoint, type SweepTiming } from '../../files/prune/sweep-file';
import type { PruneScoreConfig } from '../../files/registry/prune-scores';
import { applyMask, ThresholdTable } from './masks';
import { planPrune } from './plan';
import { computeScores } from './scores';
import { PruneModel } from './session';
import type { PruneSource } from './source';

export interface SweepOptions extends PruneOptions {
  scores: PruneScoreConfig[];
  /** Fractions kept, in (0, 1]; default DEFAULT_DENSITIES. Ignored with an N:M pattern (its density is N/M). */
  densities?: number[];
  /** The sweep file to write (default `<run>/prune/sweep-<timestamp>.json`). */
  file?: string;
  signal?: AbortSignal;
  onProgress?(e: { phase: 'dense' | 'scores' | 'point'; score?: string; density?: number; done: number; total: number }): void;
  onPoint?(p: SweepPoint, sweep: SweepFile): void;
  /**
   * Awaited after each point; its time is counted in `timing.pausedMs` (totalMs includes it). `basin bench prune`
   * times a reference validation pass here, so that the reference and the sweep meet the same machine load.
   */
  betweenPoints?(): Promise<void>;
}

export interface SweepResult {
  file: string;
  sweep: SweepFile;
}

const metricsOf = (m: { loss: number; accuracy: number; hr10: number }): SweepMetrics => ({ loss: m.loss, accuracy: m.accuracy, hr10: m.hr10 });

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw Object.assign(new Error('the sweep was cancelled'), { name: 'AbortError' });
}

/** A new sweep file's path in the run folder (a suffix when one of the same second exists). */
function newSweepPath(runDir: string, now: Date): string {
  const rel = sweepFileName(now);
  let file = path.join(runDir, rel);
  for (let i = 1; fs.existsSync(file); i++) file = path.join(runDir, rel.replace(/\.json$/, `-${i}.json`));
  return file;
}

export async function runSweep(rt: Runtime, source: PruneSource, opts: SweepOptions): Promise<SweepResult> {
  const t0 = performance.now();
  if (!opts.scores.length) throw new Error('a sweep needs at least one score');
  const densities = opts.pattern ? [opts.pattern.n / opts.pattern.m] : [...new Set((opts.densities ?? DEFAULT_DENSITIES).map((d) => checkDensity(d, 'densities')))].sort((a, b) => b - a);
  const plan = await planPrune(source, opts, opts.scores);
  const file = opts.file ?? newSweepPath(source.run.dir, new Date());
  const now = () => new Date().toISOString();
  const sweep: SweepFile = {
    format: SWEEP_FORMAT,
    status: 'running',
    created: now(),
    updated: now(),
    checkpoint: source.checkpoint,
    step: source.step,
    options: {
      scores: opts.scores.map((s) => ({ ...s })),
      granularity: opts.granularity,
      pattern: opts.pattern ? `${opts.pattern.n}:${opts.pattern.m}` : null,
      targets: opts.targets,
      base: opts.base ?? null,
      densities,
    },
    targets: plan.targets.map((t) => ({ name: t.name, shape: [...t.shape], size: t.shape[0] * t.shape[1] })),
    dense: null,
    chance: null,
    points: [],
    timing: { scoresMs: {}, totalMs: 0, denseEvalMs: 0 },
  };
  // The file is written in the background: the next point's GPU work overlaps the write of the previous one. One
  // write is in flight at a time; a save meanwhile only marks the file stale, and when the write ends ONE write of
  // the newest state follows (a reader sees points appear in order, never an older state after a newer one, and a
  // slow disk skips intermediate states instead of queueing them). A failed write surfaces at the next awaited save.
  const timing = sweep.timing as Required<SweepTiming>;
  Object.assign(timing, { openMs: 0, maskMs: 0, evalMs: 0, saveMs: 0, writeWaitMs: 0, writes: 0, pausedMs: 0 });
  let pump: Promise<void> | null = null;
  let stale = false;
  let failure: { error: unknown } | null = null;
  const save = (wait = false): Promise<void> => {
    sweep.updated = now();
    sweep.timing.totalMs = performance.now() - t0;
    stale = true;
    pump ??= (async () => {
      try {
        while (stale) {
          stale = false;
          const ts = performance.now();
          const text = sweepFileText(sweep);
          timing.saveMs += performance.now() - ts;
          timing.writes++;
          await writeSweepFile(file, text);
        }
      } catch (e) {
        failure = { error: e };
      } finally {
        pump = null;
      }
    })();
    if (!wait) return Promise.resolve();
    return pump.then(() => {
      if (failure) throw failure.error;
    });
  };
  /** The write in flight, if any (it never rejects: a failure is kept for the next awaited save). */
  const inFlight = (): Promise<void> => pump ?? Promise.resolve();
  const total = 1 + opts.scores.length * densities.length;
  let done = 0;
  const pm = await PruneModel.open(rt, source, opts);
  timing.openMs = performance.now() - t0; // the checks and plan before it included
  try {
    await save(true);
    opts.onProgress?.({ phase: 'dense', done, total });
    const te = performance.now();
    sweep.dense = metricsOf(await pm.evaluate());
    sweep.chance = metricsOf((await pm.data()).chance);
    sweep.timing.denseEvalMs = performance.now() - te;
    done++;
    await save();
    for (const score of opts.scores) {
      aborted(opts.signal);
      opts.onProgress?.({ phase: 'scores', score: score.type, done, total });
      const set = await computeScores(pm, score, opts.signal);
      let table: ThresholdTable | null = null;
      try {
        const tt = performance.now();
        table = set.reconstruct || opts.pattern ? null : await ThresholdTable.build(pm, set, opts.granularity);
        sweep.timing.scoresMs[score.type] = set.ms + (performance.now() - tt);
        for (const density of densities) {
          aborted(opts.signal);
          opts.onProgress?.({ phase: 'point', score: score.type, density, done, total });
          const tp = performance.now();
          // SparseGPT at density 1 would still zero the inputs that never fire: density 1 is the dense model.
          const mp = set.reconstruct && density >= 1 ? (pm.restore(), { layers: pm.targets.map(() => 1), kept: 1 }) : await applyMask(pm, set, table, density, opts.pattern);
          // Waiting for the mask's GPU work here costs one fence and attributes its time to the mask, not the eval.
          await rt.sync();
          const tm = performance.now();
          timing.maskMs += tm - tp;
          const metrics = metricsOf(await pm.evaluate());
          timing.evalMs += performance.now() - tm;
          const point: SweepPoint = { score: score.type, density, kept: mp.kept, layers: mp.layers, metrics, ms: performance.now() - tp };
          sweep.points.push(point);
          done++;
          await save();
          opts.onPoint?.(point, sweep);
          if (opts.betweenPoints) {
            const tb = performance.now();
            await opts.betweenPoints();
            timing.pausedMs += performance.now() - tb;
          }
        }
      } finally {
        pm.restore();
        await rt.sync();
        table?.dispose();
        set.dispose();
      }
    }
    sweep.status = 'completed';
    const tw = performance.now();
    await inFlight();
    timing.writeWaitMs = performance.now() - tw;
    await save(true);
    return { file, sweep };
  } catch (e) {
    const err = e as Error;
    sweep.status = err.name === 'AbortError' ? 'cancelled' : 'failed';
    if (sweep.status === 'failed') sweep.error = err.message;
    await inFlight();
    failure = null;
    await save(true).catch(() => undefined);
    throw e;
  } finally {
    await rt.sync().catch(() => undefined);
    pm.destroy();
  }
}
