// The extension host ⇄ worker boundary: typed JSON-RPC over the fork() IPC channel (vscode-jsonrpc).
// Both sides import only this file for message shapes; nothing here may import `vscode` or native code.
//
// Three kinds of messages:
//   - requests that answer at once (`gpuInfo`);
//   - jobs (train | merge | eval | export …): ONE request type, `basin/job/run`, whose reply is the job's result.
//     While it runs the worker sends `basin/job/progress` notifications tagged with the job id; cancelling the
//     request's CancellationToken (JSON-RPC `$/cancelRequest`) cancels the job, which then fails with
//     `WorkerErrorCodes.Cancelled`;
//   - worker → host log lines (`basin/log`), shown in the "Basin" output channel.
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';
import type { GpuInfo } from '../engine/gpu/device';

export type { GpuInfo };

/** Bumped on any incompatible change; the host and the worker ship in the same build, so this is a sanity check. */
export const PROTOCOL_VERSION = 1;

/** Application error codes in JSON-RPC error replies (`ResponseError.code`), outside JSON-RPC's reserved range. */
export const WorkerErrorCodes = {
  /** Something failed; the message says what. */
  Failed: 1,
  /** No WebGPU adapter (or the native module failed to load); the message carries the driver advice. */
  NoAdapter: 2,
  /** The GPU device was lost during the work. */
  DeviceLost: 3,
  /** Bad parameters (e.g. a config that does not validate). */
  InvalidParams: 4,
  /** The job was cancelled through its request's cancellation token. (Same number as LSP's RequestCancelled.) */
  Cancelled: -32800,
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCodes)[keyof typeof WorkerErrorCodes];

/** `data` of an error reply: the error's class name, so the host can tell NoAdapterError from others. */
export interface WorkerErrorData {
  name: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests that answer at once

export interface HelloResult {
  protocolVersion: number;
  pid: number;
  /** `process.version` of the worker's Node. */
  node: string;
  platform: string;
  arch: string;
}
/** First request of a fresh worker: checks the protocol version and tells the host about the process. */
export const HelloRequest = new RequestType0<HelloResult, WorkerErrorData>('basin/hello');

/** The adapter the worker's GPU device runs on. Creates the device on first use. */
export const GpuInfoRequest = new RequestType0<GpuInfo, WorkerErrorData>('basin/gpuInfo');

// ---------------------------------------------------------------------------------------------------------------
// Jobs

/**
 * Every job kind with its parameters, its progress payload and its result. Adding a kind = an entry here and a
 * handler in src/worker/jobs; the host runs any of them with `WorkerClient.runJob(kind, params, …)`.
 */
export interface JobKinds {
  /**
   * A diagnostic job that exercises the machinery end to end (progress, cancellation, failure, a worker dying
   * mid-job) without the GPU. Used by the tests and by "is the worker alive" checks.
   */
  selfTest: {
    params: { steps: number; intervalMs: number; failAtStep?: number };
    progress: { step: number };
    result: { steps: number };
  };
  // To come, in the same shape:
  // train:  { params: TrainJobParams;  progress: TrainProgress;  result: TrainResult };
  // merge:  { params: MergeJobParams;  progress: MergeProgress;  result: MergeResult };
  // eval:   { params: EvalJobParams;   progress: EvalProgress;   result: EvalResult };
  // export: { params: ExportJobParams; progress: ExportProgress; result: ExportResult };
}
export type JobKind = keyof JobKinds;
export type JobParams<K extends JobKind> = JobKinds[K]['params'];
export type JobProgressData<K extends JobKind> = JobKinds[K]['progress'];
export type JobResult<K extends JobKind> = JobKinds[K]['result'];

export interface RunJobParams<K extends JobKind = JobKind> {
  /** Chosen by the host, unique per host session; progress notifications carry it. */
  jobId: string;
  kind: K;
  params: JobParams<K>;
}

export interface RunJobResult<K extends JobKind = JobKind> {
  jobId: string;
  kind: K;
  result: JobResult<K>;
  /** Wall time in the worker, milliseconds. */
  elapsedMs: number;
}

/** Runs a job to its end; the reply is its result. Cancel with the request's token. */
export const RunJobRequest = new RequestType<RunJobParams, RunJobResult, WorkerErrorData>('basin/job/run');

export interface JobProgress<K extends JobKind = JobKind> {
  jobId: string;
  kind: K;
  /** Fraction done in [0, 1] where known. */
  fraction?: number;
  /** One short line for a progress notification. */
  message?: string;
  /** The kind's own payload (metrics, step…). */
  data: JobProgressData<K>;
}
export const JobProgressNotification = new NotificationType<JobProgress>('basin/job/progress');

// ---------------------------------------------------------------------------------------------------------------
// Worker → host logging

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export interface LogParams {
  level: LogLevel;
  message: string;
}
export const LogNotification = new NotificationType<LogParams>('basin/log');
