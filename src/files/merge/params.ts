// Merge parameters, resolved per (output tensor, input model): mergekit's rules, as pure functions.
//
// A parameter setting (mergekit's ParameterSetting) is one of
//   - a scalar                      `density: 0.5`
//   - a gradient                    `t: [0, 0.5, 1]`: a list interpolated across the layers of the slice
//   - a conditional or a list of them `t: [{filter: self_attn, value: [0, 1]}, {value: 0.5}]`
// and a conditional's value is itself a scalar or a gradient.
//
// What mergekit does (mergekit/config.py `evaluate_setting`, `ConfigReader.parameter`; mergekit/plan.py), and so
// what Basin does:
//   - A filter is a SUBSTRING of the tensor name; a conditional without a filter (or with filter "*") matches
//     every tensor. The list is scanned in order and the FIRST match wins. When nothing matches, the setting gives
//     no value and the next precedence level is asked (finally the method's default).
//   - `value` is required in a conditional (pydantic rejects `{filter: x}` alone); the loader reports it.
//   - Gradients: each layer of an output slice gets t = offset / (layers − 1) (t = 1 for a one-layer slice), so a
//     gradient spans the SLICE, not the whole model; with `models:` the slice is every layer. A numeric list
//     [v0 … vk] is read at s = t·k: (1 − frac(s))·v[⌊s⌋] + frac(s)·v[⌊s⌋+1]. A non-numeric list (booleans,
//     strings) steps: v[⌊t·k⌋].
//   - Tensors outside the layers take t = 0 before them (embeddings) and t = 1 after them (final norm, output head):
//     mergekit knows which from its architecture tables; Basin decides by name (`nonLayerPlace`).
//   - Precedence: slice source (≈ `models[i].parameters`) > slice `parameters` > global `parameters` > default.
//     Parameters the method reads per model (registry `perModel: true`) are resolved through all of these; the
//     method's global parameters skip the source level (mergekit asks with model = None).

export type ParamScalar = number | boolean | string;

/** `{filter, value}`: applies `value` to the tensors whose name contains `filter` (all tensors when absent/"*"). */
export interface ConditionalParam {
  filter?: string | null;
  value: ParamScalar | ParamScalar[];
}

/** One parameter as written in a merge config (mergekit's ParameterSetting). */
export type ParamSetting = ParamScalar | ParamScalar[] | ConditionalParam | ConditionalParam[];

/** The `parameters:` mapping of one level (global, slice, or model/slice source). */
export type ParamSettings = Readonly<Record<string, ParamSetting>>;

function isConditional(x: unknown): x is ConditionalParam {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/** Does a conditional's filter select this tensor? (mergekit: no filter, "*", or a substring of the name.) */
export function filterMatches(filter: string | null | undefined, tensorName: string): boolean {
  return filter === undefined || filter === null || filter === '*' || (tensorName !== '' && tensorName.includes(filter));
}

/** A gradient read at t ∈ [0, 1] (numbers interpolate linearly, anything else steps). */
export function evaluateGradient(values: readonly ParamScalar[], t: number): ParamScalar | undefined {
  if (values.length === 0) return undefined;
  const tc = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const k = values.length - 1;
  if (values.every((v) => typeof v === 'number')) {
    const s = tc * k;
    const i0 = Math.floor(s);
    const i1 = Math.min(k, i0 + 1);
    const frac = s - i0;
    const a = values[i0] as number;
    const b = values[i1] as number;
    // Exact at the knots (no 0·∞ or rounding when frac is 0).
    return frac === 0 ? a : (1 - frac) * a + frac * b;
  }
  return values[Math.floor(tc * k)];
}

/**
 * The value of one setting for a tensor at gradient position t, or undefined when a filter list selects nothing
 * (the caller then asks the next precedence level).
 */
export function evaluateSetting(setting: ParamSetting, tensorName: string, t: number): ParamScalar | undefined {
  if (typeof setting === 'number' || typeof setting === 'boolean' || typeof setting === 'string') return setting;
  if (isConditional(setting)) return filterMatches(setting.filter, tensorName) ? evaluateSetting(setting.value, tensorName, t) : undefined;
  if (Array.isArray(setting)) {
    if (setting.length > 0 && setting.every(isConditional)) {
      for (const c of setting as ConditionalParam[]) if (filterMatches(c.filter, tensorName)) return evaluateSetting(c.value, tensorName, t);
      return undefined;
    }
    if (setting.every((v) => !isConditional(v))) return evaluateGradient(setting as ParamScalar[], t);
  }
  return undefined;
}

/** The precedence levels a parameter is looked up in, most specific first. */
export interface ParamLevels {
  /** The slice source's parameters (with `models:`, the model's own `parameters`). */
  source?: ParamSettings;
  /** The output slice's parameters (absent with `models:`). */
  slice?: ParamSettings;
  /** The config's top-level `parameters`. */
  global?: ParamSettings;
}

/**
 * A parameter's value for (tensor, t): source > slice > global, each level's filters tried in order; undefined
 * when no level gives one (use the method's default). `perModel: false` skips the source level (mergekit reads a
 * method's global parameters with model = None).
 */
export function resolveParam(name: string, levels: ParamLevels, tensorName: string, t: number, perModel = true): ParamScalar | undefined {
  const order = perModel ? [levels.source, levels.slice, levels.global] : [levels.slice, levels.global];
  for (const lv of order) {
    if (!lv || !Object.prototype.hasOwnProperty.call(lv, name)) continue;
    const v = evaluateSetting(lv[name], tensorName, t);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Where a parameter's spec comes from (a registry entry's params). */
export interface ParamSpecLike {
  type: string;
  default?: unknown;
  perModel?: boolean;
}

/** The resolved values of a merge method's parameters for one tensor: scalars only, defaults applied. */
export type ResolvedParams = Record<string, ParamScalar>;

/**
 * Every parameter of a method for one tensor: the method's global ones (`perModel` false) when `levels.source`
 * is absent, or the per-model ones of one input when it is given. Parameters without a value and without a
 * default are left out. Integer parameters are rounded (a gradient may interpolate between integers).
 */
export function resolveParams(
  specs: Readonly<Record<string, ParamSpecLike>>,
  which: 'global' | 'perModel',
  levels: ParamLevels,
  tensorName: string,
  t: number,
): ResolvedParams {
  const out: ResolvedParams = {};
  for (const [name, spec] of Object.entries(specs)) {
    if ((which === 'perModel') !== (spec.perModel === true)) continue;
    let v = resolveParam(name, levels, tensorName, t, which === 'perModel');
    if (v === undefined && spec.default !== undefined) v = spec.default as ParamScalar;
    if (v === undefined) continue;
    if (spec.type === 'integer' && typeof v === 'number') v = Math.round(v);
    out[name] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- layer indices

/** Layer containers whose next name segment is the layer index (Basin's transformer `blocks.N`, MLP `layers.N`, HF `model.layers.N`). */
const LAYER_RE = /(^|\.)(blocks|layers)\.(\d+)(?=\.|$)/;

/** Where a tensor's layer index sits in its name, or null for tensors outside the layers. */
export interface LayerMatch {
  /** The layer index. */
  index: number;
  /** The index digits span name[start, end). */
  start: number;
  end: number;
}

/** The layer index of a tensor name: the number after `blocks.` or `layers.` (the first such segment). */
export function tensorLayer(name: string): LayerMatch | null {
  const m = LAYER_RE.exec(name);
  if (!m) return null;
  const digits = m[3];
  // Leading zeros or absurdly long numbers are not layer indices Basin or HF write.
  if (digits.length > 9 || (digits.length > 1 && digits[0] === '0')) return null;
  const start = m.index + m[1].length + m[2].length + 1;
  return { index: Number(digits), start, end: start + digits.length };
}

/** The same tensor name in another layer: `blocks.3.attn.q.weight` → `blocks.0.attn.q.weight` for layer 0. */
export function renameLayer(name: string, layer: number): string {
  const m = tensorLayer(name);
  if (!m) throw new Error(`tensor "${name}" has no layer index to replace`);
  return name.slice(0, m.start) + String(layer) + name.slice(m.end);
}

/** A layer tensor's name with the index replaced by `{}`: the per-layer template (`blocks.{}.attn.q.weight`). */
export function layerTemplate(name: string): string | null {
  const m = tensorLayer(name);
  return m ? name.slice(0, m.start) + '{}' + name.slice(m.end) : null;
}

/**
 * Tensors outside the layers: before them (t = 0) or after them (t = 1)? Embeddings come before: Basin's `tok.*`
 * and `pos.*`, HF's `embed_tokens`, `wte`, `wpe`, `embeddings`; everything else (final norm `ln_f`/`norm`, output
 * head `head`/`lm_head`, classifier) comes after — mergekit's pre/post weights of the decoder architectures.
 */
export function nonLayerPlace(name: string): 'pre' | 'post' {
  const first = name.split('.').filter((s) => s !== 'model' && s !== 'transformer')[0] ?? '';
  if (/^(tok|pos|wte|wpe|embed|embed_tokens|embeddings|tok_embeddings|word_embeddings|position_embeddings)$/.test(first)) return 'pre';
  if (/embed/i.test(name) && !/head/i.test(name)) return 'pre';
  return 'post';
}

/** The gradient position of layer `offset` of a slice of `count` layers (mergekit: t = 1 for one layer). */
export function layerT(offset: number, count: number): number {
  return count > 1 ? offset / (count - 1) : 1;
}
