import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelRefError, resolveModelRef } from '../../src/files/merge/config';
import { COMMIT_FILE, MERGE_REPORT_FILE, commitMergeOutput, finishCommit, holdWorkFolder, settleMergeFolder, workFolders, workHost } from '../../src/files/merge/merge-commit';
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

  it('leaves alone merges that had not committed: a killed one’s, a live one’s, another machine’s', () => {
    const unfinished = work(deadPid, { committed: false });
    const live = work(process.ppid, { committed: false }); // a live process: this one's parent
    const foreign = work(deadPid, { committed: false, host: 'other-machine' });
    assert.deepEqual(settleMergeFolder(out), []);
    assert.equal(resolveModelRef(dir, 'merged').kind, 'folder', 'the old model, untouched');
    assert.equal(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old model');
    for (const d of [unfinished, live, foreign]) assert.ok(fs.existsSync(d), `${path.basename(d)} left`);
    const seen = Object.fromEntries(workFolders(out).map((x) => [path.basename(x.dir), { live: x.live, foreign: x.foreign, finishable: x.finishable }]));
    assert.deepEqual(seen[path.basename(unfinished)], { live: false, foreign: false, finishable: false });
    assert.deepEqual(seen[path.basename(live)], { live: true, foreign: false, finishable: false });
    assert.deepEqual(seen[path.basename(foreign)], { live: true, foreign: true, finishable: false });
  });

  it('a committed merge still moving its files in is waited for; if it stays, the reader is told the folder is not whole yet', () => {
    const live = work(process.ppid);
    const t0 = Date.now();
    assert.throws(() => resolveModelRef(dir, 'merged'), (e: unknown) => e instanceof ModelRefError && /a merge \(process \d+\) is moving its files into .*read the folder again once it has ended/.test((e as Error).message));
    assert.ok(Date.now() - t0 >= 1900, 'waited about 2 s first');
    assert.ok(fs.existsSync(live) && fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8') === 'old model', 'nothing moved under a live merge');
    fs.rmSync(live, { recursive: true });
  });

  it('a reader waiting on a merge that is moving its files in goes on once it has ended', () => {
    // The "merge": a process that owns a committed work folder and ends its moves 300 ms later (here: removes it).
    const script = `const [out, host] = process.argv.slice(1); const w = require('path').join(out, '.basin-merge-' + host + '-' + process.pid + '-Wa1t00');
      require('fs').mkdirSync(w); require('fs').writeFileSync(w + '/${COMMIT_FILE}', '{}'); console.log('ready');
      setTimeout(() => require('fs').rmSync(w, { recursive: true }), 300);`;
    const child = spawn(process.execPath, ['-e', script, out, workHost()], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => {
        try {
          assert.equal(workFolders(out).filter((w) => w.committed && w.live).length, 1, 'a live committed merge');
          const t0 = Date.now();
          assert.equal(resolveModelRef(dir, 'merged').kind, 'folder');
          assert.ok(Date.now() - t0 >= 200 && Date.now() - t0 < 1900, `waited for it: ${Date.now() - t0} ms`);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
  });

  it('this process’s own folder is live only while its merge runs (holdWorkFolder): a merge that failed after committing is finished by the next read', () => {
    const w = work(process.pid);
    const release = holdWorkFolder(w);
    assert.equal(workFolders(out)[0].live, true);
    release();
    assert.equal(workFolders(out)[0].finishable, true);
    assert.equal(resolveModelRef(dir, 'merged').kind, 'sharded');
  });

  it('another machine’s committed merge counts as gone a minute after its record, and is then finished', () => {
    const w = work(deadPid, { host: 'other-machine' });
    assert.equal(workFolders(out)[0].finishable, false, 'a fresh record: that merge may be moving its files');
    const t0 = Date.now();
    assert.throws(() => resolveModelRef(dir, 'merged'), /a merge on other-machine \(process \d+\) is moving its files into .*a minute after its record, another machine's merge counts as gone/);
    assert.ok(Date.now() - t0 < 1000, 'not waited for: a read must not stall for the minute');
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(path.join(w, COMMIT_FILE), old, old);
    assert.equal(resolveModelRef(dir, 'merged').kind, 'sharded');
    assert.ok(!fs.existsSync(w));
  });

  it('a commit finished by another process first is no error: the record gone, or the folder gone mid-way', () => {
    const w = work(deadPid);
    killedAfterFirstMove(w);
    fs.rmSync(path.join(w, COMMIT_FILE)); // the other finisher got as far as removing the folder...
    finishCommit(out, w); // ...after this one listed it: nothing to do
    fs.rmSync(w, { recursive: true });
    finishCommit(out, w);
    assert.ok(fs.existsSync(path.join(out, 'model.safetensors')), 'this finisher moved and removed nothing');
  });

  it('a work folder that is a link, or a record naming a link, moves nothing', () => {
    // A link named like a work folder, pointing at another model with a record: read as that folder, it would move
    // the other model's file in and delete this one's as stale.
    const other = path.join(dir, 'other-model');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'model.safetensors'), 'other model');
    fs.writeFileSync(path.join(other, COMMIT_FILE), JSON.stringify({ format: 'basin-merge-commit-1', files: ['model.safetensors'] }));
    fs.symlinkSync(other, path.join(out, `.basin-merge-${workHost()}-${deadPid}-Ln1234`));
    assert.deepEqual(workFolders(out), []);
    assert.deepEqual(settleMergeFolder(out), []);
    assert.equal(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old model');
    assert.ok(fs.existsSync(path.join(other, 'model.safetensors')));
    // A real work folder whose "shard" is a link to a file elsewhere.
    const w = work(deadPid);
    fs.rmSync(path.join(w, SHARDS[0]));
    fs.symlinkSync(path.join(other, 'model.safetensors'), path.join(w, SHARDS[0]));
    assert.throws(() => resolveModelRef(dir, 'merged'), /model-00001-of-00002\.safetensors there is not a plain file/);
    assert.equal(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old model');
  });

  it('openWeightsFile of the one file a killed merge replaced by shards reads the shards', async () => {
    const w = path.join(out, `.basin-merge-${workHost()}-${deadPid}-Sh4rd5`);
    fs.mkdirSync(w);
    const weightMap: Record<string, string> = {};
    for (const [k, f] of SHARDS.entries()) {
      await writeSafetensors(path.join(w, f), [{ name: `w${k}`, dtype: 'F32', shape: [1], data: new Float32Array([k + 1]) }]);
      weightMap[`w${k}`] = f;
    }
    fs.writeFileSync(path.join(w, INDEX), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.writeFileSync(path.join(w, COMMIT_FILE), JSON.stringify({ format: 'basin-merge-commit-1', files: [...SHARDS, INDEX] }));
    const m = await openWeightsFile(path.join(out, 'model.safetensors')); // chosen before the folder was settled
    try {
      assert.deepEqual([...(await m.read('w1'))], [2]);
    } finally {
      await m.close();
    }
    assert.ok(!fs.existsSync(path.join(out, 'model.safetensors')));
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
