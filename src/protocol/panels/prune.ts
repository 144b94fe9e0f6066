// The prune panel's messages (webview ⇄ extension host), on the shared panel envelope (./panel.ts):
//   commands       webview → host, no reply            ready, log, uiState, cancel, openFile
//   requests       webview → host, one typed reply     runSweep, evaluatePoint, apply
//   notifications  host → webview                      state
// The state is small (scores × densities points, one kept fraction per target per point), so the host always
// sends ALL of it: after `ready`, whenever the watched sweep file changes (points appear while the sweep runs),
// and as jobs progress. The webview keeps only UI state (metric, score, slider position).
// Pure TypeScript: no Node, no DOM, no vscode.
import {
  definePanelProtocol,
  isArrayOf,
  isFiniteNumber,
  isNullable,
  isObject,
  isOneOf,
  isString,
  type BaseCommands,
  type CommandHandlersOf,
  type RequestHandlersOf,
} from './panel';

export const PRUNE_VIEW_TYPE = 'basin.prune';
export const PRUNE_PROTOCOL_VERSION = 1;

/** Most scores, densities and targets a message may carry (a bad message beyond). */
export const PRUNE_MAX_SCORES = 32;
export const PRUNE_MAX_DENSITIES = 200;
export const PRUNE_MAX_TARGETS = 100_000;
export const PRUNE_MAX_POINTS = 20_000;

/** Metric values by name (loss, accuracy, hr10…); null where the file has NaN or nothing. */
export type PruneMetrics = Record<string, number | null>;

export interface PrunePointView {
  score: string;
  density: number;
  /** Fraction of all targeted entries kept. */
  kept: number;
  /** Kept fraction per target, parallel to `targets`. */
  layers: number[];
  metrics: PruneMetrics;
  /** Evaluated on request ("Evaluate this point"), not by the sweep. */
  extra: boolean;
}

export interface PruneSweepView {
  file: string;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  error: string | null;
  granularity: string;
  pattern: string | null;
  /** The scores and densities asked for, in order. */
  scores: string[];
  densities: number[];
  targets: { name: string; size: number }[];
  dense: PruneMetrics | null;
  chance: PruneMetrics | null;
  points: PrunePointView[];
}

export type PruneJobStatus = 'idle' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export interface PruneJobState {
  status: PruneJobStatus;
  fraction: number | null;
  message: string | null;
}

export interface PruneApplied {
  weights: string;
  report: string;
  score: string;
  density: number;
  kept: number;
  dense: PruneMetrics | null;
  pruned: PruneMetrics | null;
}

export interface PruneScoreInfo {
  name: string;
  doc: string;
  /** What it needs beyond the weights ('calibration data', 'training statistics'), '' when nothing. */
  needs: string;
}

export interface PrunePanelSnapshot {
  /** The checkpoint pruned (absolute), its run folder and step. */
  checkpoint: string;
  runDir: string;
  step: number | null;
  name: string;
  sweep: PruneSweepView | null;
  /** Why there is no sweep to show ('' when there is one or none was looked for yet). */
  sweepMessage: string;
  sweepJob: PruneJobState;
  pointJob: PruneJobState;
  applyJob: PruneJobState;
  applied: PruneApplied | null;
  /** The registry's scores, and what a new sweep uses by default. */
  scores: PruneScoreInfo[];
  defaultScores: string[];
  defaultDensities: number[];
  /** Jobs may not run (untrusted workspace): the buttons say why. */
  jobsBlocked: string | null;
}

/** UI state the webview persists (and the host keeps for the tests). */
export interface PruneUiState {
  metric: string;
  /** The score whose per-layer bars show. */
  score: string;
  /** The slider: fraction kept in (0, 1]. */
  density: number;
}

export const DEFAULT_PRUNE_UI: PruneUiState = { metric: 'loss', score: '', density: 0.5 };

// ---------------------------------------------------------------------------------------------- tables

export interface PruneCommandParams extends BaseCommands {
  uiState: PruneUiState;
  /** Cancel the panel's running job of that kind. */
  cancel: { job: 'sweep' | 'point' | 'apply' };
  /** Open the sweep file or the applied checkpoint's report in an editor. */
  openFile: { which: 'sweep' | 'report' };
}

export interface PruneRequestTypes {
  /** A new sweep of the panel's checkpoint; it answers when the sweep ends (points come as `state` meanwhile). */
  runSweep: { params: { scores: string[]; densities: number[] }; result: PruneJobState };
  /** A one-density sweep of one score: the exact point where the slider interpolates. */
  evaluatePoint: { params: { score: string; density: number }; result: PruneJobState };
  /** Writes the pruned checkpoint of one score at one density. */
  apply: { params: { score: string; density: number }; result: PruneJobState };
}

export interface PruneNotificationParams {
  state: PrunePanelSnapshot;
}

export type PruneCommandHandlers = Omit<CommandHandlersOf<PruneCommandParams>, keyof BaseCommands>;
export type PruneRequestHandlers = RequestHandlersOf<PruneRequestTypes>;

// ---------------------------------------------------------------------------------------------- guards

const isDensity = (x: unknown): x is number => isFiniteNumber(x) && x > 0 && x <= 1;
const isScoreName = (x: unknown): x is string => isString(x) && x.length > 0 && x.length <= 64 && /^[A-Za-z0-9_.-]+$/.test(x);
const isMetrics = (x: unknown): x is PruneMetrics => isObject(x) && Object.values(x).every((v) => v === null || isFiniteNumber(v));
const isJobState = (x: unknown): x is PruneJobState =>
  isObject(x) &&
  isOneOf(['idle', 'queued', 'running', 'completed', 'failed', 'cancelled'] as const)(x.status) &&
  isNullable(isFiniteNumber)(x.fraction) &&
  isNullable(isString)(x.message);

const isPoint = (x: unknown): x is PrunePointView =>
  isObject(x) && isString(x.score) && isFiniteNumber(x.density) && isFiniteNumber(x.kept) && isArrayOf(isFiniteNumber, PRUNE_MAX_TARGETS)(x.layers) && isMetrics(x.metrics) && typeof x.extra === 'boolean';

const isSweep = (x: unknown): x is PruneSweepView =>
  isObject(x) &&
  isString(x.file) &&
  isOneOf(['running', 'completed', 'failed', 'cancelled'] as const)(x.status) &&
  isNullable(isString)(x.error) &&
  isString(x.granularity) &&
  isNullable(isString)(x.pattern) &&
  isArrayOf(isString, PRUNE_MAX_SCORES)(x.scores) &&
  isArrayOf(isFiniteNumber, PRUNE_MAX_DENSITIES)(x.densities) &&
  isArrayOf((t: unknown): t is { name: string; size: number } => isObject(t) && isString(t.name) && isFiniteNumber(t.size), PRUNE_MAX_TARGETS)(x.targets) &&
  isNullable(isMetrics)(x.dense) &&
  isNullable(isMetrics)(x.chance) &&
  isArrayOf(isPoint, PRUNE_MAX_POINTS)(x.points) &&
  x.points.every((p) => p.layers.length === (x.targets as unknown[]).length);

const isApplied = (x: unknown): x is PruneApplied =>
  isObject(x) && isString(x.weights) && isString(x.report) && isString(x.score) && isFiniteNumber(x.density) && isFiniteNumber(x.kept) && isNullable(isMetrics)(x.dense) && isNullable(isMetrics)(x.pruned);

export const isPruneSnapshot = (x: unknown): x is PrunePanelSnapshot =>
  isObject(x) &&
  isString(x.checkpoint) &&
  isString(x.runDir) &&
  isNullable(isFiniteNumber)(x.step) &&
  isString(x.name) &&
  isNullable(isSweep)(x.sweep) &&
  isString(x.sweepMessage) &&
  isJobState(x.sweepJob) &&
  isJobState(x.pointJob) &&
  isJobState(x.applyJob) &&
  isNullable(isApplied)(x.applied) &&
  isArrayOf((s: unknown): s is PruneScoreInfo => isObject(s) && isString(s.name) && isString(s.doc) && isString(s.needs), PRUNE_MAX_SCORES)(x.scores) &&
  isArrayOf(isString, PRUNE_MAX_SCORES)(x.defaultScores) &&
  isArrayOf(isDensity, PRUNE_MAX_DENSITIES)(x.defaultDensities) &&
  isNullable(isString)(x.jobsBlocked);

export const isPruneUi = (x: unknown): x is PruneUiState => isObject(x) && isString(x.metric) && x.metric.length <= 64 && isString(x.score) && x.score.length <= 64 && isDensity(x.density);

export const prunePoint = (x: unknown): x is { score: string; density: number } => isObject(x) && isScoreName(x.score) && isDensity(x.density);

export const pruneProtocol = definePanelProtocol<PruneCommandParams, PruneRequestTypes, PruneNotificationParams>({
  viewType: PRUNE_VIEW_TYPE,
  version: PRUNE_PROTOCOL_VERSION,
  commands: {
    uiState: isPruneUi,
    cancel: (x): x is PruneCommandParams['cancel'] => isObject(x) && isOneOf(['sweep', 'point', 'apply'] as const)(x.job),
    openFile: (x): x is PruneCommandParams['openFile'] => isObject(x) && isOneOf(['sweep', 'report'] as const)(x.which),
  },
  requests: {
    runSweep: (x): x is PruneRequestTypes['runSweep']['params'] =>
      isObject(x) &&
      isArrayOf(isScoreName, PRUNE_MAX_SCORES)(x.scores) &&
      x.scores.length > 0 &&
      isArrayOf(isDensity, PRUNE_MAX_DENSITIES)(x.densities) &&
      x.densities.length > 0,
    evaluatePoint: prunePoint,
    apply: prunePoint,
  },
  results: {
    runSweep: isJobState,
    evaluatePoint: isJobState,
    apply: isJobState,
  },
  notifications: {
    state: isPruneSnapshot,
  },
});

/** Labels and units of the metrics a sweep may carry (others show their own name, unitless). */
export const PRUNE_METRICS: Record<string, { label: string; unit: string; percent: boolean; higherIsBetter: boolean }> = {
  loss: { label: 'validation loss', unit: 'nats', percent: false, higherIsBetter: false },
  accuracy: { label: 'accuracy', unit: '%', percent: true, higherIsBetter: true },
  hr10: { label: 'HR@10', unit: '%', percent: true, higherIsBetter: true },
  ndcg10: { label: 'NDCG@10', unit: '%', percent: true, higherIsBetter: true },
  hr10Full: { label: 'HR@10 (full catalogue)', unit: '%', percent: true, higherIsBetter: true },
  mrr: { label: 'MRR', unit: '%', percent: true, higherIsBetter: true },
};
