// How a merge's output lands in its folder, all at once or not at all.
//
// A merge writes its files into a work folder inside the output folder (`.basin-merge-<host>-<pid>-<random>`, the
// same file system, so each final move is a rename). Once every file is complete it writes a commit record there,
// and from that moment the merge counts as done: the files move into the folder one rename at a time, the files of
// a replaced model that the new one does not write go, and the report moves last.
//
// A kill between two of those renames would leave a mix (new shards beside the old single file). The commit record
// makes the rest of the moves redoable: whoever next opens the folder (a merge into it, or a reader resolving it as
// a model) finds a work folder of a process that is gone, with a record in it, and finishes the moves. A work folder
// without a record is a merge that never finished writing: readers leave it, the next merge there removes it.
// Pure Node: the engine's executor, the CLI and the extension host all come through here.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../atomic';

/** The merge report beside a merged model. */
export const MERGE_REPORT_FILE = 'merge-report.json';
/** Weights files of a merged model: the single file, the index and mergekit/transformers-style shards. */
export const MODEL_FILE_RE = /^model(-\d+-of-\d+)?\.safetensors$|^model\.safetensors\.index\.json$/;
export const WORK_PREFIX = '.basin-merge-';
const WORK_RE = /^\.basin-merge-(.+)-(\d+)-[A-Za-z0-9]{6}$/;
/** The commit record inside a work folder: its presence means every file there is complete. */
export const COMMIT_FILE = 'commit.json';
const COMMIT_FORMAT = 'basin-merge-commit-1';

/** This machine's name as a work folder carries it (no characters a file name cannot hold). */
export function workHost(): string {
  return os.hostname().replace(/[^A-Za-z0-9_.]/g, '_') || 'host';
}

/** A work folder found in an output folder, and whether the merge that made it can still be running. */
export interface WorkFolder {
  dir: string;
  host: string;
  pid: number;
  /** On this machine, its process still runs (or cannot be signalled: someone else's); always true for another machine's. */
  live: boolean;
  /** Another machine's: its process cannot be checked from here. */
  foreign: boolean;
  committed: boolean;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // someone else's live process
  }
}

/** The merge work folders inside `outDir` (none when it cannot be listed). */
export function workFolders(outDir: string): WorkFolder[] {
  let names: string[];
  try {
    names = fs.readdirSync(outDir);
  } catch {
    return [];
  }
  const found: WorkFolder[] = [];
  for (const f of names) {
    const m = WORK_RE.exec(f);
    if (!m) continue;
    const dir = path.join(outDir, f);
    const host = m[1];
    const pid = Number(m[2]);
    const foreign = host !== workHost();
    found.push({ dir, host, pid, foreign, live: foreign || processAlive(pid), committed: fs.existsSync(path.join(dir, COMMIT_FILE)) });
  }
  return found;
}

/** A commit record that cannot be followed: damaged, or naming a file outside the rules. */
export class MergeCommitError extends Error {
  constructor(readonly workDir: string, detail: string) {
    super(`${path.join(workDir, COMMIT_FILE)}: ${detail}; the merge that wrote it was interrupted while moving its files into place: remove that folder and run the merge again`);
    this.name = 'MergeCommitError';
  }
}

/** The files a commit record moves, checked: bare model file names only (a record is read from disk, so never trusted). */
function readCommit(work: string): string[] {
  let record: unknown;
  try {
    record = JSON.parse(fs.readFileSync(path.join(work, COMMIT_FILE), 'utf8'));
  } catch (e) {
    throw new MergeCommitError(work, `unreadable (${(e as Error).message})`);
  }
  const r = record as { format?: unknown; files?: unknown };
  if (r?.format !== COMMIT_FORMAT || !Array.isArray(r.files) || r.files.length === 0) throw new MergeCommitError(work, `not a ${COMMIT_FORMAT} record`);
  for (const f of r.files) {
    if (typeof f !== 'string' || !MODEL_FILE_RE.test(f)) throw new MergeCommitError(work, `names ${JSON.stringify(f)}, not a model file`);
  }
  return r.files as string[];
}

/**
 * After a --force merge has written its files: the weights files of the model it replaced that the new layout
 * does not write (a single file where there were shards, or fewer shards). Left there, a reader would load them:
 * a folder holding model.safetensors is read as that file even beside a new index.
 */
export function removeStaleModelFiles(outDir: string, written: readonly string[]): string[] {
  const keep = new Set(written);
  const stale = fs.readdirSync(outDir).filter((f) => MODEL_FILE_RE.test(f) && !keep.has(f));
  for (const f of stale) fs.rmSync(path.join(outDir, f), { force: true });
  return stale;
}

/**
 * Finishes a committed merge: the model files still in the work folder move into outDir (shards first, the index
 * after them: a reader finds a sharded model by it), the replaced model's leftovers go, the report moves last (a
 * report beside the files says they are this merge's, whole), and the work folder goes. Redoable: a file already
 * moved is skipped, so a second kill in here is finished by the next caller too.
 */
export function finishCommit(outDir: string, work: string): void {
  const files = readCommit(work);
  for (const f of files) {
    const from = path.join(work, f);
    if (fs.existsSync(from)) fs.renameSync(from, path.join(outDir, f));
    else if (!fs.existsSync(path.join(outDir, f))) throw new MergeCommitError(work, `names ${f}, which is in neither folder`);
  }
  removeStaleModelFiles(outDir, files);
  const report = path.join(work, MERGE_REPORT_FILE);
  if (fs.existsSync(report)) fs.renameSync(report, path.join(outDir, MERGE_REPORT_FILE));
  fs.rmSync(work, { recursive: true, force: true });
}

/**
 * The merge's last step, once every file in `work` is complete (the report included): the commit record, then
 * the moves. `files` are the model files in the order they move.
 */
export function commitMergeOutput(outDir: string, work: string, files: readonly string[]): void {
  writeFileAtomicSync(path.join(work, COMMIT_FILE), JSON.stringify({ format: COMMIT_FORMAT, files }) + '\n');
  finishCommit(outDir, work);
}

/**
 * Before a folder is read as a model: a merge into it that was killed after its commit record (its process gone,
 * on this machine) is finished, so the folder holds the merged model, never a mix of it and the one it replaced.
 * Returns the work folders it finished. Others are left alone: a live merge's has not replaced anything yet.
 */
export function settleMergeFolder(dir: string): string[] {
  const finished: string[] = [];
  for (const w of workFolders(dir)) {
    if (w.live || !w.committed) continue;
    finishCommit(dir, w.dir);
    finished.push(w.dir);
  }
  return finished;
}
