// A run folder: everything one training job leaves behind, self-describing and resumable.
//
//   <output>/<name>-<yyyymmdd-hhmmss>/          (local time; "-2", "-3"… appended if taken)
//     run.json                                   the record below, rewritten atomically on every update
//     metrics.jsonl                              append-only, one JSON object per logged step {step, time, loss, lr, gradNorm, …}
//     checkpoints/step-<n>.safetensors           weights at step n
//     checkpoints/step-<n>.opt.safetensors       optimizer state at step n
//     stats/step-<n>.safetensors                 training statistics (tensor names = weight names)
//
// Paths inside run.json, and those checkpointPath()/optimizerStatePath()/statsPath() return, are relative to the
// run folder (POSIX separators), so the folder can be moved or copied as a whole: join them with `run.dir` (or
// use `run.resolve()`). runJsonPath, metricsPath, checkpointsDir and statsDir are absolute.
// Checkpoint files are written atomically BEFORE they are recorded, so every recorded checkpoint is complete;
// a checkpoint file on disk that a crash kept out of run.json is complete too, and `latestCheckpoint()` finds it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { pidAlive, writeFileAtomic, writeFileAtomicSync } from './atomic';
import { AdapterModelError, checkpointAdapters } from './adapter-checkpoint';

export const RUN_RECORD_VERSION = 1;
export const RUN_FILE = 'run.json';
export const METRICS_FILE = 'metrics.jsonl';
export const CHECKPOINTS_DIR = 'checkpoints';
export const STATS_DIR = 'stats';

/**
 * A LoRA run (train.lora) writes beside each checkpoint `step-N.safetensors` (base weights + adapters, what resume
 * loads) the model-shaped `step-N.merged.safetensors` (adapters folded into the weights): the file a consumer of
 * the MODEL (eval, init.from, merge, prune) should read. `modelWeightsFile()` picks it when it exists.
 */
export function mergedCheckpointPath(weightsFile: string): string {
  return weightsFile.replace(/\.safetensors$/, '.merged.safetensors');
}

/**
 * The file holding a checkpoint's model weights: its merged twin when there is one (LoRA), else the file itself.
 * An adapter run's checkpoint (train.adapters) holds no plain model (its adapters cannot be folded into the weights):
 * AdapterModelError naming the run, unless the caller builds the model with its adapters (`withAdapters`).
 */
export function modelWeightsFile(weightsFile: string, opts: { withAdapters?: boolean } = {}): string {
  const merged = mergedCheckpointPath(weightsFile);
  if (merged !== weightsFile && fs.existsSync(merged)) return merged;
  const adapters = opts.withAdapters ? null : checkpointAdapters(weightsFile);
  if (adapters) {
    const runDir = path.dirname(path.dirname(path.resolve(weightsFile)));
    throw new AdapterModelError(weightsFile, fs.existsSync(path.join(runDir, RUN_FILE)) ? runDir : null, adapters);
  }
  return weightsFile;
}

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled';

/**
 * What made the run folder: 'train' for training runs. Jobs of other kinds that leave a run folder (merge, prune,
 * export: each comes with its own issue) record their own name. Files written before the field existed are
 * training runs, so a reader takes a missing `kind` as 'train'; an unknown name (a newer Basin's) is kept as is.
 */
export type RunKind = 'train' | (string & {});
export const DEFAULT_RUN_KIND = 'train';
const STATUSES: readonly RunStatus[] = ['running', 'completed', 'failed', 'cancelled'];

export interface CheckpointEntry {
  step: number;
  /** Weights, relative to the run folder: checkpoints/step-<n>.safetensors. */
  path: string;
  /** Optimizer state, relative to the run folder, when saved. */
  optimizerPath?: string;
  /** ISO time the checkpoint was recorded. */
  time: string;
  /** Validation metric at this step (the trainer's main one), when evaluated. */
  valMetric?: number;
  /** Any metrics to keep with the checkpoint (e.g. every validation metric). */
  metrics?: Record<string, number>;
}

/** What addCheckpoint takes: the step, and optionally the rest (paths default to the standard names). */
export interface CheckpointInput {
  step: number;
  /** Run-relative weights path; default checkpointPath(step). */
  path?: string;
  /** Run-relative optimizer-state path; default optimizerStatePath(step) when that file exists. */
  optimizerPath?: string;
  /** Unix ms or ISO string; default now. */
  time?: number | string;
  valMetric?: number;
  metrics?: Record<string, number>;
}

export interface RunLineage {
  /** Run folder (absolute, or relative to the output folder) this run continues or fine-tunes. */
  parentRun?: string;
  /** The checkpoint file it started from. */
  parentCheckpoint?: string;
  /** Which slice of the data this run saw (continual training), e.g. {from, to} timestamps or row ranges. */
  dataWindow?: Record<string, unknown>;
  /** How it relates to the parent: a fine-tune starts from its weights with a fresh optimizer (`init.from`). */
  relation?: 'fine-tune' | 'continue';
  /** Fine-tunes: the base model's validation metrics (evaluated once before the first step, as `val_*`). */
  baseMetrics?: Record<string, number>;
}

/** What ran it; the GPU layer's adapter info goes here. */
export interface RunDevice {
  vendor?: string;
  description?: string;
  backend?: string;
  fallback?: boolean;
  [key: string]: unknown;
}

export interface MetricsRow {
  step: number;
  /** Unix time in milliseconds (filled by appendMetrics when absent). */
  time: number;
  loss?: number;
  lr?: number;
  gradNorm?: number;
  [key: string]: unknown;
}

/** Metrics as kept in run.json's lastMetrics: usually a MetricsRow, possibly a summary without step/time. */
export type MetricsSnapshot = { step?: number; time?: number; [key: string]: unknown };

/** What update() takes. `error` may be an Error, a string, or {message, stack}. */
export interface RunUpdate {
  status?: RunStatus;
  device?: object | null;
  lineage?: RunLineage;
  lastMetrics?: MetricsSnapshot | null;
  error?: unknown;
}

/** A row as handed to appendMetrics: `time` may be left out. */
export interface MetricsInput {
  step: number;
  time?: number;
  loss?: number;
  lr?: number;
  gradNorm?: number;
  [key: string]: unknown;
}

export interface RunRecord {
  version: number;
  /** What made the run folder ('train' by default; see RunKind). */
  kind: RunKind;
  name: string;
  status: RunStatus;
  /** The config with every default applied (TrainConfig for training runs). */
  config: unknown;
  /** Absolute path of the config file it came from, or null (a config built in code). */
  configPath: string | null;
  /** sha256 (hex) of canonicalJson(config). */
  configHash: string;
  createdAt: string;
  updatedAt: string;
  device: RunDevice | null;
  lineage: RunLineage;
  checkpoints: CheckpointEntry[];
  /** The latest metrics row (or a summary the trainer wrote at the end). */
  lastMetrics: MetricsSnapshot | null;
  error?: { message: string; stack?: string };
  /** Who is (or was) writing it: a 'running' record whose process is gone was interrupted. */
  process?: { pid: number; host: string };
}

export class RunRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunRecordError';
  }
}

/** JSON with object keys sorted at every level and no whitespace: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  const norm = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return norm((v as { toJSON: () => unknown }).toJSON());
    if (Array.isArray(v)) return v.map((x) => (x === undefined || typeof x === 'function' ? null : norm(x)));
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x === undefined || typeof x === 'function') continue;
      Object.defineProperty(out, k, { value: norm(x), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  return JSON.stringify(norm(value)) ?? 'null';
}

export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `yyyymmdd-hhmmss` in local time. */
export function timestamp(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const KIND_RE = /^[a-z][a-z0-9-]{0,31}$/;

export interface CreateRunOptions {
  /** Default 'train'. */
  kind?: RunKind;
  config: unknown;
  configPath?: string | null;
  /** Any JSON-able description of the device (the GPU layer's `info`). */
  device?: object | null;
  lineage?: RunLineage;
  /** For tests: the creation time. */
  now?: Date;
}

/** Minimum interval between run.json rewrites caused only by appendMetrics (other updates write at once). */
const METRICS_FLUSH_MS = 1000;

export class RunFolder {
  private rec: RunRecord;
  /** Serializes file writes so that updates land in order. */
  private queue: Promise<void> = Promise.resolve();
  private lastWrite = 0;
  private dirty = false;

  private constructor(
    readonly dir: string,
    record: RunRecord,
  ) {
    this.rec = record;
  }

  /** Creates `<outputDir>/<name>-<yyyymmdd-hhmmss>` (unique) with its subfolders and a 'running' run.json. */
  static async create(outputDir: string, name: string, options: CreateRunOptions): Promise<RunFolder> {
    const kind = options.kind ?? DEFAULT_RUN_KIND;
    if (!KIND_RE.test(kind)) throw new RunRecordError(`run kind ${JSON.stringify(kind)} must be 1-32 lowercase letters, digits or "-", starting with a letter`);
    if (!NAME_RE.test(name) || name.length > 64) {
      throw new RunRecordError(`run name ${JSON.stringify(name)} must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    }
    const now = options.now ?? new Date();
    const out = path.resolve(outputDir);
    await fs.promises.mkdir(out, { recursive: true });
    const base = `${name}-${timestamp(now)}`;
    let dir = '';
    for (let i = 1; ; i++) {
      dir = path.join(out, i === 1 ? base : `${base}-${i}`);
      try {
        await fs.promises.mkdir(dir); // not recursive: EEXIST tells us the name is taken, atomically
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i > 1000) throw e;
      }
    }
    await fs.promises.mkdir(path.join(dir, CHECKPOINTS_DIR));
    await fs.promises.mkdir(path.join(dir, STATS_DIR));
    const iso = now.toISOString();
    const record: RunRecord = {
      version: RUN_RECORD_VERSION,
      kind,
      name,
      status: 'running',
      config: options.config,
      configPath: options.configPath ? path.resolve(options.configPath) : null,
      configHash: configHash(options.config),
      createdAt: iso,
      updatedAt: iso,
      device: (options.device ?? null) as RunDevice | null,
      lineage: options.lineage ?? {},
      checkpoints: [],
      lastMetrics: null,
      process: { pid: process.pid, host: os.hostname() },
    };
    const run = new RunFolder(dir, record);
    await fs.promises.writeFile(run.metricsPath, '');
    await run.write();
    return run;
  }

  /** Opens an existing run folder (to resume it or read it). */
  static async open(dir: string): Promise<RunFolder> {
    const abs = path.resolve(dir);
    return new RunFolder(abs, await readRecord(abs));
  }

  get record(): Readonly<RunRecord> {
    return this.rec;
  }
  get name(): string {
    return this.rec.name;
  }
  get runJsonPath(): string {
    return path.join(this.dir, RUN_FILE);
  }
  get metricsPath(): string {
    return path.join(this.dir, METRICS_FILE);
  }
  get checkpointsDir(): string {
    return path.join(this.dir, CHECKPOINTS_DIR);
  }
  get statsDir(): string {
    return path.join(this.dir, STATS_DIR);
  }
  /** Run-relative path of the weights checkpoint for a step: `checkpoints/step-<n>.safetensors`. */
  checkpointPath(step: number): string {
    return `${CHECKPOINTS_DIR}/step-${step}.safetensors`;
  }
  /** Run-relative path of the optimizer state for a step: `checkpoints/step-<n>.opt.safetensors`. */
  optimizerStatePath(step: number): string {
    return `${CHECKPOINTS_DIR}/step-${step}.opt.safetensors`;
  }
  /** Run-relative path of the training statistics for a step: `stats/step-<n>.safetensors`. */
  statsPath(step: number): string {
    return `${STATS_DIR}/step-${step}.safetensors`;
  }
  /** A path inside the run folder, as stored in run.json (relative, with forward slashes). */
  relative(p: string): string {
    return path.relative(this.dir, path.resolve(this.dir, p)).split(path.sep).join('/');
  }
  /** A path from run.json, made absolute. */
  resolve(p: string): string {
    return path.resolve(this.dir, p);
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const p = this.queue.then(job);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private write(): Promise<void> {
    return this.enqueue(async () => {
      this.dirty = false;
      this.lastWrite = Date.now();
      await writeFileAtomic(this.runJsonPath, JSON.stringify(this.rec, null, 2) + '\n');
    });
  }

  /** Changes fields of the record and writes run.json atomically. */
  async update(patch: RunUpdate): Promise<void> {
    if (patch.status !== undefined && !STATUSES.includes(patch.status)) throw new RunRecordError(`unknown run status ${JSON.stringify(patch.status)}`);
    const next: RunRecord = { ...this.rec, updatedAt: new Date().toISOString() };
    if (patch.status !== undefined) next.status = patch.status;
    if (patch.device !== undefined) next.device = patch.device as RunDevice | null;
    if (patch.lineage !== undefined) next.lineage = patch.lineage;
    if (patch.lastMetrics !== undefined) next.lastMetrics = patch.lastMetrics;
    if (patch.error !== undefined) next.error = errorInfo(patch.error);
    this.rec = next;
    await this.write();
  }

  /**
   * Appends one row to metrics.jsonl and makes it the record's lastMetrics (run.json is rewritten at most once a
   * second for metrics alone; any other update, checkpoint or finish writes it at once).
   */
  async appendMetrics(row: MetricsInput): Promise<void> {
    if (!Number.isInteger(row.step) || row.step < 0) throw new RunRecordError(`metrics row needs a non-negative integer step, got ${String(row.step)}`);
    const full: MetricsRow = { ...row, step: row.step, time: row.time ?? Date.now() };
    const line = JSON.stringify(full) + '\n';
    await this.enqueue(() => fs.promises.appendFile(this.metricsPath, line));
    this.rec = { ...this.rec, lastMetrics: full, updatedAt: new Date().toISOString() };
    this.dirty = true;
    if (Date.now() - this.lastWrite >= METRICS_FLUSH_MS) await this.write();
  }

  /** Writes run.json if metrics changed since the last write. */
  async flush(): Promise<void> {
    if (this.dirty) await this.write();
    else await this.queue;
  }

  /**
   * Records a checkpoint whose files are already written (by default checkpointPath(step), and
   * optimizerStatePath(step) if it exists). A re-recorded step replaces its entry.
   * `addCheckpoint(200)`, `addCheckpoint(200, { valMetric })` or `addCheckpoint({ step: 200, path, metrics… })`.
   */
  async addCheckpoint(stepOrEntry: number | CheckpointInput, extra: Omit<CheckpointInput, 'step'> = {}): Promise<CheckpointEntry> {
    const input: CheckpointInput = typeof stepOrEntry === 'number' ? { ...extra, step: stepOrEntry } : stepOrEntry;
    const step = input.step;
    if (!Number.isInteger(step) || step < 0) throw new RunRecordError(`checkpoint step must be a non-negative integer, got ${String(step)}`);
    const weights = this.relative(input.path ?? this.checkpointPath(step));
    if (!fs.existsSync(this.resolve(weights))) {
      throw new RunRecordError(`${this.resolve(weights)}: checkpoint file missing; write it before recording it`);
    }
    const time = input.time === undefined ? new Date() : new Date(input.time);
    const entry: CheckpointEntry = { step, path: weights, time: Number.isNaN(time.getTime()) ? new Date().toISOString() : time.toISOString() };
    const opt = this.relative(input.optimizerPath ?? this.optimizerStatePath(step));
    if (fs.existsSync(this.resolve(opt))) entry.optimizerPath = opt;
    if (input.valMetric !== undefined) entry.valMetric = input.valMetric;
    if (input.metrics !== undefined) entry.metrics = input.metrics;
    const checkpoints = this.rec.checkpoints.filter((c) => c.step !== step);
    checkpoints.push(entry);
    checkpoints.sort((a, b) => a.step - b.step);
    this.rec = { ...this.rec, checkpoints, updatedAt: entry.time };
    await this.write();
    return entry;
  }

  /** Marks the run finished. */
  async finish(status: Exclude<RunStatus, 'running'>, error?: unknown): Promise<void> {
    await this.update({ status, ...(error === undefined ? {} : { error: errorInfo(error) }) });
  }

  /** Synchronous finish for exit handlers (SIGINT, uncaught exceptions) where awaiting is not possible. */
  finishSync(status: Exclude<RunStatus, 'running'>, error?: unknown): void {
    this.rec = { ...this.rec, status, updatedAt: new Date().toISOString(), ...(error === undefined ? {} : { error: errorInfo(error) }) };
    writeFileAtomicSync(this.runJsonPath, JSON.stringify(this.rec, null, 2) + '\n');
  }

  /** Marks a reopened run as running again in this process (resume). */
  async resume(): Promise<void> {
    const { error: _dropped, ...rest } = this.rec;
    this.rec = { ...rest, status: 'running', updatedAt: new Date().toISOString(), process: { pid: process.pid, host: os.hostname() } };
    await this.write();
  }

  /**
   * Every checkpoint there is, by step ascending: the recorded ones whose weights exist and the complete
   * `checkpoints/step-<n>.safetensors` files on disk (written atomically, so a file there is whole even if a crash
   * kept it out of run.json).
   */
  availableCheckpoints(): (CheckpointEntry & { absPath: string; optimizerAbsPath?: string })[] {
    const byStep = new Map<number, CheckpointEntry>();
    for (const c of this.rec.checkpoints) if (fs.existsSync(this.resolve(c.path))) byStep.set(c.step, c);
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.checkpointsDir);
    } catch {
      /* no checkpoints folder */
    }
    for (const f of names) {
      const m = /^step-(\d+)\.safetensors$/.exec(f);
      if (!m) continue;
      const step = Number(m[1]);
      if (!byStep.has(step)) {
        const st = fs.statSync(path.join(this.checkpointsDir, f));
        byStep.set(step, { step, path: `${CHECKPOINTS_DIR}/${f}`, time: st.mtime.toISOString() });
      }
    }
    return [...byStep.values()]
      .sort((a, b) => a.step - b.step)
      .map((best) => {
        const entry: CheckpointEntry & { absPath: string; optimizerAbsPath?: string } = { ...best, absPath: this.resolve(best.path) };
        const opt = this.resolve(best.optimizerPath ?? this.optimizerStatePath(best.step));
        if (fs.existsSync(opt)) {
          entry.optimizerPath = this.relative(opt);
          entry.optimizerAbsPath = opt;
        }
        return entry;
      });
  }

  /** The checkpoint to resume from: the highest step of availableCheckpoints(). Null when there is none. */
  latestCheckpoint(): (CheckpointEntry & { absPath: string; optimizerAbsPath?: string }) | null {
    const all = this.availableCheckpoints();
    return all.length ? all[all.length - 1] : null;
  }

  /**
   * Resuming from an earlier checkpoint than the latest (the latest was unreadable): the checkpoints past `step`
   * are set aside — renamed `*.superseded`, dropped from run.json — so that a later resume cannot pick them again;
   * training writes them anew when it gets there. Nothing is deleted.
   */
  async supersedeCheckpointsAfter(step: number): Promise<number[]> {
    const later = this.availableCheckpoints().filter((c) => c.step > step);
    for (const c of later) {
      for (const f of [c.absPath, c.optimizerAbsPath]) if (f && fs.existsSync(f)) await fs.promises.rename(f, `${f}.superseded`);
    }
    if (later.length) {
      this.rec = { ...this.rec, checkpoints: this.rec.checkpoints.filter((c) => c.step <= step), updatedAt: new Date().toISOString() };
      await this.write();
    }
    return later.map((c) => c.step);
  }

  /** The metrics rows; a torn last line (a crash mid-append) is skipped. */
  async readMetrics(): Promise<MetricsRow[]> {
    await this.queue;
    return readMetricsFile(this.metricsPath);
  }

  /** Drops metrics rows after `step` (resuming from a checkpoint at `step` replays what came after it). */
  async truncateMetricsAfter(step: number): Promise<void> {
    await this.enqueue(async () => {
      const rows = (await readMetricsFile(this.metricsPath)).filter((r) => r.step <= step);
      await writeFileAtomic(this.metricsPath, rows.map((r) => JSON.stringify(r) + '\n').join(''));
      this.rec = { ...this.rec, lastMetrics: rows.length ? rows[rows.length - 1] : null };
    });
    await this.write();
  }
}

function errorInfo(e: unknown): { message: string; stack?: string } {
  if (e instanceof Error) return e.stack ? { message: e.message, stack: e.stack } : { message: e.message };
  if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    const { message, stack } = e as { message: string; stack?: unknown };
    return typeof stack === 'string' ? { message, stack } : { message };
  }
  return { message: String(e) };
}

async function readMetricsFile(file: string): Promise<MetricsRow[]> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const lines = text.split('\n');
  const rows: MetricsRow[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      if (i === lines.length - 1) continue; // torn final line (no trailing newline): a crash mid-append
      throw new RunRecordError(`${file}:${i + 1}: not a JSON line`);
    }
  }
  return rows;
}

async function readRecord(dir: string): Promise<RunRecord> {
  const file = path.join(dir, RUN_FILE);
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new RunRecordError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); not a run folder?`);
  }
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    throw new RunRecordError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const fail = (what: string): never => {
    throw new RunRecordError(`${file}: ${what}`);
  };
  if (r === null || typeof r !== 'object' || Array.isArray(r)) fail('must hold a JSON object');
  const rec = r as Record<string, unknown>;
  if (typeof rec.version !== 'number') fail('"version" must be a number');
  if ((rec.version as number) > RUN_RECORD_VERSION) fail(`version ${String(rec.version)} is newer than this Basin understands (${RUN_RECORD_VERSION})`);
  if (typeof rec.name !== 'string') fail('"name" must be a string');
  if (rec.kind !== undefined && (typeof rec.kind !== 'string' || rec.kind === '')) fail('"kind" must be a non-empty string when present');
  if (!STATUSES.includes(rec.status as RunStatus)) fail(`"status" must be one of ${STATUSES.join(', ')}`);
  if (typeof rec.configHash !== 'string') fail('"configHash" must be a string');
  if (typeof rec.createdAt !== 'string' || typeof rec.updatedAt !== 'string') fail('"createdAt" and "updatedAt" must be strings');
  if (!Array.isArray(rec.checkpoints)) fail('"checkpoints" must be an array');
  for (const c of rec.checkpoints as unknown[]) {
    const ce = c as Record<string, unknown> | null;
    if (!ce || typeof ce !== 'object' || !Number.isInteger(ce.step) || typeof ce.path !== 'string') fail('each checkpoint needs an integer "step" and a "path"');
  }
  return {
    ...(rec as unknown as RunRecord),
    kind: typeof rec.kind === 'string' ? rec.kind : DEFAULT_RUN_KIND,
    configPath: typeof rec.configPath === 'string' ? rec.configPath : null,
    device: (rec.device as RunDevice | null | undefined) ?? null,
    lineage: (rec.lineage as RunLineage | undefined) ?? {},
    lastMetrics: (rec.lastMetrics as MetricsSnapshot | null | undefined) ?? null,
  };
}

/** Opens a run folder: its record, paths, and latestCheckpoint() for resuming. */
/**
 * Whether the process a run record names as its writer (`process: { pid, host }`) is running: 'alive', 'dead'
 * (on this machine and gone: the run was interrupted), or 'unknown' (another machine, or no process recorded).
 * The one definition every reader uses; each decides what 'unknown' means for it.
 */
export function writerState(proc: unknown): 'alive' | 'dead' | 'unknown' {
  if (!proc || typeof proc !== 'object') return 'unknown';
  const { pid, host } = proc as { pid?: unknown; host?: unknown };
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || host !== os.hostname()) return 'unknown';
  return pidAlive(pid) ? 'alive' : 'dead';
}

export function openRun(dir: string): Promise<RunFolder> {
  return RunFolder.open(dir);
}

export type RunListing = { dir: string; name: string; record: RunRecord } | { dir: string; name: string; error: string };

/**
 * The run folders directly under `outputDir` (folders holding a run.json), oldest first. A folder whose run.json
 * cannot be read is listed with its error; folders without run.json are not runs and are skipped.
 */
export async function listRuns(outputDir: string): Promise<RunListing[]> {
  const out = path.resolve(outputDir);
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(out, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const runs: RunListing[] = [];
  for (const d of entries) {
    if (!d.isDirectory()) continue;
    const dir = path.join(out, d.name);
    if (!fs.existsSync(path.join(dir, RUN_FILE))) continue;
    try {
      const record = await readRecord(dir);
      runs.push({ dir, name: d.name, record });
    } catch (e) {
      runs.push({ dir, name: d.name, error: (e as Error).message });
    }
  }
  const key = (r: RunListing) => ('record' in r ? r.record.createdAt : '');
  runs.sort((a, b) => key(a).localeCompare(key(b)) || a.name.localeCompare(b.name));
  return runs;
}
