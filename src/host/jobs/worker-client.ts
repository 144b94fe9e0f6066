// The host's handle on the worker: starts a worker process on the first request (never at activation), starts
// a fresh one for the next request after a crash, and runs jobs with progress and cancellation.
// No `vscode` import (cancellation tokens are structurally compatible with vscode's).
import { Emitter, type CancellationToken, type Event } from 'vscode-jsonrpc/node';
import {
  GpuInfoRequest,
  HelloRequest,
  JobProgressNotification,
  LogNotification,
  PROTOCOL_VERSION,
  RunJobRequest,
  WarmRequest,
  type WarmResult,
  type GpuInfo,
  type HelloResult,
  type JobKind,
  type JobParams,
  type JobProgress,
  type JobResult,
  type LogLevel,
  type RunJobResult,
  SideRecordKind,
  type SideRecord,
} from '../../protocol/worker';
import { WorkerProcess, type WorkerExit } from './worker-process';

/** How long a finished job waits for its side channel's JobEnd record (normally well under a millisecond). */
const SIDE_END_WAIT_MS = 1000;

export interface WorkerClientOptions {
  workerPath: string;
  /** Read at each start, so a changed setting applies to the next worker. */
  nodePath?: () => string | undefined;
  env?: Record<string, string | undefined>;
  cwd?: string;
  log: (level: LogLevel, message: string) => void;
  /** For the first request of a fresh worker (hello). Default 30 s. */
  startTimeoutMs?: number;
}

export interface RunJobOptions<K extends JobKind> {
  token?: CancellationToken;
  /** The job's id (progress notifications and side-channel records carry it); default: a fresh one. Must be unique. */
  jobId?: string;
  onProgress?: (p: JobProgress<K>) => void;
}

export class WorkerClient {
  private current: WorkerProcess | undefined;
  private starting: Promise<WorkerProcess> | undefined;
  private disposed = false;
  private nextJob = 1;
  private readonly progressListeners = new Map<string, (p: JobProgress) => void>();
  /** Jobs waiting for their side channel's JobEnd record. */
  private readonly sideEndWaiters = new Map<string, () => void>();

  private readonly onExitEmitter = new Emitter<WorkerExit>();
  /** Every end of a worker process, expected (dispose/restart) or not (crash: `expected` is false). */
  readonly onDidExit: Event<WorkerExit> = this.onExitEmitter.event;
  private readonly onSideRecordEmitter = new Emitter<SideRecord>();
  /** Each record of any worker's binary side channel (statistics frames of training jobs…). */
  readonly onSideRecord: Event<SideRecord> = this.onSideRecordEmitter.event;
  private readonly onStartEmitter = new Emitter<HelloResult>();
  /** A fresh worker answered its hello. */
  readonly onDidStart: Event<HelloResult> = this.onStartEmitter.event;

  constructor(private readonly opts: WorkerClientOptions) {}

  /** The pid of the live worker, if one is running. */
  get pid(): number | undefined {
    return this.current?.isRunning ? this.current.pid : undefined;
  }

  async gpuInfo(token?: CancellationToken): Promise<GpuInfo> {
    const w = await this.worker();
    return w.request((c) => c.sendRequest(GpuInfoRequest, token));
  }

  /** Compiles a config's kernels ahead in the worker (starting it if needed); see WarmRequest. */
  async warm(configPath: string, token?: CancellationToken): Promise<WarmResult> {
    const w = await this.worker();
    return w.request((c) => c.sendRequest(WarmRequest, { configPath }, token));
  }

  /** Runs a job in the worker to its end; cancel it with `token`. */
  async runJob<K extends JobKind>(kind: K, params: JobParams<K>, opts: RunJobOptions<K> = {}): Promise<RunJobResult<K>> {
    const w = await this.worker();
    const jobId = opts.jobId ?? `${kind}-${process.pid}-${this.nextJob++}`;
    if (opts.onProgress) this.progressListeners.set(jobId, opts.onProgress as (p: JobProgress) => void);
    let sideEndSeen!: () => void;
    const sideEnd = new Promise<void>((r) => (sideEndSeen = r));
    this.sideEndWaiters.set(jobId, sideEndSeen);
    // Once the reply (or an error reply) came: wait for the job's last side-channel record, at most a short cap.
    const drainSide = async (): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([sideEnd, new Promise((r) => (timer = setTimeout(r, SIDE_END_WAIT_MS))), w.exited]);
      clearTimeout(timer);
    };
    try {
      const r = await w.request((c) => c.sendRequest(RunJobRequest, { jobId, kind, params }, opts.token));
      await drainSide();
      return r as RunJobResult<K>;
    } catch (e) {
      // A worker that died has delivered what it wrote already (its exit waits for the pipes to drain).
      if (w.isRunning) await drainSide();
      throw e;
    } finally {
      this.progressListeners.delete(jobId);
      this.sideEndWaiters.delete(jobId);
    }
  }

  /** Convenience: the job's result only. */
  async job<K extends JobKind>(kind: K, params: JobParams<K>, opts: RunJobOptions<K> = {}): Promise<JobResult<K>> {
    return (await this.runJob(kind, params, opts)).result;
  }

  /** Ends the current worker (if any); the next request starts a fresh one. */
  async stop(): Promise<void> {
    const w = this.current ?? (await this.starting?.catch(() => undefined));
    this.current = undefined;
    if (w) await w.dispose();
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.stop();
    this.onExitEmitter.dispose();
    this.onStartEmitter.dispose();
    this.onSideRecordEmitter.dispose();
  }

  /** The live worker, started (and greeted) on first use or after the previous one ended. */
  private worker(): Promise<WorkerProcess> {
    if (this.disposed) return Promise.reject(new Error('The Basin worker client was disposed.'));
    if (this.current?.isRunning) return Promise.resolve(this.current);
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = undefined;
      });
    }
    return this.starting;
  }

  private async start(): Promise<WorkerProcess> {
    const t0 = Date.now();
    const nodePath = this.opts.nodePath?.() || undefined;
    const w = new WorkerProcess({
      workerPath: this.opts.workerPath,
      nodePath,
      env: this.opts.env,
      cwd: this.opts.cwd,
      onOutput: (stream, line) => this.opts.log(stream === 'stderr' ? 'warn' : 'info', `[worker ${stream}] ${line}`),
      onSideRecord: (r) => {
        if (r.kind === SideRecordKind.JobEnd) this.sideEndWaiters.get(r.jobId)?.();
        else this.onSideRecordEmitter.fire(r);
      },
      onSideError: (m) => this.opts.log('error', `${m}; binary records (statistics) from this worker are dropped until it restarts`),
    });
    this.opts.log('info', `starting the worker${nodePath ? ` with ${nodePath}` : ''} (pid ${w.pid ?? '?'})`);
    w.connection.onNotification(JobProgressNotification, (p) => this.progressListeners.get(p.jobId)?.(p));
    w.connection.onNotification(LogNotification, (p) => this.opts.log(p.level, `[worker] ${p.message}`));
    w.onDidExit((exit) => {
      if (this.current === w) this.current = undefined;
      this.onExitEmitter.fire(exit);
    });

    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const hello = await Promise.race([
        w.request((c) => c.sendRequest(HelloRequest)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`The Basin worker did not answer within ${timeoutMs / 1000} s of starting.`)), timeoutMs);
        }),
      ]);
      if (hello.protocolVersion !== PROTOCOL_VERSION) {
        throw new Error(`The Basin worker speaks protocol ${hello.protocolVersion}, the extension ${PROTOCOL_VERSION}: rebuild (npm run build).`);
      }
      this.opts.log('info', `worker ready: pid ${hello.pid}, Node ${hello.node} ${hello.platform}-${hello.arch}, ${Date.now() - t0} ms`);
      if (this.disposed) throw new Error('The Basin worker client was disposed.');
      this.current = w;
      this.onStartEmitter.fire(hello);
      return w;
    } catch (e) {
      void w.dispose();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}
