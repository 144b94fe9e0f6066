// The prune panel (viewType `basin.prune`): the pruning trade-off of one checkpoint — metric-versus-density curves
// per score with the dense model as a line, a density slider with per-layer kept fractions, Apply.
//
//   basin.previewPruning(arg)      arg: a Runs-view checkpoint or run, a checkpoint's path or Uri, { runDir },
//                                  { source, sweepFile? }; nothing: quick picks of a run and its checkpoint
//   basin.prunePanelState()        the open panels' state (snapshot, ready, invalid messages…): tests
//   basin.prunePanelDispatch(c, m) hands message m to the panel of checkpoint c as if its webview sent it
//                                  (validated the same way): tests
//
// The panel shows a sweep file (src/files/prune/sweep-file.ts): the newest of its checkpoint in `<run>/prune/`, or
// the one its own sweep job writes. The file is rewritten after every point, so the panel re-reads it when a job
// of its own reports a saved point and when a watcher sees it change (a sweep from the CLI shows live too).
// "Evaluate this point" is a one-density sweep written to `<run>/prune/points/` (out of the sweep list), whose
// points join the curves marked as extra. Jobs run in the worker; their requests answer as soon as the job is
// started (a sweep outlives the webview's request timeout), the state carries their progress.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { PRUNE_DIR, checkSweep, readSweepFile, sweepFileName, type SweepFile } from '../../files/prune/sweep-file';
import { DEFAULT_DENSITIES } from '../../files/prune/options';
import type { RegistryEntry } from '../../files/registry/entry';
import { pruneScoreRegistry } from '../../files/registry/prune-scores';
import { openRun, RUN_FILE } from '../../files/run-record';
import {
  DEFAULT_PRUNE_UI,
  PRUNE_VIEW_TYPE,
  pruneProtocol,
  type PruneApplied,
  type PruneCommandHandlers,
  type PruneCommandParams,
  type PruneJobState,
  type PruneMetrics,
  type PruneNotificationParams,
  type PrunePanelSnapshot,
  type PruneRequestHandlers,
  type PruneRequestTypes,
  type PruneUiState,
} from '../../protocol/panels/prune';
import type { PruneApplyJobParams, PruneSweepJobParams } from '../../protocol/worker';
import { isObject } from '../../protocol/panels/panel';
import { sweepView } from '../prune/sweep-view';
import { PanelController, createWebviewPanel, registerPanelSerializer } from './panel-controller';
import { PanelSet, showGonePanel } from './panel-set';

/** Sub-folder of `<run>/prune/` for the one-density sweeps of "Evaluate this point". */
export const POINTS_DIR = 'points';
/** The scores a new sweep offers checked: both need nothing but the weights. */
export const DEFAULT_SWEEP_SCORES = ['magnitude', 'random'];
/** File changes are read this long after the first one (a sweep rewrites its file after every point). */
const RELOAD_PAUSE_MS = 60;

export interface PrunePanelState {
  checkpoint: string;
  title: string;
  visible: boolean;
  ready: boolean;
  readyCount: number;
  invalidMessages: number;
  webviewErrors: string[];
  ui: PruneUiState | null;
  snapshot: PrunePanelSnapshot;
}

interface Target {
  checkpoint: string;
  runDir: string;
  step: number | null;
  sweepFile?: string;
}

const CK_RE = /[\\/]checkpoints[\\/]step-(\d+)\.safetensors$/;

/** A checkpoint `<run>/checkpoints/step-<n>.safetensors` → its run folder and step. */
function fromCheckpointFile(file: string): Target | undefined {
  const abs = path.resolve(file);
  const m = CK_RE.exec(abs);
  if (!m) return undefined;
  return { checkpoint: abs, runDir: path.dirname(path.dirname(abs)), step: Number(m[1]) };
}

/** A run folder's latest checkpoint on disk. */
async function latestOfRun(runDir: string): Promise<Target | undefined> {
  try {
    const run = await openRun(runDir);
    const ck = run.latestCheckpoint();
    return ck && fs.existsSync(ck.absPath) ? { checkpoint: ck.absPath, runDir: run.dir, step: ck.step } : undefined;
  } catch {
    return undefined;
  }
}

/** What a command argument names (see the header), or undefined. */
async function targetOf(arg: unknown): Promise<Target | undefined> {
  if (typeof arg === 'string') return fromCheckpointFile(arg) ?? (await latestOfRun(path.resolve(arg)));
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? targetOf(arg.fsPath) : undefined;
  if (!isObject(arg)) return undefined;
  const ck = isObject(arg.checkpoint) ? arg.checkpoint.file : undefined;
  let t: Target | undefined;
  if (typeof ck === 'string') t = fromCheckpointFile(ck);
  else if (typeof arg.source === 'string') t = await targetOf(arg.source);
  else if (typeof arg.runDir === 'string') t = await latestOfRun(path.resolve(arg.runDir));
  if (t && typeof arg.sweepFile === 'string') t.sweepFile = path.resolve(arg.sweepFile);
  return t;
}

/** Quick picks: a run with a checkpoint, then (when it has several) the checkpoint. */
async function pickTarget(): Promise<Target | undefined> {
  const files = await vscode.workspace.findFiles(`**/${RUN_FILE}`, '**/node_modules/**', 2000);
  const runs: (vscode.QuickPickItem & { dir: string; steps: { step: number; file: string }[]; time: string })[] = [];
  for (const u of files) {
    try {
      const run = await openRun(path.dirname(u.fsPath));
      const steps = [...new Map(run.record.checkpoints.map((c) => [c.step, path.join(run.dir, c.path)])).entries()]
        .filter(([, f]) => fs.existsSync(f))
        .map(([step, file]) => ({ step, file }))
        .sort((a, b) => b.step - a.step);
      if (!steps.length) continue;
      runs.push({ label: run.record.name, description: `step ${steps[0].step} · ${run.record.status}`, detail: vscode.workspace.asRelativePath(run.dir), dir: run.dir, steps, time: run.record.createdAt ?? '' });
    } catch {
      /* not a readable run: not offered */
    }
  }
  if (!runs.length) {
    void vscode.window.showInformationMessage('Basin: no run with a checkpoint in this workspace to prune. Train a config first.');
    return undefined;
  }
  runs.sort((a, b) => (a.time < b.time ? 1 : -1));
  const run = await vscode.window.showQuickPick(runs, { title: 'Basin: Preview Pruning', placeHolder: 'Run whose checkpoint to prune', matchOnDetail: true });
  if (!run) return undefined;
  let ck = run.steps[0];
  if (run.steps.length > 1) {
    const pick = await vscode.window.showQuickPick(
      run.steps.map((s, i) => ({ label: `Step ${s.step}`, description: i === 0 ? 'latest' : '', s })),
      { title: 'Basin: Preview Pruning', placeHolder: `Checkpoint of ${run.label}` },
    );
    if (!pick) return undefined;
    ck = pick.s;
  }
  return { checkpoint: ck.file, runDir: run.dir, step: ck.step };
}

export class PrunePanels implements vscode.Disposable {
  private readonly set = new PanelSet<PrunePanel, PrunePanelState>((p) => p.target.checkpoint, 'prune');
  constructor(readonly ctx: Ctx) {}

  async open(arg: unknown): Promise<PrunePanelState | undefined> {
    const t = arg === undefined ? await pickTarget() : await targetOf(arg);
    if (!t) {
      if (arg !== undefined) void vscode.window.showErrorMessage(`Basin: ${describeArg(arg)} is not a checkpoint of a run (<run>/checkpoints/step-<n>.safetensors) nor a run folder with one.`);
      return undefined;
    }
    const existing = this.set.find(t.checkpoint);
    if (existing) {
      existing.panel.reveal();
      if (t.sweepFile) await existing.show(t.sweepFile);
      return existing.state();
    }
    const panel = createWebviewPanel(PRUNE_VIEW_TYPE, panelTitle(t), this.ctx.extCtx.extensionUri);
    const p = this.set.adopt(new PrunePanel(this.ctx, panel, t));
    await p.loaded;
    return p.state();
  }

  find(checkpoint: string): PrunePanel | undefined {
    return this.set.find(checkpoint);
  }

  async restore(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const ck = isObject(state) && typeof state.checkpoint === 'string' ? state.checkpoint : undefined;
    const t = ck && fs.existsSync(ck) ? fromCheckpointFile(ck) : undefined;
    if (!t) {
      showGonePanel(panel, this.ctx.extCtx.extensionUri, 'This prune panel’s checkpoint is gone. Open another with “Basin: Preview Pruning”.');
      return;
    }
    this.set.adopt(new PrunePanel(this.ctx, panel, t));
  }

  states(): PrunePanelState[] {
    return this.set.states();
  }

  dispatch(checkpoint: unknown, message: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }> {
    return this.set.dispatch(typeof checkpoint === 'string' ? checkpoint : undefined, message);
  }

  dispose(): void {
    this.set.dispose();
  }
}

function describeArg(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  if (arg instanceof vscode.Uri) return arg.fsPath;
  return JSON.stringify(arg)?.slice(0, 200) ?? String(arg);
}

export function registerPrunePanel(ctx: Ctx): PrunePanels {
  const panels = new PrunePanels(ctx);
  ctx.push(panels);
  ctx.registerCommand('previewPruning', () => (arg: unknown) => panels.open(arg));
  ctx.registerCommand('prunePanelState', () => () => panels.states());
  ctx.registerCommand('prunePanelDispatch', () => (checkpoint: unknown, message: unknown) => panels.dispatch(checkpoint, message));
  ctx.push(registerPanelSerializer(PRUNE_VIEW_TYPE, (panel, state) => panels.restore(panel, state)));
  return panels;
}

function panelTitle(t: Target): string {
  return `Prune: ${path.basename(t.runDir)}${t.step !== null ? ` @ ${t.step}` : ''}`;
}

const idle = (): PruneJobState => ({ status: 'idle', fraction: null, message: null });
const pct = (d: number) => `${Number((100 * d).toFixed(2))}%`;

function metricsOf(m: Record<string, number> | null): PruneMetrics | null {
  if (!m) return null;
  const out: PruneMetrics = {};
  for (const [k, v] of Object.entries(m)) out[k] = Number.isFinite(v) ? v : null;
  return out;
}

type JobSlot = 'sweep' | 'point' | 'apply';

class PrunePanel {
  private readonly view: PanelController<PruneCommandParams, PruneRequestTypes, PruneNotificationParams>;
  private readonly disposables: vscode.Disposable[] = [];
  readonly loaded: Promise<void>;
  private snap: PrunePanelSnapshot;
  private ui: PruneUiState | null = null;
  private invalid = 0;
  private sweepFile: string | null;
  private sweep: SweepFile | null = null;
  private reloadTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();
  /** Job ids of the panel's running jobs, and what each one's params name (to catch its start). */
  private readonly jobIds: Partial<Record<JobSlot, string>> = {};
  private readonly expect: Partial<Record<JobSlot, string>> = {};
  private disposed = false;

  constructor(
    private readonly ctx: Ctx,
    readonly panel: vscode.WebviewPanel,
    readonly target: Target,
  ) {
    panel.title = panelTitle(target);
    this.sweepFile = target.sweepFile ?? null;
    this.snap = {
      checkpoint: target.checkpoint,
      runDir: target.runDir,
      step: target.step,
      name: path.basename(target.runDir),
      sweep: null,
      sweepMessage: '',
      sweepJob: idle(),
      pointJob: idle(),
      applyJob: idle(),
      applied: null,
      scores: pruneScoreRegistry.entries.map((e) => {
        const needs = (e as RegistryEntry).needs;
        return {
          name: e.name,
          doc: e.title,
          needs: [needs?.statistics ? 'training statistics' : '', needs?.data ? 'a calibration pass over training data' : '', needs?.base ? 'a base model' : ''].filter(Boolean).join(', '),
        };
      }),
      defaultScores: DEFAULT_SWEEP_SCORES.filter((s) => pruneScoreRegistry.has(s)),
      defaultDensities: [...DEFAULT_DENSITIES],
      jobsBlocked: null,
    };
    this.view = new PanelController({
      protocol: pruneProtocol,
      panel,
      extensionUri: ctx.extCtx.extensionUri,
      app: 'prune',
      loadingText: 'Loading the pruning sweep…',
      initial: { checkpoint: target.checkpoint, ui: DEFAULT_PRUNE_UI },
      log: (level, message) => this.log(level, message),
      onReady: async () => {
        await this.loaded;
        this.send();
      },
      commands: this.commands,
      requests: this.requests,
    });
    this.view.onDidDispose(() => this.dispose());
    this.disposables.push(
      this.ctx.jobs.onDidStart((job) => {
        for (const slot of ['sweep', 'point', 'apply'] as const) {
          const key = slot === 'apply' ? (job.kind === 'prune-apply' ? job.params.out : undefined) : job.kind === 'prune-sweep' ? job.params.file : undefined;
          if (key && key === this.expect[slot]) {
            this.jobIds[slot] = job.id;
            this.setJob(slot, { status: job.queued ? 'queued' : 'running', fraction: 0, message: 'starting' });
          }
        }
      }),
      this.ctx.jobs.onDidProgress((e) => {
        const slot = (['sweep', 'point', 'apply'] as const).find((s) => this.jobIds[s] === e.job.id);
        if (!slot) return;
        const queued = e.job.queued;
        const line = this.ctx.jobs.progressLine(e.job) || e.job.message || null;
        this.setJob(slot, { status: queued ? 'queued' : 'running', fraction: e.job.fraction ?? null, message: queued ? 'waiting for another job to finish' : line });
        if (e.kind === 'prune-sweep' && slot === 'sweep' && (e.progress.phase === 'saved' || e.progress.phase === 'started')) this.scheduleReload();
      }),
    );
    // Sweeps written by anyone (the CLI too): the panel's file, or a new sweep of its checkpoint.
    const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(path.join(target.runDir, PRUNE_DIR)), '**/*.json'));
    this.disposables.push(w, w.onDidChange(() => this.scheduleReload()), w.onDidCreate(() => this.scheduleReload()));
    this.loaded = this.reload();
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.ctx.log[level](`[prune ${path.basename(this.target.runDir)}] ${message}`);
  }

  /** Shows another sweep file of this checkpoint (the end action of a sweep job). */
  async show(file: string): Promise<void> {
    this.sweepFile = file;
    await this.reload();
  }

  private scheduleReload(): void {
    // A pending reload takes every change made before it runs: not reset by later ones, or a sweep saving points
    // faster than the pause would show nothing until it ends.
    if (this.reloadTimer !== undefined) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = undefined;
      void this.reload();
    }, RELOAD_PAUSE_MS);
  }

  /** Re-reads the sweep file (and the extra points), then sends the state. Serialized: reads never interleave. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload()).catch((e: unknown) => this.log('warn', `reading the sweep: ${(e as Error).message}`));
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    if (this.disposed) return;
    if (!this.sweepFile || (!this.jobIds.sweep && !fs.existsSync(this.sweepFile))) this.sweepFile = await this.newestSweep();
    if (!this.sweepFile) {
      this.sweep = null;
      this.snap.sweep = null;
      this.snap.sweepMessage = 'No pruning sweep of this checkpoint yet. Run one: each score is evaluated at every density.';
    } else if (fs.existsSync(this.sweepFile)) {
      try {
        this.sweep = await readSweepFile(this.sweepFile);
        this.snap.sweep = sweepView(this.sweepFile, this.sweep, await this.extraSweeps());
        this.snap.sweepMessage = '';
      } catch (e) {
        this.snap.sweepMessage = (e as Error).message;
      }
    } else this.snap.sweepMessage = 'The sweep is starting…';
    this.send();
  }

  /** Sweep files of this checkpoint, newest first (reading each: the name does not say whose it is). */
  private async sweepsOf(dir: string): Promise<{ file: string; sweep: SweepFile }[]> {
    let names: string[];
    try {
      names = (await fs.promises.readdir(dir)).filter((n) => /^sweep-\d{8}-\d{6}(-\d+)?\.json$/.test(n));
    } catch {
      return [];
    }
    const out: { file: string; sweep: SweepFile }[] = [];
    for (const n of names.sort().reverse()) {
      const file = path.join(dir, n);
      try {
        const sweep = checkSweep(file, JSON.parse(await fs.promises.readFile(file, 'utf8')));
        if (path.resolve(sweep.checkpoint) === this.target.checkpoint) out.push({ file, sweep });
      } catch {
        /* unreadable or another format: not this panel's */
      }
    }
    return out;
  }

  private async newestSweep(): Promise<string | null> {
    return (await this.sweepsOf(path.join(this.target.runDir, PRUNE_DIR)))[0]?.file ?? null;
  }

  private async extraSweeps(): Promise<SweepFile[]> {
    return (await this.sweepsOf(path.join(this.target.runDir, PRUNE_DIR, POINTS_DIR))).map((x) => x.sweep);
  }

  private newFile(dir: string): string {
    const rel = sweepFileName(new Date()).slice(PRUNE_DIR.length + 1);
    let file = path.join(dir, rel);
    for (let i = 1; fs.existsSync(file) || Object.values(this.expect).includes(file); i++) file = path.join(dir, rel.replace(/\.json$/, `-${i}.json`));
    return file;
  }

  private setJob(slot: JobSlot, s: PruneJobState): void {
    this.snap[`${slot}Job`] = s;
    this.send();
  }

  /** The options of the sweep shown (a point or an apply prunes the same tensors the same way). */
  private sweepOptions(): Pick<PruneSweepJobParams, 'targets' | 'granularity' | 'pattern' | 'base'> {
    const o = this.sweep?.options;
    if (!o) return {};
    return { targets: [...o.targets], granularity: o.granularity, ...(o.pattern ? { pattern: o.pattern } : {}), ...(o.base ? { base: o.base } : {}) };
  }

  /**
   * The parameters the sweep on screen used for a score (wanda's `batches`, sparsegpt's `calibration`, a seed…): a
   * point, an apply or a new sweep with that score uses them too, so it prunes as the curve the user chose from.
   */
  private scoreParamsOf(score: string): Record<string, number | string | boolean> | undefined {
    const entry = this.sweep?.options.scores.find((x) => x.type === score);
    if (!entry) return undefined;
    const params: Record<string, number | string | boolean> = {};
    for (const [k, v] of Object.entries(entry)) if (k !== 'type' && (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean')) params[k] = v;
    return Object.keys(params).length ? params : undefined;
  }

  private blocked(): string | null {
    if (this.ctx.jobs.isTrusted()) return null;
    return 'Basin runs no job in an untrusted workspace: trust it to run a sweep.';
  }

  /** Starts a job in a slot; answers at once with its state, updates the state as it runs and when it ends. */
  private start<K extends 'prune-sweep' | 'prune-apply'>(
    slot: JobSlot,
    kind: K,
    params: K extends 'prune-sweep' ? PruneSweepJobParams : PruneApplyJobParams,
    key: string,
    notify: boolean,
    done: (result: unknown) => void,
  ): PruneJobState {
    const cur = this.snap[`${slot}Job`];
    if (cur.status === 'running' || cur.status === 'queued') throw new Error(`a ${slot === 'point' ? 'point evaluation' : slot} is already running`);
    const why = this.blocked();
    if (why) throw new Error(why);
    this.expect[slot] = key;
    this.setJob(slot, { status: 'queued', fraction: 0, message: 'starting' });
    void (this.ctx.jobs.run(kind, params as never, { notify }) as Promise<{ status: string; result?: unknown; error?: { message: string } } | undefined>)
      .then((end) => {
        delete this.jobIds[slot];
        delete this.expect[slot];
        if (!end) this.setJob(slot, { status: 'failed', fraction: null, message: 'the job did not start' });
        else if (end.status === 'completed') {
          done(end.result);
          this.setJob(slot, { status: 'completed', fraction: 1, message: null });
        } else this.setJob(slot, { status: end.status === 'cancelled' ? 'cancelled' : 'failed', fraction: null, message: end.error?.message ?? end.status });
        void this.reload();
      })
      .catch((e: unknown) => this.setJob(slot, { status: 'failed', fraction: null, message: (e as Error).message }));
    return this.snap[`${slot}Job`];
  }

  // ------------------------------------------------------------------------------------------- messages

  private readonly commands: PruneCommandHandlers = {
    uiState: (ui) => {
      this.ui = ui;
    },
    cancel: ({ job }) => {
      const id = this.jobIds[job];
      if (id) this.ctx.jobs.cancel(id);
    },
    openFile: ({ which }) => {
      const f = which === 'sweep' ? this.sweepFile : this.snap.applied?.report;
      if (f && fs.existsSync(f)) void vscode.window.showTextDocument(vscode.Uri.file(f), { viewColumn: vscode.ViewColumn.Beside, preview: true });
    },
  };

  private readonly requests: PruneRequestHandlers = {
    runSweep: ({ scores, densities }) => {
      for (const s of scores) if (!pruneScoreRegistry.has(s)) throw new Error(`unknown score "${s}" (scores: ${pruneScoreRegistry.names.join(', ')})`);
      const file = this.newFile(path.join(this.target.runDir, PRUNE_DIR));
      const scoreParams = Object.fromEntries(scores.flatMap((sc) => (this.scoreParamsOf(sc) ? [[sc, this.scoreParamsOf(sc)!]] : [])));
      const params: PruneSweepJobParams = { source: this.target.checkpoint, scores: [...scores], densities: [...densities], file, ...this.sweepOptions(), ...(Object.keys(scoreParams).length ? { scoreParams } : {}) };
      // The new sweep is shown from its first write on; the old one stays on screen until then.
      const state = this.start('sweep', 'prune-sweep', params, file, false, () => undefined);
      this.sweepFile = file;
      return state;
    },
    evaluatePoint: ({ score, density }) => {
      if (!pruneScoreRegistry.has(score)) throw new Error(`unknown score "${score}"`);
      const file = this.newFile(path.join(this.target.runDir, PRUNE_DIR, POINTS_DIR));
      const sp = this.scoreParamsOf(score);
      const params: PruneSweepJobParams = { source: this.target.checkpoint, scores: [score], densities: [density], file, ...this.sweepOptions(), ...(sp ? { scoreParams: { [score]: sp } } : {}) };
      return this.start('point', 'prune-sweep', params, file, false, () => undefined);
    },
    apply: ({ score, density }) => {
      if (!pruneScoreRegistry.has(score)) throw new Error(`unknown score "${score}"`);
      const o = this.sweepOptions();
      const tag = o.pattern ? o.pattern.replace(':', 'of') : `d${Number((100 * density).toFixed(2))}`;
      const out = path.join(this.target.runDir, PRUNE_DIR, `${score}-${tag}-step${this.target.step ?? 'x'}`);
      const sp = this.scoreParamsOf(score);
      const params: PruneApplyJobParams = { source: this.target.checkpoint, score, density, out, ...o, ...(sp ? { scoreParams: sp } : {}) };
      return this.start('apply', 'prune-apply', params, out, true, (r) => {
        const res = r as import('../../protocol/worker').PruneApplyJobResult;
        const applied: PruneApplied = { weights: res.weights, report: res.report, score: res.score, density: res.density, kept: res.kept, dense: metricsOf(res.dense), pruned: metricsOf(res.pruned) };
        this.snap.applied = applied;
      });
    },
  };

  /** A message as if from the webview (tests): validated, then handled. */
  async receive(raw: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }> {
    const r = pruneProtocol.parseWebviewMessage(raw);
    if (!r.ok) {
      this.invalid++;
      return { ok: false, reason: r.reason };
    }
    const msg = r.message;
    if (msg.kind === 'command') {
      if (msg.type === 'ready' || msg.type === 'log') return { ok: true };
      pruneProtocol.dispatchCommand({ ...this.commands, ready: () => undefined, log: () => undefined }, msg);
      return { ok: true };
    }
    const res = await pruneProtocol.answerRequest(this.requests, msg);
    return res.ok ? { ok: true, result: res.result } : { ok: false, reason: res.error };
  }

  private send(): void {
    this.snap.jobsBlocked = this.blocked();
    if (this.disposed || !this.view.ready) return;
    this.view.notify('state', this.snap);
  }

  state(): PrunePanelState {
    return {
      checkpoint: this.target.checkpoint,
      title: this.panel.title,
      visible: this.panel.visible,
      ready: this.view.ready,
      readyCount: this.view.readyCount,
      invalidMessages: this.view.invalidMessages + this.invalid,
      webviewErrors: this.view.webviewErrors,
      ui: this.ui,
      snapshot: JSON.parse(JSON.stringify({ ...this.snap, jobsBlocked: this.blocked() })) as PrunePanelSnapshot,
    };
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.reloadTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
