// Adapter fine-tuning (`train.adapters`, Houlsby et al. 2019): every transformer block gains a bottleneck
// h ← h + up(act(down(h))) on the output of its attention and of its MLP, before the residual add
// (src/engine/nn/adapter.ts); the base model is frozen and only the adapters train.
//
// The adapters are ordinary parameters of their block, `blocks.<i>.adapter_attn.down.weight` etc. (every name
// contains `.adapter_`, src/files/adapter-checkpoint.ts), so the parameter store, the optimizer, checkpoints,
// statistics and resume handle them like any other tensor. A checkpoint holds the frozen base tensors AND the
// adapters, with the adapters' config in its metadata, which is how eval and `basin eval` rebuild the model. There
// is no merged twin as with LoRA: an adapter is non-linear, so merging and pruning an adapter run are refused
// (run-record.ts `modelWeightsFile()`), and `init.from` an adapter run loads its base tensors only.
import { ADAPTER_SITES, Adapter, isAdaptableBlock, type AdapterSite } from '../nn/adapter';
import { seededRandom } from '../nn/init';
import type { Model } from '../nn/models';
import type { ParameterStore } from '../optim/params';
import { isAdapterParam, type AdaptersConfig } from '../../files/adapter-checkpoint';

/** Models whose blocks take adapters (adapters.test.ts checks this list against every registered model). */
export const ADAPTER_MODELS: readonly string[] = ['transformer', 'sasrec'];

/** `train.adapters` as written (the loader fills targets and activation; code may leave them out). */
export interface AdaptersInput {
  size: number;
  targets?: readonly AdapterSite[];
  activation?: 'gelu' | 'relu';
  initScale?: number;
}

export interface AdapterPlan {
  /** The config with every default resolved (what the checkpoints' metadata records). */
  config: AdaptersConfig;
  /** Width d of the residual stream. */
  dim: number;
  blocks: number;
  /** The adapter tensors, in store order. */
  names: string[];
  /** Their element count. */
  parameters: number;
}

/** A `train.adapters` problem only the built model shows (size > d, a model without blocks): a config error at `field`. */
export class AdapterConfigError extends Error {
  constructor(
    readonly field: (string | number)[],
    message: string,
  ) {
    super(message);
    this.name = 'AdapterConfigError';
  }
}

/**
 * Adds adapters to every transformer block of `model` (call after building it, before its parameters go into a
 * store). A model without such blocks, or a size outside 1..d, throws AdapterConfigError.
 */
export function attachAdapters(model: Model, cfg: AdaptersInput, seed: number): AdapterPlan {
  const blocks = [...model.modules()].filter(isAdaptableBlock);
  if (!blocks.length) {
    throw new AdapterConfigError(['train', 'adapters'], `model.type "${model.spec.type}" has no transformer blocks to put adapters in; train.adapters works with model.type ${ADAPTER_MODELS.map((m) => `"${m}"`).join(' or ')} (use train.lora or train.freeze for this model)`);
  }
  const dim = blocks[0].dim;
  if (!Number.isInteger(cfg.size) || cfg.size < 1 || cfg.size > dim) {
    throw new AdapterConfigError(['train', 'adapters', 'size'], `must be an integer from 1 to the model width ${dim}, got ${cfg.size}`);
  }
  const targets = cfg.targets?.length ? ADAPTER_SITES.filter((s) => cfg.targets!.includes(s)) : [...ADAPTER_SITES];
  const unknown = (cfg.targets ?? []).filter((s) => !ADAPTER_SITES.includes(s));
  if (unknown.length) throw new AdapterConfigError(['train', 'adapters', 'targets'], `unknown adapter site ${unknown.join(', ')}: use ${ADAPTER_SITES.join(', ')}`);
  const initScale = cfg.initScale ?? 1 / Math.sqrt(dim);
  if (!(initScale > 0) || !Number.isFinite(initScale)) throw new AdapterConfigError(['train', 'adapters', 'initScale'], `must be a positive number, got ${cfg.initScale}`);
  const config: AdaptersConfig = { size: cfg.size, targets, activation: cfg.activation ?? 'gelu', initScale };
  // Its own stream, so adding adapters changes no draw of the model's initialization (the base stays the base).
  const rand = seededRandom((seed * 2_654_435_761 + 0xada) >>> 0);
  for (const b of blocks) for (const site of targets) b.addAdapter(site, new Adapter(dim, config.size, config.activation, initScale, rand));
  const decls = model.declarations().filter((d) => isAdapterParam(d.name));
  return { config, dim, blocks: blocks.length, names: decls.map((d) => d.name), parameters: decls.reduce((s, d) => s + d.shape.reduce((a, b) => a * b, 1), 0) };
}

/** What an adapter run freezes: every parameter of the base model (`train.unfreeze` can still release some). */
export function adaptersFrozen(store: ParameterStore): string[] {
  return store.entries.filter((e) => !isAdapterParam(e.name)).map((e) => e.name);
}

/**
 * The store as `init.from` should see it: without the adapters (a base checkpoint has none; they keep their
 * initialization, up = 0: the base's function). Loading goes to the real store.
 */
export function withoutAdapters(store: ParameterStore): ParameterStore {
  const entries = store.entries.filter((e) => !isAdapterParam(e.name));
  return { entries, load: (name: string, data: Float32Array) => store.load(name, data) } as unknown as ParameterStore;
}

/** One line for `basin train`: what trains (the adapters, plus any base tensor `train.unfreeze` released) of the whole. */
export function describeAdapters(plan: AdapterPlan, total: number, trainable: number): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const pct = (x: number) => `${((100 * x) / Math.max(1, total)).toFixed(2)} %`;
  const c = plan.config;
  const more = trainable !== plan.parameters ? `; ${n(trainable)} trainable now (${pct(trainable)}), unfrozen base tensors included` : '';
  return `adapters (size ${c.size}, ${c.activation}, after ${c.targets.join(' and ')} in ${plan.blocks} blocks): ${n(plan.parameters)} trainable parameters of ${n(total)} (${pct(plan.parameters)})${more}`;
}
