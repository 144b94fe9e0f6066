// One registry shape for every pluggable thing: optimizers, models, losses, data sources, schedules, and later
// merge methods and prune scores. An entry's METADATA lives here, in the files part (pure data: no GPU, no engine
// import), because the config JSON Schema, the config validator's messages, the editor's completion and the
// panels' forms are all generated from it. Its FACTORY lives in the engine, in the registry of its family
// (src/engine/optim/registry.ts, src/engine/nn/registry.ts, …), keyed by this entry so that TypeScript refuses a
// family whose factories and entries disagree. So a name is written once: in its entry.
//
// A parameter is a JSON-Schema fragment plus its documentation. Its value type in TypeScript (ParamsOf) follows
// from the fragment: a parameter with a default, `required`, or a `derived` default (filled by the loader from
// other fields) is always present after loading; the others are optional.

/** The families of registered things. */
export type RegistryKind = 'optimizer' | 'model' | 'loss' | 'data' | 'schedule' | 'merge-method' | 'prune-score';

interface ParamBase {
  /** What it does, for hover, completion and forms (Markdown allowed). */
  doc: string;
  /** Must be written in the config (and has no default). */
  required?: boolean;
  /** Has no schema default but the loader fills it from other fields (the doc says from what). */
  derived?: boolean;
  /**
   * Merge methods: the parameter may be given per input model (mergekit's `models[].parameters`), not only
   * globally; a per-model value wins over the global one. Ignored by other families.
   */
  perModel?: boolean;
  /**
   * Merge methods: a global number that is the other model's share of each tensor (slerp's t: 0 keeps the base).
   * The merge panel's grid edits it per layer where a method has no per-model weight. Ignored by other families.
   */
  expertShare?: boolean;
}

export interface NumberParam extends ParamBase {
  type: 'number' | 'integer';
  default?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

export interface BooleanParam extends ParamBase {
  type: 'boolean';
  default?: boolean;
}

export interface StringParam extends ParamBase {
  type: 'string';
  default?: string;
  enum?: readonly string[];
  minLength?: number;
  pattern?: string;
}

export interface ArrayParam extends ParamBase {
  type: 'array';
  /** The items' schema (a number or integer fragment: the configs' lists are numeric). */
  items: Omit<NumberParam, 'doc' | 'default' | 'required' | 'derived'> & { doc?: string };
  default?: readonly number[];
  minItems?: number;
  maxItems?: number;
}

export type ParamSpec = NumberParam | BooleanParam | StringParam | ArrayParam;

/** What an entry needs besides its parameters (merge methods and prune scores use the last three). */
export interface Needs {
  /** Training statistics saved beside the checkpoints (curvature, momentum). */
  statistics?: boolean;
  /** A pass over data (calibration batches, Fisher). */
  data?: boolean;
  /** A base model (task vectors). */
  base?: boolean;
}

export interface RegistryEntry {
  readonly kind: RegistryKind;
  /** The name a config writes (`type: adamw`); unique within its kind. */
  readonly name: string;
  /** One line: what it is (the schema's branch description and completion's detail). */
  readonly title: string;
  /** A few lines more, for hover and the forms (Markdown allowed; optional). */
  readonly doc?: string;
  readonly params: Readonly<Record<string, ParamSpec>>;
  readonly needs?: Needs;
  /** Source: a paper (arXiv id or URL) or the reference implementation it matches. */
  readonly source?: string;
}

// ---- TypeScript types of an entry's parameters, after loading -------------------------------------------------

type ValueOf<P extends ParamSpec> = P extends { type: 'number' | 'integer' }
  ? number
  : P extends { type: 'boolean' }
    ? boolean
    : P extends { type: 'string'; enum: readonly (infer S)[] }
      ? S
      : P extends { type: 'string' }
        ? string
        : P extends { type: 'array' }
          ? number[]
          : never;

type PresentKeys<Ps> = { [K in keyof Ps]: Ps[K] extends { default: unknown } | { required: true } | { derived: true } ? K : never }[keyof Ps];
type OptionalKeys<Ps> = Exclude<keyof Ps, PresentKeys<Ps>>;

/** `{ type: name } & parameters` of an entry, as the loader hands it over (defaults applied). */
export type ConfigOf<E extends RegistryEntry> = { type: E['name'] } & { -readonly [K in PresentKeys<E['params']>]: ValueOf<E['params'][K]> } & {
  -readonly [K in OptionalKeys<E['params']>]?: ValueOf<E['params'][K]>;
};

/** The union of the config sections of a family's entries. */
export type ConfigUnion<Es extends readonly RegistryEntry[]> = { [I in keyof Es]: ConfigOf<Es[I]> }[number];

/** Checks an entry at compile time and keeps its literal types (names, enums, defaults). */
export function defineEntry<const E extends RegistryEntry>(e: E): E {
  return e;
}

// ---- lookup --------------------------------------------------------------------------------------------------

export class UnknownEntryError extends Error {
  constructor(
    readonly kind: RegistryKind,
    readonly requested: string,
    readonly known: readonly string[],
  ) {
    super(`unknown ${kind} "${requested}"; known: ${known.join(', ')}`);
    this.name = 'UnknownEntryError';
  }
}

/** A family's entries in their documented order; the first is the default when a config leaves the section out. */
export class Registry<E extends RegistryEntry> {
  private readonly byName: ReadonlyMap<string, E>;

  constructor(
    readonly kind: RegistryKind,
    readonly entries: readonly E[],
  ) {
    const m = new Map<string, E>();
    for (const e of entries) {
      if (e.kind !== kind) throw new Error(`registry ${kind}: entry "${e.name}" is a ${e.kind}`);
      if (m.has(e.name)) throw new Error(`registry ${kind}: "${e.name}" is registered twice`);
      m.set(e.name, e);
    }
    this.byName = m;
  }

  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  get default(): E {
    return this.entries[0];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The entry of a name; throws UnknownEntryError listing the known names. */
  get(name: string): E {
    const e = this.byName.get(name);
    if (!e) throw new UnknownEntryError(this.kind, name, this.names);
    return e;
  }
}
