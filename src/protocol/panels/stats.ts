// The statistics panel's messages (webview ⇄ extension host), GitLens-style: three kinds, each a typed union.
//   commands       webview → host, no reply            ready, uiState, perf, log, revealRunFolder
//   requests       webview → host, one typed reply     layerHistory, refresh
//   notifications  host → webview                      snapshot, frames, metrics, run, select, error
// The webview says `ready` (also after every reload: it keeps no data, only UI state in vscode.setState); the host
// answers with a full `snapshot`, then sends `frames`/`metrics`/`run` updates while the panel is visible. A panel
// that was hidden gets a fresh snapshot when it shows again, never deltas it may have missed.
//
// Statistics frames travel as ArrayBuffers holding encoded frames (src/protocol/stats.ts), one per buffer:
// webview.postMessage moves ArrayBuffers without JSON-encoding them, and the webview decodes with decodeStatsFrame.
//
// Every message that crosses the boundary is checked on arrival (parseWebviewMessage on the host,
// parseHostMessage in the webview); a message that fails is dropped and logged, never half-handled. The envelope,
// the validators' machinery and `ready`/`log` are every panel's (./panel.ts); this file holds what is the
// statistics panel's own. Pure TypeScript: no Node, no DOM, no vscode.

import { EXTRA_KEYS, SCALAR_KEYS, TENSOR_ROLES, type ExtraKey, type ScalarKey, type TensorRole } from '../stats';
import {
  definePanelProtocol,
  isArrayBuffer,
  isArrayOf,
  isEmptyObject,
  isFiniteNumber,
  isNonNegInt,
  isNullable,
  isObject,
  isOneOf,
  isString,
  type BaseCommands,
  type CommandHandlersOf,
  type Guard,
  type NotificationHandlersOf,
  type PanelCommand,
  type PanelNotification,
  type PanelRequest,
  type PanelResponse,
  type RequestHandlersOf,
} from './panel';

export { isArrayBuffer, isObject, type ParseResult } from './panel';

export const STATS_VIEW_TYPE = 'basin.stats';
/** Bumped when a message changes shape; the webview sends it with `ready`. */
export const STATS_PROTOCOL_VERSION = 2;

// ---------------------------------------------------------------------------------------------- shared shapes

/** run.json's status, plus `interrupted` (says running, but its process is gone) and `unknown` (unreadable). */
export type RunStatusView = 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted' | 'unknown';
const RUN_STATUSES: readonly RunStatusView[] = ['running', 'completed', 'failed', 'cancelled', 'interrupted', 'unknown'];

export interface RunInfo {
  /** Absolute path of the run folder. */
  dir: string;
  name: string;
  status: RunStatusView;
  /** Latest step known (metrics or statistics), null before the first. */
  step: number | null;
  /** Total steps planned, when the config says. */
  totalSteps: number | null;
  /** Statistics are sampled every N steps (config train.statsEvery); null when unknown; 0 when disabled. */
  statsEvery: number | null;
  /** Steps of the saved checkpoints. */
  checkpoints: number[];
  device: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  /** The run's error message (failed runs), or why the folder could not be read. */
  error: string | null;
  /** train.optimizer.type ('adamw', 'adafactor', 'sgd'…): what "v" means in the panel depends on it. */
  optimizer: string | null;
  /** train.gradClip: the global gradient norm is clipped to it (0: no clipping); null when unknown. */
  gradClip: number | null;
  /** Output classes of the model (model.classes, or the vocabulary of a token model): HR@10 is trivial at ≤ 10. */
  classes: number | null;
  /** A fine-tune's base checkpoint (run.json lineage.parentCheckpoint with relation 'fine-tune'); null otherwise. */
  base: string | null;
  /** train.optimizer.rank (mao's momentum rank); null when the optimizer has none. */
  rank: number | null;
  /**
   * run.json `kind`: 'train' for training runs; 'study' for a study's run folder (`basin study data-efficiency`),
   * whose metrics rows are one per trained model (`step` = its training interactions, `<case>_<split>_<metric>`):
   * the panel charts them against the data size instead of steps. Other kinds are shown like training runs.
   */
  kind: string;
}

/** One metrics.jsonl row reduced to its finite numbers (strings and nested values dropped). */
export interface MetricRow {
  step: number;
  [key: string]: number;
}

/** A checkpoint the panel was opened on: its statistics are the frame at (or last before) that step. */
export interface PinnedCheckpoint {
  step: number;
  /** Step of the frame shown for it, null when no frame at or before the step exists. */
  frameStep: number | null;
}

export const TABS = ['overview', 'layers', 'curvature'] as const;
export type StatsTab = (typeof TABS)[number];

/** The layer table's columns; the extras' columns show only when the frames carry them (mao, fine-tunes). */
export const COLUMN_KEYS = ['name', 'role', 'shape', ...SCALAR_KEYS, ...EXTRA_KEYS] as const;
export type ColumnKey = (typeof COLUMN_KEYS)[number];

/** The Layers tab's role filter: every tensor, or only those of one role. */
export const ROLE_FILTERS = ['all', ...TENSOR_ROLES] as const;
export type RoleFilter = (typeof ROLE_FILTERS)[number];
export type { TensorRole };

/** What the webview persists with vscode.setState and reports to the host (for tests and restores). */
export interface StatsUiState {
  tab: StatsTab;
  sortKey: ColumnKey;
  sortDir: 'asc' | 'desc';
  /** Selected tensor name. */
  selected: string | null;
  /** Scroll offset of the layer table, px. */
  scrollTop: number;
  /** The scalar shown over steps in the overview's per-layer charts. */
  historyKey: ScalarKey;
  /** Whether the layer detail pane is open (it can be collapsed to give the table and charts the width). */
  detailOpen: boolean;
  /** The Layers tab shows the tensors of this role only ('all': every tensor). */
  roleFilter: RoleFilter;
}

export const DEFAULT_UI_STATE: StatsUiState = {
  tab: 'overview',
  sortKey: 'updateRatio',
  sortDir: 'desc',
  selected: null,
  scrollTop: 0,
  historyKey: 'updateRatio',
  detailOpen: true,
  roleFilter: 'all',
};

/** Scalars of one tensor over steps (the host's full-resolution history, decimated only past its cap). */
export interface LayerHistory {
  tensor: string;
  steps: number[];
  /** Per scalar, one value per step; null where the value was not finite (NaN/±Infinity do not survive JSON). */
  scalars: Record<ScalarKey, (number | null)[]>;
  /** Per extra (mao's captured energy, a fine-tune's saliency mass) the frames had, one value per step (null: none). */
  extras?: Partial<Record<ExtraKey, (number | null)[]>>;
}

export interface PerfReport {
  /**
   * firstPaint: `ms` = script start → first paint of header, table and charts with data (the ready → snapshot
   * round trip included), `renderMs` = snapshot received → painted. update: one frames update, `ms` = `renderMs` =
   * received → painted.
   */
  phase: 'firstPaint' | 'update';
  ms: number;
  renderMs: number;
  layers: number;
  frames: number;
}

/**
 * Per-tensor scalars over steps, compact: `data` is Float32 [point][tensor][scalar] with tensors in `names` order
 * and scalars in SCALAR_KEYS order (NaN where a point lacks the tensor).
 */
export interface ScalarHistoryPayload {
  steps: number[];
  names: string[];
  data: ArrayBuffer;
  /** Per extra key the frames had: Float32 [point][tensor], NaN where a point lacks it. */
  extras?: Partial<Record<ExtraKey, ArrayBuffer>>;
}

// ------------------------------------------------------------------------------------- webview → host: commands

export interface StatsCommandParams extends BaseCommands {
  uiState: StatsUiState;
  perf: PerfReport;
  revealRunFolder: Record<string, never>;
}
export type StatsCommandType = keyof StatsCommandParams;
export type StatsCommand = PanelCommand<StatsCommandParams>;

// ------------------------------------------------------------------------------------- webview → host: requests

export interface StatsRequestTypes {
  layerHistory: { params: { tensor: string }; result: LayerHistory | null };
  /** Re-read the run folder from disk; a snapshot follows. */
  refresh: { params: Record<string, never>; result: { frames: number } };
}
export type StatsRequestType = keyof StatsRequestTypes;
export type StatsRequest = PanelRequest<StatsRequestTypes>;
export type StatsResponse = PanelResponse<StatsRequestTypes>;

export type WebviewToHost = StatsCommand | StatsRequest;

// --------------------------------------------------------------------------------- host → webview: notifications

export interface StatsNotificationParams {
  /** Everything: what the webview shows after `ready`, a reload, or becoming visible again. */
  snapshot: {
    run: RunInfo;
    metrics: MetricRow[];
    /** Encoded frames, oldest first: the latest, and the pinned checkpoint's when that is another. */
    frames: ArrayBuffer[];
    /** Frames in the run's statistics so far. */
    framesTotal: number;
    /** Every tensor's scalars over steps (thinned to a few hundred points). */
    history: ScalarHistoryPayload;
    pinned: PinnedCheckpoint | null;
    live: boolean;
  };
  /** New frames, oldest first, after the snapshot's. */
  frames: { frames: ArrayBuffer[]; framesTotal: number };
  /** New metrics rows after the snapshot's. */
  metrics: { rows: MetricRow[] };
  /** The run record changed (status, step, checkpoints) or the live feed started/stopped. */
  run: { run: RunInfo; live: boolean };
  /** Select a tensor (the host was asked to open the panel on it). */
  select: { tensor: string };
  /** The run folder cannot be read. */
  error: { message: string };
}
export type StatsNotificationType = keyof StatsNotificationParams;
export type StatsNotification = PanelNotification<StatsNotificationParams>;

export type HostToWebview = StatsNotification | StatsResponse;

// ------------------------------------------------------------------------------------------------- validators

const MAX_NAME = 4096;

export const isStatsTab = isOneOf(TABS);
export const isColumnKey = isOneOf(COLUMN_KEYS);
export const isScalarKey = isOneOf(SCALAR_KEYS);
export const isRoleFilter = isOneOf(ROLE_FILTERS);

export function isUiState(x: unknown): x is StatsUiState {
  return (
    isObject(x) &&
    isStatsTab(x.tab) &&
    isColumnKey(x.sortKey) &&
    (x.sortDir === 'asc' || x.sortDir === 'desc') &&
    (x.selected === null || (isString(x.selected) && x.selected.length <= MAX_NAME)) &&
    isFiniteNumber(x.scrollTop) &&
    x.scrollTop >= 0 &&
    isScalarKey(x.historyKey) &&
    typeof x.detailOpen === 'boolean' &&
    isRoleFilter(x.roleFilter)
  );
}

/** A saved UI state (possibly from an older version): the valid fields kept, defaults for the rest. */
export function coerceUiState(x: unknown): StatsUiState {
  const s = { ...DEFAULT_UI_STATE };
  if (!isObject(x)) return s;
  if (isStatsTab(x.tab)) s.tab = x.tab;
  if (isColumnKey(x.sortKey)) s.sortKey = x.sortKey;
  if (x.sortDir === 'asc' || x.sortDir === 'desc') s.sortDir = x.sortDir;
  if (isString(x.selected) && x.selected.length <= MAX_NAME) s.selected = x.selected;
  if (isFiniteNumber(x.scrollTop) && x.scrollTop >= 0) s.scrollTop = x.scrollTop;
  if (isScalarKey(x.historyKey)) s.historyKey = x.historyKey;
  if (typeof x.detailOpen === 'boolean') s.detailOpen = x.detailOpen;
  if (isRoleFilter(x.roleFilter)) s.roleFilter = x.roleFilter;
  return s;
}

function isPerfReport(x: unknown): x is PerfReport {
  return (
    isObject(x) &&
    (x.phase === 'firstPaint' || x.phase === 'update') &&
    isFiniteNumber(x.ms) &&
    x.ms >= 0 &&
    isFiniteNumber(x.renderMs) &&
    x.renderMs >= 0 &&
    isNonNegInt(x.layers) &&
    isNonNegInt(x.frames)
  );
}

export function isRunInfo(x: unknown): x is RunInfo {
  return (
    isObject(x) &&
    isString(x.dir) &&
    isString(x.name) &&
    isOneOf(RUN_STATUSES)(x.status) &&
    isNullable(isFiniteNumber)(x.step) &&
    isNullable(isFiniteNumber)(x.totalSteps) &&
    isNullable(isFiniteNumber)(x.statsEvery) &&
    isArrayOf(isFiniteNumber)(x.checkpoints) &&
    isNullable(isString)(x.device) &&
    isNullable(isString)(x.createdAt) &&
    isNullable(isString)(x.updatedAt) &&
    isNullable(isString)(x.error) &&
    isNullable(isString)(x.optimizer) &&
    isNullable(isFiniteNumber)(x.gradClip) &&
    isNullable(isFiniteNumber)(x.classes) &&
    isNullable(isString)(x.base) &&
    isNullable(isFiniteNumber)(x.rank) &&
    isString(x.kind)
  );
}

export function isMetricRow(x: unknown): x is MetricRow {
  if (!isObject(x) || !isFiniteNumber(x.step)) return false;
  for (const k in x) if (!isFiniteNumber(x[k])) return false;
  return true;
}

function isPinned(x: unknown): x is PinnedCheckpoint {
  return isObject(x) && isFiniteNumber(x.step) && isNullable(isFiniteNumber)(x.frameStep);
}

function isLayerHistory(x: unknown): x is LayerHistory {
  if (!isObject(x) || !isString(x.tensor) || !isArrayOf(isFiniteNumber)(x.steps) || !isObject(x.scalars)) return false;
  const n = (x.steps as number[]).length;
  const sc = x.scalars as Record<string, unknown>;
  // Non-finite values (a diverged run's NaN/Infinity) travel as null in JSON-ish transports: allow numbers or null.
  const series = (a: unknown) => Array.isArray(a) && a.length === n && a.every((v) => typeof v === 'number' || v === null);
  if (x.extras !== undefined && !(isObject(x.extras) && Object.entries(x.extras).every(([k, a]) => (EXTRA_KEYS as readonly string[]).includes(k) && series(a)))) return false;
  return SCALAR_KEYS.every((k) => series(sc[k]));
}

export function isHistoryPayload(x: unknown): x is ScalarHistoryPayload {
  if (!isObject(x) || !isArrayOf(isFiniteNumber)(x.steps) || !isArrayOf(isString)(x.names) || !isArrayBuffer(x.data)) return false;
  const points = (x.steps as number[]).length * (x.names as string[]).length;
  if (x.extras !== undefined) {
    if (!isObject(x.extras)) return false;
    for (const [k, b] of Object.entries(x.extras)) if (!(EXTRA_KEYS as readonly string[]).includes(k) || !isArrayBuffer(b) || b.byteLength !== points * 4) return false;
  }
  return x.data.byteLength === points * SCALAR_KEYS.length * 4;
}

const commandGuards = {
  uiState: isUiState,
  perf: isPerfReport,
  revealRunFolder: isEmptyObject,
};

const requestGuards: { [K in StatsRequestType]: Guard<StatsRequestTypes[K]['params']> } = {
  layerHistory: (x): x is StatsRequestTypes['layerHistory']['params'] => isObject(x) && isString(x.tensor) && x.tensor.length <= MAX_NAME,
  refresh: isEmptyObject,
};

const resultGuards: { [K in StatsRequestType]: Guard<StatsRequestTypes[K]['result']> } = {
  layerHistory: isNullable(isLayerHistory),
  refresh: (x): x is StatsRequestTypes['refresh']['result'] => isObject(x) && isNonNegInt(x.frames),
};

const notificationGuards: { [K in StatsNotificationType]: Guard<StatsNotificationParams[K]> } = {
  snapshot: (x): x is StatsNotificationParams['snapshot'] =>
    isObject(x) &&
    isRunInfo(x.run) &&
    isArrayOf(isMetricRow)(x.metrics) &&
    isArrayOf(isArrayBuffer)(x.frames) &&
    isNonNegInt(x.framesTotal) &&
    isHistoryPayload(x.history) &&
    (x.pinned === null || isPinned(x.pinned)) &&
    typeof x.live === 'boolean',
  frames: (x): x is StatsNotificationParams['frames'] => isObject(x) && isArrayOf(isArrayBuffer)(x.frames) && isNonNegInt(x.framesTotal),
  metrics: (x): x is StatsNotificationParams['metrics'] => isObject(x) && isArrayOf(isMetricRow)(x.rows),
  run: (x): x is StatsNotificationParams['run'] => isObject(x) && isRunInfo(x.run) && typeof x.live === 'boolean',
  select: (x): x is StatsNotificationParams['select'] => isObject(x) && isString(x.tensor) && x.tensor.length <= MAX_NAME,
  error: (x): x is StatsNotificationParams['error'] => isObject(x) && isString(x.message),
};

/** The statistics panel's protocol: validators, builders and dispatchers over the tables above. */
export const statsProtocol = definePanelProtocol<StatsCommandParams, StatsRequestTypes, StatsNotificationParams>({
  viewType: STATS_VIEW_TYPE,
  version: STATS_PROTOCOL_VERSION,
  commands: commandGuards,
  requests: requestGuards,
  results: resultGuards,
  notifications: notificationGuards,
});

export const { parseWebviewMessage, parseHostMessage, command, request, notification, dispatchCommand, dispatchNotification, answerRequest } = statsProtocol;

/** Handlers keyed by message type: a missing or extra one is a compile error, so nothing goes unhandled. */
export type CommandHandlers = CommandHandlersOf<StatsCommandParams>;
export type RequestHandlers = RequestHandlersOf<StatsRequestTypes>;
export type NotificationHandlers = NotificationHandlersOf<StatsNotificationParams>;

/** A metrics.jsonl object reduced to a MetricRow: finite numbers only; null when it has no finite `step`. */
export function toMetricRow(x: unknown): MetricRow | null {
  if (!isObject(x) || !isFiniteNumber(x.step)) return null;
  const row: MetricRow = { step: x.step };
  for (const k in x) {
    const v = x[k];
    if (k !== 'step' && isFiniteNumber(v) && k.length <= 200) row[k] = v;
  }
  return row;
}
