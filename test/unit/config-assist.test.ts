// The pure parts of Basin's YAML completion and hover (src/host/config/yaml-context.ts, schema-nav.ts): where the
// cursor is in a half-typed config, and what the schema offers there. The providers themselves run in the vscode
// tier (test/vscode/suite/config-assist.test.ts).
import * as assert from 'node:assert/strict';
import { yamlContext, yamlKeyAt } from '../../src/host/config/yaml-context';
import { objectProps, schemaAt, typeChoices, yamlValue, type Schema } from '../../src/host/config/schema-nav';
import { trainConfigSchema } from '../../src/files/config/schema';

const SCHEMA = trainConfigSchema as unknown as Schema;
const DEMO = `name: demo
model:
  type: transformer
  vocab: 64
  
train:
  steps: 400
  batc
  optimizer: { type: adamw, lr: 0.003, b }
  schedule:
    type: 
data: { type: synthetic-sequences, sequences: 2000 }
`.split('\n');

describe('config assist: cursor context in YAML', () => {
  it('a key being typed in a block mapping, with its path and siblings', () => {
    const c = yamlContext(DEMO, 7, 6)!; // "  batc|"
    assert.deepEqual(c.path, ['train']);
    assert.equal(c.at, 'key');
    assert.equal(c.prefix, 'batc');
    assert.equal(c.prefixStart, 2);
    assert.ok('steps' in c.siblings && 'optimizer' in c.siblings);
  });

  it('an empty line inside a section: the cursor column is the indentation', () => {
    const c = yamlContext(DEMO, 4, 2)!;
    assert.deepEqual(c.path, ['model']);
    assert.equal(c.at, 'key');
    assert.equal(c.siblings.type, 'transformer');
    const top = yamlContext(DEMO, 4, 0)!;
    assert.deepEqual(top.path, []);
  });

  it('inside a one-line flow mapping: key and value positions', () => {
    const key = yamlContext(DEMO, 8, 40)!; // after ", b"
    assert.deepEqual(key.path, ['train', 'optimizer']);
    assert.equal(key.at, 'key');
    assert.equal(key.prefix, 'b');
    assert.equal(key.siblings.type, 'adamw');
    const val = yamlContext(DEMO, 8, 26)!; // "type: adamw|"
    assert.equal(val.at, 'value');
    assert.equal(val.key, 'type');
    assert.equal(val.prefix, 'adamw');
  });

  it('a value after "type: " in a block section', () => {
    const c = yamlContext(DEMO, 10, 10)!;
    assert.deepEqual(c.path, ['train', 'schedule']);
    assert.equal(c.at, 'value');
    assert.equal(c.key, 'type');
    assert.equal(c.prefix, '');
  });

  it('nothing in comments and inside arrays', () => {
    assert.equal(yamlContext(['# model: x'], 0, 5), undefined);
    assert.equal(yamlContext(['model: { hidden: [1, '], 0, 20), undefined);
  });

  it('the key under the cursor, for hover', () => {
    const k = yamlKeyAt(DEMO, 8, 17)!; // on "type" inside the optimizer's flow mapping
    assert.equal(k.key, 'type');
    assert.deepEqual(k.path, ['train', 'optimizer']);
    assert.equal(k.value, 'adamw');
    const s = yamlKeyAt(DEMO, 6, 3)!;
    assert.equal(s.key, 'steps');
    assert.deepEqual(s.path, ['train']);
  });
});

describe('config assist: schema navigation', () => {
  it('top-level and train keys', () => {
    assert.deepEqual(objectProps(SCHEMA).map((p) => p.name).filter((n) => n !== '$schema'), ['name', 'seed', 'model', 'data', 'init', 'train', 'output']);
    const train = objectProps(schemaAt(SCHEMA, ['train'], () => undefined)).map((p) => p.name);
    assert.ok(train.includes('batchSize') && train.includes('optimizer'));
  });

  it("a section's type selects its entry's parameters; without one, every entry's, marked", () => {
    const opt = schemaAt(SCHEMA, ['train', 'optimizer'], () => undefined);
    const adamw = objectProps(opt, 'adamw').map((p) => p.name);
    assert.ok(adamw.includes('betas') && adamw.includes('weightDecay'));
    const sgd = objectProps(opt, 'sgd').map((p) => p.name);
    assert.ok(sgd.includes('momentum') && !sgd.includes('betas'));
    const any = objectProps(opt);
    assert.deepEqual(any.find((p) => p.name === 'momentum')?.onlyFor, ['sgd']);
    assert.deepEqual(typeChoices(opt).map((c) => c.name), ['adamw', 'sgd', 'adafactor', 'mao']);
    const model = schemaAt(SCHEMA, ['model'], () => undefined);
    assert.deepEqual(typeChoices(model).map((c) => c.name), ['transformer', 'mlp', 'sasrec']);
  });

  it('YAML text of defaults', () => {
    assert.equal(yamlValue([0.9, 0.999]), '[0.9, 0.999]');
    assert.equal(yamlValue('runs'), 'runs');
    assert.equal(yamlValue('1abc'), '"1abc"');
  });
});
