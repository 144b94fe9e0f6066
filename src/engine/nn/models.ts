// Models built from a config: a causal transformer over a vocabulary (next-token / next-item prediction) and an
// MLP classifier. A model is a BODY that maps a batch to hidden states [rows, hidden] and an output HEAD (a weight
// table [classes, hidden] and a bias): the registered loss (src/engine/loss/) owns the output layer, so a loss
// that never forms the full logits (sampled softmax, CCE) reads the head's table directly, while cross-entropy
// asks the head for the logits. Factories by config name: ./registry.ts.
import { add } from '../ops/elementwise';
import type { Runtime } from '../gpu/runtime';
import { Tensor, fromArray, keep, ShapeError, fmtShape } from '../tensor/tensor';
import { seededRandom } from './init';
import { Activation, Dropout, Embedding, LayerNorm, Linear, TransformerBlock } from './layers';
import { Module } from './module';
import type { MlpModelConfig, SasrecModelConfig, TransformerModelConfig } from '../../files/registry/models';

// A model's spec is its config section after defaults: one definition, in config/schema.ts.
export type TransformerSpec = TransformerModelConfig;
export type MlpSpec = MlpModelConfig;
export type SasrecSpec = SasrecModelConfig;
export type ModelSpec = TransformerSpec | MlpSpec | SasrecSpec;

/** The output layer a loss works with: logits = hidden · weightᵀ + bias. */
export interface OutputHead {
  /** [classes, hidden]: one row per class (item), so a loss can read or bind any range of classes. */
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The full logits [rows, classes] (what cross-entropy and evaluation use). */
  logits(hidden: Tensor): Tensor;
}

/** What the trainer needs from any model. */
export interface Model extends Module {
  readonly spec: ModelSpec;
  /** Hidden states [rows, hidden] of a batch (token ids [B, T] for the transformer, features [B, inputs] for the MLP). */
  hidden(input: Tensor): Tensor;
  readonly head: OutputHead;
  readonly classes: number;
}

/** A Linear layer as an output head (its weight is already [out, in] = [classes, hidden]). */
export function linearHead(layer: Linear): OutputHead {
  return {
    get weight() {
      return layer.weight.t;
    },
    get bias() {
      return layer.bias?.t ?? null;
    },
    logits: (h) => layer.forward(h),
  };
}

export class TransformerLM extends Module implements Model {
  readonly tokens: Embedding;
  readonly positions: Embedding;
  readonly blocks: TransformerBlock[] = [];
  readonly lnF: LayerNorm;
  readonly out: Linear;
  readonly head: OutputHead;
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
    this.out = this.child('head', new Linear(spec.dModel, spec.vocab, rand, { std: 0.02 }));
    this.head = linearHead(this.out);
  }

  get classes(): number {
    return this.spec.vocab;
  }

  /** tokens: i32 [B, T] with T = seqLen → hidden states [B·T, dModel] (after the final layer norm). */
  hidden(tokens: Tensor): Tensor {
    if (tokens.rank !== 2 || tokens.dtype !== 'i32') throw new ShapeError(`transformer input must be i32 [batch, time], got ${fmtShape(tokens.shape)} ${tokens.dtype}`);
    const [B, T] = tokens.shape;
    // Shorter sequences are left-padded to seqLen by the data pipeline (targets −1 are ignored by the loss).
    if (T !== this.spec.seqLen) throw new ShapeError(`input ${fmtShape(tokens.shape)} must have the model's seqLen ${this.spec.seqLen} as its time axis`);
    let x = add(this.tokens.forward(tokens), this.positionsFor(tokens.rt));
    x = this.drop.forward(x);
    for (const b of this.blocks) x = b.forward(x);
    return this.lnF.forward(x).reshape([B * T, this.spec.dModel]);
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
  readonly head: OutputHead;

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
    this.head = linearHead(this.layers[this.layers.length - 1]);
  }

  get classes(): number {
    return this.spec.classes;
  }

  /** features [B, inputs] → the last hidden layer's activations [B, width] (the input itself with no hidden layer). */
  hidden(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.spec.inputs) throw new ShapeError(`MLP input must be [batch, ${this.spec.inputs}], got ${fmtShape(x.shape)}`);
    let h = x;
    for (let i = 0; i < this.layers.length - 1; i++) h = this.drops[i].forward(this.layers[i].forwardAct(h, this.spec.activation));
    return h;
  }
}
