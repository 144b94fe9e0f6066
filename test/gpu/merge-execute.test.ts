// The streaming merge executor end to end: a mergekit-style YAML → plan → GPU merge → safetensors on disk,
// checked against the CPU reference tensor by tensor; BF16/F16 inputs decoded on the GPU; sharded output with an
// index; never over an existing output; a NaN named with its model; a preview writes nothing; curvature from the
// statistics of real fine-tuned Basin runs.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadMergeConfig, resolveModelRef } from '../../src/files/merge/config';
import { planMerge } from '../../src/files/merge/plan';
import { readSafetensorsHeader, readTensor, readTensorBytes, writeSafetensors } from '../../src/files/safetensors';
import { executeMerge, MergeBusyError, MergeCancelledError, MergeOutputExistsError, rowSample } from '../../src/engine/merge/execute';
import { TensorFileReader, type TensorRef } from '../../src/files/merge/model-files';
import { chunkRowsFor } from '../../src/engine/merge/tensor-merge';
import type { MergeMethodName } from '../../src/files/registry/merge-methods';
import { cpuMergeTensor } from '../../src/engine/cpu/merge';
import { decodeFloatBytes, encodeHalfWords } from '../../src/engine/ops/convert';
import { fromArray } from '../../src/engine/tensor/tensor';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../../src/files/f16';
import { loadConfig } from '../../src/files/config/load';
import { train } from '../../src/engine/train/trainer';
import { assertClose, randn, readAllTensors, runtime } from './helpers';

const SHAPES: Record<string, number[]> = {
  'embed.weight': [11, 6],
  'blocks.0.attn.weight': [6, 6],
  'blocks.0.mlp.weight': [13, 6],
  'blocks.0.mlp.bias': [13],
  'blocks.1.attn.weight': [6, 6],
  'blocks.1.mlp.weight': [13, 6],
  'blocks.1.mlp.bias': [13],
  'norm.weight': [6],
};

async function writeModel(file: string, seed: number, dtype: 'F32' | 'F16' | 'BF16', base?: Map<string, Float32Array>, poison?: string): Promise<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  let s = seed;
  for (const [name, shape] of Object.entries(SHAPES)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = randn(n, s++, base ? 0.1 : 1);
    if (base) for (let i = 0; i < n; i++) v[i] += base.get(name)![i];
    if (name === poison) v[3] = NaN;
    // The values the file really holds (rounded to its dtype): the reference must read the same.
    if (dtype !== 'F32') {
      const h = new Uint16Array(n);
      (dtype === 'F16' ? encodeF16 : encodeBf16)(v, h);
      (dtype === 'F16' ? decodeF16 : decodeBf16)(h, v);
    }
    values.set(name, v);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeSafetensors(file, [...values].map(([name, data]) => ({ name, dtype, shape: SHAPES[name], data })));
  return values;
}


describe('merge executor (streamed, on the GPU)', function () {
  this.timeout(240_000);
  let dir = '';
  let base: Map<string, Float32Array>;
  let e1: Map<string, Float32Array>;
  let e2: Map<string, Float32Array>;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-'));
    base = await writeModel(path.join(dir, 'base/model.safetensors'), 1, 'F32');
    e1 = await writeModel(path.join(dir, 'e1/model.safetensors'), 100, 'BF16', base);
    e2 = await writeModel(path.join(dir, 'e2.safetensors'), 200, 'F16', base);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cfg = (name: string, text: string) => {
    const f = path.join(dir, `${name}.merge.yaml`);
    fs.writeFileSync(f, text);
    return loadMergeConfig(f);
  };

  it('decodes F16 and BF16 bytes on the GPU exactly like the host decoder', async () => {
    const rt = await runtime();
    for (const n of [1, 2, 7, 1000]) {
      const v = randn(n, n, 3);
      v[0] = n > 1 ? 65504 : -0;
      for (const dt of ['F16', 'BF16'] as const) {
        const h = new Uint16Array(n);
        (dt === 'F16' ? encodeF16 : encodeBf16)(v, h);
        const want = new Float32Array(n);
        (dt === 'F16' ? decodeF16 : decodeBf16)(h, want);
        const t = decodeFloatBytes(rt, new Uint8Array(h.buffer), dt, [n]);
        assert.deepEqual(await t.toFloat32(), want, `${dt} n=${n}`);
        t.dispose();
      }
    }
  });

  it('encodes f32 to F16 and BF16 words on the GPU bit for bit like the host encoder (specials, ties, odd counts)', async () => {
    const rt = await runtime();
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    const bits = (b: number) => ((u[0] = b >>> 0), f[0]);
    // Values where rounding is easy to get wrong: ties to even in both formats, f16 subnormals and its overflow
    // edge, bf16's carry into Inf, NaNs with payloads (quiet, sign kept), ±0, ±Inf, f32 subnormals.
    const specials = [
      0, -0, 1, -1, Infinity, -Infinity, NaN, bits(0x7f800001), bits(0xffc12345), bits(0x7f7fffff), bits(0xff7fffff),
      65504, 65519.99, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -15 * 1.5, bits(0x00000001), bits(0x807fffff),
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, bits(0x3f808000), bits(0x3f818000), bits(0x3f80ffff), bits(0x477fe000),
    ];
    // 1, 2, primes, around a workgroup's 256 words (512 elements), and large (64 MiB of f32, 32,768 workgroups).
    for (const n of [1, 2, 3, 31, 511, 512, 513, 10007, (1 << 24) + 3]) {
      const v = n > 100_000 ? new Float32Array(n).map((_, i) => bits(Math.imul(i, 2654435761) ^ (i >>> 7))) : randn(n, n, 3);
      for (let i = 0; i < Math.min(n, specials.length); i++) v[(i * 7919) % n] = specials[i];
      const t = fromArray(rt, v, [n]);
      for (const dt of ['F16', 'BF16'] as const) {
        const want = new Uint16Array(n);
        (dt === 'F16' ? encodeF16 : encodeBf16)(v, want);
        const w = encodeHalfWords(t, dt);
        assert.deepEqual(w.shape, [Math.ceil(n / 2)]);
        const got = new Uint16Array(((await w.toArray()) as Uint32Array).buffer);
        if (n % 2) assert.equal(got[n], 0, `${dt} n=${n}: the last word's high half is zero`);
        const bad = want.findIndex((x, i) => got[i] !== x);
        assert.equal(bad, -1, bad < 0 ? '' : `${dt} n=${n}: element ${bad} (f32 bits 0x${new Uint32Array(v.buffer)[bad].toString(16)}) → 0x${got[bad].toString(16)}, host 0x${want[bad].toString(16)}`);
        w.dispose();
      }
      t.dispose();
    }
    assert.throws(() => encodeHalfWords(fromArray(rt, new Int32Array(2), [2], 'i32'), 'BF16'), /expected an f32 tensor, got i32/);
  });

  it('ties from a mergekit YAML: every tensor equals the CPU reference; report and output dtype as configured', async () => {
    const rt = await runtime();
    const c = cfg(
      'ties',
      `merge_method: ties
base_model: ./base
models:
  - model: ./e1
    parameters: { density: 0.5, weight: 0.6 }
  - model: ./e2.safetensors
    parameters:
      density: [0.3, 0.7]
      weight: [{ filter: attn, value: 0.7 }, { value: 0.4 }]
parameters: { lambda: 0.9 }
out_dtype: float32
tokenizer_source: base
`,
    );
    assert.ok(c.warnings.some((w) => w.field === 'tokenizer_source' && w.line === 12), 'unused keys are named in a warning, with their line');
    const plan = await planMerge(c);
    const out = path.join(dir, 'out-ties');
    const report = await executeMerge({ rt, plan, outDir: out });
    const merged = await readAllTensors(path.join(out, 'model.safetensors'));
    assert.equal(merged.size, Object.keys(SHAPES).length);
    for (const task of plan.tasks) {
      const ref = cpuMergeTensor('ties', {
        name: task.output,
        shape: task.shape,
        base: base.get(task.output)!,
        experts: [e1.get(task.output)!, e2.get(task.output)!],
        perModel: task.experts.map((e) => e.params as Record<string, number | boolean>),
        global: task.params as Record<string, number | boolean>,
      });
      assertClose(merged.get(task.output)!, ref.merged, { atol: 1e-5, rtol: 1e-5, what: task.output });
    }
    const rep = JSON.parse(fs.readFileSync(path.join(out, 'merge-report.json'), 'utf8'));
    assert.equal(rep.tensors.length, plan.tasks.length);
    assert.ok(report.tensors.every((t) => t.keptFraction.length === 2 && t.signConflict >= 0 && t.signConflict <= 1));
    assert.ok(report.bytesRead > 0 && report.bytesWritten > 0);
  });

  it('a BF16 or F16 output is narrowed on the GPU: the bits of the f32 output encoded on the host', async () => {
    const rt = await runtime();
    const yaml = (dt: string) => `merge_method: ties\nbase_model: ./base\nmodels:\n  - model: ./e1\n    parameters: { density: 0.5, weight: 0.6 }\n  - model: ./e2.safetensors\n    parameters: { density: 0.7, weight: 0.4 }\nout_dtype: ${dt}\n`;
    const wide = path.join(dir, 'out-ties-f32');
    const r32 = await executeMerge({ rt, plan: await planMerge(cfg('ties-f32', yaml('float32'))), outDir: wide });
    const f32 = await readAllTensors(path.join(wide, 'model.safetensors'));
    const words = [...f32.values()].reduce((a, v) => a + Math.ceil(v.length / 2), 0);
    assert.equal(r32.timing!.readbackBytes, 4 * [...f32.values()].reduce((a, v) => a + v.length, 0));
    for (const [dt, st, enc] of [['bfloat16', 'BF16', encodeBf16], ['float16', 'F16', encodeF16]] as const) {
      const out = path.join(dir, `out-ties-${st}`);
      const r = await executeMerge({ rt, plan: await planMerge(cfg(`ties-${st}`, yaml(dt))), outDir: out });
      assert.equal(r.timing!.readbackBytes, 4 * words, `${st}: two values per word come back`);
      const h = await readSafetensorsHeader(path.join(out, 'model.safetensors'));
      for (const [name, v] of f32) {
        assert.equal(h.tensors[name].dtype, st);
        const want = new Uint16Array(v.length);
        enc(v, want);
        const got = new Uint16Array((await readTensorBytes(path.join(out, 'model.safetensors'), name, h)).slice().buffer);
        assert.deepEqual(got, want, `${st} ${name}`);
      }
    }
  });

  it('writes shards with an index when the output exceeds maxShardBytes; refuses to overwrite without force', async () => {
    const rt = await runtime();
    const c = cfg('lin', `merge_method: linear\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n    parameters: { weight: 3 }\nout_dtype: bfloat16\n`);
    const plan = await planMerge(c);
    const out = path.join(dir, 'out-lin');
    await executeMerge({ rt, plan, outDir: out, maxShardBytes: 200 });
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const shards = new Set(Object.values(index.weight_map) as string[]);
    assert.ok(shards.size > 1, 'several shards');
    for (const [name, shard] of Object.entries(index.weight_map) as [string, string][]) {
      const h = await readSafetensorsHeader(path.join(out, shard));
      assert.equal(h.tensors[name].dtype, 'BF16');
      const got = (await readTensor(path.join(out, shard), name, h)).data as Float32Array;
      const want = e1.get(name)!.map((x, i) => (x + 3 * e2.get(name)![i]) / 4);
      assertClose(got, want, { atol: 1e-2, rtol: 1e-2, what: name }); // bf16 output
    }
    await assert.rejects(executeMerge({ rt, plan, outDir: out, maxShardBytes: 200 }), MergeOutputExistsError);
    await executeMerge({ rt, plan, outDir: out, maxShardBytes: 200, force: true });
    // Forced into one file: the shards and the index of the model it replaces go (a reader would load them).
    await executeMerge({ rt, plan, outDir: out, force: true });
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.safetensors') || f.endsWith('.json')).sort(), ['merge-report.json', 'model.safetensors']);
    // A stray shard of another merge in a folder is refused without force, like the files the merge writes.
    fs.copyFileSync(path.join(out, 'model.safetensors'), path.join(out, 'model-00001-of-00009.safetensors'));
    fs.rmSync(path.join(out, 'model.safetensors'));
    fs.rmSync(path.join(out, 'merge-report.json'));
    await assert.rejects(executeMerge({ rt, plan, outDir: out }), /model-00001-of-00009\.safetensors already exists/);
  });

  it('a merge cancelled midway writes nothing and leaves a model it would have replaced untouched', async () => {
    const rt = await runtime();
    const plan = await planMerge(cfg('cancel', `merge_method: linear\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n`));
    assert.ok(plan.tasks.length >= 3, 'several tensors, so the cancel lands between them');
    const cancelAfterFirst = () => {
      const ac = new AbortController();
      return { signal: ac.signal, onProgress: (p: { done: number }) => (p.done >= 1 ? ac.abort() : undefined) };
    };
    // A fresh folder: nothing but the folder itself is left (no model, no report, no temporary file).
    const fresh = path.join(dir, 'out-cancel');
    await assert.rejects(executeMerge({ rt, plan, outDir: fresh, ...cancelAfterFirst() }), MergeCancelledError);
    assert.deepEqual(fs.existsSync(fresh) ? fs.readdirSync(fresh) : [], []);
    // Over a finished merge with force: the old model and report stay as they were, byte for byte.
    const done = path.join(dir, 'out-cancel-over');
    await executeMerge({ rt, plan, outDir: done });
    const before = Object.fromEntries(fs.readdirSync(done).map((f) => [f, fs.readFileSync(path.join(done, f))]));
    await assert.rejects(executeMerge({ rt, plan, outDir: done, force: true, ...cancelAfterFirst() }), MergeCancelledError);
    assert.deepEqual(fs.readdirSync(done).sort(), Object.keys(before).sort());
    for (const [f, bytes] of Object.entries(before)) assert.ok(fs.readFileSync(path.join(done, f)).equals(bytes), `${f} unchanged`);
  });

  it('a sharded merge that fails or is cancelled after its first shards leaves no shard behind, so a rerun needs no force', async () => {
    const rt = await runtime();
    const plan = await planMerge(cfg('cancel-shards', `merge_method: linear\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n`));
    const ac = new AbortController();
    const out = path.join(dir, 'out-cancel-shards');
    // Shards of ~one tensor each; cancelled once three tensors are done (several shards complete by then).
    await assert.rejects(
      executeMerge({ rt, plan, outDir: out, maxShardBytes: 200, signal: ac.signal, onProgress: (p) => (p.done >= 3 ? ac.abort() : undefined) }),
      MergeCancelledError,
    );
    assert.deepEqual(fs.existsSync(out) ? fs.readdirSync(out) : [], [], 'nothing left: no shard, no work folder');
    // A failure (a NaN in the last tensor) over a sharded model it was to replace: that model stays whole.
    await executeMerge({ rt, plan, outDir: out, maxShardBytes: 200 }); // no --force needed: nothing was left
    const before = Object.fromEntries(fs.readdirSync(out).map((f) => [f, fs.readFileSync(path.join(out, f))]));
    assert.ok(Object.keys(before).length > 3, 'shards, index and report');
    await writeModel(path.join(dir, 'bad-last.safetensors'), 300, 'F32', base, plan.tasks[plan.tasks.length - 1].output);
    const bad = await planMerge(cfg('bad-shards', `merge_method: linear\nmodels:\n  - model: ./e1\n  - model: ./bad-last.safetensors\n`));
    await assert.rejects(executeMerge({ rt, plan: bad, outDir: out, maxShardBytes: 200, force: true }), /non-finite/);
    assert.deepEqual(fs.readdirSync(out).sort(), Object.keys(before).sort());
    for (const [f, bytes] of Object.entries(before)) assert.ok(fs.readFileSync(path.join(out, f)).equals(bytes), `${f} unchanged`);
    // Work folders: a killed merge's (its process gone) is removed by the next merge there; a live merge's, or one
    // of another machine's (whose process cannot be checked), stops the merge and is left alone.
    const host = os.hostname().replace(/[^A-Za-z0-9_.]/g, '_') || 'host';
    const work = (owner: string) => {
      const d = path.join(out, `.basin-merge-${owner}-Ab12cd`);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'model-00001-of-00002.safetensors'), 'partial');
      return d;
    };
    const dead = work(`${host}-999999999`);
    const live = work(`${host}-${process.ppid}`); // a live process (this one's parent); this process's own folders are its merges'
    await assert.rejects(executeMerge({ rt, plan, outDir: out, maxShardBytes: 200, force: true }), (e: unknown) => e instanceof MergeBusyError && e.workDir === live && /being written by another merge \(process \d+; .*remove that folder if the merge is gone/.test((e as Error).message));
    assert.ok(fs.existsSync(live), 'a live merge’s work folder is left alone');
    fs.rmSync(live, { recursive: true });
    const foreign = work('other-machine-42');
    await assert.rejects(executeMerge({ rt, plan, outDir: out, maxShardBytes: 200, force: true }), (e: unknown) => e instanceof MergeBusyError && /process 42 on other-machine/.test((e as Error).message));
    fs.rmSync(foreign, { recursive: true });
    await executeMerge({ rt, plan, outDir: out, maxShardBytes: 200, force: true });
    assert.ok(!fs.existsSync(dead), 'the dead merge’s work folder is gone');
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('.basin-merge-')), [], 'no work folder left');
    // A merge killed after its commit record, while moving its files in: the next merge there finishes it first
    // (merge-commit.ts), so the folder holds that model whole, and then will not write over it without --force.
    const killed = path.join(out, `.basin-merge-${host}-999999999-Ef56gh`);
    fs.mkdirSync(killed);
    fs.writeFileSync(path.join(killed, 'model.safetensors'), 'the killed merge’s model');
    fs.writeFileSync(path.join(killed, 'merge-report.json'), '{}');
    fs.writeFileSync(path.join(killed, 'commit.json'), JSON.stringify({ format: 'basin-merge-commit-1', files: ['model.safetensors'] }));
    await assert.rejects(executeMerge({ rt, plan, outDir: out, maxShardBytes: 200 }), MergeOutputExistsError);
    assert.deepEqual(fs.readdirSync(out).sort(), ['merge-report.json', 'model.safetensors'], 'the killed merge’s files, the replaced shards gone');
    assert.equal(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'the killed merge’s model');
    // A merge that fails while moving its files in (here a folder where its file goes: the rename is refused) is
    // complete in its work folder, and says so; once the obstacle is gone, the next read finishes it, in this
    // very process (its folder is no longer a running merge's).
    const one = await planMerge(cfg('one-file', `merge_method: linear\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n`));
    fs.rmSync(path.join(out, 'model.safetensors'));
    fs.mkdirSync(path.join(out, 'model.safetensors'));
    fs.writeFileSync(path.join(out, 'model.safetensors', 'in the way'), '');
    await assert.rejects(executeMerge({ rt, plan: one, outDir: out, force: true }), /the merge is complete in .*\.basin-merge-.*; the next merge or read of .* moves its files into place/);
    const pending = fs.readdirSync(out).filter((f) => f.startsWith('.basin-merge-'));
    assert.equal(pending.length, 1, 'the committed work folder is kept');
    assert.ok(fs.existsSync(path.join(out, pending[0], 'commit.json')));
    fs.rmSync(path.join(out, 'model.safetensors'), { recursive: true });
    assert.equal(resolveModelRef(dir, out).kind, 'folder');
    assert.deepEqual(fs.readdirSync(out).sort(), ['merge-report.json', 'model.safetensors']);
    assert.equal((await readSafetensorsHeader(path.join(out, 'model.safetensors'))).list.length, one.tasks.length);
  });

  it("copies the base's non-float tensors byte for byte (as mergekit), one file or the last shard", async () => {
    const rt = await runtime();
    // The base with an I64 position_ids and a BOOL mask beside its float weights; the experts have none.
    const ids = new Uint8Array(new BigInt64Array([0n, 1n, 2n, 3n, 2n ** 40n]).buffer);
    const mask = new Uint8Array([1, 1, 0]);
    const file = path.join(dir, 'base-ids/model.safetensors');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writeSafetensors(file, [
      ...[...base].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: SHAPES[name], data })),
      { name: 'position_ids', dtype: 'I64', shape: [1, 5], raw: ids },
      { name: 'attn.mask', dtype: 'BOOL', shape: [3], raw: mask },
    ]);
    const plan = await planMerge(cfg('copies', `merge_method: task_arithmetic\nbase_model: ./base-ids\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n`));
    assert.deepEqual(plan.copies.map((c) => [c.name, c.dtype]), [['position_ids', 'I64'], ['attn.mask', 'BOOL']]);
    assert.ok(plan.warnings.some((w) => /copied from model "\.\/base-ids" as they are \(not float tensors\): position_ids \(I64\), attn\.mask \(BOOL\)/.test(w)), plan.warnings.join('\n'));
    for (const [out, maxShardBytes] of [[path.join(dir, 'out-copies'), undefined], [path.join(dir, 'out-copies-sharded'), 200]] as const) {
      await executeMerge({ rt, plan, outDir: out, maxShardBytes });
      const index = maxShardBytes ? JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8')).weight_map : null;
      const at = (name: string) => path.join(out, index ? index[name] : 'model.safetensors');
      if (index) assert.equal(index.position_ids, Object.values(index as Record<string, string>).sort().pop(), 'in the last shard');
      assert.deepEqual(await readTensorBytes(at('position_ids'), 'position_ids'), ids);
      assert.deepEqual(await readTensorBytes(at('attn.mask'), 'attn.mask'), mask);
      assert.equal((await readSafetensorsHeader(at('attn.mask'))).tensors['attn.mask'].dtype, 'BOOL');
    }
  });

  it('a NaN in an input tensor is named with its model; a preview writes nothing', async () => {
    const rt = await runtime();
    await writeModel(path.join(dir, 'bad.safetensors'), 300, 'F32', base, 'blocks.1.mlp.weight');
    const c = cfg('nan', `merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - model: ./e1\n  - model: ./bad.safetensors\n`);
    const plan = await planMerge(c);
    const out = path.join(dir, 'out-nan');
    await assert.rejects(executeMerge({ rt, plan, outDir: out }), /blocks\.1\.mlp\.weight.*non-finite.*"\.\/bad\.safetensors"/s);
    assert.ok(!fs.existsSync(path.join(out, 'model.safetensors')), 'no output file from a failed merge');
    const ok = await planMerge(cfg('prev', `merge_method: ties\nbase_model: ./base\nmodels:\n  - model: ./e1\n  - model: ./e2.safetensors\n`));
    const t0 = performance.now();
    const rep = await executeMerge({ rt, plan: ok, preview: { tensors: 4, rows: 4 } });
    assert.ok(performance.now() - t0 < 2000, 'a preview answers in under 2 s');
    assert.equal(rep.tensors.length, 4);
    assert.equal(rep.output, null);
  });

  it('curvature merges real fine-tunes from their training statistics (no data pass)', async () => {
    const rt = await runtime();
    const yaml = (name: string, extra: string, seed: number) => `name: ${name}
seed: ${seed}
model: { type: mlp, inputs: 64, hidden: [512], classes: 4 }
data: { type: synthetic-classification, samples: 300, seed: ${seed} }
${extra}
train: { steps: 12, batchSize: 32, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 0, checkpointEvery: 0, statsEvery: 6, logEvery: 6 }
`;
    const run = async (name: string, extra: string, seed: number) => {
      const f = path.join(dir, `${name}.basin.yaml`);
      fs.writeFileSync(f, yaml(name, extra, seed));
      return (await train({ rt, config: loadConfig(f).config, configPath: f, outputDir: path.join(dir, 'runs') })).runDir;
    };
    const b = await run('cbase', '', 1);
    const x = await run('cx', `init: { from: ${JSON.stringify(b)} }`, 2);
    const y = await run('cy', `init: { from: ${JSON.stringify(b)} }`, 3);
    const c = cfg('curv', `merge_method: curvature\nbase_model: ${JSON.stringify(b)}\nmodels:\n  - model: ${JSON.stringify(x)}\n  - model: ${JSON.stringify(y)}\nparameters: { density: 0.4 }\n`);
    const plan = await planMerge(c);
    assert.ok(plan.tasks.some((t) => t.experts.every((e) => e.stats)), 'the plan found v_row / v_col beside the checkpoints');
    const out = path.join(dir, 'out-curv');
    const report = await executeMerge({ rt, plan, outDir: out });
    assert.equal(report.saliency.length, 2);
    assert.ok(report.saliency.every((s) => s.total > 0));
    const merged = await readAllTensors(path.join(out, 'model.safetensors'));
    assert.deepEqual([...merged.keys()].sort(), ['layers.0.bias', 'layers.0.weight', 'layers.1.bias', 'layers.1.weight']);
  });
});

describe('merge executor: the data pass of fisher and regmean', function () {
  this.timeout(300_000);
  let dir = '';
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('fisher and regmean run their pass over each expert’s own task data; a non-Basin model is refused with why', async () => {
    const rt = await runtime();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-data-'));
    const yaml = (name: string, extra: string, seed: number) => `name: ${name}
seed: ${seed}
model: { type: mlp, inputs: 64, hidden: [512], classes: 4 }
data: { type: synthetic-classification, samples: 300, seed: ${seed} }
${extra}
train: { steps: 10, batchSize: 32, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: 5 }
`;
    const run = async (name: string, extra: string, seed: number) => {
      const f = path.join(dir, `${name}.basin.yaml`);
      fs.writeFileSync(f, yaml(name, extra, seed));
      return (await train({ rt, config: loadConfig(f).config, configPath: f, outputDir: path.join(dir, 'runs') })).runDir;
    };
    const b = await run('b', '', 1);
    const x = await run('x', `init: { from: ${JSON.stringify(b)} }`, 2);
    const y = await run('y', `init: { from: ${JSON.stringify(b)} }`, 3);
    for (const method of ['fisher', 'regmean']) {
      const f = path.join(dir, `${method}.merge.yaml`);
      fs.writeFileSync(f, `merge_method: ${method}\nmodels:\n  - model: ${JSON.stringify(x)}\n  - model: ${JSON.stringify(y)}\nparameters: { batches: 3 }\n`);
      const plan = await planMerge(loadMergeConfig(f));
      const out = path.join(dir, `out-${method}`);
      await executeMerge({ rt, plan, outDir: out });
      const merged = await readAllTensors(path.join(out, 'model.safetensors'));
      const xs = await readAllTensors(path.join(x, 'checkpoints', fs.readdirSync(path.join(x, 'checkpoints')).find((n) => /^step-\d+\.safetensors$/.test(n))!));
      const ys = await readAllTensors(path.join(y, 'checkpoints', fs.readdirSync(path.join(y, 'checkpoints')).find((n) => /^step-\d+\.safetensors$/.test(n))!));
      for (const [name, m] of merged) {
        // Each merged entry lies between the two experts' (a weighted mean: Fisher per entry; RegMean per layer
        // is not elementwise, so only finiteness and that it differs from the plain average there).
        assert.ok(m.every(Number.isFinite), `${method} ${name} finite`);
        if (method === 'fisher') {
          const a = xs.get(name)!;
          const c = ys.get(name)!;
          m.forEach((v, i) => assert.ok(v >= Math.min(a[i], c[i]) - 1e-5 && v <= Math.max(a[i], c[i]) + 1e-5, `${name}[${i}] between the experts`));
        }
      }
      if (method === 'regmean') {
        const w = merged.get('layers.0.weight')!;
        const avg = xs.get('layers.0.weight')!.map((v, i) => (v + ys.get('layers.0.weight')![i]) / 2);
        assert.ok(w.some((v, i) => Math.abs(v - avg[i]) > 1e-4), 'regmean is not the plain average on a Linear weight');
      }
      // In row chunks (layers.0.weight [512, 64] in chunks of 256 rows): the same values, regmean's Gram
      // matrices read whole for every chunk.
      const chunkBytes = 256 * 64 * 4;
      assert.ok(chunkRowsFor(rt, method as MergeMethodName, [512, 64], chunkBytes) > 0, 'layers.0.weight is merged in chunks');
      await executeMerge({ rt, plan, outDir: `${out}-chunked`, chunkBytes });
      const chunked = await readAllTensors(path.join(`${out}-chunked`, 'model.safetensors'));
      for (const [name, m] of merged) assert.deepEqual(chunked.get(name), m, `${method} ${name}: chunked = whole`);
    }
    const g = path.join(dir, 'bad.merge.yaml');
    const plain = path.join(dir, 'plain.safetensors');
    fs.copyFileSync(path.join(x, 'checkpoints', fs.readdirSync(path.join(x, 'checkpoints')).find((n) => /^step-\d+\.safetensors$/.test(n))!), plain);
    fs.writeFileSync(g, `merge_method: fisher\nmodels:\n  - model: ${JSON.stringify(x)}\n  - model: ./plain.safetensors\n`);
    // Refused by the plan, before any work, naming the model and its line.
    await assert.rejects(planMerge(loadMergeConfig(g)), /model "\.\/plain\.safetensors" \(.*bad\.merge\.yaml:4\): merge_method fisher needs a pass over each model's own training data.*not a Basin run or checkpoint \(use the curvature method/);
  });

  it('a preview samples rows in blocks spread over the tensor (first and last rows included), read at their offsets', async () => {
    const R = 101; // a prime: blocks of unequal size
    const C = 3;
    const data = Float32Array.from({ length: R * C }, (_, i) => i);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'basin-rows-')), 'rows.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [R, C], data }]);
    const h = await readSafetensorsHeader(file);
    const ref: TensorRef = { name: 'w', dtype: 'F32', shape: [R, C], numel: R * C, file, byteOffset: h.tensors.w.byteOffset, byteLength: h.tensors.w.byteLength };
    const reader = new TensorFileReader();
    try {
      for (const rows of [1, 7, 8, 20, 100]) {
        const s = rowSample(ref, rows);
        assert.deepEqual(s.shape, [rows, C]);
        const got = new Float32Array((await reader.readBytes(s)).slice().buffer);
        const picked = Array.from({ length: rows }, (_, i) => got[i * C] / C);
        // Whole rows, in increasing order, no row twice.
        for (let i = 0; i < rows; i++) assert.deepEqual(Array.from(got.subarray(i * C, i * C + C)), [0, 1, 2].map((c) => picked[i] * C + c));
        assert.ok(picked.every((r, i) => i === 0 || r > picked[i - 1]), `rows ${picked}`);
        assert.equal(picked[0], 0, 'the first block starts at row 0');
        if (rows >= 8) {
          assert.equal(picked[rows - 1], R - 1, `the last block ends at the last row (rows ${rows}: ${picked})`);
          assert.ok(picked.filter((r) => r >= R / 2).length >= 0.4 * rows, `spread, not a prefix: ${picked}`);
        }
      }
      assert.equal(rowSample(ref, R), ref, 'the whole tensor when the sample is not smaller');
    } finally {
      await reader.close();
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});
