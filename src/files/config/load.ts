// Loading and validating training configs (`*.basin.yaml`, `*.basin.json`).
//
// Both formats are parsed with the `yaml` package (YAML 1.2 accepts JSON), which keeps each node's source range,
// so every problem is reported at its line and column; a JSON file is also run through JSON.parse so that what
// YAML tolerates but JSON does not (trailing commas, comments) is still a syntax error. The parsed value is
// validated with Ajv against `trainConfigSchema` (allErrors, useDefaults, strict schema), then checked across
// fields (model/data compatibility, dModel % heads…), then the defaults that depend on other fields are filled.
//
// Positions in ConfigDiagnostic are 1-BASED (line 1, column 1 is the first character), matching the
// `<file>:<line>:<col>` convention of compilers; the end position is exclusive. The VS Code side subtracts 1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { DEFAULT_STEPS, trainConfigSchema, type TrainConfig } from './schema';
import { dataRegistry } from '../registry/data-sources';
import { modelRegistry, type FieldProblem } from '../registry/models';
import { CONFIG_FILE_RE } from './config-files';

export interface ConfigDiagnostic {
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  /** 1-based, inclusive line of the end. */
  endLine: number;
  /** 1-based, exclusive: the column just after the last character. */
  endColumn: number;
  /** Dotted field path, e.g. `train.optimizer.lr` or `model.hidden[1]`; '' for syntax errors. */
  field: string;
  message: string;
  severity: 'error' | 'warning';
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly diagnostics: ConfigDiagnostic[],
  ) {
    super(diagnostics.map((d) => formatDiagnostic(file, d)).join('\n'));
    this.name = 'ConfigError';
  }
}

/** `<file>:<line>:<col>: <field>: <message>` (`<file>:<line>:<col>: <message>` when no field is at fault). */
export function formatDiagnostic(file: string, d: ConfigDiagnostic): string {
  return `${file}:${d.line}:${d.column}: ${d.field === '' ? '' : d.field + ': '}${d.message}`;
}

// ------------------------------------------------------------------------------------------------ positions

class Positions {
  private readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }
  /** Offset → 1-based {line, col}. */
  at(offset: number): { line: number; col: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: o - this.starts[lo] + 1 };
  }
  diag(start: number, end: number, field: string, message: string, severity: 'error' | 'warning' = 'error'): ConfigDiagnostic {
    const a = this.at(start);
    const b = this.at(Math.max(end, start + 1));
    return { line: a.line, column: a.col, endLine: b.line, endColumn: b.col, field, message, severity };
  }
}

type Seg = string | number;

function fieldPath(segs: readonly Seg[]): string {
  let s = '';
  for (const seg of segs) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

function pointerToSegs(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

interface Located {
  /** The node at the deepest segment found. */
  node: YamlNode | null;
  /** The key node of the pair holding `node`, when it is a map value. */
  key: YamlNode | null;
  /** How many segments were found. */
  depth: number;
}

/** Walks the YAML tree along a path; stops at the deepest node that exists. */
function locate(doc: Document, segs: readonly string[]): Located {
  let node = doc.contents as YamlNode | null;
  let key: YamlNode | null = null;
  let depth = 0;
  for (const seg of segs) {
    if (node && isAlias(node)) node = (node.resolve(doc) as YamlNode | undefined) ?? node;
    if (node && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (!pair) break;
      key = (pair.key as YamlNode | null) ?? null;
      node = (pair.value as YamlNode | null) ?? null;
    } else if (node && isSeq(node)) {
      const i = Number(seg);
      if (!Number.isInteger(i) || i < 0 || i >= node.items.length) break;
      key = null;
      node = node.items[i] as YamlNode | null;
    } else break;
    depth++;
  }
  return { node, key, depth };
}

function rangeOf(n: YamlNode | null | undefined): [number, number] | null {
  const r = n?.range;
  return r ? [r[0], r[1]] : null;
}

// ------------------------------------------------------------------------------------------------ validation

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, discriminator: true, verbose: true });
    validator = ajv.compile(trainConfigSchema as object);
  }
  return validator;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array`;
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v === 'boolean' ? 'the boolean' : ''} ${String(v)}`.trim();
}

function valueAt(data: unknown, segs: readonly string[]): unknown {
  let v = data;
  for (const s of segs) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[s];
  }
  return v;
}

function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[n];
}

function suggest(unknown: string, allowed: string[]): string {
  const lower = unknown.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = a.toLowerCase() === lower ? 0 : editDistance(lower, a.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(unknown.length / 3))) return ` (did you mean "${best}"?)`;
  return allowed.length ? ` (allowed: ${allowed.join(', ')})` : '';
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

const COMPARISONS: Record<string, string> = { minimum: '>=', maximum: '<=', exclusiveMinimum: '>', exclusiveMaximum: '<' };

interface Problem {
  segs: string[];
  /** Where to point: the value, the key of the named field, or the parent's key (missing fields). */
  at: 'value' | 'key' | 'parent';
  message: string;
  /** The Ajv keyword, or 'cross' for cross-field checks. */
  kind?: string;
}

function ajvProblems(errors: ErrorObject[], data: unknown): Problem[] {
  const out: Problem[] = [];
  for (const e of errors) {
    const segs = pointerToSegs(e.instancePath);
    const value = valueAt(data, segs);
    const p = e.params as Record<string, unknown>;
    const push = (x: Problem): void => void out.push({ ...x, kind: e.keyword });
    switch (e.keyword) {
      case 'additionalProperties': {
        const name = String(p.additionalProperty);
        const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
        push({ segs: [...segs, name], at: 'key', message: `unknown field "${name}"${suggest(name, Object.keys(props).filter((k) => k !== '$schema'))}` });
        break;
      }
      case 'required': {
        const name = String(p.missingProperty);
        const choices = (e.parentSchema as { properties?: Record<string, { enum?: unknown[] }> } | undefined)?.properties?.[name]?.enum;
        const hint = choices ? ` (one of ${choices.map((c) => JSON.stringify(c)).join(', ')})` : '';
        push({ segs: [...segs, name], at: 'parent', message: `missing required field "${name}"${hint}` });
        break;
      }
      case 'type':
        push({ segs, at: 'value', message: `must be ${TYPE_WORDS[String(p.type)] ?? String(p.type)}, got ${describeValue(value)}` });
        break;
      case 'enum':
        push({ segs, at: 'value', message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(value)}` });
        break;
      case 'const':
        push({ segs, at: 'value', message: `must be ${JSON.stringify(p.allowedValue)}, got ${describeValue(value)}` });
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        push({ segs, at: 'value', message: `must be ${COMPARISONS[e.keyword]} ${String(p.limit)}, got ${describeValue(value)}` });
        break;
      case 'minItems':
      case 'maxItems': {
        const sch = e.parentSchema as { minItems?: number; maxItems?: number } | undefined;
        const n = Array.isArray(value) ? value.length : 0;
        const want = sch?.minItems !== undefined && sch.minItems === sch.maxItems ? `exactly ${sch.minItems}` : `${e.keyword === 'minItems' ? 'at least' : 'at most'} ${String(p.limit)}`;
        push({ segs, at: 'value', message: `must have ${want} items, got ${n}` });
        break;
      }
      case 'minLength':
        push({ segs, at: 'value', message: Number(p.limit) === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long` });
        break;
      case 'maxLength':
        push({ segs, at: 'value', message: `must be at most ${String(p.limit)} characters long` });
        break;
      case 'pattern':
        push({
          segs,
          at: 'value',
          message:
            segs.join('.') === 'name'
              ? `must start with a letter or digit and hold only letters, digits, ".", "_" and "-", got ${describeValue(value)}`
              : `must match ${String(p.pattern)}, got ${describeValue(value)}`,
        });
        break;
      case 'discriminator': {
        // The tag's own errors (type, enum) are reported on the tag; only report what they do not cover.
        const tagSegs = [...segs, String(p.tag)];
        const allowed = ((e.parentSchema as { properties?: { type?: { enum?: string[] } } } | undefined)?.properties?.type?.enum ?? []).map((v) => `"${v}"`);
        push({ segs: tagSegs, at: 'value', message: `must be one of ${allowed.join(', ')}, got ${describeValue(p.tagValue)}` });
        break;
      }
      case 'oneOf':
        break; // covered by the discriminator
      default:
        push({ segs, at: 'value', message: e.message ?? e.keyword });
    }
  }
  // One problem per (place, message); a tag or field with a type error needs no enum/discriminator error on top.
  const typed = new Set(out.filter((x) => x.kind === 'type').map((x) => x.segs.join('/')));
  const tagged = new Set(out.filter((x) => x.kind !== 'discriminator').map((x) => x.segs.join('/')));
  const seen = new Set<string>();
  return out.filter((x) => {
    const place = x.segs.join('/');
    if (x.kind === 'enum' && typed.has(place)) return false;
    if (x.kind === 'discriminator' && tagged.has(place)) return false;
    const k = place + '\0' + x.message;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Checks across fields, on a schema-valid config (defaults applied): each registry entry's own checks. */
function crossFieldProblems(c: Record<string, any>, given: Record<string, any>): Problem[] {
  const out: Problem[] = [];
  const model = modelRegistry.get(c.model.type);
  const data = dataRegistry.get(c.data.type);
  const givenData = (given?.data ?? {}) as Record<string, unknown>;
  const add = (section: string[], probs: FieldProblem[]) => {
    for (const p of probs) out.push({ segs: p.field.startsWith('/') ? p.field.slice(1).split('.') : [...section, p.field], at: p.at ?? 'value', message: p.message });
  };
  add(['model'], model.check?.(c.model) ?? []);
  if (data.gives !== model.input) {
    const readers = modelRegistry.entries.filter((m) => m.input === data.gives).map((m) => `"${m.name}"`);
    const fits = dataRegistry.entries.filter((d) => d.gives === model.input).map((d) => `"${d.name}"`);
    out.push({ segs: ['data', 'type'], at: 'value', message: `"${data.name}" needs model.type ${readers.join(' or ')}; model.type "${model.name}" trains on ${fits.join(' or ')}` });
  } else {
    add(['data'], data.check?.(c.data, { model: c.model, given: givenData }) ?? []);
  }
  if (c.train.steps !== undefined && c.train.epochs !== undefined) {
    out.push({ segs: ['train', 'epochs'], at: 'key', message: 'set either train.steps or train.epochs, not both' });
  }
  return out;
}

/** Fills the defaults that depend on other fields. */
function applyDerivedDefaults(c: Record<string, any>, fileName: string): void {
  if (c.name === undefined) c.name = nameFromFile(fileName);
  const d = c.data;
  if (d.seed === undefined) d.seed = c.seed;
  dataRegistry.get(d.type).derive?.(d, { model: c.model });
  if (c.train.steps === undefined && c.train.epochs === undefined) c.train.steps = DEFAULT_STEPS;
}

/** `demo.basin.yaml` → `demo`; characters a run name cannot hold become "-". */
export function nameFromFile(fileName: string): string {
  const base = path.basename(fileName).replace(CONFIG_FILE_RE, '').replace(/\.(ya?ml|json)$/i, '');
  const clean = base.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return clean || 'run';
}

function isJsonFile(fileName: string): boolean {
  return /\.json$/i.test(fileName);
}

interface Parsed {
  config?: TrainConfig;
  diagnostics: ConfigDiagnostic[];
}

function parseAndValidate(text: string, fileName: string): Parsed {
  const pos = new Positions(text);
  const diagnostics: ConfigDiagnostic[] = [];

  if (isJsonFile(fileName)) {
    try {
      JSON.parse(text);
    } catch (e) {
      const msg = (e as Error).message;
      const m = /at position (\d+)/.exec(msg);
      const at = m ? Number(m[1]) : text.length;
      const clean = msg.replace(/\s*in JSON at position \d+.*$/, '').replace(/ \(line \d+ column \d+\)$/, '');
      return { diagnostics: [pos.diag(at, at + 1, '', `invalid JSON: ${clean}`)] };
    }
  }
  const doc = parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) {
    diagnostics.push(pos.diag(e.pos[0], e.pos[1], '', `YAML syntax error: ${e.message.split('\n')[0]}`));
  }
  if (diagnostics.length) return { diagnostics };

  let data: unknown;
  try {
    data = doc.toJS() ?? {}; // the default maxAliasCount (100) stops "billion laughs" alias bombs
  } catch (e) {
    return { diagnostics: [pos.diag(0, 1, '', `YAML error: ${(e as Error).message}`)] };
  }
  const given = structuredClone(data) as Record<string, any>;

  const toDiag = (p: Problem): ConfigDiagnostic => {
    const field = p.segs.length ? fieldPath(typedSegs(data, p.segs)) : '(root)';
    if (p.at === 'parent') {
      // A missing field: point at the parent's key (the `optimizer:` line), or the parent mapping itself.
      const parentSegs = p.segs.slice(0, -1);
      const loc = locate(doc, parentSegs);
      const r = (loc.depth === parentSegs.length && rangeOf(loc.key)) || rangeOf(loc.node) || [0, 1];
      return pos.diag(r[0], r[1], field, p.message);
    }
    const loc = locate(doc, p.segs);
    let r: [number, number] | null = null;
    if (loc.depth === p.segs.length) r = p.at === 'key' ? rangeOf(loc.key) ?? rangeOf(loc.node) : rangeOf(loc.node) ?? rangeOf(loc.key);
    else r = rangeOf(loc.key) ?? rangeOf(loc.node); // the field came from a default: point at its nearest written parent
    r ??= [0, 1];
    return pos.diag(r[0], r[1], field, p.message);
  };

  const validate = getValidator();
  if (!validate(data)) {
    for (const p of ajvProblems(validate.errors ?? [], data)) diagnostics.push(toDiag(p));
    return { diagnostics: sortDiagnostics(diagnostics) };
  }
  const c = data as Record<string, any>;
  for (const p of crossFieldProblems(c, given)) diagnostics.push(toDiag(p));
  if (diagnostics.length) return { diagnostics: sortDiagnostics(diagnostics) };
  applyDerivedDefaults(c, fileName);
  return { config: c as TrainConfig, diagnostics };
}

/** Marks the segments that index arrays (for `model.hidden[1]`-style paths). */
function typedSegs(data: unknown, segs: readonly string[]): Seg[] {
  const out: Seg[] = [];
  let v = data;
  for (const s of segs) {
    out.push(Array.isArray(v) && /^\d+$/.test(s) ? Number(s) : s);
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[s] : undefined;
  }
  return out;
}

function sortDiagnostics(ds: ConfigDiagnostic[]): ConfigDiagnostic[] {
  return ds.sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * Diagnostics for a config's text (for the editor, on open and on change). Never throws: a YAML or JSON syntax
 * error is reported at its position. An empty list means the config is valid. Positions are 1-based.
 */
export function validateConfigText(text: string, fileName: string): ConfigDiagnostic[] {
  try {
    return parseAndValidate(text, fileName).diagnostics;
  } catch (e) {
    return [{ line: 1, column: 1, endLine: 1, endColumn: 2, field: '', message: `internal error while validating: ${(e as Error).message}`, severity: 'error' }];
  }
}

/** Parses and validates config text; throws ConfigError listing every problem. */
export function parseConfig(text: string, fileName: string): TrainConfig {
  const r = parseAndValidate(text, fileName);
  if (!r.config || r.diagnostics.some((d) => d.severity === 'error')) throw new ConfigError(fileName, r.diagnostics);
  return r.config;
}

/**
 * Loads a `*.basin.yaml` / `*.basin.json` file: the config with every default applied, and the file's text.
 * Throws ConfigError (`<file>:<line>:<col>: <field>: <what is wrong>`, one line per problem).
 */
export function loadConfig(file: string): { config: TrainConfig; source: string; path: string } {
  let source: string;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      { line: 1, column: 1, endLine: 1, endColumn: 1, field: '', message: `cannot read the config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, severity: 'error' },
    ]);
  }
  return { config: parseConfig(source, file), source, path: path.resolve(file) };
}

/** Resolves a path written in a config (data.path, output) against the config file's folder. */
export function resolveConfigPath(configFile: string, p: string): string {
  return path.resolve(path.dirname(path.resolve(configFile)), p);
}

/**
 * A ConfigError for a problem found after loading, where only the engine can tell (a freeze glob that matches no
 * parameter, an `init.from` checkpoint that does not exist): re-reads the config file to point at the field's line.
 * `segs` is the field's path (`['train', 'freeze', 0]`). Falls back to line 1 when the file cannot be read.
 */
export function configFieldError(file: string, segs: readonly (string | number)[], message: string): ConfigError {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    // keep line 1
  }
  const pos = new Positions(text);
  const doc = parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: false });
  const loc = locate(doc, segs.map(String));
  const r = (loc.depth === segs.length ? rangeOf(loc.node) ?? rangeOf(loc.key) : rangeOf(loc.key) ?? rangeOf(loc.node)) ?? [0, 1];
  return new ConfigError(file, [pos.diag(r[0], r[1], fieldPath(segs), message)]);
}
