// `prune-sweep`: the sparsity sweep of `basin prune --sweep` in the worker (src/engine/prune/sweep.ts). The sweep
// file is rewritten after every point, so the prune panel watches it and shows points as they come; the job's
// progress says where the file is (phase 'started') before the first point. Every option is checked — and the
// checkpoint, the targets and each score's needs resolved — before the job queues for the GPU (InvalidParams).
// Cancellation stops between points; the file then says `cancelled` and keeps the points done.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PruneJobCommon, PruneSweepJobProgress } from '../../protocol/worker';
import { DEFAULT_DENSITIES, DEFAULT_TARGETS, PruneOptionError, checkDensity, parseGranularity, parsePattern, pruneScoreConfig, type PruneOptions } from '../../files/prune/options';
import { sweepFileName } from '../../files/prune/sweep-file';
import type { PruneScoreConfig } from '../../files/registry/prune-scores';
import { planPrune } from '../../engine/prune/plan';
import { resolvePruneSource, type PruneSource } from '../../engine/prune/source';
import { runSweep } from '../../engine/prune/sweep';
import { InvalidJobParamsError, JobCancelledError, optionalAbsolutePath, type JobHandler } from './context';
import { withGpu } from './gpu';

/** Most densities one sweep job takes (a bad request beyond: the panel asks for a dozen). */
const MAX_DENSITIES = 200;

/** The source and the options both prune kinds share, checked; errors name the parameter. */
export async function checkPruneCommon(params: PruneJobCommon, scores: PruneScoreConfig[]): Promise<{ source: PruneSource; options: PruneOptions }> {
  const input = optionalAbsolutePath('source', params?.source, 'an absolute path of a run folder, a checkpoint in one, or a training config');
  if (!input) throw new InvalidJobParamsError('a prune job needs source (a run folder, a checkpoint in one, or a training config)');
  const step = params.step;
  if (step !== undefined && (!Number.isInteger(step) || step < 0)) throw new InvalidJobParamsError(`step must be a non-negative integer, got ${JSON.stringify(step)}`);
  if (params.targets !== undefined && (!Array.isArray(params.targets) || !params.targets.length || !params.targets.every((t) => typeof t === 'string' && t.length > 0))) {
    throw new InvalidJobParamsError(`targets must be a non-empty list of name globs, got ${JSON.stringify(params.targets)}`);
  }
  if (params.pattern !== undefined && typeof params.pattern !== 'string') throw new InvalidJobParamsError(`pattern must be a string such as "2:4", got ${JSON.stringify(params.pattern)}`);
  const base = optionalAbsolutePath('base', params.base, 'an absolute path of the base checkpoint');
  try {
    const options: PruneOptions = {
      targets: params.targets ? [...params.targets] : [...DEFAULT_TARGETS],
      granularity: parseGranularity(params.granularity as string | undefined, 'granularity', scores.map((x) => x.type)),
      pattern: parsePattern(params.pattern, 'pattern'),
      base,
    };
    const source = await resolvePruneSource(input, { step });
    await planPrune(source, options, scores);
    return { source, options };
  } catch (e) {
    if (e instanceof InvalidJobParamsError) throw e;
    // A missing checkpoint, a glob that matches nothing, a score whose needs are not met: the request cannot work.
    throw new InvalidJobParamsError((e as Error).message);
  }
}

/** A score's config from its name and parameters; an unknown score or parameter is a bad request. */
export function scoreConfigOf(name: unknown, params: unknown, field: string): PruneScoreConfig {
  if (typeof name !== 'string' || !name) throw new InvalidJobParamsError(`${field} must be a score name, got ${JSON.stringify(name)}`);
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
    throw new InvalidJobParamsError(`${field}: parameters must be an object, got ${JSON.stringify(params)}`);
  }
  try {
    return pruneScoreConfig(name, (params ?? {}) as Record<string, unknown>);
  } catch (e) {
    throw new InvalidJobParamsError(`${field}: ${(e as Error).message}`);
  }
}

export function checkSweepDensities(ds: unknown): number[] {
  if (ds === undefined) return [...DEFAULT_DENSITIES];
  if (!Array.isArray(ds) || !ds.length || ds.length > MAX_DENSITIES) throw new InvalidJobParamsError(`densities must be a list of 1 to ${MAX_DENSITIES} numbers in (0, 1], got ${JSON.stringify(ds)}`);
  try {
    return [...new Set(ds.map((d, i) => checkDensity(Number(d), `densities[${i}]`)))].sort((a, b) => b - a);
  } catch (e) {
    throw new InvalidJobParamsError((e as PruneOptionError).message);
  }
}

export const pruneSweepJob: JobHandler<'prune-sweep'> = async (params, ctx) => {
  if (!Array.isArray(params?.scores) || !params.scores.length) throw new InvalidJobParamsError(`scores must be a non-empty list of score names, got ${JSON.stringify(params?.scores)}`);
  const sp = params.scoreParams;
  if (sp !== undefined && (typeof sp !== 'object' || sp === null || Array.isArray(sp))) throw new InvalidJobParamsError(`scoreParams must be an object keyed by score name, got ${JSON.stringify(sp)}`);
  const scores = [...new Set(params.scores)].map((n, i) => scoreConfigOf(n, sp?.[n as string], `scores[${i}]`));
  const densities = checkSweepDensities(params.densities);
  const file = optionalAbsolutePath('file', params.file, 'an absolute path of a .json file');
  const { source, options } = await checkPruneCommon(params, scores);
  const runDir = source.run.dir;
  const queued = (): PruneSweepJobProgress => ({ phase: 'queued', file: '', runDir: '', done: 0, total: 0 });

  return withGpu(ctx, queued, async (rt) => {
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    const t0 = performance.now();
    const sweepFile = file ?? newSweepFile(runDir);
    const post = (p: Omit<PruneSweepJobProgress, 'file' | 'runDir'>) => {
      const what = p.phase === 'dense' ? 'evaluating the dense model' : p.phase === 'scores' ? `scoring ${p.score}` : p.phase === 'started' ? 'starting' : `${p.score} at ${(100 * (p.density ?? 1)).toFixed(1)}%`;
      ctx.progress({ ...p, file: sweepFile, runDir }, { fraction: p.total ? p.done / p.total : undefined, message: `${what} (${p.done}/${p.total})` });
    };
    try {
      const { file: written, sweep } = await runSweep(rt, source, {
        ...options,
        scores,
        densities,
        file: sweepFile,
        signal: abort.signal,
        onProgress: (e) => {
          // 'dense' comes right after the engine's first write: the file exists from here on.
          if (e.phase === 'dense') post({ phase: 'started', done: e.done, total: e.total });
          post({ phase: e.phase, score: e.score, density: e.density, done: e.done, total: e.total });
        },
        onPoint: (p, s) => post({ phase: 'saved', score: p.score, density: p.density, done: s.points.length + 1, total: 1 + scores.length * s.options.densities.length }),
      });
      ctx.log('info', `prune sweep of ${source.checkpoint}: ${sweep.points.length} points → ${written}`);
      return { file: written, runDir, checkpoint: sweep.checkpoint, step: sweep.step, points: sweep.points.length, ms: performance.now() - t0 };
    } catch (e) {
      if ((e as Error).name === 'AbortError' || ctx.token.isCancellationRequested) throw new JobCancelledError(ctx.jobId);
      throw e;
    } finally {
      sub.dispose();
    }
  });
};

/** A new sweep file's path in the run folder, chosen here so that progress names it from the first notification. */
export function newSweepFile(runDir: string, now = new Date()): string {
  const rel = sweepFileName(now);
  let file = path.join(runDir, rel);
  for (let i = 1; fs.existsSync(file); i++) file = path.join(runDir, rel.replace(/\.json$/, `-${i}.json`));
  return file;
}
