// The JSON Schema of merge configs (`*.merge.yaml`), generated from the merge-method registry: VS Code's YAML
// support reads schemas/merge-config.schema.json (package.json contributes.yamlValidation) for hover, completion
// and squiggles. The loader (config.ts) does its own validation with line-precise messages; this schema is for
// the editor, so it describes the same rules: `merge_method` from the registry, each method's parameters (an
// `if merge_method = X then …` branch per method), a value as a scalar, a gradient or `{filter, value}` entries.
//
//     npx tsx src/files/merge/write-schema.ts         regenerates the file; test/unit/merge-config.test.ts fails when stale
import type { ParamSpec, RegistryEntry } from '../registry/entry';
import { paramSchema } from '../registry/schema';
import { MERGE_METHOD_ENTRIES } from '../registry/merge-methods';
import { DEFAULT_MAX_SHARD_BYTES, MERGE_DTYPES } from './config';

/** A parameter's value schema: scalar | gradient | {filter, value} | [{filter, value}, …]. */
function settingSchema(spec: ParamSpec): Record<string, unknown> {
  const { description, default: dflt, perModel: _p, expertShare: _s, ...scalar } = paramSchema(spec) as Record<string, unknown>;
  const gradient = spec.type === 'integer' ? null : { type: 'array', minItems: 1, items: scalar, description: 'A gradient: values interpolated across the layers of the slice.' };
  const plain = gradient ? { anyOf: [scalar, gradient] } : scalar;
  const conditional = {
    type: 'object',
    required: ['value'],
    additionalProperties: false,
    description: 'Applies `value` to the tensors whose name contains `filter` (every tensor when no filter or "*"); the first matching entry wins.',
    properties: {
      filter: { type: ['string', 'null'], description: 'A substring of the tensor names this entry applies to.' },
      value: plain,
    },
  };
  return {
    description: `${String(description)}${spec.perModel ? ' (May be given per model.)' : ''}`,
    ...(dflt === undefined ? {} : { default: dflt }),
    anyOf: [scalar, ...(gradient ? [gradient] : []), conditional, { type: 'array', minItems: 1, items: conditional }],
  };
}

/** `#/definitions/<method>.<param>`: each parameter's value schema, written once. */
function paramRef(e: RegistryEntry, k: string): Record<string, unknown> {
  return { $ref: `#/definitions/${e.name}.${k}` };
}

function paramsSchema(e: RegistryEntry, perModelOnly: boolean): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(e.params)) if (!perModelOnly || p.perModel) properties[k] = paramRef(e, k);
  if (!perModelOnly) properties.int8_mask = { type: 'boolean', description: 'mergekit: a memory option. Ignored by Basin (a warning).' };
  return { type: 'object', additionalProperties: false, properties };
}

const modelRef = {
  type: 'string',
  minLength: 1,
  description:
    'A local model, relative to this file: a Basin run folder (its latest checkpoint), a Basin checkpoint, a .safetensors file, or a folder holding model.safetensors or model.safetensors.index.json. Basin does not download models.',
};
const looseParams = { type: 'object', description: 'Parameters of the merge method (see merge_method).' };
const dtype = { type: 'string', enum: Object.keys(MERGE_DTYPES) };
const ignored = (what: string) => ({ description: `mergekit: ${what}. Ignored by Basin (a warning).` });

export function mergeConfigSchema(): Record<string, unknown> {
  const names = MERGE_METHOD_ENTRIES.map((e) => e.name);
  const definitions: Record<string, unknown> = {};
  for (const e of MERGE_METHOD_ENTRIES as readonly RegistryEntry[]) {
    definitions[e.name] = { ...paramsSchema(e, false), description: `Parameters of ${e.name}.` };
    definitions[`${e.name}.perModel`] = { ...paramsSchema(e, true), description: `Per-model parameters of ${e.name}.` };
    for (const [k, p] of Object.entries(e.params)) definitions[`${e.name}.${k}`] = settingSchema(p);
  }
  const source = (inSlice: boolean) => ({
    type: 'object',
    additionalProperties: false,
    required: inSlice ? ['model', 'layer_range'] : ['model'],
    properties: {
      model: modelRef,
      ...(inSlice
        ? { layer_range: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2, description: '[first, end): the layers taken from this model (end exclusive).' } }
        : {}),
      parameters: { ...looseParams, description: 'Per-model parameters (they win over the slice’s and the global ones).' },
    },
  });
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Basin merge config (a mergekit YAML)',
    description: 'Merges local models with `basin merge <file>`: a mergekit configuration (merge_method, models or slices, base_model, parameters, dtype).',
    type: 'object',
    additionalProperties: false,
    required: ['merge_method'],
    properties: {
      $schema: { type: 'string', description: 'The JSON Schema this file follows (optional; for editors).' },
      merge_method: { type: 'string', enum: names, description: MERGE_METHOD_ENTRIES.map((e) => `\`${e.name}\`: ${e.title}`).join(' ') },
      base_model: { ...modelRef, description: `θ₀: the model task vectors are taken from. ${modelRef.description}` },
      models: { type: 'array', minItems: 1, items: source(false), description: 'Whole models to merge (exclusive with `slices`).' },
      slices: {
        type: 'array',
        minItems: 1,
        description: 'Output slices, each merging layer ranges of its sources (exclusive with `models`).',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['sources'],
          properties: {
            sources: { type: 'array', minItems: 1, items: source(true) },
            parameters: { ...looseParams, description: 'Parameters of this slice (win over the global ones).' },
            base_model: { ...modelRef, description: 'This slice’s base model (default: the top-level base_model).' },
            residual_weight: ignored('residual weight of a slice'),
          },
        },
      },
      parameters: { ...looseParams, description: 'Global parameters of the merge method.' },
      dtype: { ...dtype, description: 'mergekit’s compute dtype; Basin computes in f32 and uses it as the output dtype when out_dtype is absent.' },
      out_dtype: { ...dtype, description: 'The dtype the merged model is written as (default: dtype, else each tensor’s input dtype).' },
      tokenizer_source: ignored('where the output tokenizer comes from'),
      tokenizer: ignored('tokenizer configuration'),
      chat_template: ignored('chat template of the output'),
      name: ignored('a name'),
      basin: {
        type: 'object',
        additionalProperties: false,
        description: 'Basin-only settings (mergekit ignores this key).',
        properties: {
          output: { type: 'string', minLength: 1, description: 'Folder the merged model is written to, relative to this file.' },
          max_shard_bytes: { type: 'integer', minimum: 1, default: DEFAULT_MAX_SHARD_BYTES, description: 'Largest output shard (tensor bytes); more shards get an index file.' },
        },
      },
    },
    // One `if merge_method = X` branch per method, giving its parameters at each level.
    allOf: MERGE_METHOD_ENTRIES.map((e) => {
      const all = { $ref: `#/definitions/${e.name}` };
      const perModel = { $ref: `#/definitions/${e.name}.perModel` };
      return {
        if: { properties: { merge_method: { const: e.name } }, required: ['merge_method'] },
        then: {
          properties: {
            parameters: all,
            models: { items: { properties: { parameters: perModel } } },
            slices: { items: { properties: { parameters: all, sources: { items: { properties: { parameters: perModel } } } } } },
          },
        },
      };
    }),
    definitions,
  };
}

/** The exact text of schemas/merge-config.schema.json. */
export function mergeSchemaFileText(): string {
  return JSON.stringify(mergeConfigSchema(), null, 2) + '\n';
}
