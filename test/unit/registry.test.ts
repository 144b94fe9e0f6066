// The registries (src/files/registry/): one shape for every family, names unique, lookups that list the known
// names, and metadata that agrees with what the engine builds from it.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadConfig, parseConfig } from '../../src/files/config/load';
import { UnknownEntryError } from '../../src/files/registry/entry';
import { dataRegistry } from '../../src/files/registry/data-sources';
import { lossRegistry } from '../../src/files/registry/losses';
import { modelRegistry } from '../../src/files/registry/models';
import { optimizerRegistry } from '../../src/files/registry/optimizers';
import { scheduleRegistry } from '../../src/files/registry/schedules';
import { buildModel } from '../../src/engine/nn/registry';

const ROOT = path.resolve(__dirname, '../..');

describe('registries', () => {
  it('every family has documented entries with documented parameters', () => {
    for (const reg of [modelRegistry, dataRegistry, optimizerRegistry, scheduleRegistry, lossRegistry]) {
      assert.ok(reg.entries.length > 0, reg.kind);
      for (const e of reg.entries) {
        assert.ok(e.title.length > 10, `${reg.kind} ${e.name} has a title`);
        for (const [k, p] of Object.entries(e.params)) assert.ok(p.doc.length > 5, `${reg.kind} ${e.name}.${k} has a doc`);
      }
    }
  });

  it('an unknown name is refused with the known ones', () => {
    assert.throws(() => optimizerRegistry.get('adam'), (e: unknown) => e instanceof UnknownEntryError && /unknown optimizer "adam"; known: adamw, sgd, adafactor/.test(e.message));
  });

  it("a model entry's parameter count equals what the engine builds", () => {
    const configs = [
      loadConfig(path.join(ROOT, 'examples/demo.basin.yaml')).config,
      loadConfig(path.join(ROOT, 'examples/mlp.basin.yaml')).config,
      parseConfig('model: { type: transformer, vocab: 50, dModel: 36, heads: 4, layers: 3, seqLen: 7, mlpRatio: 2.5 }\n', 'odd.basin.yaml'),
      parseConfig('model: { type: mlp, inputs: 5, hidden: [], classes: 3 }\ndata: { type: synthetic-classification }\n', 'lin.basin.yaml'),
    ];
    for (const c of configs) {
      const built = buildModel(c.model, 1).declarations().reduce((n, d) => n + d.shape.reduce((a, b) => a * b, 1), 0);
      assert.equal(modelRegistry.get(c.model.type).parameters(c.model), built, `${c.name}: ${c.model.type}`);
    }
  });
});
