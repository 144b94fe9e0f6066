// A synthetic recommender log: power-law popularity, planted sequential patterns, drift over time; for tests, the
// demo and benchmarks (catalogs up to millions of items).
//
// The model (RecModel below), with N items and time cut into `phases` equal periods:
//   popularity   rank r ∈ 1..N is drawn with P(r) ≈ r^−s / Z: x from the density ∝ x^−s on [1, N+1) by inverse
//                CDF, r = ⌊x⌋ (a bounded Pareto floored: within a few % of the discrete Zipf law past the first few
//                ranks). Rank → item through a fixed permutation of the catalog (item = (a·(r−1+shift_p) + b) mod N
//                + 1, a coprime with N), so raw item ids do not give the popularity order away; with drift the
//                ranking rotates by `popularityShift`·N ranks each phase: what is popular changes.
//   patterns     each item has `successors` likely next items per phase, themselves drawn from the popularity law
//                (popular items are popular successors too); after an item, with probability `patternProb` the
//                next one is one of its successors (the k-th with weight ∝ 1/(k+1)), otherwise a popularity draw.
//                With phases > 1 the successor tables of different phases are independent: the patterns drift.
//   time         each user is active over a window of `window`·span starting uniformly in [0, (1 − window)·span);
//                its interactions are spread over the window by exponential gaps (sorted, integer seconds).
//   ratings      1..5, a rounded N(3.6, 1) clipped (so minRating filters have something to remove).
// Nothing of size N is ever stored: successors and the permutation are computed from hashes, so memory is
// O(interactions) for the in-memory log and O(longest user) when streaming to a file.
import * as fs from 'node:fs';
import { Rng } from '../rng';
import { SyntheticDataError } from '../synthetic';
import { InteractionLogBuilder, type InteractionLog } from './dataset';

export interface SyntheticLogOptions {
  users: number;
  /** Catalog size N (items 1..N). */
  items: number;
  /** Mean interactions per user (geometric above minLength). Default 20. */
  meanLength?: number;
  /** Fewest interactions per user. Default 3. */
  minLength?: number;
  /** Zipf exponent s of the popularity. Default 1. */
  zipf?: number;
  /** Probability that the next item is a planted successor of the current one. Default 0.5. */
  patternProb?: number;
  /** Planted successors per item. Default 3. */
  successors?: number;
  /** Time periods with their own successor tables and popularity ranking (1: no drift). Default 1. */
  phases?: number;
  /** Fraction of the catalog the popularity ranking rotates by at each phase. Default 0.01. */
  popularityShift?: number;
  /** Seconds covered by the log, and its first timestamp. Defaults: two years from 1.5e9 (2017-07-14). */
  span?: number;
  start?: number;
  /** Fraction of the span a user is active over. Default 0.25. */
  window?: number;
  seed: number;
}

type Resolved = Required<SyntheticLogOptions>;

function resolveOptions(o: SyntheticLogOptions): Resolved {
  const r: Resolved = {
    meanLength: 20,
    minLength: 3,
    zipf: 1,
    patternProb: 0.5,
    successors: 3,
    phases: 1,
    popularityShift: 0.01,
    span: 2 * 365 * 86400,
    start: 1.5e9,
    window: 0.25,
    ...o,
  };
  const int = (name: string, v: number, min: number, max = 2 ** 31 - 1) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new SyntheticDataError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  };
  int('users', r.users, 1);
  int('items', r.items, 1, 2 ** 30);
  int('minLength', r.minLength, 1);
  int('successors', r.successors, 1, 64);
  int('phases', r.phases, 1, 1 << 16);
  const num = (name: string, v: number, ok: boolean) => {
    if (!ok) throw new SyntheticDataError(`${name} out of range, got ${v}`);
  };
  num('meanLength (≥ minLength)', r.meanLength, r.meanLength >= r.minLength && Number.isFinite(r.meanLength));
  num('zipf (≥ 0)', r.zipf, r.zipf >= 0 && r.zipf <= 10);
  num('patternProb ([0, 1])', r.patternProb, r.patternProb >= 0 && r.patternProb <= 1);
  num('popularityShift ([0, 1])', r.popularityShift, r.popularityShift >= 0 && r.popularityShift <= 1);
  num('span (> 0)', r.span, r.span > 0 && Number.isFinite(r.span));
  num('start', r.start, Number.isFinite(r.start));
  num('window ((0, 1])', r.window, r.window > 0 && r.window <= 1);
  return r;
}

/** murmur3's 32-bit finalizer: a cheap, well-mixed hash of an int. */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The generator's ground truth: popularity and planted successors, computable for any item without tables. */
export class RecModel {
  readonly o: Resolved;
  private readonly a: number;
  private readonly b: number;
  private readonly key: number;
  private readonly shiftRanks: number;
  private readonly succWeights: Float64Array;

  constructor(o: SyntheticLogOptions) {
    this.o = resolveOptions(o);
    const N = this.o.items;
    const rng = new Rng(this.o.seed, 0x9091);
    let a = 1 + rng.int(Math.max(1, N - 1));
    while (gcd(a, N) !== 1) a = (a % N) + 1;
    this.a = a;
    this.b = rng.int(N);
    this.key = rng.u32();
    this.shiftRanks = Math.round(this.o.popularityShift * N);
    const w = new Float64Array(this.o.successors);
    let sum = 0;
    for (let k = 0; k < w.length; k++) sum += w[k] = 1 / (k + 1);
    let acc = 0;
    for (let k = 0; k < w.length; k++) w[k] = acc += w[k] / sum;
    this.succWeights = w; // cumulative
  }

  /** A popularity rank 1..N from a uniform u ∈ [0, 1). */
  rank(u: number): number {
    const N = this.o.items;
    const s = this.o.zipf;
    const x = Math.abs(s - 1) < 1e-9 ? Math.exp(u * Math.log(N + 1)) : (1 + u * ((N + 1) ** (1 - s) - 1)) ** (1 / (1 - s));
    return Math.min(N, Math.max(1, Math.floor(x)));
  }

  /** The item at popularity rank r (1 = most popular) during a phase. */
  itemAt(r: number, phase: number): number {
    const N = this.o.items;
    const q = (r - 1 + ((phase * this.shiftRanks) % N)) % N;
    // a·q + b can pass 2^53 for huge catalogs only when N > 2^26; compute it exactly in two halves.
    const hi = Math.floor(q / 65536);
    const lo = q % 65536;
    return ((((this.a * hi) % N) * 65536 + this.a * lo + this.b) % N) + 1;
  }

  /** The k-th planted successor of an item in a phase. */
  successor(item: number, phase: number, k: number): number {
    const h = mix32(mix32(this.key ^ Math.imul(item, 0x9e3779b1)) ^ Math.imul(phase + 1, 0x85ebca77) ^ Math.imul(k + 1, 0xc2b2ae3d));
    const h2 = mix32(h ^ 0x27d4eb2d);
    const u = (h * 2097152 + (h2 >>> 11)) / 9007199254740992;
    const s = this.itemAt(this.rank(u), phase);
    // An item is not its own successor (a repeat would be removed from the ranking as seen).
    return s === item ? (s % this.o.items) + 1 : s;
  }

  /** All planted successors of an item in a phase. */
  successorsOf(item: number, phase: number): Int32Array {
    const out = new Int32Array(this.o.successors);
    for (let k = 0; k < out.length; k++) out[k] = this.successor(item, phase, k);
    return out;
  }

  /** The phase of a timestamp. */
  phaseOf(t: number): number {
    const p = Math.floor(((t - this.o.start) / this.o.span) * this.o.phases);
    return Math.min(this.o.phases - 1, Math.max(0, p));
  }

  /**
   * Streams the log: users 1..U in order, each user's rows in time order. `onRow(user, item, time, rating)`.
   * Same options → same rows. Returns the number of rows.
   */
  generate(onRow: (user: number, item: number, time: number, rating: number) => void): number {
    const o = this.o;
    const rng = new Rng(o.seed, 0xda7a);
    // Geometric lengths above minLength with the requested mean.
    const extraMean = o.meanLength - o.minLength;
    const pStop = 1 / (extraMean + 1);
    const logKeep = Math.log(1 - pStop);
    let gaps = new Float64Array(64);
    let rows = 0;
    for (let user = 1; user <= o.users; user++) {
      const extra = extraMean > 0 ? Math.floor(Math.log(1 - rng.float()) / logKeep) : 0;
      const len = o.minLength + Math.min(extra, 1 << 20);
      if (gaps.length < len + 1) gaps = new Float64Array(2 * (len + 1));
      let total = 0;
      for (let k = 0; k <= len; k++) total += gaps[k] = -Math.log(1 - rng.float());
      const window = o.window * o.span;
      const begin = rng.float() * (o.span - window);
      let acc = 0;
      let cur = 0;
      for (let k = 0; k < len; k++) {
        acc += gaps[k];
        const t = Math.floor(o.start + begin + (window * acc) / total);
        const phase = this.phaseOf(t);
        let item: number;
        if (cur !== 0 && rng.float() < o.patternProb) {
          const u = rng.float();
          let j = 0;
          while (j < this.succWeights.length - 1 && u >= this.succWeights[j]) j++;
          item = this.successor(cur, phase, j);
        } else item = this.itemAt(this.rank(rng.float()), phase);
        const rating = Math.min(5, Math.max(1, Math.round(3.6 + rng.normal())));
        onRow(user, item, t, rating);
        cur = item;
        rows++;
      }
    }
    return rows;
  }
}

/** The log as typed columns (numeric ids: users 1..U, items 1..N). O(interactions) memory. */
export function syntheticColumns(o: SyntheticLogOptions): { model: RecModel; users: Int32Array; items: Int32Array; times: Float64Array; ratings: Float32Array } {
  const model = new RecModel(o);
  let cap = Math.max(1024, Math.ceil(model.o.users * model.o.meanLength * 1.1));
  let users = new Int32Array(cap);
  let items = new Int32Array(cap);
  let times = new Float64Array(cap);
  let ratings = new Float32Array(cap);
  let n = 0;
  model.generate((u, i, t, r) => {
    if (n === cap) {
      cap *= 2;
      const grow = <A extends Int32Array | Float64Array | Float32Array>(x: A): A => {
        const y = new (x.constructor as new (n: number) => A)(cap);
        y.set(x);
        return y;
      };
      users = grow(users);
      items = grow(items);
      times = grow(times);
      ratings = grow(ratings);
    }
    users[n] = u;
    items[n] = i;
    times[n] = t;
    ratings[n] = r;
    n++;
  });
  return { model, users: users.subarray(0, n), items: items.subarray(0, n), times: times.subarray(0, n), ratings: ratings.subarray(0, n) };
}

/** The log as an InteractionLog (raw ids are the decimal numbers), ready for the filters and splits. */
export function syntheticInteractionLog(o: SyntheticLogOptions): { model: RecModel; log: InteractionLog } {
  const model = new RecModel(o);
  const b = new InteractionLogBuilder(true);
  model.generate((u, i, t, r) => b.add(String(u), String(i), t, r));
  return { model, log: b.build() };
}

/**
 * Streams the log to a CSV file (header userId,itemId,rating,timestamp; read it back with format 'delimited' and
 * those column names, or 'movielens-csv' after renaming itemId) in ~1 MiB writes: memory stays O(longest user).
 */
export function writeSyntheticCsv(file: string, o: SyntheticLogOptions): { rows: number; bytes: number } {
  const model = new RecModel(o);
  const fd = fs.openSync(file, 'w');
  // One string grown by appends (cheap ropes in V8), encoded once per ~1 MiB block.
  let block = 'userId,itemId,rating,timestamp\n';
  let bytes = 0;
  const flush = () => {
    const buf = Buffer.from(block, 'latin1'); // digits, commas and newlines only
    fs.writeSync(fd, buf);
    bytes += buf.length;
    block = '';
  };
  try {
    const rows = model.generate((u, i, t, r) => {
      block += `${u},${i},${r},${t}\n`;
      if (block.length >= 1 << 20) flush();
    });
    flush();
    return { rows, bytes };
  } finally {
    fs.closeSync(fd);
  }
}
