// The `interactions` data source (metadata: src/files/registry/data-sources.ts): a config's data section → the
// split, with a report of what each step removed. The data registry (../registry.ts) turns it into a Dataset.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DataConfig } from '../../../files/registry/data-sources';
import { loadSequences, type PrepareOptions, type PrepareReport } from './dataset';
import { DataError, guessFormat, type ColumnRef, type ReadOptions } from './read';
import { describeSplit, leaveOneOut, temporalSplit, type SequenceSplit } from './splits';

export type InteractionsDataConfig = Extract<DataConfig, { type: 'interactions' }>;

/** A folder → its ratings.csv or ratings.dat; a file stays. */
export function resolveLogFile(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new DataError(`${p}: not found (expected an interaction log, or a folder with ratings.csv or ratings.dat)`, p);
  }
  if (!st.isDirectory()) return p;
  for (const name of ['ratings.csv', 'ratings.dat']) if (fs.existsSync(path.join(p, name))) return path.join(p, name);
  throw new DataError(`${p}: the folder holds neither ratings.csv nor ratings.dat`, p);
}

/** The read options of a data section (`file` already resolved). */
export function readOptionsOf(d: InteractionsDataConfig, file: string): ReadOptions {
  const guessed = d.format === 'auto' ? guessFormat(file) : { format: d.format };
  const o: ReadOptions = { file, format: guessed.format, skipBad: d.skipBad };
  const delimiter = d.delimiter === 'tab' ? '\t' : (d.delimiter ?? ('delimiter' in guessed ? guessed.delimiter : undefined));
  if (delimiter !== undefined) o.delimiter = delimiter;
  if (d.header !== undefined) o.header = d.header;
  const col = (c: string | undefined): ColumnRef | undefined => (c === undefined ? undefined : /^\d+$/.test(c) ? Number(c) : c);
  if (d.userColumn !== undefined || d.itemColumn !== undefined || o.format === 'delimited') {
    const user = col(d.userColumn);
    const item = col(d.itemColumn);
    if (user === undefined || item === undefined) {
      throw new DataError(`${file}: a delimited log needs data.userColumn and data.itemColumn (header names or 0-based indices)`, file);
    }
    o.columns = { user, item, timestamp: col(d.timestampColumn), rating: col(d.ratingColumn) };
  }
  return o;
}

export interface InteractionSplitResult {
  split: SequenceSplit;
  report: PrepareReport;
  /** One line for logs. */
  summary: string;
}

/** Reads, filters and splits the log a data section names. `base`: the folder relative paths start from. */
export async function loadInteractionSplit(d: InteractionsDataConfig, base = process.cwd()): Promise<InteractionSplitResult> {
  const file = resolveLogFile(path.resolve(base, d.path));
  const o: PrepareOptions = { ...readOptionsOf(d, file), minRating: d.minRating, kCore: d.kCore, maxItems: d.maxItems, maxLength: d.maxLength };
  const { sequences, report } = await loadSequences(o);
  if (sequences.numUsers === 0) throw new DataError(`${file}: no interactions left after filtering (${report.raw.interactions} read)`, file);
  const split = d.split === 'temporal' ? temporalSplit(sequences, { testFraction: d.testFraction, validFraction: d.validFraction, seed: d.seed }) : leaveOneOut(sequences);
  const r = report.read;
  const bad = r.bad ? `; ${r.bad} malformed rows skipped (lines ${r.badLines.slice(0, 5).join(', ')}${r.bad > 5 ? ', …' : ''})` : '';
  const core = report.kCore ? `; ${d.kCore}-core dropped ${report.kCore.droppedUsers} users, ${report.kCore.droppedItems} items` : '';
  return { split, report, summary: `interactions ${path.basename(file)}: ${describeSplit(split)}${core}${bad}` };
}

/** Validation sequences for next-token training: each validation input followed by its target. */
export function validationSequences(split: SequenceSplit): Int32Array[] {
  const out: Int32Array[] = [];
  for (let u = 0; u < split.numUsers; u++) {
    const t = split.valid[u];
    if (t === 0) continue;
    const x = split.validInput[u];
    const s = new Int32Array(x.length + 1);
    s.set(x);
    s[x.length] = t;
    out.push(s);
  }
  return out;
}
