import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openAtomic, writeFileAtomic, writeFileAtomicSync } from '../../src/files/atomic';
import { readTensor, writeSafetensors } from '../../src/files/safetensors';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'basin-atomic-'));
}

/** Files in dir other than the named ones (leftover temporaries). */
function others(dir: string, ...keep: string[]): string[] {
  return fs.readdirSync(dir).filter((f) => !keep.includes(f));
}

describe('atomic writes', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes strings, bytes and chunk iterables, replacing the previous file', async () => {
    const p = path.join(dir, 'a.txt');
    await writeFileAtomic(p, 'first');
    assert.equal(fs.readFileSync(p, 'utf8'), 'first');
    await writeFileAtomic(p, new Uint8Array([104, 105]));
    assert.equal(fs.readFileSync(p, 'utf8'), 'hi');
    await writeFileAtomic(p, ['a', new Uint8Array([98]), 'c']);
    assert.equal(fs.readFileSync(p, 'utf8'), 'abc');
    async function* gen() {
      yield 'x';
      yield 'y';
    }
    await writeFileAtomic(p, gen());
    assert.equal(fs.readFileSync(p, 'utf8'), 'xy');
    writeFileAtomicSync(p, 'sync');
    assert.equal(fs.readFileSync(p, 'utf8'), 'sync');
    assert.deepEqual(others(dir, 'a.txt'), []);
  });

  it('keeps the mode of the file it replaces', async function () {
    if (process.platform === 'win32') this.skip();
    const p = path.join(dir, 'm.txt');
    fs.writeFileSync(p, 'old');
    fs.chmodSync(p, 0o600);
    await writeFileAtomic(p, 'new');
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
  });

  it('streams with openAtomic: nothing at the path until commit', async () => {
    const p = path.join(dir, 'big.bin');
    const w = await openAtomic(p);
    await w.write(new Uint8Array(1000).fill(7));
    assert.equal(fs.existsSync(p), false);
    await w.write('tail');
    assert.equal(w.bytesWritten, 1004);
    await w.commit();
    const got = fs.readFileSync(p);
    assert.equal(got.length, 1004);
    assert.equal(got.subarray(1000).toString(), 'tail');
    await assert.rejects(w.write('more'), /after committed/);
  });

  it('abort() leaves the previous file intact and removes the temporary', async () => {
    const p = path.join(dir, 'keep.txt');
    fs.writeFileSync(p, 'precious');
    const w = await openAtomic(p);
    await w.write('half of the new cont');
    assert.ok(fs.existsSync(w.tempPath));
    await w.abort();
    await w.abort(); // idempotent
    assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
    assert.deepEqual(others(dir, 'keep.txt'), []);
  });

  it('a data source that throws midway leaves the previous file intact', async () => {
    const p = path.join(dir, 'keep.txt');
    fs.writeFileSync(p, 'precious');
    function* failing() {
      yield 'new data, part 1';
      throw new Error('disk on fire');
    }
    await assert.rejects(writeFileAtomic(p, failing()), /disk on fire/);
    assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
    assert.deepEqual(others(dir, 'keep.txt'), []);
  });

  it('a safetensors write whose tensor data fails midway leaves the previous checkpoint intact', async () => {
    const p = path.join(dir, 'ckpt.safetensors');
    await writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) }]);
    const before = fs.readFileSync(p);
    await assert.rejects(
      writeSafetensors(p, [
        { name: 'w', dtype: 'F32', shape: [1 << 16], data: new Float32Array(1 << 16).fill(5) },
        {
          name: 'v',
          dtype: 'F16',
          shape: [4],
          data: () => {
            throw new Error('GPU readback failed');
          },
        },
      ]),
      /GPU readback failed/,
    );
    assert.deepEqual(fs.readFileSync(p), before);
    assert.deepEqual(Array.from((await readTensor(p, 'w')).data), [1, 2, 3]);
    assert.deepEqual(others(dir, 'ckpt.safetensors'), []);
  });

  it('a process killed mid-write (SIGKILL) never leaves a partial file at the path', function () {
    if (process.platform === 'win32') this.skip();
    this.timeout(30000);
    const p = path.join(dir, 'state.json');
    fs.writeFileSync(p, JSON.stringify({ ok: true }));
    const script = path.join(dir, 'crash.ts');
    const atomicPath = path.resolve(__dirname, '../../src/files/atomic.ts');
    fs.writeFileSync(
      script,
      `import { openAtomic } from ${JSON.stringify(atomicPath)};
(async () => {
  const w = await openAtomic(${JSON.stringify(p)});
  await w.write('{"ok": fal');
  process.kill(process.pid, 'SIGKILL');
})();
`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', cwd: path.resolve(__dirname, '../..') });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    assert.deepEqual(JSON.parse(fs.readFileSync(p, 'utf8')), { ok: true });
    // The orphaned temporary is a dot-file beside it, never the target.
    for (const f of others(dir, 'state.json', 'crash.ts')) assert.match(f, /^\.state\.json\.\d+\.[0-9a-f]+\.tmp$/);
  });
});
