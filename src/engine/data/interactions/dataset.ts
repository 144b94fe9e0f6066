// An interaction log in typed columns, its filters (rating threshold, k-core), the id remapping, and the per-user
// time-ordered sequences that the splits (./splits.ts) cut.
//
// Raw user and item ids are kept as the strings the file wrote (Amazon-style ids are not numbers) and interned as
// they arrive: column `users[i]` is the index of the row's user in `userIds` (first appearance order), likewise for
// items. The columns grow by doubling, so a log costs ~24 bytes an interaction (ML-25M: ~600 MB) plus its distinct
// ids. Filters return a new, compacted log that shares the id tables (ids absent from it simply have no rows).
import { DataError, readInteractions, type ReadOptions, type ReadReport } from './read';

/** An append-only typed array that doubles its capacity as it fills. */
class Grow<A extends Int32Array | Float64Array | Float32Array> {
  length = 0;
  constructor(public data: A) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const d = new (this.data.constructor as new (n: number) => A)(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = v;
  }
  done(): A {
    return this.data.subarray(0, this.length) as A;
  }
}

export interface InteractionLog {
  /** Rows. */
  length: number;
  /** Row → index into userIds. */
  users: Int32Array;
  /** Row → index into itemIds. */
  items: Int32Array;
  times: Float64Array;
  /** Row → rating, or null when the file has none. */
  ratings: Float32Array | null;
  /** Raw ids in first-appearance order (shared by the filtered logs). */
  userIds: string[];
  itemIds: string[];
}

/** Builds a log row by row, interning the raw ids. */
export class InteractionLogBuilder {
  private readonly u = new Grow(new Int32Array(1 << 12));
  private readonly i = new Grow(new Int32Array(1 << 12));
  private readonly t = new Grow(new Float64Array(1 << 12));
  private readonly r: Grow<Float32Array> | null;
  private readonly userIndex = new Map<string, number>();
  private readonly itemIndex = new Map<string, number>();
  private readonly userIds: string[] = [];
  private readonly itemIds: string[] = [];

  constructor(hasRatings: boolean) {
    this.r = hasRatings ? new Grow(new Float32Array(1 << 12)) : null;
  }

  add(user: string, item: string, time: number, rating = NaN): void {
    let u = this.userIndex.get(user);
    if (u === undefined) {
      u = this.userIds.length;
      this.userIndex.set(user, u);
      this.userIds.push(user);
    }
    let i = this.itemIndex.get(item);
    if (i === undefined) {
      i = this.itemIds.length;
      this.itemIndex.set(item, i);
      this.itemIds.push(item);
    }
    this.u.push(u);
    this.i.push(i);
    this.t.push(time);
    this.r?.push(rating);
  }

  build(): InteractionLog {
    return { length: this.u.length, users: this.u.done(), items: this.i.done(), times: this.t.done(), ratings: this.r?.done() ?? null, userIds: this.userIds, itemIds: this.itemIds };
  }
}

/** Streams a file into a log. */
export async function loadInteractionLog(o: ReadOptions): Promise<{ log: InteractionLog; report: ReadReport }> {
  let b: InteractionLogBuilder | null = null;
  let hasRatings = false;
  const report = await readInteractions(o, (user, item, t, r) => {
    if (b === null) {
      hasRatings = !Number.isNaN(r);
      b = new InteractionLogBuilder(hasRatings);
    }
    b.add(user, item, t, r);
  });
  return { log: (b ?? new InteractionLogBuilder(report.hasRating)).build(), report };
}

/** The rows where keep[row] ≠ 0, as a new log sharing the id tables. */
export function selectRows(log: InteractionLog, keep: Uint8Array): InteractionLog {
  let n = 0;
  for (let k = 0; k < log.length; k++) n += keep[k] ? 1 : 0;
  const users = new Int32Array(n);
  const items = new Int32Array(n);
  const times = new Float64Array(n);
  const ratings = log.ratings ? new Float32Array(n) : null;
  let j = 0;
  for (let k = 0; k < log.length; k++) {
    if (!keep[k]) continue;
    users[j] = log.users[k];
    items[j] = log.items[k];
    times[j] = log.times[k];
    if (ratings) ratings[j] = log.ratings![k];
    j++;
  }
  return { length: n, users, items, times, ratings, userIds: log.userIds, itemIds: log.itemIds };
}

function distinctCount(ids: Int32Array, n: number, universe: number): number {
  const seen = new Uint8Array(universe);
  let c = 0;
  for (let k = 0; k < n; k++) {
    if (!seen[ids[k]]) {
      seen[ids[k]] = 1;
      c++;
    }
  }
  return c;
}

export interface FilterStats {
  /** Rows, distinct users and distinct items removed by the filter. */
  droppedInteractions: number;
  droppedUsers: number;
  droppedItems: number;
}

function filterStats(before: InteractionLog, after: InteractionLog): FilterStats {
  return {
    droppedInteractions: before.length - after.length,
    droppedUsers: distinctCount(before.users, before.length, before.userIds.length) - distinctCount(after.users, after.length, after.userIds.length),
    droppedItems: distinctCount(before.items, before.length, before.itemIds.length) - distinctCount(after.items, after.length, after.itemIds.length),
  };
}

/** Keeps the rows rated ≥ minRating (implicit feedback from explicit ratings). */
export function filterByRating(log: InteractionLog, minRating: number): { log: InteractionLog; stats: FilterStats } {
  if (!log.ratings) throw new DataError(`minRating ${minRating} was given but the log has no rating column`, '');
  const keep = new Uint8Array(log.length);
  for (let k = 0; k < log.length; k++) keep[k] = log.ratings[k] >= minRating ? 1 : 0;
  const out = selectRows(log, keep);
  return { log: out, stats: filterStats(log, out) };
}

export interface KCoreStats extends FilterStats {
  /** Passes until nothing changed (the last one removes nothing). */
  rounds: number;
}

/**
 * The k-core: the largest sub-log in which every user has ≥ minUser rows and every item ≥ minItem rows (counting
 * repeated user–item rows each time). Removing a row can push another user or item below its minimum, so the
 * passes repeat until one removes nothing; the result is unique (the union of two such sub-logs is one too).
 */
export function kCore(log: InteractionLog, o: { minUser: number; minItem: number }): { log: InteractionLog; stats: KCoreStats } {
  const uc = new Int32Array(log.userIds.length);
  const ic = new Int32Array(log.itemIds.length);
  const keep = new Uint8Array(log.length).fill(1);
  for (let k = 0; k < log.length; k++) {
    uc[log.users[k]]++;
    ic[log.items[k]]++;
  }
  let rounds = 0;
  for (;;) {
    rounds++;
    // Counts are updated as rows go, so one pass can cascade; the core is unique, so the order of removals
    // (the file's order) does not change the result, only the number of passes.
    let removed = 0;
    for (let k = 0; k < log.length; k++) {
      if (keep[k] && (uc[log.users[k]] < o.minUser || ic[log.items[k]] < o.minItem)) {
        keep[k] = 0;
        uc[log.users[k]]--;
        ic[log.items[k]]--;
        removed++;
      }
    }
    if (removed === 0) break;
  }
  const out = selectRows(log, keep);
  return { log: out, stats: { ...filterStats(log, out), rounds } };
}

// ------------------------------------------------------------------------------------------------ sequences

export interface Sequences {
  /** Users 0..numUsers-1 (each with ≥ 1 interaction). */
  numUsers: number;
  /** Items 1..numItems; 0 is padding. */
  numItems: number;
  /** User u's interactions are rows offsets[u]..offsets[u+1]-1 of items/times, ordered by time (ties: file order). */
  offsets: Int32Array;
  items: Int32Array;
  times: Float64Array;
  /** Raw id of user u. */
  userIds: string[];
  /** Raw id of item i (itemIds[0] = '' is padding). */
  itemIds: string[];
  /** itemCounts[i]: interactions with item i. */
  itemCounts: Int32Array;
  /** Removed by maxItems / minLength. */
  dropped: { items: number; users: number; interactions: number };
}

/** User u's time-ordered item ids (a view, not a copy). */
export function sequenceOf(s: Sequences, u: number): Int32Array {
  return s.items.subarray(s.offsets[u], s.offsets[u + 1]);
}

export interface SequenceOptions {
  /** Item ids 1..V by decreasing frequency (ties: first appearance) or by first appearance. Default 'frequency'. */
  itemOrder?: 'frequency' | 'first';
  /** Keep the most frequent items only; others are removed from the sequences. */
  maxItems?: number;
  /** Drop users left with fewer interactions than this (default 1). */
  minLength?: number;
  /** Keep only each user's most recent maxLength interactions (applied after minLength). Default: all. */
  maxLength?: number;
}

/**
 * Groups a log by user (users numbered by first appearance) and orders each user's rows by time, ties keeping
 * file order; items remapped to 1..V.
 */
export function toSequences(log: InteractionLog, o: SequenceOptions = {}): Sequences {
  const n = log.length;
  const nu = log.userIds.length;
  const ni = log.itemIds.length;
  const count = new Int32Array(ni);
  const firstRow = new Int32Array(ni).fill(-1);
  for (let k = 0; k < n; k++) {
    const i = log.items[k];
    if (count[i]++ === 0) firstRow[i] = k;
  }
  const present: number[] = [];
  for (let i = 0; i < ni; i++) if (count[i] > 0) present.push(i);
  if (o.itemOrder !== 'first') present.sort((a, b) => count[b] - count[a] || firstRow[a] - firstRow[b]);
  else present.sort((a, b) => firstRow[a] - firstRow[b]);
  const maxItems = o.maxItems ?? Infinity;
  if (!(maxItems >= 1)) throw new DataError(`maxItems must be ≥ 1, got ${maxItems}`, '');
  // The cap first (on the log's counts), then the short users; the ids are ranked on what is left in the end, so
  // every id 1..V has at least one interaction.
  const remap = new Int32Array(ni); // 0 = dropped by the cap
  for (let r = 0; r < Math.min(present.length, maxItems); r++) remap[present[r]] = 1;

  // Users in first-appearance order in the log (so the cap does not reorder them), with their rows left by the cap.
  const userFirst = new Int32Array(nu).fill(-1);
  const userLen = new Int32Array(nu);
  for (let k = 0; k < n; k++) {
    const u = log.users[k];
    if (userFirst[u] < 0) userFirst[u] = k;
    if (remap[log.items[k]] !== 0) userLen[u]++;
  }
  const minLength = o.minLength ?? 1;
  const order: number[] = [];
  let droppedUsers = 0;
  for (let u = 0; u < nu; u++) {
    if (userFirst[u] < 0) continue;
    if (userLen[u] < minLength || userLen[u] === 0) {
      droppedUsers++;
      continue;
    }
    order.push(u);
  }
  order.sort((a, b) => userFirst[a] - userFirst[b]);
  const dense = new Int32Array(nu).fill(-1);
  order.forEach((u, d) => (dense[u] = d));
  const U = order.length;
  const offsets = new Int32Array(U + 1);
  for (let d = 0; d < U; d++) offsets[d + 1] = offsets[d] + userLen[order[d]];
  let total = offsets[U];
  // A stable counting sort by user (rows keep file order), then a stable time sort inside each segment.
  const rows = new Int32Array(total);
  const fill = offsets.slice(0, U);
  for (let k = 0; k < n; k++) {
    if (remap[log.items[k]] === 0) continue;
    const d = dense[log.users[k]];
    if (d >= 0) rows[fill[d]++] = k;
  }
  const t = log.times;
  for (let d = 0; d < U; d++) {
    const a = offsets[d];
    const b = offsets[d + 1];
    let sorted = true;
    for (let k = a + 1; k < b && sorted; k++) sorted = t[rows[k - 1]] <= t[rows[k]];
    if (sorted) continue;
    const seg = Array.from(rows.subarray(a, b));
    seg.sort((x, y) => t[x] - t[y] || x - y);
    rows.set(seg, a);
  }
  // The most recent maxLength rows of each user (the oldest go).
  const maxLength = o.maxLength ?? Infinity;
  if (!(maxLength >= 1)) throw new DataError(`maxLength must be ≥ 1, got ${maxLength}`, '');
  if (offsets[U] > 0 && maxLength < Infinity) {
    let at = 0;
    for (let d = 0; d < U; d++) {
      const a = offsets[d];
      const b = offsets[d + 1];
      const from = Math.max(a, b - maxLength);
      rows.copyWithin(at, from, b);
      offsets[d] = at;
      at += b - from;
    }
    offsets[U] = at;
    total = at;
  }
  // Final ids: rank the items on the rows that remain (same order rule as above).
  const left = new Int32Array(ni);
  for (let k = 0; k < total; k++) left[log.items[rows[k]]]++;
  const kept = present.filter((i) => left[i] > 0);
  if (o.itemOrder !== 'first') kept.sort((a, b) => left[b] - left[a] || firstRow[a] - firstRow[b]);
  const itemIds = [''];
  const itemCounts = new Int32Array(kept.length + 1);
  kept.forEach((raw, r) => {
    remap[raw] = r + 1;
    itemIds.push(log.itemIds[raw]);
    itemCounts[r + 1] = left[raw];
  });
  const items = new Int32Array(total);
  const times = new Float64Array(total);
  for (let k = 0; k < total; k++) {
    items[k] = remap[log.items[rows[k]]];
    times[k] = t[rows[k]];
  }
  return {
    numUsers: U,
    numItems: kept.length,
    offsets,
    items,
    times,
    userIds: order.map((u) => log.userIds[u]),
    itemIds,
    itemCounts,
    dropped: { items: present.length - kept.length, users: droppedUsers, interactions: n - total },
  };
}

// ------------------------------------------------------------------------------------------------ pipeline

export interface PrepareOptions extends ReadOptions, SequenceOptions {
  /** Keep rows rated ≥ this (needs a rating column). */
  minRating?: number;
  /** k-core minimum per user / per item (0 or absent: no k-core). `kCore` sets both. */
  kCore?: number;
  kCoreUser?: number;
  kCoreItem?: number;
}

export interface PrepareReport {
  read: ReadReport;
  /** Interactions, users and items of the raw log. */
  raw: { interactions: number; users: number; items: number };
  rating?: FilterStats;
  kCore?: KCoreStats;
  /** What the sequences hold. */
  kept: { interactions: number; users: number; items: number };
}

/** File → rating filter → k-core → per-user sequences, with what each step removed. */
export async function loadSequences(o: PrepareOptions): Promise<{ sequences: Sequences; report: PrepareReport }> {
  const { log: raw, report: read } = await loadInteractionLog(o);
  let log = raw;
  const report: PrepareReport = {
    read,
    raw: { interactions: raw.length, users: raw.userIds.length, items: raw.itemIds.length },
    kept: { interactions: 0, users: 0, items: 0 },
  };
  if (o.minRating !== undefined && o.minRating > 0) {
    if (!log.ratings) throw new DataError(`${o.file}: minRating ${o.minRating} was given but the ${read.format} rows have no rating column`, o.file);
    const r = filterByRating(log, o.minRating);
    log = r.log;
    report.rating = r.stats;
  }
  const ku = o.kCoreUser ?? o.kCore ?? 0;
  const ki = o.kCoreItem ?? o.kCore ?? 0;
  if (ku > 1 || ki > 1) {
    const r = kCore(log, { minUser: ku, minItem: ki });
    log = r.log;
    report.kCore = r.stats;
  }
  const sequences = toSequences(log, o);
  report.kept = { interactions: sequences.items.length, users: sequences.numUsers, items: sequences.numItems };
  return { sequences, report };
}
