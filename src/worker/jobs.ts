// Job handlers, one per kind of src/protocol/worker.ts's JobKinds. A handler gets its params and a context
// (cancellation, progress, log) and returns the kind's result; throwing fails the job.
import type { CancellationToken } from 'vscode-jsonrpc';
import type { JobKind, JobParams, JobProgressData, JobResult, LogLevel } from '../protocol/worker';

export class JobCancelledError extends Error {
  constructor(jobId: string) {
    super(`Job ${jobId} was cancelled.`);
    this.name = 'JobCancelledError';
  }
}

export interface JobContext<K extends JobKind> {
  readonly jobId: string;
  readonly token: CancellationToken;
  /** Throws JobCancelledError once cancellation was requested: call it between units of work. */
  throwIfCancelled(): void;
  progress(data: JobProgressData<K>, opts?: { fraction?: number; message?: string }): void;
  log(level: LogLevel, message: string): void;
}

export type JobHandler<K extends JobKind> = (params: JobParams<K>, ctx: JobContext<K>) => Promise<JobResult<K>>;
export type JobHandlers = { [K in JobKind]: JobHandler<K> };

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

export const jobHandlers: JobHandlers = {
  async selfTest(params, ctx) {
    const steps = Math.max(0, Math.floor(params.steps));
    for (let step = 1; step <= steps; step++) {
      await sleep(params.intervalMs, ctx.token);
      ctx.throwIfCancelled();
      if (params.failAtStep === step) throw new Error(`selfTest failed at step ${step} as asked`);
      ctx.progress({ step }, { fraction: step / steps, message: `step ${step}/${steps}` });
    }
    return { steps };
  },
};
