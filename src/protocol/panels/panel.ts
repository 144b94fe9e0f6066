// What every panel's protocol shares (webview ⇄ extension host), GitLens-style: three kinds of messages, each a
// typed union built from one table of message types per panel.
//   commands       webview → host, no reply            every panel has `ready` and `log` (BaseCommands)
//   requests       webview → host, one typed reply
//   notifications  host → webview
// The webview says `ready` on every load (it keeps no data, only UI state in vscode.setState); the host answers
// with a full snapshot, then sends updates while the panel is visible; a panel shown again gets a fresh snapshot.
// Every message that crosses the boundary is checked on arrival against the panel's guard tables (parse… below);
// a message that fails is dropped and logged, never half-handled.
//
// A panel's protocol file (src/protocol/panels/<name>.ts) declares its three tables of types and their guards and
// calls definePanelProtocol(); the host's PanelController and the webview's Bridge take the result.
// Pure TypeScript: no Node, no DOM, no vscode.

// ------------------------------------------------------------------------------------------------- guards

export type Guard<T> = (x: unknown) => x is T;

export const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
export const isString = (x: unknown): x is string => typeof x === 'string';
export const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
export const isNonNegInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
export const isNullable =
  <T>(g: Guard<T>): Guard<T | null> =>
  (x: unknown): x is T | null =>
    x === null || g(x);
export const isOneOf =
  <T extends string>(values: readonly T[]): Guard<T> =>
  (x: unknown): x is T =>
    typeof x === 'string' && (values as readonly string[]).includes(x);
export const isArrayOf =
  <T>(g: Guard<T>, max = Infinity): Guard<T[]> =>
  (x: unknown): x is T[] =>
    Array.isArray(x) && x.length <= max && x.every(g);
export const isEmptyObject = (x: unknown): x is Record<string, never> => isObject(x);

/** ArrayBuffer from any realm (a webview's structured clone, the extension host's deserializer). */
export function isArrayBuffer(x: unknown): x is ArrayBuffer {
  return x instanceof ArrayBuffer || Object.prototype.toString.call(x) === '[object ArrayBuffer]';
}

/** Longest `log` message a webview may send. */
export const MAX_LOG_MESSAGE = 64 * 1024;

// ---------------------------------------------------------------------------------------------- messages

/** The commands every panel's webview sends: `ready` (with its protocol version) and `log` (errors, CSP reports). */
export interface BaseCommands {
  ready: { protocol: number };
  log: { level: 'info' | 'warn' | 'error'; message: string };
}

export const baseCommandGuards: GuardTable<BaseCommands> = {
  ready: (x): x is BaseCommands['ready'] => isObject(x) && isNonNegInt(x.protocol),
  log: (x): x is BaseCommands['log'] =>
    isObject(x) && isOneOf(['info', 'warn', 'error'] as const)(x.level) && isString(x.message) && x.message.length <= MAX_LOG_MESSAGE,
};

/** A table of requests: per type, its params and its result. */
export type RequestTable<R> = { [K in keyof R]: { params: unknown; result: unknown } };

export type PanelCommand<C> = { [K in keyof C]: { kind: 'command'; type: K; params: C[K] } }[keyof C];
export type PanelRequest<R extends RequestTable<R>> = { [K in keyof R]: { kind: 'request'; id: number; type: K; params: R[K]['params'] } }[keyof R];
export type PanelResponse<R extends RequestTable<R>> = {
  [K in keyof R]:
    | { kind: 'response'; id: number; type: K; ok: true; result: R[K]['result'] }
    | { kind: 'response'; id: number; type: K; ok: false; error: string };
}[keyof R];
export type PanelNotification<N> = { [K in keyof N]: { kind: 'notification'; type: K; params: N[K] } }[keyof N];

/** Handlers keyed by message type: a missing or extra one is a compile error, so nothing goes unhandled. */
export type CommandHandlersOf<C> = { [K in keyof C]: (params: C[K]) => void };
export type RequestHandlersOf<R extends RequestTable<R>> = {
  [K in keyof R]: (params: R[K]['params']) => Promise<R[K]['result']> | R[K]['result'];
};
export type NotificationHandlersOf<N> = { [K in keyof N]: (params: N[K]) => void };

export type GuardTable<T> = { [K in keyof T]: Guard<T[K]> };

/** Why a message was refused (for the log). */
export type ParseResult<T> = { ok: true; message: T } | { ok: false; reason: string };

export interface PanelProtocolDefinition<C extends BaseCommands, R extends RequestTable<R>, N> {
  /** The webview panel's viewType (package.json's activation event `onWebviewPanel:<viewType>`). */
  viewType: string;
  /** Bumped when a message changes shape; the webview sends it with `ready`. */
  version: number;
  /** Guards of the panel's own commands (ready and log come from baseCommandGuards). */
  commands: GuardTable<Omit<C, keyof BaseCommands>>;
  requests: { [K in keyof R]: Guard<R[K]['params']> };
  results: { [K in keyof R]: Guard<R[K]['result']> };
  notifications: GuardTable<N>;
}

/** One panel's protocol: its validators, message builders and dispatchers. */
export interface PanelProtocol<C extends BaseCommands, R extends RequestTable<R>, N> {
  readonly viewType: string;
  readonly version: number;
  /** Checks a message the host received from the webview. */
  parseWebviewMessage(x: unknown): ParseResult<PanelCommand<C> | PanelRequest<R>>;
  /** Checks a message the webview received from the host. */
  parseHostMessage(x: unknown): ParseResult<PanelNotification<N> | PanelResponse<R>>;
  command<K extends keyof C>(type: K, params: C[K]): PanelCommand<C>;
  request<K extends keyof R>(id: number, type: K, params: R[K]['params']): PanelRequest<R>;
  notification<K extends keyof N>(type: K, params: N[K]): PanelNotification<N>;
  /** Calls the handler of a validated command. */
  dispatchCommand(handlers: CommandHandlersOf<C>, msg: PanelCommand<C>): void;
  /** Calls the handler of a validated notification. */
  dispatchNotification(handlers: NotificationHandlersOf<N>, msg: PanelNotification<N>): void;
  /** Runs a validated request's handler and builds its response (a thrown error becomes `ok: false`). */
  answerRequest(handlers: RequestHandlersOf<R>, msg: PanelRequest<R>): Promise<PanelResponse<R>>;
}

const hasKey = <T extends object>(o: T, k: unknown): k is keyof T => typeof k === 'string' && Object.prototype.hasOwnProperty.call(o, k);

export function definePanelProtocol<C extends BaseCommands, R extends RequestTable<R>, N>(def: PanelProtocolDefinition<C, R, N>): PanelProtocol<C, R, N> {
  const commandGuards = { ...baseCommandGuards, ...def.commands } as unknown as GuardTable<C>;
  const call = (handlers: object, type: PropertyKey, params: unknown): unknown => (handlers as Record<PropertyKey, (p: unknown) => unknown>)[type](params);
  return {
    viewType: def.viewType,
    version: def.version,

    parseWebviewMessage(x) {
      if (!isObject(x)) return { ok: false, reason: 'not an object' };
      if (x.kind === 'command') {
        if (!hasKey(commandGuards, x.type)) return { ok: false, reason: `unknown command ${JSON.stringify(x.type)}` };
        if (!(commandGuards[x.type] as Guard<unknown>)(x.params)) return { ok: false, reason: `command ${String(x.type)}: invalid params` };
        return { ok: true, message: x as unknown as PanelCommand<C> };
      }
      if (x.kind === 'request') {
        if (!isNonNegInt(x.id)) return { ok: false, reason: 'request without an integer id' };
        if (!hasKey(def.requests, x.type)) return { ok: false, reason: `unknown request ${JSON.stringify(x.type)}` };
        if (!(def.requests[x.type] as Guard<unknown>)(x.params)) return { ok: false, reason: `request ${String(x.type)}: invalid params` };
        return { ok: true, message: x as unknown as PanelRequest<R> };
      }
      return { ok: false, reason: `unknown kind ${JSON.stringify(x.kind)}` };
    },

    parseHostMessage(x) {
      if (!isObject(x)) return { ok: false, reason: 'not an object' };
      if (x.kind === 'notification') {
        if (!hasKey(def.notifications, x.type)) return { ok: false, reason: `unknown notification ${JSON.stringify(x.type)}` };
        if (!(def.notifications[x.type] as Guard<unknown>)(x.params)) return { ok: false, reason: `notification ${String(x.type)}: invalid params` };
        return { ok: true, message: x as unknown as PanelNotification<N> };
      }
      if (x.kind === 'response') {
        if (!isNonNegInt(x.id)) return { ok: false, reason: 'response without an integer id' };
        if (!hasKey(def.results, x.type)) return { ok: false, reason: `response to unknown request ${JSON.stringify(x.type)}` };
        if (x.ok === true) {
          if (!(def.results[x.type] as Guard<unknown>)(x.result)) return { ok: false, reason: `response ${String(x.type)}: invalid result` };
        } else if (x.ok !== false || !isString(x.error)) return { ok: false, reason: `response ${String(x.type)}: neither a result nor an error` };
        return { ok: true, message: x as unknown as PanelResponse<R> };
      }
      return { ok: false, reason: `unknown kind ${JSON.stringify(x.kind)}` };
    },

    command: (type, params) => ({ kind: 'command', type, params }) as PanelCommand<C>,
    request: (id, type, params) => ({ kind: 'request', id, type, params }) as PanelRequest<R>,
    notification: (type, params) => ({ kind: 'notification', type, params }) as PanelNotification<N>,

    dispatchCommand(handlers, msg) {
      call(handlers, msg.type, msg.params);
    },
    dispatchNotification(handlers, msg) {
      call(handlers, msg.type, msg.params);
    },
    async answerRequest(handlers, msg) {
      try {
        const result = await call(handlers, msg.type, msg.params);
        return { kind: 'response', id: msg.id, type: msg.type, ok: true, result } as PanelResponse<R>;
      } catch (e) {
        return { kind: 'response', id: msg.id, type: msg.type, ok: false, error: e instanceof Error ? e.message : String(e) } as PanelResponse<R>;
      }
    },
  };
}
