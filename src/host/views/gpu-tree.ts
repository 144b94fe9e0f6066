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

function fields(info: GpuInfo): GpuNode[] {
  const f = (key: string, label: string, description: string): GpuNode => ({ kind: 'field', id: `gpu/${key}`, label, description, tooltip: description });
  const out: GpuNode[] = [
    f('description', 'adapter', info.description || '—'),
    f('vendor', 'vendor', info.vendor || '—'),
    f('architecture', 'architecture', info.architecture || '—'),
    f('device', 'device', info.device || '—'),
    f('backend', 'backend', info.backend),
    f('fallback', 'fallback', info.fallback ? 'yes: software adapter (correct but slow)' : 'no'),
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

  constructor(private readonly ctx: Ctx) {}

  /** Asks the worker again (now, if the Adapter node is expanded). */
  refresh(): void {
    this.info = undefined;
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
    this.info ??= this.ctx.worker.gpuInfo();
    try {
      return fields(await this.info);
    } catch (e) {
      this.info = undefined; // the next expand (or Refresh) tries again
      return [{ kind: 'error', message: (e as Error).message }];
    }
  }

  getTreeItem(el: GpuNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (el.kind) {
      case 'adapter': {
        const item = new vscode.TreeItem('Adapter', C.Collapsed);
        item.id = 'gpu/adapter';
        item.iconPath = new vscode.ThemeIcon('circuit-board');
        item.description = 'expand to ask the worker';
        item.tooltip = 'Expanding starts the worker process (if it is not running) and asks its WebGPU adapter.';
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
