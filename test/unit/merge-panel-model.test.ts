// The merge panel's grid model and its YAML edits (src/host/merge/merge-model.ts), on real tiny models on disk:
// the grid's columns and cells follow the plan; exclusions, per-cell densities, row and global values and method
// changes write mergekit conditionals through the Document API (comments and untouched keys survive), and reading
// the written YAML back gives the same grid (the round trip the panel relies on).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { parseMergeConfig } from '../../src/files/merge/config';
import { planMerge } from '../../src/files/merge/plan';
import { writeSafetensors } from '../../src/files/safetensors';
import { buildGrid, editMergeYaml, notGridEditable, textDelta, MergeEditError, type GridModel } from '../../src/host/merge/merge-model';
import { previewByLayer, saliencyCells } from '../../src/host/merge/merge-source';
import type { MergeJobResult } from '../../src/protocol/worker';

const SHAPES: Record<string, number[]> = {
  'tok.weight': [5, 3],
  'blocks.0.norm.weight': [3],
  'blocks.0.mlp.weight': [3, 3],
  'blocks.1.norm.weight': [3],
  'blocks.1.mlp.weight': [3, 3],
  'blocks.2.norm.weight': [3],
  'blocks.2.mlp.weight': [3, 3],
  'norm.weight': [3],
};

async function model(file: string, seed: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeSafetensors(
    file,
    Object.entries(SHAPES).map(([name, shape]) => ({
      name,
      dtype: 'F32' as const,
      shape,
      data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(seed * 7 + i)),
    })),
  );
}

describe('merge panel: grid model and YAML edits', () => {
  let dir = '';
  let file = '';
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-grid-'));
    await model(path.join(dir, 'base.safetensors'), 1);
    await model(path.join(dir, 'a.safetensors'), 2);
    await model(path.join(dir, 'b.safetensors'), 3);
    file = path.join(dir, 'x.merge.yaml');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const TEXT = `# my merge — this comment must survive
merge_method: ties
base_model: ./base.safetensors
models:
  - model: ./base.safetensors
  - model: ./a.safetensors   # expert A
    parameters:
      weight: 0.6
  - model: ./b.safetensors
    parameters:
      density: [0.3, 0.7]
      weight: [{ filter: mlp, value: 0.7 }, { value: 0.4 }]
parameters:
  lambda: 1.0
tokenizer_source: base
`;

  async function grid(text: string): Promise<GridModel> {
    const c = parseMergeConfig(text, file);
    return buildGrid(c, await planMerge(c));
  }

  it('builds experts × layers (+ other) with resolved cells; the listed base is not a row', async () => {
    const g = await grid(TEXT);
    assert.deepEqual(g.columns.map((c) => c.key), ['L0', 'L1', 'L2', 'other']);
    assert.deepEqual(g.columns[0].filters, ['blocks.0.']);
    assert.deepEqual(g.columns[3].filters, ['tok.weight', 'norm.weight']);
    assert.deepEqual(g.rows.map((r) => r.written), ['./a.safetensors', './b.safetensors']);
    assert.deepEqual(g.rows.map((r) => r.yamlIndex), [1, 2]);
    assert.deepEqual(g.cellParams, ['weight', 'density']);
    assert.equal(g.cells[0][1].values.weight, 0.6);
    // b: mlp tensors 0.7, norms 0.4 → its layer cells are mixed; the "other" column has no mlp tensor.
    assert.equal(g.cells[1][0].values.weight, null);
    assert.equal(g.cells[1][3].values.weight, 0.4);
    assert.equal(g.cells[1][0].values.density, 0.3, 'a gradient at t = 0 (first layer)');
    assert.equal(g.cells[1][2].values.density, 0.7, 'and at t = 1 (last layer)');
  });

  it('excluding a layer writes a weight filter in front of the rest; comments survive; the grid reads it back', async () => {
    const g = await grid(TEXT);
    const out = editMergeYaml(TEXT, g, { kind: 'include', cells: [[0, 1]], included: false });
    assert.match(out, /# my merge — this comment must survive/);
    assert.match(out, /# expert A/);
    assert.match(out, /tokenizer_source: base/);
    const y = parse(out);
    assert.deepEqual(y.models[1].parameters.weight, [{ filter: 'blocks.1.', value: 0 }, { value: 0.6 }]);
    assert.deepEqual(y.models[2], parse(TEXT).models[2], 'the other expert is untouched');
    const g2 = await grid(out);
    assert.equal(g2.cells[0][1].values.weight, 0);
    assert.equal(g2.cells[0][1].overrides.weight, 0);
    assert.equal(g2.cells[0][0].values.weight, 0.6);
    // Including it again gives the original setting back (a plain scalar).
    const back = editMergeYaml(out, g2, { kind: 'include', cells: [[0, 1]], included: true });
    assert.deepEqual(parse(back).models[1].parameters.weight, 0.6);
  });

  it("keeps the user's own filters after the panel's entries, and a column edit covers every expert", async () => {
    const g = await grid(TEXT);
    const out = editMergeYaml(TEXT, g, { kind: 'include', cells: [[0, 2], [1, 2]], included: false });
    const y = parse(out);
    assert.deepEqual(y.models[2].parameters.weight, [{ filter: 'blocks.2.', value: 0 }, { filter: 'mlp', value: 0.7 }, { value: 0.4 }]);
    const g2 = await grid(out);
    assert.equal(g2.cells[1][2].values.weight, 0);
    assert.equal(g2.cells[1][1].values.weight, null, 'still mixed where the user filter applies');
  });

  it('the "other" column: one entry per tensor name, with a guard when a name also sits inside a layer tensor', async () => {
    const g = await grid(TEXT);
    const out = editMergeYaml(TEXT, g, { kind: 'include', cells: [[0, 3]], included: false });
    // norm.weight occurs in blocks.0.norm.weight: the guard gives the layers the rest first.
    assert.deepEqual(parse(out).models[1].parameters.weight, [
      { filter: 'blocks.', value: 0.6 },
      { filter: 'tok.weight', value: 0 },
      { filter: 'norm.weight', value: 0 },
      { value: 0.6 },
    ]);
    const g2 = await grid(out);
    assert.equal(g2.cells[0][3].values.weight, 0);
    assert.equal(g2.cells[0][0].values.weight, 0.6, 'blocks.0.norm.weight is not caught by the "norm.weight" filter');
    assert.throws(() => editMergeYaml(TEXT, g, { kind: 'include', cells: [[1, 3]], included: false }), MergeEditError, 'user filters + a colliding name: refused, not silently wrong');
  });

  it('per-cell density, row values, global values, range checks and method changes', async () => {
    const g = await grid(TEXT);
    let out = editMergeYaml(TEXT, g, { kind: 'setCells', cells: [[0, 0]], param: 'density', value: 0.25 });
    assert.deepEqual(parse(out).models[1].parameters.density, [{ filter: 'blocks.0.', value: 0.25 }]);
    let g2 = await grid(out);
    assert.equal(g2.cells[0][0].values.density, 0.25);
    assert.equal(g2.cells[0][1].values.density, 1, 'other layers: the method default');
    assert.throws(() => editMergeYaml(out, g2, { kind: 'setCells', cells: [[0, 0]], param: 'density', value: 1.5 }), /density must be ≤ 1/);
    out = editMergeYaml(out, g2, { kind: 'setRow', row: 0, param: 'density', value: 0.5 });
    assert.deepEqual(parse(out).models[1].parameters.density, [{ filter: 'blocks.0.', value: 0.25 }, { value: 0.5 }]);
    g2 = await grid(out);
    out = editMergeYaml(out, g2, { kind: 'setGlobal', param: 'lambda', value: 0.8 });
    assert.equal(parse(out).parameters.lambda, 0.8);
    assert.throws(() => editMergeYaml(out, g2, { kind: 'setGlobal', param: 'normalize', value: 3 }), /must be a boolean/);
    out = editMergeYaml(out, g2, { kind: 'setMethod', method: 'linear' });
    const y = parse(out);
    assert.equal(y.merge_method, 'linear');
    assert.equal(y.parameters, undefined, 'lambda is not a linear parameter: removed');
    assert.equal(y.models[1].parameters.density, undefined, 'density is not a linear parameter');
    assert.deepEqual(y.models[1].parameters.weight, 0.6);
    assert.match(out, /# my merge/);
    // The new text still validates.
    parseMergeConfig(out, file);
  });

  it("slerp: a cell's weight is the global t per layer (0 keeps the base); model_stock's cells cannot be toggled", async () => {
    const SLERP = `# slerp of A onto the base
merge_method: slerp
base_model: ./base.safetensors
models:
  - model: ./base.safetensors
  - model: ./a.safetensors
parameters:
  t: 0.3   # mostly the base
`;
    let g = await grid(SLERP);
    assert.deepEqual(g.rows.map((r) => r.written), ['./a.safetensors'], 'one row: the model interpolated towards');
    assert.deepEqual(g.cellParams, ['weight']);
    assert.deepEqual(g.weightParam, { name: 't', global: true, includeValue: 0.5 });
    assert.deepEqual(g.cells[0].map((c) => c.values.weight), [0.3, 0.3, 0.3, 0.3]);
    // Exclude layer 1: the global t gets a filter in front of the rest; the comment stays.
    let out = editMergeYaml(SLERP, g, { kind: 'include', cells: [[0, 1]], included: false });
    assert.deepEqual(parse(out).parameters.t, [{ filter: 'blocks.1.', value: 0 }, { value: 0.3 }]);
    assert.equal(parse(out).models[1].parameters, undefined, 'nothing written per model');
    assert.match(out, /# slerp of A onto the base/);
    g = await grid(out);
    assert.deepEqual(g.cells[0].map((c) => c.values.weight), [0.3, 0, 0.3, 0.3]);
    assert.equal(g.cells[0][1].overrides.weight, 0);
    const plan = await planMerge(parseMergeConfig(out, file));
    assert.deepEqual(plan.tasks.filter((t) => t.output.startsWith('blocks.1.')).map((t) => t.params.t), [0, 0], 'the merge reads t = 0 there');
    // A value per cell (range-checked as t), the row's value through the form's global t (the cell entries stay).
    assert.throws(() => editMergeYaml(out, g, { kind: 'setCells', cells: [[0, 2]], param: 'weight', value: 1.5 }), /t must be ≤ 1/);
    out = editMergeYaml(out, g, { kind: 'setCells', cells: [[0, 2]], param: 'weight', value: 0.9 });
    g = await grid(out);
    out = editMergeYaml(out, g, { kind: 'setGlobal', param: 't', value: 0.6 });
    assert.deepEqual(parse(out).parameters.t, [{ filter: 'blocks.1.', value: 0 }, { filter: 'blocks.2.', value: 0.9 }, { value: 0.6 }]);
    g = await grid(out);
    assert.deepEqual(g.cells[0].map((c) => c.values.weight), [0.6, 0, 0.9, 0.6]);
    // Include layer 1 again: back to the rest; clearing the cell value and the global leaves no t at all.
    out = editMergeYaml(out, g, { kind: 'include', cells: [[0, 1]], included: true });
    g = await grid(out);
    out = editMergeYaml(out, g, { kind: 'setCells', cells: [[0, 2]], param: 'weight', value: null });
    g = await grid(out);
    out = editMergeYaml(out, g, { kind: 'setGlobal', param: 't', value: null });
    assert.equal(parse(out).parameters, undefined);
    // With no t written, an excluded cell is the only entry and including it again removes it (the default 0.5).
    g = await grid(out);
    out = editMergeYaml(out, g, { kind: 'include', cells: [[0, 0]], included: false });
    assert.deepEqual(parse(out).parameters.t, [{ filter: 'blocks.0.', value: 0 }]);
    g = await grid(out);
    assert.deepEqual(g.cells[0].map((c) => c.values.weight), [0, 0.5, 0.5, 0.5]);
    parseMergeConfig(out, file);

    const STOCK = SLERP.replace('merge_method: slerp', 'merge_method: model_stock').replace(/parameters:\n  t: .*\n/, '') + '  - model: ./b.safetensors\n';
    const gs = await grid(STOCK);
    assert.deepEqual(gs.cellParams, []);
    assert.equal(gs.weightParam, null);
    assert.throws(() => editMergeYaml(STOCK, gs, { kind: 'include', cells: [[0, 0]], included: false }), /model_stock has no per-model weight \(it weighs the models itself\)/);
  });

  it("one slice from layer 0 (mergekit's slerp form) is edited like models:; several slices or shifted ranges are not", async () => {
    const SLICE = `merge_method: slerp
slices:
  - sources:
      - model: ./base.safetensors
        layer_range: [0, 3]
      - model: ./a.safetensors   # the other model
        layer_range: [0, 3]
base_model: ./base.safetensors
parameters:
  t:
    - filter: mlp
      value: [0, 0.5, 1]
    - value: 0.5
`;
    let g = await grid(SLICE);
    assert.deepEqual(g.sourcesPath, ['slices', 0, 'sources']);
    assert.deepEqual(g.rows.map((r) => [r.written, r.yamlIndex]), [['./a.safetensors', 1]]);
    assert.deepEqual(g.cells[0].map((c) => c.values.weight), [null, 0.5, null, 0.5], 'mlp (the gradient 0, 0.5, 1) and norm (0.5) differ in layers 0 and 2: mixed');
    let out = editMergeYaml(SLICE, g, { kind: 'include', cells: [[0, 1]], included: false });
    assert.deepEqual(parse(out).parameters.t, [{ filter: 'blocks.1.', value: 0 }, { filter: 'mlp', value: [0, 0.5, 1] }, { value: 0.5 }], "the user's gradient is kept behind the entry");
    assert.match(out, /# the other model/);
    g = await grid(out);
    assert.equal(g.cells[0][1].values.weight, 0);
    // ties in one slice: per-source values go under the source.
    const TIES = SLICE.replace('merge_method: slerp', 'merge_method: ties').replace(/parameters:\n  t:[\s\S]*$/, '');
    g = await grid(TIES);
    out = editMergeYaml(TIES, g, { kind: 'setCells', cells: [[0, 2]], param: 'density', value: 0.4 });
    assert.deepEqual(parse(out).slices[0].sources[1].parameters, { density: [{ filter: 'blocks.2.', value: 0.4 }] });
    g = await grid(out);
    assert.equal(g.cells[0][2].values.density, 0.4);
    // Switching the method drops the source's parameters the new method lacks.
    out = editMergeYaml(out, g, { kind: 'setMethod', method: 'linear' });
    assert.equal(parse(out).slices[0].sources[1].parameters, undefined);
    parseMergeConfig(out, file);
    // A slice-level t wins over the global one: the grid says so instead of writing what changes nothing.
    const SLICE_T = SLICE.replace('        layer_range: [0, 3]\nbase_model', '        layer_range: [0, 3]\n    parameters: {t: 0.2}\nbase_model');
    g = await grid(SLICE_T);
    assert.throws(() => editMergeYaml(SLICE_T, g, { kind: 'include', cells: [[0, 0]], included: false }), /t is set in slices\[0\]\.parameters/);
    // Frankenmerges: shown, not edited.
    const two = parseMergeConfig(
      `merge_method: linear\nslices:\n  - sources:\n      - {model: ./a.safetensors, layer_range: [0, 2]}\n  - sources:\n      - {model: ./b.safetensors, layer_range: [1, 3]}\n`,
      file,
    );
    assert.match(notGridEditable(two) ?? '', /2 slices/);
    const shifted = parseMergeConfig(`merge_method: linear\nslices:\n  - sources:\n      - {model: ./a.safetensors, layer_range: [1, 3]}\n      - {model: ./b.safetensors, layer_range: [1, 3]}\n`, file);
    assert.match(notGridEditable(shifted) ?? '', /layer_range \[1, 3\], not from layer 0/);
  });

  it('preview per layer: numel-weighted kept fractions, 0 where a cell is excluded; saliency cells by model path', async () => {
    const text = editMergeYaml(TEXT, await grid(TEXT), { kind: 'include', cells: [[1, 1]], included: false });
    const g = await grid(text);
    const models = [
      { index: 0, written: './base.safetensors', path: path.join(dir, 'base.safetensors'), role: 'base' as const },
      { index: 1, written: './a.safetensors', path: path.join(dir, 'a.safetensors'), role: 'expert' as const },
      { index: 2, written: './b.safetensors', path: path.join(dir, 'b.safetensors'), role: 'expert' as const },
    ];
    const report: MergeJobResult = {
      format: 'basin-merge-report-1',
      configFile: file,
      method: 'ties',
      models,
      saliency: [{ model: 2, total: 3, perLayer: { '0': 1, '1': 2, other: 0.5 } }],
      tensors: [
        { name: 'blocks.0.norm.weight', shape: [3], layer: 0, keptFraction: [1, 0], signConflict: 0, deltaNorm: 1 },
        { name: 'blocks.0.mlp.weight', shape: [3, 3], layer: 0, keptFraction: [0, 1], signConflict: 0.5, deltaNorm: 1 },
        { name: 'blocks.1.mlp.weight', shape: [3, 3], layer: 1, keptFraction: [0.5, 0.5], signConflict: 0.25, deltaNorm: 1 },
      ],
      bytesRead: 0,
      bytesWritten: 0,
      seconds: 0,
      output: null,
      warnings: [],
    };
    const p = previewByLayer(report, g);
    assert.deepEqual(p.map((l) => l.key), ['L0', 'L1']);
    assert.deepEqual(p[0].kept, [3 / 12, 9 / 12]);
    assert.equal(p[0].signConflict, (0.5 * 9) / 12);
    assert.deepEqual(p[1].kept, [0.5, 0], 'b excluded in layer 1');
    assert.equal(p[1].tensors, 1);
    const s = saliencyCells(report, g);
    assert.deepEqual(s, [
      [null, null, null, null],
      [1, 2, null, 0.5],
    ]);
  });

  it('textDelta: the smallest replacement', () => {
    assert.equal(textDelta('abc', 'abc'), null);
    assert.deepEqual(textDelta('weight: 0.6\n', 'weight: [0]\n'), { start: 8, end: 11, text: '[0]' });
    const a = 'x: 1\ny: 2\n';
    const b = 'x: 1\ny: 3\nz: 4\n';
    const d = textDelta(a, b)!;
    assert.equal(a.slice(0, d.start) + d.text + a.slice(d.end), b);
  });
});
