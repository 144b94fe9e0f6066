import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv from 'ajv';
import YAML from 'yaml';
import { ConfigError, isMergeConfigFile, loadMergeConfig, parseMergeConfig, referencedModels, resolveModelRef, validateMergeConfigText } from '../../src/files/merge/config';
import { mergeSchemaFileText } from '../../src/files/merge/schema';
import { MERGE_SCHEMA_FILE } from '../../src/files/merge/write-schema';
import { writeSafetensors } from '../../src/files/safetensors';
import { mergeMethodRegistry } from '../../src/files/registry/merge-methods';

const ROOT = path.resolve(__dirname, '../..');

async function model(file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) }]);
}

describe('merge config (src/files/merge/config.ts)', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-config-'));
    file = path.join(dir, 'x.merge.yaml');
    for (const m of ['base', 'a', 'b']) await model(path.join(dir, 'models', m, 'model.safetensors'));
    await model(path.join(dir, 'plain.safetensors'));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hi');
    fs.mkdirSync(path.join(dir, 'empty'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The errors of a config text as `line: field: message` strings. */
  function errors(text: string): string[] {
    try {
      parseMergeConfig(text, file);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line}: ${d.field}: ${d.message}`);
    }
    return [];
  }
  const ok = (body: string) => `merge_method: ties\nbase_model: models/base\n${body}`;

  it('loads the mergekit example (examples/ties.merge.yaml) with its models in place', () => {
    const text = fs.readFileSync(path.join(ROOT, 'examples/ties.merge.yaml'), 'utf8');
    const f = path.join(dir, 'ties.merge.yaml');
    fs.writeFileSync(f, text);
    for (const m of ['expert-math', 'expert-code']) fs.cpSync(path.join(dir, 'models/a'), path.join(dir, 'models', m), { recursive: true });
    const c = loadMergeConfig(f);
    assert.equal(c.method, 'ties');
    assert.equal(c.form, 'models');
    assert.equal(c.baseModel?.path, path.join(dir, 'models/base'));
    assert.equal(c.baseModel?.kind, 'folder');
    assert.deepEqual(
      c.slices[0].sources.map((s) => [s.model.written, s.layerRange, s.parameters]),
      [
        ['./models/base', null, {}],
        ['./models/expert-math', null, { density: 0.5, weight: 0.6 }],
        ['./models/expert-code', null, { density: [0.3, 0.7], weight: [{ filter: 'attn', value: 0.7 }, { value: 0.4 }] }],
      ],
    );
    assert.deepEqual(c.parameters, { lambda: 1, normalize: true });
    assert.equal(c.dtype, 'F32');
    assert.equal(c.outDtype, 'F16');
    assert.equal(c.output, path.join(dir, 'merged/ties'));
    const tokLine = text.split('\n').findIndex((l) => l.startsWith('tokenizer_source')) + 1;
    assert.deepEqual(
      c.warnings.map((w) => [w.line, w.field, w.severity]),
      [[tokLine, 'tokenizer_source', 'warning']],
    );
    assert.match(c.warnings[0].message, /ignored: Basin merges weights only/);
    assert.equal(referencedModels(c).length, 3);
    assert.ok(isMergeConfigFile(f) && isMergeConfigFile('a.merge.yml') && !isMergeConfigFile('a.basin.yaml'));
  });

  it('an unknown merge_method lists the known ones; a typo gets a suggestion; mergekit-only methods say so', () => {
    const [e] = errors('merge_method: tiez\nmodels:\n  - model: models/a\n');
    assert.match(e, /^1: merge_method: unknown merge-method "tiez"; known: linear, slerp, .*curvature \(did you mean "ties"\?\)$/);
    const [p] = errors('merge_method: passthrough\nmodels:\n  - model: models/a\n');
    assert.match(p, /^1: merge_method: "passthrough" is a mergekit method Basin does not implement; Basin has: linear/);
    assert.match(errors('models:\n  - model: models/a\n')[0], /missing required field "merge_method" \(one of linear, slerp/);
  });

  it('an unknown parameter names the method’s parameters, at its line', () => {
    const es = errors(ok('models:\n  - model: models/a\n    parameters:\n      densty: 0.5\nparameters:\n  lamda: 2\n  foo: 1\n'));
    assert.deepEqual(es, [
      '6: models[0].parameters.densty: unknown parameter "densty" for merge_method ties (did you mean "density"?)',
      '8: parameters.lamda: unknown parameter "lamda" for merge_method ties (did you mean "lambda"?)',
      '9: parameters.foo: unknown parameter "foo" for merge_method ties (its parameters: weight, density, lambda, normalize)',
    ]);
  });

  it('mergekit’s int8_mask is a warning, not an error', () => {
    const ds = validateMergeConfigText(ok('models:\n  - model: models/a\nparameters:\n  int8_mask: true\n'), file);
    assert.deepEqual(ds.map((d) => `${d.line} ${d.severity} ${d.field}`), ['6 warning parameters.int8_mask']);
  });

  it('a global parameter under a model is an error (mergekit would ignore it silently)', () => {
    assert.deepEqual(errors(ok('models:\n  - model: models/a\n    parameters:\n      lambda: 0.5\n')), [
      '6: models[0].parameters.lambda: "lambda" is a global parameter of ties, not a per-model one: write it under the top-level (or slice) parameters',
    ]);
  });

  it('values out of range (scalars, gradient entries, filter values) and of the wrong type, at their lines', () => {
    const es = errors(
      ok(
        [
          'models:',
          '  - model: models/a',
          '    parameters:',
          '      density: 0', // exclusiveMinimum 0
          '      weight: [1, "x"]',
          '  - model: models/b',
          '    parameters:',
          '      density: [0.5, 1.5]',
          '      weight:',
          '        - filter: attn',
          '          value: true',
          'parameters:',
          '  normalize: 3',
          '  lambda: .inf',
        ].join('\n'),
      ),
    );
    assert.deepEqual(es, [
      '6: models[0].parameters.density: density must be > 0, got 0',
      '7: models[0].parameters.weight[1]: weight must be a number, got the string "x"',
      '10: models[1].parameters.density[1]: density must be <= 1, got 1.5',
      '13: models[1].parameters.weight[0].value: weight must be a number, got the boolean true',
      '15: parameters.normalize: normalize must be true or false, got 3',
      '16: parameters.lambda: lambda must be a number, got Infinity',
    ]);
  });

  it('a filter without a value, a mixed list, an integer gradient and an empty gradient are errors', () => {
    const es = errors(
      'merge_method: dare_ties\nbase_model: models/base\nmodels:\n  - model: models/a\nparameters:\n  density:\n    - filter: mlp\n  weight: [{filter: a, value: 1}, 2]\n  seed: [1, 2]\n  lambda: []\n',
    );
    assert.equal(es.length, 4, es.join('\n'));
    assert.match(es[0], /^7: parameters.density\[0\]: density: a \{filter, value\} entry needs a value/);
    assert.match(es[1], /^8: parameters.weight\[1\]: weight: a list of \{filter, value\} entries cannot mix in plain values/);
    assert.match(es[2], /^9: parameters.seed: seed must be a single integer/);
    assert.match(es[3], /^10: parameters.lambda: lambda: a gradient needs at least one value/);
  });

  it('a hub id, a missing path, a non-safetensors file and an empty folder are errors naming the line', () => {
    const es = errors(ok('models:\n  - model: mistralai/Mistral-7B-v0.1\n  - model: ./nope/x.safetensors\n  - model: notes.txt\n  - model: empty\n'));
    assert.equal(es.length, 4, es.join('\n'));
    assert.match(es[0], /^4: models\[0\].model: "mistralai\/Mistral-7B-v0.1" is not a local file or folder .*it looks like a Hugging Face hub id\. Basin does not download models; give a local folder or \.safetensors file$/);
    assert.match(es[1], /^5: models\[1\].model: ".\/nope\/x.safetensors" is not a local file or folder/);
    assert.doesNotMatch(es[1], /hub id/);
    assert.match(es[2], /^6: models\[2\].model: "notes.txt" is not a .safetensors file/);
    assert.match(es[3], /^7: models\[3\].model: folder "empty" holds no run.json/);
  });

  it('a method that needs a base model without base_model is an error; one that does not is fine', () => {
    assert.deepEqual(errors('merge_method: task_arithmetic\nmodels:\n  - model: models/a\n'), [
      '1: base_model: merge_method task_arithmetic needs a base model (its task vectors are θ_t − θ₀): add base_model',
    ]);
    assert.deepEqual(errors('merge_method: linear\nmodels:\n  - model: models/a\n  - model: plain.safetensors\n'), []);
    // A base_model that is given but refused (a hub id) has its own error, not also "add base_model".
    const hub = errors('merge_method: task_arithmetic\nbase_model: mistralai/Mistral-7B-v0.1\nmodels:\n  - model: models/a\n');
    assert.equal(hub.length, 1, hub.join('\n'));
    assert.match(hub[0], /^2: base_model: "mistralai\/Mistral-7B-v0.1" is not a local file or folder .*hub id/);
    // The same for a slice's own base_model.
    const sliceHub = errors('merge_method: task_arithmetic\nslices:\n  - sources:\n      - model: models/a\n        layer_range: [0, 1]\n    base_model: mistralai/Mistral-7B-v0.1\n');
    assert.equal(sliceHub.length, 1, sliceHub.join('\n'));
    assert.match(sliceHub[0], /^6: slices\[0\]\.base_model: .*hub id/);
  });

  it('without base_model, the base every model was fine-tuned from (run.json lineage) is used, with a warning', async () => {
    // Two fine-tune runs of one base checkpoint, and a third of another base.
    const baseRun = path.join(dir, 'runs', 'base');
    const baseCk = path.join(baseRun, 'checkpoints', 'step-10.safetensors');
    const otherCk = path.join(baseRun, 'checkpoints', 'step-5.safetensors');
    await model(baseCk);
    await model(otherCk);
    fs.writeFileSync(path.join(baseRun, 'run.json'), JSON.stringify({ lineage: {} }));
    for (const [name, parent] of [['ft-a', baseCk], ['ft-b', baseCk], ['ft-c', otherCk]] as const) {
      const run = path.join(dir, 'runs', name);
      await model(path.join(run, 'checkpoints', 'step-20.safetensors'));
      fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ lineage: { relation: 'fine-tune', parentCheckpoint: parent, parentRun: baseRun } }));
    }
    const c = parseMergeConfig('merge_method: ties\nmodels:\n  - model: runs/ft-a\n  - model: runs/ft-b/checkpoints/step-20.safetensors\n', file);
    assert.equal(c.baseModel?.path, fs.realpathSync(baseCk));
    assert.equal(c.baseModel?.kind, 'checkpoint');
    assert.deepEqual(
      c.warnings.map((w) => [w.line, w.field]),
      [[2, 'base_model']],
    );
    assert.match(c.warnings[0].message, /^not given: using runs\/base\/checkpoints\/step-10\.safetensors, the checkpoint every model was fine-tuned from \(run\.json lineage\)$/);
    // Runs of different bases: still an error, saying why.
    assert.deepEqual(errors('merge_method: ties\nmodels:\n  - model: runs/ft-a\n  - model: runs/ft-c\n'), [
      '1: base_model: merge_method ties needs a base model (its task vectors are θ_t − θ₀): add base_model (their runs were fine-tuned from different bases)',
    ]);
    // A model without lineage (a plain file): the plain error.
    assert.deepEqual(errors('merge_method: ties\nmodels:\n  - model: runs/ft-a\n  - model: plain.safetensors\n'), [
      '1: base_model: merge_method ties needs a base model (its task vectors are θ_t − θ₀): add base_model',
    ]);
    // Fine-tunes of a sharded model (a merged one) record its index: the base is that model's folder.
    const sharded = path.join(dir, 'merged-sharded');
    await model(path.join(sharded, 'model-00001-of-00001.safetensors'));
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'model-00001-of-00001.safetensors' } }));
    for (const name of ['ft-s1', 'ft-s2']) {
      const run = path.join(dir, 'runs', name);
      await model(path.join(run, 'checkpoints', 'step-20.safetensors'));
      fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ lineage: { relation: 'fine-tune', parentCheckpoint: path.join(sharded, 'model.safetensors.index.json') } }));
    }
    const fromSharded = parseMergeConfig('merge_method: ties\nmodels:\n  - model: runs/ft-s1\n  - model: runs/ft-s2\n', file);
    assert.equal(fromSharded.baseModel?.path, fs.realpathSync(sharded));
    assert.equal(fromSharded.baseModel?.kind, 'sharded');
    // A common base that is not a model Basin reads (a file of another kind): said, not "different bases".
    fs.writeFileSync(path.join(dir, 'base-notes.txt'), 'not a model');
    for (const name of ['ft-t1', 'ft-t2']) {
      const run = path.join(dir, 'runs', name);
      await model(path.join(run, 'checkpoints', 'step-20.safetensors'));
      fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ lineage: { relation: 'fine-tune', parentCheckpoint: path.join(dir, 'base-notes.txt') } }));
    }
    const unreadable = errors('merge_method: ties\nmodels:\n  - model: runs/ft-t1\n  - model: runs/ft-t2\n');
    assert.equal(unreadable.length, 1, unreadable.join('\n'));
    assert.match(unreadable[0], /add base_model \(their runs' common base is not a model Basin reads: .*base-notes\.txt: .*is not a \.safetensors file/);
    // A base given explicitly wins over the lineage, with no warning.
    const given = parseMergeConfig('merge_method: ties\nbase_model: models/base\nmodels:\n  - model: runs/ft-a\n  - model: runs/ft-b\n', file);
    assert.equal(given.baseModel?.path, path.join(dir, 'models/base'));
    assert.deepEqual(given.warnings, []);
  });

  it('models and slices are exclusive; one is required', () => {
    assert.match(errors(ok('models:\n  - model: models/a\nslices:\n  - sources:\n      - model: models/a\n        layer_range: [0, 1]\n'))[0], /^5: slices: give either "models" or "slices", not both/);
    assert.match(errors(ok(''))[0], /missing "models" \(whole models to merge\) or "slices"/);
    assert.match(errors(ok('models: []\n'))[0], /^3: models: must be a non-empty list/);
  });

  it('slices: layer ranges are checked, sources must span as many layers, slice base models are read', () => {
    const c = parseMergeConfig(
      ok('slices:\n  - sources:\n      - model: models/a\n        layer_range: [0, 2]\n        parameters: {weight: 0.3}\n      - model: models/b\n        layer_range: [2, 4]\n    parameters:\n      density: 0.5\n    base_model: models/b\n'),
      file,
    );
    assert.equal(c.form, 'slices');
    assert.deepEqual(c.slices[0].sources.map((s) => s.layerRange), [[0, 2], [2, 4]]);
    assert.deepEqual(c.slices[0].sources[0].parameters, { weight: 0.3 });
    assert.deepEqual(c.slices[0].parameters, { density: 0.5 });
    assert.equal(c.slices[0].baseModel?.written, 'models/b');
    const es = errors(
      ok('slices:\n  - sources:\n      - model: models/a\n        layer_range: [0, 2]\n      - model: models/b\n        layer_range: [0, 3]\n  - sources:\n      - model: models/a\n        layer_range: [3, 3]\n      - model: models/b\n  - sources:\n      - model: models/a\n        layer_range: [-1, 2.5]\n'),
    );
    assert.deepEqual(es.map((e) => e.replace(/ got .*$/, '')), [
      '5: slices[0].sources: every source of a slice must span the same number of layers,',
      '11: slices[1].sources[0].layer_range: [3, 3] is empty: the end is exclusive and must be above the first layer',
      '12: slices[1].sources[1].layer_range: missing required field "layer_range" ([first, end) layers of the model)',
      '15: slices[2].sources[0].layer_range: must be [first, end] with non-negative integers,',
    ]);
  });

  it('unknown keys are errors with suggestions; mergekit keys Basin ignores are warnings', () => {
    const text = ok('merge_methd: x\nmodels:\n  - model: models/a\n    paramters: {}\nchat_template: chatml\ntokenizer:\n  source: union\nbasin:\n  outptu: x\n');
    const ds = validateMergeConfigText(text, file);
    assert.deepEqual(
      ds.map((d) => `${d.line} ${d.severity} ${d.field}: ${d.message}`),
      [
        '3 error merge_methd: unknown field "merge_methd" (did you mean "merge_method"?)',
        '6 error models[0].paramters: unknown field "paramters" (did you mean "parameters"?)',
        '7 warning chat_template: ignored: Basin writes no chat template',
        '8 warning tokenizer: ignored: Basin merges weights only and writes no tokenizer',
        '11 error basin.outptu: unknown field "outptu" (did you mean "output"?)',
      ],
    );
  });

  it('YAML syntax errors, aliases and non-mapping documents are reported, never thrown', () => {
    assert.match(validateMergeConfigText('merge_method: ties\nmodels: [\n', file)[0].message, /YAML syntax error/);
    assert.match(validateMergeConfigText('a: &x 1\nb: *x\n', file)[0].message, /aliases/);
    assert.match(validateMergeConfigText('- 1\n', file)[0].message, /must be a mapping/);
    assert.match(validateMergeConfigText('', file)[0].message, /must be a mapping/);
    assert.throws(() => loadMergeConfig(path.join(dir, 'missing.merge.yaml')), /cannot read the merge config \(ENOENT\)/);
  });

  it('dtypes accept mergekit’s names (and torch. prefixes); basin.max_shard_bytes is checked', () => {
    const c = parseMergeConfig(ok('models:\n  - model: models/a\ndtype: torch.bfloat16\nout_dtype: fp16\nbasin:\n  max_shard_bytes: 1000\n'), file);
    assert.equal(c.dtype, 'BF16');
    assert.equal(c.outDtype, 'F16');
    assert.equal(c.maxShardBytes, 1000);
    const es = errors(ok('models:\n  - model: models/a\ndtype: float64\nbasin:\n  max_shard_bytes: 0\n'));
    assert.match(es[0], /^5: dtype: must be one of float32, float16, bfloat16, fp32, fp16, bf16, got the string "float64"/);
    assert.match(es[1], /^7: basin.max_shard_bytes: must be a positive integer/);
  });

  it('model references resolve relative to the config’s folder, following mergekit names', () => {
    assert.equal(resolveModelRef(dir, 'models/a').kind, 'folder');
    assert.equal(resolveModelRef(dir, 'plain.safetensors').kind, 'safetensors');
    fs.writeFileSync(path.join(dir, 'step-1.opt.safetensors'), '');
    assert.throws(() => resolveModelRef(dir, 'step-1.opt.safetensors'), /optimizer-state file/);
  });

  describe('the JSON schema (schemas/merge-config.schema.json)', () => {
    it('is up to date with the registry (regenerate: npx tsx src/files/merge/write-schema.ts)', () => {
      assert.equal(fs.readFileSync(MERGE_SCHEMA_FILE, 'utf8'), mergeSchemaFileText(), 'schemas/merge-config.schema.json is stale: run npx tsx src/files/merge/write-schema.ts');
    });

    it('is contributed for *.merge.yaml / *.merge.yml', () => {
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
      const entry = pkg.contributes.yamlValidation.find((e: { url: string }) => e.url === './schemas/merge-config.schema.json');
      assert.deepEqual(entry?.fileMatch, ['*.merge.yaml', '*.merge.yml']);
    });

    it('accepts the example and the loader’s good configs, and rejects what the loader rejects', () => {
      const validate = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(fs.readFileSync(MERGE_SCHEMA_FILE, 'utf8')));
      const example = YAML.parse(fs.readFileSync(path.join(ROOT, 'examples/ties.merge.yaml'), 'utf8')) as Record<string, unknown>;
      assert.ok(validate(example), JSON.stringify(validate.errors));
      const bad = [
        { ...example, merge_method: 'tiez' },
        { ...example, parameters: { lamda: 1 } },
        { ...example, parameters: { lambda: 'x' } },
        { ...example, models: [{ model: 'a', parameters: { lambda: 1 } }] }, // global parameter per model
        { ...example, models: [{ model: 'a', parameters: { density: 1.5 } }] },
        { ...example, models: [{ model: 'a', parameters: { density: [{ filter: 'x' }] } }] },
        { ...example, merge_methd: 'ties' },
      ];
      for (const b of bad) assert.ok(!validate(b), JSON.stringify(b));
      for (const m of mergeMethodRegistry.names) assert.ok(validate({ merge_method: m, models: [{ model: 'a' }] }), m);
    });
  });
});
