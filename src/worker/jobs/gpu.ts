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
/** Who holds the GPU now: a job id, WARM_HOLDER (the kernel warm-up, src/worker/jobs/warm.ts), or nobody. */
let gpuHolder: string | undefined;
export const WARM_HOLDER = 'warm-up';

/** The current holder of the GPU (a job id or WARM_HOLDER), undefined when the GPU is free. */
export function gpuHolderNow(): string | undefined {
  return gpuHolder;
}

/**
 * Models whose kernels a Runtime has compiled (by warmKey): a train job on one of them needs no "compiling GPU
 * kernels" notice. Pipelines are cached per Runtime, so a dropped Runtime (after a failure) starts cold again.
 */
const warmModels = new WeakMap<Runtime, Set<string>>();

export function isWarm(rt: Runtime, key: string): boolean {
  return warmModels.get(rt)?.has(key) ?? false;
}

export function markWarm(rt: Runtime, key: string): void {
  let s = warmModels.get(rt);
  if (!s) warmModels.set(rt, (s = new Set()));
  s.add(key);
}

function runtimeFor(gpu: GpuDevice): Runtime {
  let rt = runtimes.get(gpu);
  if (!rt) {
    rt = new Runtime(gpu);
    runtimes.set(gpu, rt);
  }
  return rt;
}

/** Runs `fn` when no other GPU job runs; a job cancelled while it waits fails with JobCancelledError. */
export async function exclusiveGpu<T>(ctx: Pick<JobContext<JobKind>, 'jobId' | 'token' | 'throwIfCancelled'>, onWait: () => void, fn: () => Promise<T>): Promise<T> {
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
    gpuHolder = ctx.jobId;
    try {
      return await fn();
    } finally {
      gpuHolder = undefined;
    }
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
  /** Instead of `queued` while the GPU is held by the kernel warm-up (not another job): e.g. train's 'compiling'. */
  whileWarming?: () => { data: JobProgressData<K>; message: string },
): Promise<T> {
  const onWait = () => {
    const w = gpuHolder === WARM_HOLDER ? whileWarming?.() : undefined;
    if (w) ctx.progress(w.data, { message: w.message });
    else ctx.progress(queued(), { queued: true, message: 'waiting for another job to finish' });
  };
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

/** The shared Runtime of the process's device (the warm-up compiles into the same pipeline cache jobs use). */
export function sharedRuntime(gpu: GpuDevice): Runtime {
  return runtimeFor(gpu);
}

/** Drops the device's Runtime after a failure (see withGpu). */
export function dropRuntime(gpu: GpuDevice): void {
  runtimes.delete(gpu);
}
