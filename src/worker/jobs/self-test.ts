// `selfTest`: exercises the job machinery (progress, cancellation, failure) without the GPU.
import type { CancellationToken } from 'vscode-jsonrpc';
import type { JobHandler } from './context';

function sleep(ms: number, token: CancellationToken): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const sub = token.onCancellationRequested(done);
    function done(): void {
      clearTimeout(timer);
      sub.dispose();
      resolve();
    }
  });
}

export const selfTestJob: JobHandler<'selfTest'> = async (params, ctx) => {
  const steps = Math.max(0, Math.floor(params.steps));
  for (let step = 1; step <= steps; step++) {
    await sleep(params.intervalMs, ctx.token);
    ctx.throwIfCancelled();
    if (params.failAtStep === step) throw new Error(`selfTest failed at step ${step} as asked`);
    ctx.progress({ step }, { fraction: step / steps, message: `step ${step}/${steps}` });
  }
  return { steps };
};
