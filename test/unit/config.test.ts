import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ConfigError,
  loadConfig,
  nameFromFile,
  resolveConfigPath,
  validateConfigText,
  type ConfigDiagnostic,
} from '../../src/files/config/load';
import { schemaFileText, totalSteps, trainConfigSchema, type TrainConfig, type TrainSectionConfig } from '../../src/files/config/schema';
import { dataRegistry } from '../../src/files/registry/data-sources';
import { lossRegistry } from '../../src/files/registry/losses';
import { modelRegistry } from '../../src/files/registry/models';
import { optimizerRegistry } from '../../src/files/registry/optimizers';
import { scheduleRegistry } from '../../src/files/registry/schedules';
import { entrySchema } from '../../src/files/registry/schema';
import type { Registry, RegistryEntry } from '../../src/files/registry/entry';

const ROOT = path.resolve(__dirname, '../..');

// The fields of the two fixed sections, checked at compile time to be exactly the type's keys (`satisfies`), and
// at run time to be exactly the schema's properties and all present after loading. The variant sections' fields
// come from the registries (their TS types are derived from the same entries).
const keys = <T>() => <K extends Record<keyof T, true>>(k: K & Record<Exclude<keyof K, keyof T>, never>) => Object.keys(k).sort();
const REGISTRIES = { model: modelRegistry, data: dataRegistry, optimizer: optimizerRegistry, schedule: scheduleRegistry, loss: lossRegistry } as Record<string, Registry<RegistryEntry>>;
const entryFields = (reg: Registry<RegistryEntry>, type: string) => ['type', ...Object.keys(reg.get(type).params)].sort();
const FIELDS = {
  top: keys<TrainConfig>()({ $schema: true, name: true, seed: true, model: true, data: true, init: true, train: true, output: true }),
  train: keys<TrainSectionConfig>()({
    steps: true,
    epochs: true,
    batchSize: true,
    optimizer: true,
    schedule: true,
    loss: true,
    gradClip: true,
    precision: true,
    lossScale: true,
    freeze: true,
    unfreeze: true,
    lora: true,
    adapters: true,
    earlyStopping: true,
    ewc: true,
    evalEvery: true,
    checkpointEvery: true,
    statsEvery: true,
    logEvery: true,
  }),
};

type AnySchema = { properties?: Record<string, AnySchema>; oneOf?: AnySchema[]; const?: string; type?: unknown; description?: string; items?: AnySchema };
const S = trainConfigSchema as unknown as AnySchema;
const branch = (s: AnySchema, type: string): AnySchema => s.oneOf!.find((b) => b.properties!.type.const === type)!;
const propsOf = (s: AnySchema) => Object.keys(s.properties!).sort();

/** Every field the schema declares for this object's branch must be set after loading. */
function assertComplete(obj: Record<string, unknown>, fields: string[], where: string, optional: string[] = []) {
  for (const f of fields) if (!optional.includes(f)) assert.notEqual(obj[f], undefined, `${where}.${f} is set after loading`);
  for (const k of Object.keys(obj)) assert.ok(fields.includes(k), `${where}.${k} is a declared field`);
}

function checkLoaded(c: TrainConfig, where: string) {
  assertComplete(c as unknown as Record<string, unknown>, FIELDS.top, where, ['$schema', 'init']);
  assertComplete(c.model as unknown as Record<string, unknown>, entryFields(modelRegistry, c.model.type), `${where}.model`);
  assertComplete(c.data as unknown as Record<string, unknown>, entryFields(dataRegistry, c.data.type), `${where}.data`);
  assertComplete(c.train as unknown as Record<string, unknown>, FIELDS.train, `${where}.train`, ['steps', 'epochs', 'lora', 'adapters', 'earlyStopping', 'ewc']);
  assert.ok((c.train.steps === undefined) !== (c.train.epochs === undefined), 'exactly one of steps / epochs');
  assertComplete(c.train.optimizer as unknown as Record<string, unknown>, entryFields(optimizerRegistry, c.train.optimizer.type), `${where}.train.optimizer`);
  assertComplete(c.train.schedule as unknown as Record<string, unknown>, entryFields(scheduleRegistry, c.train.schedule.type), `${where}.train.schedule`);
  assertComplete(c.train.loss as unknown as Record<string, unknown>, entryFields(lossRegistry, c.train.loss.type), `${where}.train.loss`);
  // Types the trainer relies on.
  assert.equal(typeof c.name, 'string');
  assert.ok(Number.isInteger(c.seed) && Number.isInteger(c.data.seed));
  assert.ok(Number.isInteger(c.train.batchSize) && c.train.batchSize > 0);
  assert.ok(c.train.optimizer.lr > 0);
  if (c.model.type === 'transformer') assert.equal(c.model.dModel % c.model.heads, 0);
}

describe('config schema', () => {
  it('schemas/train-config.schema.json is generated from schema.ts (regenerate: npx tsx src/files/config/write-schema.ts)', () => {
    const file = path.join(ROOT, 'schemas/train-config.schema.json');
    assert.equal(fs.readFileSync(file, 'utf8'), schemaFileText(), 'stale schema file: run `npx tsx src/files/config/write-schema.ts`');
  });

  it('the variant sections of the schema are the registries: one branch per entry, generated from it', () => {
    assert.deepEqual(propsOf(S), FIELDS.top);
    const train = S.properties!.train;
    assert.deepEqual(propsOf(train), FIELDS.train);
    const sections: [string, AnySchema][] = [
      ['model', S.properties!.model],
      ['data', S.properties!.data],
      ['optimizer', train.properties!.optimizer],
      ['schedule', train.properties!.schedule],
      ['loss', train.properties!.loss],
    ];
    for (const [kind, section] of sections) {
      const reg = REGISTRIES[kind];
      assert.deepEqual(section.oneOf!.map((b) => b.properties!.type.const), reg.names, kind);
      assert.deepEqual((section.properties!.type as { enum?: string[] }).enum, reg.names, kind);
      for (const e of reg.entries) assert.deepEqual(branch(section, e.name), entrySchema(e), `${kind} ${e.name}`);
    }
    assert.ok(optimizerRegistry.has('adafactor'), 'Adafactor is registered');
  });

  it('every field has a description (for hover in VS Code)', () => {
    const missing: string[] = [];
    const walk = (s: AnySchema, at: string) => {
      if (!s.description) missing.push(at);
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${at}.${k}`);
      for (const b of s.oneOf ?? []) walk(b, `${at}<${b.properties?.type?.const}>`);
    };
    walk(S, '(root)');
    assert.deepEqual(missing, []);
  });
});

describe('loadConfig', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-config-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, text: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  /** The ConfigError a load throws, with its diagnostics. */
  const loadError = (p: string): ConfigError => {
    try {
      loadConfig(p);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e;
    }
    assert.fail(`${p} loaded without error`);
  };

  for (const example of ['demo.basin.yaml', 'mlp.basin.yaml', 'demo-adapters.basin.yaml']) {
    it(`examples/${example} loads, and with defaults applied sets every field the trainer reads`, () => {
      const { config, source, path: abs } = loadConfig(path.join(ROOT, 'examples', example));
      assert.ok(source.length > 0);
      assert.ok(path.isAbsolute(abs));
      checkLoaded(config, example);
    });
  }

  it('the demo is a small transformer on synthetic sequences', () => {
    const { config } = loadConfig(path.join(ROOT, 'examples/demo.basin.yaml'));
    assert.equal(config.model.type, 'transformer');
    assert.equal(config.data.type, 'synthetic-sequences');
    if (config.model.type !== 'transformer' || config.data.type !== 'synthetic-sequences') return;
    assert.ok(config.model.vocab >= 64 && config.model.vocab <= 128);
    assert.ok(config.model.dModel <= 64 && config.model.layers <= 2 && config.model.seqLen <= 32);
    assert.ok(config.train.steps! >= 300 && config.train.steps! <= 600);
    assert.equal(config.data.length, config.model.seqLen + 1);
  });

  it('a nearly empty config gets every default (name from the file name, derived data defaults)', () => {
    const p = write('tiny-run.basin.yaml', '# nothing but defaults\nseed: 5\n');
    const { config } = loadConfig(p);
    checkLoaded(config, 'tiny');
    assert.equal(config.name, 'tiny-run');
    assert.equal(config.model.type, 'transformer');
    assert.equal(config.data.type, 'synthetic-sequences');
    if (config.model.type !== 'transformer' || config.data.type !== 'synthetic-sequences') return;
    assert.equal(config.model.vocab, 128);
    assert.equal(config.data.vocab, 128);
    assert.equal(config.data.length, 33);
    assert.equal(config.data.seed, 5);
    assert.equal(config.train.steps, 600);
    assert.deepEqual(config.train.optimizer, { type: 'adamw', lr: 0.003, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    assert.deepEqual(config.train.schedule, { type: 'cosine', warmup: 50, minLrRatio: 0.1 });
    assert.equal(config.output, 'runs');
    assert.equal(resolveConfigPath(p, config.output), path.join(dir, 'runs'));
  });

  it('a wrong type names the file, the line and the field', () => {
    const p = write('wrong-type.basin.yaml', 'name: x\nmodel:\n  type: transformer\n  dModel: big\n');
    const e = loadError(p);
    assert.equal(e.message, `${p}:4:11: model.dModel: must be an integer, got the string "big"`);
    assert.equal(e.diagnostics[0].field, 'model.dModel');
  });

  it('a negative learning rate names the line and train.optimizer.lr', () => {
    const p = write('neg-lr.basin.yaml', 'name: x\ntrain:\n  steps: 10\n  optimizer:\n    type: adamw\n    lr: -0.001\n');
    assert.equal(loadError(p).message, `${p}:6:9: train.optimizer.lr: must be > 0, got -0.001`);
  });

  it('an unknown key is reported at the key, with a suggestion', () => {
    const p = write('unknown.basin.yaml', 'name: x\ntrain:\n  steps: 10\n  batchsize: 8\n  optimizer: { type: sgd, lr: 0.1, momentm: 0.9 }\n');
    const e = loadError(p);
    assert.deepEqual(e.message.split('\n'), [
      `${p}:4:3: train.batchsize: unknown field "batchsize" (did you mean "batchSize"?)`,
      `${p}:5:36: train.optimizer.momentm: unknown field "momentm" (did you mean "momentum"?)`,
    ]);
  });

  it('a missing required field is reported at its parent', () => {
    const p = write('missing.basin.yaml', 'name: x\nmodel:\n  type: mlp\n  inputs: 4\ndata:\n  type: synthetic-classification\n');
    assert.equal(loadError(p).message, `${p}:2:1: model.classes: missing required field "classes"`);
  });

  it('a section that is written names its type (the editor sees the same schema)', () => {
    const p = write('typeless.basin.yaml', 'name: x\ntrain:\n  optimizer:\n    lr: 0.1\n');
    assert.equal(loadError(p).message, `${p}:3:3: train.optimizer.type: missing required field "type" (one of ${optimizerRegistry.names.map((n) => `"${n}"`).join(", ")})`);
  });

  it('an unknown variant names the allowed ones', () => {
    const p = write('variant.basin.yaml', 'train:\n  schedule:\n    type: linear\n');
    assert.equal(loadError(p).message, `${p}:3:11: train.schedule.type: must be one of "cosine", "constant", got the string "linear"`);
  });

  it('a YAML syntax error gives its position', () => {
    const p = write('syntax.basin.yaml', 'name: x\nmodel:\n  type: transformer\n  dModel: [64\ntrain:\n  steps: 3\n');
    const e = loadError(p);
    assert.match(e.message, new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: YAML syntax error: `));
    const d = e.diagnostics[0];
    assert.ok(d.line >= 4 && d.line <= 5, `line ${d.line}`);
    assert.equal(d.field, '');
  });

  it('a JSON config with an error names the line and the field; JSON syntax errors are positioned', () => {
    const p = write(
      'bad.basin.json',
      '{\n  "$schema": "../schemas/train-config.schema.json",\n  "name": "j",\n  "model": {\n    "type": "transformer",\n    "heads": 0\n  }\n}\n',
    );
    assert.equal(loadError(p).message, `${p}:6:14: model.heads: must be >= 1, got 0`);
    const q = write('comma.basin.json', '{\n  "name": "j",\n  "seed": 2,\n}\n');
    const e = loadError(q);
    assert.equal(e.diagnostics[0].line, 4);
    assert.match(e.message, /^.*comma\.basin\.json:4:1: invalid JSON: /);
    const ok = write('good.basin.json', JSON.stringify({ $schema: 'x', name: 'j', model: { type: 'transformer', vocab: 32 }, train: { epochs: 2 } }, null, 2));
    const { config } = loadConfig(ok);
    checkLoaded(config, 'good.basin.json');
    assert.equal(config.train.epochs, 2);
    assert.equal(config.train.steps, undefined);
  });

  it('cross-field problems: heads must divide dModel, model and data must fit, not both steps and epochs', () => {
    const p = write(
      'cross.basin.yaml',
      'model:\n  type: transformer\n  dModel: 30\n  heads: 4\n  vocab: 50\ndata:\n  type: synthetic-sequences\n  vocab: 60\ntrain:\n  steps: 10\n  epochs: 2\n',
    );
    assert.deepEqual(loadError(p).message.split('\n'), [
      `${p}:4:10: model.heads: must divide model.dModel (30), got 4`,
      `${p}:8:10: data.vocab: must be at most model.vocab (50), got 60`,
      `${p}:11:3: train.epochs: set either train.steps or train.epochs, not both`,
    ]);
    const q = write('mismatch.basin.yaml', 'model: { type: mlp, inputs: 3, classes: 2 }\n');
    assert.equal(loadError(q).message, `${q}:1:1: data.type: "synthetic-sequences" needs model.type "transformer" or "sasrec"; model.type "mlp" trains on "synthetic-classification"`);
  });

  it('reports every problem at once, sorted by line', () => {
    const p = write('many.basin.yaml', 'name: "bad name"\nseed: -1\nmodel:\n  type: transformer\n  layers: 1.5\n  dropout: 1\n');
    const e = loadError(p);
    assert.deepEqual(
      e.diagnostics.map((d) => [d.line, d.field]),
      [
        [1, 'name'],
        [2, 'seed'],
        [5, 'model.layers'],
        [6, 'model.dropout'],
      ],
    );
  });

  it('a missing file is a ConfigError', () => {
    assert.match(loadError(path.join(dir, 'nope.basin.yaml')).message, /nope\.basin\.yaml:1:1: cannot read the config \(ENOENT\)/);
  });

  it('totalSteps resolves epochs once the batch count is known', () => {
    assert.equal(totalSteps({ steps: 600 }, 10), 600);
    assert.equal(totalSteps({ epochs: 2.5 }, 10), 25);
    assert.equal(totalSteps({ epochs: 0.01 }, 10), 1);
  });

  it('nameFromFile', () => {
    assert.equal(nameFromFile('/a/b/demo.basin.yaml'), 'demo');
    assert.equal(nameFromFile('x y.basin.json'), 'x-y');
    assert.equal(nameFromFile('.basin.yaml'), 'run');
  });
});

describe('validateConfigText (editor diagnostics)', () => {
  const check = (ds: ConfigDiagnostic[], text: string) => {
    const lines = text.split('\n').length;
    for (const d of ds) {
      assert.ok(d.line >= 1 && d.line <= lines + 1, `line ${d.line}`);
      assert.ok(d.column >= 1 && d.endLine >= d.line, JSON.stringify(d));
      assert.ok(d.endLine > d.line || d.endColumn >= d.column, JSON.stringify(d)); // zero-width only at the very end
      assert.equal(typeof d.message, 'string');
    }
  };

  it('is empty for the examples and 1-based with exclusive ends', () => {
    const demo = fs.readFileSync(path.join(ROOT, 'examples/demo.basin.yaml'), 'utf8');
    assert.deepEqual(validateConfigText(demo, 'demo.basin.yaml'), []);
    const [d] = validateConfigText('seed: x\n', 'a.basin.yaml');
    assert.deepEqual({ ...d }, { line: 1, column: 7, endLine: 1, endColumn: 8, field: 'seed', message: 'must be an integer, got the string "x"', severity: 'error' });
  });

  it('never throws on broken text: 3,000 truncations and byte edits of the examples', function () {
    this.timeout(120000);
    let seed = 99;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
    const sources = ['demo.basin.yaml', 'mlp.basin.yaml'].map((f) => fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8'));
    const json = JSON.stringify({ name: 'j', model: { type: 'mlp', inputs: 2, classes: 3 }, data: { type: 'synthetic-classification' } }, null, 2);
    const junk = ['{', '}', '[', ']', ':', '-', ' ', '\n', '\t', '"', "'", '&a', '*a', '!!str', '#', ',', '?', '|', '>', '%', '@', '0', 'x'];
    let reported = 0;
    for (let i = 0; i < 3000; i++) {
      const isJson = i % 4 === 0;
      let text = isJson ? json : sources[i % 2];
      const k = Math.floor(rnd() * 3);
      if (k === 0) text = text.slice(0, Math.floor(rnd() * text.length));
      else {
        const at = Math.floor(rnd() * text.length);
        const del = Math.floor(rnd() * 4);
        text = text.slice(0, at) + (k === 1 ? junk[Math.floor(rnd() * junk.length)] : '') + text.slice(at + del);
      }
      const ds = validateConfigText(text, isJson ? 'f.basin.json' : 'f.basin.yaml');
      check(ds, text);
      assert.ok(!ds.some((d) => d.message.startsWith('internal error')), JSON.stringify({ text, ds }));
      if (ds.length) reported++;
    }
    assert.ok(reported > 500, `most edits are reported (${reported})`);
  });
});
