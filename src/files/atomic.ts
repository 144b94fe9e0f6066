// Atomic file writes: the data goes to a temporary file in the destination's own directory (so the final
// rename never crosses a file system), the temporary file is fsync'ed, renamed over the destination, and the
// directory is fsync'ed so the rename itself survives a power cut. A crash or an error at any point before the
// rename leaves the previous file (or no file) at `path`, never a partial one; the temporary file is removed on
// error and abort (a hard crash can leave a `.<name>.<pid>.<random>.tmp` file beside it, never the target).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export type AtomicData = string | Uint8Array | Iterable<Uint8Array | string> | AsyncIterable<Uint8Array | string>;

/** A streaming atomic write: `write()` chunks, then exactly one of `commit()` or `abort()`. */
export interface AtomicWriter {
  /** Final destination. */
  readonly path: string;
  /** The temporary file the bytes go to until commit. */
  readonly tempPath: string;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  write(chunk: Uint8Array | string): Promise<void>;
  /** fsync, rename over `path`, fsync the directory. The writer is closed afterwards. */
  commit(): Promise<void>;
  /** Close and delete the temporary file; `path` is untouched. Safe to call after a failed write or twice. */
  abort(): Promise<void>;
}

function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target).slice(0, 200); // stay under NAME_MAX (255) with the suffix
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** fsync a directory so a rename inside it is durable. Platforms that cannot (Windows) are ignored. */
async function fsyncDir(dir: string): Promise<void> {
  let h: fs.promises.FileHandle | undefined;
  try {
    h = await fs.promises.open(dir, 'r');
    await h.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
  } finally {
    await h?.close().catch(() => undefined);
  }
}

function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already reported what matters */
      }
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Blocks this thread for `ms` (for sync code that must wait a moment: it holds the event loop meanwhile). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Whether a failed rename is worth another try, and after how long: on Windows, replacing a file that another
 * process (an editor, a virus scanner) has open fails with EPERM/EACCES/EBUSY for a moment.
 */
function renameRetryDelay(e: unknown, attempt: number): number | null {
  const code = (e as NodeJS.ErrnoException).code;
  if (process.platform !== 'win32' || attempt >= 10 || !(code === 'EPERM' || code === 'EACCES' || code === 'EBUSY')) return null;
  return 10 * (attempt + 1);
}

/** rename(), retried briefly on Windows (renameRetryDelay). */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.promises.rename(from, to);
      return;
    } catch (e) {
      const delay = renameRetryDelay(e, attempt);
      if (delay === null) throw e;
      await sleep(delay);
    }
  }
}

/** renameSync(), retried briefly on Windows (renameRetryDelay). */
export function renameWithRetrySync(from: string, to: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      fs.renameSync(from, to);
      return;
    } catch (e) {
      const delay = renameRetryDelay(e, attempt);
      if (delay === null) throw e;
      sleepSync(delay);
    }
  }
}

function toBytes(chunk: Uint8Array | string): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
}

class AtomicFileWriter implements AtomicWriter {
  private written = 0;
  private state: 'open' | 'committed' | 'aborted' = 'open';
  private pending: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly handle: fs.promises.FileHandle,
    private readonly mode: number | undefined,
  ) {}

  get bytesWritten(): number {
    return this.written;
  }

  write(chunk: Uint8Array | string): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new Error(`atomic write to ${this.path}: write after ${this.state}`));
    const bytes = toBytes(chunk);
    // Serialize writes so callers that do not await each one still get their bytes in order.
    const p = this.pending.then(async () => {
      let off = 0;
      while (off < bytes.byteLength) {
        const { bytesWritten } = await this.handle.write(bytes, off, bytes.byteLength - off);
        off += bytesWritten;
      }
      this.written += bytes.byteLength;
    });
    this.pending = p.catch(() => undefined);
    return p;
  }

  async commit(): Promise<void> {
    if (this.state !== 'open') throw new Error(`atomic write to ${this.path}: commit after ${this.state}`);
    try {
      await this.pending;
      if (this.mode !== undefined) await this.handle.chmod(this.mode);
      await this.handle.sync();
      await this.handle.close();
      this.state = 'committed';
      await renameWithRetry(this.tempPath, this.path);
    } catch (e) {
      this.state = 'aborted';
      await this.handle.close().catch(() => undefined);
      await fs.promises.rm(this.tempPath, { force: true }).catch(() => undefined);
      throw e;
    }
    await fsyncDir(path.dirname(this.path));
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.pending;
    await this.handle.close().catch(() => undefined);
    await fs.promises.rm(this.tempPath, { force: true });
  }
}

export interface AtomicOptions {
  /** File mode of the new file; default: the mode of the file being replaced, else 0o666 & ~umask. */
  mode?: number;
}

async function existingMode(target: string): Promise<number | undefined> {
  try {
    return (await fs.promises.stat(target)).mode & 0o7777;
  } catch {
    return undefined;
  }
}

/** Opens a streaming atomic write to `target` (its directory must exist). */
export async function openAtomic(target: string, options: AtomicOptions = {}): Promise<AtomicWriter> {
  const abs = path.resolve(target);
  const tmp = tempPathFor(abs);
  const mode = options.mode ?? (await existingMode(abs));
  const handle = await fs.promises.open(tmp, 'wx');
  return new AtomicFileWriter(abs, tmp, handle, mode);
}

/**
 * Writes `data` (a string, bytes, or a sync/async iterable of chunks, consumed one at a time) to `target`
 * atomically. If the data source throws, the temporary file is removed and the error rethrown.
 */
export async function writeFileAtomic(target: string, data: AtomicData, options: AtomicOptions = {}): Promise<void> {
  const w = await openAtomic(target, options);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      await w.write(data);
    } else if (Symbol.asyncIterator in data) {
      for await (const chunk of data as AsyncIterable<Uint8Array | string>) await w.write(chunk);
    } else {
      for (const chunk of data as Iterable<Uint8Array | string>) await w.write(chunk);
    }
  } catch (e) {
    await w.abort().catch(() => undefined);
    throw e;
  }
  await w.commit();
}

/**
 * Synchronous variant for small files that must land before the process exits (a final run.json from an
 * exit handler). Same guarantees as writeFileAtomic.
 */
export function writeFileAtomicSync(target: string, data: string | Uint8Array, options: AtomicOptions = {}): void {
  const abs = path.resolve(target);
  const tmp = tempPathFor(abs);
  let mode = options.mode;
  if (mode === undefined) {
    try {
      mode = fs.statSync(abs).mode & 0o7777;
    } catch {
      mode = undefined;
    }
  }
  const fd = fs.openSync(tmp, 'wx');
  try {
    const bytes = toBytes(data);
    let off = 0;
    while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
    if (mode !== undefined) fs.fchmodSync(fd, mode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* may be closed already */
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    fs.renameSync(tmp, abs);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDirSync(path.dirname(abs));
}

/**
 * Removes the temporary files a killed writer left in `dir` (`.<name>.<pid>.<hex>.tmp`, see tempPathFor) whose
 * process is gone. Never touches anything else. Returns the names removed.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    await fs.promises.rm(path.join(dir, n), { force: true });
    removed.push(n);
  }
  return removed;
}

/** Whether a process of this machine runs (EPERM: it does, as another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
