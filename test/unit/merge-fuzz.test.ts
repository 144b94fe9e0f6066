import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatFuzzTable, fuzzParser } from '../../bench/fuzz';
import { ConfigError, validateMergeConfigText, parseMergeConfig } from '../../src/files/merge/config';
import { ModelFilesError, parseShardIndex } from '../../src/files/merge/model-files';

// The unit tier of the merge parsers' fuzzing (bench/fuzz.ts targets `merge-config`: parseMergeConfig + planMerge
// over real model files, and `merge-index`: a sharded model's index opened against real shards). The full run is
//   npx tsx bench/fuzz.ts --only merge-config,merge-index --n 100000
// Here: a few hundred generated inputs each, plus hostile inputs written by hand.
const N = Number(process.env.BASIN_MERGE_FUZZ_N ?? 300);

describe('fuzzing the merge config loader and the sharded index parser', () => {
  for (const parser of ['merge-config', 'merge-index'] as const) {
    it(`${parser}: ${N} generated inputs, no crash other than the named errors, no hang`, async function () {
      this.timeout(120_000);
      const r = await fuzzParser(parser, { n: N, seed: 7, timeoutMs: 10_000 });
      const detail = `\n${formatFuzzTable([r])}\n${r.examples.map((e) => `#${e.index}: ${e.error}`).join('\n')}`;
      assert.equal(r.crashes, 0, `unexpected crashes${detail}`);
      assert.equal(r.hangs, 0, `hangs${detail}`);
      assert.equal(r.accepted + r.namedErrors, N, detail);
      assert.ok(r.accepted > 0 && r.namedErrors > 0, detail);
    });
  }

  it('hostile merge configs give ConfigError (or diagnostics), never another exception', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-hostile-'));
    try {
      const file = path.join(dir, 'x.merge.yaml');
      const deep = 'merge_method: ties\nparameters:\n  weight: ' + '['.repeat(2000) + ']'.repeat(2000) + '\n';
      const inputs = [
        '',
        '\0\0\0',
        '~',
        '[]',
        '"merge_method"',
        'merge_method: {a: 1}\nmodels: {}\n',
        'merge_method: ties\nmodels:\n  - model: null\n  - model: [1]\n  - {}\n  - 3\n',
        'merge_method: ties\n__proto__: {polluted: true}\nconstructor: 1\nmodels:\n  - model: x\n',
        'merge_method: ties\nparameters:\n  __proto__: 1\n  toString: 2\n',
        'merge_method: ties\nparameters:\n  weight: [{filter: [1], value: {a: 1}}, {filter: 1e999, value: .nan}]\n',
        'merge_method: ties\n? [complex, key]\n: 1\n',
        'merge_method: ties\nmodels:\n  - model: "\\0"\n',
        'a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n',
        'merge_method: ties\nslices:\n  - sources:\n      - {model: x, layer_range: [9007199254740993, 1e308]}\n',
        deep,
        'merge_method: ties\nmodels:\n' + '  - model: nope\n'.repeat(5000),
      ];
      for (const text of inputs) {
        try {
          parseMergeConfig(text, file);
        } catch (e) {
          assert.ok(e instanceof ConfigError, `${JSON.stringify(text.slice(0, 60))}: ${String(e)}`);
        }
        const ds = validateMergeConfigText(text, file);
        assert.ok(Array.isArray(ds));
        assert.ok(!ds.some((d) => d.message.startsWith('internal error')), `${JSON.stringify(text.slice(0, 60))}: ${ds.map((d) => d.message).join('; ')}`);
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hostile indices give ModelFilesError, never another exception', () => {
    const inputs = [
      '',
      'null',
      '"x"',
      '{"weight_map": null}',
      '{"weight_map": {"__proto__": "a.safetensors"}}',
      '{"weight_map": {"a": "a.safetensors"}, "metadata": []}',
      '{"weight_map": {"a": {"toString": 1}}}',
      '{"weight_map": {"a": "' + 'x/'.repeat(10000) + 'y.safetensors"}}',
      '{"weight_map": {"a": "./././../b.safetensors"}}',
      '[' .repeat(100000),
    ];
    for (const text of inputs) {
      try {
        const idx = parseShardIndex(text, '/tmp/m/model.safetensors.index.json');
        // an accepted index keeps every shard inside its folder
        for (const s of idx.shards) assert.ok(s.startsWith('/tmp/m/'), s);
      } catch (e) {
        assert.ok(e instanceof ModelFilesError, `${JSON.stringify(text.slice(0, 60))}: ${String(e)}`);
      }
    }
  });
});
