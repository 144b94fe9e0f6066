// An adapter run's checkpoint, as files (src/files/adapter-checkpoint.ts): recognised by its `.adapter_` tensors
// and its `adapters` metadata; modelWeightsFile() refuses it (naming the run and why) unless the caller builds the
// model with its adapters; plain and LoRA checkpoints are untouched by the check.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdapterModelError, adaptersMetadata, checkpointAdapters, isAdapterParam } from '../../src/files/adapter-checkpoint';
import { mergedCheckpointPath, modelWeightsFile, RunFolder } from '../../src/files/run-record';
import { writeSafetensors, type WriteTensor } from '../../src/files/safetensors';
import { loadConfig } from '../../src/files/config/load';

const ROOT = path.resolve(__dirname, '../..');

const t = (name: string, shape: number[]): WriteTensor => ({ name, dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) });
const ADAPTERS = { size: 3, targets: ['attn', 'mlp'] as ('attn' | 'mlp')[], activation: 'gelu' as const, initScale: 0.25 };

describe('adapter checkpoints (src/files/adapter-checkpoint.ts)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-adapter-ck-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('names: every adapter tensor has ".adapter_", no model tensor does', () => {
    for (const n of ['blocks.0.adapter_attn.down.weight', 'blocks.11.adapter_mlp.up.bias']) assert.ok(isAdapterParam(n), n);
    for (const n of ['blocks.0.attn.o.weight', 'blocks.0.mlp.fc2.bias', 'adapter.weight', 'blocks.0.attn.q.weight.lora_a']) assert.ok(!isAdapterParam(n), n);
  });

  it('a run checkpoint with adapters: refused as a plain model, naming the run and why; allowed with withAdapters', async () => {
    const run = await RunFolder.create(dir, 'adapt', { config: null });
    const file = path.join(run.dir, run.checkpointPath(7));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writeSafetensors(file, [t('blocks.0.attn.o.weight', [4, 4]), t('blocks.0.adapter_attn.down.weight', [3, 4]), t('blocks.0.adapter_attn.up.weight', [4, 3])], { step: '7', ...adaptersMetadata(ADAPTERS) });
    assert.deepEqual(checkpointAdapters(file), ADAPTERS);
    assert.throws(
      () => modelWeightsFile(file),
      (e: Error) => {
        assert.ok(e instanceof AdapterModelError, String(e));
        assert.equal(e.runDir, run.dir);
        assert.match(e.message, new RegExp(`^the run ${run.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was fine-tuned with adapters \\(train\\.adapters: size 3 after attn and mlp\\)`));
        assert.match(e.message, /non-linear and cannot be folded into the weights/);
        assert.match(e.message, /basin eval/);
        return true;
      },
    );
    assert.equal(modelWeightsFile(file, { withAdapters: true }), file);
    // A checkpoint copied out of its run: the error names the file instead.
    const loose = path.join(dir, 'loose.safetensors');
    fs.copyFileSync(file, loose);
    assert.throws(() => modelWeightsFile(loose), (e: Error) => e instanceof AdapterModelError && e.runDir === null && e.message.startsWith(`the checkpoint ${loose} was fine-tuned with adapters`));
  });

  it('plain and LoRA checkpoints pass; a missing file is left to its reader; adapter tensors without metadata are an error', async () => {
    const plain = path.join(dir, 'plain.safetensors');
    await writeSafetensors(plain, [t('w', [2, 3])]);
    assert.equal(checkpointAdapters(plain), null);
    assert.equal(modelWeightsFile(plain), plain);
    const lora = path.join(dir, 'step-2.safetensors');
    await writeSafetensors(lora, [t('w', [2, 3]), t('w.lora_a', [1, 3])]);
    await writeSafetensors(mergedCheckpointPath(lora), [t('w', [2, 3])]);
    assert.equal(modelWeightsFile(lora), mergedCheckpointPath(lora));
    const missing = path.join(dir, 'nope.safetensors');
    assert.equal(modelWeightsFile(missing), missing);
    fs.writeFileSync(path.join(dir, 'junk.safetensors'), 'not a safetensors file at all');
    assert.equal(checkpointAdapters(path.join(dir, 'junk.safetensors')), null);
    const stripped = path.join(dir, 'stripped.safetensors');
    await writeSafetensors(stripped, [t('blocks.0.adapter_mlp.up.weight', [4, 3])]);
    assert.throws(() => checkpointAdapters(stripped), /holds adapter tensors .* but no "adapters" metadata/);
  });

  it('examples/demo-adapters.basin.yaml fine-tunes the demo: its model exactly, init.from the demo config, adapters on', () => {
    const demo = loadConfig(path.join(ROOT, 'examples/demo.basin.yaml')).config;
    const { config } = loadConfig(path.join(ROOT, 'examples/demo-adapters.basin.yaml'));
    assert.deepEqual(config.model, demo.model, 'the demo checkpoint loads by name and shape');
    assert.equal(config.init?.from, 'demo.basin.yaml');
    assert.deepEqual(config.train.adapters, { size: 16, targets: ['attn', 'mlp'], activation: 'gelu' });
    assert.ok(config.data.type === 'synthetic-sequences' && demo.data.type === 'synthetic-sequences' && config.data.seed !== demo.data.seed, 'a new chain to learn');
  });
});
