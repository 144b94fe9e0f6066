// MovieLens ratings.csv (userId,movieId,rating,timestamp) → per-user, time-ordered item sequences.
//
// The file is streamed (never read whole) through a small RFC 4180 CSV parser: quoted fields, "" escapes,
// newlines inside quotes, CRLF/LF/CR line ends, a UTF-8 BOM. A header naming the four columns is required (any
// order; extra columns are ignored). Every bad row throws DataError naming the file, the 1-based line and what
// is wrong. Interactions are stored in typed columns, so ML-25M fits in a few hundred MB.
//
// Items are remapped to 1..V by decreasing frequency (ties: smaller movieId first), keeping the `maxItems` most
// frequent; 0 is padding. Each user's items are ordered by timestamp (ties keep file order).
import * as fs from 'node:fs';
import * as path from 'node:path';

export class DataError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'DataError';
  }
}

// ------------------------------------------------------------------------------------------------------ CSV

/** A streaming CSV parser: push() text chunks of any size, then end(). Records come with their first line. */
export class CsvParser {
  private fields: string[] = [];
  private field = '';
  private state: 'start' | 'unquoted' | 'quoted' | 'quote' = 'start';
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  private afterCR = false;
  /** Inside quotes: the previous character was a CR (so a following LF is the same line break). */
  private quotedCR = false;
  private lastWasQuoted = false;
  private first = true;

  constructor(
    private readonly file: string,
    private readonly onRecord: (fields: string[], line: number) => void,
  ) {}

  private fail(msg: string, line = this.line): never {
    throw new DataError(`${this.file}:${line}: ${msg}`, this.file, line);
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
  }

  private endRecord(): void {
    this.endField();
    const f = this.fields;
    this.fields = [];
    // A blank line is one empty unquoted field: skip it.
    if (!(f.length === 1 && f[0] === '' && !this.lastWasQuoted)) this.onRecord(f, this.recordLine);
    this.lastWasQuoted = false;
    this.state = 'start';
  }

  push(chunk: string): void {
    let s = chunk;
    if (this.first) {
      this.first = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    const n = s.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (this.afterCR) {
        this.afterCR = false;
        if (c === 10) continue; // the LF of a CRLF
      }
      switch (this.state) {
        case 'start':
        case 'unquoted':
          if (c === 44 /* , */) {
            this.endField();
            this.state = 'start';
          } else if (c === 10 || c === 13) {
            this.endRecord();
            this.line++;
            this.recordLine = this.line;
            this.afterCR = c === 13;
          } else if (c === 34 /* " */) {
            if (this.state === 'start') {
              this.state = 'quoted';
              this.quoteLine = this.line;
              this.lastWasQuoted = true;
            } else this.fail(`unexpected quote inside the unquoted field "${this.field}"`);
          } else {
            // Fast path: copy a run of plain characters at once.
            let j = i + 1;
            while (j < n) {
              const d = s.charCodeAt(j);
              if (d === 44 || d === 10 || d === 13 || d === 34) break;
              j++;
            }
            this.field += s.slice(i, j);
            this.state = 'unquoted';
            i = j - 1;
          }
          break;
        case 'quoted':
          if (c === 34) this.state = 'quote';
          else {
            if (c === 13 || (c === 10 && !this.quotedCR)) this.line++;
            this.field += s[i];
          }
          this.quotedCR = c === 13;
          break;
        case 'quote':
          if (c === 34) {
            this.field += '"';
            this.state = 'quoted';
          } else if (c === 44) {
            this.endField();
            this.state = 'start';
          } else if (c === 10 || c === 13) {
            this.endRecord();
            this.line++;
            this.recordLine = this.line;
            this.afterCR = c === 13;
          } else this.fail(`unexpected character ${JSON.stringify(s[i])} after the closing quote of a field`);
          break;
      }
    }
  }

  end(): void {
    if (this.state === 'quoted') this.fail('unterminated quoted field (no closing quote before the end of the file)', this.quoteLine);
    if (this.state !== 'start' || this.fields.length > 0 || this.field !== '') this.endRecord();
  }
}

/** Streams a CSV file's records (fields, 1-based line) to `onRecord`. */
export async function readCsv(file: string, onRecord: (fields: string[], line: number) => void): Promise<void> {
  const parser = new CsvParser(file, onRecord);
  const stream = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream) parser.push(chunk as string);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  } finally {
    stream.destroy();
  }
  parser.end();
}

// -------------------------------------------------------------------------------------------------- ratings

export interface RatingRow {
  userId: number;
  movieId: number;
  rating: number;
  timestamp: number;
  line: number;
}

const COLUMNS = ['userId', 'movieId', 'rating', 'timestamp'] as const;
const INT_RE = /^\d+$/;
const NUM_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Streams validated rows of a ratings.csv. */
export async function forEachRating(file: string, onRow: (row: RatingRow) => void): Promise<number> {
  let cols: number[] | null = null;
  let width = 0;
  let count = 0;
  await readCsv(file, (f, line) => {
    const fail = (msg: string): never => {
      throw new DataError(`${file}:${line}: ${msg}`, file, line);
    };
    if (cols === null) {
      const names = f.map((x) => x.trim());
      const missing = COLUMNS.filter((c) => !names.includes(c));
      if (missing.length) {
        fail(`header must name the columns ${COLUMNS.join(',')}; missing ${missing.join(', ')} (got ${JSON.stringify(f.join(',').slice(0, 80))})`);
      }
      cols = COLUMNS.map((c) => names.indexOf(c));
      width = f.length;
      return;
    }
    if (f.length !== width) fail(`expected ${width} fields, got ${f.length}`);
    const [u, m, r, t] = cols.map((i) => f[i].trim());
    const id = (name: string, v: string): number => {
      if (!INT_RE.test(v)) fail(`${name} ${JSON.stringify(v)} is not a positive integer`);
      const n = Number(v);
      if (n < 1 || n > 2147483647) fail(`${name} ${v} is out of range (1..2147483647)`);
      return n;
    };
    const userId = id('userId', u);
    const movieId = id('movieId', m);
    if (!NUM_RE.test(r)) fail(`rating ${JSON.stringify(r)} is not a number`);
    const rating = Number(r);
    if (!Number.isFinite(rating) || rating < 0) fail(`rating ${r} must be a finite number ≥ 0`);
    if (!INT_RE.test(t) || !Number.isSafeInteger(Number(t))) fail(`timestamp ${JSON.stringify(t)} is not a non-negative integer`);
    count++;
    onRow({ userId, movieId, rating, timestamp: Number(t), line });
  });
  if (cols === null) throw new DataError(`${file}:1: empty file; expected the header ${COLUMNS.join(',')}`, file, 1);
  return count;
}

export interface MovielensOptions {
  /** A folder holding ratings.csv, or the CSV file itself. */
  path: string;
  /** Keep ratings ≥ this (default 0: every rating is an interaction). */
  minRating?: number;
  /** Keep the most frequent items only (default: all). */
  maxItems?: number;
  /** Drop users with fewer items than this after filtering (default 2). */
  minLength?: number;
}

export interface MovielensData {
  file: string;
  /** One time-ordered sequence of item ids (1..numItems) per kept user. */
  sequences: Int32Array[];
  /** The original userId of each sequence. */
  userIds: Int32Array;
  /** itemIds[i] = original movieId of item i (itemIds[0] = 0, padding). */
  itemIds: Int32Array;
  numItems: number;
  /** numItems + 1 (ids 0..numItems). */
  vocab: number;
  /** Rows read, rows kept after minRating, interactions in the sequences. */
  counts: { rows: number; rated: number; interactions: number };
}

/** An append-only typed array that doubles its capacity as it fills. */
class Grow<A extends Int32Array | Float64Array> {
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
}

/** Loads MovieLens ratings as per-user, time-ordered item sequences. */
export async function loadMovielens(o: MovielensOptions): Promise<MovielensData> {
  let file = o.path;
  try {
    if (fs.statSync(file).isDirectory()) file = path.join(file, 'ratings.csv');
  } catch {
    throw new DataError(`${file}: not found (expected a folder with ratings.csv, or the CSV itself)`, file);
  }
  const minRating = o.minRating ?? 0;
  const maxItems = o.maxItems ?? Infinity;
  const minLength = o.minLength ?? 2;
  const users = new Grow(new Int32Array(1 << 16));
  const movies = new Grow(new Int32Array(1 << 16));
  const times = new Grow(new Float64Array(1 << 16));
  const freq = new Map<number, number>();
  const rows = await forEachRating(file, (r) => {
    if (r.rating < minRating) return;
    users.push(r.userId);
    movies.push(r.movieId);
    times.push(r.timestamp);
    freq.set(r.movieId, (freq.get(r.movieId) ?? 0) + 1);
  });
  const n = users.length;

  const ranked = [...freq.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const kept = ranked.slice(0, Math.min(ranked.length, maxItems));
  const remap = new Map<number, number>();
  const itemIds = new Int32Array(kept.length + 1);
  kept.forEach(([movieId], i) => {
    remap.set(movieId, i + 1);
    itemIds[i + 1] = movieId;
  });

  // Group by user (a stable counting sort over users in ascending id order), then order each user's
  // interactions by time (ties keep file order).
  const u = users.data;
  const t = times.data;
  const m = movies.data;
  const distinct = Int32Array.from(new Set(u.subarray(0, n))).sort();
  const dense = new Map<number, number>();
  distinct.forEach((id, i) => dense.set(id, i));
  const start = new Uint32Array(distinct.length + 1);
  const du = new Uint32Array(n);
  for (let i = 0; i < n; i++) start[(du[i] = dense.get(u[i])!) + 1]++;
  for (let k = 0; k < distinct.length; k++) start[k + 1] += start[k];
  const fill = start.slice(0, distinct.length);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[fill[du[i]]++] = i;

  const sequences: Int32Array[] = [];
  const userIds: number[] = [];
  let interactions = 0;
  for (let k = 0; k < distinct.length; k++) {
    const seg = Array.from(order.subarray(start[k], start[k + 1]));
    seg.sort((a, b) => t[a] - t[b] || a - b);
    const seq: number[] = [];
    for (const i of seg) {
      const item = remap.get(m[i]);
      if (item !== undefined) seq.push(item);
    }
    if (seq.length >= minLength) {
      sequences.push(Int32Array.from(seq));
      userIds.push(distinct[k]);
      interactions += seq.length;
    }
  }
  return {
    file,
    sequences,
    userIds: Int32Array.from(userIds),
    itemIds,
    numItems: kept.length,
    vocab: kept.length + 1,
    counts: { rows, rated: n, interactions },
  };
}
