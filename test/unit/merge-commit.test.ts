import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelRefError, resolveModelRef } from '../../src/files/merge/config';
import { COMMIT_FILE, MERGE_REPORT_FILE, commitMergeOutput, settleMergeFolder, workFolders, workHost } from '../../src/files/merge/merge-commit';
import { openWeightsFile } from '../../src/files/merge/model-files';
import { writeSafetensors } from '../../src/files/safetensors';

/** A pid whose process has ended (a node that exits at once). */
const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;

const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
const INDEX = 'model.safetensors.index.json';

describe('merge output commit (src/files/merge/merge-commit.ts)', () => {
  let dir: string;
  let out: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-commit-'));
    out = path.join(dir, 'merged');
    fs.mkdirSync(out);
    // The model a --force merge replaces: one file and its report.
    fs.writeFileSync(path.join(out, 'model.safetensors'), 'old model');
    fs.writeFileSync(path.join(out, MERGE_REPORT_FILE), 'old report');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A merge's work folder: a sharded model and its report written, `committed` with a record naming `files`. */
  function work(pid: number, { committed = true, files = [...SHARDS, INDEX] as unknown[], host = workHost() } = {}): string {
    const w = path.join(out, `.basin-merge-${host}-${pid}-Ab12cd`);
    fs.mkdirSync(w);
    for (const f of [...SHARDS, INDEX]) fs.writeFileSync(path.join(w, f), `new ${f}`);
    fs.writeFileSync(path.join(w, MERGE_REPORT_FILE), 'new report');
    if (committed) fs.writeFileSync(path.join(w, COMMIT_FILE), JSON.stringify({ format: 'basin-merge-commit-1', files }));
    return w;
  }

  /** Kill the merge after its first move: shard 1 in place, the rest still in the work folder. */
  function killedAfterFirstMove(w: string): void {
    fs.renameSync(path.join(w, SHARDS[0]), path.join(out, SHARDS[0]));
  }

  const listing = () => fs.readdirSync(out).sort();

  it('commitMergeOutput moves every file in, removes the replaced model’s leftovers, the report last, the work folder gone', () => {
    const w = work(process.pid, { committed: false });
    commitMergeOutput(out, w, [...SHARDS, INDEX]);
    assert.deepEqual(listing(), [MERGE_REPORT_FILE, ...SHARDS, INDEX].sort());
    assert.equal(fs.readFileSync(path.join(out, MERGE_REPORT_FILE), 'utf8'), 'new report');
    assert.equal(fs.readFileSync(path.join(out, SHARDS[1]), 'utf8'), `new ${SHARDS[1]}`);
  });

  it('a merge killed between its renames is finished when the folder is next resolved as a model: never a mix of old and new', () => {
    const w = work(deadPid);
    killedAfterFirstMove(w);
    // What a reader would have met: the old single file beside a new shard (and read the old file).
    assert.ok(fs.existsSync(path.join(out, 'model.safetensors')) && fs.existsSync(path.join(out, SHARDS[0])));
    const ref = resolveModelRef(dir, 'merged');
    assert.equal(ref.kind, 'sharded', 'the merged model, sharded');
    assert.deepEqual(listing(), [MERGE_REPORT_FILE, ...SHARDS, INDEX].sort());
    assert.equal(fs.readFileSync(path.join(out, MERGE_REPORT_FILE), 'utf8'), 'new report');
    assert.ok(!fs.existsSync(w), 'the work folder is gone');
  });

  it('finishes through openWeightsFile too (init.from of a merged model folder), and a second kill in the finish is finished as well', async () => {
    // A real one-file model in the work folder, replacing shards: after the kill, the index still points at old shards.
    fs.rmSync(path.join(out, 'model.safetensors'));
    for (const f of SHARDS) fs.writeFileSync(path.join(out, f), 'old shard');
    fs.writeFileSync(path.join(out, INDEX), 'old index');
    const w = path.join(out, `.basin-merge-${workHost()}-${deadPid}-Zz99zz`);
    fs.mkdirSync(w);
    await writeSafetensors(path.join(w, 'model.safetensors'), [{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    fs.writeFileSync(path.join(w, MERGE_REPORT_FILE), 'new report');
    fs.writeFileSync(path.join(w, COMMIT_FILE), JSON.stringify({ format: 'basin-merge-commit-1', files: ['model.safetensors'] }));
    // Killed after the move, before the old shards went: the file is in place, the record still there.
    fs.renameSync(path.join(w, 'model.safetensors'), path.join(out, 'model.safetensors'));
    const m = await openWeightsFile(path.join(out, 'model.safetensors'));
    try {
      assert.deepEqual([...(await m.read('w'))], [1, 2]);
    } finally {
      await m.close();
    }
    assert.deepEqual(listing(), [MERGE_REPORT_FILE, 'model.safetensors'], 'the old shards and index are gone');
    assert.equal(fs.readFileSync(path.join(out, MERGE_REPORT_FILE), 'utf8'), 'new report');
  });

  it('leaves alone a merge that had not committed, a live merge’s folder and another machine’s', () => {
    const unfinished = work(deadPid, { committed: false });
    killedAfterFirstMove(unfinished); // cannot happen without a record; shows the record alone decides
    fs.rmSync(path.join(out, SHARDS[0]));
    const live = path.join(out, `.basin-merge-${workHost()}-${process.pid}-Cd34ef`);
    fs.mkdirSync(live);
    fs.writeFileSync(path.join(live, COMMIT_FILE), JSON.stringify({ format: 'basin-merge-commit-1', files: [INDEX] }));
    const foreign = work(deadPid, { host: 'other-machine' });
    assert.deepEqual(settleMergeFolder(out), []);
    assert.equal(resolveModelRef(dir, 'merged').kind, 'folder', 'the old model, untouched');
    assert.equal(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old model');
    for (const d of [unfinished, live, foreign]) assert.ok(fs.existsSync(d), `${path.basename(d)} left`);
    const seen = Object.fromEntries(workFolders(out).map((x) => [path.basename(x.dir), { live: x.live, foreign: x.foreign, committed: x.committed }]));
    assert.deepEqual(seen[path.basename(unfinished)], { live: false, foreign: false, committed: false });
    assert.deepEqual(seen[path.basename(live)], { live: true, foreign: false, committed: true });
    assert.deepEqual(seen[path.basename(foreign)], { live: true, foreign: true, committed: true });
  });

  for (const [what, files, message] of [
    ['a path out of the folder', ['../../../etc/passwd'], /names "\.\.\/\.\.\/\.\.\/etc\/passwd", not a model file/],
    ['a file that is not a model file', ['notes.txt'], /names "notes\.txt", not a model file/],
    ['no files', [], /not a basin-merge-commit-1 record/],
    ['a file in neither folder', ['model-00009-of-00009.safetensors'], /names model-00009-of-00009\.safetensors, which is in neither folder/],
  ] as const) {
    it(`a commit record naming ${what} is refused, with the folder to remove`, () => {
      const w = work(deadPid, { files: [...files] });
      assert.throws(
        () => resolveModelRef(dir, 'merged'),
        (e: unknown) => e instanceof ModelRefError && message.test((e as Error).message) && (e as Error).message.includes(path.join(w, COMMIT_FILE)) && /remove that folder and run the merge again/.test((e as Error).message),
      );
      assert.ok(fs.existsSync(path.join(out, 'model.safetensors')), 'the old model is still there');
    });
  }

  it('a damaged commit record is refused by name', () => {
    const w = work(deadPid);
    fs.writeFileSync(path.join(w, COMMIT_FILE), '{"format": "basin-merge-co');
    assert.throws(() => resolveModelRef(dir, 'merged'), /commit\.json: unreadable \(.*JSON/);
  });
});
