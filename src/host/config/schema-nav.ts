// Reading the config's JSON Schema (src/files/config/schema.ts, generated from the registries) the way an editor
// needs it: the properties of the mapping at a path, where a section that names a registry entry by `type`
// (model, data, optimizer, schedule, loss: a `oneOf` of one branch per entry) shows the parameters of the entry
// its `type` selects, or, while no type is written, every entry's (each marked with the types that have it).
// No `vscode` import: the unit tier tests it.

export type Schema = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PropInfo {
  name: string;
  schema: Schema;
  /** The entries (`type` values) that have this parameter, when no `type` is selected and not every entry has it. */
  onlyFor?: string[];
  required: boolean;
}

function branchType(b: Schema): string | undefined {
  const c = b?.properties?.type?.const;
  return typeof c === 'string' ? c : undefined;
}

/** The properties of an object schema; for a `oneOf` section, those of the branch `typeValue` selects. */
export function objectProps(schema: Schema | undefined, typeValue?: string): PropInfo[] {
  if (!schema || typeof schema !== 'object') return [];
  const out = new Map<string, PropInfo>();
  const required = new Set<string>(Array.isArray(schema.required) ? schema.required : []);
  for (const [name, s] of Object.entries<Schema>(schema.properties ?? {})) out.set(name, { name, schema: s, required: required.has(name) });
  const branches: Schema[] = Array.isArray(schema.oneOf) ? schema.oneOf : [];
  if (branches.length) {
    const chosen = branches.find((b) => branchType(b) === typeValue);
    const use = chosen ? [chosen] : branches;
    const owners = new Map<string, string[]>();
    for (const b of use) {
      const breq = new Set<string>(Array.isArray(b.required) ? b.required : []);
      for (const [name, s] of Object.entries<Schema>(b.properties ?? {})) {
        if (name === 'type') continue; // the section's own `type` (its enum lists every entry) stays
        if (!out.has(name)) out.set(name, { name, schema: s, required: chosen ? breq.has(name) : false });
        owners.set(name, [...(owners.get(name) ?? []), branchType(b) ?? '?']);
      }
    }
    if (!chosen) {
      for (const [name, types] of owners) if (types.length < branches.length) out.get(name)!.onlyFor = types;
    }
  }
  return [...out.values()];
}

/** The schema at a path of keys from the root; `typeAt(depth)` gives the `type` written in the mapping at that depth. */
export function schemaAt(root: Schema, path: readonly string[], typeAt: (depth: number) => string | undefined): Schema | undefined {
  let s: Schema | undefined = root;
  for (let i = 0; i < path.length && s; i++) {
    s = objectProps(s, typeAt(i)).find((p) => p.name === path[i])?.schema;
  }
  return s;
}

/** The registry entries a `oneOf` section offers for its `type`: name and description. */
export function typeChoices(section: Schema | undefined): { name: string; description: string }[] {
  const branches: Schema[] = Array.isArray(section?.oneOf) ? section!.oneOf : [];
  return branches.map((b) => ({ name: branchType(b) ?? '', description: String(b.description ?? b.properties?.type?.description ?? '') })).filter((c) => c.name);
}

/** "integer ≥ 1", "number in [0, 1)", "string", "one of a | b", "array of integer" */
export function typeLabel(s: Schema): string {
  if (Array.isArray(s.enum)) return `one of ${s.enum.map((v: unknown) => JSON.stringify(v)).join(' | ')}`;
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.oneOf) && s.properties?.type?.enum) return `section: type ${s.properties.type.enum.map((v: string) => JSON.stringify(v)).join(' | ')}`;
  let t = Array.isArray(s.type) ? s.type.join(' | ') : String(s.type ?? 'any');
  if (t === 'array' && s.items) t = `array of ${typeLabel(s.items)}`;
  const lo = s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '';
  const hi = s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '';
  return [t, lo, hi].filter(Boolean).join(' ');
}

/** Markdown for a property: its description, type, default and (without a selected type) the entries that have it. */
export function propMarkdown(name: string, s: Schema, onlyFor?: string[]): string {
  const parts = [`**${name}** — \`${typeLabel(s)}\``];
  if (s.description) parts.push(String(s.description));
  if (s.default !== undefined) parts.push(`Default: \`${JSON.stringify(s.default)}\``);
  if (onlyFor?.length) parts.push(`Only for type ${onlyFor.map((t) => `\`${t}\``).join(', ')}.`);
  return parts.join('\n\n');
}

/** YAML text of a default value for a completion's insert ("0.001", "[0.9, 0.999]", "adamw"). */
export function yamlValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w./-]+$/.test(v) && !/^(true|false|null|~|[-+]?\d)/i.test(v) ? v : JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  if (v && typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${yamlValue(x)}`).join(', ')} }`;
  return String(v);
}
