// LoRA fine-tuning (`train.lora`): each targeted Linear weight W [out, in] gets a trainable low-rank update,
// y = x·Wᵀ + (alpha/rank)·(x·Aᵀ)·Bᵀ + b, with A [rank, in] small random, B [out, rank] zero, and W frozen.
//
// A and B are ordinary parameters of the layer, named `<weight>.lora_a` / `<weight>.lora_b`, so the parameter
// store, the optimizer, checkpoints, statistics and resume handle them like any other tensor: a LoRA run's
// checkpoint `step-N.safetensors` holds the frozen base weights AND the adapters. Beside it the trainer writes
// `step-N.merged.safetensors`: the model's own tensors with W + (alpha/rank)·B·A folded in and no adapter — the
// file eval, `init.from`, merging and pruning read (run-record.ts `modelWeightsFile()` picks it when present).
import * as path from 'node:path';
import type { RunFolder } from '../../files/run-record';
import { mergedCheckpointPath } from '../../files/run-record';
import { writeSafetensors } from '../../files/safetensors';
import type { Model } from '../nn/models';
import { Linear } from '../nn/layers';
import { seededRandom } from '../nn/init';
import { globToRegExp, type ParameterStore } from '../optim/params';
import type { Tensor } from '../tensor/tensor';
import { ParameterGlobError } from './fine-tune';

export const LORA_A = '.lora_a';
export const LORA_B = '.lora_b';

/** `train.lora` as written; `alpha` defaults to `rank`, `targets` to the 2-D weights of blocks/layers. */
export interface LoraConfig {
  rank: number;
  alpha?: number;
  targets?: string[];
  dropout?: number;
}

export interface LoraTarget {
  /** The frozen base weight, e.g. `blocks.0.attn.q.weight`. */
  weight: string;
  out: number;
  in: number;
}

export interface LoraPlan {
  rank: number;
  alpha: number;
  /** alpha / rank. */
  scale: number;
  targets: LoraTarget[];
}

export const isLoraParam = (name: string): boolean => name.endsWith(LORA_A) || name.endsWith(LORA_B);

/** Default targets: Linear weights inside the repeated body (`blocks.*`, `layers.*`), never the output head. */
const DEFAULT_SCOPE = /^(blocks|layers)\./;

/**
 * Adds a LoRA branch to every targeted Linear of `model` (call after building it, before its parameters go into a
 * store). A target glob matching no Linear weight throws ParameterGlobError listing the Linear weights; the output
 * head cannot be adapted (losses other than cross-entropy read its table directly, bypassing the branch).
 */
export function attachLora(model: Model, cfg: LoraConfig, seed: number): LoraPlan {
  if (!Number.isInteger(cfg.rank) || cfg.rank < 1) throw new Error(`train.lora.rank must be an integer ≥ 1, got ${cfg.rank}`);
  const rank = cfg.rank;
  const alpha = cfg.alpha ?? rank;
  const names = new Map<object, string>();
  for (const [n, p] of model.namedParams()) names.set(p, n);
  const linears = [...model.modules()].filter((m): m is Linear => m instanceof Linear);
  const head = findHead(model, linears);
  const candidates = linears.map((l) => ({ layer: l, name: names.get(l.weight)! }));
  const all = candidates.map((c) => c.name);
  let chosen: typeof candidates;
  if (cfg.targets && cfg.targets.length) {
    const set = new Set<Linear>();
    cfg.targets.forEach((g, i) => {
      const re = globToRegExp(g);
      const hit = candidates.filter((c) => re.test(c.name));
      if (!hit.length) {
        const e = new ParameterGlobError(['train', 'lora', 'targets', i], g, all);
        e.message = `"${g}" matches no Linear weight (LoRA adapts Linear layers); they are: ${all.join(', ')}`;
        throw e;
      }
      for (const c of hit) {
        if (c.layer === head) {
          const e = new ParameterGlobError(['train', 'lora', 'targets', i], g, all);
          e.message = `"${g}" matches the output head ${c.name}, which LoRA cannot adapt (losses read its table directly): train or freeze it instead; the other Linear weights are: ${all.filter((n) => n !== c.name).join(', ')}`;
          throw e;
        }
        set.add(c.layer);
      }
    });
    chosen = candidates.filter((c) => set.has(c.layer));
  } else {
    chosen = candidates.filter((c) => c.layer !== head && DEFAULT_SCOPE.test(c.name));
    if (!chosen.length) {
      const e = new ParameterGlobError(['train', 'lora'], '(default: blocks.* / layers.*)', all);
      e.message = `train.lora: the model has no Linear weight in blocks.* or layers.* besides the output head; set train.lora.targets to some of: ${all.join(', ') || '(none)'}`;
      throw e;
    }
  }
  const rand = seededRandom((seed * 2_654_435_761 + 0x10a) >>> 0);
  const targets: LoraTarget[] = [];
  chosen.forEach((c, k) => {
    const l = c.layer;
    // A ~ U(−1/√in, 1/√in) (the layer's own default scale), B = 0: the update starts at exactly zero.
    const bound = 1 / Math.sqrt(l.inFeatures);
    const a = new Float32Array(rank * l.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * bound;
    l.addLora(rank, alpha, a, cfg.dropout ?? 0, (seed * 7919 + 101 + k) >>> 0);
    targets.push({ weight: c.name, out: l.outFeatures, in: l.inFeatures });
  });
  return { rank, alpha, scale: alpha / rank, targets };
}

/**
 * The Linear the model's output head reads, found by identity: every weight is bound to a placeholder, and the one
 * `model.head.weight` returns is the head's. (A head that is not a Linear, SASRec's item table, gives null.) The
 * placeholders are replaced when the model is bound to its store.
 */
function findHead(model: Model, linears: Linear[]): Linear | null {
  const marks = new Map<object, Linear>();
  for (const l of linears) {
    const mark = { shape: l.weight.decl.shape } as unknown as Tensor;
    l.weight.bind(mark);
    marks.set(mark, l);
  }
  try {
    return marks.get(model.head.weight) ?? null;
  } catch {
    return null; // the head reads a parameter that is not a Linear's (unbound, so it throws)
  }
}

/**
 * What a LoRA run freezes: every parameter of the base model (as PEFT does), so only the adapters train. To train
 * some base tensors as well (a new head, say), unfreeze them with `train.unfreeze: [{ step: 1, params: [...] }]`.
 */
export function loraFrozen(store: ParameterStore): string[] {
  return store.entries.filter((e) => !isLoraParam(e.name)).map((e) => e.name);
}

/** W + scale·B·A for one target (CPU; f64 accumulation over the rank). */
export function mergeOne(w: Float32Array, a: Float32Array, b: Float32Array, t: LoraTarget, rank: number, scale: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < t.out; o++) {
    for (let i = 0; i < t.in; i++) {
      let s = 0;
      for (let r = 0; r < rank; r++) s += b[o * rank + r] * a[r * t.in + i];
      out[o * t.in + i] = w[o * t.in + i] + scale * s;
    }
  }
  return out;
}

/** The model's tensors with every adapter folded into its weight, and no adapter tensor. */
export function mergeLora(weights: ReadonlyMap<string, Float32Array>, plan: LoraPlan): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [n, d] of weights) if (!isLoraParam(n)) out.set(n, d);
  for (const t of plan.targets) {
    const w = weights.get(t.weight);
    const a = weights.get(t.weight + LORA_A);
    const b = weights.get(t.weight + LORA_B);
    if (!w || !a || !b) throw new Error(`LoRA merge: ${t.weight} or its adapters are missing`);
    out.set(t.weight, mergeOne(w, a, b, t, plan.rank, plan.scale));
  }
  return out;
}

/** Writes `checkpoints/step-N.merged.safetensors` (atomically); returns its run-relative path. */
export async function writeMergedCheckpoint(run: RunFolder, step: number, store: ParameterStore, plan: LoraPlan): Promise<string> {
  const merged = mergeLora(await store.readAll(), plan);
  const rel = mergedCheckpointPath(run.checkpointPath(step));
  const meta = { step: String(step), format: 'basin-1', lora: JSON.stringify({ rank: plan.rank, alpha: plan.alpha, targets: plan.targets.map((t) => t.weight) }) };
  const tensors = [...merged].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: [...store.entry(name).shape], data }));
  await writeSafetensors(path.join(run.dir, rel), tensors, meta);
  return rel;
}

/**
 * The store as `init.from` should see it: without the adapters (a base checkpoint has none; they keep their
 * initialization, A random and B zero). Loading goes to the real store.
 */
export function withoutLora(store: ParameterStore): ParameterStore {
  const entries = store.entries.filter((e) => !isLoraParam(e.name));
  return { entries, load: (name: string, data: Float32Array) => store.load(name, data) } as unknown as ParameterStore;
}

/** Trainable (not frozen) parameter count of a store. */
export function trainableCount(store: ParameterStore): number {
  return store.entries.filter((e) => !e.flags.frozen).reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
}
