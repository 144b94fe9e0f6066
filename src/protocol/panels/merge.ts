// The merge panel's messages (webview ⇄ extension host), on the shared panel envelope (./panel.ts):
//   commands       webview → host, no reply            ready, log, uiState, edit, openConfig, livePreview, cancel
//   requests       webview → host, one typed reply     preview, runMerge, refreshSaliency, evaluate
//   notifications  host → webview                      state
// The panel's state is small (experts × layers cells, a method form, per-layer preview figures, a result table),
// so the host always sends ALL of it (`state`): after `ready`, after every edit (the YAML was rewritten and read
// back), when the YAML changed in the editor, and as jobs progress. The webview keeps nothing but UI state.
//
// The state IS the merge config: every edit the webview asks for is applied to the YAML by the host, and the grid
// shown is always the one read back from the file. Pure TypeScript: no Node, no DOM, no vscode.
import {
  definePanelProtocol,
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
  type RequestHandlersOf,
} from './panel';

export const MERGE_VIEW_TYPE = 'basin.merge';
export const MERGE_PROTOCOL_VERSION = 1;

/** Parameters a grid cell can override. */
export const MERGE_CELL_PARAMS = ['weight', 'density'] as const;
export type MergeCellParam = (typeof MERGE_CELL_PARAMS)[number];

// ---------------------------------------------------------------------------------------------- shapes

/** One parameter of the method, for the generated form (from the registry's metadata). */
export interface MergeParamField {
  name: string;
  type: 'number' | 'integer' | 'boolean' | 'string' | 'array';
  doc: string;
  perModel: boolean;
  default: number | boolean | string | null;
  minimum: number | null;
  maximum: number | null;
  exclusiveMinimum: number | null;
  exclusiveMaximum: number | null;
  /** The config's global value when it is a plain scalar; null when absent. */
  value: number | boolean | string | null;
  /** The global value as written when it is not a plain scalar (a gradient, filters), else null. */
  text: string | null;
}

export interface MergeMethodForm {
  name: string;
  title: string;
  doc: string;
  needs: { base: boolean; statistics: boolean; data: boolean };
  params: MergeParamField[];
}

export interface MergeGridColumn {
  key: string;
  label: string;
  layer: number | null;
  tensors: number;
}

export interface MergeGridRow {
  /** The model as written in the config. */
  written: string;
  kind: string;
  /** Per-model parameters' row values: the plain value written for this model (null: none, the global/default applies). */
  params: Record<string, number | boolean | null>;
  /** The row value as written when it is not a plain scalar (a gradient, the user's filters). */
  paramText: Record<string, string>;
  /** Why there is no saliency for this expert (no training statistics, …), null when it has some. */
  noStatistics: string | null;
  /** The run's last validation metrics (run.json), when the model is a Basin run or checkpoint. */
  metrics: Record<string, number> | null;
}

export interface MergeGridCell {
  /** Resolved weight of the cell's tensors; null when they differ ("mixed"). */
  weight: number | null;
  density: number | null;
  /** The panel's overrides in this cell (absent: none). */
  overrideWeight: number | null;
  overrideDensity: number | null;
  /** Σ τ²⊙F̂ of the expert in this layer (from the statistics), null when unknown. */
  saliency: number | null;
}

export interface MergeLayerPreview {
  key: string;
  label: string;
  /** Per grid row: fraction of the task vector kept in this layer (numel-weighted over its sampled tensors). */
  kept: (number | null)[];
  /** Fraction of sampled entries where the kept experts disagree on the sign. */
  signConflict: number;
  tensors: number;
}

export interface MergePreviewState {
  status: 'idle' | 'running' | 'done' | 'error';
  message: string | null;
  layers: MergeLayerPreview[];
  seconds: number | null;
  /** The sample: tensors merged and rows of each. */
  sample: { tensors: number; rowsPerTensor: number } | null;
}

export interface MergeJobState {
  status: 'idle' | 'queued' | 'running' | 'completed' | 'cancelled' | 'failed';
  fraction: number | null;
  message: string | null;
}

/** The result table: the merged model beside the experts (and the base). */
export interface MergeResultState {
  output: string;
  seconds: number;
  tensors: number;
  bytesWritten: number;
  /** Metric names shown (the union over the rows). */
  metricKeys: string[];
  rows: { label: string; role: 'merged' | 'expert' | 'base'; metrics: Record<string, number> | null; note: string | null }[];
  /** Mean kept fraction per expert and mean sign conflict over the merge. */
  kept: number[];
  signConflict: number;
  /** Why "Evaluate" cannot run the merged model yet, null when it can. */
  evaluateNote: string | null;
}

export interface MergeDiagnostic {
  line: number;
  column: number;
  message: string;
  severity: 'error' | 'warning';
}

export interface MergePanelSnapshot {
  configFile: string;
  name: string;
  /** Problems of the YAML (or of the plan) as read now; with errors, the grid is the last good one (`stale`). */
  diagnostics: MergeDiagnostic[];
  stale: boolean;
  /** Why the grid cannot be edited (slices form, no plan yet), null when it can. */
  readOnly: string | null;
  method: MergeMethodForm | null;
  methods: { name: string; title: string }[];
  base: string | null;
  columns: MergeGridColumn[];
  rows: MergeGridRow[];
  /** cells[row][column] */
  cells: MergeGridCell[][];
  /** Cell parameters the method has (empty: the method weighs the models itself; the cells show saliency only). */
  cellParams: MergeCellParam[];
  /** The YAML name of the cells' weight: `weight` (per model) or a global share of the other model (slerp's `t`). */
  weightParam: string | null;
  saliency: { status: 'idle' | 'running' | 'done' | 'error' | 'unavailable'; message: string | null };
  preview: MergePreviewState;
  livePreview: boolean;
  job: MergeJobState;
  result: MergeResultState | null;
  /** Edits applied since the panel opened (for tests). */
  edits: number;
}

export type MergeEditRequest =
  | { kind: 'include'; cells: [number, number][]; included: boolean }
  | { kind: 'setCells'; cells: [number, number][]; param: MergeCellParam; value: number | null }
  | { kind: 'setRow'; row: number; param: string; value: number | boolean | null }
  | { kind: 'setGlobal'; param: string; value: number | boolean | null }
  | { kind: 'setMethod'; method: string };

export interface MergeUiState {
  /** The cell parameter the grid's numbers show. */
  show: 'saliency' | MergeCellParam;
  scrollLeft: number;
}
export const DEFAULT_MERGE_UI: MergeUiState = { show: 'saliency', scrollLeft: 0 };

// ------------------------------------------------------------------------------------------------ tables

export interface MergeCommandParams extends BaseCommands {
  uiState: MergeUiState;
  edit: MergeEditRequest;
  openConfig: Record<string, never>;
  livePreview: { on: boolean };
  cancel: Record<string, never>;
}

export interface MergeRequestTypes {
  /** Runs a preview now (a sample of every tensor); the state follows as well. */
  preview: { params: Record<string, never>; result: MergePreviewState };
  /** Starts the merge job (saving the config first); answers when it has ended. */
  runMerge: { params: { force: boolean }; result: MergeJobState };
  refreshSaliency: { params: Record<string, never>; result: { status: string } };
  /** Evaluate the merged model on every expert's task (not possible yet: the answer says why). */
  evaluate: { params: Record<string, never>; result: { started: boolean; message: string } };
}

export interface MergeNotificationParams {
  state: MergePanelSnapshot;
}

// ------------------------------------------------------------------------------------------------ guards

const MAX_CELLS = 100_000;
const MAX_NAME = 256;
const isCellParam = isOneOf(MERGE_CELL_PARAMS);
const isCell = (x: unknown): x is [number, number] => Array.isArray(x) && x.length === 2 && isNonNegInt(x[0]) && isNonNegInt(x[1]);
const isParamValue = (x: unknown): x is number | boolean | null => x === null || typeof x === 'boolean' || isFiniteNumber(x);
const isName = (x: unknown): x is string => isString(x) && x.length > 0 && x.length <= MAX_NAME;

export function isMergeEdit(x: unknown): x is MergeEditRequest {
  if (!isObject(x)) return false;
  switch (x.kind) {
    case 'include':
      return isArrayOf(isCell, MAX_CELLS)(x.cells) && typeof x.included === 'boolean';
    case 'setCells':
      return isArrayOf(isCell, MAX_CELLS)(x.cells) && isCellParam(x.param) && (x.value === null || isFiniteNumber(x.value));
    case 'setRow':
      return isNonNegInt(x.row) && isName(x.param) && isParamValue(x.value);
    case 'setGlobal':
      return isName(x.param) && isParamValue(x.value);
    case 'setMethod':
      return isName(x.method);
    default:
      return false;
  }
}

export function coerceMergeUi(x: unknown): MergeUiState {
  const s = { ...DEFAULT_MERGE_UI };
  if (!isObject(x)) return s;
  if (x.show === 'saliency' || isCellParam(x.show)) s.show = x.show;
  if (isFiniteNumber(x.scrollLeft) && x.scrollLeft >= 0) s.scrollLeft = x.scrollLeft;
  return s;
}

const isUi = (x: unknown): x is MergeUiState => isObject(x) && (x.show === 'saliency' || isCellParam(x.show)) && isFiniteNumber(x.scrollLeft) && x.scrollLeft >= 0;

const JOB_STATUSES = ['idle', 'queued', 'running', 'completed', 'cancelled', 'failed'] as const;
const isJobState = (x: unknown): x is MergeJobState =>
  isObject(x) && isOneOf(JOB_STATUSES)(x.status) && isNullable(isFiniteNumber)(x.fraction) && isNullable(isString)(x.message);
const isPreviewState = (x: unknown): x is MergePreviewState =>
  isObject(x) &&
  isOneOf(['idle', 'running', 'done', 'error'] as const)(x.status) &&
  isNullable(isString)(x.message) &&
  Array.isArray(x.layers) &&
  x.layers.every((l) => isObject(l) && isString(l.key) && isString(l.label) && isArrayOf(isNullable(isFiniteNumber))(l.kept) && isFiniteNumber(l.signConflict) && isNonNegInt(l.tensors)) &&
  isNullable(isFiniteNumber)(x.seconds);

/** The snapshot's shape, checked at the top level and where the webview indexes into it (rows × columns). */
export function isMergeSnapshot(x: unknown): x is MergePanelSnapshot {
  if (!isObject(x)) return false;
  if (!isString(x.configFile) || !isString(x.name) || !Array.isArray(x.diagnostics) || typeof x.stale !== 'boolean') return false;
  if (!isNullable(isString)(x.readOnly) || !Array.isArray(x.methods) || !isNullable(isString)(x.base)) return false;
  if (!(x.method === null || (isObject(x.method) && isString(x.method.name) && Array.isArray(x.method.params)))) return false;
  if (!Array.isArray(x.columns) || !Array.isArray(x.rows) || !Array.isArray(x.cells)) return false;
  const nc = x.columns.length;
  if (x.cells.length !== x.rows.length || !x.cells.every((r) => Array.isArray(r) && r.length === nc && r.every(isObject))) return false;
  if (!isArrayOf(isCellParam)(x.cellParams) || !isNullable(isString)(x.weightParam)) return false;
  if (!isObject(x.saliency) || !isString(x.saliency.status)) return false;
  if (!isPreviewState(x.preview) || typeof x.livePreview !== 'boolean' || !isJobState(x.job)) return false;
  if (!(x.result === null || (isObject(x.result) && isString(x.result.output) && Array.isArray(x.result.rows)))) return false;
  return isNonNegInt(x.edits);
}

export const mergeProtocol = definePanelProtocol<MergeCommandParams, MergeRequestTypes, MergeNotificationParams>({
  viewType: MERGE_VIEW_TYPE,
  version: MERGE_PROTOCOL_VERSION,
  commands: {
    uiState: isUi,
    edit: isMergeEdit,
    openConfig: isEmptyObject,
    livePreview: (x): x is { on: boolean } => isObject(x) && typeof x.on === 'boolean',
    cancel: isEmptyObject,
  },
  requests: {
    preview: isEmptyObject,
    runMerge: (x): x is { force: boolean } => isObject(x) && typeof x.force === 'boolean',
    refreshSaliency: isEmptyObject,
    evaluate: isEmptyObject,
  },
  results: {
    preview: isPreviewState,
    runMerge: isJobState,
    refreshSaliency: (x): x is { status: string } => isObject(x) && isString(x.status),
    evaluate: (x): x is { started: boolean; message: string } => isObject(x) && typeof x.started === 'boolean' && isString(x.message),
  },
  notifications: {
    state: (x): x is MergePanelSnapshot => isMergeSnapshot(x),
  },
});

export type MergeCommandHandlers = Omit<CommandHandlersOf<MergeCommandParams>, keyof BaseCommands>;
export type MergeRequestHandlers = RequestHandlersOf<MergeRequestTypes>;
export type MergeNotificationHandlers = NotificationHandlersOf<MergeNotificationParams>;
export type { Guard };

/** Rows of each tensor the merge panel's preview merges (the statistics of a sample; `basin bench merge` times it). */
export const MERGE_PREVIEW_ROWS = 64;
