import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMergeConfig } from '../../src/files/merge/config';
import { TensorFileReader } from '../../src/files/merge/model-files';
import { MergePlanError, outputShards, planMerge, type MergePlan, type MergeTask } from '../../src/files/merge/plan';
import { RunFolder } from '../../src/files/run-record';
import { readSafetensorsHeader, writeSafetensors, type WriteTensor } from '../../src/files/safetensors';

// A small Basin-like transformer: V = 7 (prime), d = 3, T = 5, `layers` blocks.
function transformer(opts: { layers?: number; d?: number; dtype?: 'F32' | 'F16' | 'BF16'; seed?: number; drop?: string[]; extra?: string[]; reshape?: Record<string, number[]> } = {}): WriteTensor[] {
  const { layers = 3, d = 3, dtype = 'F32', seed = 0 } = opts;
  const shapes: [string, number[]][] = [
    ['tok.weight', [7, d]],
    ['pos.weight', [5, d]],
  ];
  for (let i = 0; i < layers; i++) shapes.push([`blocks.${i}.attn.q.weight`, [d, d]], [`blocks.${i}.ln1.bias`, [d]]);
  shapes.push(['ln_f.weight', [d]], ['head.weight', [7, d]]);
  for (const e of opts.extra ?? []) shapes.push([e, [2]]);
  return shapes
    .filter(([n]) => !(opts.drop ?? []).includes(n))
    .map(([name, shape]) => {
      const s = opts.reshape?.[name] ?? shape;
      const n = s.reduce((a, b) => a * b, 1);
      return { name, dtype, shape: s, data: Float32Array.from({ length: n }, (_, i) => seed + i / 8) };
    });
}

describe('merge plan (src/files/merge/plan.ts)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-plan-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function write(name: string, tensors: WriteTensor[]): Promise<void> {
    await writeSafetensors(path.join(dir, name), tensors);
  }
  function config(text: string) {
    return parseMergeConfig(text, path.join(dir, 'm.merge.yaml'));
  }
  async function planErrors(text: string): Promise<string[]> {
    try {
      await planMerge(config(text));
    } catch (e) {
      assert.ok(e instanceof MergePlanError, String(e));
      return e.problems.length ? e.problems : [e.message];
    }
    return assert.fail('expected a MergePlanError');
  }
  const names = (p: MergePlan) => p.tasks.map((t) => t.output);

  it('plans a TIES merge: pre, layers, post; base apart; parameters per tensor; refs to the bytes', async () => {
    await write('base.safetensors', transformer({ seed: 0 }));
    await write('a.safetensors', transformer({ seed: 1 }));
    await write('b.safetensors', transformer({ seed: 2, dtype: 'BF16' }));
    const plan = await planMerge(
      config(
        [
          'merge_method: ties',
          'base_model: base.safetensors',
          'models:',
          '  - model: base.safetensors',
          '  - model: a.safetensors',
          '    parameters: {density: [0.3, 0.7], weight: [{filter: attn, value: 0.7}, {value: 0.4}]}',
          '  - model: b.safetensors',
          'parameters: {lambda: [1, 2], density: 0.9}',
        ].join('\n'),
      ),
    );
    assert.deepEqual(names(plan), [
      'tok.weight',
      'pos.weight',
      'blocks.0.attn.q.weight',
      'blocks.0.ln1.bias',
      'blocks.1.attn.q.weight',
      'blocks.1.ln1.bias',
      'blocks.2.attn.q.weight',
      'blocks.2.ln1.bias',
      'ln_f.weight',
      'head.weight',
    ]);
    assert.deepEqual(plan.models.map((m) => [m.ref.written, m.layers]), [
      ['base.safetensors', 3],
      ['a.safetensors', 3],
      ['b.safetensors', 3],
    ]);
    const byName = (n: string) => plan.tasks.find((t) => t.output === n)!;
    const q1 = byName('blocks.1.attn.q.weight');
    assert.equal(q1.base?.model, 0);
    assert.deepEqual(q1.experts.map((e) => e.model), [1, 2]);
    assert.equal(q1.layer, 1);
    assert.equal(q1.t, 0.5);
    assert.deepEqual(q1.experts[0].params, { weight: 0.7, density: 0.5 }); // gradient at t = 0.5; filter hit
    assert.deepEqual(q1.experts[1].params, { weight: 1, density: 0.9 }); // the global density
    assert.deepEqual(q1.params, { lambda: 1.5, normalize: true });
    const bias0 = byName('blocks.0.ln1.bias');
    assert.deepEqual(bias0.experts[0].params, { weight: 0.4, density: 0.3 }); // filter miss → fallback entry
    // tensors outside the layers: embeddings at t = 0, final norm and head at t = 1
    assert.equal(byName('tok.weight').t, 0);
    assert.equal(byName('head.weight').t, 1);
    assert.deepEqual(byName('head.weight').experts[0].params, { weight: 0.4, density: 0.7 });
    assert.equal(byName('head.weight').layer, null);
    // dtypes: no dtype/out_dtype: the base's dtype; a BF16 input stays BF16 in its ref
    assert.equal(q1.outDtype, 'F32');
    assert.equal(q1.experts[1].tensor.dtype, 'BF16');
    assert.deepEqual(q1.shape, [3, 3]);
    assert.equal(plan.outputBytes, plan.tasks.reduce((a, t) => a + t.numel * 4, 0));
    // every input is read once: its last use is its task, and each task releases its own inputs
    for (const t of plan.tasks) {
      assert.ok([t.base!, ...t.experts].every((i) => i.lastUse));
      assert.equal(t.release.length, 3);
    }
    // The refs point at the right bytes.
    const r = new TensorFileReader();
    assert.deepEqual(await r.readF32(q1.experts[0].tensor), Float32Array.from({ length: 9 }, (_, i) => 1 + i / 8));
    assert.deepEqual(await r.readF32(q1.experts[1].tensor), Float32Array.from({ length: 9 }, (_, i) => 2 + i / 8));
    await r.close();
    // plain data: survives JSON
    assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan);
  });

  it('lists every mismatch before any work: missing and extra tensors per model, shape A vs shape B', async () => {
    await write('base.safetensors', transformer());
    await write('a.safetensors', transformer({ drop: ['blocks.1.ln1.bias', 'head.weight'], extra: ['adapter.w'] }));
    await write('b.safetensors', transformer({ reshape: { 'blocks.2.attn.q.weight': [3, 4], 'tok.weight': [11, 3] } }));
    const es = await planErrors('merge_method: task_arithmetic\nbase_model: base.safetensors\nmodels:\n  - model: a.safetensors\n  - model: b.safetensors\n');
    assert.deepEqual(es, [
      'model "a.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':4) lacks 2 tensor(s) of model "base.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':2): blocks.1.ln1.bias, head.weight',
      'model "a.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':4) has 1 tensor(s) model "base.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':2) lacks: adapter.w',
      '"tok.weight": model "b.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':5) has shape [11, 3] but model "base.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':2) has [7, 3]',
      '"blocks.2.attn.q.weight": model "b.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':5) has shape [3, 4] but model "base.safetensors" (' + path.join(dir, 'm.merge.yaml') + ':2) has [3, 3]',
    ]);
  });

  it('models with different layer counts are an error', async () => {
    await write('base.safetensors', transformer({ layers: 3 }));
    await write('a.safetensors', transformer({ layers: 2 }));
    const es = await planErrors('merge_method: linear\nmodels:\n  - model: base.safetensors\n  - model: a.safetensors\n');
    assert.match(es[0], /model "a.safetensors" .* has 2 layers but model "base.safetensors" .* has 3/);
  });

  it('slices: layers renamed to output indices, gradients per slice, a layer read twice is freed after its last use', async () => {
    await write('a.safetensors', transformer({ layers: 3, seed: 1 }));
    await write('b.safetensors', transformer({ layers: 3, seed: 2 }));
    const plan = await planMerge(
      config(
        [
          'merge_method: linear',
          'slices:',
          '  - sources:',
          '      - {model: a.safetensors, layer_range: [0, 2]}',
          '      - {model: b.safetensors, layer_range: [0, 2], parameters: {weight: [0, 1]}}',
          '  - sources:',
          '      - {model: a.safetensors, layer_range: [1, 3]}',
          '      - {model: b.safetensors, layer_range: [1, 3]}',
          '    parameters: {weight: 5}',
        ].join('\n'),
      ),
    );
    const layerTasks = plan.tasks.filter((t) => t.layer !== null);
    assert.deepEqual(
      layerTasks.filter((t) => t.output.endsWith('q.weight')).map((t) => [t.output, t.experts.map((e) => e.tensor.name), t.t, t.experts.map((e) => e.params.weight)]),
      [
        ['blocks.0.attn.q.weight', ['blocks.0.attn.q.weight', 'blocks.0.attn.q.weight'], 0, [1, 0]],
        ['blocks.1.attn.q.weight', ['blocks.1.attn.q.weight', 'blocks.1.attn.q.weight'], 1, [1, 1]],
        ['blocks.2.attn.q.weight', ['blocks.1.attn.q.weight', 'blocks.1.attn.q.weight'], 0, [5, 5]],
        ['blocks.3.attn.q.weight', ['blocks.2.attn.q.weight', 'blocks.2.attn.q.weight'], 1, [5, 5]],
      ],
    );
    const out1 = plan.tasks.find((t) => t.output === 'blocks.1.attn.q.weight')!;
    const out2 = plan.tasks.find((t) => t.output === 'blocks.2.attn.q.weight')!;
    assert.ok(out1.experts.every((e) => !e.lastUse) && out1.release.length === 0);
    assert.ok(out2.experts.every((e) => e.lastUse));
    assert.deepEqual(out2.release, [
      { model: 0, tensor: 'blocks.1.attn.q.weight' },
      { model: 1, tensor: 'blocks.1.attn.q.weight' },
    ]);
    // pre from the first slice, post from the last
    assert.deepEqual(names(plan).slice(0, 2), ['tok.weight', 'pos.weight']);
    assert.deepEqual(names(plan).slice(-2), ['ln_f.weight', 'head.weight']);
    assert.ok(plan.tasks.every((t) => t.base === null));
  });

  it('a layer_range past a model’s layers, and slerp with two experts, are errors', async () => {
    await write('a.safetensors', transformer({ layers: 3 }));
    await write('b.safetensors', transformer({ layers: 3 }));
    const es = await planErrors('merge_method: linear\nslices:\n  - sources:\n      - {model: a.safetensors, layer_range: [1, 4]}\n      - {model: b.safetensors, layer_range: [0, 3]}\n');
    assert.match(es[0], /slices\[0\].sources\[0\].layer_range \[1, 4\] picks layers past model "a.safetensors" .*'s 3 layers \(0 to 2\)/);
    await write('c.safetensors', transformer({ layers: 3 }));
    const es2 = await planErrors('merge_method: slerp\nbase_model: a.safetensors\nmodels:\n  - model: b.safetensors\n  - model: c.safetensors\n');
    assert.match(es2[0], /^models \(.*\.merge\.yaml:3\): slerp interpolates between the base and exactly one other model, got 2/);
  });

  it('non-float tensors are copied layer by layer like the merged ones (slices renumber them); none to merge is an error', async () => {
    // Each model: 4 layers, an I32 mask per layer whose values say which model and layer it is, an I64 position_ids.
    const withMasks = async (file: string, tag: number) => {
      await writeSafetensors(path.join(dir, file), [
        ...transformer({ layers: 4, seed: tag }),
        ...Array.from({ length: 4 }, (_, l) => ({ name: `blocks.${l}.attn.mask`, dtype: 'I32' as const, shape: [2], data: Int32Array.from([tag, l]) })),
        { name: 'position_ids', dtype: 'I64', shape: [2], raw: new Uint8Array(new BigInt64Array([BigInt(tag), 7n]).buffer) },
      ]);
    };
    await withMasks('a.safetensors', 1);
    await withMasks('b.safetensors', 2);
    const plan = await planMerge(config('merge_method: linear\nslices:\n  - sources:\n      - {model: a.safetensors, layer_range: [2, 4]}\n  - sources:\n      - {model: b.safetensors, layer_range: [0, 1]}\n'));
    const copies = plan.copies.map((c) => [c.name, path.basename(c.file), c.byteOffset]);
    const header = (f: string) => readSafetensorsHeader(path.join(dir, f));
    const [ha, hb] = [await header('a.safetensors'), await header('b.safetensors')];
    assert.deepEqual(copies, [
      ['position_ids', 'a.safetensors', ha.tensors.position_ids.byteOffset],
      ['blocks.0.attn.mask', 'a.safetensors', ha.tensors['blocks.2.attn.mask'].byteOffset],
      ['blocks.1.attn.mask', 'a.safetensors', ha.tensors['blocks.3.attn.mask'].byteOffset],
      ['blocks.2.attn.mask', 'b.safetensors', hb.tensors['blocks.0.attn.mask'].byteOffset],
    ]);
    assert.ok(!plan.copies.some((c) => c.name === 'blocks.3.attn.mask'), 'no mask for a layer the output does not have');
    // A model of non-float tensors only: nothing to merge, said before any work.
    await write('ids.safetensors', [{ name: 'ids', dtype: 'I32', shape: [3], data: Int32Array.from([1, 2, 3]) }]);
    const es = await planErrors('merge_method: linear\nmodels:\n  - model: ids.safetensors\n  - model: ids.safetensors\n');
    assert.match(es[0], /nothing to merge: model "ids\.safetensors" .* has no float tensor/);
  });

  it('a model that cannot be opened is reported at its config line', async () => {
    fs.writeFileSync(path.join(dir, 'bad.safetensors'), Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    await write('a.safetensors', transformer());
    await assert.rejects(
      () => planMerge(config('merge_method: linear\nmodels:\n  - model: a.safetensors\n  - model: bad.safetensors\n')),
      (e: Error) => e instanceof MergePlanError && e.message.startsWith(`${path.join(dir, 'm.merge.yaml')}:4:12: model "bad.safetensors": `) && /header length 200 exceeds/.test(e.message),
    );
  });

  describe('curvature merging reads the training statistics', () => {
    async function expert(seed: number, withStats: boolean): Promise<string> {
      const r = await RunFolder.create(dir, `e${seed}`, { config: {} });
      await writeSafetensors(r.resolve(r.checkpointPath(5)), transformer({ seed }));
      await r.addCheckpoint(5);
      if (withStats) {
        await writeSafetensors(r.resolve(r.statsPath(5)), [
          { name: 'blocks.0.attn.q.weight.v_row', dtype: 'F32', shape: [3], data: Float32Array.from([1, 2, 3]) },
          { name: 'blocks.0.attn.q.weight.v_col', dtype: 'F32', shape: [3], data: Float32Array.from([4, 5, 6]) },
        ]);
      }
      return path.basename(r.dir);
    }

    it('attaches v_row/v_col refs per expert and weight (null where the stats file has none)', async () => {
      await write('base.safetensors', transformer());
      const a = await expert(1, true);
      const b = await expert(2, true);
      const plan = await planMerge(config(`merge_method: curvature\nbase_model: base.safetensors\nmodels:\n  - model: ${a}\n  - model: ${b}\n`));
      const q0 = plan.tasks.find((t) => t.output === 'blocks.0.attn.q.weight')!;
      assert.ok(q0.experts.every((e) => e.stats !== null));
      assert.deepEqual(q0.experts[0].stats!.vCol.shape, [3]);
      assert.equal(q0.experts[1].stats!.vRow.file, path.join(dir, b, 'stats/step-5.safetensors'));
      assert.ok(plan.tasks.find((t) => t.output === 'head.weight')!.experts.every((e) => e.stats === null));
      assert.equal(plan.models[1].statisticsFile, path.join(dir, a, 'stats/step-5.safetensors'));
      assert.equal(plan.models[1].checkpoint?.step, 5);
      assert.deepEqual(q0.experts[0].params, { weight: 1, density: 0.2 });
    });

    it('an expert without statistics is an error saying how to get them', async () => {
      await write('base.safetensors', transformer());
      const a = await expert(1, true);
      const b = await expert(2, false);
      const es = await planErrors(`merge_method: curvature\nbase_model: base.safetensors\nmodels:\n  - model: ${a}\n  - model: ${b}\n`);
      assert.equal(es.length, 1);
      assert.match(es[0], new RegExp(`model "${b}" .* needs training statistics: .*statsEvery > 0`));
    });
  });

  describe('outputShards', () => {
    const tasks = (bytes: number[]): Pick<MergePlan, 'tasks'> => ({ tasks: bytes.map((b, i) => ({ index: i, output: `t${i}`, outBytes: b }) as MergeTask) });

    it('one shard: model.safetensors, no index', () => {
      const l = outputShards(tasks([10, 20, 30]), 1000);
      assert.deepEqual(l, { shards: [{ file: 'model.safetensors', tasks: [0, 1, 2], copies: [], bytes: 60 }], index: null });
      assert.deepEqual(outputShards(tasks([]), 10).shards[0].tasks, []);
    });

    it('several: greedy in task order, a tensor over the limit alone, transformers’ names, an index over all', () => {
      const bytes = [7, 3, 1, 11, 2, 2, 5, 13, 1];
      const l = outputShards(tasks(bytes), 10);
      assert.deepEqual(
        l.shards.map((s) => [s.tasks, s.bytes]),
        [
          [[0, 1], 10],
          [[2], 1],
          [[3], 11],
          [[4, 5, 6], 9],
          [[7], 13],
          [[8], 1],
        ],
      );
      assert.deepEqual(l.shards.map((s) => s.file).slice(0, 2), ['model-00001-of-00006.safetensors', 'model-00002-of-00006.safetensors']);
      assert.equal(l.index?.metadata.total_size, bytes.reduce((a, b) => a + b, 0));
      assert.equal(Object.keys(l.index!.weight_map).length, bytes.length);
      assert.equal(l.index!.weight_map.t7, 'model-00005-of-00006.safetensors');
      for (const s of l.shards) assert.ok(s.bytes <= 10 || s.tasks.length === 1);
      assert.throws(() => outputShards(tasks([1]), 0), /maxShardBytes must be a positive number/);
    });

    it('copied tensors (the base\'s non-float ones) follow the merged ones under the same limit, in the index and the total', () => {
      const copies = [
        { model: 0, name: 'position_ids', dtype: 'I64' as const, shape: [1, 5], file: 'b', byteOffset: 0, byteLength: 40 },
        { model: 0, name: 'mask', dtype: 'BOOL' as const, shape: [5], file: 'b', byteOffset: 40, byteLength: 5 },
      ];
      const one = outputShards({ ...tasks([10, 20]), copies }, 1000);
      assert.deepEqual(one.shards, [{ file: 'model.safetensors', tasks: [0, 1], copies: [0, 1], bytes: 75 }]);
      const l = outputShards({ ...tasks([7, 3, 11]), copies }, 30);
      assert.deepEqual(l.shards.map((s) => [s.tasks, s.copies, s.bytes]), [[[0, 1, 2], [], 21], [[], [0], 40], [[], [1], 5]]);
      assert.equal(l.index!.weight_map.position_ids, 'model-00002-of-00003.safetensors');
      assert.equal(l.index!.weight_map.mask, 'model-00003-of-00003.safetensors');
      assert.deepEqual(outputShards({ ...tasks([7, 3]), copies: copies.slice(1) }, 30).shards.map((s) => [s.tasks, s.copies]), [[[0, 1], [0]]], 'a small copy shares the shard');
      assert.equal(l.index!.metadata.total_size, 7 + 3 + 11 + 45);
    });
  });
});
