// Streaming readers of interaction logs: one (user, item, timestamp, rating) per row, with the row's 1-based line.
//
// Formats (see FORMATS below):
//   delimited      any single-character delimiter (',' '\t' ';' '|' …), optional header, columns by name or index;
//                  RFC 4180 quoting ("a,b", "" escapes, line breaks inside quotes) when `quote` is on (default for
//                  ','; off for other delimiters, where a quote is an ordinary character, as in most TSV dumps)
//   movielens-csv  ratings.csv of the ml-latest / ml-25m family: userId,movieId,rating,timestamp with a header
//   movielens-dat  ratings.dat of ML-1M / ML-10M: UserID::MovieID::Rating::Timestamp, no header, no quoting
//   user-item      the SASRec repositories' `user item` per line (whitespace-separated, no header); the line order
//                  is the time order
//
// Files are read with fs.createReadStream in 1 MiB chunks and parsed incrementally (a record may span chunks), so
// a file larger than memory costs only what the caller keeps. CRLF, LF and lone CR line ends and a UTF-8 BOM are
// accepted. A malformed row (wrong number of fields, an empty id, a timestamp or rating that is not a number, a
// broken quote) throws DataError naming the file and line; with `skipBad` it is skipped and counted instead, and
// the report keeps the first few line numbers and messages. A bad header is always fatal: nothing after it can be
// read correctly.
import * as fs from 'node:fs';
import { DataError } from '../movielens';

export { DataError };

/** Longest field (quoted parser) or line (line parser) accepted: a runaway quote cannot swallow the memory. */
export const MAX_FIELD_CHARS = 1 << 20;

// ------------------------------------------------------------------------------------------- record parsers

/** Receives each record (its fields and the line it starts on). */
export type OnRecord = (fields: string[], line: number) => void;
/** Receives each structural error; throwing stops the parse, returning skips the record. */
export type OnBad = (message: string, line: number) => void;

/** A parser fed text chunks of any size; records come out in order with their first line. */
export interface RecordParser {
  push(chunk: string): void;
  end(): void;
}

const failFast =
  (file: string): OnBad =>
  (message, line) => {
    throw new DataError(`${file}:${line}: ${message}`, file, line);
  };

/**
 * RFC 4180 records over a single-character delimiter, with quoting. Chunk boundaries never change the records
 * (the fuzz test checks it). After a structural error (a quote inside an unquoted field, text after a closing
 * quote, an unterminated quote) the rest of the physical line is skipped when onBad returns.
 */
export class QuotedParser implements RecordParser {
  private fields: string[] = [];
  private field = '';
  private state: 'start' | 'unquoted' | 'quoted' | 'quote' | 'skip' = 'start';
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  private afterCR = false;
  private quotedCR = false;
  private lastWasQuoted = false;
  private first = true;
  private readonly delim: number;

  constructor(
    private readonly file: string,
    delimiter: string,
    private readonly onRecord: OnRecord,
    private readonly onBad: OnBad = failFast(file),
  ) {
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
      throw new DataError(`${file}: the quoted parser needs a one-character delimiter other than a quote or a line break, got ${JSON.stringify(delimiter)}`, file);
    }
    this.delim = delimiter.charCodeAt(0);
  }

  private bad(message: string, line = this.recordLine): void {
    this.fields = [];
    this.field = '';
    this.lastWasQuoted = false;
    this.onBad(message, line);
    this.state = 'skip';
  }

  private grow(s: string): void {
    this.field += s;
    if (this.field.length > MAX_FIELD_CHARS) this.bad(`a field is longer than ${MAX_FIELD_CHARS} characters (an unterminated quote?)`, this.state === 'quoted' ? this.quoteLine : this.recordLine);
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
  }

  private endRecord(): void {
    if (this.state !== 'skip') {
      this.endField();
      const f = this.fields;
      this.fields = [];
      // A blank line is one empty unquoted field: skip it.
      if (!(f.length === 1 && f[0] === '' && !this.lastWasQuoted)) this.onRecord(f, this.recordLine);
    }
    this.fields = [];
    this.field = '';
    this.lastWasQuoted = false;
    this.state = 'start';
  }

  private newline(c: number): void {
    this.endRecord();
    this.line++;
    this.recordLine = this.line;
    this.afterCR = c === 13;
  }

  push(chunk: string): void {
    let s = chunk;
    if (this.first && s.length > 0) {
      this.first = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    const n = s.length;
    const D = this.delim;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (this.afterCR) {
        this.afterCR = false;
        if (c === 10) continue; // the LF of a CRLF
      }
      switch (this.state) {
        case 'skip':
          if (c === 10 || c === 13) this.newline(c);
          break;
        case 'start':
        case 'unquoted':
          if (c === D) {
            this.endField();
            this.state = 'start';
          } else if (c === 10 || c === 13) {
            this.newline(c);
          } else if (c === 34 /* " */) {
            if (this.state === 'start') {
              this.state = 'quoted';
              this.quoteLine = this.line;
              this.lastWasQuoted = true;
            } else this.bad(`unexpected quote inside the unquoted field ${JSON.stringify(this.field.slice(0, 40))}`);
          } else {
            // Fast path: copy a run of plain characters at once.
            let j = i + 1;
            while (j < n) {
              const d = s.charCodeAt(j);
              if (d === D || d === 10 || d === 13 || d === 34) break;
              j++;
            }
            this.state = 'unquoted';
            this.grow(s.slice(i, j));
            i = j - 1;
          }
          break;
        case 'quoted':
          if (c === 34) this.state = 'quote';
          else {
            if (c === 13 || (c === 10 && !this.quotedCR)) this.line++;
            this.grow(s[i]);
          }
          this.quotedCR = c === 13;
          break;
        case 'quote':
          if (c === 34) {
            this.state = 'quoted';
            this.grow('"');
          } else if (c === D) {
            this.endField();
            this.state = 'start';
          } else if (c === 10 || c === 13) {
            this.newline(c);
          } else this.bad(`unexpected character ${JSON.stringify(s[i])} after the closing quote of a field`);
          break;
      }
    }
  }

  end(): void {
    if (this.state === 'quoted') {
      this.bad('unterminated quoted field (no closing quote before the end of the file)', this.quoteLine);
      return;
    }
    if (this.state === 'skip') return;
    if (this.state !== 'start' || this.fields.length > 0 || this.field !== '') this.endRecord();
  }
}

/**
 * Records one per physical line, split on a fixed separator of any length ('::', '\t', …) or, for `whitespace`,
 * on runs of spaces and tabs after trimming. No quoting. Blank lines are skipped.
 */
export class LineParser implements RecordParser {
  private rest = '';
  private line = 1;
  private afterCR = false;
  private first = true;
  private tooLong = false;

  constructor(
    private readonly file: string,
    private readonly separator: string | 'whitespace',
    private readonly onRecord: OnRecord,
    private readonly onBad: OnBad = failFast(file),
  ) {
    if (separator.length === 0 || /[\r\n]/.test(separator)) throw new DataError(`${file}: bad separator ${JSON.stringify(separator)}`, file);
  }

  private emit(text: string): void {
    const ln = this.line++;
    if (this.tooLong) {
      this.tooLong = false;
      return;
    }
    if (this.separator === 'whitespace') {
      const t = text.trim();
      if (t === '') return;
      this.onRecord(t.split(/[ \t]+/), ln);
    } else {
      if (text === '') return;
      this.onRecord(text.split(this.separator), ln);
    }
  }

  push(chunk: string): void {
    let s = chunk;
    if (this.first && s.length > 0) {
      this.first = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    let from = 0;
    const n = s.length;
    if (this.afterCR && n > 0) {
      this.afterCR = false;
      if (s.charCodeAt(0) === 10) from = 1;
    }
    let i = from;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 10 || c === 13) {
        const text = this.rest + s.slice(from, i);
        this.rest = '';
        this.emit(text);
        if (c === 13) {
          if (i + 1 < n) {
            if (s.charCodeAt(i + 1) === 10) i++;
          } else this.afterCR = true;
        }
        from = i + 1;
      }
      i++;
    }
    if (from < n && !this.tooLong) {
      this.rest += s.slice(from);
      if (this.rest.length > MAX_FIELD_CHARS) {
        this.rest = '';
        this.tooLong = true;
        this.onBad(`a line is longer than ${MAX_FIELD_CHARS} characters`, this.line);
      }
    }
  }

  end(): void {
    if (this.rest !== '' || this.tooLong) this.emit(this.rest);
    this.rest = '';
  }
}

// ----------------------------------------------------------------------------------------------- interactions

export type InteractionFormat = 'delimited' | 'movielens-csv' | 'movielens-dat' | 'user-item';
export const INTERACTION_FORMATS: readonly InteractionFormat[] = ['delimited', 'movielens-csv', 'movielens-dat', 'user-item'];

/** A column: its header name, or its 0-based index. */
export type ColumnRef = string | number;

export interface ColumnMap {
  user: ColumnRef;
  item: ColumnRef;
  /** Absent: the row order is the time order (timestamp = the line number). */
  timestamp?: ColumnRef;
  /** Absent: no ratings (NaN). */
  rating?: ColumnRef;
}

export interface ReadOptions {
  file: string;
  /** Default 'delimited'. The presets fix the delimiter, header and columns (the options may still override them). */
  format?: InteractionFormat;
  /** One character (',' '\t' …), or a longer separator such as '::' (then no quoting). Default ','. */
  delimiter?: string;
  /** The first record names the columns. Default: true for delimited. */
  header?: boolean;
  /** RFC 4180 quotes. Default: true when the delimiter is ','. */
  quote?: boolean;
  /** Required for 'delimited'; indices when there is no header. */
  columns?: ColumnMap;
  /** Skip malformed rows and count them instead of throwing. Default false. */
  skipBad?: boolean;
  /** How many bad rows the report describes (default 10). */
  badExamples?: number;
}

export interface ReadReport {
  file: string;
  format: InteractionFormat;
  /** Rows handed to the callback. */
  rows: number;
  /** Rows skipped as malformed (skipBad). */
  bad: number;
  /** Line numbers of the first few bad rows. */
  badLines: number[];
  /** Their messages ("file:line: what"). */
  badMessages: string[];
  /** Whether the rows carry ratings / timestamps (otherwise NaN / the line number). */
  hasRating: boolean;
  hasTimestamp: boolean;
}

/** (user, item, timestamp, rating, line): raw id strings as written (trimmed); rating NaN when there is none. */
export type OnInteraction = (user: string, item: string, timestamp: number, rating: number, line: number) => void;

interface Resolved {
  format: InteractionFormat;
  delimiter: string;
  header: boolean;
  quote: boolean;
  columns: ColumnMap;
}

function resolve(o: ReadOptions): Resolved {
  const format = o.format ?? 'delimited';
  const file = o.file;
  let r: Resolved;
  switch (format) {
    case 'movielens-csv':
      r = { format, delimiter: ',', header: true, quote: true, columns: { user: 'userId', item: 'movieId', rating: 'rating', timestamp: 'timestamp' } };
      break;
    case 'movielens-dat':
      r = { format, delimiter: '::', header: false, quote: false, columns: { user: 0, item: 1, rating: 2, timestamp: 3 } };
      break;
    case 'user-item':
      r = { format, delimiter: 'whitespace', header: false, quote: false, columns: { user: 0, item: 1 } };
      break;
    case 'delimited': {
      if (!o.columns) throw new DataError(`${file}: the delimited format needs a column mapping (columns: { user, item, timestamp?, rating? })`, file);
      const delimiter = o.delimiter ?? ',';
      r = { format, delimiter, header: true, quote: delimiter === ',', columns: o.columns };
      break;
    }
    default:
      throw new DataError(`${file}: unknown format ${JSON.stringify(format)} (known: ${INTERACTION_FORMATS.join(', ')})`, file);
  }
  if (format !== 'delimited' && o.delimiter !== undefined) r.delimiter = o.delimiter;
  if (o.header !== undefined) r.header = o.header;
  if (o.quote !== undefined) r.quote = o.quote;
  if (format !== 'delimited' && o.columns) r.columns = o.columns;
  if (r.delimiter === '') throw new DataError(`${file}: the delimiter is empty`, file);
  if (r.quote && r.delimiter.length !== 1) throw new DataError(`${file}: quoting needs a one-character delimiter, got ${JSON.stringify(r.delimiter)}`, file);
  for (const [k, v] of Object.entries(r.columns)) {
    if (v === undefined) continue;
    if (typeof v === 'number' ? !(Number.isInteger(v) && v >= 0) : typeof v !== 'string' || v === '') {
      throw new DataError(`${file}: column ${k} must be a header name or a 0-based index, got ${JSON.stringify(v)}`, file);
    }
    if (typeof v === 'string' && !r.header) throw new DataError(`${file}: column ${k} is named ${JSON.stringify(v)} but the file has no header: give a 0-based index`, file);
  }
  return r;
}

/** A parser of the resolved options' record syntax. */
export function recordParser(o: ReadOptions, onRecord: OnRecord, onBad?: OnBad): RecordParser {
  const r = resolve(o);
  return r.quote ? new QuotedParser(o.file, r.delimiter, onRecord, onBad) : new LineParser(o.file, r.delimiter, onRecord, onBad);
}

const NUM_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function fmtFields(f: string[]): string {
  const s = JSON.stringify(f.join(','));
  return s.length > 80 ? `${s.slice(0, 77)}…"` : s;
}

/**
 * Interaction rows as a push parser: feed text, get validated rows. `readInteractions` drives it from a file; the
 * fuzz tests drive it from memory in random chunks.
 */
export class InteractionParser {
  readonly report: ReadReport;
  private readonly parser: RecordParser;
  private readonly r: Resolved;
  private idx: { user: number; item: number; timestamp: number; rating: number } | null = null;
  private width = -1;
  private readonly maxExamples: number;

  constructor(
    private readonly o: ReadOptions,
    private readonly onRow: OnInteraction,
  ) {
    this.r = resolve(o);
    this.maxExamples = o.badExamples ?? 10;
    this.report = {
      file: o.file,
      format: this.r.format,
      rows: 0,
      bad: 0,
      badLines: [],
      badMessages: [],
      hasRating: this.r.columns.rating !== undefined,
      hasTimestamp: this.r.columns.timestamp !== undefined,
    };
    const onBad: OnBad = (message, line) => this.bad(message, line);
    this.parser = this.r.quote ? new QuotedParser(o.file, this.r.delimiter, (f, l) => this.record(f, l), onBad) : new LineParser(o.file, this.r.delimiter, (f, l) => this.record(f, l), onBad);
  }

  private fatal(message: string, line: number): never {
    throw new DataError(`${this.o.file}:${line}: ${message}`, this.o.file, line);
  }

  private bad(message: string, line: number): void {
    // A broken header line is fatal even with skipBad: the next row must not be taken for the header.
    if (!this.o.skipBad || (this.r.header && this.idx === null)) this.fatal(message, line);
    const rep = this.report;
    rep.bad++;
    if (rep.badLines.length < this.maxExamples) {
      rep.badLines.push(line);
      rep.badMessages.push(`${this.o.file}:${line}: ${message}`);
    }
  }

  private locate(names: string[] | null, width: number, line: number): void {
    const cols = this.r.columns;
    const find = (key: string, ref: ColumnRef | undefined): number => {
      if (ref === undefined) return -1;
      if (typeof ref === 'number') {
        if (ref >= width) this.fatal(`column ${key} is index ${ref} but the ${names ? 'header has' : 'first row has'} ${width} field${width === 1 ? '' : 's'}`, line);
        return ref;
      }
      const at = names!.indexOf(ref);
      if (at < 0) this.fatal(`the header has no column ${JSON.stringify(ref)} for ${key} (columns: ${names!.map((x) => JSON.stringify(x)).join(', ').slice(0, 200)})`, line);
      return at;
    };
    this.idx = { user: find('user', cols.user), item: find('item', cols.item), timestamp: find('timestamp', cols.timestamp), rating: find('rating', cols.rating) };
    this.width = width;
  }

  private record(f: string[], line: number): void {
    if (this.idx === null) {
      if (this.r.header) {
        this.locate(
          f.map((x) => x.trim()),
          f.length,
          line,
        );
        return;
      }
      // No header: the first row fixes the width. A first row too narrow for the mapping is a bad row, not a
      // verdict on the file.
      const need = Math.max(...[this.r.columns.user, this.r.columns.item, this.r.columns.timestamp, this.r.columns.rating].map((c) => (typeof c === 'number' ? c : -1)));
      if (f.length <= need) {
        this.bad(`expected at least ${need + 1} fields, got ${f.length} (${fmtFields(f)})`, line);
        return;
      }
      this.locate(null, f.length, line);
    }
    if (f.length !== this.width) {
      this.bad(`expected ${this.width} fields, got ${f.length} (${fmtFields(f)})`, line);
      return;
    }
    const ix = this.idx!;
    const user = f[ix.user].trim();
    if (user === '') return this.bad('the user id is empty', line);
    const item = f[ix.item].trim();
    if (item === '') return this.bad('the item id is empty', line);
    let timestamp = line;
    if (ix.timestamp >= 0) {
      const t = f[ix.timestamp].trim();
      timestamp = NUM_RE.test(t) ? Number(t) : NaN;
      if (!Number.isFinite(timestamp)) return this.bad(`timestamp ${JSON.stringify(t.slice(0, 40))} is not a finite number`, line);
    }
    let rating = NaN;
    if (ix.rating >= 0) {
      const v = f[ix.rating].trim();
      rating = NUM_RE.test(v) ? Number(v) : NaN;
      if (!Number.isFinite(rating)) return this.bad(`rating ${JSON.stringify(v.slice(0, 40))} is not a finite number`, line);
    }
    this.report.rows++;
    this.onRow(user, item, timestamp, rating, line);
  }

  push(chunk: string): void {
    this.parser.push(chunk);
  }

  end(): ReadReport {
    this.parser.end();
    if (this.idx === null && this.r.header) this.fatal('empty file: expected a header line naming the columns', 1);
    return this.report;
  }
}

/** Streams a file's interactions to `onRow`; resolves to the report (rows, bad rows). */
export async function readInteractions(o: ReadOptions, onRow: OnInteraction): Promise<ReadReport> {
  const p = new InteractionParser(o, onRow);
  let stream: fs.ReadStream | undefined;
  try {
    stream = fs.createReadStream(o.file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    for await (const chunk of stream) p.push(chunk as string);
  } catch (e) {
    if (e instanceof DataError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(`${o.file}: cannot read (${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)})`, o.file);
  } finally {
    stream?.destroy();
  }
  return p.end();
}

export interface InteractionRow {
  user: string;
  item: string;
  timestamp: number;
  /** NaN when the format has no rating. */
  rating: number;
  line: number;
}

/**
 * The same stream as an async iterator of row batches (one batch per ~1 MiB chunk read), for callers that want
 * to pull: `for await (const rows of iterateInteractions(o)) …`. The report comes with the last batch's end
 * through `onReport`.
 */
export async function* iterateInteractions(o: ReadOptions, onReport?: (r: ReadReport) => void): AsyncGenerator<InteractionRow[]> {
  let batch: InteractionRow[] = [];
  const p = new InteractionParser(o, (user, item, timestamp, rating, line) => batch.push({ user, item, timestamp, rating, line }));
  let stream: fs.ReadStream | undefined;
  try {
    stream = fs.createReadStream(o.file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    for await (const chunk of stream) {
      p.push(chunk as string);
      if (batch.length > 0) {
        const out = batch;
        batch = [];
        yield out;
      }
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(`${o.file}: cannot read (${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)})`, o.file);
  } finally {
    stream?.destroy();
  }
  const report = p.end();
  if (batch.length > 0) yield batch;
  onReport?.(report);
}

/**
 * The format a path suggests: *.dat → movielens-dat, *.txt → user-item, *.tsv → delimited with tabs, otherwise a
 * CSV (movielens-csv when the name is ratings.csv).
 */
export function guessFormat(file: string): Pick<ReadOptions, 'format' | 'delimiter'> {
  const lower = file.toLowerCase();
  if (lower.endsWith('.dat')) return { format: 'movielens-dat' };
  if (lower.endsWith('.txt')) return { format: 'user-item' };
  if (lower.endsWith('.tsv')) return { format: 'delimited', delimiter: '\t' };
  if (lower.endsWith('ratings.csv')) return { format: 'movielens-csv' };
  return { format: 'delimited', delimiter: ',' };
}
