// A run folder as the statistics panel sees it: run.json, metrics.jsonl and stats.bin, read once and then tailed
// (the trainer appends to both files), plus frames handed over by a live feed. Node fs only, no vscode: the panel
// decides when to poll (file watcher events, a timer while the run is live).
//
// Memory stays bounded whatever the size of stats.bin: the file is read in chunks, frames are split by their
// headers (payloads are not decoded), and only a FrameStore (the last few frames plus a thinned history) and a
// ScalarHistory (36 bytes per tensor per frame, thinned past its cap) are kept.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STATS_FILE } from '../../protocol/stats';
import { METRICS_FILE, RUN_FILE, writerState } from '../../files/run-record';
import { toMetricRow, type MetricRow, type PinnedCheckpoint, type RunInfo, type RunStatusView } from '../../protocol/panels/stats';
import { FrameIndexer, FrameStore, LineSplitter, ScalarHistory, type FrameInfo, type FrameStoreOptions } from '../../protocol/panels/stats-reduce';

export { METRICS_FILE, RUN_FILE };

const CHUNK = 8 * 1024 * 1024;
/** Metrics rows kept (the chart shows at most a few thousand points anyway); older rows are thinned. */
const MAX_METRIC_ROWS = 20_000;

export interface PollResult {
  frames: FrameInfo[];
  rows: MetricRow[];
  runChanged: boolean;
  /** Something was rewritten (a resumed run truncating its files): consumers should take a full snapshot. */
  reset: boolean;
}

export interface RunSourceOptions {
  frames?: FrameStoreOptions;
  historyCap?: number;
  /** A checkpoint step whose frame (the one at or before it) is kept whatever the thinning. */
  pinnedStep?: number | null;
}

export class RunSource {
  readonly store: FrameStore<FrameInfo>;
  readonly history: ScalarHistory;
  metrics: MetricRow[] = [];
  run: RunInfo;
  /** The pinned checkpoint's frame. */
  pinnedFrame: FrameInfo | null = null;
  pinnedStep: number | null;
  /** True while a live feed (the job manager's onStats) delivers frames for this run. */
  liveFeed = false;

  private metricsOffset = 0;
  private metricsSplitter = new LineSplitter();
  private metricsDecoder = new TextDecoder();
  private statsOffset = 0;
  private indexer = new FrameIndexer();
  private runJsonMtime = -1;
  private recordText = '';
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly opts: RunSourceOptions = {},
  ) {
    this.store = new FrameStore<FrameInfo>((f) => f.step, (f) => f.bytes.byteLength, opts.frames);
    this.history = new ScalarHistory(opts.historyCap);
    this.pinnedStep = opts.pinnedStep ?? null;
    this.run = emptyRunInfo(dir);
  }

  get pinned(): PinnedCheckpoint | null {
    return this.pinnedStep === null ? null : { step: this.pinnedStep, frameStep: this.pinnedFrame?.step ?? null };
  }

  setPinnedStep(step: number | null): void {
    this.pinnedStep = step;
    this.pinnedFrame = null;
    if (step === null) return;
    // Among kept frames; load() finds it exactly while reading the whole file.
    this.pinnedFrame = this.store.atOrBefore(step) ?? null;
  }

  /** Reads everything from the start (first open, refresh, or a rewritten file). */
  load(): Promise<void> {
    return this.serial(async () => {
      this.metrics = [];
      this.metricsOffset = 0;
      this.metricsSplitter = new LineSplitter();
      this.metricsDecoder = new TextDecoder();
      this.statsOffset = 0;
      this.indexer = new FrameIndexer();
      this.store.clear();
      this.history.clear();
      this.pinnedFrame = null;
      this.runJsonMtime = -1;
      await this.readRunJson();
      this.appendRows(await this.readMetricsTail());
      await this.readStatsTail((f) => this.acceptFileFrame(f));
      this.updateStep();
    });
  }

  /** Reads what was appended since the last read. */
  poll(): Promise<PollResult> {
    return this.serial(async () => {
      const res: PollResult = { frames: [], rows: [], runChanged: false, reset: false };
      res.runChanged = await this.readRunJson();
      const mSize = fileSize(path.join(this.dir, METRICS_FILE));
      const sSize = fileSize(path.join(this.dir, STATS_FILE));
      if (mSize < this.metricsOffset || sSize < this.statsOffset) {
        res.reset = true;
        return res;
      }
      res.rows = await this.readMetricsTail();
      this.appendRows(res.rows);
      const gen = this.store.generation;
      await this.readStatsTail((f) => {
        if (this.acceptFileFrame(f)) res.frames.push(f);
      });
      if (this.store.generation !== gen) res.reset = true;
      const before = this.run.step;
      this.updateStep();
      if (this.run.step !== before) res.runChanged = true;
      return res;
    });
  }

  /** Frames from the live feed (whole encoded frames). Returns the ones that were new. */
  addLiveBytes(bytes: Uint8Array): FrameInfo[] {
    const ix = new FrameIndexer();
    const out: FrameInfo[] = [];
    for (const f of ix.push(bytes)) {
      if (this.store.add(f)) {
        this.history.addFrame(f);
        this.notePinned(f);
        out.push(f);
      }
    }
    this.updateStep();
    return out;
  }

  /** True when the record says running and its process (on this machine) is alive. */
  get isLive(): boolean {
    return this.run.status === 'running';
  }

  private acceptFileFrame(f: FrameInfo): boolean {
    const last = this.store.lastStep;
    // With a live feed the file lags behind: an older step from the file is not a resume.
    if (this.liveFeed && last !== null && f.step <= last) return false;
    if (!this.store.add(f)) return false;
    this.history.addFrame(f);
    this.notePinned(f);
    return true;
  }

  private notePinned(f: FrameInfo): void {
    if (this.pinnedStep !== null && f.step <= this.pinnedStep && (!this.pinnedFrame || f.step >= this.pinnedFrame.step)) this.pinnedFrame = f;
  }

  private appendRows(rows: MetricRow[]): void {
    if (!rows.length) return;
    this.metrics.push(...rows);
    if (this.metrics.length > MAX_METRIC_ROWS) {
      // Thin the older half, keep the newest half whole.
      const half = Math.floor(this.metrics.length / 2);
      this.metrics = this.metrics.slice(0, half).filter((_, i) => i % 2 === 0).concat(this.metrics.slice(half));
    }
  }

  private updateStep(): void {
    const m = this.metrics.length ? this.metrics[this.metrics.length - 1].step : null;
    const s = this.store.lastStep;
    this.run = { ...this.run, step: m === null ? s : s === null ? m : Math.max(m, s) };
  }

  private async readMetricsTail(): Promise<MetricRow[]> {
    const file = path.join(this.dir, METRICS_FILE);
    const rows: MetricRow[] = [];
    await readFrom(file, this.metricsOffset, (chunk) => {
      this.metricsOffset += chunk.length;
      for (const line of this.metricsSplitter.push(this.metricsDecoder.decode(chunk, { stream: true }))) {
        try {
          const r = toMetricRow(JSON.parse(line));
          if (r) rows.push(r);
        } catch {
          /* a malformed line: skipped (the run record's reader is the strict one) */
        }
      }
    });
    return rows;
  }

  private async readStatsTail(onFrame: (f: FrameInfo) => void): Promise<void> {
    const file = path.join(this.dir, STATS_FILE);
    await readFrom(file, this.statsOffset, (chunk) => {
      this.statsOffset += chunk.length;
      for (const f of this.indexer.push(chunk)) onFrame(f);
    });
  }

  /** Re-reads run.json when its mtime changed; returns whether the run info changed. */
  private async readRunJson(): Promise<boolean> {
    const file = path.join(this.dir, RUN_FILE);
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(file);
    } catch (e) {
      const before = this.run.error;
      this.run = { ...this.run, status: 'unknown', error: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
      return before !== this.run.error;
    }
    if (st.mtimeMs === this.runJsonMtime) {
      // A stale "running" record may turn into "interrupted" without the file changing.
      return this.refreshInterrupted();
    }
    this.runJsonMtime = st.mtimeMs;
    let text: string;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch {
      return false;
    }
    if (text === this.recordText) return this.refreshInterrupted();
    this.recordText = text;
    const before = JSON.stringify(this.run);
    this.run = { ...runInfoFromRecord(this.dir, text), step: this.run.step };
    return before !== JSON.stringify(this.run);
  }

  private refreshInterrupted(): boolean {
    if (this.run.status !== 'running' || !this.recordText) return false;
    const info = runInfoFromRecord(this.dir, this.recordText);
    if (info.status === this.run.status) return false;
    this.run = { ...this.run, status: info.status };
    return true;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.busy.then(f, f);
    this.busy = p.catch(() => undefined);
    return p;
  }
}

export function emptyRunInfo(dir: string): RunInfo {
  return {
    dir,
    name: path.basename(dir),
    status: 'unknown',
    step: null,
    totalSteps: null,
    statsEvery: null,
    checkpoints: [],
    device: null,
    createdAt: null,
    updatedAt: null,
    error: null,
    optimizer: null,
    gradClip: null,
    classes: null,
    base: null,
    rank: null,
    kind: 'train',
  };
}

/** RunInfo from run.json's text; tolerant: what cannot be read is left empty, with `error` saying why. */
export function runInfoFromRecord(dir: string, text: string): RunInfo {
  const info = emptyRunInfo(dir);
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    return { ...info, error: `run.json is not valid JSON (${(e as Error).message})` };
  }
  if (!r || typeof r !== 'object') return { ...info, error: 'run.json does not hold an object' };
  const rec = r as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  if (typeof rec.name === 'string' && rec.name) info.name = path.basename(dir) || rec.name;
  const statuses: RunStatusView[] = ['running', 'completed', 'failed', 'cancelled'];
  info.status = statuses.includes(rec.status as RunStatusView) ? (rec.status as RunStatusView) : 'unknown';
  if (info.status === 'running' && writerState(rec.process) === 'dead') info.status = 'interrupted';
  const config = rec.config as { train?: Record<string, unknown>; model?: Record<string, unknown> } | null | undefined;
  const train = config?.train;
  info.totalSteps = num(train?.steps);
  info.statsEvery = num(train?.statsEvery);
  info.optimizer = str((train?.optimizer as { type?: unknown } | undefined)?.type);
  info.gradClip = num(train?.gradClip);
  info.rank = num((train?.optimizer as { rank?: unknown } | undefined)?.rank);
  info.kind = str(rec.kind) || 'train'; // run-record.ts: a missing kind is a training run
  // A fine-tune (init.from): the panel draws the base's metrics beside the run's and its saliency mass.
  const lineage = rec.lineage as { relation?: unknown; parentCheckpoint?: unknown } | null | undefined;
  info.base = lineage && lineage.relation === 'fine-tune' ? (str(lineage.parentCheckpoint) ?? '') : null;
  // A classifier's classes, or a token model's vocabulary (its logits are over the whole vocabulary).
  info.classes = num(config?.model?.classes) ?? num(config?.model?.vocab);
  info.checkpoints = Array.isArray(rec.checkpoints)
    ? rec.checkpoints.map((c) => (c && typeof c === 'object' ? num((c as { step?: unknown }).step) : null)).filter((s): s is number => s !== null)
    : [];
  const dev = rec.device as Record<string, unknown> | null | undefined;
  if (dev && typeof dev === 'object') {
    const parts = [str(dev.description), str(dev.backend)].filter(Boolean);
    info.device = parts.length ? `${parts.join(', ')}${dev.fallback ? ' (software fallback)' : ''}` : null;
  }
  info.createdAt = str(rec.createdAt);
  info.updatedAt = str(rec.updatedAt);
  const err = rec.error as { message?: unknown } | undefined;
  info.error = err && typeof err.message === 'string' ? err.message : null;
  return info;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Reads `file` from `offset` to its current end in chunks; a missing file reads as empty. */
async function readFrom(file: string, offset: number, onChunk: (chunk: Uint8Array) => void): Promise<void> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    let pos = offset;
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size - offset)));
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead <= 0) break;
      onChunk(new Uint8Array(buf.buffer, buf.byteOffset, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
