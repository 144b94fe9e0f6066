// The shapes the host's job manager (jobs.ts) and the kinds' host parts (kinds/*.ts) share: a job as the host
// sees it, its events, and JobKindHost — what a kind may add to the generic handling (its own status text, result
// message, end actions, run-folder bookkeeping). Types only, so every part imports this and none imports another.
import type * as vscode from 'vscode';
import type { JobKind, JobParams, JobProgressData, JobResult, SideRecord } from '../../protocol/worker';
import type { WorkerExit } from './worker-process';

export type JobStatus = 'completed' | 'cancelled' | 'failed';

/** A job the manager runs (or ran). The object is live: `runDir`, `name` and `progress` fill in as the job runs. */
export interface JobInfo<K extends JobKind = JobKind> {
  /** Unique per host session; the same id the worker's progress notifications and side-channel records carry. */
  readonly id: string;
  readonly kind: K;
  /** What the worker was asked (paths absolute). */
  readonly params: JobParams<K>;
  /**
   * Absolute run folder the job writes or reads: known at once when the params name it (resume, eval), else from
   * the first progress that carries it (a fresh training run: phase 'started').
   */
  runDir?: string;
  /** A short name for messages (the run's name; before the worker answers, the config's file name). */
  name: string;
  /** ms since the epoch. */
  readonly startedAt: number;
  /** The latest progress payload, if any came. */
  progress?: JobProgressData<K>;
  /** The worker's one-line description of the latest progress. */
  message?: string;
  /** Fraction done in [0, 1] of the latest progress, where known. */
  fraction?: number;
  /** The job waits for another GPU job of the worker to end. */
  queued: boolean;
  /** Cancel was asked for. */
  cancelRequested: boolean;
}

/** Any job, narrowed by `kind` (`if (job.kind === 'train') job.params.resume…`). */
export type AnyJobInfo = { [K in JobKind]: JobInfo<K> }[JobKind];

/** A progress notification of a job; narrow with `e.kind`. */
export type JobProgressEvent<K extends JobKind = JobKind> = { [Q in K]: { kind: Q; job: JobInfo<Q>; progress: JobProgressData<Q> } }[K];

export interface JobError {
  message: string;
  /** WorkerErrorCodes value of the worker's error reply, when the worker answered. */
  code?: number;
  /** The error's class name in the worker (ConfigError, NonFiniteError, DeviceLostError…). */
  name?: string;
  /** How the worker process ended, when it died during the job. */
  exit?: WorkerExit;
}

/** The end of a job; narrow with `e.kind`. */
export type JobEndEvent<K extends JobKind = JobKind> = {
  [Q in K]: {
    kind: Q;
    job: JobInfo<Q>;
    status: JobStatus;
    /** The worker's result (completed; and a train job cancelled once the trainer ran: it holds the checkpoint). */
    result?: JobResult<Q>;
    /** Why it failed (status 'failed'; or why a cancel ended the worker). */
    error?: JobError;
  };
}[K];

/** What a job-starting call resolves to: the end of the job, or undefined when none was started (untrusted…). */
export type JobOutcome<K extends JobKind = JobKind> = JobEndEvent<K>;

/** A button on a job's end notification. */
export interface JobEndAction {
  title: string;
  run(): void;
}

/**
 * What a kind adds to the manager's generic handling. Every member is optional except `kind`: a kind without a
 * host part (or with an empty one) still runs, with the worker's progress line and a generic result message.
 */
export interface JobKindHost<K extends JobKind> {
  readonly kind: K;
  /** What the job is, for the untrusted-workspace refusal: 'training', 'evaluating a checkpoint'. */
  activity?(params: JobParams<K>): string;
  /** Why the job must not start now (shown as a warning), or undefined. */
  refuse?(params: JobParams<K>): string | undefined;
  /** The job's name and the run folder it holds from the start, from its params. */
  describe?(params: JobParams<K>): { name: string; runDir?: string };
  /** The progress notification's title after "Basin: " ('training tiny'). */
  title?(job: JobInfo<K>): string;
  /** The status bar's and notification's line for the latest progress ('' when there is nothing to say yet). */
  progressLine?(job: JobInfo<K>): string;
  /** A line for the status bar's tooltip (default: progressLine). */
  tooltipLine?(job: JobInfo<K>): string;
  /** Updates the job from a progress payload (its run folder, its name). */
  learn?(job: JobInfo<K>, progress: JobProgressData<K>): void;
  /** How a result ends the job: 'completed' unless the kind says otherwise (train's cancel with a checkpoint). */
  endStatus?(result: JobResult<K>): 'completed' | 'cancelled';
  /** One line about a result, for the log and the end notification. */
  summary?(result: JobResult<K>, job: JobInfo<K>): string;
  /** The end notification's text, when the kind words it itself (undefined: the generic text). */
  endMessage?(end: JobEndEvent<K>): string | undefined;
  /** Buttons on the end notification, beside "Show Log". */
  endActions?(end: JobEndEvent<K>): JobEndAction[];
  /** Runs after the job ended and before `onDidEnd` fires (train: mark run.json when the worker could not). */
  settle?(end: JobEndEvent<K>): Promise<void>;
  /** A binary side-channel record of one of its jobs. */
  onRecord?(job: JobInfo<K>, record: SideRecord): void;
  /** What clicking the status bar does while this job is the newest (default: show the log). */
  statusCommand?(job: JobInfo<K>): vscode.Command | undefined;
}

/** One host part per kind at most; kinds without one run with the defaults. */
export type JobKindHosts = { [K in JobKind]?: JobKindHost<K> };
