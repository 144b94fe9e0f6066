// The job registry: kind → handler, one per kind of src/protocol/worker.ts's JobKinds (the type makes a missing
// or an extra one a compile error). The JSON-RPC server dispatches through handlerFor(); nothing else switches
// on kind names. To add a kind, see the header of src/protocol/worker.ts.
import type { JobKind } from '../../protocol/worker';
import type { JobHandler, JobHandlers } from './context';
import { evalJob } from './eval';
import { evalWeightsJob } from './eval-weights';
import { mergeJob } from './merge';
import { pruneApplyJob } from './prune-apply';
import { pruneSweepJob } from './prune-sweep';
import { selfTestJob } from './self-test';
import { trainJob } from './train';

export const jobHandlers: JobHandlers = {
  selfTest: selfTestJob,
  train: trainJob,
  eval: evalJob,
  'eval-weights': evalWeightsJob,
  merge: mergeJob,
  'prune-sweep': pruneSweepJob,
  'prune-apply': pruneApplyJob,
};

/** The kinds this worker runs. */
export const jobKinds = Object.keys(jobHandlers) as JobKind[];

/** The handler of a kind named by a request; undefined for anything else (inherited names such as 'toString' too). */
export function handlerFor(kind: unknown): JobHandler<JobKind> | undefined {
  if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(jobHandlers, kind)) return undefined;
  return jobHandlers[kind as JobKind] as JobHandler<JobKind>;
}

export { InvalidJobParamsError, JobCancelledError, type JobContext, type JobHandler } from './context';
