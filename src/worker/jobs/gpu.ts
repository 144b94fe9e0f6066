// GPU jobs run one at a time per process (the engine's tensor scopes are per process), on one Runtime per device
// so that compiled pipelines are reused from job to job. Every GPU job handler runs its engine work in withGpu().
import type { JobKind, JobProgressData } from '../../protocol/worker';
import type { GpuDevice } from '../../engine/gpu/device';
import { Runtime } from '../../engine/gpu/runtime';
import { JobCancelledError, type JobContext } from './context';

/** After this long waiting for the GPU, the job reports itself queued. */
const QUEUED_AFTER_MS = 50;

let gpuQueue: Promise<void> = Promise.resolve();
const runtimes = new WeakMap<GpuDevice, Runtime>();

function runtimeFor(gpu: GpuDevice): Runtime {
  let rt = runtimes.get(gpu);
  if (!rt) {
    rt = new Runtime(gpu);
    runtimes.set(gpu, rt);
  }
  return rt;
}

/** Runs `fn` when no other GPU job runs; a job cancelled while it waits fails with JobCancelledError. */
async function exclusiveGpu<T>(ctx: JobContext<JobKind>, onWait: () => void, fn: () => Promise<T>): Promise<T> {
  const prev = gpuQueue;
  let release!: () => void;
  gpuQueue = new Promise<void>((r) => (release = r));
  try {
    let waiting = true;
    const timer = setTimeout(() => waiting && onWait(), QUEUED_AFTER_MS);
    await new Promise<void>((resolve, reject) => {
      const sub = ctx.token.onCancellationRequested(() => {
        sub.dispose();
        reject(new JobCancelledError(ctx.jobId));
      });
      void prev.then(() => {
        sub.dispose();
        resolve();
      });
    }).finally(() => {
      waiting = false;
      clearTimeout(timer);
    });
    // The previous job is done; a cancellation that came meanwhile still counts.
    ctx.throwIfCancelled();
    return await fn();
  } finally {
    // Release only after our predecessor has: a cancelled waiter must not let the next job start early.
    void prev.then(release);
  }
}

/**
 * Runs a job's GPU work once the GPU is free, with the process's device and its shared Runtime. While it waits,
 * the job reports `queued` progress with the kind's own payload. When `fn` throws, the Runtime is dropped: it may
 * hold recorded work that refers to the failed job's freed buffers, so the next job starts afresh.
 */
export function withGpu<K extends JobKind, T>(
  ctx: JobContext<K>,
  queued: () => JobProgressData<K>,
  fn: (rt: Runtime, gpu: GpuDevice) => Promise<T>,
): Promise<T> {
  const onWait = () => ctx.progress(queued(), { queued: true, message: 'waiting for another job to finish' });
  return exclusiveGpu(ctx as JobContext<JobKind>, onWait, async () => {
    const gpu = await ctx.gpu();
    try {
      return await fn(runtimeFor(gpu), gpu);
    } catch (e) {
      runtimes.delete(gpu);
      throw e;
    }
  });
}
