// Evaluation splits of per-user sequences (docs: ../shared/notes/algorithms.md §5, ../shared found from the repository root).
//
// leave-one-out: per user, the last item is the test target, the one before it the validation target, the rest
//   is training. The validation input is the training prefix; the test input is the prefix plus the validation
//   item. Users with fewer than 3 interactions cannot give all three parts and are dropped (counted).
// temporal (global): the cutoff is the time quantile below which (1 − testFraction) of the interactions fall;
//   every interaction at or after it is in the test period. A user's history is what came before the cutoff; a
//   test user (history ≥ 1 and ≥ 1 interaction after the cutoff) predicts the FIRST item after the cutoff from
//   the whole history. A held-out fraction of the users (chosen by seed among those with a history of ≥ 2) are
//   validation users: their history is left out of training, and they predict its last item from the rest.
//   Users with no history (all their interactions after the cutoff) cannot be evaluated and are dropped (counted).
//
// For full-ranking evaluation with the seen items removed, each split carries the distinct items of each
// evaluation input as CSR arrays. Targets whose item never occurs in training cannot be ranked well by any
// learned model: they are counted and a few are named; so are targets the user already had in the input (they
// would be removed from the ranking with the seen items).
import { Rng } from '../rng';
import { DataError } from './read';
import type { Sequences } from './dataset';

/** Row u holds items[offsets[u]..offsets[u+1]) (ascending, distinct). */
export interface Csr {
  offsets: Int32Array;
  items: Int32Array;
}

export interface EvalStats {
  /** Users with a target. */
  users: number;
  /** Targets whose item never occurs in the training sequences; a few of their raw item ids. */
  unseenTargets: number;
  unseenExamples: string[];
  /** Targets already in the user's input (removed from the ranking along with the seen items). */
  targetsInInput: number;
}

export interface SplitStats {
  protocol: 'leave-one-out' | 'temporal';
  /** Users in the split, and users of the sequences left out (too short / no history before the cutoff). */
  users: number;
  droppedUsers: number;
  droppedReason: string;
  /** Users with a non-empty training sequence, and the items those sequences hold. */
  trainUsers: number;
  trainInteractions: number;
  valid: EvalStats;
  test: EvalStats;
  /** Temporal: the cutoff time, and the interactions at or after it. */
  cutoff?: number;
  testPeriodInteractions?: number;
}

/**
 * What the recommenders train and evaluate on. Users are 0..numUsers-1 (userIds gives the raw ids), items
 * 1..numItems (0 = padding; itemIds gives the raw ids). Arrays of sequences hold views into one buffer, not copies:
 * do not write into them.
 */
export interface SequenceSplit {
  protocol: 'leave-one-out' | 'temporal';
  numUsers: number;
  numItems: number;
  userIds: string[];
  itemIds: string[];
  /** Per user, the time-ordered training items (may be empty: temporal validation users). */
  train: Int32Array[];
  /** Per user, the validation / test target item; 0 = the user has none. */
  valid: Int32Array;
  test: Int32Array;
  /** Per user, the model's input for its validation / test target (empty when it has no target). */
  validInput: Int32Array[];
  testInput: Int32Array[];
  /** Items to remove when ranking the test target: the distinct items of testInput[u]. */
  seen: Csr;
  /** The same for the validation target: the distinct items of validInput[u]. */
  seenValid: Csr;
  stats: SplitStats;
}

const EMPTY = new Int32Array(0);
const EXAMPLES = 10;

/** The distinct items of each input, ascending. */
export function seenCsr(inputs: Int32Array[]): Csr {
  const offsets = new Int32Array(inputs.length + 1);
  let total = 0;
  for (const x of inputs) total += x.length;
  const items = new Int32Array(total);
  let at = 0;
  for (let u = 0; u < inputs.length; u++) {
    const sorted = Int32Array.from(inputs[u]).sort();
    for (let k = 0; k < sorted.length; k++) if (k === 0 || sorted[k] !== sorted[k - 1]) items[at++] = sorted[k];
    offsets[u + 1] = at;
  }
  return { offsets, items: items.slice(0, at) };
}

/** Row u of a CSR. */
export function csrRow(c: Csr, u: number): Int32Array {
  return c.items.subarray(c.offsets[u], c.offsets[u + 1]);
}

function binaryHas(row: Int32Array, item: number): boolean {
  let lo = 0;
  let hi = row.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (row[mid] === item) return true;
    if (row[mid] < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function evalStats(targets: Int32Array, seen: Csr, trainCount: Int32Array, itemIds: string[]): EvalStats {
  const s: EvalStats = { users: 0, unseenTargets: 0, unseenExamples: [], targetsInInput: 0 };
  for (let u = 0; u < targets.length; u++) {
    const t = targets[u];
    if (t === 0) continue;
    s.users++;
    if (trainCount[t] === 0) {
      s.unseenTargets++;
      if (s.unseenExamples.length < EXAMPLES && !s.unseenExamples.includes(itemIds[t])) s.unseenExamples.push(itemIds[t]);
    }
    if (binaryHas(csrRow(seen, u), t)) s.targetsInInput++;
  }
  return s;
}

function finish(
  seq: Sequences,
  protocol: SequenceSplit['protocol'],
  kept: number[],
  parts: { train: Int32Array[]; valid: Int32Array; test: Int32Array; validInput: Int32Array[]; testInput: Int32Array[] },
  dropped: { users: number; reason: string },
  extra: Partial<SplitStats> = {},
): SequenceSplit {
  const trainCount = new Int32Array(seq.numItems + 1);
  let trainUsers = 0;
  let trainInteractions = 0;
  for (const x of parts.train) {
    if (x.length > 0) trainUsers++;
    trainInteractions += x.length;
    for (let k = 0; k < x.length; k++) trainCount[x[k]]++;
  }
  const seen = seenCsr(parts.testInput);
  const seenValid = seenCsr(parts.validInput);
  return {
    protocol,
    numUsers: kept.length,
    numItems: seq.numItems,
    userIds: kept.map((u) => seq.userIds[u]),
    itemIds: seq.itemIds,
    ...parts,
    seen,
    seenValid,
    stats: {
      protocol,
      users: kept.length,
      droppedUsers: dropped.users,
      droppedReason: dropped.reason,
      trainUsers,
      trainInteractions,
      valid: evalStats(parts.valid, seenValid, trainCount, seq.itemIds),
      test: evalStats(parts.test, seen, trainCount, seq.itemIds),
      ...extra,
    },
  };
}

/** Leave-one-out: last item = test, second to last = validation, the rest = train; users with < 3 dropped. */
export function leaveOneOut(seq: Sequences): SequenceSplit {
  const kept: number[] = [];
  for (let u = 0; u < seq.numUsers; u++) if (seq.offsets[u + 1] - seq.offsets[u] >= 3) kept.push(u);
  const U = kept.length;
  const train: Int32Array[] = new Array(U);
  const testInput: Int32Array[] = new Array(U);
  const valid = new Int32Array(U);
  const test = new Int32Array(U);
  kept.forEach((u, d) => {
    const a = seq.offsets[u];
    const b = seq.offsets[u + 1];
    train[d] = seq.items.subarray(a, b - 2);
    testInput[d] = seq.items.subarray(a, b - 1);
    valid[d] = seq.items[b - 2];
    test[d] = seq.items[b - 1];
  });
  return finish(seq, 'leave-one-out', kept, { train, valid, test, validInput: train, testInput }, { users: seq.numUsers - U, reason: 'fewer than 3 interactions' });
}

export interface TemporalOptions {
  /** Fraction of the interactions (by time) in the test period. Default 0.1. */
  testFraction?: number;
  /** Fraction of the eligible users held out from training for validation. Default 0.1. */
  validFraction?: number;
  seed: number;
}

/** The time t such that the interactions at or after t are about `fraction` of all (ties at t all fall after). */
export function timeQuantileCutoff(times: Float64Array, fraction: number): number {
  if (times.length === 0) return Infinity;
  const sorted = Float64Array.from(times).sort();
  const at = Math.min(sorted.length - 1, Math.max(0, Math.floor(sorted.length * (1 - fraction))));
  return fraction <= 0 ? Infinity : sorted[at];
}

/** Global temporal split (see the file's header). */
export function temporalSplit(seq: Sequences, o: TemporalOptions): SequenceSplit {
  const testFraction = o.testFraction ?? 0.1;
  const validFraction = o.validFraction ?? 0.1;
  if (!(testFraction > 0 && testFraction < 1)) throw new DataError(`testFraction must be in (0, 1), got ${testFraction}`, '');
  if (!(validFraction >= 0 && validFraction < 1)) throw new DataError(`validFraction must be in [0, 1), got ${validFraction}`, '');
  const cutoff = timeQuantileCutoff(seq.times, testFraction);
  // The length of each user's history: its interactions are time-ordered, so the ones before the cutoff are a prefix.
  const hist = new Int32Array(seq.numUsers);
  const kept: number[] = [];
  let testPeriod = 0;
  for (let u = 0; u < seq.numUsers; u++) {
    const a = seq.offsets[u];
    const b = seq.offsets[u + 1];
    let k = a;
    while (k < b && seq.times[k] < cutoff) k++;
    hist[u] = k - a;
    testPeriod += b - k;
    if (k > a) kept.push(u);
  }
  const U = kept.length;
  // Validation users: a seeded choice among the kept users with a history of ≥ 2.
  const eligible: number[] = [];
  kept.forEach((u, d) => {
    if (hist[u] >= 2) eligible.push(d);
  });
  const perm = new Rng(o.seed, 0x7e57).permutation(eligible.length);
  const nValid = Math.round(eligible.length * validFraction);
  const isValid = new Uint8Array(U);
  for (let k = 0; k < nValid; k++) isValid[eligible[perm[k]]] = 1;

  const train: Int32Array[] = new Array(U);
  const validInput: Int32Array[] = new Array(U);
  const testInput: Int32Array[] = new Array(U);
  const valid = new Int32Array(U);
  const test = new Int32Array(U);
  kept.forEach((u, d) => {
    const a = seq.offsets[u];
    const b = seq.offsets[u + 1];
    const h = a + hist[u];
    const history = seq.items.subarray(a, h);
    if (isValid[d]) {
      train[d] = EMPTY;
      validInput[d] = seq.items.subarray(a, h - 1);
      valid[d] = seq.items[h - 1];
    } else {
      train[d] = history;
      validInput[d] = EMPTY;
    }
    if (h < b) {
      testInput[d] = history;
      test[d] = seq.items[h];
    } else testInput[d] = EMPTY;
  });
  return finish(
    seq,
    'temporal',
    kept,
    { train, valid, test, validInput, testInput },
    { users: seq.numUsers - U, reason: 'no interaction before the cutoff' },
    { cutoff, testPeriodInteractions: testPeriod },
  );
}

/** A one-line summary for logs. */
export function describeSplit(s: SequenceSplit): string {
  const st = s.stats;
  const ev = (name: string, e: EvalStats) =>
    `${e.users} ${name} targets${e.unseenTargets ? ` (${e.unseenTargets} never seen in training, e.g. ${e.unseenExamples.slice(0, 3).join(', ')})` : ''}`;
  return (
    `${st.protocol}: ${st.users} users (${st.droppedUsers} dropped: ${st.droppedReason}), ${s.numItems} items, ` +
    `${st.trainInteractions.toLocaleString('en-US')} training interactions; ${ev('validation', st.valid)}; ${ev('test', st.test)}` +
    (st.cutoff !== undefined ? `; cutoff t=${st.cutoff}` : '')
  );
}
