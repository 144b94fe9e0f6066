// `prune-apply`: one score at one density written as a pruned checkpoint (`<out>/model.safetensors`) with its
// report (`<out>/prune-report.json`), as `basin prune --score s --density d --out DIR` does
// (src/engine/prune/apply.ts). Options are checked before the job queues for the GPU; cancellation stops while
// scoring (the engine's signal) and before the write.
import * as path from 'node:path';
import type { PruneApplyJobProgress } from '../../protocol/worker';
import { PRUNE_DIR } from '../../files/prune/sweep-file';
import { pruneToCheckpoint } from '../../engine/prune/apply';
import { InvalidJobParamsError, JobCancelledError, optionalAbsolutePath, type JobHandler } from './context';
import { withGpu } from './gpu';
import { checkPruneCommon, scoreConfigOf } from './prune-sweep';

/** The default output folder: `<run>/prune/<score>-d<density>-step<step>` (the density as a percentage). */
export function defaultPruneOut(runDir: string, score: string, density: number, step: number, pattern?: string): string {
  const d = pattern ? pattern.replace(':', 'of') : `d${Number((100 * density).toFixed(2))}`;
  return path.join(runDir, PRUNE_DIR, `${score}-${d}-step${step}`);
}

export const pruneApplyJob: JobHandler<'prune-apply'> = async (params, ctx) => {
  const score = scoreConfigOf(params?.score, params?.scoreParams, 'score');
  const density = params.density;
  if (typeof density !== 'number' || !Number.isFinite(density) || density <= 0 || density > 1) {
    throw new InvalidJobParamsError(`density must be a number in (0, 1] (the fraction kept), got ${JSON.stringify(density)}`);
  }
  const outGiven = optionalAbsolutePath('out', params.out, 'an absolute folder path');
  const { source, options } = await checkPruneCommon(params, [score]);
  const out = outGiven ?? defaultPruneOut(source.run.dir, score.type, density, source.step, params.pattern);
  const queued = (): PruneApplyJobProgress => ({ phase: 'queued' });

  return withGpu(ctx, queued, async (rt) => {
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    try {
      ctx.progress({ phase: 'pruning' }, { fraction: 0.1, message: `${score.type} at ${(100 * density).toFixed(1)}%: scoring and evaluating` });
      const r = await pruneToCheckpoint(rt, source, { ...options, score, density, out, signal: abort.signal });
      ctx.progress({ phase: 'writing' }, { fraction: 1, message: 'written' });
      ctx.log('info', `pruned ${source.checkpoint} with ${score.type} at ${density} → ${r.weights}`);
      const m = r.result.metrics;
      return {
        weights: r.weights,
        report: r.report,
        runDir: source.run.dir,
        score: score.type,
        density: r.result.density,
        kept: r.result.kept,
        layers: r.result.layers.map((l) => ({ name: l.name, kept: l.kept })),
        dense: m ? { ...m.dense } : null,
        pruned: m ? { ...m.pruned } : null,
      };
    } catch (e) {
      if ((e as Error).name === 'AbortError' || ctx.token.isCancellationRequested) throw new JobCancelledError(ctx.jobId);
      throw e;
    } finally {
      sub.dispose();
    }
  });
};
