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
import { pidAlive, renameWithRetrySync, sleepSync, writeFileAtomicSync } from '../atomic';

/** A model folder's single weights file, and the index of a sharded one (transformers' names). */
export const MODEL_FILE = 'model.safetensors';
export const SHARD_INDEX_FILE = 'model.safetensors.index.json';
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
  /**
   * Committed, and no process can still be moving its files: its own is gone, or (another machine's, which cannot be
   * checked) the record is older than a minute, where the moves take milliseconds.
   */
  finishable: boolean;
}

/** How old another machine's commit record must be before its merge counts as gone. */
const FOREIGN_COMMIT_STALE_MS = 60_000;

function ageMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Work folders of merges running in this process (executeMerge registers its own). Another folder with this pid is
 * one whose merge failed after committing (say a rename refused on Windows): finishable, like a killed one's.
 */
const ownWork = new Set<string>();

/** Marks a work folder as this process's running merge (until the returned function is called). */
export function holdWorkFolder(dir: string): () => void {
  const key = path.resolve(dir);
  ownWork.add(key);
  return () => void ownWork.delete(key);
}

function processAlive(pid: number, dir: string): boolean {
  return pid === process.pid ? ownWork.has(path.resolve(dir)) : pidAlive(pid);
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
    // Only a real folder: a link by that name could point the moves (and the stale-file removal) at another model.
    if (!isRealDir(dir)) continue;
    const host = m[1];
    const pid = Number(m[2]);
    const foreign = host !== workHost();
    const live = foreign || processAlive(pid, dir);
    const committed = fs.existsSync(path.join(dir, COMMIT_FILE));
    const finishable = committed && (!live || (foreign && ageMs(path.join(dir, COMMIT_FILE)) > FOREIGN_COMMIT_STALE_MS));
    found.push({ dir, host, pid, foreign, live, committed, finishable });
  }
  return found;
}

function isRealDir(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/**
 * A commit record that cannot be followed (damaged, naming a file outside the rules), or a committed merge whose
 * files cannot be moved in from here (no write access).
 */
export class MergeCommitError extends Error {
  constructor(readonly workDir: string, detail: string, advice = 'remove that folder and run the merge again (with --force)') {
    super(`${path.join(workDir, COMMIT_FILE)}: ${detail}; the merge that wrote it was interrupted while moving its files into place: ${advice}`);
    this.name = 'MergeCommitError';
  }
}

/**
 * The files a commit record moves, checked: bare model file names only (a record is read from disk, so never
 * trusted). Null when the record is gone: another process finished the commit first.
 */
function readCommit(work: string): string[] | null {
  let record: unknown;
  try {
    record = JSON.parse(fs.readFileSync(path.join(work, COMMIT_FILE), 'utf8'));
  } catch (e) {
    if (code(e) === 'ENOENT') return null;
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
  if (!files) return; // finished by another process
  for (const f of files) {
    const from = path.join(work, f);
    const to = path.join(outDir, f);
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(from);
    } catch (e) {
      if (code(e) !== 'ENOENT') throw e;
    }
    if (st) {
      if (!st.isFile()) throw new MergeCommitError(work, `${f} there is not a plain file`);
      try {
        renameWithRetrySync(from, to);
      } catch (e) {
        // Two processes finishing one commit: the other moved it first.
        if (!(code(e) === 'ENOENT' && fs.existsSync(to))) throw e;
      }
    } else if (!fs.existsSync(to)) {
      if (!fs.existsSync(work)) return; // finished by another process, which removed the folder
      throw new MergeCommitError(work, `names ${f}, which is in neither folder`);
    }
  }
  removeStaleModelFiles(outDir, files);
  try {
    renameWithRetrySync(path.join(work, MERGE_REPORT_FILE), path.join(outDir, MERGE_REPORT_FILE));
  } catch (e) {
    if (code(e) !== 'ENOENT') throw e; // moved already (by this finish's first try, or by another process)
  }
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
 * Before a folder is read as a model: a merge into it that was killed after its commit record is finished, so the
 * folder holds the merged model, never a mix of it and the one it replaced. Returns the work folders it finished.
 * A merge still writing has committed nothing and replaced nothing: left alone. One that has committed and is
 * moving its files in right now (milliseconds) is waited for a moment; if it is still moving (a stopped process), or
 * is another machine's (not waited for), a MergeCommitError says the folder is not whole yet. Finishing needs write access:
 * without it, a MergeCommitError says so.
 */
export function settleMergeFolder(dir: string): string[] {
  const finished: string[] = [];
  const deadline = Date.now() + 2000;
  for (;;) {
    const folders = workFolders(dir);
    const moving = folders.filter((w) => w.committed && !w.finishable);
    for (const w of folders) {
      if (!w.finishable) continue;
      try {
        finishCommit(dir, w.dir);
      } catch (e) {
        const c = code(e);
        if (c === 'EACCES' || c === 'EPERM' || c === 'EROFS') {
          throw new MergeCommitError(w.dir, `its files could not be moved into place from here (${(e as Error).message})`, 'open the folder once with write access (a read or a merge there finishes it)');
        }
        throw e;
      }
      finished.push(w.dir);
    }
    if (!moving.length) return finished;
    // Only a merge of this machine is waited for: its moves take milliseconds. Another machine's may be gone (its
    // process cannot be checked), and a wait on each read for the minute until it counts as gone would stall them.
    if (Date.now() > deadline || moving.some((w) => w.foreign)) {
      const w = moving.find((x) => x.foreign) ?? moving[0];
      const who = w.foreign ? `a merge on ${w.host} (process ${w.pid})` : `a merge (process ${w.pid})`;
      throw new MergeCommitError(w.dir, `${who} is moving its files into ${dir}`, 'read the folder again once it has ended (a minute after its record, another machine\'s merge counts as gone and is finished here)');
    }
    sleepSync(50);
  }
}

/**
 * The weights file a model folder holds: the single file first (as transformers), else a sharded model's index;
 * null for neither. Settles the folder first (settleMergeFolder), so the choice sees a killed merge's files, not a mix.
 */
export function modelFileIn(dir: string): string | null {
  settleMergeFolder(dir);
  for (const f of [MODEL_FILE, SHARD_INDEX_FILE]) if (fs.existsSync(path.join(dir, f))) return path.join(dir, f);
  return null;
}
