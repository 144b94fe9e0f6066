import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveModelRef } from '../../src/files/merge/config';
import { ModelFiles, ModelFilesError, TensorFileReader, decodeToF32, openShardIndex, parseShardIndex, statisticsFor } from '../../src/files/merge/model-files';
import { RunFolder } from '../../src/files/run-record';
import { SafetensorsError, readSafetensorsHeader, writeSafetensors, type WriteTensor } from '../../src/files/safetensors';

function ramp(n: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => offset + scale * (i - Math.floor(n / 3)) * 0.125);
}

function t(name: string, shape: number[], dtype: 'F32' | 'F16' | 'BF16' = 'F32', offset = 0): WriteTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype, shape, data: ramp(n, 1, offset) };
}

describe('model files (src/files/merge/model-files.ts)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-model-files-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists a .safetensors file’s tensors without reading data, and reads one tensor at its offset', async () => {
    const file = path.join(dir, 'm.safetensors');
    // awkward shapes: a scalar-ish [1], primes, an empty tensor, every float dtype, and an integer buffer
    await writeSafetensors(file, [
      t('a', [1]),
      t('b', [7, 13], 'F16'),
      t('c', [3, 5, 2], 'BF16'),
      t('d', [0, 4]),
      { name: 'ids', dtype: 'I32', shape: [3], data: Int32Array.from([1, 2, 3]) },
      t('e', [257]),
    ]);
    const m = await ModelFiles.open(resolveModelRef(dir, 'm.safetensors'));
    try {
      assert.equal(m.kind, 'safetensors');
      assert.deepEqual(
        m.list.map((x) => [x.name, x.dtype, x.shape]),
        [
          ['a', 'F32', [1]],
          ['b', 'F16', [7, 13]],
          ['c', 'BF16', [3, 5, 2]],
          ['d', 'F32', [0, 4]],
          ['e', 'F32', [257]],
        ],
      );
      assert.deepEqual(m.other, [{ name: 'ids', dtype: 'I32', shape: [3], file }]);
      const h = await readSafetensorsHeader(file);
      for (const x of m.list) {
        assert.equal(x.file, file);
        assert.equal(x.byteOffset, h.tensors[x.name].byteOffset);
        assert.equal(x.byteLength, h.tensors[x.name].byteLength);
      }
      const whole = fs.readFileSync(file);
      for (const x of m.list) {
        const bytes = await m.readBytes(x.name);
        assert.deepEqual(Buffer.from(bytes), whole.subarray(x.byteOffset, x.byteOffset + x.byteLength), x.name);
      }
      assert.deepEqual(await m.readF32('e'), ramp(257));
      // F16 and BF16 of the ramp (multiples of 1/8 in a small range) are exact
      assert.deepEqual(await m.readF32('b'), ramp(91));
      assert.deepEqual(await m.readF32('c'), ramp(30));
      await assert.rejects(() => m.readBytes('nope'), (e: Error) => e instanceof ModelFilesError && /no tensor "nope" \(it has: a, b, c, d, e\)/.test(e.message));
    } finally {
      await m.close();
    }
  });

  it('reads a tensor at the end of a 3 GB (sparse) file: positioned reads, never the whole file', async () => {
    // A whole-file read of this file fails (Node refuses files over 2 GiB), so this passes only with positioned reads.
    const file = path.join(dir, 'big.safetensors');
    const bigN = 750_000_000;
    const header = Buffer.from(JSON.stringify({ big: { dtype: 'F32', shape: [bigN], data_offsets: [0, bigN * 4] }, small: { dtype: 'F32', shape: [3], data_offsets: [bigN * 4, bigN * 4 + 12] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, prefix, 0, 8, 0);
    fs.writeSync(fd, header, 0, header.length, 8);
    const small = Buffer.from(Float32Array.from([1.5, -2, 3.25]).buffer);
    fs.writeSync(fd, small, 0, 12, 8 + header.length + bigN * 4);
    fs.closeSync(fd);
    const m = await ModelFiles.open(resolveModelRef(dir, 'big.safetensors'));
    try {
      assert.equal(m.tensor('big').byteLength, bigN * 4);
      assert.deepEqual(await m.readF32('small'), Float32Array.from([1.5, -2, 3.25]));
    } finally {
      await m.close();
    }
  });

  it('opens a folder with model.safetensors and reads through TensorFileReader by ref', async () => {
    fs.mkdirSync(path.join(dir, 'f'));
    await writeSafetensors(path.join(dir, 'f', 'model.safetensors'), [t('w', [3, 4]), t('v', [5], 'F16')]);
    const ref = resolveModelRef(dir, 'f');
    assert.equal(ref.kind, 'folder');
    const m = await ModelFiles.open(ref);
    await m.close();
    const r = new TensorFileReader();
    try {
      assert.deepEqual(await r.readF32(m.tensor('w')), ramp(12));
      assert.deepEqual(await r.readF32(m.tensor('v')), ramp(5));
      // a file truncated since the plan: a clear error, not garbage
      const f = path.join(dir, 'f', 'model.safetensors');
      const w = m.tensor('v');
      fs.truncateSync(f, w.byteOffset + 2);
      await r.close();
      await assert.rejects(() => r.readBytes(w), /file ended after 2 of 10 bytes/);
    } finally {
      await r.close();
    }
  });

  it('decodeToF32 handles unaligned views and rejects a wrong byte count', () => {
    const buf = new Uint8Array(9);
    new DataView(buf.buffer).setFloat32(1, 1.5, true);
    new DataView(buf.buffer).setFloat32(5, -2, true);
    assert.deepEqual(decodeToF32({ name: 'x', dtype: 'F32', numel: 2, file: 'f' }, buf.subarray(1)), Float32Array.from([1.5, -2]));
    assert.throws(() => decodeToF32({ name: 'x', dtype: 'F16', numel: 3, file: 'f' }, new Uint8Array(4)), /4 bytes for 3 F16 values/);
  });

  describe('sharded models', () => {
    async function sharded(index: unknown, shards: Record<string, WriteTensor[]> = {}): Promise<string> {
      const d = path.join(dir, 'sharded');
      fs.mkdirSync(d, { recursive: true });
      for (const [f, ts] of Object.entries(shards)) await writeSafetensors(path.join(d, f), ts);
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index));
      return d;
    }
    const twoShards = () => ({
      'model-00001-of-00002.safetensors': [t('tok.weight', [11, 3]), t('blocks.0.w', [3, 3], 'BF16')],
      'model-00002-of-00002.safetensors': [t('blocks.1.w', [3, 3], 'BF16', 1), t('head.weight', [3, 11])],
    });
    const goodMap = {
      'tok.weight': 'model-00001-of-00002.safetensors',
      'blocks.0.w': 'model-00001-of-00002.safetensors',
      'blocks.1.w': 'model-00002-of-00002.safetensors',
      'head.weight': 'model-00002-of-00002.safetensors',
    };

    it('lists the tensors of every shard and reads each from its own file', async () => {
      const d = await sharded({ metadata: { total_size: 123 }, weight_map: goodMap }, twoShards());
      const ref = resolveModelRef(dir, 'sharded');
      assert.equal(ref.kind, 'sharded');
      const m = await ModelFiles.open(ref);
      try {
        assert.deepEqual(m.list.map((x) => x.name).sort(), Object.keys(goodMap).sort());
        assert.equal(path.basename(m.tensor('head.weight').file), 'model-00002-of-00002.safetensors');
        assert.deepEqual(await m.readF32('blocks.1.w'), ramp(9, 1, 1));
        assert.deepEqual(await m.readF32('tok.weight'), ramp(33));
        assert.equal(m.headers.size, 2);
        assert.ok(d);
      } finally {
        await m.close();
      }
    });

    it('a shard may hold tensors the index assigns elsewhere: the index decides', async () => {
      const shards = twoShards();
      shards['model-00002-of-00002.safetensors'].push(t('tok.weight', [11, 3], 'F32', 5));
      await sharded({ weight_map: goodMap }, shards);
      const m = await ModelFiles.open(resolveModelRef(dir, 'sharded'));
      assert.equal(path.basename(m.tensor('tok.weight').file), 'model-00001-of-00002.safetensors');
      await m.close();
    });

    const bad: [string, unknown, RegExp][] = [
      ['invalid JSON', '{"weight_map": ', /not valid JSON/],
      ['not an object', '[1]', /must hold a JSON object/],
      ['no weight_map', {}, /"weight_map" must be an object/],
      ['an empty weight_map', { weight_map: {} }, /lists no tensors/],
      ['a non-string shard', { weight_map: { a: 3 } }, /tensor "a": shard must be a file name, got 3/],
      ['a path escaping the folder', { weight_map: { a: '../evil.safetensors' } }, /tensor "a": shard "..\/evil.safetensors" leaves the index's folder/],
      ['a nested escape', { weight_map: { a: 'sub/../../evil.safetensors' } }, /leaves the index's folder/],
      ['an absolute path', { weight_map: { a: '/etc/passwd.safetensors' } }, /must be relative/],
      ['a backslash', { weight_map: { a: '..\\evil.safetensors' } }, /not a plain relative path/],
      ['a non-safetensors shard', { weight_map: { a: 'model.bin' } }, /is not a .safetensors file/],
      ['a bad total_size', { metadata: { total_size: -1 }, weight_map: { a: 'x.safetensors' } }, /total_size/],
      ['an empty tensor name', { weight_map: { '': 'x.safetensors' } }, /empty tensor name/],
    ];
    for (const [what, index, re] of bad) {
      it(`rejects an index with ${what}`, () => {
        assert.throws(() => parseShardIndex(typeof index === 'string' ? index : JSON.stringify(index), path.join(dir, 'model.safetensors.index.json')), (e: Error) => e instanceof ModelFilesError && re.test(e.message) && e.message.includes('model.safetensors.index.json'));
      });
    }

    it('rejects a missing shard, a tensor missing from its shard, and a symlink leaving the folder', async () => {
      const d = await sharded({ weight_map: { ...goodMap, 'extra.w': 'model-00003-of-00003.safetensors' } }, twoShards());
      await assert.rejects(() => openShardIndex(path.join(d, 'model.safetensors.index.json')), /shard "model-00003-of-00003.safetensors" does not exist \(it holds 1 tensors, e.g. "extra.w"\)/);
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...goodMap, 'extra.w': 'model-00001-of-00002.safetensors' } }));
      await assert.rejects(() => ModelFiles.open(resolveModelRef(dir, 'sharded')), /tensor "extra.w" is mapped to "model-00001-of-00002.safetensors" but that shard's header does not hold it/);
      await writeSafetensors(path.join(dir, 'outside.safetensors'), [t('o', [2])]);
      fs.symlinkSync(path.join(dir, 'outside.safetensors'), path.join(d, 'link.safetensors'));
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { o: 'link.safetensors' } }));
      await assert.rejects(() => openShardIndex(path.join(d, 'model.safetensors.index.json')), /is a link leaving the model's folder/);
    });

    it('a corrupt shard header is a SafetensorsError naming the shard', async () => {
      const d = await sharded({ weight_map: goodMap }, twoShards());
      fs.writeFileSync(path.join(d, 'model-00002-of-00002.safetensors'), Buffer.from([1, 2, 3]));
      await assert.rejects(() => openShardIndex(path.join(d, 'model.safetensors.index.json')), (e: Error) => e instanceof SafetensorsError && e.message.includes('model-00002-of-00002.safetensors'));
    });
  });

  describe('Basin runs, checkpoints and statistics', () => {
    async function run(steps: number[], statsSteps: number[] = []): Promise<RunFolder> {
      const r = await RunFolder.create(dir, 'expert', { config: {} });
      for (const s of steps) {
        await writeSafetensors(r.resolve(r.checkpointPath(s)), [t('blocks.0.w', [4, 3], 'F32', s), t('head.bias', [3])]);
        await r.addCheckpoint(s);
      }
      for (const s of statsSteps) {
        await writeSafetensors(r.resolve(r.statsPath(s)), [
          { name: 'blocks.0.w.v_hist', dtype: 'F32', shape: [4], data: ramp(4) },
          { name: 'blocks.0.w.v_row', dtype: 'F32', shape: [4], data: ramp(4) },
          { name: 'blocks.0.w.v_col', dtype: 'F32', shape: [3], data: ramp(3) },
          { name: 'head.bias.v_row', dtype: 'F32', shape: [3], data: ramp(3) },
        ]);
      }
      return r;
    }

    it('a run folder reads its latest checkpoint; a checkpoint file is recognised as one', async () => {
      const r = await run([10, 20]);
      const ref = resolveModelRef(dir, path.basename(r.dir));
      assert.equal(ref.kind, 'run');
      const m = await ModelFiles.open(ref);
      assert.equal(m.checkpoint?.step, 20);
      assert.deepEqual(await m.readF32('blocks.0.w'), ramp(12, 1, 20));
      await m.close();
      const cref = resolveModelRef(r.dir, 'checkpoints/step-10.safetensors');
      assert.equal(cref.kind, 'checkpoint');
      const c = await ModelFiles.open(cref);
      assert.deepEqual(c.checkpoint, { runDir: r.dir, step: 10, file: cref.path });
      await c.close();
    });

    it('a run without checkpoints is a clear error', async () => {
      const r = await run([]);
      await assert.rejects(() => ModelFiles.open(resolveModelRef(dir, path.basename(r.dir))), /the run has no checkpoint yet/);
    });

    it('statisticsFor finds v_row/v_col beside the checkpoint, or says how to get them', async () => {
      const r = await run([10, 20], [10, 20]);
      const s = await statisticsFor(resolveModelRef(dir, path.basename(r.dir)));
      assert.ok(s.stats, s.message);
      assert.equal(s.stats.step, 20);
      assert.equal(s.stats.file, r.resolve('stats/step-20.safetensors'));
      assert.deepEqual(Object.keys(s.stats.weights), ['blocks.0.w']); // head.bias has no v_col: left out
      assert.deepEqual(s.stats.weights['blocks.0.w'].vRow.shape, [4]);
      assert.deepEqual(s.stats.weights['blocks.0.w'].vCol.shape, [3]);
      const reader = new TensorFileReader();
      assert.deepEqual(await reader.readF32(s.stats.weights['blocks.0.w'].vCol), ramp(3));
      await reader.close();

      const r2 = await run([30], [10]);
      const s2 = await statisticsFor(resolveModelRef(dir, path.basename(r2.dir)));
      assert.equal(s2.stats, null);
      assert.match(s2.message!, /no statistics beside this checkpoint.*statistics for steps 10, not for the checkpoint's step 30.*statsEvery > 0/);

      await writeSafetensors(path.join(dir, 'plain.safetensors'), [t('w', [2])]);
      const s3 = await statisticsFor(resolveModelRef(dir, 'plain.safetensors'));
      assert.equal(s3.stats, null);
      assert.match(s3.message!, /not a Basin checkpoint.*statsEvery > 0/);
    });

    it('statisticsFor refuses statistics that are zero everywhere (SGD keeps no second moment), naming the optimizer', async () => {
      // A curvature merge of such an expert would keep nothing of it and say nothing.
      const make = async (name: string, optimizer: string | null, rowSums: Float32Array) => {
        const r = await RunFolder.create(dir, name, { config: optimizer ? { train: { optimizer: { type: optimizer } } } : {} });
        await writeSafetensors(r.resolve(r.checkpointPath(5)), [t('blocks.0.w', [4, 3]), t('blocks.1.w', [2, 3])]);
        await r.addCheckpoint(5);
        await writeSafetensors(r.resolve(r.statsPath(5)), [
          { name: 'blocks.0.w.v_row', dtype: 'F32', shape: [4], data: new Float32Array(4) },
          { name: 'blocks.0.w.v_col', dtype: 'F32', shape: [3], data: new Float32Array(3) },
          { name: 'blocks.1.w.v_row', dtype: 'F32', shape: [2], data: rowSums },
          { name: 'blocks.1.w.v_col', dtype: 'F32', shape: [3], data: new Float32Array(3) },
        ]);
        return statisticsFor(resolveModelRef(dir, path.basename(r.dir)));
      };
      const sgd = await make('sgd', 'sgd', new Float32Array(2));
      assert.equal(sgd.stats, null);
      assert.match(sgd.message!, /stats\/step-5\.safetensors: every second-moment statistic \(v_row \/ v_col\) is zero \(the run was trained with sgd, which keeps no second moment\).*AdamW, Adafactor or mao/);
      const unknown = await make('plain', null, new Float32Array(2));
      assert.match(unknown.message!, /is zero, so the statistics rank no parameter/);
      // One weight with a non-zero row sum (the second one read) is enough.
      const some = await make('adamw', 'adamw', Float32Array.from([0, 1e-9]));
      assert.ok(some.stats, some.message);
    });
  });
});
