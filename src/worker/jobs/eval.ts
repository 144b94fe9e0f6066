// `eval`: evaluates a run folder's checkpoint (the latest, or a given step) on the validation split of the run's
// config, with the engine's evaluateCheckpoint(). Cancellation stops between batches (the reply: Cancelled).
import type { EvalJobProgress } from '../../protocol/worker';
import { openRun } from '../../files/run-record';
import { evaluateCheckpoint, findCheckpoint, runConfig } from '../../engine/train/eval-checkpoint';
import { InvalidJobParamsError, JobCancelledError, optionalAbsolutePath, type JobHandler } from './context';
import { withGpu } from './gpu';
import { ThrottledProgress } from './throttle';

/** Progress notifications per second of an eval job, at most. */
const EVAL_PROGRESS_PER_SEC = 10;

export const evalJob: JobHandler<'eval'> = async (params, ctx) => {
  const runDir = optionalAbsolutePath('runDir', params?.runDir, 'an absolute path of a run folder');
  if (!runDir) throw new InvalidJobParamsError('an eval job needs runDir');
  const step = params.step;
  if (step !== undefined && (!Number.isInteger(step) || step < 0)) throw new InvalidJobParamsError(`step must be a non-negative integer, got ${JSON.stringify(step)}`);
  // A run folder, config or checkpoint that is not there is a bad request (InvalidParams), found before queueing.
  try {
    const run = await openRun(runDir);
    runConfig(run);
    findCheckpoint(run, step);
  } catch (e) {
    throw new InvalidJobParamsError((e as Error).message);
  }

  return withGpu(ctx, (): EvalJobProgress => ({ phase: 'queued', batch: 0, batches: 0 }), async (rt) => {
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    const progress = new ThrottledProgress<EvalJobProgress>((p) => {
      const fraction = p.batches > 0 ? p.batch / p.batches : undefined;
      const message = p.phase === 'loading' ? 'loading the checkpoint and the data' : `batch ${p.batch}/${p.batches}`;
      ctx.progress(p, { fraction, message });
    }, 1000 / EVAL_PROGRESS_PER_SEC);
    try {
      const r = await evaluateCheckpoint({ rt, runDir, step, signal: abort.signal, onProgress: (p) => progress.post(p, p.phase === 'loading') });
      progress.flush();
      ctx.log('info', `eval ${runDir} @ step ${r.step}: ${Object.entries(r.metrics).map(([k, v]) => `${k} ${v}`).join(', ')} (${r.batches} batches)`);
      return { metrics: { ...r.metrics }, step: r.step };
    } catch (e) {
      if ((e as Error).name === 'AbortError' || ctx.token.isCancellationRequested) throw new JobCancelledError(ctx.jobId);
      throw e;
    } finally {
      progress.flush();
      sub.dispose();
    }
  });
};
