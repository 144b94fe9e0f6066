// One worker process: fork() of dist/worker.js with an IPC channel carrying JSON-RPC (vscode-jsonrpc), a binary
// side channel (fd 4, records framed as in src/protocol/worker.ts), its stderr kept as a tail for crash reports,
// and an `exited` event with the exit code or signal.
// No `vscode` import: the process handling is testable under plain Node.
import { fork, type ChildProcess } from 'node:child_process';
import {
  Emitter,
  IPCMessageReader,
  IPCMessageWriter,
  createMessageConnection,
  type Event,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { SIDE_FD, SIDE_FD_ENV, SideChannelDecoder, type SideRecord } from '../../protocol/worker';

/** How a worker process ended. */
export interface WorkerExit {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines of its stderr (at most `stderrTailLines`). */
  stderrTail: string[];
  /** True when the host asked for it (dispose); false for a crash or an unexpected exit. */
  expected: boolean;
  /** Set when the process could not be started at all (e.g. the Node executable does not exist). */
  spawnError?: string;
}

/** A request failed because the worker process ended while it was pending (or before it was sent). */
export class WorkerExitedError extends Error {
  constructor(readonly exit: WorkerExit) {
    super(describeExit(exit));
    this.name = 'WorkerExitedError';
  }
}

/** "The Basin worker (pid 123) was killed by signal SIGKILL." plus the stderr tail, for messages and logs. */
export function describeExit(exit: WorkerExit, opts: { withStderr?: boolean } = {}): string {
  const who = `The Basin worker${exit.pid ? ` (pid ${exit.pid})` : ''}`;
  let s: string;
  if (exit.spawnError) s = `${who} could not be started: ${exit.spawnError}`;
  else if (exit.signal) s = `${who} was killed by signal ${exit.signal}.`;
  else if (exit.code !== null) s = `${who} exited with code ${exit.code}.`;
  else s = `${who} exited.`;
  if (opts.withStderr && exit.stderrTail.length) s += `\nLast lines of its stderr:\n${exit.stderrTail.join('\n')}`;
  return s;
}

export interface WorkerProcessOptions {
  /** dist/worker.js. */
  workerPath: string;
  /** Node executable; default: this process's own runtime (Electron run as Node inside VS Code). */
  nodePath?: string;
  /** Extra environment for the worker. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Each line the worker writes to stdout or stderr. */
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Each record of the binary side channel (statistics frames…). */
  onSideRecord?: (record: SideRecord) => void;
  /** The side channel broke (a malformed record): the rest of its stream is dropped. */
  onSideError?: (message: string) => void;
  /** How many stderr lines to keep for the crash report. Default 50. */
  stderrTailLines?: number;
  /** After SIGTERM on dispose, SIGKILL follows after this many ms. Default 2000. */
  killTimeoutMs?: number;
}

export class WorkerProcess {
  readonly connection: MessageConnection;
  readonly pid: number | undefined;
  /** Resolves once the process has ended and its output is drained. Never rejects. */
  readonly exited: Promise<WorkerExit>;

  private readonly child: ChildProcess;
  private readonly onExitEmitter = new Emitter<WorkerExit>();
  /** Fires once, when the process has ended. */
  readonly onDidExit: Event<WorkerExit> = this.onExitEmitter.event;

  private readonly tail: string[] = [];
  private readonly tailMax: number;
  private readonly killTimeoutMs: number;
  private disposing = false;
  private exitInfo: WorkerExit | undefined;

  constructor(private readonly opts: WorkerProcessOptions) {
    this.tailMax = opts.stderrTailLines ?? 50;
    this.killTimeoutMs = opts.killTimeoutMs ?? 2000;
    this.child = fork(opts.workerPath, [], {
      execPath: opts.nodePath || undefined,
      // Not the extension host's flags (inspector ports, heap flags…).
      execArgv: ['--enable-source-maps'],
      cwd: opts.cwd,
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', BASIN_WORKER: '1', [SIDE_FD_ENV]: String(SIDE_FD), ...opts.env },
      // fd 4: the binary side channel (see src/protocol/worker.ts), its index in this array is SIDE_FD.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe'],
      serialization: 'json',
    });
    this.pid = this.child.pid;

    const drained = Promise.all([
      this.lines(this.child.stdout, 'stdout'),
      this.lines(this.child.stderr, 'stderr'),
      this.side(this.child.stdio[SIDE_FD] as NodeJS.ReadableStream | null | undefined),
    ]);

    let resolveExited!: (e: WorkerExit) => void;
    this.exited = new Promise((r) => (resolveExited = r));
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void => {
      if (this.exitInfo) return;
      this.exitInfo = { pid: this.pid, code, signal, stderrTail: [...this.tail], expected: this.disposing, spawnError };
      resolveExited(this.exitInfo);
      this.onExitEmitter.fire(this.exitInfo);
      this.onExitEmitter.dispose();
      // After the exit is known, so that pending requests fail with WorkerExitedError (see request()).
      this.connection.dispose();
    };
    // On 'exit', wait for stdout/stderr to drain (so the stderr tail is complete), at most 500 ms: a grandchild
    // may hold the pipes open. ('close' is not used: with an IPC channel it does not always come.)
    this.child.on('exit', (code, signal) => {
      let timer: NodeJS.Timeout | undefined;
      void Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 500)))]).then(() => {
        clearTimeout(timer);
        finish(code, signal);
      });
    });
    this.child.on('error', (err) => {
      // Spawning failed (ENOENT…), or a kill/send failed on a live process: only the first ends it.
      if (this.child.pid === undefined || this.child.exitCode !== null) finish(null, null, err.message);
      else this.opts.onOutput?.('stderr', `worker process error: ${err.message}`);
    });

    this.connection = createMessageConnection(new IPCMessageReader(this.child), new IPCMessageWriter(this.child));
    this.connection.listen();
  }

  get isRunning(): boolean {
    return this.exitInfo === undefined;
  }

  /** How the process ended, once it has. */
  get exit(): WorkerExit | undefined {
    return this.exitInfo;
  }

  /**
   * Runs `send` (a request on `connection`) and rejects with WorkerExitedError if the process ends before the
   * reply comes — a crash mid-request never leaves the caller waiting.
   */
  async request<R>(send: (connection: MessageConnection) => Promise<R>): Promise<R> {
    if (this.exitInfo) throw new WorkerExitedError(this.exitInfo);
    const died = this.exited.then((e) => {
      throw new WorkerExitedError(e);
    });
    try {
      return await Promise.race([send(this.connection), died]);
    } catch (e) {
      // The connection rejects pending requests when it is disposed at exit: report the exit instead.
      if (this.exitInfo) throw new WorkerExitedError(this.exitInfo);
      throw e;
    }
  }

  /**
   * Ends the process: closes the channel (the worker exits by itself when it sees that), SIGTERM, then SIGKILL
   * after `killTimeoutMs`. Resolves when it is gone.
   */
  dispose(): Promise<WorkerExit> {
    if (this.exitInfo) return this.exited;
    if (!this.disposing) {
      this.disposing = true;
      try {
        this.connection.dispose();
      } catch {
        /* already closed */
      }
      if (this.child.connected) this.child.disconnect();
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!this.exitInfo) this.child.kill('SIGKILL');
      }, this.killTimeoutMs);
      timer.unref();
      void this.exited.then(() => clearTimeout(timer));
    }
    return this.exited;
  }

  /** Reads the side channel's records; resolves when the stream has ended. */
  private side(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
    if (!stream) return Promise.resolve();
    const decoder = new SideChannelDecoder();
    let broken = false;
    stream.on('data', (chunk: Buffer) => {
      if (broken) return;
      let records: SideRecord[];
      try {
        records = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (e) {
        broken = true;
        this.opts.onSideError?.((e as Error).message);
        return;
      }
      for (const r of records) {
        try {
          this.opts.onSideRecord?.(r);
        } catch (e) {
          this.opts.onOutput?.('stderr', `side channel listener failed: ${(e as Error).message}`);
        }
      }
    });
    return new Promise((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
  }

  /** Splits a stream into lines; resolves when it has ended. */
  private lines(stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr'): Promise<void> {
    if (!stream) return Promise.resolve();
    stream.setEncoding('utf8');
    let partial = '';
    const emit = (line: string): void => {
      if (name === 'stderr') {
        this.tail.push(line);
        if (this.tail.length > this.tailMax) this.tail.splice(0, this.tail.length - this.tailMax);
      }
      this.opts.onOutput?.(name, line);
    };
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split(/\r?\n/);
      partial = parts.pop() ?? '';
      for (const p of parts) emit(p);
      // A pathological line without newlines must not grow without bound.
      if (partial.length > 64 * 1024) {
        emit(partial);
        partial = '';
      }
    });
    return new Promise((resolve) => {
      const end = (): void => {
        if (partial) emit(partial);
        partial = '';
        resolve();
      };
      stream.once('end', end);
      stream.once('close', end);
      stream.once('error', end);
    });
  }
}
