// The "Runs" view (activity bar container "Basin"): the workspace's run folders, each with its config, its last
// metrics row and its checkpoints; a checkpoint expands to its tensors (name, shape, dtype, and v mean from the
// run's `stats/step-<n>.safetensors` when the trainer wrote one).
//
// Everything comes from files, read in the extension host with bounded reads: run.json, the tail of
// metrics.jsonl, a checkpoint's safetensors HEADER (never its weights), and from the stats file only the small
// `<weight>.scalars` tensors. No model is loaded here and nothing touches the GPU.
//
// Every element carries `runDir` (absolute run folder): the context-menu commands (basin.resumeRun,
// basin.openStatistics, basin.revealRun, basin.deleteRun) receive the element itself as their first argument.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { SafetensorsReader, readSafetensorsHeader, type SafetensorsDType } from '../../files/safetensors';
import { SCALAR_KEYS } from '../../protocol/stats';
import { isFinishedRun, latestExistingCheckpoint, type CheckpointInfo, type RunIndex, type RunInfo } from './run-index';

export const RUNS_VIEW_ID = 'basin.runs';
/** Suffix of the per-weight scalars tensor in `stats/step-<n>.safetensors` (values in SCALAR_KEYS order). */
export const SCALARS_SUFFIX = '.scalars';
/** Most tensors listed under one checkpoint. */
const MAX_TENSORS = 2000;

interface NodeBase {
  /** Absolute run folder. */
  readonly runDir: string;
  readonly id: string;
}
export interface RunNode extends NodeBase {
  readonly kind: 'run';
  info: RunInfo;
}
export interface ConfigNode extends NodeBase {
  readonly kind: 'config';
  readonly info: RunInfo;
}
export interface MetricsNode extends NodeBase {
  readonly kind: 'metrics';
  readonly info: RunInfo;
}
export interface MetricNode extends NodeBase {
  readonly kind: 'metric';
  readonly key: string;
  readonly value: unknown;
}
export interface CheckpointsNode extends NodeBase {
  readonly kind: 'checkpoints';
  readonly info: RunInfo;
}
export interface CheckpointNode extends NodeBase {
  readonly kind: 'checkpoint';
  readonly checkpoint: CheckpointInfo;
}
export interface TensorNode extends NodeBase {
  readonly kind: 'tensor';
  readonly step: number;
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: number[];
  readonly numel: number;
  /** Mean of AdamW's second moment from the stats file; undefined when there is none. */
  readonly vMean?: number;
  /** Every scalar of the stats file for this weight (SCALAR_KEYS), when present. */
  readonly scalars?: Record<string, number>;
}
export interface InfoNode extends NodeBase {
  readonly kind: 'info';
  readonly label: string;
  readonly description?: string;
  readonly tooltip?: string;
  readonly icon?: string;
}
export type RunsNode = RunNode | ConfigNode | MetricsNode | MetricNode | CheckpointsNode | CheckpointNode | TensorNode | InfoNode;

// ------------------------------------------------------------------------------------------------ formatting

/** 0.00123 → "1.230e-3", 1234.5 → "1234.5", 3 → "3". */
export function fmt(v: unknown): string {
  if (typeof v !== 'number') return v === null || v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** "step 400 · loss 1.234 · lr 3e-4" from a metrics row. */
export function metricsSummary(m: Record<string, unknown> | null | undefined): string {
  if (!m) return '';
  const parts: string[] = [];
  if (typeof m.step === 'number') parts.push(`step ${m.step}`);
  for (const k of ['loss', 'valLoss', 'valMetric', 'lr']) if (typeof m[k] === 'number') parts.push(`${k} ${fmt(m[k])}`);
  if (parts.length <= 1) {
    for (const [k, v] of Object.entries(m)) {
      if (parts.length >= 3) break;
      if (k !== 'step' && k !== 'time' && typeof v === 'number') parts.push(`${k} ${fmt(v)}`);
    }
  }
  return parts.join(' · ');
}

function statusIcon(info: RunInfo): vscode.ThemeIcon {
  if (!info.record) return new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
  if (info.interrupted) return new vscode.ThemeIcon('debug-disconnect', new vscode.ThemeColor('problemsWarningIcon.foreground'));
  switch (info.record.status) {
    case 'running':
      return new vscode.ThemeIcon('sync~spin');
    case 'completed':
      return new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'));
    case 'failed':
      return new vscode.ThemeIcon('error', new vscode.ThemeColor('testing.iconFailed'));
    case 'cancelled':
      return new vscode.ThemeIcon('circle-slash');
    default:
      return new vscode.ThemeIcon('circle-outline');
  }
}

function statusWord(info: RunInfo): string {
  if (!info.record) return 'unreadable';
  return info.interrupted ? 'interrupted' : info.record.status;
}

/** `basinRun status-completed checkpoint stats`: matched by the `viewItem =~ /…/` clauses in package.json. */
export function runContextValue(info: RunInfo): string {
  const parts = ['basinRun', `status-${info.record ? (info.interrupted ? 'interrupted' : info.record.status) : 'unreadable'}`];
  // `finished` sits before `checkpoint` so that Resume's `status-(…) checkpoint` clause does not match it.
  if (isFinishedRun(info.record, latestExistingCheckpoint(info)?.step)) parts.push('finished');
  if (info.checkpoints.some((c) => c.exists)) parts.push('checkpoint');
  if (info.checkpoints.some((c) => c.statsFile)) parts.push('stats');
  return parts.join(' ');
}

function runTooltip(info: RunInfo): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown(`**${escapeMd(info.record?.name ?? info.name)}** — ${statusWord(info)}\n\n`);
  md.appendMarkdown(`Folder: \`${info.dir}\`\n\n`);
  const r = info.record;
  if (!r) {
    md.appendMarkdown(`run.json cannot be read: ${escapeMd(info.error ?? 'unknown error')}\n`);
    return md;
  }
  if (r.configPath) md.appendMarkdown(`Config: \`${r.configPath}\`\n\n`);
  md.appendMarkdown(`Created ${new Date(r.createdAt).toLocaleString()} · updated ${new Date(r.updatedAt).toLocaleString()}\n\n`);
  if (r.device) md.appendMarkdown(`Device: ${escapeMd([r.device.description, r.device.vendor, r.device.backend].filter(Boolean).join(', ') || '—')}\n\n`);
  const s = metricsSummary(info.lastMetrics);
  if (s) md.appendMarkdown(`Last metrics: ${escapeMd(s)}\n\n`);
  md.appendMarkdown(`Checkpoints: ${info.checkpoints.length ? info.checkpoints.map((c) => c.step).join(', ') : 'none'}\n\n`);
  if (r.error) md.appendMarkdown(`Error: ${escapeMd(r.error.message)}\n`);
  if (info.interrupted) md.appendMarkdown(`\nIts process (pid ${r.process?.pid}) is gone: the run was interrupted. Resume it from its last checkpoint.\n`);
  return md;
}

function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}

// ------------------------------------------------------------------------------------------------ tensors

interface TensorRows {
  rows: Omit<TensorNode, 'kind' | 'runDir' | 'id' | 'step'>[];
  statsNote?: string;
}

/** Reads the `<weight>.scalars` tensors of a stats file: only those tensors' bytes, each a few floats. */
export async function readStatsScalars(file: string): Promise<Map<string, Record<string, number>>> {
  const out = new Map<string, Record<string, number>>();
  const r = await SafetensorsReader.open(file);
  try {
    for (const t of r.tensors) {
      if (!t.name.endsWith(SCALARS_SUFFIX) || t.dtype !== 'F32' || t.numel > 256) continue;
      const b = await r.readBytes(t.name);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const rec: Record<string, number> = {};
      SCALAR_KEYS.forEach((k, i) => {
        if (i < t.numel) rec[k] = dv.getFloat32(i * 4, true);
      });
      out.set(t.name.slice(0, -SCALARS_SUFFIX.length), rec);
    }
  } finally {
    await r.close();
  }
  return out;
}

const tensorCache = new Map<string, { key: string; rows: TensorRows }>();

/** A checkpoint's tensors from its safetensors header, with v mean from the stats file. Cached by size + mtime. */
export async function readCheckpointTensors(c: CheckpointInfo): Promise<TensorRows> {
  const stamp = (f: string | undefined): string => {
    if (!f) return '-';
    try {
      const st = fs.statSync(f);
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  const key = `${stamp(c.file)}|${c.statsFile ?? ''}|${stamp(c.statsFile)}`;
  const hit = tensorCache.get(c.file);
  if (hit && hit.key === key) return hit.rows;

  const header = await readSafetensorsHeader(c.file);
  let scalars = new Map<string, Record<string, number>>();
  let statsNote: string | undefined;
  if (c.statsFile) {
    try {
      scalars = await readStatsScalars(c.statsFile);
    } catch (e) {
      statsNote = `statistics unreadable: ${(e as Error).message}`;
    }
  }
  const rows = header.list.map((t) => {
    const s = scalars.get(t.name);
    return { name: t.name, dtype: t.dtype, shape: t.shape.slice(), numel: t.numel, vMean: s?.vMean, scalars: s };
  });
  const result: TensorRows = { rows, statsNote };
  tensorCache.set(c.file, { key, rows: result });
  if (tensorCache.size > 64) tensorCache.delete(tensorCache.keys().next().value as string);
  return result;
}

// ------------------------------------------------------------------------------------------------ provider

export class RunsTreeProvider implements vscode.TreeDataProvider<RunsNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<RunsNode | RunsNode[] | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  /** Stable run elements, so a change of one run refreshes only its subtree. */
  private readonly runNodes = new Map<string, RunNode>();
  private readonly sub: vscode.Disposable;

  constructor(private readonly index: RunIndex) {
    this.sub = index.onDidChange((changed) => {
      if (!changed) {
        this.emitter.fire(undefined);
        return;
      }
      const nodes: RunNode[] = [];
      for (const info of changed) {
        const n = this.runNodes.get(info.dir);
        if (n) {
          n.info = info;
          nodes.push(n);
        }
      }
      this.emitter.fire(nodes.length === changed.length ? nodes : undefined);
    });
  }

  private runNode(info: RunInfo): RunNode {
    let n = this.runNodes.get(info.dir);
    if (!n) {
      n = { kind: 'run', runDir: info.dir, id: `run:${info.dir}`, info };
      this.runNodes.set(info.dir, n);
    }
    n.info = info;
    return n;
  }

  async getChildren(el?: RunsNode): Promise<RunsNode[]> {
    if (!el) {
      await this.index.ready();
      const list = this.index.list();
      const live = new Set(list.map((r) => r.dir));
      for (const k of [...this.runNodes.keys()]) if (!live.has(k)) this.runNodes.delete(k);
      return list.map((info) => this.runNode(info));
    }
    const id = (s: string): string => `${el.id}/${s}`;
    switch (el.kind) {
      case 'run': {
        const info = el.info;
        const base = { runDir: info.dir };
        if (!info.record) {
          return [{ ...base, kind: 'info', id: id('error'), label: 'run.json cannot be read', tooltip: info.error, icon: 'warning' }];
        }
        const out: RunsNode[] = [
          { ...base, kind: 'config', id: id('config'), info },
          { ...base, kind: 'metrics', id: id('metrics'), info },
          { ...base, kind: 'checkpoints', id: id('checkpoints'), info },
        ];
        if (info.record.error) {
          out.push({ ...base, kind: 'info', id: id('error'), label: 'Error', description: info.record.error.message, tooltip: info.record.error.stack ?? info.record.error.message, icon: 'error' });
        }
        return out;
      }
      case 'metrics': {
        const m = el.info.lastMetrics;
        if (!m) return [];
        return Object.entries(m).map(([key, value]) => ({ kind: 'metric', runDir: el.runDir, id: id(key), key, value }));
      }
      case 'checkpoints':
        return el.info.checkpoints.map((checkpoint) => ({ kind: 'checkpoint', runDir: el.runDir, id: id(String(checkpoint.step)), checkpoint }));
      case 'checkpoint': {
        const c = el.checkpoint;
        if (!c.exists) return [{ kind: 'info', runDir: el.runDir, id: id('missing'), label: 'file missing', description: path.basename(c.file), icon: 'warning' }];
        let t: TensorRows;
        try {
          t = await readCheckpointTensors(c);
        } catch (e) {
          return [{ kind: 'info', runDir: el.runDir, id: id('error'), label: 'cannot read the header', description: (e as Error).message, tooltip: (e as Error).message, icon: 'error' }];
        }
        const out: RunsNode[] = t.rows.slice(0, MAX_TENSORS).map((r) => ({ ...r, kind: 'tensor', runDir: el.runDir, id: id(r.name), step: c.step }));
        if (t.rows.length > MAX_TENSORS) out.push({ kind: 'info', runDir: el.runDir, id: id('more'), label: `… ${t.rows.length - MAX_TENSORS} more tensors`, icon: 'ellipsis' });
        if (t.statsNote) out.push({ kind: 'info', runDir: el.runDir, id: id('stats-error'), label: 'statistics', description: t.statsNote, icon: 'warning' });
        return out;
      }
      default:
        return [];
    }
  }

  getTreeItem(el: RunsNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (el.kind) {
      case 'run': {
        const info = el.info;
        const item = new vscode.TreeItem(info.name, C.Collapsed);
        const summary = metricsSummary(info.lastMetrics);
        item.description = [statusWord(info), summary].filter(Boolean).join(' · ');
        item.iconPath = statusIcon(info);
        item.tooltip = runTooltip(info);
        item.contextValue = runContextValue(info);
        item.resourceUri = vscode.Uri.file(info.dir);
        return withId(item, el);
      }
      case 'config': {
        const r = el.info.record;
        const cfg = r?.configPath && fs.existsSync(r.configPath) ? r.configPath : undefined;
        const item = new vscode.TreeItem('Config', C.None);
        item.iconPath = new vscode.ThemeIcon('settings-gear');
        if (cfg) {
          item.description = path.basename(cfg);
          item.tooltip = cfg;
          item.command = { command: 'vscode.open', title: 'Open Config', arguments: [vscode.Uri.file(cfg)] };
        } else {
          // Config built in code, or its file moved: the full config (defaults applied) is in run.json.
          item.description = r?.configPath ? `${path.basename(r.configPath)} (missing) — see run.json` : 'in run.json';
          item.tooltip = r?.configPath ? `${r.configPath} no longer exists; run.json holds the config this run used.` : 'run.json holds the config this run used.';
          item.command = { command: 'vscode.open', title: 'Open run.json', arguments: [vscode.Uri.file(el.info.runJson)] };
        }
        return withId(item, el);
      }
      case 'metrics': {
        const m = el.info.lastMetrics;
        const item = new vscode.TreeItem('Metrics', m ? C.Collapsed : C.None);
        item.iconPath = new vscode.ThemeIcon('graph-line');
        item.description = m ? metricsSummary(m) : 'none yet';
        item.tooltip = m ? `Last row of metrics.jsonl:\n${JSON.stringify(m, null, 2)}` : 'No metrics row yet.';
        return withId(item, el);
      }
      case 'metric': {
        const item = new vscode.TreeItem(el.key, C.None);
        item.description = el.key === 'time' && typeof el.value === 'number' ? new Date(el.value).toLocaleString() : fmt(el.value);
        item.tooltip = `${el.key}: ${typeof el.value === 'number' ? String(el.value) : JSON.stringify(el.value)}`;
        return withId(item, el);
      }
      case 'checkpoints': {
        const n = el.info.checkpoints.length;
        const item = new vscode.TreeItem('Checkpoints', n ? C.Collapsed : C.None);
        item.iconPath = new vscode.ThemeIcon('database');
        item.description = n ? String(n) : 'none yet';
        return withId(item, el);
      }
      case 'checkpoint': {
        const c = el.checkpoint;
        const item = new vscode.TreeItem(`step ${c.step}`, C.Collapsed);
        let size = '';
        try {
          size = bytes(fs.statSync(c.file).size);
        } catch {
          size = 'missing';
        }
        const parts = [size];
        if (c.valMetric !== undefined) parts.push(`val ${fmt(c.valMetric)}`);
        if (c.statsFile) parts.push('stats');
        if (!c.recorded) parts.push('not in run.json');
        item.description = parts.join(' · ');
        item.iconPath = new vscode.ThemeIcon(c.exists ? 'save' : 'warning');
        item.tooltip = [c.file, c.optimizerFile ? `optimizer state: ${c.optimizerFile}` : 'no optimizer state', c.statsFile ? `statistics: ${c.statsFile}` : 'no statistics', c.time ? `recorded ${new Date(c.time).toLocaleString()}` : ''].filter(Boolean).join('\n');
        item.contextValue = c.statsFile ? 'basinCheckpoint stats' : 'basinCheckpoint';
        return withId(item, el);
      }
      case 'tensor': {
        const item = new vscode.TreeItem(el.name, C.None);
        item.iconPath = new vscode.ThemeIcon('symbol-array');
        item.description = `[${el.shape.join(', ')}] ${el.dtype} · v̄ ${el.vMean === undefined ? '—' : fmt(el.vMean)}`;
        const lines = [`${el.name}`, `shape [${el.shape.join(', ')}] · ${el.dtype} · ${el.numel.toLocaleString('en-US')} elements`];
        if (el.scalars) for (const [k, v] of Object.entries(el.scalars)) lines.push(`${k}: ${fmt(v)}`);
        else lines.push(`no statistics for this tensor at step ${el.step}`);
        item.tooltip = lines.join('\n');
        item.contextValue = el.scalars ? 'basinTensor stats' : 'basinTensor';
        return withId(item, el);
      }
      case 'info': {
        const item = new vscode.TreeItem(el.label, C.None);
        item.description = el.description;
        item.tooltip = el.tooltip ?? el.description;
        if (el.icon) item.iconPath = new vscode.ThemeIcon(el.icon);
        return withId(item, el);
      }
    }
  }

  dispose(): void {
    this.sub.dispose();
    this.emitter.dispose();
  }
}

function withId(item: vscode.TreeItem, el: RunsNode): vscode.TreeItem {
  item.id = el.id;
  return item;
}

/** Registers the Runs view; the provider is returned for tests (BasinApi.runsView). */
export function registerRunsView(ctx: Ctx): RunsTreeProvider {
  const provider = new RunsTreeProvider(ctx.runs);
  const view = vscode.window.createTreeView(RUNS_VIEW_ID, { treeDataProvider: provider, showCollapseAll: true, canSelectMany: true });
  ctx.push(provider, view);
  return provider;
}
