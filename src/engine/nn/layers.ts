// The building blocks: Linear, Embedding, LayerNorm, Dropout, MLP, causal MultiHeadAttention, TransformerBlock.
import { add, biasAct, mulScalar } from '../ops/elementwise';
import { causalSelfAttention } from '../ops/attention';
import { dropout } from '../ops/dropout';
import { embedding } from '../ops/embedding';
import { layerNorm } from '../ops/layernorm';
import { linear, linearHalf } from '../ops/matmul';
import type { Tensor } from '../tensor/tensor';
import { constant, normal, uniform } from './init';
import { Module, Param } from './module';
import type { Adapter, AdapterSite, AdapterSlots } from './adapter';

export type Activation = 'relu' | 'gelu';

/**
 * Mixed precision's activation saving: frees x's values (keeping its autograd node) when every layer that read it
 * keeps only its f16 copy for the backward. Called by the module that made x, after the last of those layers.
 */
export function releaseAfterHalfLayers(x: Tensor, readers: readonly Linear[]): void {
  if (readers.every((l) => !l.readsInputF32)) x.releaseData();
}

export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param | null;
  /**
   * Optional observer of the layer's input x [..., in] (pruning calibration: Wanda's input norms, SparseGPT's
   * XᵀX; src/engine/prune/calibrate.ts). Off (null) by default, and then forward costs one null check.
   */
  observer: ((x: Tensor, layer: Linear) => void) | null = null;
  /**
   * Optional LoRA branch (src/engine/train/lora.ts): y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ + b with A [rank, in] and
   * B [out, rank] as parameters `weight.lora_a` / `weight.lora_b` of this layer. Null: a plain layer.
   */
  lora: { a: Param; b: Param; scale: number; drop: Dropout | null } | null = null;
  /**
   * Mixed precision (src/engine/train/mixed-precision.ts): the f16 copy of the weight, refreshed after each
   * optimizer step; the product runs on it and on an f16 copy of x (ops/matmul.ts linearHalf). Null: f32.
   */
  half: Tensor | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rand: () => number, opts: { bias?: boolean; std?: number } = {}) {
    super();
    // Default: PyTorch's U(−1/√in, 1/√in); transformers pass a small normal std instead (GPT-2 style).
    const init = opts.std !== undefined ? normal(inFeatures * outFeatures, opts.std, rand) : uniform(inFeatures * outFeatures, 1 / Math.sqrt(inFeatures), rand);
    this.weight = this.param('weight', [outFeatures, inFeatures], init);
    this.bias = opts.bias === false ? null : this.param('bias', [outFeatures], constant(outFeatures, 0), false);
  }

  forward(x: Tensor): Tensor {
    this.observer?.(x, this);
    if (this.lora) return this.withBias(add(this.product(x), this.loraDelta(x)));
    return this.product(x, this.bias?.t);
  }

  /**
   * Whether the backward of this layer reads its f32 input (an f32 product, a LoRA branch, or a weight above one
   * binding, whose product is f32 only). When false the layer keeps only the f16 copy of x, and the caller may free
   * x once every consumer has run (releaseAfterHalfLayers).
   */
  get readsInputF32(): boolean {
    return !this.half || this.lora !== null || this.observer !== null || this.weight.t.size * 4 > this.weight.t.rt.maxBindingBytes;
  }

  /** x·Wᵀ (+ b): in f16 with f32 sums when the layer has a half copy of its weight, else in f32. */
  private product(x: Tensor, bias?: Tensor): Tensor {
    return this.half ? linearHalf(x, this.weight.t, this.half, bias) : linear(x, this.weight.t, bias);
  }

  /** x·Wᵀ + b followed by an activation, with bias and activation fused into one kernel. */
  forwardAct(x: Tensor, act: Activation): Tensor {
    if (!this.bias) throw new Error('forwardAct needs a bias');
    this.observer?.(x, this);
    const y = this.product(x);
    return biasAct(this.lora ? add(y, this.loraDelta(x)) : y, this.bias.t, act);
  }

  /**
   * Adds the LoRA branch (before the model is bound to a parameter store). B starts at zero, so the layer
   * computes exactly what it did until B trains.
   */
  addLora(rank: number, alpha: number, initA: Float32Array, dropoutP: number, seed: number): void {
    if (this.lora) throw new Error('this Linear already has a LoRA branch');
    const a = this.param('weight.lora_a', [rank, this.inFeatures], initA);
    const b = this.param('weight.lora_b', [this.outFeatures, rank], constant(this.outFeatures * rank, 0));
    const drop = dropoutP > 0 ? this.child('lora_drop', new Dropout(dropoutP, seed)) : null;
    this.lora = { a, b, scale: alpha / rank, drop };
  }

  /** scale·(drop(x)·Aᵀ)·Bᵀ: two thin matmuls through the rank, never the [out, in] product. */
  private loraDelta(x: Tensor): Tensor {
    const l = this.lora!;
    const xin = l.drop ? l.drop.forward(x) : x;
    return mulScalar(linear(linear(xin, l.a.t), l.b.t), l.scale);
  }

  private withBias(y: Tensor): Tensor {
    return this.bias ? add(y, this.bias.t) : y;
  }
}

export class Embedding extends Module {
  readonly weight: Param;

  constructor(readonly count: number, readonly dim: number, rand: () => number, std = 0.02) {
    super();
    this.weight = this.param('weight', [count, dim], normal(count * dim, std, rand), false);
  }

  forward(indices: Tensor): Tensor {
    return embedding(this.weight.t, indices);
  }
}

export class LayerNorm extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [dim], constant(dim, 1), false);
    this.bias = this.param('bias', [dim], constant(dim, 0), false);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.t, this.bias.t, this.eps);
  }
}

/** Dropout with a seed per call from a counter, so a run is reproducible and backward regenerates the mask. */
export class Dropout extends Module {
  private calls = 0;

  constructor(readonly p: number, private readonly seed: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    const seed = this.nextSeed();
    return seed === null ? x : dropout(x, this.p, seed);
  }

  /**
   * The seed of this call's mask (the same sequence forward() uses), or null when nothing is dropped (evaluation,
   * or p = 0): for ops that drop inside a fused kernel (attention weights).
   */
  nextSeed(): number | null {
    if (!this.training || this.p === 0) return null;
    return (this.seed * 1_000_003 + this.calls++) >>> 0;
  }

  /** Resume: continue the mask sequence where a run stopped. */
  setCallCount(n: number): void {
    this.calls = n;
  }
}

export class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, readonly act: Activation, rand: () => number, std?: number, outStd?: number) {
    super();
    this.fc1 = this.child('fc1', new Linear(dim, hidden, rand, { std }));
    this.fc2 = this.child('fc2', new Linear(hidden, dim, rand, { std: outStd ?? std }));
  }

  forward(x: Tensor): Tensor {
    const hidden = this.fc1.forwardAct(x, this.act);
    const y = this.fc2.forward(hidden);
    // The activation's backward reads its input (fc1's product), not its output: once fc2 has its f16 copy, the
    // widest activation of the block is garbage until the step ends.
    releaseAfterHalfLayers(hidden, [this.fc2]);
    return y;
  }
}

export class MultiHeadAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;

  /** Dropout on the attention weights (its seeds; the kernel drops), or null. */
  readonly weightsDropout: Dropout | null;

  constructor(readonly dim: number, readonly heads: number, rand: () => number, std: number, outStd: number, weightsDropout?: { p: number; seed: number }) {
    super();
    if (dim % heads !== 0) throw new Error(`attention: dModel ${dim} is not divisible by heads ${heads}`);
    this.q = this.child('q', new Linear(dim, dim, rand, { std }));
    this.k = this.child('k', new Linear(dim, dim, rand, { std }));
    this.v = this.child('v', new Linear(dim, dim, rand, { std }));
    this.o = this.child('o', new Linear(dim, dim, rand, { std: outStd }));
    this.weightsDropout = weightsDropout && weightsDropout.p > 0 ? this.child('drop_weights', new Dropout(weightsDropout.p, weightsDropout.seed)) : null;
  }

  /** x: [B, T, D] → [B, T, D], causal. */
  forward(x: Tensor): Tensor {
    const seed = this.weightsDropout?.nextSeed() ?? null;
    const y = causalSelfAttention(this.q.forward(x), this.k.forward(x), this.v.forward(x), this.heads, seed === null ? null : { p: this.weightsDropout!.p, seed });
    return this.o.forward(y);
  }
}

/** Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)). */
export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;
  readonly drop1: Dropout;
  readonly drop2: Dropout;
  /** Bottleneck adapters on each sublayer's output, before the residual add (src/engine/nn/adapter.ts); none by default. */
  readonly adapters: AdapterSlots = { attn: null, mlp: null };

  constructor(readonly dim: number, heads: number, mlpRatio: number, dropoutP: number, rand: () => number, seed: number, layers: number) {
    super();
    const std = 0.02;
    // Residual projections scaled by 1/√(2·layers) (GPT-2) so the residual stream's variance stays bounded.
    const outStd = std / Math.sqrt(2 * layers);
    this.ln1 = this.child('ln1', new LayerNorm(dim));
    this.attn = this.child('attn', new MultiHeadAttention(dim, heads, rand, std, outStd));
    this.ln2 = this.child('ln2', new LayerNorm(dim));
    // The config promises an integer width (mlpRatio 2.5 at dModel 33 → 82, not 82.5).
    this.mlp = this.child('mlp', new MLP(dim, Math.max(1, Math.round(dim * mlpRatio)), 'gelu', rand, std, outStd));
    this.drop1 = this.child('drop1', new Dropout(dropoutP, seed * 2 + 1));
    this.drop2 = this.child('drop2', new Dropout(dropoutP, seed * 2 + 2));
  }

  addAdapter(site: AdapterSite, a: Adapter): void {
    this.adapters[site] = this.child(`adapter_${site}`, a);
  }

  forward(x: Tensor): Tensor {
    const { attn, mlp } = this.adapters;
    // Layer norm's backward reads its input, not its output; the output's only readers are the q, k, v (fc1)
    // products, so in mixed precision it is freed once they hold its f16 copy.
    const a = this.ln1.forward(x);
    const y1 = this.drop1.forward(this.attn.forward(a));
    releaseAfterHalfLayers(a, [this.attn.q, this.attn.k, this.attn.v]);
    const h = add(x, attn?.forward(y1) ?? y1);
    const b = this.ln2.forward(h);
    const y2 = this.drop2.forward(this.mlp.forward(b));
    releaseAfterHalfLayers(b, [this.mlp.fc1]);
    return add(h, mlp?.forward(y2) ?? y2);
  }
}
