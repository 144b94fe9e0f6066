// The extension host ⇄ worker boundary: typed JSON-RPC over the fork() IPC channel (vscode-jsonrpc).
// Both sides import only this file for message shapes; nothing here may import `vscode` or native code.
//
// Three kinds of messages:
//   - requests that answer at once (`gpuInfo`);
//   - jobs (train | eval | selfTest, and kinds to come): ONE request type, `basin/job/run`, whose reply is the
//     job's result. While it runs the worker sends `basin/job/progress` notifications tagged with the job id;
//     cancelling the request's CancellationToken (JSON-RPC `$/cancelRequest`) cancels the job, which then fails
//     with `WorkerErrorCodes.Cancelled` — except `train`, which stops after the current step, writes a checkpoint
//     and answers normally with `status: 'cancelled'` (so the run can be resumed);
//   - worker → host log lines (`basin/log`), shown in the "Basin" output channel.
// Binary data (statistics frames) does not go through JSON: see "Binary side channel" at the end of this file.
//
// Adding a job kind (merge, prune-sweep, export… each comes with its own issue) takes three steps:
//   1. Protocol: an entry `<kind>: { params; progress; result }` in `JobKinds` below, with its three types here
//      (plain JSON: what crosses the IPC channel). The host and the worker then fail to compile until 2 is done.
//   2. Worker: `src/worker/jobs/<kind>.ts` exporting a `JobHandler<'<kind>'>` that checks its params (throw
//      InvalidJobParamsError), runs the engine inside `withGpu()` when it needs the GPU, reports progress with
//      `ctx.progress(data, { fraction, message })` and returns the result; then one line in the registry
//      src/worker/jobs/index.ts. The JSON-RPC server (src/worker/main.ts) dispatches through that registry.
//   3. Host (optional): the host runs any kind as it is (`ctx.jobs.run(kind, params)`: a cancellable progress
//      notification, status bar, queued state, failure reasons). A kind that wants its own status text, result
//      message or end actions adds a `JobKindHost` in src/host/jobs/kinds/<kind>.ts (registered in
//      src/host/jobs/kinds/index.ts), and a command declared in package.json's contributes.commands.
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';
import type { GpuInfo } from './gpu';

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

/**
 * Compile ahead the GPU kernels a config's training will use (the host sends it when a config is shown in a
 * trusted workspace, so that the first ▶ Train does not wait for the compiler). The worker runs one throwaway
 * training step of the config in a temporary folder, on the GPU queue (a job that comes meanwhile waits for it and
 * reports `phase: 'compiling'`). Cancel it with the request's token: it stops before its step when it can.
 * Answers at once with `skipped` when this worker already compiled that model's kernels.
 */
export interface WarmParams {
  /** Absolute path of a `*.basin.yaml` / `*.basin.json` config. */
  configPath: string;
}
export interface WarmResult {
  /** Kernels (pipelines) the runtime compiled during the warm-up. */
  kernels: number;
  /** Wall time, milliseconds. */
  ms: number;
  /** Why nothing was done: 'already warm', 'the config has problems', 'cancelled'… */
  skipped?: string;
}
export const WarmRequest = new RequestType<WarmParams, WarmResult, WorkerErrorData>('basin/warm');

// ---------------------------------------------------------------------------------------------------------------
// Jobs

/**
 * Every job kind with its parameters, its progress payload and its result (see "Adding a job kind" at the top of
 * this file); the host runs any of them with `WorkerClient.runJob(kind, params, …)` or `JobManager.run`.
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
  /** Trains a model from a config (or resumes a run folder) with the engine's `train()`. */
  train: {
    params: TrainJobParams;
    progress: TrainJobProgress;
    result: TrainJobResult;
  };
  /** Evaluates a run folder's checkpoint on the validation split of the run's config. */
  eval: {
    params: EvalJobParams;
    progress: EvalJobProgress;
    result: EvalJobResult;
  };
  /** Scores weights files (merged models, checkpoints, run folders) on tasks (training configs or run folders). */
  'eval-weights': {
    params: EvalWeightsJobParams;
    progress: EvalWeightsJobProgress;
    result: EvalWeightsJobResult;
  };
  /** Runs a merge config (`*.merge.yaml`): the merged model and its report, or a preview on a sample. */
  merge: {
    params: MergeJobParams;
    progress: MergeJobProgress;
    result: MergeJobResult;
  };
  /** A sparsity sweep (`basin prune --sweep`): per score × density the validation metrics, in a sweep file. */
  'prune-sweep': {
    params: PruneSweepJobParams;
    progress: PruneSweepJobProgress;
    result: PruneSweepJobResult;
  };
  /** One score at one density written as a pruned checkpoint with its report (`basin prune --out`). */
  'prune-apply': {
    params: PruneApplyJobParams;
    progress: PruneApplyJobProgress;
    result: PruneApplyJobResult;
  };
}
export type JobKind = keyof JobKinds;

// ---- train

/**
 * A training job. Either a fresh run from `configPath`, or `resume` of a run folder from its latest checkpoint.
 * When resuming without `configPath`, the config is the one recorded in the run's run.json (so the run continues
 * exactly what it started); with `configPath`, that file is loaded (as `basin train <config> --resume <dir>` does).
 */
export interface TrainJobParams {
  /** Absolute path of a `*.basin.yaml` / `*.basin.json` config. Required unless `resume` is given. */
  configPath?: string;
  /** Absolute path of a run folder to resume from its latest checkpoint. */
  resume?: string;
  /** Parent folder for the new run folder; default: the config's `output`, resolved against the config's folder. */
  outputDir?: string;
  /**
   * With `resume`: the step of the checkpoint to resume from instead of the latest (offered when the latest one
   * is unreadable: "Resume from step N instead"). Passed to the engine's train() as `resumeStep`.
   */
  fromCheckpoint?: number;
}

/**
 * `data` of a train job's progress notifications. `phase: 'queued'` (no run folder yet: `runDir` is '') when the
 * job waits for another GPU job of the worker to end; `phase: 'compiling'` (runDir may be '') before the first step
 * when this worker has not compiled the GPU kernels yet (on a software adapter the first run of a machine spends
 * ~20 s there, later runs hit the driver's disk cache), or while the worker's warm-up (WarmRequest) still holds the
 * GPU; `phase: 'started'` as soon as the run folder exists; then at
 * most ~10 per second. Log, evaluation and checkpoint events are never lost: one that comes within the interval is
 * merged into the next notification (`phase` then names the latest event, the fields hold the latest values).
 */
export interface TrainJobProgress {
  /** What this notification reports: waiting, the run started, a logged step, an evaluation, a checkpoint written. */
  phase: 'queued' | 'compiling' | 'started' | 'step' | 'eval' | 'checkpoint';
  /** Absolute path of the run folder ('' while queued). */
  runDir: string;
  /** The run's name (run.json `name`). */
  name: string;
  /** Last step done (1-based; the start step when `phase` is 'started': 0, or the resumed checkpoint's step). */
  step: number;
  totalSteps: number;
  /** The step the job started at (0 for a fresh run). */
  startStep: number;
  /** Training loss at the latest logged step (read back every `train.logEvery` steps). */
  loss?: number;
  /** Learning rate at the latest logged step. */
  lr?: number;
  /** Global gradient L2 norm at the latest logged step (before clipping). */
  gradNorm?: number;
  /** Training throughput over the latest logging interval. */
  stepsPerSec?: number;
  /** Latest validation metrics, e.g. { loss, accuracy, hr10 } (no `val_` prefix). */
  val?: Record<string, number>;
  /** Step of the latest validation metrics. */
  valStep?: number;
  /** Absolute path of the latest checkpoint written by this job (weights .safetensors). */
  checkpoint?: string;
  /** Step of `checkpoint`. */
  checkpointStep?: number;
  /** Trainable parameter count (sent with 'started'). */
  parameters?: number;
  /**
   * True from the start of a job whose worker has not compiled this model's kernels yet until its first logged
   * step: the first step is compiling them ("compiling GPU kernels, first run only").
   */
  compiling?: boolean;
}

export interface TrainJobResult {
  /** Absolute path of the run folder. */
  runDir: string;
  /** 'cancelled' when the job's request was cancelled: a checkpoint at the step reached was written. */
  status: 'completed' | 'cancelled';
  /** The last step done. */
  steps: number;
  totalSteps: number;
  /** Training loss at the last logged step (null if none was logged). */
  lastLoss: number | null;
  /** Latest validation metrics (null if none ran). */
  eval: Record<string, number> | null;
  /** The same metrics for a chance-level predictor, when the data defines one. */
  chance: Record<string, number> | null;
  /** Absolute path of the latest checkpoint (weights .safetensors), null if none was written. */
  checkpoint: string | null;
}
// ---- eval-weights

export interface EvalWeightsJobParams {
  /** Absolute paths: weights files (.safetensors), folders holding model.safetensors, or run folders. */
  models: string[];
  /** Absolute paths: training configs (*.basin.yaml/json) or run folders (their recorded config) defining the tasks. */
  tasks: string[];
}

export interface EvalWeightsJobProgress {
  phase: 'queued' | 'evaluating';
  /** (model, task) pairs done, of `total`. */
  done: number;
  total: number;
}

export interface EvalWeightsJobResult {
  /** results[t][m]: the validation metrics of models[m] on tasks[t] (no `val_` prefix). */
  results: Record<string, number>[][];
}

// ---- eval

/** Evaluates one checkpoint of a run folder with the config recorded in its run.json (model, data, seed). */
export interface EvalJobParams {
  /** Absolute path of the run folder. */
  runDir: string;
  /** The checkpoint's step; default: the latest checkpoint. */
  step?: number;
}

/**
 * `data` of an eval job's progress notifications: 'queued' while another GPU job runs, 'loading' while the data
 * and the weights load (batches is 0 until known), 'evaluating' after each validation batch (at most ~10/s).
 */
export interface EvalJobProgress {
  phase: 'queued' | 'loading' | 'evaluating';
  /** Validation batches done. */
  batch: number;
  /** Validation batches in all (0 while unknown). */
  batches: number;
}

export interface EvalJobResult {
  /** Validation metrics of the checkpoint, e.g. { loss, accuracy, hr10 } (no `val_` prefix). */
  metrics: Record<string, number>;
  /** The checkpoint's step. */
  step: number;
}

// ---- merge

/** A merge job: `basin merge <configFile> [--out] [--force] [--preview]` in the worker. */
export interface MergeJobParams {
  /** Absolute path of a `*.merge.yaml` / `*.merge.yml` config (read from disk: save it first). */
  configFile: string;
  /** Output folder; default: the config's `basin.output`, else `<config folder>/merged/<config name>`. */
  out?: string;
  /** Write over an existing merged model in the output folder. */
  force?: boolean;
  /** Run on a sample and write nothing: at most `tensors` tensors, the first `rows` rows of each. */
  preview?: { tensors: number; rows: number };
  /**
   * Saliency instead of the config's method: a `curvature` preview over the experts that have training statistics
   * (Σ τ²⊙F̂ per expert and layer, in `saliency`); experts without statistics are listed in `noStatistics`.
   * Needs `preview` and a base model.
   */
  saliency?: boolean;
}

/** `data` of a merge job's progress: 'queued' while another GPU job runs, then after each tensor. */
export interface MergeJobProgress {
  phase: 'queued' | 'planning' | 'merging';
  done: number;
  total: number;
  /** The tensor just merged ('' before the first). */
  tensor: string;
}

/** One tensor of a merge report (the engine's TensorReport, as JSON). */
export interface MergeJobTensor {
  name: string;
  shape: number[];
  layer: number | null;
  /** Per expert: fraction of the task vector's entries kept. */
  keptFraction: number[];
  /** Fraction of entries where the kept experts disagree on the sign. */
  signConflict: number;
  deltaNorm: number;
  saliencyMass?: number[];
}

/** A merge job's result: the engine's MergeReport (merge-report.json) as JSON, plus what the job adds. */
export interface MergeJobResult {
  format: string;
  configFile: string;
  method: string;
  models: { index: number; written: string; path: string; role: 'base' | 'expert' | 'base+expert' }[];
  saliency: { model: number; total: number; perLayer: Record<string, number> }[];
  tensors: MergeJobTensor[];
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  /** The merged weights file, null for a preview. */
  output: string | null;
  warnings: string[];
  sample?: { tensors: number; rowsPerTensor: number };
  /** With `saliency`: the experts (model index as in the config's plan) without training statistics, and why. */
  noStatistics?: { model: number; written: string; message: string }[];
}

// ---- prune-sweep, prune-apply

/** What both prune kinds prune and how (src/files/prune/options.ts documents each field). */
export interface PruneJobCommon {
  /** Absolute path: a run folder (its latest checkpoint), a checkpoint inside one, or a training config. */
  source: string;
  /** With a run folder or a config: the checkpoint's step instead of the latest. */
  step?: number;
  /** Tensor name globs; default the 2-D weights of the blocks / layers. */
  targets?: string[];
  /** 'row' | 'tensor' | 'global'; default 'tensor'. */
  granularity?: 'row' | 'tensor' | 'global';
  /** "2:4" (N:M) or absent for unstructured. */
  pattern?: string;
  /** Task-vector mode: the base checkpoint (absolute path). */
  base?: string;
}

export interface PruneSweepJobParams extends PruneJobCommon {
  /** Score names of the prune-score registry (`magnitude`, `random`, `wanda`…), at least one. */
  scores: string[];
  /** Per score name, parameters other than the defaults ({ wanda: { batches: 4 } }). */
  scoreParams?: Record<string, Record<string, number | string | boolean>>;
  /** Fractions kept in (0, 1]; default the sweep's standard list. */
  densities?: number[];
  /** Absolute path of the sweep file to write; default `<run>/prune/sweep-<timestamp>.json`. */
  file?: string;
}

/**
 * `data` of a prune-sweep job's progress: 'queued' while another GPU job runs, 'started' once the sweep file
 * exists (the panel watches it), then per phase of the sweep ('dense' evaluation, a score's 'scores', each
 * 'point' before its evaluation and 'saved' after it was written). `done`/`total` count evaluations.
 */
export interface PruneSweepJobProgress {
  phase: 'queued' | 'started' | 'dense' | 'scores' | 'point' | 'saved';
  /** The sweep file ('' while queued). */
  file: string;
  /** The run folder ('' while queued). */
  runDir: string;
  score?: string;
  density?: number;
  done: number;
  total: number;
}

export interface PruneSweepJobResult {
  /** Absolute path of the sweep file. */
  file: string;
  runDir: string;
  checkpoint: string;
  step: number | null;
  points: number;
  /** Wall time of the sweep, milliseconds. */
  ms: number;
}

export interface PruneApplyJobParams extends PruneJobCommon {
  /** One score name, with optional parameters. */
  score: string;
  scoreParams?: Record<string, number | string | boolean>;
  /** Fraction kept in (0, 1] (ignored with an N:M pattern: N/M). */
  density: number;
  /** Absolute output folder; default `<run>/prune/<score>-d<density>-step<step>`. */
  out?: string;
}

/** `data` of a prune-apply job's progress: 'queued', then 'pruning' (scores, mask, evaluation) and 'writing'. */
export interface PruneApplyJobProgress {
  phase: 'queued' | 'pruning' | 'writing';
}

export interface PruneApplyJobResult {
  /** The pruned weights (`<out>/model.safetensors`) and the report (`<out>/prune-report.json`). */
  weights: string;
  report: string;
  runDir: string;
  score: string;
  density: number;
  /** Fraction of the targeted entries kept; per target, in order. */
  kept: number;
  layers: { name: string; kept: number }[];
  /** Validation metrics of the dense and the pruned model. */
  dense: Record<string, number> | null;
  pruned: Record<string, number> | null;
}

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
  /**
   * The job waits for another GPU job of the worker to end (jobs run one at a time on the GPU); the host shows it
   * as queued. Any kind may send it; its `data` then is the kind's own "queued" payload.
   */
  queued?: boolean;
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

// ---------------------------------------------------------------------------------------------------------------
// Binary side channel (worker → host)
//
// JSON-RPC over the IPC channel serializes JSON, which would turn a statistics frame (src/protocol/stats.ts) into
// an array of numbers. Binary data therefore travels on a side channel: the host forks the worker with a fifth
// stdio entry, a pipe that is fd 4 in the worker (`stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe']`, and
// `BASIN_SIDE_FD=4` in its environment so the worker knows it may write there). The pipe carries records:
//
//   offset  size  field
//   0       4     magic 0x31435342 ('BSC1' read as little-endian u32)
//   4       4     bodyBytes: the length of what follows (≤ SIDE_MAX_BODY_BYTES)
//   8       2     kind (SideRecordKind; 1 = statistics frame)
//   10      2     jobIdBytes (≤ SIDE_MAX_ID_BYTES)
//   12      4     runDirBytes (≤ SIDE_MAX_PATH_BYTES)
//   16      4     step
//   20      …     jobId (UTF-8) | runDir (UTF-8) | payload (the rest of the body: for kind 1, one stats frame)
//
// All little-endian. 20 + jobIdBytes + runDirBytes ≤ 8 + bodyBytes. A record that breaks any bound means the
// stream is out of step: the reader reports it and drops the rest of the stream (nothing else is trustworthy).
// Records of one job arrive in order. They are not ordered against JSON-RPC messages (another pipe) except at the
// end: a job's JobEnd record is written before its reply, and WorkerClient.runJob resolves only once it has read
// it (or after a short cap), so a job's records all reach the host before its result does.

export const SIDE_MAGIC = 0x31435342;
/** fd of the side channel in the worker. */
export const SIDE_FD = 4;
/** Environment variable that tells the worker the side channel exists (its value is the fd). */
export const SIDE_FD_ENV = 'BASIN_SIDE_FD';
export const SIDE_MAX_BODY_BYTES = 256 * 1024 * 1024;
export const SIDE_MAX_ID_BYTES = 1024;
export const SIDE_MAX_PATH_BYTES = 16 * 1024;
const SIDE_PREFIX_BYTES = 8;
const SIDE_BODY_HEADER_BYTES = 12;

export const SideRecordKind = {
  /** One statistics frame (src/protocol/stats.ts) of a training job. */
  Stats: 1,
  /**
   * The job's last record (empty runDir and payload), written after its handler ended and before its reply is
   * sent: the host resolves the job only once it has read this, so every record of a job is delivered first.
   */
  JobEnd: 2,
} as const;
export type SideRecordKind = (typeof SideRecordKind)[keyof typeof SideRecordKind];

export interface SideRecord {
  kind: number;
  jobId: string;
  /** Absolute path of the job's run folder. */
  runDir: string;
  step: number;
  /** The payload (a copy: it owns its buffer). */
  bytes: Uint8Array;
}

export class SideChannelError extends Error {
  constructor(message: string) {
    super(`side channel: ${message}`);
    this.name = 'SideChannelError';
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** One record as bytes (prefix included). Throws SideChannelError when a bound is broken. */
export function encodeSideRecord(r: { kind: number; jobId: string; runDir: string; step: number; bytes: Uint8Array }): Uint8Array {
  const id = utf8Encoder.encode(r.jobId);
  const dir = utf8Encoder.encode(r.runDir);
  if (id.length > SIDE_MAX_ID_BYTES) throw new SideChannelError(`job id is ${id.length} bytes (at most ${SIDE_MAX_ID_BYTES})`);
  if (dir.length > SIDE_MAX_PATH_BYTES) throw new SideChannelError(`run folder path is ${dir.length} bytes (at most ${SIDE_MAX_PATH_BYTES})`);
  if (!Number.isInteger(r.kind) || r.kind < 0 || r.kind > 0xffff) throw new SideChannelError(`kind ${r.kind} is not a u16`);
  const step = Number.isInteger(r.step) && r.step >= 0 && r.step <= 0xffffffff ? r.step : 0;
  const body = SIDE_BODY_HEADER_BYTES + id.length + dir.length + r.bytes.length;
  if (body > SIDE_MAX_BODY_BYTES) throw new SideChannelError(`record is ${body} bytes (at most ${SIDE_MAX_BODY_BYTES})`);
  const out = new Uint8Array(SIDE_PREFIX_BYTES + body);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, SIDE_MAGIC, true);
  dv.setUint32(4, body, true);
  dv.setUint16(8, r.kind, true);
  dv.setUint16(10, id.length, true);
  dv.setUint32(12, dir.length, true);
  dv.setUint32(16, step, true);
  let o = SIDE_PREFIX_BYTES + SIDE_BODY_HEADER_BYTES;
  out.set(id, o);
  o += id.length;
  out.set(dir, o);
  o += dir.length;
  out.set(r.bytes, o);
  return out;
}

/**
 * Incremental reader of the side channel: feed it the chunks as they come (any split), get whole records back.
 * Throws SideChannelError on a malformed record; after that it refuses more input.
 */
export class SideChannelDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private broken: SideChannelError | undefined;

  /** Bytes held waiting for the rest of a record. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): SideRecord[] {
    if (this.broken) throw this.broken;
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: SideRecord[] = [];
    while (this.buffered >= SIDE_PREFIX_BYTES) {
      const prefix = this.peek(SIDE_PREFIX_BYTES);
      const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
      const magic = dv.getUint32(0, true);
      const body = dv.getUint32(4, true);
      if (magic !== SIDE_MAGIC) this.fail(`bad magic 0x${magic.toString(16)}`);
      if (body < SIDE_BODY_HEADER_BYTES || body > SIDE_MAX_BODY_BYTES) this.fail(`record body of ${body} bytes is out of bounds`);
      if (this.buffered < SIDE_PREFIX_BYTES + body) break;
      const rec = this.take(SIDE_PREFIX_BYTES + body);
      out.push(this.parse(rec, body));
    }
    return out;
  }

  private parse(rec: Uint8Array, body: number): SideRecord {
    const dv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    const kind = dv.getUint16(8, true);
    const idLen = dv.getUint16(10, true);
    const dirLen = dv.getUint32(12, true);
    const step = dv.getUint32(16, true);
    if (idLen > SIDE_MAX_ID_BYTES) this.fail(`job id of ${idLen} bytes is out of bounds`);
    if (dirLen > SIDE_MAX_PATH_BYTES) this.fail(`run folder path of ${dirLen} bytes is out of bounds`);
    if (SIDE_BODY_HEADER_BYTES + idLen + dirLen > body) this.fail(`strings (${idLen} + ${dirLen} bytes) overrun the ${body}-byte record`);
    let o = SIDE_PREFIX_BYTES + SIDE_BODY_HEADER_BYTES;
    let jobId: string;
    let runDir: string;
    try {
      jobId = utf8Decoder.decode(rec.subarray(o, o + idLen));
      runDir = utf8Decoder.decode(rec.subarray(o + idLen, o + idLen + dirLen));
    } catch {
      this.fail('a string is not valid UTF-8');
    }
    o += idLen + dirLen;
    return { kind, jobId: jobId!, runDir: runDir!, step, bytes: rec.slice(o) };
  }

  private fail(message: string): never {
    this.broken = new SideChannelError(message);
    this.chunks = [];
    this.buffered = 0;
    throw this.broken;
  }

  /** The first n buffered bytes (n ≤ buffered), without consuming them. */
  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (o === n) break;
    }
    return out;
  }

  /** Consumes the first n buffered bytes (n ≤ buffered), as one contiguous array. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let o = 0;
      let i = 0;
      while (o < n) {
        const c = this.chunks[i];
        const k = Math.min(c.length, n - o);
        out.set(c.subarray(0, k), o);
        o += k;
        if (k === c.length) i++;
        else this.chunks[i] = c.subarray(k);
      }
      // One splice, not a shift per chunk: a record that came in many small pieces stays linear.
      this.chunks.splice(0, i);
    }
    this.buffered -= n;
    return out;
  }
}
