// A webview's side of its panel protocol (src/protocol/panels/<name>.ts): the VS Code API handle, typed commands
// and requests out, validated notifications and responses in, the UI state it persists (vscode.setState), and
// the report of script errors and CSP violations to the host. Nothing else in a webview touches postMessage.
import type {
  BaseCommands,
  PanelNotification,
  PanelProtocol,
  PanelResponse,
  RequestTable,
} from '../../src/protocol/panels/panel';

interface VsCodeApi {
  postMessage(msg: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/**
 * Set by the panel's inline boot script (src/host/panels/panel-controller.ts): the API, the messages that came
 * before the app, the script's start time.
 */
export interface Boot {
  api: VsCodeApi;
  queue: unknown[];
  t0: number;
  stop(): void;
}
export function boot(): Boot | undefined {
  return (window as unknown as { __basinBoot?: Boot }).__basinBoot;
}

const REQUEST_TIMEOUT_MS = 30_000;

export class Bridge<C extends BaseCommands, R extends RequestTable<R>, N> {
  private readonly api: VsCodeApi;
  /** The boot script said `ready` already. */
  readonly readySent: boolean;
  private nextId = 1;
  private readonly pending = new Map<number, { type: keyof R; resolve: (r: unknown) => void; reject: (e: Error) => void; timer: number }>();
  /** Messages held until start(); null once started. */
  private early: unknown[] | null = [];

  constructor(
    private readonly protocol: PanelProtocol<C, R, N>,
    private readonly onNotification: (n: PanelNotification<N>) => void,
  ) {
    const b = boot();
    this.api = b?.api ?? acquireVsCodeApi();
    this.readySent = !!b;
    if (b) {
      b.stop();
      this.early = b.queue.splice(0);
    }
    window.addEventListener('message', (e: MessageEvent) => (this.early ? this.early.push(e.data) : this.receive(e.data)));
  }

  /** Starts handling messages (first those that came before the app was ready for them, in order), and says `ready` if the boot script did not. */
  start(): void {
    const q = this.early ?? [];
    this.early = null;
    for (const m of q) this.receive(m);
    if (!this.readySent) this.send('ready', { protocol: this.protocol.version } as C['ready']);
  }

  /** The saved UI state, made valid by `coerce` (it may come from an older version, or be absent). */
  getState<S>(coerce: (saved: unknown) => S): S {
    return coerce(this.api.getState());
  }

  /** Saves the UI state: VS Code hands it back after a reload (and to the host's panel serializer). */
  setState(state: unknown): void {
    this.api.setState(state);
  }

  send<K extends keyof C>(type: K, params: C[K]): void {
    this.api.postMessage(this.protocol.command(type, params));
  }

  request<K extends keyof R>(type: K, params: R[K]['params']): Promise<R[K]['result']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`request ${String(type)} timed out`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { type, resolve: resolve as (r: unknown) => void, reject, timer });
      this.api.postMessage(this.protocol.request(id, type, params));
    });
  }

  log(level: 'info' | 'warn' | 'error', message: string): void {
    this.send('log', { level, message: message.slice(0, 4000) } as C['log']);
  }

  /**
   * Reports script errors, unhandled rejections and CSP violations to the host (its panel state lists them) and
   * counts them on <body> (`data-errors`, `data-last-error`) for the end-to-end tests.
   */
  reportErrors(): void {
    const report = (m: string) => {
      document.body.dataset.errors = String(Number(document.body.dataset.errors ?? '0') + 1);
      document.body.dataset.lastError = m.slice(0, 300);
      this.log('error', m);
    };
    document.addEventListener('securitypolicyviolation', (e) => report(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
    window.addEventListener('error', (e) => report(`${e.message} (${e.filename}:${e.lineno})`));
    window.addEventListener('unhandledrejection', (e) => report(`unhandled rejection: ${String((e as PromiseRejectionEvent).reason)}`));
  }

  private receive(data: unknown): void {
    const r = this.protocol.parseHostMessage(data);
    if (!r.ok) {
      console.warn(`basin ${this.protocol.viewType}: dropped an invalid message: ${r.reason}`);
      this.log('warn', `dropped an invalid message from the host: ${r.reason}`);
      return;
    }
    const msg = r.message;
    if (msg.kind === 'notification') {
      this.onNotification(msg);
      return;
    }
    this.settle(msg);
  }

  private settle(res: PanelResponse<R>): void {
    const p = this.pending.get(res.id);
    if (!p || p.type !== res.type) return;
    this.pending.delete(res.id);
    window.clearTimeout(p.timer);
    if (res.ok) p.resolve(res.result);
    else p.reject(new Error(res.error));
  }
}
