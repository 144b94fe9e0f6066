// Models built from a config: a causal transformer over a vocabulary (next-token / next-item prediction) and an
// MLP classifier. Both map integer or float inputs to logits [rows, classes] for cross-entropy.
import { add } from '../ops/elementwise';
import type { Runtime } from '../gpu/runtime';
import { Tensor, fromArray, keep, ShapeError, fmtShape } from '../tensor/tensor';
import { seededRandom } from './init';
import { Activation, Dropout, Embedding, LayerNorm, Linear, TransformerBlock } from './layers';
import { Module } from './module';
import type { MlpModelConfig, TransformerModelConfig } from '../../files/config/schema';

// A model's spec is its config section after defaults: one definition, in config/schema.ts.
export type TransformerSpec = TransformerModelConfig;
export type MlpSpec = MlpModelConfig;
export type ModelSpec = TransformerSpec | MlpSpec;

/** What the trainer needs from any model. */
export interface Model extends Module {
  readonly spec: ModelSpec;
  /** Logits [rows, classes] for a batch (token ids [B, T] for the transformer, features [B, inputs] for the MLP). */
  logits(input: Tensor): Tensor;
  readonly classes: number;
}

export class TransformerLM extends Module implements Model {
  readonly tokens: Embedding;
  readonly positions: Embedding;
  readonly blocks: TransformerBlock[] = [];
  readonly lnF: LayerNorm;
  readonly head: Linear;
  readonly drop: Dropout;
  private positionIds: Tensor | null = null;

  constructor(readonly spec: TransformerSpec, seed: number) {
    super();
    const rand = seededRandom(seed);
    this.tokens = this.child('tok', new Embedding(spec.vocab, spec.dModel, rand));
    this.positions = this.child('pos', new Embedding(spec.seqLen, spec.dModel, rand, 0.01));
    this.drop = this.child('drop', new Dropout(spec.dropout, seed * 7 + 3));
    for (let i = 0; i < spec.layers; i++) {
      this.blocks.push(this.child(`blocks.${i}`, new TransformerBlock(spec.dModel, spec.heads, spec.mlpRatio, spec.dropout, rand, seed + 17 * (i + 1), spec.layers)));
    }
    this.lnF = this.child('ln_f', new LayerNorm(spec.dModel));
    this.head = this.child('head', new Linear(spec.dModel, spec.vocab, rand, { std: 0.02 }));
  }

  get classes(): number {
    return this.spec.vocab;
  }

  /** tokens: i32 [B, T] with T ≤ seqLen → logits [B·T, vocab]. */
  logits(tokens: Tensor): Tensor {
    if (tokens.rank !== 2 || tokens.dtype !== 'i32') throw new ShapeError(`transformer input must be i32 [batch, time], got ${fmtShape(tokens.shape)} ${tokens.dtype}`);
    const [B, T] = tokens.shape;
    // Shorter sequences are left-padded to seqLen by the data pipeline (targets −1 are ignored by the loss).
    if (T !== this.spec.seqLen) throw new ShapeError(`input ${fmtShape(tokens.shape)} must have the model's seqLen ${this.spec.seqLen} as its time axis`);
    let x = add(this.tokens.forward(tokens), this.positionsFor(tokens.rt));
    x = this.drop.forward(x);
    for (const b of this.blocks) x = b.forward(x);
    x = this.lnF.forward(x);
    return this.head.forward(x).reshape([B * T, this.spec.vocab]);
  }

  private positionsFor(rt: Runtime): Tensor {
    // Position ids 0..seqLen-1 live for the model's life; a shorter batch uses a prefix view.
    if (!this.positionIds) this.positionIds = keep(fromArray(rt, Int32Array.from({ length: this.spec.seqLen }, (_, i) => i), [this.spec.seqLen], 'i32'));
    return this.positions.forward(this.positionIds);
  }
}

export class MlpClassifier extends Module implements Model {
  readonly layers: Linear[] = [];
  readonly drops: Dropout[] = [];

  constructor(readonly spec: MlpSpec, seed: number) {
    super();
    const rand = seededRandom(seed);
    let prev = spec.inputs;
    spec.hidden.forEach((h, i) => {
      this.layers.push(this.child(`layers.${i}`, new Linear(prev, h, rand)));
      this.drops.push(this.child(`drops.${i}`, new Dropout(spec.dropout, seed * 31 + i)));
      prev = h;
    });
    this.layers.push(this.child(`layers.${spec.hidden.length}`, new Linear(prev, spec.classes, rand)));
  }

  get classes(): number {
    return this.spec.classes;
  }

  logits(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.spec.inputs) throw new ShapeError(`MLP input must be [batch, ${this.spec.inputs}], got ${fmtShape(x.shape)}`);
    let h = x;
    for (let i = 0; i < this.layers.length - 1; i++) h = this.drops[i].forward(this.layers[i].forwardAct(h, this.spec.activation));
    return this.layers[this.layers.length - 1].forward(h);
  }
}

export function buildModel(spec: ModelSpec, seed: number): Model {
  return spec.type === 'transformer' ? new TransformerLM(spec, seed) : new MlpClassifier(spec, seed);
}
