// The merge panel (viewType `basin.merge`): pick which task parameters go into a merge, on a tasks × layers grid.
//
//   basin.openMergePanel(arg)     arg: a *.merge.yaml Uri or path, { configFile }, or nothing (the active editor's
//                                 merge config, else a quick pick of the workspace's merge configs)
//   basin.mergePanelState()       the open panels' state (snapshot, ready, invalid messages…): tests
//   basin.mergePanelDispatch(f, m) hands message m to the panel of config f as if its webview sent it (validated
//                                 the same way): tests
//
// The panel's state IS the merge config. The grid (experts × layers; merge-model.ts) is built from the YAML and
// its plan; an edit in the webview becomes a YAML edit (Document API, comments kept) applied through a
// WorkspaceEdit — so Undo in the editor works — and saved, so the CLI and the merge job read the same file; the grid
// shown is then re-read from the new text. Typing in the YAML updates the panel (debounced); a YAML with errors
// shows its diagnostics over the last good grid instead of breaking it.
//
// GPU work runs as `merge` jobs in the worker (never in an untrusted workspace: the job manager refuses): the
// saliency grid (a curvature preview of the experts with statistics), the preview (kept fraction and sign
// conflicts per layer, on a sample: quick on small models; live while the user edits when switched on) and the
// merge itself (a notification with progress and Cancel; the panel shows the progress and a Cancel button too).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import type { JobOutcome } from '../jobs/jobs';
import {
  DEFAULT_MERGE_UI,
  MERGE_VIEW_TYPE,
  mergeProtocol,
  type MergeCommandHandlers,
  type MergeCommandParams,
  type MergeDiagnostic,
  type MergeEditRequest,
  type MergeGridCell,
  type MergeGridRow,
  type MergeJobState,
  type MergeMethodForm,
  type MergeNotificationParams,
  type MergePanelSnapshot,
  type MergePreviewState,
  type MergeRequestHandlers,
  type MergeRequestTypes,
  type MergeResultState,
  type MergeUiState,
  MERGE_PREVIEW_ROWS,
} from '../../protocol/panels/merge';
import type { MergeJobParams, MergeJobResult } from '../../protocol/worker';
import { isObject } from '../../protocol/panels/panel';
import { PanelController, createWebviewPanel, registerPanelSerializer } from './panel-controller';
import { PanelSet, showGonePanel } from './panel-set';

type MergeLib = typeof import('../merge/merge-lib');
type GridModel = import('../merge/merge-lib').GridModel;
type MergeConfig = import('../merge/merge-lib').MergeConfig;
type MergePlan = import('../merge/merge-lib').MergePlan;

let libPromise: Promise<MergeLib> | undefined;
/** The merge machinery (yaml, ajv, planner), loaded on first use: dist/merge-lib.js, or the source under tsx. */
export function loadMergeLib(): Promise<MergeLib> {
  libPromise ??= (async () => {
    const bundled = path.join(__dirname, 'merge-lib.js');
    if (fs.existsSync(bundled)) return require(bundled) as MergeLib;
    const source = '../merge/merge-lib.js'; // non-literal: esbuild must not bundle it
    return (await import(source)) as MergeLib;
  })();
  return libPromise;
}

/** Typing in the YAML updates the panel after this pause. */
const YAML_DEBOUNCE_MS = 300;
/** Live preview after an edit, after this pause. */
const LIVE_PREVIEW_DEBOUNCE_MS = 400;
/** Rows of each tensor the saliency grid reads (blocks spread over the tensor; its mass is scaled to the whole tensor). */
const SALIENCY_ROWS = 256;
/** What Evaluate does, beside its button until it has run (the experts' rows show their own runs' metrics until then). */
const EVALUATE_NOTE =
  'Evaluate scores the merged model, the base and every expert on each expert’s task (the validation split of its run’s config).';

export interface MergePanelState {
  configFile: string;
  title: string;
  visible: boolean;
  ready: boolean;
  readyCount: number;
  invalidMessages: number;
  webviewErrors: string[];
  ui: MergeUiState | null;
  snapshot: MergePanelSnapshot;
}

function configFileOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return path.resolve(arg);
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? arg.fsPath : undefined;
  if (isObject(arg)) {
    if (typeof arg.configFile === 'string') return path.resolve(arg.configFile);
    if (arg.configFile instanceof vscode.Uri) return arg.configFile.fsPath;
  }
  return undefined;
}

const MERGE_FILE_RE = /\.merge\.ya?ml$/i;

async function pickMergeConfig(): Promise<string | undefined> {
  const active = vscode.window.activeTextEditor?.document;
  if (active && active.uri.scheme === 'file' && MERGE_FILE_RE.test(active.fileName)) return active.fileName;
  // The pick shows at once (busy) and fills when the search ends: a large workspace takes a while to search.
  const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { file: string }>();
  qp.title = 'Basin: Open in Merge Panel';
  qp.placeholder = 'Merge config';
  qp.busy = true;
  qp.show();
  const picked = new Promise<string | undefined>((resolve) => {
    qp.onDidAccept(() => resolve(qp.selectedItems[0]?.file));
    qp.onDidHide(() => resolve(undefined));
  });
  const files = await vscode.workspace.findFiles('**/*.merge.{yaml,yml}', '**/node_modules/**', 2000);
  qp.busy = false;
  if (!files.length) {
    qp.hide();
    void vscode.window.showInformationMessage('Basin: no merge configs (*.merge.yaml) in this workspace. Make one with “Basin: New Merge”.');
    return undefined;
  }
  qp.items = files.map((f) => ({ label: path.basename(f.fsPath), description: vscode.workspace.asRelativePath(f), file: f.fsPath }));
  const file = await picked;
  qp.dispose();
  return file;
}

export class MergePanels implements vscode.Disposable {
  private readonly set = new PanelSet<MergePanel, MergePanelState>((p) => p.configFile, 'merge');
  constructor(readonly ctx: Ctx) {}

  async open(arg: unknown): Promise<MergePanelState | undefined> {
    const file = configFileOf(arg) ?? (await pickMergeConfig());
    if (!file) return undefined;
    if (!MERGE_FILE_RE.test(file) || !fs.existsSync(file)) {
      void vscode.window.showErrorMessage(`Basin: ${file} is not a merge config (*.merge.yaml).`);
      return undefined;
    }
    const existing = this.set.find(file);
    if (existing) {
      existing.panel.reveal();
      return existing.state();
    }
    const panel = createWebviewPanel(MERGE_VIEW_TYPE, panelTitle(file), this.ctx.extCtx.extensionUri);
    const p = this.set.adopt(new MergePanel(this.ctx, panel, path.resolve(file)));
    await p.loaded;
    return p.state();
  }

  find(file: string): MergePanel | undefined {
    return this.set.find(file);
  }

  async restore(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const file = isObject(state) && typeof state.configFile === 'string' ? state.configFile : undefined;
    if (!file || !fs.existsSync(file)) {
      showGonePanel(panel, this.ctx.extCtx.extensionUri, 'This merge panel has no merge config to show. Open one with “Basin: Open in Merge Panel”.');
      return;
    }
    this.set.adopt(new MergePanel(this.ctx, panel, path.resolve(file)));
  }

  states(): MergePanelState[] {
    return this.set.states();
  }

  dispatch(file: unknown, message: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }> {
    return this.set.dispatch(configFileOf(file), message);
  }

  dispose(): void {
    this.set.dispose();
  }
}

export function registerMergePanel(ctx: Ctx): MergePanels {
  const panels = new MergePanels(ctx);
  ctx.push(panels);
  ctx.registerCommand('openMergePanel', () => (arg: unknown) => panels.open(arg));
  ctx.registerCommand('mergePanelState', () => () => panels.states());
  ctx.registerCommand('mergePanelDispatch', () => (file: unknown, message: unknown) => panels.dispatch(file, message));
  ctx.push(registerPanelSerializer(MERGE_VIEW_TYPE, (panel, state) => panels.restore(panel, state)));
  return panels;
}

function panelTitle(file: string): string {
  return `Merge: ${path.basename(file).replace(MERGE_FILE_RE, '')}`;
}

const idleJob = (): MergeJobState => ({ status: 'idle', fraction: null, message: null });
const idlePreview = (): MergePreviewState => ({ status: 'idle', message: null, layers: [], seconds: null, sample: null });

class MergePanel {
  private readonly view: PanelController<MergeCommandParams, MergeRequestTypes, MergeNotificationParams>;
  private readonly disposables: vscode.Disposable[] = [];
  readonly loaded: Promise<void>;
  private lib: MergeLib | undefined;
  private text = '';
  private config: MergeConfig | null = null;
  private plan: MergePlan | null = null;
  private grid: GridModel | null = null;
  private snap: MergePanelSnapshot;
  /** The last completed merge (its output and models), for Evaluate. */
  private lastMerge: MergeJobResult | null = null;
  private ui: MergeUiState | null = null;
  private invalid = 0;
  private yamlTimer: NodeJS.Timeout | undefined;
  private previewTimer: NodeJS.Timeout | undefined;
  private previewRunning = false;
  private previewAgain = false;
  private saliencyKey = '';
  private saliencyReport: MergeJobResult | null = null;
  private mergeJobId: string | undefined;
  private reloadChain: Promise<void> = Promise.resolve();
  private disposed = false;

  constructor(
    private readonly ctx: Ctx,
    readonly panel: vscode.WebviewPanel,
    readonly configFile: string,
  ) {
    panel.title = panelTitle(configFile);
    this.snap = this.emptySnapshot();
    this.view = new PanelController({
      protocol: mergeProtocol,
      panel,
      extensionUri: ctx.extCtx.extensionUri,
      app: 'merge',
      loadingText: 'Loading the merge…',
      initial: { configFile, ui: DEFAULT_MERGE_UI },
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
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document.uri.fsPath === this.configFile && e.contentChanges.length) this.scheduleYaml();
      }),
      this.ctx.jobs.onDidStart((job) => {
        if (job.kind === 'merge' && path.resolve(job.params.configFile) === this.configFile && !job.params.preview) {
          this.mergeJobId = job.id;
          this.setJob({ status: job.queued ? 'queued' : 'running', fraction: 0, message: 'starting' });
        }
      }),
      this.ctx.jobs.onDidProgress((e) => {
        if (e.kind !== 'merge' || e.job.id !== this.mergeJobId) return;
        const p = e.progress;
        this.setJob({
          status: p.phase === 'queued' ? 'queued' : 'running',
          fraction: p.total ? p.done / p.total : null,
          message: p.phase === 'queued' ? 'waiting for another job' : p.total ? `tensor ${p.done}/${p.total}` : 'reading the models',
        });
      }),
    );
    const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(path.dirname(configFile)), path.basename(configFile)));
    this.disposables.push(w, w.onDidChange(() => this.scheduleYaml()));
    this.loaded = this.reload();
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.ctx.log[level](`[merge ${path.basename(this.configFile)}] ${message}`);
  }

  private emptySnapshot(): MergePanelSnapshot {
    return {
      configFile: this.configFile,
      name: path.basename(this.configFile),
      diagnostics: [],
      stale: false,
      readOnly: 'loading',
      method: null,
      methods: [],
      base: null,
      columns: [],
      rows: [],
      cells: [],
      cellParams: [],
      weightParam: null,
      saliency: { status: 'idle', message: null },
      preview: idlePreview(),
      livePreview: false,
      job: idleJob(),
      result: null,
      edits: 0,
    };
  }

  /** The config's text: the open document's (unsaved edits included), else the file's. */
  private currentText(): string {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === this.configFile);
    if (doc) return doc.getText();
    return fs.readFileSync(this.configFile, 'utf8');
  }

  private scheduleYaml(): void {
    clearTimeout(this.yamlTimer);
    this.yamlTimer = setTimeout(() => void this.reload(), YAML_DEBOUNCE_MS);
  }

  /** Re-reads the config (one at a time, in order) and sends the new state. */
  reload(text?: string): Promise<void> {
    this.reloadChain = this.reloadChain.then(() => this.doReload(text)).catch((e: unknown) => this.log('error', `reading the config: ${(e as Error).message}`));
    return this.reloadChain;
  }

  private async doReload(textIn?: string): Promise<void> {
    if (this.disposed) return;
    const lib = (this.lib ??= await loadMergeLib());
    let text: string;
    try {
      text = textIn ?? this.currentText();
    } catch (e) {
      this.fail([{ line: 1, column: 1, message: `cannot read ${this.configFile}: ${(e as Error).message}`, severity: 'error' }]);
      return;
    }
    this.text = text;
    const diags = lib.validateMergeConfigText(text, this.configFile);
    const errors = diags.filter((d) => d.severity === 'error');
    const asDiag = (d: (typeof diags)[number]): MergeDiagnostic => ({ line: d.line, column: d.column, message: d.field ? `${d.field}: ${d.message}` : d.message, severity: d.severity === 'error' ? 'error' : 'warning' });
    if (errors.length) {
      this.fail(diags.map(asDiag));
      return;
    }
    let config: MergeConfig;
    let plan: MergePlan;
    try {
      config = lib.parseMergeConfig(text, this.configFile);
      plan = await lib.planMerge(config);
    } catch (e) {
      const msg = (e as Error).message;
      this.fail([...diags.map(asDiag), { line: 1, column: 1, message: msg, severity: 'error' }]);
      return;
    }
    const readOnly = lib.notGridEditable(config);
    this.config = config;
    this.plan = plan;
    this.grid = readOnly ? null : lib.buildGrid(config, plan);
    this.snap = { ...this.snap, ...this.describe(lib, config, this.grid, readOnly), diagnostics: diags.map(asDiag), stale: false };
    this.applySaliency();
    this.send();
    void this.maybeSaliency();
  }

  private fail(diagnostics: MergeDiagnostic[]): void {
    this.snap = { ...this.snap, diagnostics, stale: this.grid !== null };
    if (!this.grid) this.snap.readOnly = 'the merge config has errors';
    this.send();
  }

  /** The snapshot's config part: method form, rows, columns, cells. */
  private describe(lib: MergeLib, config: MergeConfig, grid: GridModel | null, readOnly: string | null): Partial<MergePanelSnapshot> {
    const entry = lib.mergeMethodRegistry.get(config.method) as import('../../files/registry/entry').RegistryEntry;
    const specs = entry.params as Record<string, import('../../files/registry/entry').ParamSpec>;
    const scalar = (v: unknown): v is number | boolean | string => typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string';
    const method: MergeMethodForm = {
      name: entry.name,
      title: entry.title,
      doc: entry.doc ?? '',
      needs: { base: !!entry.needs?.base, statistics: !!entry.needs?.statistics, data: !!entry.needs?.data },
      params: Object.entries(specs).map(([name, s]) => {
        // A global share (slerp's t) the grid writes per layer: the form shows the value behind the panel's entries.
        const g = grid?.weightParam?.global && grid.weightParam.name === name ? lib.restOf(config.parameters[name], grid) : config.parameters[name];
        const num = s.type === 'number' || s.type === 'integer' ? s : null;
        return {
          name,
          type: s.type,
          doc: s.doc,
          perModel: !!s.perModel,
          default: s.default === undefined ? null : Array.isArray(s.default) ? null : (s.default as number | boolean | string),
          minimum: num?.minimum ?? null,
          maximum: num?.maximum ?? null,
          exclusiveMinimum: num?.exclusiveMinimum ?? null,
          exclusiveMaximum: num?.exclusiveMaximum ?? null,
          value: scalar(g) ? g : null,
          text: g === undefined || scalar(g) ? null : JSON.stringify(g),
        };
      }),
    };
    const methods = lib.MERGE_METHOD_ENTRIES.map((e) => ({ name: e.name, title: e.title }));
    if (!grid) return { readOnly, method, methods, base: config.baseModel?.written ?? null, columns: [], rows: [], cells: [], cellParams: [], weightParam: null };
    const perModel = method.params.filter((p) => p.perModel).map((p) => p.name);
    const sources = config.slices[0]?.sources ?? [];
    const rows: MergeGridRow[] = grid.rows.map((r) => {
      const src = sources[r.yamlIndex];
      const params: MergeGridRow['params'] = {};
      const paramText: MergeGridRow['paramText'] = {};
      for (const p of perModel) {
        const rest = lib.restOf(src.parameters[p], grid);
        params[p] = typeof rest === 'number' || typeof rest === 'boolean' ? rest : null;
        if (rest !== undefined && params[p] === null) paramText[p] = JSON.stringify(rest);
      }
      const run = lib.runOfModel(r.path, r.kind);
      const prev = this.snap.rows.find((x) => x.written === r.written);
      return {
        written: r.written,
        kind: r.kind,
        params,
        paramText,
        noStatistics: prev?.noStatistics ?? null,
        metrics: run ? lib.lastValidationMetrics(run.runDir, run.step) : null,
      };
    });
    const cells: MergeGridCell[][] = grid.cells.map((row) =>
      row.map((c) => ({
        weight: c.values.weight ?? null,
        density: c.values.density ?? null,
        overrideWeight: c.overrides.weight ?? null,
        overrideDensity: c.overrides.density ?? null,
        saliency: null,
      })),
    );
    return {
      readOnly,
      method,
      methods,
      base: config.baseModel?.written ?? null,
      columns: grid.columns.map((c) => ({ key: c.key, label: c.label, layer: c.layer, tensors: c.tensors.length })),
      rows,
      cells,
      cellParams: grid.cellParams,
      weightParam: grid.weightParam?.name ?? null,
    };
  }

  // ------------------------------------------------------------------------------------------- saliency

  private applySaliency(): void {
    if (!this.grid || !this.saliencyReport || !this.lib) return;
    const s = this.lib.saliencyCells(this.saliencyReport, this.grid);
    this.snap.cells.forEach((row, r) => row.forEach((c, ci) => (c.saliency = s[r]?.[ci] ?? null)));
    const missing = this.saliencyReport.noStatistics ?? [];
    this.snap.rows.forEach((row) => {
      row.noStatistics = missing.find((m) => m.written === row.written)?.message ?? null;
    });
  }

  /** Runs the saliency job when the experts or the base changed since the last one. */
  private async maybeSaliency(force = false): Promise<void> {
    const c = this.config;
    if (!c || !this.grid) return;
    if (!c.baseModel) {
      this.snap.saliency = { status: 'unavailable', message: 'saliency needs a base model (τ = expert − base)' };
      this.send();
      return;
    }
    const key = JSON.stringify([c.baseModel.path, this.grid.rows.map((r) => r.path)]);
    if (!force && key === this.saliencyKey) return;
    if (this.isDirty()) {
      this.snap.saliency = { status: 'idle', message: 'save the config to compute the saliency' };
      this.send();
      return;
    }
    this.saliencyKey = key;
    this.snap.saliency = { status: 'running', message: 'reading the training statistics…' };
    this.send();
    const params: MergeJobParams = { configFile: this.configFile, saliency: true, preview: { tensors: Math.max(1, this.plan?.tasks.length ?? 1), rows: SALIENCY_ROWS } };
    const end = await this.ctx.jobs.run('merge', params, { notify: false });
    if (this.disposed) return;
    if (!end) {
      this.snap.saliency = { status: 'unavailable', message: 'no jobs run in an untrusted workspace' };
      this.saliencyKey = '';
    } else if (end.status === 'completed' && end.result) {
      this.saliencyReport = end.result;
      const missing = end.result.noStatistics?.length ?? 0;
      this.snap.saliency = { status: 'done', message: missing ? `${missing} expert${missing > 1 ? 's have' : ' has'} no training statistics` : null };
      this.applySaliency();
    } else {
      this.snap.saliency = { status: 'error', message: end.error?.message ?? end.status };
      this.saliencyKey = '';
    }
    this.send();
  }

  private isDirty(): boolean {
    return !!vscode.workspace.textDocuments.find((d) => d.uri.fsPath === this.configFile)?.isDirty;
  }

  // ---------------------------------------------------------------------------------------------- edits

  /** Applies an edit to the YAML (WorkspaceEdit: undoable), saves it, and re-reads the grid from the new text. */
  async edit(req: MergeEditRequest): Promise<void> {
    await this.reloadChain;
    const lib = (this.lib ??= await loadMergeLib());
    if (!this.grid && req.kind !== 'setMethod' && req.kind !== 'setGlobal') throw new Error(this.snap.readOnly ?? 'the grid cannot be edited now');
    if (this.snap.stale) throw new Error('the merge config has errors: fix them in the YAML first');
    const before = this.currentText();
    const grid = this.grid ?? { file: this.configFile, method: this.config?.method ?? '', weightParam: null, sourcesPath: ['models'], columns: [], rows: [], cells: [], containers: [], cellParams: [] };
    const after = lib.editMergeYaml(before, grid, req);
    const delta = lib.textDelta(before, after);
    this.snap.edits++;
    if (!delta) {
      this.send();
      return;
    }
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(this.configFile));
    const we = new vscode.WorkspaceEdit();
    we.replace(doc.uri, new vscode.Range(doc.positionAt(delta.start), doc.positionAt(delta.end)), delta.text);
    if (!(await vscode.workspace.applyEdit(we))) throw new Error('VS Code refused the edit of the merge config');
    await doc.save();
    clearTimeout(this.yamlTimer); // the change event's reload is this one
    await this.reload(doc.getText());
    if (this.snap.livePreview) this.schedulePreview();
  }

  // -------------------------------------------------------------------------------------------- preview

  private schedulePreview(): void {
    clearTimeout(this.previewTimer);
    this.previewTimer = setTimeout(() => void this.preview(), LIVE_PREVIEW_DEBOUNCE_MS);
  }

  async preview(): Promise<MergePreviewState> {
    if (this.previewRunning) {
      this.previewAgain = true;
      return this.snap.preview;
    }
    await this.reloadChain;
    if (!this.grid || this.snap.stale) {
      this.snap.preview = { ...idlePreview(), status: 'error', message: this.snap.stale ? 'the merge config has errors' : (this.snap.readOnly ?? 'nothing to preview') };
      this.send();
      return this.snap.preview;
    }
    if (this.isDirty()) await vscode.workspace.textDocuments.find((d) => d.uri.fsPath === this.configFile)?.save();
    this.previewRunning = true;
    this.snap.preview = { ...this.snap.preview, status: 'running', message: 'merging a sample…' };
    this.send();
    const t0 = performance.now();
    try {
      const tensors = Math.max(1, this.plan?.tasks.length ?? 1);
      const end: JobOutcome<'merge'> | undefined = await this.ctx.jobs.run('merge', { configFile: this.configFile, preview: { tensors, rows: MERGE_PREVIEW_ROWS } }, { notify: false });
      if (!end) this.snap.preview = { ...idlePreview(), status: 'error', message: 'no jobs run in an untrusted workspace' };
      else if (end.status === 'completed' && end.result && this.grid && this.lib) {
        const layers = this.lib.previewByLayer(end.result, this.grid);
        const seconds = (performance.now() - t0) / 1000;
        this.snap.preview = { status: 'done', message: null, layers, seconds, sample: end.result.sample ?? null };
        this.log('info', `preview: ${end.result.tensors.length} tensors × ${MERGE_PREVIEW_ROWS} rows in ${seconds.toFixed(2)} s`);
      } else this.snap.preview = { ...this.snap.preview, status: 'error', message: end.error?.message ?? end.status };
    } finally {
      this.previewRunning = false;
    }
    this.send();
    if (this.previewAgain) {
      this.previewAgain = false;
      void this.preview();
    }
    return this.snap.preview;
  }

  // ------------------------------------------------------------------------------------------------ merge

  private setJob(job: MergeJobState): void {
    this.snap.job = job;
    this.send();
  }

  async runMerge(force: boolean): Promise<MergeJobState> {
    await this.reloadChain;
    if (this.snap.stale || !this.config) throw new Error('the merge config has errors: fix them in the YAML first');
    if (this.isDirty()) await vscode.workspace.textDocuments.find((d) => d.uri.fsPath === this.configFile)?.save();
    this.snap.result = null;
    const end = await this.ctx.jobs.run('merge', { configFile: this.configFile, ...(force ? { force } : {}) });
    this.mergeJobId = undefined;
    if (!end) {
      this.setJob({ status: 'failed', fraction: null, message: 'no jobs run in an untrusted workspace' });
      return this.snap.job;
    }
    if (end.status === 'completed' && end.result) {
      this.lastMerge = end.result;
      this.snap.result = this.resultTable(end.result);
      this.setJob({ status: 'completed', fraction: 1, message: `${end.result.tensors.length} tensors in ${end.result.seconds.toFixed(1)} s` });
    } else this.setJob({ status: end.status, fraction: null, message: end.error?.message ?? (end.status === 'cancelled' ? 'cancelled' : null) });
    return this.snap.job;
  }

  private resultTable(r: MergeJobResult): MergeResultState {
    const lib = this.lib!;
    const rows: MergeResultState['rows'] = [{ label: 'merged', role: 'merged', metrics: null, note: 'not evaluated yet: press Evaluate' }];
    for (const m of r.models) {
      const run = lib.runOfModel(m.path, this.kindOf(m.path));
      const metrics = run ? lib.lastValidationMetrics(run.runDir, run.step) : null;
      rows.push({ label: m.written, role: m.role === 'base' ? 'base' : 'expert', metrics, note: run ? (metrics ? 'from its run' : 'no validation metrics in its run') : 'not a Basin run' });
    }
    const keys = [...new Set(rows.flatMap((x) => Object.keys(x.metrics ?? {})))].sort();
    const experts = r.models.filter((m) => m.role !== 'base').length;
    const kept = Array.from({ length: experts }, (_, e) => {
      let k = 0;
      let n = 0;
      for (const t of r.tensors) {
        const w = t.shape.reduce((a, b) => a * b, 1);
        k += (t.keptFraction[e] ?? 0) * w;
        n += w;
      }
      return n ? k / n : 0;
    });
    let sc = 0;
    let n = 0;
    for (const t of r.tensors) {
      const w = t.shape.reduce((a, b) => a * b, 1);
      sc += t.signConflict * w;
      n += w;
    }
    return { output: r.output ?? '', seconds: r.seconds, tensors: r.tensors.length, bytesWritten: r.bytesWritten, metricKeys: keys, rows, kept, signConflict: n ? sc / n : 0, evaluateNote: EVALUATE_NOTE };
  }

  /**
   * Evaluate: the merged model, the base and every expert on each expert's own task (experts that are Basin runs:
   * their recorded config is the task), one `eval-weights` job; the result table then shows per task the
   * validation accuracy (or loss when a task reports no accuracy) and the mean over tasks.
   */
  private async evaluate(): Promise<{ started: boolean; message: string }> {
    const r = this.lastMerge;
    const table = this.snap.result;
    if (!r || !r.output || !table) return { started: false, message: 'run the merge first' };
    const lib = this.lib!;
    const taskRuns = r.models.filter((m) => m.role !== 'base').map((m) => ({ m, run: lib.runOfModel(m.path, this.kindOf(m.path)) })).filter((x) => x.run);
    if (!taskRuns.length) return { started: false, message: 'no expert is a Basin run, so no task data is known: evaluate with `basin eval <model> --task <config>`' };
    const models = [r.output, ...r.models.map((m) => m.path)];
    const end = await this.ctx.jobs.run('eval-weights', { models, tasks: taskRuns.map((x) => x.run!.runDir) });
    if (!end || end.status !== 'completed' || !end.result) return { started: true, message: end?.error?.message ?? `evaluation ${end?.status ?? 'not run (untrusted workspace)'}` };
    const res = end.result.results;
    const metric = res.every((row) => row.every((x) => 'accuracy' in x)) ? 'accuracy' : 'loss';
    const keys = taskRuns.map((x) => `${metric === 'accuracy' ? 'acc' : 'loss'} · ${path.basename(x.m.written)}`);
    const meanKey = `${metric === 'accuracy' ? 'acc' : 'loss'} · mean`;
    table.metricKeys = [...keys, meanKey];
    table.rows = table.rows.map((row, i) => {
      const vals = res.map((taskRow) => taskRow[i]?.[metric]).filter((v): v is number => Number.isFinite(v));
      const metrics: Record<string, number> = {};
      keys.forEach((k, t) => {
        const v = res[t][i]?.[metric];
        if (Number.isFinite(v)) metrics[k] = v;
      });
      if (vals.length === keys.length) metrics[meanKey] = vals.reduce((a, b) => a + b, 0) / vals.length;
      return { ...row, metrics, note: null };
    });
    table.evaluateNote = null;
    this.send();
    return { started: true, message: `evaluated ${models.length} models on ${keys.length} tasks (validation ${metric})` };
  }

  private kindOf(p: string): string {
    return this.config ? (this.config.slices.flatMap((s) => s.sources.map((x) => x.model)).concat(this.config.baseModel ? [this.config.baseModel] : []).find((m) => m.path === p)?.kind ?? 'safetensors') : 'safetensors';
  }

  // ------------------------------------------------------------------------------------------- messages

  private readonly commands: MergeCommandHandlers = {
    uiState: (ui) => {
      this.ui = ui;
    },
    edit: (req) => {
      void this.edit(req).catch((e: unknown) => this.editFailed(e));
    },
    openConfig: () => {
      void vscode.window.showTextDocument(vscode.Uri.file(this.configFile), { viewColumn: vscode.ViewColumn.Beside, preview: false });
    },
    livePreview: ({ on }) => {
      this.snap.livePreview = on;
      this.send();
      if (on) void this.preview();
    },
    cancel: () => {
      if (this.mergeJobId) this.ctx.jobs.cancel(this.mergeJobId);
    },
  };

  private editFailed(e: unknown): void {
    const msg = (e as Error).message;
    this.log('warn', `edit refused: ${msg}`);
    void vscode.window.showWarningMessage(`Basin: ${msg}`);
    this.send();
  }

  private readonly requests: MergeRequestHandlers = {
    preview: () => this.preview(),
    runMerge: ({ force }) => this.runMerge(force),
    refreshSaliency: async () => {
      await this.maybeSaliency(true);
      return { status: this.snap.saliency.status };
    },
    evaluate: () => this.evaluate(),
  };

  /** A message as if from the webview (tests): validated, then handled; an edit is awaited. */
  async receive(raw: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }> {
    const r = mergeProtocol.parseWebviewMessage(raw);
    if (!r.ok) {
      this.invalid++;
      return { ok: false, reason: r.reason };
    }
    const msg = r.message;
    if (msg.kind === 'command') {
      if (msg.type === 'edit') {
        try {
          await this.edit(msg.params as MergeEditRequest);
        } catch (e) {
          return { ok: false, reason: (e as Error).message };
        }
        return { ok: true };
      }
      if (msg.type === 'ready' || msg.type === 'log') return { ok: true };
      mergeProtocol.dispatchCommand({ ...this.commands, ready: () => undefined, log: () => undefined }, msg);
      return { ok: true };
    }
    const res = await mergeProtocol.answerRequest(this.requests, msg);
    return res.ok ? { ok: true, result: res.result } : { ok: false, reason: res.error };
  }

  private send(): void {
    if (this.disposed || !this.view.ready) return;
    this.view.notify('state', this.snap);
  }

  state(): MergePanelState {
    return {
      configFile: this.configFile,
      title: this.panel.title,
      visible: this.panel.visible,
      ready: this.view.ready,
      readyCount: this.view.readyCount,
      invalidMessages: this.view.invalidMessages + this.invalid,
      webviewErrors: this.view.webviewErrors,
      ui: this.ui,
      snapshot: JSON.parse(JSON.stringify(this.snap)) as MergePanelSnapshot,
    };
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.yamlTimer);
    clearTimeout(this.previewTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
