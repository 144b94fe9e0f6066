// The workspace's run folders, as the Runs view and the config code lenses see them.
//
// Finds `run.json` files with the `basin.runs.include` glob (default `**/runs/*/run.json`, node_modules excluded),
// reads each record with the engine's run-record reader (pure TS: node:fs only) and keeps them current from
// FileSystemWatchers on run.json, metrics.jsonl, checkpoints/ and stats/ (debounced: a training job appends
// metrics many times a second). Nothing here touches the GPU or loads a model: checkpoints are listed from the
// folder, tensors later from the safetensors header only (see runs-tree.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  CHECKPOINTS_DIR,
  METRICS_FILE,
  RUN_FILE,
  STATS_DIR,
  openRun,
  writerState,
  type MetricsSnapshot,
  type RunRecord,
} from '../../files/run-record';

export const DEFAULT_RUNS_INCLUDE = '**/runs/*/run.json';
const EXCLUDE = '**/node_modules/**';
const MAX_RUNS = 5000;
/** Interval of the mtime poll that backs up the file watchers. */
const POLL_MS = 2000;
/** Debounce of watcher events. */
const DEBOUNCE_MS = 300;

export interface CheckpointInfo {
  step: number;
  /** Absolute path of the weights file. */
  file: string;
  /** Absolute path of the optimizer state, when there is one. */
  optimizerFile?: string;
  /** Absolute path of `stats/step-<n>.safetensors`, when it exists. */
  statsFile?: string;
  time?: string;
  valMetric?: number;
  /** In run.json (false: a complete file on disk that a crash kept out of the record). */
  recorded: boolean;
  /** The file exists. */
  exists: boolean;
}

export interface RunInfo {
  /** Absolute run folder. */
  dir: string;
  /** run.json, absolute. */
  runJson: string;
  /** Undefined when run.json cannot be read (see `error`). */
  record?: RunRecord;
  error?: string;
  /** The last metrics row: metrics.jsonl's last line, or run.json's lastMetrics when newer. */
  lastMetrics: MetricsSnapshot | null;
  /** By step, ascending. */
  checkpoints: CheckpointInfo[];
  /** Status 'running' but its process (on this host) is gone: a crash or a kill. */
  interrupted: boolean;
  /** Display name: the folder's name (`<run name>-<yyyymmdd-hhmmss>`, unique where the run name is not). */
  name: string;
}

/**
 * Whether a run has nothing left to train: it completed, or its latest checkpoint is at its last step (a run that
 * failed or was cancelled after writing the final checkpoint). Resume is never offered for it: resuming would run
 * no step and record "no metrics" over the run's real ones.
 */
export function isFinishedRun(record: Pick<RunRecord, 'status' | 'config'> | undefined, latestCheckpointStep: number | undefined): boolean {
  if (!record) return false;
  if (record.status === 'completed') return true;
  const total = (record.config as { train?: { steps?: unknown } } | null)?.train?.steps;
  return typeof total === 'number' && latestCheckpointStep !== undefined && latestCheckpointStep >= total;
}

/** A RunInfo's latest checkpoint that exists on disk, if any. */
export function latestExistingCheckpoint(info: RunInfo): CheckpointInfo | undefined {
  const on = info.checkpoints.filter((c) => c.exists);
  return on.length ? on[on.length - 1] : undefined;
}

/** Normalized path for comparisons (case-insensitive file systems on Windows and macOS are not guessed). */
export function samePath(a: string, b: string): boolean {
  const na = path.resolve(a);
  const nb = path.resolve(b);
  return process.platform === 'win32' ? na.toLowerCase() === nb.toLowerCase() : na === nb;
}

/** Whether the process that writes this run is alive on this machine (false: not running, or elsewhere). */
export function writerAlive(record: RunRecord | undefined): boolean {
  return !!record && record.status === 'running' && writerState(record.process) === 'alive';
}

/** The last complete JSON line of a file, reading at most the last 64 KiB. */
async function lastJsonLine(file: string): Promise<Record<string, unknown> | null> {
  let h: fs.promises.FileHandle;
  try {
    h = await fs.promises.open(file, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await h.stat();
    if (size === 0) return null;
    const n = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(n);
    const { bytesRead } = await h.read(buf, 0, n, size - n);
    const lines = buf.subarray(0, bytesRead).toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i].trim();
      if (!line) continue;
      try {
        const v = JSON.parse(line) as unknown;
        if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
      } catch {
        /* a torn last line (being appended) or a cut first line: try the one before */
      }
    }
    return null;
  } finally {
    await h.close().catch(() => undefined);
  }
}

async function readDirNames(dir: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch {
    return [];
  }
}

/** Reads one run folder. Never throws: an unreadable run.json gives a RunInfo with `error`. */
export async function readRun(dir: string): Promise<RunInfo> {
  const runJson = path.join(dir, RUN_FILE);
  const base: RunInfo = { dir, runJson, lastMetrics: null, checkpoints: [], interrupted: false, name: path.basename(dir) };
  let record: RunRecord;
  try {
    record = { ...(await openRun(dir)).record } as RunRecord;
  } catch (e) {
    return { ...base, error: (e as Error).message };
  }
  const [ckptNames, statNames, tail] = await Promise.all([
    readDirNames(path.join(dir, CHECKPOINTS_DIR)),
    readDirNames(path.join(dir, STATS_DIR)),
    lastJsonLine(path.join(dir, METRICS_FILE)),
  ]);
  const onDisk = new Set(ckptNames);
  const stats = new Set(statNames);
  const byStep = new Map<number, CheckpointInfo>();
  for (const c of record.checkpoints) {
    const file = path.resolve(dir, c.path);
    const rel = path.relative(path.join(dir, CHECKPOINTS_DIR), file);
    const exists = !rel.startsWith('..') && !rel.includes(path.sep) ? onDisk.has(rel) : fs.existsSync(file);
    byStep.set(c.step, {
      step: c.step,
      file,
      optimizerFile: c.optimizerPath ? path.resolve(dir, c.optimizerPath) : undefined,
      time: c.time,
      valMetric: c.valMetric,
      recorded: true,
      exists,
    });
  }
  for (const f of ckptNames) {
    const m = /^step-(\d+)\.safetensors$/.exec(f);
    if (!m || byStep.has(Number(m[1]))) continue;
    const step = Number(m[1]);
    const opt = `step-${step}.opt.safetensors`;
    byStep.set(step, {
      step,
      file: path.join(dir, CHECKPOINTS_DIR, f),
      optimizerFile: onDisk.has(opt) ? path.join(dir, CHECKPOINTS_DIR, opt) : undefined,
      recorded: false,
      exists: true,
    });
  }
  const checkpoints = [...byStep.values()].sort((a, b) => a.step - b.step);
  for (const c of checkpoints) {
    const s = `step-${c.step}.safetensors`;
    if (stats.has(s)) c.statsFile = path.join(dir, STATS_DIR, s);
  }
  let lastMetrics: MetricsSnapshot | null = record.lastMetrics;
  if (tail && typeof tail.step === 'number' && (lastMetrics?.step === undefined || tail.step >= lastMetrics.step)) {
    lastMetrics = tail as MetricsSnapshot;
  }
  const interrupted = record.status === 'running' && writerState(record.process) === 'dead';
  return { ...base, record, lastMetrics, checkpoints, interrupted };
}

/** The run folder an event's file belongs to: `<run>/run.json`, `<run>/metrics.jsonl`, `<run>/checkpoints/x`… */
function runDirOf(file: string): string {
  const parent = path.dirname(file);
  const name = path.basename(parent);
  return name === CHECKPOINTS_DIR || name === STATS_DIR ? path.dirname(parent) : parent;
}

export class RunIndex implements vscode.Disposable {
  private readonly runs = new Map<string, RunInfo>();
  private scanned: Promise<void> | undefined;
  private watchers: vscode.Disposable[] = [];
  private readonly subscriptions: vscode.Disposable[] = [];
  private rescanTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly dirty = new Set<string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  /** Per run: the mtimes the poll last saw (run.json, metrics, checkpoints/, stats/). */
  private readonly seen = new Map<string, string>();
  private readonly emitter = new vscode.EventEmitter<RunInfo[] | undefined>();
  /** Runs changed: the changed runs, or undefined when the list itself may have changed. */
  readonly onDidChange = this.emitter.event;

  constructor(private readonly log?: vscode.LogOutputChannel) {
    this.subscriptions.push(
      this.emitter,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('basin.runs.include')) {
          this.createWatchers();
          void this.rescan();
        }
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        this.createWatchers();
        void this.rescan();
      }),
    );
  }

  /** The include glob (`basin.runs.include`). */
  get include(): string {
    return vscode.workspace.getConfiguration('basin').get<string>('runs.include')?.trim() || DEFAULT_RUNS_INCLUDE;
  }

  /** Every run, newest first (after the first scan; `ready()` waits for it). */
  list(): RunInfo[] {
    return [...this.runs.values()].sort((a, b) => (b.record?.createdAt ?? '').localeCompare(a.record?.createdAt ?? '') || a.dir.localeCompare(b.dir));
  }

  get(dir: string): RunInfo | undefined {
    return this.runs.get(path.resolve(dir));
  }

  /** Scans once (the first caller starts it) and starts the watchers. */
  ready(): Promise<void> {
    if (!this.scanned) {
      this.createWatchers();
      this.scanned = this.scan();
      this.startPoll();
    }
    return this.scanned;
  }

  /** Runs made from this config file, newest first. */
  async runsOfConfig(configFile: string): Promise<RunInfo[]> {
    await this.ready();
    return this.list().filter((r) => r.record?.configPath && samePath(r.record.configPath, configFile));
  }

  /** Finds the run folders again and re-reads every run. */
  async rescan(): Promise<void> {
    if (!this.scanned) return this.ready();
    this.scanned = this.scan();
    return this.scanned;
  }

  /** Re-reads one run (after a command changed it) and tells the listeners. */
  async refreshRun(dir: string): Promise<RunInfo | undefined> {
    const abs = path.resolve(dir);
    if (!fs.existsSync(path.join(abs, RUN_FILE))) {
      if (this.runs.delete(abs)) this.emitter.fire(undefined);
      return undefined;
    }
    const known = this.runs.has(abs);
    const info = await readRun(abs);
    this.runs.set(abs, info);
    this.emitter.fire(known ? [info] : undefined);
    return info;
  }

  private async scan(): Promise<void> {
    const t0 = Date.now();
    let uris: vscode.Uri[] = [];
    if (vscode.workspace.workspaceFolders?.length) {
      try {
        uris = await vscode.workspace.findFiles(this.include, EXCLUDE, MAX_RUNS);
      } catch (e) {
        this.log?.warn(`Runs: cannot search for ${this.include}: ${(e as Error).message}`);
      }
    }
    const dirs = uris.filter((u) => u.scheme === 'file' && path.basename(u.fsPath) === RUN_FILE).map((u) => path.dirname(u.fsPath));
    const infos = await Promise.all(dirs.map((d) => readRun(d)));
    this.runs.clear();
    for (const info of infos) this.runs.set(path.resolve(info.dir), info);
    this.log?.debug(`Runs: ${infos.length} run folder(s) matching ${this.include} in ${Date.now() - t0} ms`);
    // The Runs view's welcome content ("no runs yet") waits for this, so it does not flash while scanning.
    void vscode.commands.executeCommand('setContext', 'basin.runsScanned', true);
    this.emitter.fire(undefined);
  }

  private createWatchers(): void {
    for (const w of this.watchers.splice(0)) w.dispose();
    const include = this.include;
    // `**/runs/*/run.json` → the run folder glob `**/runs/*`, and the files a job writes inside it.
    const m = /^(.*)\/run\.json$/.exec(include);
    const onRunJson = (uri: vscode.Uri): void => {
      if (this.runs.has(path.dirname(uri.fsPath))) this.markDirty(path.dirname(uri.fsPath));
      else this.scheduleRescan();
    };
    const onRunFile = (uri: vscode.Uri): void => {
      const dir = runDirOf(uri.fsPath);
      if (this.runs.has(dir)) this.markDirty(dir);
    };
    const watch = (glob: string, handler: (u: vscode.Uri) => void, events: { create?: boolean; change?: boolean; delete?: boolean } = {}): void => {
      const w = vscode.workspace.createFileSystemWatcher(glob, events.create === false, events.change === false, events.delete === false);
      w.onDidCreate(handler);
      w.onDidChange(handler);
      w.onDidDelete(handler);
      this.watchers.push(w);
    };
    watch(include, onRunJson);
    if (m) {
      const runGlob = m[1];
      watch(`${runGlob}/{${METRICS_FILE},${CHECKPOINTS_DIR}/*.safetensors,${STATS_DIR}/*.safetensors}`, onRunFile);
      // A whole run folder deleted (the delete of its run.json is not always reported on its own).
      watch(runGlob, (uri) => {
        if (this.runs.has(uri.fsPath)) this.scheduleRescan();
      }, { create: false, change: false });
    }
  }

  /**
   * File watchers can miss events (a watcher still starting on a busy machine, network or container file
   * systems), so every POLL_MS the index also compares the mtimes of each known run's files and folders: a few
   * stat calls per run, and a run is re-read only when one changed.
   */
  private startPoll(): void {
    const tick = async (): Promise<void> => {
      for (const dir of this.runs.keys()) {
        const stamp = (await Promise.all([RUN_FILE, METRICS_FILE, CHECKPOINTS_DIR, STATS_DIR].map((f) =>
          fs.promises.stat(path.join(dir, f)).then((st) => st.mtimeMs, () => 0)))).join(',');
        const prev = this.seen.get(dir);
        this.seen.set(dir, stamp);
        // A run seen for the first time is re-read once: it may have changed between its read and this stamp.
        if (prev !== stamp) this.markDirty(dir);
      }
      for (const dir of this.seen.keys()) if (!this.runs.has(dir)) this.seen.delete(dir);
    };
    const loop = (): void => {
      if (this.disposed) return;
      this.pollTimer = setTimeout(() => void tick().finally(loop), POLL_MS);
      this.pollTimer.unref?.();
    };
    loop();
  }

  private markDirty(dir: string): void {
    this.dirty.add(dir);
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      const dirs = [...this.dirty];
      this.dirty.clear();
      void (async () => {
        const changed: RunInfo[] = [];
        let listChanged = false;
        for (const d of dirs) {
          if (!fs.existsSync(path.join(d, RUN_FILE))) {
            listChanged = this.runs.delete(d) || listChanged;
            continue;
          }
          const info = await readRun(d);
          this.runs.set(d, info);
          changed.push(info);
        }
        if (listChanged) this.emitter.fire(undefined);
        else if (changed.length) this.emitter.fire(changed);
      })();
    }, DEBOUNCE_MS);
  }

  private scheduleRescan(): void {
    clearTimeout(this.rescanTimer);
    this.rescanTimer = setTimeout(() => {
      this.rescanTimer = undefined;
      void this.rescan();
    }, DEBOUNCE_MS);
  }

  dispose(): void {
    clearTimeout(this.rescanTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.pollTimer);
    this.disposed = true;
    for (const d of [...this.watchers.splice(0), ...this.subscriptions.splice(0)]) d.dispose();
  }
}
