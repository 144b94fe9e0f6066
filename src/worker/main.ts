// The worker process: forked by the extension host (src/host/jobs/worker-process.ts), it owns the GPU
// (dawn.node) and onnxruntime-node, and serves src/protocol/worker.ts over the IPC channel with JSON-RPC.
// Native code loads here only, so a native crash takes this process down, never the extension host.
import { ResponseError, createMessageConnection, type MessageConnection } from 'vscode-jsonrpc/node';
import { IPCMessageReader, IPCMessageWriter } from 'vscode-jsonrpc/node';
import { GpuDevice } from '../engine/gpu/device';
import {
  GpuInfoRequest,
  HelloRequest,
  JobProgressNotification,
  LogNotification,
  PROTOCOL_VERSION,
  RunJobRequest,
  SideRecordKind,
  WarmRequest,
  WorkerErrorCodes,
  type LogLevel,
  type RunJobParams,
  type RunJobResult,
  type WorkerErrorData,
} from '../protocol/worker';
import { InvalidJobParamsError, JobCancelledError, handlerFor, type JobContext } from './jobs';
import type { JobKind } from '../protocol/worker';
import { SideChannelWriter } from './side-channel';
import { warmUp } from './jobs/warm';

/** The one GPU device of this process, made on first use and kept (a second Dawn instance costs memory). */
let gpuPromise: Promise<GpuDevice> | null = null;

export function getGpu(): Promise<GpuDevice> {
  if (!gpuPromise) {
    const p = GpuDevice.create();
    gpuPromise = p;
    // A failure (no adapter) is not cached: a driver installed later is found by the next request.
    p.catch(() => {
      if (gpuPromise === p) gpuPromise = null;
    });
  }
  return gpuPromise.then((gpu) => {
    if (gpu.isLost) {
      gpuPromise = null;
      return getGpu();
    }
    return gpu;
  });
}

/** Errors (by class name) that mean the request cannot work: a bad config, a run folder or checkpoint that is not there. */
const PARAMS_ERRORS = ['ConfigError', 'RunRecordError', 'CheckpointNotFoundError', 'CheckpointMismatchError'];

/** Maps any thrown value to a JSON-RPC error reply that keeps the message (e.g. NoAdapterError's driver advice). */
export function toResponseError(e: unknown): ResponseError<WorkerErrorData> {
  if (e instanceof ResponseError) return e as ResponseError<WorkerErrorData>;
  const err = e instanceof Error ? e : new Error(String(e));
  const code =
    err instanceof JobCancelledError ? WorkerErrorCodes.Cancelled
    // A config that does not validate (its message is `<file>:<line>:<col>: <field>: <problem>` lines), a run
    // folder that cannot be resumed, parameters that make no sense.
    : err instanceof InvalidJobParamsError || PARAMS_ERRORS.includes(err.name) ? WorkerErrorCodes.InvalidParams
    : err.name === 'NoAdapterError' ? WorkerErrorCodes.NoAdapter
    : err.name === 'DeviceLostError' ? WorkerErrorCodes.DeviceLost
    : WorkerErrorCodes.Failed;
  return new ResponseError<WorkerErrorData>(code, err.message, { name: err.name });
}

function serve(connection: MessageConnection): void {
  const log = (level: LogLevel, message: string): void => {
    void connection.sendNotification(LogNotification, { level, message }).catch(() => undefined);
  };
  const side = SideChannelWriter.fromEnv((m) => log('warn', m));

  connection.onRequest(HelloRequest, () => ({
    protocolVersion: PROTOCOL_VERSION,
    pid: process.pid,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
  }));

  connection.onRequest(GpuInfoRequest, async () => {
    try {
      return (await getGpu()).info;
    } catch (e) {
      return toResponseError(e);
    }
  });

  connection.onRequest(WarmRequest, async (params, token) => {
    try {
      return await warmUp(params, token, getGpu, (m) => log('info', m));
    } catch (e) {
      log('warn', `warm-up failed: ${(e as Error)?.message ?? String(e)}`);
      return toResponseError(e);
    }
  });

  connection.onRequest(RunJobRequest, async (req: RunJobParams, token): Promise<RunJobResult | ResponseError<WorkerErrorData>> => {
    const t0 = performance.now();
    const handler = handlerFor(req.kind);
    if (!handler) {
      return new ResponseError<WorkerErrorData>(WorkerErrorCodes.InvalidParams, `Unknown job kind ${JSON.stringify(req.kind)}.`, { name: 'Error' });
    }
    const ctx: JobContext<JobKind> = {
      jobId: req.jobId,
      token,
      throwIfCancelled() {
        if (token.isCancellationRequested) throw new JobCancelledError(req.jobId);
      },
      progress(data, opts) {
        void connection
          .sendNotification(JobProgressNotification, { jobId: req.jobId, kind: req.kind, data, ...opts })
          .catch(() => undefined);
      },
      log,
      gpu: getGpu,
      sendBinary: (kind, runDir, step, bytes) => side.send(kind, req.jobId, runDir, step, bytes),
    };
    // Written before the reply: the host waits for it, so the job's side-channel records all arrive first.
    const sideEnd = (): void => void side.send(SideRecordKind.JobEnd, req.jobId, '', 0, new Uint8Array(0));
    try {
      const result = await handler(req.params, ctx);
      sideEnd();
      return { jobId: req.jobId, kind: req.kind, result, elapsedMs: performance.now() - t0 };
    } catch (e) {
      sideEnd();
      if (!(e instanceof JobCancelledError)) {
        const err = e as Error;
        // Expected failures (bad config, non-finite loss) need no stack.
        const plain = err instanceof InvalidJobParamsError || [...PARAMS_ERRORS, 'NonFiniteError'].includes(err?.name);
        log('error', `job ${req.jobId} (${req.kind}) failed: ${plain ? err.message : (err?.stack ?? String(e))}`);
      }
      return toResponseError(e);
    }
  });
}

function main(): void {
  if (typeof process.send !== 'function') {
    process.stderr.write('basin worker: no IPC channel; this process is started by the Basin extension (fork with an IPC channel).\n');
    process.exit(2);
  }
  const connection = createMessageConnection(new IPCMessageReader(process), new IPCMessageWriter(process));
  serve(connection);
  // The host went away (closed the channel, or died): there is nobody left to work for.
  connection.onClose(() => process.exit(0));
  process.on('disconnect', () => process.exit(0));
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`basin worker: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`);
  });
  connection.listen();
}

main();
