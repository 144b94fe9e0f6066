// What every webview panel needs on the host side, whatever it shows:
//   - the webview: scripts on, context dropped when hidden (the webview keeps no data), resources only from
//     dist/webview and media, a strict Content-Security-Policy (no inline code but the nonce'd boot script);
//   - the boot script: takes the VS Code API, says `ready` and queues what the host sends until the app's bundle
//     (webview/<app>/main.ts → dist/webview/<app>.js, which takes over through webview/shared/bridge.ts) runs;
//   - the ready → full snapshot protocol: on every `ready` (first load, reload, shown again after being hidden)
//     the panel's `onReady` sends the whole state; a hidden panel is not ready (it gets nothing, then a snapshot);
//   - message validation: everything from the webview goes through the panel protocol's parseWebviewMessage;
//     an invalid message is counted, logged and dropped; `log` commands (script errors, CSP violations) are kept;
//   - restore after a window reload: registerPanelSerializer hands back the panel and the webview's saved state.
// A panel (stats-panel.ts) owns one PanelController per webview panel and supplies its handlers.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type {
  BaseCommands,
  CommandHandlersOf,
  PanelNotification,
  PanelProtocol,
  PanelResponse,
  RequestHandlersOf,
  RequestTable,
} from '../../protocol/panels/panel';

/** Most webview errors kept for panel state (tests and benchmarks read them). */
const MAX_WEBVIEW_ERRORS = 50;

export interface PanelControllerOptions<C extends BaseCommands, R extends RequestTable<R>, N> {
  protocol: PanelProtocol<C, R, N>;
  panel: vscode.WebviewPanel;
  extensionUri: vscode.Uri;
  /** The webview app: webview/<app>/main.ts, bundled to dist/webview/<app>.js. */
  app: string;
  /** Shown until the app paints. */
  loadingText: string;
  /** JSON the app reads from #app's `data-initial` (what it shows before any saved state exists). */
  initial: unknown;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** After each `ready`: send the full state (the controller is ready by then; check `ready` after any await). */
  onReady(): void | Promise<void>;
  /** The panel became visible again (its webview reloads and says `ready` on its own). */
  onDidBecomeVisible?(): void;
  /** The panel's own commands (`ready` and `log` are the controller's). */
  commands: Omit<CommandHandlersOf<C>, keyof BaseCommands>;
  requests: RequestHandlersOf<R>;
}

/** The options every panel's webview gets. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    enableFindWidget: false,
    retainContextWhenHidden: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

/** A new webview panel of a protocol's viewType, in the active column. */
export function createWebviewPanel(viewType: string, title: string, extensionUri: vscode.Uri): vscode.WebviewPanel {
  return vscode.window.createWebviewPanel(viewType, title, vscode.ViewColumn.Active, webviewOptions(extensionUri));
}

/**
 * Restores a viewType's panels after a window reload with the state their webview saved (vscode.setState).
 * Also needs `onWebviewPanel:<viewType>` in package.json's activationEvents.
 */
export function registerPanelSerializer(viewType: string, restore: (panel: vscode.WebviewPanel, state: unknown) => Promise<void>): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(viewType, { deserializeWebviewPanel: restore });
}

export class PanelController<C extends BaseCommands, R extends RequestTable<R>, N> implements vscode.Disposable {
  readonly panel: vscode.WebviewPanel;
  private _ready = false;
  private _readyCount = 0;
  private invalid = 0;
  private readonly errors: string[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;
  private readonly onDisposeCallbacks: (() => void)[] = [];

  constructor(private readonly opts: PanelControllerOptions<C, R, N>) {
    const { panel, extensionUri } = opts;
    this.panel = panel;
    panel.webview.options = webviewOptions(extensionUri);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'basin.svg');
    panel.webview.html = this.html();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)),
      panel.onDidChangeViewState(() => this.onViewState()),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  /** The webview said `ready` since it last loaded, and is visible. */
  get ready(): boolean {
    return this._ready;
  }
  get readyCount(): number {
    return this._readyCount;
  }
  /** Messages from the webview that failed validation (dropped). */
  get invalidMessages(): number {
    return this.invalid;
  }
  /** Errors the webview reported (script errors, CSP violations), the first MAX_WEBVIEW_ERRORS. */
  get webviewErrors(): string[] {
    return [...this.errors];
  }
  get visible(): boolean {
    return this.panel.visible;
  }

  /** Runs when the panel closes (after the controller let go of the webview). */
  onDidDispose(fn: () => void): void {
    this.onDisposeCallbacks.push(fn);
  }

  notify<K extends keyof N>(type: K, params: N[K]): void {
    this.post(this.opts.protocol.notification(type, params));
  }

  post(msg: PanelNotification<N> | PanelResponse<R>): void {
    if (this.disposed) return;
    void this.panel.webview.postMessage(msg).then(
      (ok) => {
        if (!ok && this.panel.visible) this.opts.log('warn', `a ${String(msg.type)} message was not delivered (webview not loaded)`);
      },
      (e: unknown) => this.opts.log('warn', `postMessage failed: ${(e as Error).message}`),
    );
  }

  private readonly baseCommands: CommandHandlersOf<BaseCommands> = {
    ready: ({ protocol }) => {
      const version = this.opts.protocol.version;
      if (protocol !== version) this.opts.log('warn', `webview protocol ${protocol}, host ${version}`);
      this._ready = true;
      this._readyCount++;
      void Promise.resolve()
        .then(() => this.opts.onReady())
        .catch((e: unknown) => this.opts.log('error', `sending the snapshot: ${(e as Error).message}`));
    },
    log: ({ level, message }) => {
      this.opts.log(level, `webview: ${message}`);
      if (level === 'error' && this.errors.length < MAX_WEBVIEW_ERRORS) this.errors.push(message);
    },
  };

  private onMessage(raw: unknown): void {
    const { protocol } = this.opts;
    const r = protocol.parseWebviewMessage(raw);
    if (!r.ok) {
      this.invalid++;
      this.opts.log('warn', `dropped an invalid message from the webview: ${r.reason}`);
      return;
    }
    const msg = r.message;
    if (msg.kind === 'command') {
      try {
        protocol.dispatchCommand({ ...this.opts.commands, ...this.baseCommands } as CommandHandlersOf<C>, msg);
      } catch (e) {
        this.opts.log('error', `command ${String(msg.type)}: ${(e as Error).message}`);
      }
      return;
    }
    void protocol.answerRequest(this.opts.requests, msg).then((res) => this.post(res));
  }

  private onViewState(): void {
    // A hidden webview is destroyed (retainContextWhenHidden is off): it says `ready` again when it shows.
    if (!this.panel.visible) {
      this._ready = false;
      return;
    }
    this.opts.onDidBecomeVisible?.();
  }

  private html(): string {
    const { panel, extensionUri, app, protocol } = this.opts;
    const webview = panel.webview;
    const nonce = randomBytes(18).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${app}.js`));
    const csp = [
      `default-src 'none'`,
      `script-src 'nonce-${nonce}'`,
      `style-src ${webview.cspSource} 'nonce-${nonce}'`,
      `img-src ${webview.cspSource} data:`,
      `font-src ${webview.cspSource}`,
    ].join('; ');
    const ready = protocol.command('ready', { protocol: protocol.version } as C['ready']);
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeHtml(panel.title)}</title>
<style nonce="${nonce}">html,body{margin:0;padding:0;height:100%;overflow:hidden;background:var(--vscode-editor-background);color:var(--vscode-foreground);font-family:var(--vscode-font-family);font-size:var(--vscode-font-size)}</style>
</head>
<body>
<div id="app" data-initial="${escapeHtml(JSON.stringify(this.opts.initial))}" data-nonce="${nonce}"><p class="boot">${escapeHtml(this.opts.loadingText)}</p></div>
<script nonce="${nonce}">${bootScript(ready)}</script>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this._ready = false;
    for (const d of this.disposables.splice(0)) d.dispose();
    for (const fn of this.onDisposeCallbacks.splice(0)) fn();
  }
}

/**
 * Runs before the bundle loads: takes the VS Code API, says `ready` and queues what the host sends until the app
 * (webview/shared/bridge.ts) takes over, so the host's snapshot travels while the bundle downloads and starts.
 */
function bootScript(readyMessage: unknown): string {
  const ready = JSON.stringify(readyMessage).replace(/</g, '\\u003c');
  return `(function(){var api=acquireVsCodeApi();var q=[];function h(e){q.push(e.data)}window.addEventListener('message',h);window.__basinBoot={api:api,queue:q,t0:performance.now(),stop:function(){window.removeEventListener('message',h)}};api.postMessage(${ready});})();`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
