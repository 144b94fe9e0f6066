// The sparsity sweep file: `<run>/prune/sweep-<yyyymmdd-hhmmss>.json`, written by `basin prune --sweep` and the
// worker's prune-sweep job, read by the prune panel (through the host, which imports only src/files/) and
// printed by the CLI as a table. Pure Node.
//
// One JSON object (format `basin-prune-sweep-1`), rewritten atomically (temp file + rename) after the dense
// evaluation and after every point, so a reader polling the file sees points appear and never a torn file:
//   options   what was asked (scores with their parameters, granularity, pattern, targets, base, densities)
//   targets   the pruned tensors in order: name, shape, elements
//   dense     the validation metrics of the unpruned model (density 1 of every score equals it exactly)
//   points    per score × density: the metrics, the fraction kept overall (`kept`) and per target
//             (`layers`, parallel to `targets`: with global granularity tensors keep different fractions)
//   status    running → completed | failed (with `error`) | cancelled
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../atomic';

export const SWEEP_FORMAT = 'basin-prune-sweep-1';
export const PRUNE_DIR = 'prune';

/** Validation metrics: loss, accuracy, hr10 (the trainer's), possibly more. */
export type SweepMetrics = { loss: number; accuracy: number; hr10: number } & Record<string, number>;

export interface SweepPoint {
  /** The score's name (`magnitude`, …). */
  score: string;
  /** The density asked for (fraction kept). */
  density: number;
  /** The fraction of all targeted entries actually kept (ties at the threshold are kept). */
  kept: number;
  /** Kept fraction per target, parallel to `targets`. */
  layers: number[];
  metrics: SweepMetrics;
  /** Milliseconds for this point: mask + evaluation. */
  ms: number;
}

export interface SweepTarget {
  name: string;
  shape: number[];
  size: number;
}

export interface SweepFile {
  format: typeof SWEEP_FORMAT;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  error?: string;
  /** ISO times. */
  created: string;
  updated: string;
  /** The weights pruned (absolute path) and their step when they come from a run. */
  checkpoint: string;
  step: number | null;
  options: {
    scores: { type: string; [param: string]: unknown }[];
    granularity: 'row' | 'tensor' | 'global';
    /** "2:4", or null for unstructured. */
    pattern: string | null;
    targets: string[];
    /** Task-vector mode: the base checkpoint (absolute path). */
    base: string | null;
    densities: number[];
  };
  targets: SweepTarget[];
  dense: SweepMetrics | null;
  /** What a uniform random guess scores on the same data (the floor of the chart). */
  chance: SweepMetrics | null;
  points: SweepPoint[];
  timing: SweepTiming;
}

/**
 * Where a sweep's wall time went (ms). The profile fields are optional: files of older sweeps lack them. The
 * sweep's own overhead over its evaluations is totalMs − pausedMs − denseEvalMs − evalMs: openMs + Σ scoresMs +
 * maskMs + saveMs + writeWaitMs + what is left (bookkeeping).
 */
export interface SweepTiming {
  /** Per score: computing it (calibration included) and its threshold table. */
  scoresMs: Record<string, number>;
  totalMs: number;
  denseEvalMs: number;
  /** From the start: the checks and plan, loading the checkpoint and the dense copies of the targets. */
  openMs?: number;
  /** Every point's threshold and mask (SparseGPT: its reconstruction), the GPU work included. */
  maskMs?: number;
  /** Every point's validation pass. */
  evalMs?: number;
  /** Serialising the file on the main thread (the writes themselves run in the background). */
  saveMs?: number;
  /** Waiting for writes still in flight at the end. */
  writeWaitMs?: number;
  /** Sweep-file writes issued (snapshots taken while one was in flight are merged into the next). */
  writes?: number;
  /** Time spent in the caller's betweenPoints hook (a benchmark's reference passes): not the sweep's. */
  pausedMs?: number;
}

export class SweepFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SweepFileError';
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Run-relative path of a new sweep file: `prune/sweep-<yyyymmdd-hhmmss>.json` (local time). */
export function sweepFileName(d: Date): string {
  const ts = `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
  return `${PRUNE_DIR}/sweep-${ts}.json`;
}

/** Writes the whole file atomically (the prune folder is created if needed). */
/** The file's text (one space of indentation: small, still readable). */
export function sweepFileText(sweep: SweepFile): string {
  return JSON.stringify(sweep, null, 1) + '\n';
}

/** Writes a sweep (or its text, already serialised) atomically. */
export async function writeSweepFile(file: string, sweep: SweepFile | string): Promise<void> {
  const text = typeof sweep === 'string' ? sweep : sweepFileText(sweep);
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, text);
}

const isNum = (x: unknown) => typeof x === 'number' || x === null; // JSON writes NaN as null

/** Reads and checks a sweep file; the error names the file and the field. */
export async function readSweepFile(file: string): Promise<SweepFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (e) {
    throw new SweepFileError(file, `not readable JSON (${(e as Error).message})`);
  }
  return checkSweep(file, raw);
}

export function checkSweep(file: string, raw: unknown): SweepFile {
  const s = raw as Partial<SweepFile>;
  if (!s || typeof s !== 'object') throw new SweepFileError(file, 'not a JSON object');
  if (s.format !== SWEEP_FORMAT) throw new SweepFileError(file, `format is ${JSON.stringify(s.format)}, expected ${SWEEP_FORMAT}`);
  if (!Array.isArray(s.targets)) throw new SweepFileError(file, 'targets: not a list');
  if (!Array.isArray(s.points)) throw new SweepFileError(file, 'points: not a list');
  s.points.forEach((p, i) => {
    if (typeof p?.score !== 'string') throw new SweepFileError(file, `points[${i}].score: not a string`);
    if (typeof p.density !== 'number') throw new SweepFileError(file, `points[${i}].density: not a number`);
    if (!p.metrics || !isNum(p.metrics.loss)) throw new SweepFileError(file, `points[${i}].metrics.loss: not a number`);
    if (!Array.isArray(p.layers) || p.layers.length !== s.targets!.length) {
      throw new SweepFileError(file, `points[${i}].layers: ${Array.isArray(p.layers) ? p.layers.length : 'no'} entries for ${s.targets!.length} targets`);
    }
  });
  return s as SweepFile;
}

/** The sweep files of a run folder, newest first (absolute paths). */
export async function listSweepFiles(runDir: string): Promise<string[]> {
  const dir = path.join(runDir, PRUNE_DIR);
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^sweep-\d{8}-\d{6}(-\d+)?\.json$/.test(n))
    .sort()
    .reverse()
    .map((n) => path.join(dir, n));
}

const f4 = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '—');
const pc = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');

/** The sweep as a text table: one row per density, per score loss / accuracy / HR@10. */
export function formatSweepTable(s: SweepFile): string {
  const scores = [...new Set(s.points.map((p) => p.score))];
  const densities = [...new Set(s.points.map((p) => p.density))].sort((a, b) => b - a);
  const head = ['density', ...scores.flatMap((n) => [`${n} loss`, 'acc', 'HR@10'])];
  const rows: string[][] = [];
  if (s.dense) rows.push(['dense', ...scores.flatMap(() => [f4(s.dense!.loss), pc(s.dense!.accuracy), pc(s.dense!.hr10)])]);
  for (const d of densities) {
    rows.push([
      pc(d),
      ...scores.flatMap((n) => {
        const p = s.points.find((q) => q.score === n && q.density === d);
        return p ? [f4(p.metrics.loss), pc(p.metrics.accuracy), pc(p.metrics.hr10)] : ['', '', ''];
      }),
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const pattern = s.options.pattern ? `, ${s.options.pattern}` : '';
  const title = `prune sweep of ${s.checkpoint}: ${s.targets.length} tensors, ${s.options.granularity}${pattern}${s.options.base ? ', task vector' : ''} (${s.status})`;
  return [title, line(head), ...rows.map(line)].join('\n');
}
