// Pruning's bad inputs are refused before any GPU work, each naming the field and the offending value or tensor
// names: densities outside (0, 1], N:M patterns that do not divide an input dimension, globs that match nothing,
// unknown scores and parameters, curvature without statistics, Wanda/SparseGPT without calibration data, a base
// that lacks a target. Uses a real run folder (run.json + a weights file) written without the GPU.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../src/files/config/load';
import { RunFolder } from '../../src/files/run-record';
import { readSafetensorsHeader, writeSafetensors } from '../../src/files/safetensors';
import {
  DEFAULT_TARGETS,
  PruneOptionError,
  checkDensity,
  parseDensities,
  parseGranularity,
  parsePattern,
  pruneScoreConfig,
  selectTargets,
  type PruneOptions,
} from '../../src/files/prune/options';
import { UnknownEntryError } from '../../src/files/registry/entry';
import { pruneScoreRegistry } from '../../src/files/registry/prune-scores';
import { buildModel } from '../../src/engine/nn/registry';
import { planPrune } from '../../src/engine/prune/plan';
import { MissingNeedError, checkScoreNeeds } from '../../src/engine/prune/scores';
import { resolvePruneSource, type PruneSource } from '../../src/engine/prune/source';
import { parsePruneArgs } from '../../src/cli/prune';

const CONFIG = `
name: pu
model: { type: mlp, inputs: 6, hidden: [8, 12], classes: 3 }
data: { type: synthetic-classification, samples: 100 }
train: { steps: 1, batchSize: 8, optimizer: { type: adamw, lr: 0.01 } }
`;

const TRANSFORMER_NAMES = [
  { name: 'tok.weight', shape: [50, 16] },
  { name: 'blocks.0.ln1.weight', shape: [16] },
  { name: 'blocks.0.attn.q.weight', shape: [16, 16] },
  { name: 'blocks.0.attn.q.bias', shape: [16] },
  { name: 'blocks.0.mlp.fc1.weight', shape: [40, 16] },
  { name: 'blocks.0.mlp.fc2.weight', shape: [16, 40] },
  { name: 'head.weight', shape: [50, 16] },
];

describe('prune options and their errors', () => {
  let dir = '';
  let runDir = '';
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-prune-unit-'));
    const config = parseConfig(CONFIG, 'pu.basin.yaml');
    const run = await RunFolder.create(dir, 'pu', { config });
    runDir = run.dir;
    const decls = buildModel(config.model, 1).declarations();
    await fs.promises.mkdir(run.checkpointsDir, { recursive: true });
    await writeSafetensors(path.join(run.dir, run.checkpointPath(5)), decls.map((d) => ({ name: d.name, dtype: 'F32' as const, shape: d.shape, data: d.init })));
    await run.addCheckpoint({ step: 5, path: run.checkpointPath(5), time: Date.now() });
    // A base that lacks one target and has another in a different shape.
    await writeSafetensors(path.join(dir, 'base.safetensors'), [{ name: 'layers.0.weight', dtype: 'F32', shape: [8, 6], data: new Float32Array(48) }]);
    await writeSafetensors(path.join(dir, 'base2.safetensors'), [
      { name: 'layers.0.weight', dtype: 'F32', shape: [6, 8], data: new Float32Array(48) },
      { name: 'layers.1.weight', dtype: 'F32', shape: [12, 8], data: new Float32Array(96) },
    ]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a density outside (0, 1] names the field and says what a density is', () => {
    for (const d of [0, -0.1, 1.5, NaN]) assert.throws(() => checkDensity(d), (e: unknown) => e instanceof PruneOptionError && /density: .* is outside \(0, 1\]/.test((e as Error).message));
    assert.equal(checkDensity(1), 1);
    assert.deepEqual(parseDensities('0.1,1,0.5,0.5'), [1, 0.5, 0.1]);
    assert.deepEqual(parseDensities('100,50,5%'), [1, 0.5, 0.05]);
    assert.throws(() => parseDensities('1,abc'), /"abc" is not a number/);
    assert.throws(() => parseDensities('0,0.5', '--densities'), /^Error: --densities: 0 is outside|--densities: 0 is outside/);
  });

  it('patterns and granularities', () => {
    assert.deepEqual(parsePattern('2:4'), { n: 2, m: 4 });
    assert.deepEqual(parsePattern('4:8'), { n: 4, m: 8 });
    assert.equal(parsePattern(undefined), null);
    assert.equal(parsePattern('unstructured'), null);
    for (const bad of ['4:2', '2-4', '0:4', '4:4', '1:64']) assert.throws(() => parsePattern(bad), PruneOptionError, bad);
    assert.equal(parseGranularity('global'), 'global');
    assert.throws(() => parseGranularity('column'), /"column" is not one of row, tensor, global/);
  });

  it('default targets: the blocks’ 2-D weights, never embeddings, norms, biases or the head', () => {
    const got = selectTargets(TRANSFORMER_NAMES, { targets: [...DEFAULT_TARGETS], pattern: null }, ['head.weight']).map((t) => t.name);
    assert.deepEqual(got, ['blocks.0.attn.q.weight', 'blocks.0.mlp.fc1.weight', 'blocks.0.mlp.fc2.weight']);
  });

  it('a glob that matches nothing lists the 2-D tensors (and says when it only matched vectors)', () => {
    assert.throws(
      () => selectTargets(TRANSFORMER_NAMES, { targets: ['blocks.*.attn.k.weight'], pattern: null }),
      (e: unknown) => e instanceof PruneOptionError && /"blocks\.\*\.attn\.k\.weight" matches no 2-D tensor; the 2-D tensors are: tok\.weight, blocks\.0\.attn\.q\.weight/.test((e as Error).message),
    );
    assert.throws(() => selectTargets(TRANSFORMER_NAMES, { targets: ['*.bias'], pattern: null }), /matches blocks\.0\.attn\.q\.bias, which are not matrices/);
  });

  it('an N:M pattern that does not divide an input dimension names the tensors and their shapes', () => {
    // 16, 16 and 40 inputs are all multiples of 8: 4:8 fits.
    assert.equal(selectTargets(TRANSFORMER_NAMES, { targets: ['blocks.*'], pattern: { n: 4, m: 8 } }).length, 3);
    assert.throws(() => selectTargets(TRANSFORMER_NAMES, { targets: ['blocks.*'], pattern: { n: 8, m: 32 } }), /8:32 needs every target's input dimension to be a multiple of 32: blocks\.0\.attn\.q\.weight \[16, 16\], blocks\.0\.mlp\.fc1\.weight \[40, 16\], blocks\.0\.mlp\.fc2\.weight \[16, 40\]/);
    assert.throws(() => selectTargets(TRANSFORMER_NAMES, { targets: ['blocks.*'], pattern: { n: 2, m: 3 } }), /blocks\.0\.attn\.q\.weight \[16, 16\], blocks\.0\.mlp\.fc1\.weight \[40, 16\]/);
  });

  it('score configs: defaults from the registry, unknown names and bad parameters refused', () => {
    assert.deepEqual(pruneScoreConfig('sparsegpt'), { type: 'sparsegpt', batches: 16, damp: 0.01, blockSize: 128, calibration: 'sequential' });
    assert.deepEqual(pruneScoreConfig('random', { seed: '7' }), { type: 'random', seed: 7 });
    assert.throws(() => pruneScoreConfig('obs'), (e: unknown) => e instanceof UnknownEntryError && /known: magnitude, random, curvature, wanda, sparsegpt/.test((e as Error).message));
    assert.throws(() => pruneScoreConfig('magnitude', { seed: 1 }), /score magnitude: unknown parameter "seed"/);
    assert.throws(() => pruneScoreConfig('sparsegpt', { damp: 0 }), /score sparsegpt\.damp: 0 is not a valid number/);
    assert.throws(() => pruneScoreConfig('wanda', { batches: 1.5 }), /wanda\.batches/);
    assert.equal((pruneScoreConfig('sparsegpt', { calibration: 'one-pass' }) as { calibration: string }).calibration, 'one-pass');
    assert.throws(() => pruneScoreConfig('sparsegpt', { calibration: 'dense' }), /sparsegpt\.calibration/);
    assert.equal((parsePruneArgs({ sweep: true, score: 'sparsegpt,magnitude', calibration: 'one-pass' }).scores[0] as { calibration: string }).calibration, 'one-pass');
    for (const e of pruneScoreRegistry.entries) {
      assert.ok(e.title.length > 10);
      for (const [k, p] of Object.entries(e.params)) assert.ok(p.doc.length > 5, `${e.name}.${k}`);
    }
    assert.deepEqual(pruneScoreRegistry.entries.filter((e) => 'needs' in e && e.needs).map((e) => e.name), ['curvature', 'wanda', 'sparsegpt']);
  });

  it('the CLI: apply needs --out and a density or pattern, and one score', () => {
    assert.throws(() => parsePruneArgs({ score: 'magnitude', density: '0.5' }), /--out: applying a score writes a pruned checkpoint/);
    assert.throws(() => parsePruneArgs({ score: 'magnitude', out: 'x' }), /--density: give the fraction to keep/);
    assert.throws(() => parsePruneArgs({ score: 'magnitude,random', density: '0.5', out: 'x' }), /apply takes one score/);
    assert.throws(() => parsePruneArgs({ sweep: true, density: '2' }), /--density: 2 is outside/);
    const ok = parsePruneArgs({ sweep: true, score: 'wanda,random', batches: '3', seed: '2', pattern: '2:4', granularity: 'row' });
    assert.deepEqual(ok.scores, [{ type: 'wanda', batches: 3 }, { type: 'random', seed: 2 }]);
    assert.deepEqual(ok.options.pattern, { n: 2, m: 4 });
    // Granularity by default: row for Wanda alone (its paper compares within output rows), tensor otherwise.
    assert.equal(parsePruneArgs({ score: 'wanda', density: '0.5', out: 'x' }).options.granularity, 'row');
    assert.equal(parsePruneArgs({ score: 'magnitude', density: '0.5', out: 'x' }).options.granularity, 'tensor');
    assert.equal(parsePruneArgs({ sweep: true, score: 'wanda,magnitude' }).options.granularity, 'tensor');
    assert.equal(parsePruneArgs({ score: 'wanda', density: '0.5', out: 'x', granularity: 'global' }).options.granularity, 'global');
  });

  it('curvature without statistics names the missing file and how to get them', async () => {
    const src = await resolvePruneSource(runDir);
    assert.equal(src.step, 5);
    await assert.rejects(
      planPrune(src, { targets: [...DEFAULT_TARGETS], granularity: 'tensor', pattern: null }, [pruneScoreConfig('curvature')]),
      (e: unknown) => e instanceof MissingNeedError && /curvature: needs the training statistics of the checkpoint \(step 5 of .*\): .*stats\/step-5\.safetensors does not exist\. Train with `train\.statsEvery` > 0/.test((e as Error).message),
    );
  });

  it('statistics that lack a target name it', async () => {
    const src = await resolvePruneSource(runDir);
    const stats = path.join(dir, 'stats.safetensors');
    await writeSafetensors(stats, [
      { name: 'layers.0.weight.v_row', dtype: 'F32', shape: [8], data: new Float32Array(8) },
      { name: 'layers.0.weight.v_col', dtype: 'F32', shape: [6], data: new Float32Array(6) },
    ]);
    const targets = [
      { name: 'layers.0.weight', shape: [8, 6] },
      { name: 'layers.1.weight', shape: [12, 8] },
    ];
    await assert.rejects(checkScoreNeeds(pruneScoreConfig('curvature'), { ...src, statsFile: stats }, targets), /has no v_row\/v_col for layers\.1\.weight/);
  });

  it('statistics that are zero everywhere (an SGD run) are refused for curvature, naming the optimizer', async () => {
    const src = await resolvePruneSource(runDir);
    const stats = path.join(dir, 'zero-stats.safetensors');
    const write = (row1: Float32Array) =>
      writeSafetensors(stats, [
        { name: 'layers.0.weight.v_row', dtype: 'F32', shape: [8], data: new Float32Array(8) },
        { name: 'layers.0.weight.v_col', dtype: 'F32', shape: [6], data: new Float32Array(6) },
        { name: 'layers.1.weight.v_row', dtype: 'F32', shape: [12], data: row1 },
        { name: 'layers.1.weight.v_col', dtype: 'F32', shape: [8], data: new Float32Array(8) },
      ]);
    const targets = [
      { name: 'layers.0.weight', shape: [8, 6] },
      { name: 'layers.1.weight', shape: [12, 8] },
    ];
    await write(new Float32Array(12));
    const sgd: PruneSource = { ...src, statsFile: stats, config: { ...src.config, train: { ...src.config.train, optimizer: { type: 'sgd', lr: 0.1 } } as never } };
    await assert.rejects(
      checkScoreNeeds(pruneScoreConfig('curvature'), sgd, targets),
      (e: unknown) => e instanceof MissingNeedError && /zero-stats\.safetensors: every second-moment statistic .* is zero \(the run was trained with sgd, which keeps no second moment\)/.test((e as Error).message),
    );
    // One non-zero row sum, in the second weight read, is enough.
    const some = new Float32Array(12);
    some[11] = 1e-12;
    await write(some);
    await checkScoreNeeds(pruneScoreConfig('curvature'), sgd, targets);
  });

  it('wanda and sparsegpt without calibration data say what the config must name', async () => {
    const src = await resolvePruneSource(runDir);
    const noData: PruneSource = { ...src, config: { ...src.config, data: undefined as never } };
    for (const s of ['wanda', 'sparsegpt']) {
      await assert.rejects(checkScoreNeeds(pruneScoreConfig(s), noData, [{ name: 'layers.0.weight', shape: [8, 6] }]), new RegExp(`${s}: needs calibration data: the run's config .* must name a data section`));
    }
    // A dataset read from disk that is no longer where the config says: named before any work.
    const moved: PruneSource = { ...src, configPath: path.join(dir, 'cfg', 'x.basin.yaml'), config: { ...src.config, data: { type: 'movielens', path: '../gone/ml-latest-small' } as never } };
    await assert.rejects(
      checkScoreNeeds(pruneScoreConfig('wanda'), moved, [{ name: 'layers.0.weight', shape: [8, 6] }]),
      new RegExp(`wanda: needs calibration data: ${path.join(dir, 'gone', 'ml-latest-small').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(data\\.path of .*x\\.basin\\.yaml\\) does not exist`),
    );
  });

  it('sparsegpt refuses a task vector and inputs wider than its CPU solve takes, before any work', async () => {
    const src = await resolvePruneSource(runDir);
    await assert.rejects(
      checkScoreNeeds(pruneScoreConfig('sparsegpt'), src, [{ name: 'layers.0.weight', shape: [8, 6] }], path.join(dir, 'base.safetensors')),
      (e: unknown) => e instanceof PruneOptionError && /sparsegpt updates the kept weights .* does not apply to a task vector \(use magnitude, curvature or wanda\)/.test((e as Error).message),
    );
    const wide = [
      { name: 'layers.0.weight', shape: [8, 6] },
      { name: 'blocks.9.mlp.fc2.weight', shape: [64, 1025] },
    ];
    await assert.rejects(checkScoreNeeds(pruneScoreConfig('sparsegpt'), src, wide), (e: unknown) => e instanceof MissingNeedError && /inputs up to 1024: blocks\.9\.mlp\.fc2\.weight \[64, 1025\] is wider/.test((e as Error).message));
  });

  it('a bad sparsegpt calibration mode is refused, naming the modes', () => {
    assert.throws(() => parsePruneArgs({ sweep: true, score: 'sparsegpt', calibration: 'layerwise' }), /score sparsegpt\.calibration: layerwise is not one of sequential, one-pass/);
  });

  it('default targets of an MLP leave the output layer out; a base must hold every target in its shape', async () => {
    const src = await resolvePruneSource(runDir);
    const opts = { targets: [...DEFAULT_TARGETS], granularity: 'tensor' as const, pattern: null };
    const plan = await planPrune(src, opts, [pruneScoreConfig('magnitude')]);
    assert.equal(plan.head, 'layers.2.weight');
    assert.deepEqual(plan.targets.map((t) => t.name), ['layers.0.weight', 'layers.1.weight']);
    await assert.rejects(planPrune(src, { ...opts, base: path.join(dir, 'base.safetensors') }, [pruneScoreConfig('magnitude')]), /base: .*base\.safetensors has no tensor layers\.1\.weight/);
    await assert.rejects(planPrune(src, { ...opts, base: path.join(dir, 'base2.safetensors') }, [pruneScoreConfig('magnitude')]), /layers\.0\.weight is \[6, 8\] in .*base2\.safetensors but \[8, 6\] in/);
  });

  it('a base given as a run folder is its latest checkpoint (as init.from); a folder that is no run says so', async () => {
    const src = await resolvePruneSource(runDir);
    const opts: PruneOptions = { targets: [...DEFAULT_TARGETS], granularity: 'tensor', pattern: null, base: runDir };
    await planPrune(src, opts, [pruneScoreConfig('magnitude')]);
    assert.equal(opts.base, path.join(runDir, 'checkpoints', 'step-5.safetensors'), 'resolved in the options the sweep reads');
    await assert.rejects(planPrune(src, { ...opts, base: dir }, [pruneScoreConfig('magnitude')]), /^PruneOptionError: base: .* is a folder without run\.json, model\.safetensors or model\.safetensors\.index\.json: give a Basin run folder, a model folder or a checkpoint \.safetensors file$/);
    // A sharded model folder (a merged model) is read through its index: its tensors are checked like a file's.
    const sharded = path.join(dir, 'sharded-base');
    fs.mkdirSync(sharded, { recursive: true });
    fs.copyFileSync(path.join(dir, 'base.safetensors'), path.join(sharded, 'model-00001-of-00001.safetensors'));
    const h = await readSafetensorsHeader(path.join(dir, 'base.safetensors'));
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: Object.fromEntries(Object.keys(h.tensors).map((n) => [n, 'model-00001-of-00001.safetensors'])) }));
    await assert.rejects(planPrune(src, { ...opts, base: sharded }, [pruneScoreConfig('magnitude')]), /^PruneOptionError: base: .*sharded-base\/model\.safetensors\.index\.json has no tensor layers\.1\.weight/);
    // A truncated shard is the base's error, naming the shard, before any work; the base's files stay as they were.
    const shard = path.join(sharded, 'model-00001-of-00001.safetensors');
    const whole = fs.readFileSync(shard);
    fs.writeFileSync(shard, whole.subarray(0, whole.length - 3));
    await assert.rejects(planPrune(src, { ...opts, base: sharded }, [pruneScoreConfig('magnitude')]), /^PruneOptionError: base: .*sharded-base\/model-00001-of-00001\.safetensors/);
    assert.equal(fs.statSync(shard).size, whole.length - 3);
    // A damaged index is the base's error, with the file.
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), '{"weight_map": ');
    await assert.rejects(planPrune(src, { ...opts, base: sharded }, [pruneScoreConfig('magnitude')]), /^PruneOptionError: base: .*sharded-base\/model\.safetensors\.index\.json/);
  });

  it('inputs that are not a run, a checkpoint in one, or a config', async () => {
    await assert.rejects(resolvePruneSource(path.join(dir, 'nope')), /does not exist/);
    await assert.rejects(resolvePruneSource(dir), /a folder without run\.json: not a run folder/);
    await assert.rejects(resolvePruneSource(path.join(dir, 'base.safetensors')), /is not a checkpoint inside a run folder/);
    await assert.rejects(resolvePruneSource(runDir, { step: 9 }), /has no checkpoint at step 9 \(checkpoints: 5\)/);
  });
});
