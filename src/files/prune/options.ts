// The prune options, documented in one place: which tensors, how the mask is chosen (granularity, pattern), what
// it is applied to (the weights, or a task vector τ = θ − θ_base), and at which densities. Pure data and checks:
// the CLI, the worker's prune-sweep job and the panel's form read the same definitions. Every check here runs
// before any work and names the field (and the offending value or tensor names).
import type { ParamSpec, RegistryEntry } from '../registry/entry';
import { pruneScoreRegistry, ROW_WISE_SCORES, type PruneScoreConfig } from '../registry/prune-scores';
import { globToRegExp } from '../glob';

/**
 * Where the threshold is taken:
 * - `row`: per output row (row i of a weight [out, in]) — Wanda's and SparseGPT's comparison group;
 * - `tensor`: per tensor, each keeps the same fraction;
 * - `global`: one threshold across every targeted tensor (tensors end up with different densities).
 */
export type Granularity = 'row' | 'tensor' | 'global';
export const GRANULARITIES: readonly Granularity[] = ['row', 'tensor', 'global'];

/** N:M semi-structured sparsity: of every M consecutive inputs of a row, exactly N are kept (2:4, 4:8). */
export interface NmPattern {
  n: number;
  m: number;
}

/** The default densities of a sweep: the fraction of the targeted entries kept. 1 is the dense model. */
export const DEFAULT_DENSITIES: readonly number[] = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01];

/**
 * Default targets: the 2-D weights of the transformer blocks (`blocks.<i>.attn.q.weight`, `…mlp.fc1.weight`) and
 * of an MLP's layers; never embeddings, norms, biases or the output head (the loss owns it). Globs: `*` matches
 * any characters, dots included; `?` one character (the same rule as `train.freeze`).
 */
export const DEFAULT_TARGETS: readonly string[] = ['blocks.*.weight', 'layers.*.weight'];

export interface PruneOptions {
  /** Name globs of the tensors to prune; only 2-D tensors are ever pruned. */
  targets: string[];
  granularity: Granularity;
  /** null: unstructured. */
  pattern: NmPattern | null;
  /** Task-vector mode: prune τ = θ − θ_base, pruned entries are reset to the base exactly. */
  base?: string;
}

export class PruneOptionError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'PruneOptionError';
  }
}

/** A density is the fraction kept, in (0, 1]. */
export function checkDensity(d: number, field = 'density'): number {
  if (!Number.isFinite(d) || d <= 0 || d > 1) throw new PruneOptionError(field, `${d} is outside (0, 1]: a density is the fraction of entries kept (1 keeps all)`);
  return d;
}

/** "1,0.5,0.1" or percentages "100,50,10%" → sorted descending, unique. */
export function parseDensities(s: string, field = 'densities'): number[] {
  const pct = s.trim().endsWith('%');
  const parts = s.replace(/%/g, '').split(',').map((x) => x.trim()).filter(Boolean);
  if (!parts.length) throw new PruneOptionError(field, `"${s}" lists no density`);
  const ds = parts.map((p) => {
    const v = Number(p);
    if (!Number.isFinite(v)) throw new PruneOptionError(field, `"${p}" is not a number`);
    return checkDensity(pct ? v / 100 : v, field);
  });
  return [...new Set(ds)].sort((a, b) => b - a);
}

/** "2:4" → { n: 2, m: 4 }; "none"/"unstructured" → null. */
export function parsePattern(s: string | undefined, field = 'pattern'): NmPattern | null {
  if (s === undefined || s === '' || s === 'none' || s === 'unstructured') return null;
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  if (!m) throw new PruneOptionError(field, `"${s}" is not N:M (e.g. 2:4, 4:8) or "unstructured"`);
  const n = Number(m[1]);
  const M = Number(m[2]);
  if (n < 1 || M < 2 || n >= M || M > 32) throw new PruneOptionError(field, `"${s}": need 1 ≤ N < M ≤ 32`);
  return { n, m: M };
}

/**
 * A granularity as given, or the default for the scores: `row` when every score compares within rows (Wanda, as
 * its paper does), else `tensor`.
 */
export function parseGranularity(s: string | undefined, field = 'granularity', scores: readonly string[] = []): Granularity {
  if (s === undefined) return scores.length > 0 && scores.every((n) => ROW_WISE_SCORES.has(n)) ? 'row' : 'tensor';
  if (!(GRANULARITIES as readonly string[]).includes(s)) throw new PruneOptionError(field, `"${s}" is not one of ${GRANULARITIES.join(', ')}`);
  return s as Granularity;
}

/** The parameter-name glob rule shared with train.freeze and LoRA targets (../glob.ts). */
export const pruneGlob = globToRegExp;

export interface NamedShape {
  name: string;
  shape: readonly number[];
}

/**
 * The tensors the options target, in the given order: 2-D, matching a glob, not excluded (the output head when
 * the default targets are used). Each explicitly given glob must match some 2-D tensor, or the error lists the
 * names it could have matched. An N:M pattern must divide every target's input dimension.
 */
export function selectTargets(tensors: readonly NamedShape[], opts: Pick<PruneOptions, 'targets' | 'pattern'>, exclude: readonly string[] = []): NamedShape[] {
  const matrices = tensors.filter((t) => t.shape.length === 2);
  const isDefault = opts.targets.length === DEFAULT_TARGETS.length && opts.targets.every((g, i) => g === DEFAULT_TARGETS[i]);
  const out: NamedShape[] = [];
  const regs = opts.targets.map((g) => ({ g, re: pruneGlob(g) }));
  for (const { g, re } of regs) {
    const hits = matrices.filter((t) => re.test(t.name));
    if (!hits.length && !isDefault) {
      const names = matrices.map((t) => t.name);
      const also = tensors.filter((t) => t.shape.length !== 2 && re.test(t.name)).map((t) => t.name);
      throw new PruneOptionError(
        'targets',
        `"${g}" matches no 2-D tensor${also.length ? ` (it matches ${also.slice(0, 4).join(', ')}, which are not matrices)` : ''}; the 2-D tensors are: ${names.join(', ') || '(none)'}`,
      );
    }
  }
  for (const t of matrices) if (regs.some((r) => r.re.test(t.name)) && !(isDefault && exclude.includes(t.name))) out.push(t);
  if (!out.length) {
    throw new PruneOptionError('targets', `${opts.targets.join(', ')} select no tensor to prune; the 2-D tensors are: ${matrices.map((t) => t.name).join(', ') || '(none)'}`);
  }
  if (opts.pattern) {
    const { n, m } = opts.pattern;
    const bad = out.filter((t) => t.shape[1] % m !== 0);
    if (bad.length) {
      throw new PruneOptionError(
        'pattern',
        `${n}:${m} needs every target's input dimension to be a multiple of ${m}: ${bad.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ')}`,
      );
    }
  }
  return out;
}

// ---- score configs -------------------------------------------------------------------------------------------

/**
 * A score's config from its name and the parameters given (`--score wanda` → { type: 'wanda', batches: 16 }):
 * defaults from the registry entry; an unknown score lists the known ones, an unknown or out-of-range parameter
 * names the score and the parameter.
 */
export function pruneScoreConfig(name: string, params: Record<string, unknown> = {}): PruneScoreConfig {
  const entry: RegistryEntry = pruneScoreRegistry.get(name);
  const out: Record<string, unknown> = { type: entry.name };
  for (const [k, spec] of Object.entries(entry.params)) if ('default' in spec && spec.default !== undefined) out[k] = spec.default;
  for (const [k, v] of Object.entries(params)) {
    const spec: ParamSpec | undefined = entry.params[k];
    if (!spec) throw new PruneOptionError(`score ${name}`, `unknown parameter "${k}" (parameters: ${Object.keys(entry.params).join(', ') || 'none'})`);
    if (spec.type === 'number' || spec.type === 'integer') {
      const x = Number(v);
      const s = spec as { minimum?: number; maximum?: number; exclusiveMinimum?: number };
      const bad =
        !Number.isFinite(x) ||
        (spec.type === 'integer' && !Number.isInteger(x)) ||
        (s.minimum !== undefined && x < s.minimum) ||
        (s.maximum !== undefined && x > s.maximum) ||
        (s.exclusiveMinimum !== undefined && x <= s.exclusiveMinimum);
      if (bad) throw new PruneOptionError(`score ${name}.${k}`, `${String(v)} is not a valid ${spec.type} here (${spec.doc})`);
      out[k] = x;
    } else if (spec.type === 'string' && spec.enum && !spec.enum.includes(String(v))) {
      throw new PruneOptionError(`score ${name}.${k}`, `${String(v)} is not one of ${spec.enum.join(', ')} (${spec.doc})`);
    } else out[k] = v;
  }
  return out as PruneScoreConfig;
}
