// The "GPU" view: the worker's adapter (description, vendor, backend, features, limits). It asks the worker only
// when its "Adapter" node is expanded, so opening the Basin side bar starts no process and no GPU device.
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import type { GpuInfo } from '../../protocol/worker';

export const GPU_VIEW_ID = 'basin.gpu';

export type GpuNode =
  | { kind: 'adapter' }
  | { kind: 'field'; id: string; label: string; description: string; tooltip?: string }
  | { kind: 'group'; id: string; label: string; description: string; children: GpuNode[] }
  | { kind: 'error'; message: string };

/**
 * The Adapter's rows. Few on purpose: the GPU view shares the side bar with Runs and VS Code gives it a pane of
 * about six rows, so everything fits without a cut-off last row: the backend is on the Adapter row itself, the
 * adapter's identity is one row (vendor, architecture and device in its tooltip) and the long lists are groups.
 */
function fields(info: GpuInfo): GpuNode[] {
  const f = (key: string, label: string, description: string, tooltip = description): GpuNode => ({ kind: 'field', id: `gpu/${key}`, label, description, tooltip });
  const identity = [`vendor: ${info.vendor || '—'}`, `architecture: ${info.architecture || '—'}`, `device: ${info.device || '—'}`].join('\n');
  const out: GpuNode[] = [
    f('description', 'adapter', info.description || info.device || '—', `${info.description || '—'}\n${identity}`),
  ];
  if (info.subgroupMinSize) out.push(f('subgroups', 'subgroups', `${info.subgroupMinSize}–${info.subgroupMaxSize}`));
  const features = [...info.features].sort();
  out.push({
    kind: 'group',
    id: 'gpu/features',
    label: 'features',
    description: String(features.length),
    children: features.map((x) => ({ kind: 'field', id: `gpu/features/${x}`, label: x, description: '' })),
  });
  const keys = Object.keys(info.limits).sort();
  out.push({
    kind: 'group',
    id: 'gpu/limits',
    label: 'limits',
    description: String(keys.length),
    children: keys.map((k) => ({ kind: 'field', id: `gpu/limits/${k}`, label: k, description: info.limits[k].toLocaleString('en-US') })),
  });
  return out;
}

export class GpuTreeProvider implements vscode.TreeDataProvider<GpuNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<GpuNode | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private info: Promise<GpuInfo> | undefined;
  private readonly root: GpuNode = { kind: 'adapter' };
  /** What the Adapter row says beside its label: the prompt until it is expanded, then the answer. */
  private state: { kind: 'idle' } | { kind: 'asking' } | { kind: 'ready'; info: GpuInfo } | { kind: 'failed'; message: string } = { kind: 'idle' };

  constructor(private readonly ctx: Ctx) {}

  /** Asks the worker again (now, if the Adapter node is expanded). */
  refresh(): void {
    this.info = undefined;
    if (this.state.kind !== 'ready') this.state = { kind: 'idle' };
    this.emitter.fire(undefined);
  }

  /** Forgets the answer without asking: the next expand or refresh asks the worker. */
  forget(): void {
    this.info = undefined;
  }

  async getChildren(el?: GpuNode): Promise<GpuNode[]> {
    if (!el) return [this.root];
    if (el.kind === 'group') return el.children;
    if (el.kind !== 'adapter') return [];
    if (!this.info) {
      this.info = this.ctx.worker.gpuInfo();
      if (this.state.kind !== 'ready') this.setState({ kind: 'asking' });
    }
    try {
      const info = await this.info;
      this.setState({ kind: 'ready', info });
      return fields(info);
    } catch (e) {
      this.info = undefined; // the next expand (or Refresh) tries again
      this.setState({ kind: 'failed', message: (e as Error).message });
      return [{ kind: 'error', message: (e as Error).message }];
    }
  }

  /**
   * Re-renders the Adapter row when what it says changes. Only on a change: re-rendering an expanded row asks
   * for its children again, which answer from the cached reply without a new request and without another change.
   */
  private setState(next: GpuTreeProvider['state']): void {
    const same =
      next.kind === this.state.kind &&
      (next.kind !== 'ready' || (this.state.kind === 'ready' && this.state.info === next.info)) &&
      (next.kind !== 'failed' || (this.state.kind === 'failed' && this.state.message === next.message));
    if (same) return;
    this.state = next;
    this.emitter.fire(this.root);
  }

  getTreeItem(el: GpuNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (el.kind) {
      case 'adapter': {
        const item = new vscode.TreeItem('Adapter', C.Collapsed);
        item.id = 'gpu/adapter';
        item.iconPath = new vscode.ThemeIcon('circuit-board');
        const st = this.state;
        if (st.kind === 'ready') {
          // Short, so the side bar never cuts it: the backend, and whether it is a software adapter.
          const name = st.info.description || st.info.device || st.info.vendor || 'unnamed adapter';
          item.description = `${st.info.backend}${st.info.fallback ? ' · software fallback' : ''}`;
          item.tooltip = `The worker's WebGPU adapter: ${name} (${st.info.vendor || 'unknown vendor'}), ${st.info.backend} backend${st.info.fallback ? ', a software fallback: correct but slow' : ''}. Refresh asks again.`;
        } else if (st.kind === 'asking') {
          item.description = 'asking the worker…';
          item.tooltip = 'Starting the worker process (if it is not running) and asking its WebGPU adapter.';
        } else if (st.kind === 'failed') {
          item.description = 'no usable GPU';
          item.tooltip = st.message;
        } else {
          item.description = 'expand to ask the worker';
          item.tooltip = 'Expanding starts the worker process (if it is not running) and asks its WebGPU adapter.';
        }
        return item;
      }
      case 'group': {
        const item = new vscode.TreeItem(el.label, C.Collapsed);
        item.id = el.id;
        item.description = el.description;
        return item;
      }
      case 'field': {
        const item = new vscode.TreeItem(el.label, C.None);
        item.id = el.id;
        item.description = el.description;
        item.tooltip = el.tooltip;
        return item;
      }
      case 'error': {
        const item = new vscode.TreeItem('No usable GPU', C.None);
        item.iconPath = new vscode.ThemeIcon('error');
        item.description = el.message;
        item.tooltip = el.message;
        return item;
      }
    }
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

export function registerGpuView(ctx: Ctx): GpuTreeProvider {
  const provider = new GpuTreeProvider(ctx);
  ctx.push(provider, vscode.window.createTreeView(GPU_VIEW_ID, { treeDataProvider: provider }));
  ctx.registerCommand('refreshGpuInfo', () => () => provider.refresh());
  // A restarted worker may sit on another adapter (e.g. after basin.worker.nodePath changed): the next expand or
  // Refresh asks again. (Not refreshed here: an expanded node would start a fresh worker right after every exit.)
  ctx.push(ctx.onDidWorkerExit(() => provider.forget()));
  return provider;
}
