// Fine-tuning from a checkpoint (`init.from`), partial freezing (`train.freeze`) and progressive unfreezing
// (`train.unfreeze`), with their bad inputs: a missing checkpoint, a glob that matches nothing and a checkpoint of
// another shape are config errors that name the line and what is wrong.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { train } from '../../src/engine/train/trainer';
import { openRun } from '../../src/files/run-record';
import { writeSafetensors, readSafetensorsHeader } from '../../src/files/safetensors';
import { readAllTensors, runtime } from './helpers';

const MLP = (o: { name: string; hidden?: number; steps?: number; extra?: string; evalEvery?: number }) => `name: ${o.name}
seed: 3
model: { type: mlp, inputs: 12, hidden: [${o.hidden ?? 16}], classes: 5, activation: relu }
data: { type: synthetic-classification, samples: 400, noise: 0.5, validFraction: 0.25 }
${o.extra ?? ''}
train:
  steps: ${o.steps ?? 12}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: ${o.evalEvery ?? 0}
  checkpointEvery: 0
  statsEvery: 0
  logEvery: 4
`;


describe('fine-tuning: init.from, freeze, unfreeze', function () {
  this.timeout(240_000);
  let dir = '';
  let baseRun = '';
  let baseCkpt = '';
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-ft-'));
    const rt = await runtime();
    const file = path.join(dir, 'base.basin.yaml');
    fs.writeFileSync(file, MLP({ name: 'base', steps: 20 }));
    const r = await train({ rt, config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs') });
    baseRun = r.runDir;
    baseCkpt = path.join(r.runDir, r.checkpoint!);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => {
    const f = path.join(dir, `${name}.basin.yaml`);
    fs.writeFileSync(f, text);
    return f;
  };
  const run = async (file: string) => train({ rt: await runtime(), config: loadConfig(file).config, configPath: file, outputDir: path.join(dir, 'runs') });

  it('starts from a run folder’s weights, keeps frozen tensors bit-identical, records the base and its metrics', async () => {
    const rel = path.relative(dir, baseRun);
    const f = write('ft', MLP({ name: 'ft', extra: `init: { from: ${rel} }`, evalEvery: 6 }).replace('train:\n', 'train:\n  freeze: ["layers.0.*"]\n'));
    const r = await run(f);
    const base = await readAllTensors(baseCkpt);
    const tuned = await readAllTensors(path.join(r.runDir, r.checkpoint!));
    for (const n of ['layers.0.weight', 'layers.0.bias']) assert.deepEqual(tuned.get(n), base.get(n), `${n} is frozen: bit-identical`);
    assert.notDeepEqual(tuned.get('layers.1.weight'), base.get('layers.1.weight'), 'the unfrozen layer trained');
    const rec = (await openRun(r.runDir)).record;
    assert.equal(rec.lineage.relation, 'fine-tune');
    assert.equal(rec.lineage.parentCheckpoint, baseCkpt);
    assert.equal(rec.lineage.parentRun, baseRun);
    assert.ok(Number.isFinite(rec.lineage.baseMetrics?.val_loss), 'the base was evaluated');
    const rows = fs.readFileSync(path.join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const evals = rows.filter((x) => 'val_loss' in x);
    assert.ok(evals.length >= 2 && evals.every((x) => x.base_val_loss === rec.lineage.baseMetrics!.val_loss), 'every evaluation shows the base beside it');
  });

  it('starts from the exact weights: step 0 of a fine-tune evaluates like the base', async () => {
    const f = write('same', MLP({ name: 'same', steps: 1, extra: `init: { from: ${JSON.stringify(baseCkpt)} }` }));
    const r = await run(f);
    const rec = (await openRun(r.runDir)).record;
    const baseRec = (await openRun(baseRun)).record;
    assert.ok(Math.abs(rec.lineage.baseMetrics!.val_loss - (baseRec.lastMetrics as Record<string, number>).val_loss) < 1e-6);
  });

  it('progressive unfreezing: a layer frozen until step 7 trains from there', async () => {
    const text = MLP({ name: 'unf', steps: 6, extra: `init: { from: ${JSON.stringify(baseCkpt)} }` }).replace(
      'train:\n',
      'train:\n  freeze: ["layers.*"]\n  unfreeze: [{ step: 7, params: ["layers.1.*"] }]\n',
    );
    const r6 = await run(write('unf6', text));
    const w6 = await readAllTensors(path.join(r6.runDir, r6.checkpoint!));
    const base = await readAllTensors(baseCkpt);
    assert.deepEqual(w6.get('layers.1.weight'), base.get('layers.1.weight'), 'still frozen at step 6');
    const r10 = await run(write('unf10', text.replace('steps: 6', 'steps: 10')));
    const w10 = await readAllTensors(path.join(r10.runDir, r10.checkpoint!));
    assert.notDeepEqual(w10.get('layers.1.weight'), base.get('layers.1.weight'), 'trains from step 7');
    assert.deepEqual(w10.get('layers.0.weight'), base.get('layers.0.weight'), 'never unfrozen');
  });

  it('a freeze glob that matches nothing is a config error naming the line and the parameters', async () => {
    const f = write('badglob', MLP({ name: 'badglob' }).replace('train:\n', 'train:\n  freeze: ["layers.0.*", "encoder.*"]\n'));
    await assert.rejects(run(f), (e: Error) => {
      assert.ok(e instanceof ConfigError, e.message);
      assert.match(e.message, /badglob\.basin\.yaml:7:\d+: train\.freeze\[1\]: "encoder\.\*" matches no parameter; the parameters are: layers\.0\.weight/);
      return true;
    });
  });

  it('init.from that does not exist is a config error on its line', async () => {
    const f = write('nofile', MLP({ name: 'nofile', extra: 'init: { from: missing/step-9.safetensors }' }));
    await assert.rejects(run(f), (e: Error) => e instanceof ConfigError && /nofile\.basin\.yaml:5:\d+: init\.from: [^:]*missing\/step-9\.safetensors does not exist/.test(e.message));
    // A folder that is neither a run nor a model: said once, with what it would take.
    const empty = path.join(dir, 'empty-folder');
    fs.mkdirSync(empty, { recursive: true });
    const g = write('nomodel', MLP({ name: 'nomodel', extra: `init: { from: ${JSON.stringify(empty)} }` }));
    await assert.rejects(run(g), (e: Error) => e instanceof ConfigError && /nomodel\.basin\.yaml:5:\d+: init\.from: [^:]*empty-folder is a folder without run\.json, model\.safetensors or model\.safetensors\.index\.json/.test(e.message));
  });

  it('starts from a model folder as basin merge writes it: model.safetensors, or shards with their index', async () => {
    const base = await readAllTensors(baseCkpt);
    const header = await readSafetensorsHeader(baseCkpt);
    const shapes = new Map(Object.values(header.tensors).map((t) => [t.name, t.shape]));
    const single = path.join(dir, 'merged-single');
    const sharded = path.join(dir, 'merged-sharded');
    fs.mkdirSync(single, { recursive: true });
    fs.mkdirSync(sharded, { recursive: true });
    fs.copyFileSync(baseCkpt, path.join(single, 'model.safetensors'));
    // Two shards, each tensor in one of them, as the index says.
    const names = [...base.keys()];
    const halves = [names.slice(0, 2), names.slice(2)];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of halves.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(sharded, file), part.map((n) => ({ name: n, dtype: 'BF16' as const, shape: shapes.get(n)!, data: base.get(n)! })));
      for (const n of part) weightMap[n] = file;
    }
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    for (const [name, from] of [['ft-single', single], ['ft-sharded', sharded]] as const) {
      let init: { loaded: string[] } | undefined;
      // With statistics: the task saliency reads the base (the shards, for the sharded one) at each sample.
      const f = write(name, MLP({ name, steps: 2, extra: `init: { from: ${JSON.stringify(from)} }` }).replace('statsEvery: 0', 'statsEvery: 1'));
      const r = await train({ rt: await runtime(), config: loadConfig(f).config, configPath: f, outputDir: path.join(dir, 'runs'), events: { onStart: (i) => (init = i.init) } });
      assert.deepEqual(init!.loaded.slice().sort(), names.slice().sort(), `${name}: every tensor loaded`);
      const run = await openRun(r.runDir);
      assert.equal(run.record.lineage.parentCheckpoint, path.join(from, from === single ? 'model.safetensors' : 'model.safetensors.index.json'));
      const stats = await readAllTensors(run.resolve(run.statsPath(2)));
      const mass = stats.get('layers.0.weight.saliency_mass');
      assert.ok(mass && mass[0] > 0 && Number.isFinite(mass[0]), `${name}: a saliency mass from the base (${mass?.[0]})`);
    }
  });

  it('a checkpoint of another shape is refused with the mismatches; partial keeps fresh weights and says which', async () => {
    const f = write('wide', MLP({ name: 'wide', hidden: 24, extra: `init: { from: ${JSON.stringify(baseCkpt)} }` }));
    await assert.rejects(run(f), (e: Error) => {
      // On init.from's line; the count of tensors, the first ones, and the way out (even when the list is cut).
      assert.ok(e instanceof ConfigError, e.message);
      assert.match(e.message, /wide\.basin\.yaml:5:\d+: init\.from: .*step-\d+\.safetensors does not fit this model \(3 tensors\): /);
      assert.match(e.message, /tensor layers\.0\.weight has shape \[16, 12\] in the checkpoint, the model has \[24, 12\]/);
      assert.match(e.message, /; set init\.partial: true to keep fresh weights for the tensors that do not fit$/);
      assert.doesNotMatch(e.message, /optimizer/, 'a fine-tune starts a fresh optimizer');
      return true;
    });
    const g = write('wide2', MLP({ name: 'wide2', hidden: 24, steps: 2, extra: `init: { from: ${JSON.stringify(baseCkpt)}, partial: true }` }));
    let init: { loaded: string[]; fresh: string[] } | undefined;
    await train({ rt: await runtime(), config: loadConfig(g).config, configPath: g, outputDir: path.join(dir, 'runs'), events: { onStart: (i) => (init = i.init) } });
    assert.deepEqual(init!.loaded, ['layers.1.bias']);
    assert.equal(init!.fresh.length, 3);
  });
});
