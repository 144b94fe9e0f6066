// The webview's side of the statistics panel protocol: the VS Code API handle, typed commands and requests out,
// validated notifications and responses in. Nothing else in the webview touches postMessage.
import {
  command,
  parseHostMessage,
  request,
  type StatsCommandParams,
  type StatsCommandType,
  type StatsNotification,
  type StatsRequestType,
  type StatsRequestTypes,
  type StatsResponse,
} from '../../src/protocol/panels/stats';

interface VsCodeApi {
  postMessage(msg: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/** Set by the panel's inline boot script (stats-panel.ts): the API, messages that came before the app, start time. */
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

export class Bridge {
  private readonly api: VsCodeApi;
  /** The boot script said `ready` already. */
  readonly readySent: boolean;
  private nextId = 1;
  private readonly pending = new Map<number, { type: StatsRequestType; resolve: (r: unknown) => void; reject: (e: Error) => void; timer: number }>();

  constructor(private readonly onNotification: (n: StatsNotification) => void) {
    const b = boot();
    this.api = b?.api ?? acquireVsCodeApi();
    this.readySent = !!b;
    if (b) {
      b.stop();
      this.early = b.queue.splice(0);
    }
    window.addEventListener('message', (e: MessageEvent) => (this.early ? this.early.push(e.data) : this.receive(e.data)));
  }

  private early: unknown[] | null = [];

  /** Starts handling messages: first those that came before the app was ready for them, in order. */
  start(): void {
    const q = this.early ?? [];
    this.early = null;
    for (const m of q) this.receive(m);
  }

  getState(): unknown {
    return this.api.getState();
  }

  setState(s: unknown): void {
    this.api.setState(s);
  }

  send<K extends StatsCommandType>(type: K, params: StatsCommandParams[K]): void {
    this.api.postMessage(command(type, params));
  }

  request<K extends StatsRequestType>(type: K, params: StatsRequestTypes[K]['params']): Promise<StatsRequestTypes[K]['result']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`request ${type} timed out`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { type, resolve: resolve as (r: unknown) => void, reject, timer });
      this.api.postMessage(request(id, type, params));
    });
  }

  log(level: 'info' | 'warn' | 'error', message: string): void {
    this.send('log', { level, message: message.slice(0, 4000) });
  }

  private receive(data: unknown): void {
    const r = parseHostMessage(data);
    if (!r.ok) {
      console.warn(`basin stats: dropped an invalid message: ${r.reason}`);
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

  private settle(res: StatsResponse): void {
    const p = this.pending.get(res.id);
    if (!p || p.type !== res.type) return;
    this.pending.delete(res.id);
    window.clearTimeout(p.timer);
    if (res.ok) p.resolve(res.result);
    else p.reject(new Error(res.error));
  }
}
