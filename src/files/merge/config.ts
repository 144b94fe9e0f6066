// Loading and validating merge configs (`*.merge.yaml`, `*.merge.yml`): a merge config IS a mergekit YAML.
//
//   merge_method: ties                     one of mergeMethodRegistry's names
//   base_model: ./base                     a local model (see ModelRef): run folder, checkpoint, .safetensors, folder
//   models:                                either `models` (whole models) …
//     - model: ./expert-a
//       parameters: { weight: 0.5, density: [0.2, 0.8] }
//   slices:                                … or `slices` (layer ranges; exclusive with `models`)
//     - sources:
//         - { model: ./a, layer_range: [0, 4], parameters: {…} }
//       parameters: {…}
//   parameters: { lambda: 1 }              global
//   dtype: float32                         compute dtype as mergekit reads it; out_dtype: what is written
//   basin: { output: merged, max_shard_bytes: 5000000000 }     Basin-only keys
//
// Parameter values and their precedence: params.ts. mergekit keys Basin does not use (tokenizer_source,
// tokenizer, chat_template, a slice's residual_weight) are WARNINGS, so a mergekit file loads unchanged; unknown
// keys, unknown methods and parameters, values out of range and models that are not local are errors. Every
// diagnostic names the file, line and field (the training config's ConfigDiagnostic / ConfigError, 1-based).
//
// Loading touches the file system only to classify each model reference (stat); no model file is read here
// (model-files.ts opens them, plan.ts checks that they agree).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Node as YamlNode, type Pair, type YAMLMap } from 'yaml';
import { ConfigError, type ConfigDiagnostic } from '../config/load';
import type { ParamSpec, RegistryEntry } from '../registry/entry';
import { mergeMethodRegistry, type MergeMethodName, MERGE_METHOD_ENTRIES } from '../registry/merge-methods';
import { CHECKPOINTS_DIR, RUN_FILE } from '../run-record';
import { commonLineageBase, fineTuneBaseOf } from './lineage-base';
import { MODEL_FILE, modelFileIn } from './merge-commit';
import type { ConditionalParam, ParamScalar, ParamSetting, ParamSettings } from './params';

export { ConfigError, formatDiagnostic, type ConfigDiagnostic } from '../config/load';

/** A merge config's file name: `*.merge.yaml` or `*.merge.yml`. */
export const MERGE_CONFIG_FILE_RE = /\.merge\.ya?ml$/i;
export const MERGE_CONFIG_FILE_GLOB = '**/*.merge.{yaml,yml}';

export function isMergeConfigFile(fileName: string): boolean {
  return MERGE_CONFIG_FILE_RE.test(fileName);
}

/** dtype names mergekit accepts (and their short forms), → the safetensors dtype they mean. */
export const MERGE_DTYPES = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', fp32: 'F32', fp16: 'F16', bf16: 'BF16' } as const;
export type MergeDTypeName = keyof typeof MERGE_DTYPES;
export type MergeFloatDType = (typeof MERGE_DTYPES)[MergeDTypeName];

/** Default of basin.max_shard_bytes: mergekit's default output shard size (5 GB). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/**
 * What a model reference points at:
 * - 'run': a Basin run folder (its latest checkpoint is merged);
 * - 'checkpoint': a Basin checkpoint file `<run>/checkpoints/step-<n>.safetensors` (its statistics may sit beside);
 * - 'safetensors': any other .safetensors file;
 * - 'folder': a folder holding `model.safetensors`;
 * - 'sharded': a folder holding `model.safetensors.index.json` (and its shards).
 */
export type ModelRefKind = 'run' | 'checkpoint' | 'safetensors' | 'folder' | 'sharded';

export interface ModelRef {
  /** As written in the config. */
  written: string;
  /** Absolute path (resolved from the config file's folder; symlinks resolved). */
  path: string;
  kind: ModelRefKind;
  /** Where it is written (1-based), for messages about the model found later. */
  line: number;
  column: number;
}

export interface MergeSourceConfig {
  model: ModelRef;
  /** [first, end) layers of the model; null with `models:` (every layer). */
  layerRange: [number, number] | null;
  /** `models[i].parameters` or `slices[j].sources[i].parameters` (the most specific level). */
  parameters: ParamSettings;
}

export interface MergeSliceConfig {
  sources: MergeSourceConfig[];
  /** `slices[j].parameters` ({} with `models:`). */
  parameters: ParamSettings;
  /** A slice's own base model (mergekit allows one per slice), else null: the config's base_model applies. */
  baseModel: ModelRef | null;
  /** The slice writes a base_model (null above when it was refused: a hub id, a missing path). */
  baseModelWritten?: boolean;
  /** 1-based line of the slice (of `models:` for the models form). */
  line: number;
}

export interface MergeConfig {
  /** Absolute path of the config file. */
  file: string;
  method: MergeMethodName;
  /** How the file gives its inputs. Either way they are normalized to slices (mergekit does the same). */
  form: 'models' | 'slices';
  /** With `models:`, ONE slice whose sources are the models in order, every layer. */
  slices: MergeSliceConfig[];
  baseModel: ModelRef | null;
  /** The global `parameters`. */
  parameters: ParamSettings;
  /** mergekit's `dtype` (the dtype inputs are read as; Basin computes in f32 regardless), null when absent. */
  dtype: MergeFloatDType | null;
  /** What the output is written as; null: `dtype`, else each tensor's input dtype (mergekit's rule). */
  outDtype: MergeFloatDType | null;
  /** `basin.output`, absolute; null when absent (the caller picks a default). */
  output: string | null;
  maxShardBytes: number;
  /** Keys read but not used by Basin (with their lines). */
  warnings: ConfigDiagnostic[];
}

// ------------------------------------------------------------------------------------------ model references

export class ModelRefError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelRefError';
  }
}

const HUB_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*(@[\w./-]+)?$/;

/** Classifies a model reference written in a config whose folder is `dir`; throws ModelRefError saying why not. */
export function resolveModelRef(dir: string, written: string): Omit<ModelRef, 'line' | 'column'> {
  if (written.trim() === '') throw new ModelRefError('model path is empty');
  if (written.includes('\0')) throw new ModelRefError('model path holds a NUL character');
  const abs = path.resolve(dir, written);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    const hub = HUB_ID_RE.test(written) && !written.startsWith('.');
    const lora = written.includes('+') ? ' ("model+lora" references are not supported either)' : '';
    throw new ModelRefError(
      `"${written}" is not a local file or folder (${abs} does not exist)${hub ? '; it looks like a Hugging Face hub id' : ''}${lora}. ` +
        'Basin does not download models; give a local folder or .safetensors file',
    );
  }
  const real = fs.realpathSync(abs);
  if (st.isFile()) {
    if (/\.opt\.safetensors$/i.test(real)) throw new ModelRefError(`"${written}" is an optimizer-state file; give the weights checkpoint (step-<n>.safetensors) beside it`);
    if (!/\.safetensors$/i.test(real)) {
      throw new ModelRefError(`"${written}" is not a .safetensors file; give a .safetensors file, a folder holding model.safetensors or model.safetensors.index.json, or a Basin run folder`);
    }
    const parent = path.dirname(real);
    const isCheckpoint = /^step-\d+\.safetensors$/.test(path.basename(real)) && path.basename(parent) === CHECKPOINTS_DIR && fs.existsSync(path.join(parent, '..', RUN_FILE));
    return { written, path: real, kind: isCheckpoint ? 'checkpoint' : 'safetensors' };
  }
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(real, RUN_FILE))) return { written, path: real, kind: 'run' };
    let file: string | null;
    try {
      file = modelFileIn(real); // a merge killed while moving its files in is finished first
    } catch (e) {
      throw new ModelRefError(`"${written}": ${(e as Error).message}`);
    }
    if (file) return { written, path: real, kind: path.basename(file) === MODEL_FILE ? 'folder' : 'sharded' };
    throw new ModelRefError(`folder "${written}" holds no ${RUN_FILE} (a Basin run), model.safetensors or model.safetensors.index.json`);
  }
  throw new ModelRefError(`"${written}" is neither a file nor a folder`);
}

// ------------------------------------------------------------------------------------------------ parsing

const TOP_KEYS = ['$schema', 'merge_method', 'base_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'basin'] as const;
/** mergekit keys Basin reads past (warned about). */
const IGNORED_TOP_KEYS: Record<string, string> = {
  tokenizer_source: 'Basin merges weights only and writes no tokenizer',
  tokenizer: 'Basin merges weights only and writes no tokenizer',
  chat_template: 'Basin writes no chat template',
  name: 'not used by Basin',
};
/** mergekit parameters that tune its own execution, not the merge (warned about). */
const IGNORED_PARAMS: Record<string, string> = {
  int8_mask: 'a mergekit memory option; Basin keeps its masks on the GPU',
};
const BASIN_KEYS = ['output', 'max_shard_bytes'] as const;
/** mergekit's methods Basin does not implement (for a kinder message than "unknown"). */
const MERGEKIT_ONLY = ['passthrough', 'nuslerp', 'karcher', 'sce', 'ram', 'nearswap', 'arcee_fusion', 'della_linear'];

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function suggest(unknown: string, allowed: readonly string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(unknown.toLowerCase().slice(0, 64), a.toLowerCase());
    if (d < bestD) [best, bestD] = [a, d];
  }
  if (bestD <= Math.max(1, Math.floor(unknown.length / 3))) return ` (did you mean "${best}"?)`;
  return allowed.length ? ` (allowed: ${allowed.join(', ')})` : '';
}

function describe(n: YamlNode | null | undefined): string {
  if (n === null || n === undefined) return 'nothing';
  if (isMap(n)) return 'a mapping';
  if (isSeq(n)) return 'a list';
  if (isScalar(n)) {
    const v = n.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
    if (typeof v === 'boolean') return `the boolean ${v}`;
    return String(v);
  }
  return 'an alias';
}

class Parser {
  readonly diagnostics: ConfigDiagnostic[] = [];
  private readonly lc = new LineCounter();
  private readonly dir: string;
  constructor(
    readonly text: string,
    readonly file: string,
  ) {
    this.dir = path.dirname(path.resolve(file));
  }

  private pos(offset: number): { line: number; col: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const p = this.lc.linePos(o);
    return { line: p.line, col: p.col };
  }

  report(n: YamlNode | Pair | null | undefined, field: string, message: string, severity: 'error' | 'warning' = 'error'): void {
    const r = (n && 'range' in n ? n.range : null) ?? (n && isPair(n) ? (n.key as YamlNode | null)?.range : null) ?? [0, 1];
    const a = this.pos(r[0]);
    const b = this.pos(Math.max(r[1], r[0] + 1));
    this.diagnostics.push({ line: a.line, column: a.col, endLine: b.line, endColumn: b.col, field, message, severity });
  }

  private where(n: YamlNode | null | undefined): { line: number; column: number } {
    const p = this.pos(n?.range?.[0] ?? 0);
    return { line: p.line, column: p.col };
  }

  /** The pairs of a mapping with string keys; reports non-string keys. */
  private pairs(map: YAMLMap, field: string): [string, Pair<YamlNode, YamlNode | null>][] {
    const out: [string, Pair<YamlNode, YamlNode | null>][] = [];
    for (const p of map.items as Pair<YamlNode, YamlNode | null>[]) {
      if (!isScalar(p.key) || typeof p.key.value !== 'string') {
        this.report(p.key as YamlNode, field, `keys must be names, got ${describe(p.key as YamlNode)}`);
        continue;
      }
      out.push([p.key.value, p]);
    }
    return out;
  }

  private checkKeys(map: YAMLMap, field: string, allowed: readonly string[], ignored: Record<string, string> = {}): Map<string, Pair<YamlNode, YamlNode | null>> {
    const m = new Map<string, Pair<YamlNode, YamlNode | null>>();
    for (const [k, p] of this.pairs(map, field)) {
      const f = field ? `${field}.${k}` : k;
      if (allowed.includes(k)) m.set(k, p);
      else if (Object.prototype.hasOwnProperty.call(ignored, k)) this.report(p.key, f, `ignored: ${ignored[k]}`, 'warning');
      else this.report(p.key, f, `unknown field "${k}"${suggest(k, allowed)}`);
    }
    return m;
  }

  private str(n: YamlNode | null | undefined, field: string): string | null {
    if (isScalar(n) && typeof n.value === 'string') return n.value;
    this.report(n, field, `must be a string, got ${describe(n)}`);
    return null;
  }

  private modelRef(n: YamlNode | null | undefined, field: string): ModelRef | null {
    if (isMap(n)) {
      this.report(n, field, 'must be a path (a string); model references with a revision or LoRA are mergekit hub features Basin does not support');
      return null;
    }
    const s = this.str(n, field);
    if (s === null) return null;
    try {
      return { ...resolveModelRef(this.dir, s), ...this.where(n) };
    } catch (e) {
      if (!(e instanceof ModelRefError)) throw e;
      this.report(n, field, e.message);
      return null;
    }
  }

  // ---- parameters

  private scalarValue(n: YamlNode | null | undefined, field: string, spec: ParamSpec | null, name: string): ParamScalar | null {
    if (!isScalar(n) || n.value === null || !['number', 'boolean', 'string'].includes(typeof n.value)) {
      this.report(n, field, `must be ${spec ? typeWord(spec) : 'a number, boolean or string'}, got ${describe(n)}`);
      return null;
    }
    const v = n.value as ParamScalar;
    if (!spec) return v;
    const bad = (msg: string): null => (this.report(n, field, `${name} ${msg}`), null);
    switch (spec.type) {
      case 'number':
      case 'integer': {
        if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`must be ${typeWord(spec)}, got ${describe(n)}`);
        if (spec.type === 'integer' && !Number.isSafeInteger(v)) return bad(`must be an integer, got ${v}`);
        const r = rangeProblem(spec, v);
        if (r) return bad(r);
        return v;
      }
      case 'boolean':
        return typeof v === 'boolean' ? v : bad(`must be true or false, got ${describe(n)}`);
      case 'string':
        if (typeof v !== 'string') return bad(`must be a string, got ${describe(n)}`);
        if (spec.enum && !spec.enum.includes(v)) return bad(`must be one of ${spec.enum.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(n)}`);
        return v;
      default:
        return bad(`is a list parameter, which merge configs cannot set`);
    }
  }

  /** A scalar or a gradient (a list of scalars). */
  private plainValue(n: YamlNode | null | undefined, field: string, spec: ParamSpec | null, name: string): ParamScalar | ParamScalar[] | null {
    if (isSeq(n)) {
      if (n.items.length === 0) {
        this.report(n, field, `${name}: a gradient needs at least one value`);
        return null;
      }
      if (spec?.type === 'integer') {
        this.report(n, field, `${name} must be a single integer (a gradient would interpolate to fractions)`);
        return null;
      }
      const out: ParamScalar[] = [];
      let ok = true;
      (n.items as (YamlNode | null)[]).forEach((it, i) => {
        const v = this.scalarValue(it, `${field}[${i}]`, spec, name);
        if (v === null) ok = false;
        else out.push(v);
      });
      if (ok && !spec && new Set(out.map((v) => typeof v)).size > 1) {
        this.report(n, field, `${name}: a gradient's values must all be of one type`);
        return null;
      }
      return ok ? out : null;
    }
    return this.scalarValue(n, field, spec, name);
  }

  private conditional(n: YAMLMap, field: string, spec: ParamSpec | null, name: string): ConditionalParam | null {
    const keys = this.checkKeys(n, field, ['filter', 'value']);
    const vp = keys.get('value');
    if (!vp) {
      this.report(n, field, `${name}: a {filter, value} entry needs a value (mergekit requires one; to leave tensors out of a filter, list a more specific filter first)`);
      return null;
    }
    let filter: string | null = null;
    const fp = keys.get('filter');
    if (fp && !(isScalar(fp.value) && fp.value.value === null)) {
      filter = this.str(fp.value, `${field}.filter`);
      if (filter === null) return null;
    }
    if (isMap(vp.value)) {
      this.report(vp.value, `${field}.value`, `${name}: a filter's value must be a scalar or a list of scalars, got a mapping`);
      return null;
    }
    const value = this.plainValue(vp.value, `${field}.value`, spec, name);
    if (value === null) return null;
    return filter === null ? { value } : { filter, value };
  }

  private setting(n: YamlNode | null | undefined, field: string, spec: ParamSpec | null, name: string): ParamSetting | null {
    if (isMap(n)) return this.conditional(n, field, spec, name);
    if (isSeq(n) && n.items.length > 0 && n.items.some((it) => isMap(it))) {
      const out: ConditionalParam[] = [];
      let ok = true;
      (n.items as (YamlNode | null)[]).forEach((it, i) => {
        if (!isMap(it)) {
          this.report(it, `${field}[${i}]`, `${name}: a list of {filter, value} entries cannot mix in plain values (write the fallback as {value: …})`);
          ok = false;
          return;
        }
        const c = this.conditional(it, `${field}[${i}]`, spec, name);
        if (c === null) ok = false;
        else out.push(c);
      });
      return ok ? out : null;
    }
    return this.plainValue(n, field, spec, name);
  }

  /** A `parameters:` mapping. `level` 'model' accepts only per-model parameters. */
  parameters(n: YamlNode | null | undefined, field: string, method: MergeMethodName | null, level: 'global' | 'slice' | 'model'): ParamSettings {
    const out: Record<string, ParamSetting> = {};
    if (isScalar(n) && n.value === null) return out;
    if (!isMap(n)) {
      this.report(n, field, `must be a mapping of parameter names to values, got ${describe(n)}`);
      return out;
    }
    const entry = method ? mergeMethodRegistry.get(method) : null;
    const specs = (entry?.params ?? {}) as Record<string, ParamSpec>;
    for (const [k, p] of this.pairs(n, field)) {
      const f = `${field}.${k}`;
      let spec: ParamSpec | null = null;
      if (entry) {
        if (!Object.prototype.hasOwnProperty.call(specs, k)) {
          if (Object.prototype.hasOwnProperty.call(IGNORED_PARAMS, k)) {
            this.report(p.key, f, `ignored: ${IGNORED_PARAMS[k]}`, 'warning');
            continue;
          }
          const names = Object.keys(specs);
          this.report(p.key, f, `unknown parameter "${k}" for merge_method ${entry.name}${suggest(k, names).replace('allowed', 'its parameters') || ' (it has no parameters)'}`);
          continue;
        }
        spec = specs[k];
        if (level === 'model' && !spec.perModel) {
          this.report(p.key, f, `"${k}" is a global parameter of ${entry.name}, not a per-model one: write it under the top-level (or slice) parameters`);
          continue;
        }
      }
      const v = this.setting(p.value, f, spec, k);
      if (v !== null) out[k] = v;
    }
    return out;
  }

  // ---- the document

  parse(): MergeConfig | null {
    const doc = parseDocument(this.text, { lineCounter: this.lc, prettyErrors: false, uniqueKeys: true });
    for (const e of doc.errors) {
      const a = this.pos(e.pos[0]);
      const b = this.pos(Math.max(e.pos[1], e.pos[0] + 1));
      this.diagnostics.push({ line: a.line, column: a.col, endLine: b.line, endColumn: b.col, field: '', message: `YAML syntax error: ${e.message.split('\n')[0]}`, severity: 'error' });
    }
    if (this.diagnostics.length) return null;
    // Aliases: refuse them rather than resolve (a merge config has no use for them, and an alias bomb is then moot).
    let alias = false;
    const visit = (n: unknown, depth: number): void => {
      if (alias || depth > 64) return;
      if (isAlias(n)) {
        alias = true;
        this.report(n as YamlNode, '', 'YAML aliases (*name) are not supported in merge configs; write the value out');
        return;
      }
      if (isMap(n)) for (const p of n.items) (visit(p.key, depth + 1), visit(p.value, depth + 1));
      else if (isSeq(n)) for (const it of n.items) visit(it, depth + 1);
    };
    visit(doc.contents, 0);
    if (alias) return null;

    const root = doc.contents as YamlNode | null;
    if (!isMap(root)) {
      this.report(root, '(root)', `a merge config must be a mapping with merge_method and models or slices, got ${describe(root)}`);
      return null;
    }
    const keys = this.checkKeys(root, '', TOP_KEYS as unknown as string[], IGNORED_TOP_KEYS);

    // merge_method
    let method: MergeMethodName | null = null;
    const mp = keys.get('merge_method');
    if (!mp) this.report(root, 'merge_method', `missing required field "merge_method" (one of ${mergeMethodRegistry.names.join(', ')})`);
    else {
      const s = this.str(mp.value, 'merge_method');
      if (s !== null) {
        if (mergeMethodRegistry.has(s)) method = s as MergeMethodName;
        else if (MERGEKIT_ONLY.includes(s)) this.report(mp.value, 'merge_method', `"${s}" is a mergekit method Basin does not implement; Basin has: ${mergeMethodRegistry.names.join(', ')}`);
        else {
          try {
            mergeMethodRegistry.get(s);
          } catch (e) {
            this.report(mp.value, 'merge_method', (e as Error).message + suggest(s, mergeMethodRegistry.names).replace(/ \(allowed:.*\)$/, ''));
          }
        }
      }
    }
    const entry: RegistryEntry | null = method ? mergeMethodRegistry.get(method) : null;

    // base_model
    let baseModel: ModelRef | null = null;
    const bp = keys.get('base_model');
    const baseModelWritten = isGiven(bp);
    if (baseModelWritten) baseModel = this.modelRef(bp!.value, 'base_model');

    // parameters
    const parameters = keys.has('parameters') ? this.parameters(keys.get('parameters')!.value, 'parameters', method, 'global') : {};

    // models / slices
    const modelsP = keys.get('models');
    const slicesP = keys.get('slices');
    const slices: MergeSliceConfig[] = [];
    let form: 'models' | 'slices' = 'models';
    if (modelsP && slicesP) this.report(slicesP.key, 'slices', 'give either "models" or "slices", not both');
    else if (!modelsP && !slicesP) this.report(root, 'models', 'missing "models" (whole models to merge) or "slices" (layer ranges)');
    else if (modelsP) {
      const n = modelsP.value;
      if (!isSeq(n) || n.items.length === 0) this.report(n ?? modelsP.key, 'models', `must be a non-empty list of {model, parameters}, got ${describe(n)}`);
      else {
        const sources: MergeSourceConfig[] = [];
        (n.items as (YamlNode | null)[]).forEach((it, i) => {
          const s = this.source(it, `models[${i}]`, method, false);
          if (s) sources.push(s);
        });
        slices.push({ sources, parameters: {}, baseModel: null, line: this.where(modelsP.key).line });
      }
    } else if (slicesP) {
      form = 'slices';
      const n = slicesP.value;
      if (!isSeq(n) || n.items.length === 0) this.report(n ?? slicesP.key, 'slices', `must be a non-empty list of {sources, parameters}, got ${describe(n)}`);
      else (n.items as (YamlNode | null)[]).forEach((it, j) => {
        const s = this.slice(it, `slices[${j}]`, method);
        if (s) slices.push(s);
      });
    }

    // dtypes
    const dtype = this.dtype(keys.get('dtype'), 'dtype');
    const outDtype = this.dtype(keys.get('out_dtype'), 'out_dtype');

    // basin:
    let output: string | null = null;
    let maxShardBytes = DEFAULT_MAX_SHARD_BYTES;
    const basinP = keys.get('basin');
    if (basinP) {
      const b = basinP.value;
      if (!isMap(b)) this.report(b ?? basinP.key, 'basin', `must be a mapping (${BASIN_KEYS.join(', ')}), got ${describe(b)}`);
      else {
        const bk = this.checkKeys(b, 'basin', BASIN_KEYS);
        const op = bk.get('output');
        if (op) {
          const s = this.str(op.value, 'basin.output');
          if (s !== null && s.trim() === '') this.report(op.value, 'basin.output', 'must not be empty');
          else if (s !== null) output = path.resolve(this.dir, s);
        }
        const sp = bk.get('max_shard_bytes');
        if (sp) {
          const v = isScalar(sp.value) ? sp.value.value : undefined;
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.report(sp.value, 'basin.max_shard_bytes', `must be a positive integer (bytes), got ${describe(sp.value)}`);
          else maxShardBytes = v;
        }
      }
    }

    // What the method needs.
    // (A base_model written but refused, a hub id say, has its own error already.)
    if (entry?.needs?.base && !baseModel && !baseModelWritten && slices.some((s) => !s.baseModel && !s.baseModelWritten)) {
      // Basin fine-tunes record their base (run.json lineage): when every model names the same one, use it.
      const models = slices.flatMap((s) => s.sources.map((x) => x.model));
      let found = commonLineageBase(models);
      let unreadable: string | null = null;
      try {
        if (found) resolveModelRef(this.dir, found);
      } catch (e) {
        unreadable = `${found}: ${(e as Error).message}`;
        found = null; // the recorded base is not a model Basin reads: ask for base_model
      }
      const at = this.where(modelsP?.key ?? slicesP?.key ?? root);
      if (found) {
        baseModel = { ...resolveModelRef(this.dir, path.relative(this.dir, found) || found), ...at };
        this.report(modelsP?.key ?? slicesP?.key ?? root, 'base_model', `not given: using ${baseModel.written}, the checkpoint every model was fine-tuned from (run.json lineage)`, 'warning');
      } else {
        const why = unreadable
          ? ` (their runs' common base is not a model Basin reads: ${unreadable})`
          : models.length && models.every((m) => fineTuneBaseOf(m))
            ? ' (their runs were fine-tuned from different bases)'
            : '';
        this.report(mp?.value ?? root, 'base_model', `merge_method ${entry.name} needs a base model (its task vectors are θ_t − θ₀): add base_model${why}`);
      }
    }

    if (this.diagnostics.some((d) => d.severity === 'error') || !method) return null;
    return {
      file: path.resolve(this.file),
      method,
      form,
      slices,
      baseModel,
      parameters,
      dtype,
      outDtype,
      output,
      maxShardBytes,
      warnings: this.diagnostics.filter((d) => d.severity === 'warning'),
    };
  }

  private dtype(p: Pair<YamlNode, YamlNode | null> | undefined, field: string): MergeFloatDType | null {
    if (!p || (isScalar(p.value) && p.value.value === null)) return null;
    const s = this.str(p.value, field);
    if (s === null) return null;
    const k = s.replace(/^torch\./, '');
    if (!Object.prototype.hasOwnProperty.call(MERGE_DTYPES, k)) {
      this.report(p.value, field, `must be one of ${Object.keys(MERGE_DTYPES).join(', ')}, got ${describe(p.value)}`);
      return null;
    }
    return MERGE_DTYPES[k as MergeDTypeName];
  }

  private source(n: YamlNode | null | undefined, field: string, method: MergeMethodName | null, inSlice: boolean): MergeSourceConfig | null {
    if (!isMap(n)) {
      this.report(n, field, `must be a mapping {model${inSlice ? ', layer_range' : ''}, parameters}, got ${describe(n)}`);
      return null;
    }
    const keys = this.checkKeys(n, field, inSlice ? ['model', 'layer_range', 'parameters'] : ['model', 'parameters']);
    const mp = keys.get('model');
    if (!mp) {
      this.report(n, `${field}.model`, 'missing required field "model"');
      return null;
    }
    const model = this.modelRef(mp.value, `${field}.model`);
    const parameters = keys.has('parameters') ? this.parameters(keys.get('parameters')!.value, `${field}.parameters`, method, 'model') : {};
    let layerRange: [number, number] | null = null;
    if (inSlice) {
      const lp = keys.get('layer_range');
      if (!lp) this.report(n, `${field}.layer_range`, 'missing required field "layer_range" ([first, end) layers of the model)');
      else {
        const v = lp.value;
        const nums = isSeq(v) ? (v.items as (YamlNode | null)[]).map((x) => (isScalar(x) ? x.value : undefined)) : [];
        if (!isSeq(v) || nums.length !== 2 || !nums.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
          this.report(v ?? lp.key, `${field}.layer_range`, `must be [first, end] with non-negative integers, got ${describe(v)}`);
        } else if ((nums[0] as number) >= (nums[1] as number)) {
          this.report(v, `${field}.layer_range`, `[${nums[0]}, ${nums[1]}] is empty: the end is exclusive and must be above the first layer`);
        } else layerRange = [nums[0] as number, nums[1] as number];
      }
    }
    if (!model || (inSlice && !layerRange)) return null;
    return { model, layerRange, parameters };
  }

  private slice(n: YamlNode | null | undefined, field: string, method: MergeMethodName | null): MergeSliceConfig | null {
    if (!isMap(n)) {
      this.report(n, field, `must be a mapping {sources, parameters}, got ${describe(n)}`);
      return null;
    }
    const keys = this.checkKeys(n, field, ['sources', 'parameters', 'base_model'], { residual_weight: 'not used by Basin' });
    const sp = keys.get('sources');
    const sources: MergeSourceConfig[] = [];
    if (!sp) this.report(n, `${field}.sources`, 'missing required field "sources"');
    else if (!isSeq(sp.value) || sp.value.items.length === 0) this.report(sp.value ?? sp.key, `${field}.sources`, `must be a non-empty list of {model, layer_range, parameters}, got ${describe(sp.value)}`);
    else {
      (sp.value.items as (YamlNode | null)[]).forEach((it, i) => {
        const s = this.source(it, `${field}.sources[${i}]`, method, true);
        if (s) sources.push(s);
      });
      const lens = sources.map((s) => s.layerRange![1] - s.layerRange![0]);
      if (new Set(lens).size > 1) {
        this.report(sp.value, `${field}.sources`, `every source of a slice must span the same number of layers, got ${sources.map((s) => `[${s.layerRange!.join(', ')}]`).join(', ')}`);
      }
    }
    const parameters = keys.has('parameters') ? this.parameters(keys.get('parameters')!.value, `${field}.parameters`, method, 'slice') : {};
    const bp = keys.get('base_model');
    const written = isGiven(bp);
    const baseModel = written ? this.modelRef(bp!.value, `${field}.base_model`) : null;
    return { sources, parameters, baseModel, baseModelWritten: written, line: this.where(n).line };
  }
}

/** A key written with a value other than null (`base_model: ~` means none, as in mergekit). */
function isGiven(p: { value: unknown } | undefined): boolean {
  return !!p && !(isScalar(p.value) && p.value.value === null);
}

function typeWord(spec: ParamSpec): string {
  switch (spec.type) {
    case 'integer':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a string';
    default:
      return 'a list';
  }
}

/** "must be >= 0, got -1"-style problem of a number against its spec's range, or null. */
export function rangeProblem(spec: ParamSpec, v: number): string | null {
  if (spec.type !== 'number' && spec.type !== 'integer') return null;
  if (spec.minimum !== undefined && v < spec.minimum) return `must be >= ${spec.minimum}, got ${v}`;
  if (spec.maximum !== undefined && v > spec.maximum) return `must be <= ${spec.maximum}, got ${v}`;
  if (spec.exclusiveMinimum !== undefined && v <= spec.exclusiveMinimum) return `must be > ${spec.exclusiveMinimum}, got ${v}`;
  if (spec.exclusiveMaximum !== undefined && v >= spec.exclusiveMaximum) return `must be < ${spec.exclusiveMaximum}, got ${v}`;
  return null;
}

function sortDiagnostics(ds: ConfigDiagnostic[]): ConfigDiagnostic[] {
  return ds.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Diagnostics (errors and warnings) of a merge config's text, for the editor. Never throws; 1-based positions. */
export function validateMergeConfigText(text: string, fileName: string): ConfigDiagnostic[] {
  try {
    const p = new Parser(text, fileName);
    p.parse();
    return sortDiagnostics(p.diagnostics);
  } catch (e) {
    return [{ line: 1, column: 1, endLine: 1, endColumn: 2, field: '', message: `internal error while validating: ${(e as Error).message}`, severity: 'error' }];
  }
}

/**
 * Parses and validates a merge config's text (model paths resolve from `fileName`'s folder). Throws ConfigError
 * listing every error (warnings included after them); warnings alone are returned in `config.warnings`.
 */
export function parseMergeConfig(text: string, fileName: string): MergeConfig {
  const p = new Parser(text, fileName);
  const c = p.parse();
  if (!c) {
    const ds = sortDiagnostics(p.diagnostics);
    if (!ds.some((d) => d.severity === 'error')) ds.unshift({ line: 1, column: 1, endLine: 1, endColumn: 2, field: '', message: 'invalid merge config', severity: 'error' });
    throw new ConfigError(fileName, ds);
  }
  c.warnings = sortDiagnostics(c.warnings);
  return c;
}

/** Loads a `*.merge.yaml`; throws ConfigError (`<file>:<line>:<col>: <field>: <what is wrong>`). */
export function loadMergeConfig(file: string): MergeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      { line: 1, column: 1, endLine: 1, endColumn: 1, field: '', message: `cannot read the merge config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, severity: 'error' },
    ]);
  }
  return parseMergeConfig(text, file);
}

/** Every distinct model a config reads (base first when given), by resolved path. */
export function referencedModels(c: MergeConfig): ModelRef[] {
  const seen = new Map<string, ModelRef>();
  const add = (m: ModelRef | null) => {
    if (m && !seen.has(m.path)) seen.set(m.path, m);
  };
  add(c.baseModel);
  for (const s of c.slices) {
    add(s.baseModel);
    for (const src of s.sources) add(src.model);
  }
  return [...seen.values()];
}

/** The merge methods' names (for messages and the schema). */
export const MERGE_METHOD_NAMES: readonly string[] = MERGE_METHOD_ENTRIES.map((e) => e.name);
