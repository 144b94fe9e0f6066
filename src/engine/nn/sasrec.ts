// SASRec (Kang & McAuley 2018, arXiv 1808.09781): a causal self-attentive next-item model.
//
//   x⁰ = Dropout(E[s]·√d + P[0..T)) ⊙ m              E: item table [items + 1, d], row 0 = padding; P: positions
//   per block:  h = x + Dropout(Attn(LN(x)));  x = (h + Dropout(FFN(LN(h)))) ⊙ m      FFN = ReLU(·W1 + b1)·W2 + b2, d → d → d
//               Attn may drop its weights too (`attentionDropout`, the reference code's dropout on the softmax)
//   hidden = LN_f(x);  scores = hidden · Eᵀ                                             the SAME table E, no bias
//
// m is the padding mask (1 for a real item, 0 for id 0), the paper's "constant zero vector" for padding and its
// code's timeline mask after every block. The √d scale is the reference code's (`scale=True`); the pre-LayerNorm
// residual `x + Dropout(g(LayerNorm(x)))` and the d×d ReLU FFN are the paper's §III-B/C.
//
// Padding side. The paper left-pads; Basin's attention kernel (kernels/attention.wgsl) has a causal mask but no
// key-padding mask, so Basin right-pads instead: a window's items sit at positions 0..n-1 and padding after them.
// Causality alone then keeps padding out of every real position (query t only sees keys 0..t, all real), so
// outputs of real positions are exactly those of the unpadded sequence. Left-padded input would let real
// positions attend to padding rows (their keys are the attention biases, not nothing): don't.
//
// The output head is the item table itself (OutputHead.weight === E), so the parameter store holds it once and
// the statistics show its curvature once, under `item.weight`. Its row 0 is a class nobody targets: the loss
// pushes its score down, which is harmless (the input side masks padding to zero, evaluation excludes id 0).
import { add, mul, mulScalar } from '../ops/elementwise';
import { embedding } from '../ops/embedding';
import { linear } from '../ops/matmul';
import type { Runtime } from '../gpu/runtime';
import { Tensor, fromArray, keep, ShapeError, fmtShape } from '../tensor/tensor';
import { normal, seededRandom } from './init';
import { Dropout, LayerNorm, MLP, MultiHeadAttention } from './layers';
import type { Model, OutputHead, SasrecSpec } from './models';
import { Module, Param } from './module';
import type { Adapter, AdapterSite, AdapterSlots } from './adapter';

/** One SASRec block: pre-LayerNorm causal attention and a ReLU point-wise FFN, each with dropout on its residual branch. */
export class SasrecBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  readonly ffn: MLP;
  readonly drop1: Dropout;
  readonly drop2: Dropout;
  /** Bottleneck adapters on each sublayer's output, before the residual add (src/engine/nn/adapter.ts); none by default. */
  readonly adapters: AdapterSlots = { attn: null, mlp: null };

  constructor(readonly dim: number, heads: number, dropoutP: number, rand: () => number, seed: number, attentionDropoutP = 0) {
    super();
    // Xavier-normal for d×d matrices (the reference implementations' initialiser): std = √(2 / (d + d)).
    const std = Math.sqrt(1 / dim);
    this.ln1 = this.child('ln1', new LayerNorm(dim, 1e-8));
    this.attn = this.child('attn', new MultiHeadAttention(dim, heads, rand, std, std, { p: attentionDropoutP, seed: seed * 2 + 3 }));
    this.ln2 = this.child('ln2', new LayerNorm(dim, 1e-8));
    this.ffn = this.child('ffn', new MLP(dim, dim, 'relu', rand, std, std));
    this.drop1 = this.child('drop1', new Dropout(dropoutP, seed * 2 + 1));
    this.drop2 = this.child('drop2', new Dropout(dropoutP, seed * 2 + 2));
  }

  /** `mlp` is the FFN's site: the same place as the transformer block's MLP. */
  addAdapter(site: AdapterSite, a: Adapter): void {
    this.adapters[site] = this.child(`adapter_${site}`, a);
  }

  /** x [B, T, d], mask [B, T, 1] (1 = real item) → [B, T, d] with padding rows zero. */
  forward(x: Tensor, mask: Tensor): Tensor {
    const { attn, mlp } = this.adapters;
    const y1 = this.drop1.forward(this.attn.forward(this.ln1.forward(x)));
    const h = add(x, attn?.forward(y1) ?? y1);
    const y2 = this.drop2.forward(this.ffn.forward(this.ln2.forward(h)));
    return mul(add(h, mlp?.forward(y2) ?? y2), mask);
  }
}

export class SASRec extends Module implements Model {
  /** E [items + 1, hidden]: the input embedding AND the output layer. */
  readonly item: Param;
  readonly positions: Param;
  readonly drop: Dropout;
  readonly blocks: SasrecBlock[] = [];
  readonly lnF: LayerNorm;
  readonly head: OutputHead;
  /** [items + 1, 1]: 0 for the padding id, 1 otherwise; gathered by token id it is the padding mask. */
  private maskTable: Tensor | null = null;
  private readonly positionIds = new Map<number, Tensor>();

  constructor(readonly spec: SasrecSpec, seed: number) {
    super();
    if (spec.hidden % spec.heads !== 0) throw new Error(`sasrec: hidden ${spec.hidden} is not divisible by heads ${spec.heads}`);
    const rand = seededRandom(seed);
    const rows = spec.items + 1;
    const d = spec.hidden;
    // Xavier-normal item table and positions (as the reference code), the padding row zero.
    const e = normal(rows * d, Math.sqrt(2 / (rows + d)), rand);
    e.fill(0, 0, d);
    // Embeddings are not decayed (the convention of Embedding in layers.ts).
    this.item = this.param('item.weight', [rows, d], e, false);
    this.positions = this.param('pos.weight', [spec.maxLen, d], normal(spec.maxLen * d, Math.sqrt(2 / (spec.maxLen + d)), rand), false);
    this.drop = this.child('drop', new Dropout(spec.dropout, seed * 7 + 3));
    for (let i = 0; i < spec.blocks; i++) this.blocks.push(this.child(`blocks.${i}`, new SasrecBlock(d, spec.heads, spec.dropout, rand, seed + 17 * (i + 1), spec.attentionDropout ?? 0)));
    this.lnF = this.child('ln_f', new LayerNorm(d, 1e-8));
    const item = this.item;
    this.head = {
      get weight() {
        return item.t;
      },
      bias: null,
      logits: (h) => linear(h, item.t),
    };
  }

  /** Classes of the output layer: every row of the item table (row 0, padding, is never a target). */
  get classes(): number {
    return this.spec.items + 1;
  }

  /**
   * tokens: i32 [B, T], T ≤ maxLen, right-padded with 0 → hidden states [B·T, hidden] after the final layer norm.
   * Row b·T + t is the representation after reading items 0..t of sequence b (its next-item query).
   */
  hidden(tokens: Tensor): Tensor {
    if (tokens.rank !== 2 || tokens.dtype !== 'i32') throw new ShapeError(`sasrec input must be i32 [batch, time], got ${fmtShape(tokens.shape)} ${tokens.dtype}`);
    const [B, T] = tokens.shape;
    if (T > this.spec.maxLen) throw new ShapeError(`sasrec input ${fmtShape(tokens.shape)}: time axis ${T} exceeds the model's maxLen ${this.spec.maxLen}`);
    const d = this.spec.hidden;
    const rt = tokens.rt;
    const mask = embedding(this.padMask(rt), tokens); // [B, T, 1]
    const pos = embedding(this.positions.t, this.positionsFor(rt, T)); // [T, d]
    let x = add(mulScalar(embedding(this.item.t, tokens), Math.sqrt(d)), pos);
    x = mul(this.drop.forward(x), mask);
    for (const b of this.blocks) x = b.forward(x, mask);
    return this.lnF.forward(x).reshape([B * T, d]);
  }

  private padMask(rt: Runtime): Tensor {
    if (!this.maskTable) {
      const m = new Float32Array(this.spec.items + 1).fill(1);
      m[0] = 0;
      this.maskTable = keep(fromArray(rt, m, [this.spec.items + 1, 1]));
    }
    return this.maskTable;
  }

  private positionsFor(rt: Runtime, T: number): Tensor {
    let ids = this.positionIds.get(T);
    if (!ids) {
      ids = keep(fromArray(rt, Int32Array.from({ length: T }, (_, i) => i), [T], 'i32'));
      this.positionIds.set(T, ids);
    }
    return ids;
  }
}
