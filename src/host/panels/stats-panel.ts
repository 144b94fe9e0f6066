// The statistics panel (viewType `basin.stats`): per-layer training statistics of one run folder.
//
//   basin.openStatistics(arg)   arg: { runDir, step?, tensor? } | a Runs-view element (runDir, and `step` or
//                               `checkpoint.step` for a checkpoint, `name` for a tensor) | a path | a Uri | nothing
//                               (a quick pick of the workspace's run folders, `basin.runs.include`)
//   basin.statsPanelState()     the open panels' state (ready, perf figures…): for tests and `basin bench editor`
//
// One panel per run folder (opening it again reveals it). The webview keeps no data: it says `ready` on every load
// and gets a full snapshot; it persists only its UI state (vscode.setState), which the WebviewPanelSerializer
// hands back after a window reload, so `retainContextWhenHidden` stays off. While the panel is visible, new frames
// and metrics rows go out at most ~3 times a second; a hidden panel gets nothing, and a fresh snapshot when its
// webview loads again. The webview, its CSP, the ready → snapshot handshake, message validation and the
// serializer are every panel's: PanelController (panel-controller.ts); this file is what the statistics add.
//
// Data: run.json, metrics.jsonl and stats.bin, read once and then tailed (file watcher, and a 1 s poll while the
// run is live), plus the job manager's live frames (ctx.trainJobs.onStats) for a run that trains in this window. A
// checkpoint's statistics come from `stats/step-<n>.safetensors` when the trainer wrote it, else from the frame
// at (or last before) that step in stats.bin.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import {
  STATS_VIEW_TYPE,
  coerceUiState,
  isObject,
  notification,
  statsProtocol,
  type CommandHandlers,
  type HostToWebview,
  type PerfReport,
  type RequestHandlers,
  type StatsCommandParams,
  type StatsNotificationParams,
  type StatsRequestTypes,
  type StatsUiState,
} from '../../protocol/panels/stats';
import { HeaderCache, toArrayBuffer, type FrameInfo } from '../../protocol/panels/stats-reduce';
import { encodeStatsFrame, HIST_BINS, matrixView, SCALAR_KEYS, STATS_FILE, TENSOR_ROLES, type StatsExtras, type StatsTensorInfo, type TensorRole } from '../../protocol/stats';
import { RUN_FILE } from '../../files/run-record';
import { SafetensorsReader } from '../../files/safetensors';
import { RunSource, type PollResult } from './stats-source';
import { PanelController, createWebviewPanel, registerPanelSerializer, webviewOptions } from './panel-controller';

type StatsView = PanelController<StatsCommandParams, StatsRequestTypes, StatsNotificationParams>;

/** Updates to a visible panel, at most this often. */
const UPDATE_INTERVAL_MS = 300;
/** Poll of the run folder while the run is live (watchers can miss appends on some file systems). */
const POLL_MS = 1000;
/** At most this many frames per update; more pending means a snapshot instead. */
const MAX_FRAMES_PER_UPDATE = 8;
/** History points in a snapshot. */
const SNAPSHOT_HISTORY_POINTS = 256;

/** What the webview keeps with vscode.setState, handed back by the serializer after a reload. */
export interface StatsWebviewState {
  runDir: string;
  pinnedStep: number | null;
  ui: StatsUiState;
}

export interface OpenStatsArgs {
  runDir: string;
  /** A checkpoint step: show that checkpoint's statistics. */
  step?: number;
  /** A tensor to select. */
  tensor?: string;
}

/** One panel's state, for tests and benchmarks (`basin.statsPanelState`). */
export interface StatsPanelState {
  runDir: string;
  title: string;
  visible: boolean;
  /** The webview said `ready` (since its last load). */
  ready: boolean;
  readyCount: number;
  snapshots: number;
  updates: number;
  /** Messages from the webview that failed validation (dropped). */
  invalidMessages: number;
  framesTotal: number;
  layers: number;
  metricsRows: number;
  pinnedStep: number | null;
  live: boolean;
  ui: StatsUiState | null;
  /** The latest perf reports of the webview. */
  perf: { firstPaint: PerfReport | null; update: PerfReport | null; updates: number; updateMsMax: number };
  /** Content-Security-Policy violations and errors the webview reported. */
  webviewErrors: string[];
}

/** Parses basin.openStatistics's argument; undefined means "ask". */
export function parseOpenArgs(arg: unknown): OpenStatsArgs | undefined {
  if (arg === undefined || arg === null) return undefined;
  if (typeof arg === 'string') return { runDir: arg };
  if (arg instanceof vscode.Uri) return { runDir: path.basename(arg.fsPath) === RUN_FILE ? path.dirname(arg.fsPath) : arg.fsPath };
  if (!isObject(arg)) return undefined;
  const runDir = typeof arg.runDir === 'string' ? arg.runDir : arg.runDir instanceof vscode.Uri ? arg.runDir.fsPath : undefined;
  if (!runDir) return undefined;
  const out: OpenStatsArgs = { runDir };
  const cp = arg.checkpoint;
  if (typeof arg.step === 'number' && Number.isFinite(arg.step)) out.step = arg.step;
  else if (isObject(cp) && typeof cp.step === 'number') out.step = cp.step;
  if (typeof arg.tensor === 'string') out.tensor = arg.tensor;
  else if (arg.kind === 'tensor' && typeof arg.name === 'string') out.tensor = arg.name;
  return out;
}

function isWebviewState(x: unknown): x is { runDir: string; pinnedStep?: unknown; ui?: unknown } {
  return isObject(x) && typeof x.runDir === 'string' && x.runDir.length > 0;
}

export class StatsPanels implements vscode.Disposable {
  private readonly panels = new Set<StatsPanel>();

  constructor(readonly ctx: Ctx) {}

  async open(arg: unknown): Promise<StatsPanelState | undefined> {
    let args = parseOpenArgs(arg);
    if (!args) {
      const runDir = await pickRunDir();
      if (!runDir) return undefined;
      args = { runDir };
    }
    const runDir = path.resolve(args.runDir);
    if (!fs.existsSync(path.join(runDir, RUN_FILE)) && !fs.existsSync(path.join(runDir, STATS_FILE))) {
      void vscode.window.showErrorMessage(`Basin: ${runDir} is not a run folder (it has no run.json).`);
      return undefined;
    }
    const existing = [...this.panels].find((p) => samePath(p.runDir, runDir));
    if (existing) {
      if (args.step !== undefined) await existing.setPinnedStep(args.step);
      if (args.tensor) existing.select(args.tensor);
      existing.panel.reveal();
      return existing.state();
    }
    const panel = createWebviewPanel(STATS_VIEW_TYPE, panelTitle(runDir, args.step ?? null), this.ctx.extCtx.extensionUri);
    const p = this.adopt(panel, runDir, args.step ?? null, args.tensor);
    return p.state();
  }

  /** A panel VS Code restored after a reload (WebviewPanelSerializer). */
  async restore(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    if (!isWebviewState(state)) {
      panel.webview.options = webviewOptions(this.ctx.extCtx.extensionUri);
      panel.webview.html = `<!DOCTYPE html><html><body><p>This statistics panel has no run folder to show. Open one with “Basin: Open Statistics”.</p></body></html>`;
      return;
    }
    const pinned = typeof state.pinnedStep === 'number' ? state.pinnedStep : null;
    this.adopt(panel, path.resolve(state.runDir), pinned, undefined);
  }

  private adopt(panel: vscode.WebviewPanel, runDir: string, pinnedStep: number | null, tensor: string | undefined): StatsPanel {
    const p = new StatsPanel(this.ctx, panel, runDir, pinnedStep, tensor);
    this.panels.add(p);
    panel.onDidDispose(() => this.panels.delete(p));
    return p;
  }

  states(): StatsPanelState[] {
    return [...this.panels].map((p) => p.state());
  }

  dispose(): void {
    for (const p of this.panels) p.panel.dispose();
    this.panels.clear();
  }
}

/** Registers basin.openStatistics, basin.statsPanelState and the panel serializer. */
export function registerStatsPanel(ctx: Ctx): StatsPanels {
  const panels = new StatsPanels(ctx);
  ctx.push(panels);
  ctx.registerCommand('openStatistics', () => (arg: unknown) => panels.open(arg));
  ctx.registerCommand('statsPanelState', () => () => panels.states());
  ctx.push(registerPanelSerializer(STATS_VIEW_TYPE, (panel, state) => panels.restore(panel, state)));
  return panels;
}

function panelTitle(runDir: string, step: number | null): string {
  return `Statistics: ${path.basename(runDir)}${step === null ? '' : ` @ ${step}`}`;
}

function samePath(a: string, b: string): boolean {
  return process.platform === 'win32' ? a.toLowerCase() === b.toLowerCase() : a === b;
}

async function pickRunDir(): Promise<string | undefined> {
  const include = vscode.workspace.getConfiguration('basin').get<string>('runs.include')?.trim() || '**/runs/*/run.json';
  const files = await vscode.workspace.findFiles(include, '**/node_modules/**', 5000);
  if (!files.length) {
    void vscode.window.showInformationMessage(`Basin: no run folders in this workspace (looked for ${include}). Train from a config first.`);
    return undefined;
  }
  const items = files
    .map((f) => {
      const dir = path.dirname(f.fsPath);
      let mtime = 0;
      try {
        mtime = fs.statSync(f.fsPath).mtimeMs;
      } catch {
        /* gone */
      }
      return { label: path.basename(dir), description: vscode.workspace.asRelativePath(dir), dir, mtime };
    })
    .sort((a, b) => b.mtime - a.mtime);
  const pick = await vscode.window.showQuickPick(items, { title: 'Basin: Open Statistics', placeHolder: 'Run folder', matchOnDescription: true });
  return pick?.dir;
}

class StatsPanel {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly source: RunSource;
  private readonly view: StatsView;
  private loaded: Promise<void>;
  private snapshots = 0;
  private updates = 0;
  private ui: StatsUiState | null = null;
  private perfFirst: PerfReport | null = null;
  private perfUpdate: PerfReport | null = null;
  private perfUpdates = 0;
  private perfUpdateMax = 0;
  private pendingFrames: FrameInfo[] = [];
  private pendingRows: StatsNotificationParams['metrics']['rows'] = [];
  private pendingRun = false;
  private pendingReset = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pendingSelect: string | undefined;
  private disposed = false;

  constructor(
    private readonly ctx: Ctx,
    readonly panel: vscode.WebviewPanel,
    readonly runDir: string,
    pinnedStep: number | null,
    tensor: string | undefined,
  ) {
    this.source = new RunSource(runDir, { pinnedStep });
    this.pendingSelect = tensor;
    panel.title = panelTitle(runDir, pinnedStep);
    this.view = new PanelController({
      protocol: statsProtocol,
      panel,
      extensionUri: ctx.extCtx.extensionUri,
      app: 'stats',
      loadingText: 'Loading statistics…',
      initial: { runDir, pinnedStep, ui: coerceUiState(undefined) },
      log: (level, message) => this.log(level, message),
      onReady: () => this.onReady(),
      onDidBecomeVisible: () => {
        if (this.source.isLive) void this.poll();
      },
      commands: this.commands,
      requests: this.requests,
    });
    this.view.onDidDispose(() => this.dispose());
    this.loaded = this.load();
    this.watch();
    this.subscribeLive();
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.ctx.log[level](`[stats ${path.basename(this.runDir)}] ${message}`);
  }

  private async load(): Promise<void> {
    try {
      await this.source.load();
      await this.loadCheckpointStats();
    } catch (e) {
      this.log('error', `cannot read ${this.runDir}: ${(e as Error).message}`);
      this.post(notification('error', { message: `Cannot read the run folder: ${(e as Error).message}` }));
    }
  }

  /** `stats/step-<n>.safetensors` of the pinned checkpoint, when the trainer wrote it, becomes the pinned frame. */
  private async loadCheckpointStats(): Promise<void> {
    const step = this.source.pinnedStep;
    if (step === null) return;
    const file = path.join(this.runDir, 'stats', `step-${step}.safetensors`);
    if (!fs.existsSync(file)) return;
    try {
      const frame = await readStatsCheckpoint(file, step, path.join(this.runDir, 'checkpoints', `step-${step}.safetensors`));
      if (frame) this.source.pinnedFrame = frame;
    } catch (e) {
      this.log('warn', `${file}: ${(e as Error).message}; showing the stats.bin frame instead`);
    }
  }

  async setPinnedStep(step: number): Promise<void> {
    await this.loaded;
    this.source.setPinnedStep(step);
    await this.loadCheckpointStats();
    this.panel.title = panelTitle(this.runDir, step);
    if (this.view.ready) this.sendSnapshot();
  }

  select(tensor: string): void {
    if (this.view.ready) this.post(notification('select', { tensor }));
    else this.pendingSelect = tensor;
  }

  private watch(): void {
    const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(this.runDir), '{run.json,metrics.jsonl,stats.bin}'));
    const kick = () => void this.poll();
    this.disposables.push(w, w.onDidChange(kick), w.onDidCreate(kick), w.onDidDelete(kick));
    this.pollTimer = setInterval(() => {
      if (this.panel.visible && this.source.isLive) void this.poll();
    }, POLL_MS);
  }

  private subscribeLive(): void {
    const jobs = this.ctx.jobs;
    const mine = (dir: string | undefined) => dir !== undefined && samePath(path.resolve(dir), this.runDir);
    // Only a training job feeds a run's statistics (an eval job reads the run and writes nothing).
    this.source.liveFeed = !!jobs.jobOfRun(this.runDir, 'train');
    this.disposables.push(
      this.ctx.trainJobs.onStats((e) => {
        if (!mine(e.runDir)) return;
        this.source.liveFeed = true;
        const frames = this.source.addLiveBytes(e.bytes);
        if (frames.length) this.queue({ frames, rows: [], runChanged: true, reset: false });
      }),
      jobs.onDidStart(() => void this.poll()),
      jobs.onDidEnd((e) => {
        if (e.kind !== 'train' || !mine(e.job.runDir)) return;
        this.source.liveFeed = false;
        void this.poll();
      }),
    );
  }

  private async poll(): Promise<void> {
    if (this.polling || this.disposed) return;
    this.polling = true;
    try {
      await this.loaded;
      const r = await this.source.poll();
      if (r.reset) {
        await this.source.load();
        await this.loadCheckpointStats();
        this.queue({ frames: [], rows: [], runChanged: true, reset: true });
      } else if (r.frames.length || r.rows.length || r.runChanged) this.queue(r);
    } catch (e) {
      this.log('warn', `reading ${this.runDir}: ${(e as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  /** Collects updates and sends them at most every UPDATE_INTERVAL_MS, only to a visible, ready webview. */
  private queue(r: PollResult): void {
    if (!this.view.ready || !this.panel.visible) return; // a snapshot follows the next `ready`
    this.pendingFrames.push(...r.frames);
    this.pendingRows.push(...r.rows);
    this.pendingRun ||= r.runChanged;
    this.pendingReset ||= r.reset;
    if (this.flushTimer) return;
    const wait = Math.max(0, this.lastFlush + UPDATE_INTERVAL_MS - Date.now());
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    this.lastFlush = Date.now();
    const frames = this.pendingFrames;
    const rows = this.pendingRows;
    const run = this.pendingRun;
    const reset = this.pendingReset;
    this.pendingFrames = [];
    this.pendingRows = [];
    this.pendingRun = false;
    this.pendingReset = false;
    if (!this.view.ready || !this.panel.visible) return;
    if (reset || frames.length > MAX_FRAMES_PER_UPDATE) {
      this.sendSnapshot();
      return;
    }
    if (run) this.post(notification('run', { run: this.source.run, live: this.live }));
    if (rows.length) this.post(notification('metrics', { rows }));
    if (frames.length) {
      this.post(notification('frames', { frames: frames.map((f) => toArrayBuffer(f.bytes)), framesTotal: this.source.store.total }));
    }
    this.updates++;
  }

  private get live(): boolean {
    return this.source.liveFeed || this.source.isLive;
  }

  private sendSnapshot(): void {
    const s = this.source;
    const latest = s.store.latest();
    const frames: FrameInfo[] = [];
    if (s.pinnedFrame && s.pinnedFrame !== latest) frames.push(s.pinnedFrame);
    if (latest) frames.push(latest);
    const names = (latest ?? s.pinnedFrame)?.tensors.map((t) => t.name) ?? [];
    const history = s.history.toPayload(names, SNAPSHOT_HISTORY_POINTS);
    this.post(
      notification('snapshot', {
        run: s.run,
        metrics: s.metrics,
        frames: frames.map((f) => toArrayBuffer(f.bytes)),
        framesTotal: s.store.total,
        history,
        pinned: s.pinned,
        live: this.live,
      }),
    );
    this.snapshots++;
    // Anything queued before the snapshot is in it.
    this.pendingFrames = [];
    this.pendingRows = [];
    this.pendingRun = false;
    this.pendingReset = false;
  }

  private post(msg: HostToWebview): void {
    if (!this.disposed) this.view.post(msg);
  }

  /** The webview (re)loaded and said `ready`: the whole state, then what was waiting for it. */
  private async onReady(): Promise<void> {
    await this.loaded;
    if (!this.view.ready) return;
    this.sendSnapshot();
    if (this.pendingSelect) {
      this.post(notification('select', { tensor: this.pendingSelect }));
      this.pendingSelect = undefined;
    }
    if (this.source.isLive) void this.poll();
  }

  /** The statistics panel's own commands (`ready` and `log` are the PanelController's). */
  private readonly commands: Omit<CommandHandlers, 'ready' | 'log'> = {
    uiState: (ui) => {
      this.ui = ui;
    },
    perf: (p) => {
      if (p.phase === 'firstPaint') {
        this.perfFirst = p;
        this.log('info', `first paint ${p.ms.toFixed(0)} ms after script start (render ${p.renderMs.toFixed(0)} ms), ${p.layers} layers, ${p.frames} frames`);
      } else {
        this.perfUpdate = p;
        this.perfUpdates++;
        this.perfUpdateMax = Math.max(this.perfUpdateMax, p.ms);
        if (p.ms > 250) this.log('warn', `slow update: ${p.ms.toFixed(0)} ms for ${p.layers} layers`);
      }
    },
    revealRunFolder: () => {
      const uri = vscode.Uri.file(path.join(this.runDir, 'run.json'));
      void vscode.commands.executeCommand(vscode.workspace.getWorkspaceFolder(uri) ? 'revealInExplorer' : 'revealFileInOS', uri);
    },
  };

  private readonly requests: RequestHandlers = {
    layerHistory: async ({ tensor }) => {
      await this.loaded;
      return this.source.history.get(tensor);
    },
    refresh: async () => {
      await this.source.load();
      await this.loadCheckpointStats();
      this.sendSnapshot();
      return { frames: this.source.store.total };
    },
  };

  state(): StatsPanelState {
    const latest = this.source.store.latest();
    return {
      runDir: this.runDir,
      title: this.panel.title,
      visible: this.panel.visible,
      ready: this.view.ready,
      readyCount: this.view.readyCount,
      snapshots: this.snapshots,
      updates: this.updates,
      invalidMessages: this.view.invalidMessages,
      framesTotal: this.source.store.total,
      layers: latest?.tensors.length ?? 0,
      metricsRows: this.source.metrics.length,
      pinnedStep: this.source.pinnedStep,
      live: this.live,
      ui: this.ui,
      perf: { firstPaint: this.perfFirst, update: this.perfUpdate, updates: this.perfUpdates, updateMsMax: this.perfUpdateMax },
      webviewErrors: this.view.webviewErrors,
    };
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

/**
 * A checkpoint's statistics file (`<weight>.scalars`, `.v_hist`, `.v_row`, `.v_col`, and where present
 * `.captured_energy`, `.saliency_mass` and the metadata `roles`) as an encoded frame. Shapes come from the
 * checkpoint's weights header when it is there, else [rows, cols].
 */
export async function readStatsCheckpoint(file: string, step: number, weightsFile?: string): Promise<FrameInfo | null> {
  const shapes = new Map<string, number[]>();
  if (weightsFile && fs.existsSync(weightsFile)) {
    const w = await SafetensorsReader.open(weightsFile);
    try {
      for (const t of w.tensors) shapes.set(t.name, t.shape);
    } finally {
      await w.close();
    }
  }
  const r = await SafetensorsReader.open(file);
  try {
    const names = r.tensors.filter((t) => t.name.endsWith('.scalars')).map((t) => t.name.slice(0, -'.scalars'.length));
    if (!names.length) return null;
    const infos: StatsTensorInfo[] = [];
    const parts: Float32Array[] = [];
    let roles: Record<string, unknown> = {};
    try {
      const r0 = JSON.parse(r.header.metadata?.roles ?? '{}') as unknown;
      if (r0 && typeof r0 === 'object') roles = r0 as Record<string, unknown>;
    } catch {
      /* unreadable roles: the frame goes without them */
    }
    const has = new Set(r.tensors.map((t) => t.name));
    const extra = async (name: string, suffix: string): Promise<number | null> => {
      if (!has.has(`${name}.${suffix}`)) return null;
      const v = ((await r.read(`${name}.${suffix}`)).data as Float32Array)[0];
      return Number.isFinite(v) ? v : null;
    };
    const energy: (number | null)[] = [];
    const mass: (number | null)[] = [];
    for (const name of names) {
      const scalars = (await r.read(`${name}.scalars`)).data as Float32Array;
      const hist = (await r.read(`${name}.v_hist`)).data as Float32Array;
      const vRow = (await r.read(`${name}.v_row`)).data as Float32Array;
      const vCol = (await r.read(`${name}.v_col`)).data as Float32Array;
      if (scalars.length !== SCALAR_KEYS.length || hist.length !== HIST_BINS) throw new Error(`tensor ${name}: unexpected sizes`);
      let shape = shapes.get(name) ?? [vRow.length, vCol.length];
      const mv = matrixView(shape);
      if (mv.rows !== vRow.length || mv.cols !== vCol.length) shape = [vRow.length, vCol.length];
      const role = roles[name];
      infos.push({ name, shape, rows: vRow.length, cols: vCol.length, ...((TENSOR_ROLES as readonly unknown[]).includes(role) ? { role: role as TensorRole } : {}) });
      energy.push(await extra(name, 'captured_energy'));
      mass.push(await extra(name, 'saliency_mass'));
      parts.push(Float32Array.from(scalars), Float32Array.from(hist), Float32Array.from(vRow), Float32Array.from(vCol));
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const payload = new Float32Array(total);
    let o = 0;
    for (const p of parts) {
      payload.set(p, o);
      o += p.length;
    }
    const timeMeta = Number(r.header.metadata?.time);
    const extras: StatsExtras = {};
    if (energy.some((v) => v !== null)) extras.capturedEnergy = energy;
    if (mass.some((v) => v !== null)) extras.saliencyMass = mass;
    const bytes = encodeStatsFrame({ step, time: Number.isFinite(timeMeta) ? timeMeta : 0, ...(Object.keys(extras).length ? { extras } : {}), tensors: infos }, payload);
    return new HeaderCache().scan(bytes, 0);
  } finally {
    await r.close();
  }
}
