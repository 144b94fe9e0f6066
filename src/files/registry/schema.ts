// JSON Schema fragments generated from registry entries: a config section that names one entry by `type` becomes
// a `oneOf` of one branch per entry, selected by `type` (Ajv's `discriminator`; editors use the `const`s), with
// each parameter's doc as its description. The loader's messages ("must be one of …", "unknown field … did you
// mean …") and the editor's completion read these, so they follow the registries too.
import type { ParamSpec, Registry, RegistryEntry } from './entry';

/** The JSON Schema of one parameter (its doc becomes the description; loader-only flags are dropped). */
export function paramSchema(p: ParamSpec): Record<string, unknown> {
  const { doc, required: _required, derived: _derived, ...rest } = p as ParamSpec & { required?: boolean; derived?: boolean };
  const out: Record<string, unknown> = { ...rest };
  if (p.type === 'array') {
    const { doc: itemDoc, ...items } = p.items;
    out.items = itemDoc ? { ...items, description: itemDoc } : items;
  }
  out.description = doc;
  return out;
}

/** One branch: `{ type: const name, …params }`, closed to unknown fields. */
export function entrySchema(e: RegistryEntry): Record<string, unknown> {
  const properties: Record<string, unknown> = { type: { const: e.name, description: e.title } };
  const required: string[] = [];
  for (const [k, p] of Object.entries(e.params)) {
    properties[k] = paramSchema(p);
    if (p.required) required.push(k);
  }
  return {
    type: 'object',
    description: e.title,
    additionalProperties: false,
    ...(required.length ? { required } : {}),
    properties,
  };
}

/**
 * The schema of a section naming one entry of a registry. Left out entirely, the section defaults to
 * `{ type: <first entry> }`; written, it must name its `type` (the discriminator needs it, and an editor, which
 * applies no defaults, would otherwise see a typeless object differently from the loader).
 */
export function sectionSchema(reg: Registry<RegistryEntry>, description: string): Record<string, unknown> {
  const typeDoc = reg.entries.map((e) => `\`${e.name}\`: ${e.title}`).join(' ');
  return {
    type: 'object',
    description,
    default: { type: reg.default.name },
    required: ['type'],
    discriminator: { propertyName: 'type' },
    properties: { type: { type: 'string', enum: reg.names, description: typeDoc } },
    oneOf: reg.entries.map(entrySchema),
  };
}
