// The kinds' host parts, one per job kind that has one (a kind without one runs with the manager's defaults).
// Adding one: a class implementing JobKindHost<'<kind>'> in kinds/<kind>.ts and a line here.
import type { JobManager } from '../jobs';
import { EvalJobHost, type EvalKindEnv } from './eval';
import { MergeJobHost } from './merge';
import { PruneApplyJobHost, PruneSweepJobHost } from './prune';
import { TrainJobHost, type TrainKindEnv } from './train';

export interface JobKindParts {
  train: TrainJobHost;
  eval: EvalJobHost;
  merge: MergeJobHost;
  pruneSweep: PruneSweepJobHost;
  pruneApply: PruneApplyJobHost;
}

/** Makes every kind's host part and registers it with the manager. */
export function registerJobKinds(jobs: JobManager, env: TrainKindEnv & EvalKindEnv): JobKindParts {
  const parts: JobKindParts = {
    train: new TrainJobHost(jobs, env),
    eval: new EvalJobHost(env),
    merge: new MergeJobHost(),
    pruneSweep: new PruneSweepJobHost(),
    pruneApply: new PruneApplyJobHost(),
  };
  jobs.registerKind(parts.train);
  jobs.registerKind(parts.eval);
  jobs.registerKind(parts.merge);
  jobs.registerKind(parts.pruneSweep);
  jobs.registerKind(parts.pruneApply);
  return parts;
}
