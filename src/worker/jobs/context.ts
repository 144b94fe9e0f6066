// What every job handler gets and may throw. A handler is `(params, ctx) => Promise<result>` for one kind of
// src/protocol/worker.ts's JobKinds; throwing fails the job (src/worker/main.ts maps the error to a reply code).
import * as path from 'node:path';
import type { CancellationToken } from 'vscode-jsonrpc';
import type { JobKind, JobParams, JobProgressData, JobResult, LogLevel, SideRecordKind } from '../../protocol/worker';
import type { GpuDevice } from '../../engine/gpu/device';

export class JobCancelledError extends Error {
  constructor(jobId: string) {
    super(`Job ${jobId} was cancelled.`);
    this.name = 'JobCancelledError';
  }
}

/** Parameters that cannot work (mapped to WorkerErrorCodes.InvalidParams). */
export class InvalidJobParamsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidJobParamsError';
  }
}

export interface ProgressOptions {
  /** Fraction done in [0, 1], where known. */
  fraction?: number;
  /** One short line for the host's notification. */
  message?: string;
  /** The job waits for the GPU (see JobProgress.queued). */
  queued?: boolean;
}

export interface JobContext<K extends JobKind> {
  readonly jobId: string;
  readonly token: CancellationToken;
  /** Throws JobCancelledError once cancellation was requested: call it between units of work. */
  throwIfCancelled(): void;
  progress(data: JobProgressData<K>, opts?: ProgressOptions): void;
  log(level: LogLevel, message: string): void;
  /** The process's GPU device (made once, shared by every job; a lost device is replaced). */
  gpu(): Promise<GpuDevice>;
  /** Sends bytes on the binary side channel; false when there is none or the record was dropped. */
  sendBinary(kind: SideRecordKind, runDir: string, step: number, bytes: Uint8Array): boolean;
}

export type JobHandler<K extends JobKind> = (params: JobParams<K>, ctx: JobContext<K>) => Promise<JobResult<K>>;

/** One handler per kind: a kind of the protocol without a handler (or a handler for no kind) does not compile. */
export type JobHandlers = { [K in JobKind]: JobHandler<K> };

/** Checks an optional absolute-path parameter (params come from another process: trust nothing). */
export function optionalAbsolutePath(name: string, value: unknown, what = 'an absolute path'): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !path.isAbsolute(value)) throw new InvalidJobParamsError(`${name} must be ${what}, got ${JSON.stringify(value)}`);
  return value;
}
