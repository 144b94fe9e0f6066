// The merge panel's model: a merge config (`*.merge.yaml`, the `models:` form) seen as a tasks × layers grid, and
// the edits the panel makes, written back into the YAML. Pure (no vscode): the host panel and the unit tests use it.
//
// The panel's state IS the config. A cell (expert, layer column) holds the expert's per-model parameters resolved
// for that layer's tensors (planMerge resolves them; a cell whose tensors disagree is "mixed"). A cell edit is an
// OVERRIDE written as a mergekit conditional at the front of the expert's setting:
//
//   weight: [{filter: "blocks.3.", value: 0}, {value: 0.6}]      blocks.3 excluded; 0.6 everywhere else
//
// because mergekit reads a conditional list in order and the first matching filter wins (filters are substrings of
// the tensor name). The panel's own entries are recognised on the way back by their filters: a layer column's is
// `<container>.<L>.` (`blocks.3.`, `layers.0.`), the "other" column (tensors outside the layers: embeddings,
// final norm, head) writes one entry per tensor name. Whatever else the setting held (a scalar, a gradient, the
// user's own filters) is kept after the panel's entries, so nothing written by hand is lost. When an "other"
// tensor's name also occurs inside a layer tensor's name (`norm.weight` in `blocks.0.norm.weight`), a guard entry
// `{filter: "<container>.", value: <the rest>}` keeps the layers out of it (only when the rest is not itself a
// filter list; otherwise the override is refused with a message).
//
// A method without a per-model weight but with a global share of the other model (slerp's `t`, marked `expertShare`
// in the registry) has its cells' weight written there instead: `parameters: {t: [{filter: "blocks.3.", value: 0},
// {value: 0.5}]}` keeps the base's block 3. A method with neither (model_stock weighs its experts itself) shows
// saliency only.
//
// Edits go through the `yaml` package's Document API (parseDocument → setIn/deleteIn → toString), so comments,
// key order and untouched keys survive; new values are written in flow style (`[{filter: …, value: 0}, {value: 1}]`).
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import type { MergeConfig } from '../../files/merge/config';
import type { ParamSetting, ParamScalar } from '../../files/merge/params';
import { evaluateSetting, tensorLayer } from '../../files/merge/params';
import type { MergePlan } from '../../files/merge/plan';
import { mergeMethodRegistry, MERGE_METHOD_ENTRIES } from '../../files/registry/merge-methods';
import type { ParamSpec } from '../../files/registry/entry';

/** Parameters a cell can override (per-model numbers of the methods that have them). */
export const CELL_PARAMS = ['weight', 'density'] as const;
export type CellParam = (typeof CELL_PARAMS)[number];

export const OTHER_COLUMN = 'other';

export interface GridColumn {
  /** 'L<n>' for layer n, 'other' for the tensors outside the layers. */
  key: string;
  label: string;
  layer: number | null;
  /** Filters the panel writes for this column (one per tensor name for 'other'). */
  filters: string[];
  /** Output tensors of the column, with the gradient position each is read at. */
  tensors: { name: string; t: number; numel: number }[];
}

export interface GridRow {
  /** Index in the config's `models:` list (or in its one slice's `sources:`). */
  yamlIndex: number;
  /** Index in the plan's models (what the reports' `model` fields mean). */
  planModel: number;
  written: string;
  path: string;
  kind: string;
}

/** One cell's resolved values (null: its tensors disagree) and the panel's overrides in it. */
export interface GridCellModel {
  values: Partial<Record<CellParam, number | null>>;
  overrides: Partial<Record<CellParam, number>>;
}

/** Where a grid's cell weight is written: the per-model `weight`, or a global share (slerp's `t`). */
export interface WeightParam {
  name: string;
  global: boolean;
  /** The value an included cell gets when the rest of the setting gives 0 (the parameter's default). */
  includeValue: number;
}

export interface GridModel {
  file: string;
  method: string;
  /** Where the cells' weight lives (null: the method has none, the grid shows saliency only). */
  weightParam: WeightParam | null;
  /** The YAML path of the rows' list: `models`, or `slices[0].sources` for a one-slice config. */
  sourcesPath: (string | number)[];
  columns: GridColumn[];
  rows: GridRow[];
  /** cells[row][column] */
  cells: GridCellModel[][];
  /** The layer container names seen (`blocks`, `layers`), for the guards. */
  containers: string[];
  /** Cell parameters the method has (per model). */
  cellParams: CellParam[];
}

export class MergeEditError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeEditError';
  }
}

/**
 * Why a config cannot be edited as a grid, or null. `slices:` with one slice whose sources all start at layer 0
 * (mergekit's usual slerp form) is the `models:` form written another way: its sources are the rows, their
 * per-model values live under `slices[0].sources[i].parameters`, and output layer n reads input layer n, so the
 * panel's `blocks.n.` filters mean the same layer on both sides. Several slices or shifted ranges (a frankenmerge)
 * map output layers to other input layers: the grid shows them but does not edit them.
 */
export function notGridEditable(config: MergeConfig): string | null {
  if (config.form === 'models') return null;
  if (config.slices.length !== 1) return `this config has ${config.slices.length} slices (a layer-stacking merge); the grid edits one slice over the models' layers (edit the slices in the YAML)`;
  const shifted = config.slices[0].sources.find((x) => x.layerRange && x.layerRange[0] !== 0);
  if (shifted) return `${shifted.model.written} reads layer_range [${shifted.layerRange!.join(', ')}], not from layer 0: output and input layers differ, so the grid cannot edit it (edit the slice in the YAML)`;
  return null;
}

function methodParams(method: string): Record<string, ParamSpec> {
  if (!mergeMethodRegistry.has(method)) return {};
  return mergeMethodRegistry.get(method).params as Record<string, ParamSpec>;
}

/** The grid of a `models:` config and its plan. */
export function buildGrid(config: MergeConfig, plan: MergePlan): GridModel {
  const why = notGridEditable(config);
  if (why) throw new MergeEditError(why);
  const params = methodParams(config.method);
  const weightParam = weightParamOf(params);
  const cellParams = CELL_PARAMS.filter((p) => (p === 'weight' ? weightParam !== null : params[p]?.perModel));
  // Columns from the plan's tasks: layers in order, then the tensors outside the layers.
  const byLayer = new Map<number, GridColumn>();
  const other: GridColumn = { key: OTHER_COLUMN, label: 'other', layer: null, filters: [], tensors: [] };
  const containers = new Set<string>();
  for (const task of plan.tasks) {
    const m = tensorLayer(task.output);
    const entry = { name: task.output, t: task.t, numel: task.numel };
    if (m && task.layer !== null) {
      // The container name right before the index: `blocks.3.` / `layers.3.` (a substring every tensor of that layer holds).
      const container = task.output.slice(0, m.start - 1).split('.').pop()!;
      containers.add(container);
      let col = byLayer.get(task.layer);
      if (!col) byLayer.set(task.layer, (col = { key: `L${task.layer}`, label: String(task.layer), layer: task.layer, filters: [], tensors: [] }));
      const f = `${container}.${m.index}.`;
      if (!col.filters.includes(f)) col.filters.push(f);
      col.tensors.push(entry);
    } else {
      other.tensors.push(entry);
      other.filters.push(task.output);
    }
  }
  const columns = [...byLayer.values()].sort((a, b) => a.layer! - b.layer!);
  if (other.tensors.length) columns.push(other);

  // Rows: the experts, in `models:` order (a base listed among the models is not a row).
  const expertModels = new Set(plan.tasks.flatMap((t) => t.experts.map((e) => e.model)));
  const sources = config.slices[0]?.sources ?? [];
  const rows: GridRow[] = [];
  sources.forEach((src, yamlIndex) => {
    const pm = plan.models.find((m) => m.ref.path === src.model.path);
    if (!pm || !expertModels.has(pm.index)) return;
    if (rows.some((r) => r.planModel === pm.index)) return;
    rows.push({ yamlIndex, planModel: pm.index, written: src.model.written, path: src.model.path, kind: src.model.kind });
  });

  const taskByName = new Map(plan.tasks.map((t) => [t.output, t]));
  const cells = rows.map((row) => {
    const src = sources[row.yamlIndex];
    return columns.map((col): GridCellModel => {
      const values: GridCellModel['values'] = {};
      for (const p of cellParams) {
        let v: number | null | undefined;
        for (const t of col.tensors) {
          const task = taskByName.get(t.name);
          const x = p === 'weight' && weightParam?.global ? task?.params[weightParam.name] : task?.experts.find((e) => e.model === row.planModel)?.params[p];
          const n = typeof x === 'number' ? x : null;
          v = v === undefined ? n : v === n ? v : null;
        }
        values[p] = v ?? null;
      }
      const overrides: GridCellModel['overrides'] = {};
      for (const p of cellParams) {
        const o = readOverride(p === 'weight' && weightParam?.global ? config.parameters[weightParam.name] : src.parameters[paramKey(weightParam, p)], col);
        if (o !== undefined) overrides[p] = o;
      }
      return { values, overrides };
    });
  });
  const sourcesPath = config.form === 'models' ? ['models'] : ['slices', 0, 'sources'];
  return { file: config.file, method: config.method, weightParam, sourcesPath, columns, rows, cells, containers: [...containers], cellParams };
}

function weightParamOf(params: Record<string, ParamSpec>): WeightParam | null {
  const w = params.weight;
  if (w?.perModel && w.type === 'number') return { name: 'weight', global: false, includeValue: w.default ?? 1 };
  const share = Object.entries(params).find(([, s]) => s.expertShare && !s.perModel && s.type === 'number');
  if (!share) return null;
  const spec = share[1] as Extract<ParamSpec, { type: 'number' | 'integer' }>;
  return { name: share[0], global: true, includeValue: spec.default ?? spec.maximum ?? 1 };
}

/** The YAML key a cell parameter is written as. */
function paramKey(w: WeightParam | null, p: CellParam): string {
  return p === 'weight' && w ? w.name : p;
}

type Conditional = { filter?: string | null; value: ParamScalar | ParamScalar[] };
const isConditionalList = (s: ParamSetting | undefined): s is Conditional[] =>
  Array.isArray(s) && s.length > 0 && s.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x));

/** The panel's override of a column in a setting, if the setting holds one. */
function readOverride(setting: ParamSetting | undefined, col: GridColumn): number | undefined {
  if (!isConditionalList(setting)) return undefined;
  let v: number | undefined;
  for (const f of col.filters) {
    const e = setting.find((c) => c.filter === f);
    if (!e || typeof e.value !== 'number') return undefined;
    if (v !== undefined && v !== e.value) return undefined;
    v = e.value;
  }
  return v;
}

/** Filters the panel writes (all columns), and its guards. */
function ownFilters(grid: GridModel): Set<string> {
  const s = new Set<string>();
  for (const c of grid.columns) for (const f of c.filters) s.add(f);
  for (const c of grid.containers) s.add(`${c}.`);
  return s;
}

/** What a setting holds besides the panel's entries: undefined (nothing), a scalar, a gradient or the user's conditionals. */
export function restOf(setting: ParamSetting | undefined, grid: GridModel): ParamSetting | undefined {
  if (setting === undefined) return undefined;
  if (!isConditionalList(setting)) return setting;
  const own = ownFilters(grid);
  const rest = setting.filter((c) => !(typeof c.filter === 'string' && own.has(c.filter)));
  if (rest.length === 0) return undefined;
  // A lone catch-all is the plain value it carries.
  if (rest.length === 1 && (rest[0].filter === undefined || rest[0].filter === null || rest[0].filter === '*')) return rest[0].value;
  return rest;
}

/** The setting with these overrides (column key → value) in front of `rest`. */
export function composeSetting(grid: GridModel, overrides: Map<string, number>, rest: ParamSetting | undefined): ParamSetting | undefined {
  if (overrides.size === 0) return rest;
  const out: Conditional[] = [];
  for (const col of grid.columns) {
    const v = overrides.get(col.key);
    if (v === undefined || col.key === OTHER_COLUMN) continue;
    for (const f of col.filters) out.push({ filter: f, value: v });
  }
  const otherCol = grid.columns.find((c) => c.key === OTHER_COLUMN);
  const ov = otherCol ? overrides.get(OTHER_COLUMN) : undefined;
  if (otherCol && ov !== undefined) {
    const layerNames = grid.columns.filter((c) => c.key !== OTHER_COLUMN).flatMap((c) => c.tensors.map((t) => t.name));
    const collides = otherCol.filters.some((f) => layerNames.some((n) => n.includes(f)));
    if (collides) {
      if (isConditionalList(rest)) {
        throw new MergeEditError(
          `a tensor outside the layers (${otherCol.filters.find((f) => layerNames.some((n) => n.includes(f)))}) is named inside a layer tensor's name and this model's setting has its own filters: edit it in the YAML`,
        );
      }
      // Layer tensors take the rest before the "other" filters can catch them (a missing rest: the method's default).
      for (const c of grid.containers) if (rest !== undefined) out.push({ filter: `${c}.`, value: rest as ParamScalar | ParamScalar[] });
      if (rest === undefined) throw new MergeEditError('overriding the tensors outside the layers here needs a value for the layers: set the row’s value first');
    }
    for (const f of otherCol.filters) out.push({ filter: f, value: ov });
  }
  if (rest === undefined) return out;
  if (isConditionalList(rest)) return [...out, ...rest];
  return [...out, { value: rest as ParamScalar | ParamScalar[] }];
}

// -------------------------------------------------------------------------------------------------- edits

export type MergeEdit =
  /** Cells to include (drop a weight-0 override; set weight 1 where the rest gives 0) or exclude (weight 0). */
  | { kind: 'include'; cells: [number, number][]; included: boolean }
  /** Set (or with null clear) a cell parameter's override in these cells. */
  | { kind: 'setCells'; cells: [number, number][]; param: CellParam; value: number | null }
  /** A row's own value of a per-model parameter (the part after the overrides); null removes it. */
  | { kind: 'setRow'; row: number; param: string; value: number | boolean | null }
  /** A global `parameters:` value; null removes it. */
  | { kind: 'setGlobal'; param: string; value: number | boolean | null }
  /** merge_method (parameters the new method does not have are removed, globally and per model). */
  | { kind: 'setMethod'; method: string };

/** Where a setting lives: a row's `parameters` (its yamlIndex) or the global `parameters` (null). */
type SettingHome = number | null;
const paramsPath = (grid: GridModel, home: SettingHome): (string | number)[] => (home === null ? ['parameters'] : [...grid.sourcesPath, home, 'parameters']);

function settingAt(doc: Document, grid: GridModel, home: SettingHome, param: string): ParamSetting | undefined {
  const v = doc.getIn([...paramsPath(grid, home), param]);
  if (v === undefined || v === null) return undefined;
  return (typeof v === 'object' && 'toJSON' in (v as object) ? (v as { toJSON(): unknown }).toJSON() : v) as ParamSetting;
}

function writeSetting(doc: Document, grid: GridModel, home: SettingHome, param: string, setting: ParamSetting | undefined): void {
  const parent = paramsPath(grid, home);
  const at = [...parent, param];
  if (setting === undefined) {
    if (doc.hasIn(at)) doc.deleteIn(at);
    const params = doc.getIn(parent);
    if (isMap(params) && params.items.length === 0) doc.deleteIn(parent);
    return;
  }
  const node = doc.createNode(setting, { flow: true });
  if (!isMap(doc.getIn(parent))) {
    doc.setIn(parent, doc.createNode({ [param]: setting }, { flow: false }));
    // A model's parameters are one flow line ({weight: …}); the global block stays a block.
    const p = doc.getIn(parent);
    if (isMap(p) && home !== null) p.flow = true;
  }
  doc.setIn(at, node);
}

/** A row's panel overrides of one cell parameter, by column key. */
function rowOverrides(grid: GridModel, row: number, param: CellParam): Map<string, number> {
  const out = new Map<string, number>();
  grid.columns.forEach((col, ci) => {
    const o = grid.cells[row][ci].overrides[param];
    if (o !== undefined) out.set(col.key, o);
  });
  return out;
}

/** The value `rest` gives a cell's tensors at its level (undefined where it gives none). */
function restValue(rest: ParamSetting | undefined, col: GridColumn): ParamScalar | undefined {
  if (rest === undefined) return undefined;
  for (const t of col.tensors) {
    const v = evaluateSetting(rest, t.name, t.t);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Applies one edit to the config's text and returns the new text (comments and untouched keys kept). */
export function editMergeYaml(text: string, grid: GridModel, edit: MergeEdit): string {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new MergeEditError(`the YAML has errors: ${doc.errors[0].message}`);
  const cellEdit = (cells: [number, number][], param: CellParam, valueOf: (rest: ParamSetting | undefined, col: GridColumn) => number | null) => {
    if (!grid.cellParams.includes(param)) {
      throw new MergeEditError(
        param === 'weight'
          ? `merge_method ${grid.method} has no per-model weight (it weighs the models itself): its cells cannot be included or excluded`
          : `merge_method ${grid.method} has no per-model ${param}`,
      );
    }
    const key = paramKey(grid.weightParam, param);
    const global = param === 'weight' && !!grid.weightParam?.global;
    // A slice's own value wins over the global one: the panel's global entries would change nothing.
    if (global && grid.sourcesPath[0] === 'slices' && doc.hasIn(['slices', 0, 'parameters', key])) {
      throw new MergeEditError(`${key} is set in slices[0].parameters, which wins over the global parameters the grid writes: edit it there in the YAML, or move it to the global parameters`);
    }
    const byRow = new Map<number, number[]>();
    for (const [r, c] of cells) {
      if (!grid.rows[r] || !grid.columns[c]) throw new MergeEditError(`no cell (${r}, ${c}) in a ${grid.rows.length} × ${grid.columns.length} grid`);
      byRow.set(r, [...(byRow.get(r) ?? []), c]);
    }
    for (const [r, cols] of byRow) {
      const row = grid.rows[r];
      // A global share is one setting for the whole grid (slerp has one row).
      const home = global ? null : row.yamlIndex;
      const setting = settingAt(doc, grid, home, key);
      const rest = restOf(setting, grid);
      const overrides = rowOverrides(grid, r, param);
      for (const c of cols) {
        const col = grid.columns[c];
        const v = valueOf(rest, col);
        if (v === null) overrides.delete(col.key);
        else overrides.set(col.key, v);
      }
      writeSetting(doc, grid, home, key, composeSetting(grid, overrides, rest));
    }
  };
  switch (edit.kind) {
    case 'include':
      cellEdit(edit.cells, 'weight', (rest, col) => {
        if (!edit.included) return 0;
        // Back to what the rest says, unless that is 0 too (then the cell is included with the parameter's default).
        return restValue(rest, col) === 0 ? (grid.weightParam?.includeValue ?? 1) : null;
      });
      break;
    case 'setCells':
      if (edit.value !== null && !Number.isFinite(edit.value)) throw new MergeEditError(`${edit.param} must be a finite number`);
      checkRange(grid.method, paramKey(grid.weightParam, edit.param), edit.value);
      cellEdit(edit.cells, edit.param, () => edit.value);
      break;
    case 'setRow': {
      const row = grid.rows[edit.row];
      if (!row) throw new MergeEditError(`no row ${edit.row}`);
      const spec = methodParams(grid.method)[edit.param];
      if (!spec?.perModel) throw new MergeEditError(`merge_method ${grid.method} has no per-model parameter ${edit.param}`);
      checkType(spec, edit.param, edit.value);
      checkRange(grid.method, edit.param, edit.value);
      const overrides = (CELL_PARAMS as readonly string[]).includes(edit.param) ? rowOverrides(grid, edit.row, edit.param as CellParam) : new Map<string, number>();
      // A new row value replaces the rest; clearing it keeps the user's own filters (only a plain value goes).
      const old = restOf(settingAt(doc, grid, row.yamlIndex, edit.param), grid);
      const rest = edit.value !== null ? (edit.value as ParamScalar) : isConditionalList(old) ? old : undefined;
      writeSetting(doc, grid, row.yamlIndex, edit.param, composeSetting(grid, overrides, rest));
      break;
    }
    case 'setGlobal': {
      const spec = methodParams(grid.method)[edit.param];
      if (!spec) throw new MergeEditError(`merge_method ${grid.method} has no parameter ${edit.param}`);
      checkType(spec, edit.param, edit.value);
      checkRange(grid.method, edit.param, edit.value);
      if (grid.weightParam?.global && grid.weightParam.name === edit.param && grid.rows.length) {
        // The cells' share: a new value replaces the rest behind the panel's per-layer entries, which stay.
        const overrides = rowOverrides(grid, 0, 'weight');
        const old = restOf(settingAt(doc, grid, null, edit.param), grid);
        const rest = edit.value !== null ? (edit.value as ParamScalar) : isConditionalList(old) ? old : undefined;
        writeSetting(doc, grid, null, edit.param, composeSetting(grid, overrides, rest));
        break;
      }
      if (edit.value === null) {
        if (doc.hasIn(['parameters', edit.param])) doc.deleteIn(['parameters', edit.param]);
        const p = doc.get('parameters');
        if (isMap(p) && p.items.length === 0) doc.delete('parameters');
      } else if (!doc.has('parameters') || !isMap(doc.get('parameters'))) {
        doc.set('parameters', doc.createNode({ [edit.param]: edit.value }, { flow: false }));
      } else doc.setIn(['parameters', edit.param], edit.value);
      break;
    }
    case 'setMethod': {
      const entry = MERGE_METHOD_ENTRIES.find((e) => e.name === edit.method);
      if (!entry) throw new MergeEditError(`unknown merge method ${JSON.stringify(edit.method)}`);
      doc.set('merge_method', edit.method);
      const keep = new Set(Object.keys(entry.params));
      const perModel = new Set(Object.entries(entry.params as Record<string, ParamSpec>).filter(([, s]) => s.perModel).map(([k]) => k));
      const globals = doc.get('parameters');
      if (isMap(globals)) {
        for (const it of [...globals.items]) {
          const k = String((it.key as { value?: unknown })?.value ?? it.key);
          if (!keep.has(k)) globals.delete(k);
        }
        if (globals.items.length === 0) doc.delete('parameters');
      }
      // Every per-model level: `models[i]`, and with slices each slice's and each source's `parameters`.
      const dropFrom = (at: (string | number)[], allowed: Set<string>) => {
        const p = doc.getIn([...at, 'parameters']);
        if (!isMap(p)) return;
        for (const it of [...p.items]) {
          const k = String((it.key as { value?: unknown })?.value ?? it.key);
          if (!allowed.has(k)) p.delete(k);
        }
        if (p.items.length === 0) doc.deleteIn([...at, 'parameters']);
      };
      const models = doc.get('models');
      if (isSeq(models)) models.items.forEach((_, i) => dropFrom(['models', i], perModel));
      const slices = doc.get('slices');
      if (isSeq(slices)) {
        slices.items.forEach((_, j) => {
          dropFrom(['slices', j], keep);
          const sources = doc.getIn(['slices', j, 'sources']);
          if (isSeq(sources)) sources.items.forEach((__, i) => dropFrom(['slices', j, 'sources', i], perModel));
        });
      }
      break;
    }
  }
  return doc.toString();
}

function checkType(spec: ParamSpec, name: string, v: unknown): void {
  if (v === null) return;
  const want = spec.type === 'boolean' ? 'boolean' : spec.type === 'number' || spec.type === 'integer' ? 'number' : null;
  if (want && typeof v !== want) throw new MergeEditError(`${name} must be a ${spec.type}, got ${JSON.stringify(v)}`);
  if (spec.type === 'integer' && !Number.isInteger(v)) throw new MergeEditError(`${name} must be an integer, got ${JSON.stringify(v)}`);
}

function checkRange(method: string, name: string, v: unknown): void {
  if (typeof v !== 'number') return;
  const s = methodParams(method)[name];
  if (!s || (s.type !== 'number' && s.type !== 'integer')) return;
  if (s.minimum !== undefined && v < s.minimum) throw new MergeEditError(`${name} must be ≥ ${s.minimum}, got ${v}`);
  if (s.maximum !== undefined && v > s.maximum) throw new MergeEditError(`${name} must be ≤ ${s.maximum}, got ${v}`);
  if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) throw new MergeEditError(`${name} must be > ${s.exclusiveMinimum}, got ${v}`);
  if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) throw new MergeEditError(`${name} must be < ${s.exclusiveMaximum}, got ${v}`);
}

/** The smallest edit turning `a` into `b`: the changed middle, as offsets into `a` (a WorkspaceEdit replaces only that). */
export function textDelta(a: string, b: string): { start: number; end: number; text: string } | null {
  if (a === b) return null;
  let s = 0;
  const n = Math.min(a.length, b.length);
  while (s < n && a.charCodeAt(s) === b.charCodeAt(s)) s++;
  let e = 0;
  while (e < n - s && a.charCodeAt(a.length - 1 - e) === b.charCodeAt(b.length - 1 - e)) e++;
  return { start: s, end: a.length - e, text: b.slice(s, b.length - e) };
}
