// Train/validation splits and fixed-shape batches.
//
// Batches are random-access: `batchAt(i)` depends only on (data, options, seed, i), so a resumed run asks for
// batch `step` and gets exactly the batch the uninterrupted run would have seen. Each epoch is a fresh
// permutation drawn from Rng(seed, epoch). Every batch has the full [batchSize × …] shape (one GPU pipeline per
// shape); a short final batch is filled with padding rows whose targets are −1 (ignored by the loss).
import { Rng } from './rng';

export class BatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchError';
  }
}

/** Deterministic split of indices 0..n-1; `valid` holds round(n · validFraction) of them (≥ 1 when the fraction is > 0 and n ≥ 2). */
export function splitIndices(n: number, validFraction: number, seed: number): { train: Int32Array; valid: Int32Array } {
  if (!(validFraction >= 0 && validFraction < 1)) throw new BatchError(`validFraction must be in [0, 1), got ${validFraction}`);
  const perm = new Rng(seed, 0x5b17).permutation(n);
  let nv = Math.round(n * validFraction);
  if (validFraction > 0 && n >= 2) nv = Math.min(Math.max(nv, 1), n - 1);
  const valid = perm.slice(0, nv).sort();
  const train = perm.slice(nv).sort();
  return { train, valid };
}

/** Deterministic split of a list (original order kept within each part). */
export function splitTrainValid<T>(items: readonly T[], validFraction: number, seed: number): { train: T[]; valid: T[] } {
  const { train, valid } = splitIndices(items.length, validFraction, seed);
  return { train: Array.from(train, (i) => items[i]), valid: Array.from(valid, (i) => items[i]) };
}

// ------------------------------------------------------------------------------------------ next-token batches

export interface TokenBatch {
  /** [batch * seqLen] token ids, row-major; 0 is padding. */
  inputs: Int32Array;
  /** [batch * seqLen] next-token targets; −1 = ignore (padding, or not evaluated). */
  targets: Int32Array;
  batch: number;
  seqLen: number;
  /** Rows holding real windows (the rest are padding rows). */
  rows: number;
  /** Which batch this is (0-based, counting across epochs). */
  index: number;
  epoch: number;
}

export interface NextTokenOptions {
  batchSize: number;
  seqLen: number;
  /** Shuffle windows each epoch (default true). */
  shuffle?: boolean;
  seed?: number;
  /**
   * 'all' (default): each sequence is cut into consecutive windows of seqLen + 1 tokens (overlapping by one), so
   * every next-token target appears exactly once per epoch. 'last': one window per sequence, its last seqLen + 1
   * tokens (next-item evaluation on the most recent history).
   */
  windows?: 'all' | 'last';
  /** Keep only the last real target of each window (SASRec-style evaluation). Default false. */
  lastTargetOnly?: boolean;
  /** Where a short window's padding goes (default 'right'). */
  pad?: 'right' | 'left';
  /** Drop the short final batch of each epoch instead of padding it (default false). */
  dropLast?: boolean;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new BatchError(`${name} must be a positive integer, got ${v}`);
}

export class NextTokenBatcher {
  private readonly winSeq: Int32Array;
  private readonly winStart: Int32Array;
  private readonly winLen: Int32Array;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly batchesPerEpoch: number;
  private permEpoch = -1;
  private perm: Int32Array | null = null;

  constructor(
    private readonly sequences: readonly Int32Array[],
    private readonly opts: NextTokenOptions,
  ) {
    checkPositiveInt('batchSize', opts.batchSize);
    checkPositiveInt('seqLen', opts.seqLen);
    this.batchSize = opts.batchSize;
    this.seqLen = opts.seqLen;
    const T = opts.seqLen;
    const seqs: number[] = [];
    const starts: number[] = [];
    const lens: number[] = [];
    sequences.forEach((s, i) => {
      const L = s.length;
      if (L < 2) return; // nothing to predict
      if (opts.windows === 'last') {
        const st = Math.max(0, L - T - 1);
        seqs.push(i);
        starts.push(st);
        lens.push(L - st);
      } else {
        for (let st = 0; st < L - 1; st += T) {
          seqs.push(i);
          starts.push(st);
          lens.push(Math.min(T + 1, L - st));
        }
      }
    });
    this.winSeq = Int32Array.from(seqs);
    this.winStart = Int32Array.from(starts);
    this.winLen = Int32Array.from(lens);
    const W = this.winSeq.length;
    this.batchesPerEpoch = opts.dropLast ? Math.floor(W / this.batchSize) : Math.ceil(W / this.batchSize);
  }

  /** Windows (examples) per epoch. */
  get windowCount(): number {
    return this.winSeq.length;
  }

  private order(epoch: number): Int32Array {
    if (this.permEpoch !== epoch || !this.perm) {
      const W = this.winSeq.length;
      if (this.opts.shuffle === false) {
        this.perm = new Int32Array(W);
        for (let i = 0; i < W; i++) this.perm[i] = i;
      } else this.perm = new Rng(this.opts.seed ?? 0, epoch + 1).permutation(W);
      this.permEpoch = epoch;
    }
    return this.perm;
  }

  /** Batch number `index` (0-based, across epochs). */
  batchAt(index: number): TokenBatch {
    if (!Number.isInteger(index) || index < 0) throw new BatchError(`batch index must be a non-negative integer, got ${index}`);
    if (this.batchesPerEpoch === 0) throw new BatchError(`no batches: ${this.winSeq.length} windows for batch size ${this.batchSize}`);
    const epoch = Math.floor(index / this.batchesPerEpoch);
    const within = index % this.batchesPerEpoch;
    const perm = this.order(epoch);
    const B = this.batchSize;
    const T = this.seqLen;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T).fill(-1);
    const first = within * B;
    const rows = Math.min(B, perm.length - first);
    const left = this.opts.pad === 'left';
    for (let r = 0; r < rows; r++) {
      const w = perm[first + r];
      const seq = this.sequences[this.winSeq[w]];
      const st = this.winStart[w];
      const n = this.winLen[w] - 1; // real positions in this window
      const off = r * T + (left ? T - n : 0);
      for (let k = 0; k < n; k++) {
        inputs[off + k] = seq[st + k];
        targets[off + k] = seq[st + k + 1];
      }
      if (this.opts.lastTargetOnly) for (let k = 0; k < n - 1; k++) targets[off + k] = -1;
    }
    return { inputs, targets, batch: B, seqLen: T, rows, index, epoch };
  }

  /** Batches `start`, `start`+1, … (`count` of them, or endlessly). */
  *iterate(start = 0, count = Infinity): Generator<TokenBatch> {
    for (let i = start; i < start + count; i++) yield this.batchAt(i);
  }
}

/** Next-token batches for `epochs` epochs (default 1; Infinity for endless), from batch `startBatch`. */
export function nextTokenBatches(sequences: readonly Int32Array[], opts: NextTokenOptions & { epochs?: number; startBatch?: number }): Generator<TokenBatch> {
  const b = new NextTokenBatcher(sequences, opts);
  const total = (opts.epochs ?? 1) * b.batchesPerEpoch;
  const start = opts.startBatch ?? 0;
  return b.iterate(start, Math.max(0, total - start));
}

// ------------------------------------------------------------------------------------- classification batches

export interface ClassBatch {
  /** [batch * features] row-major; padding rows are zeros. */
  inputs: Float32Array;
  /** [batch] class ids; −1 for padding rows. */
  targets: Int32Array;
  batch: number;
  features: number;
  rows: number;
  index: number;
  epoch: number;
}

export interface ClassificationBatchOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  dropLast?: boolean;
}

export class ClassificationBatcher {
  readonly batchesPerEpoch: number;
  readonly samples: number;
  private permEpoch = -1;
  private perm: Int32Array | null = null;

  constructor(
    private readonly x: Float32Array,
    private readonly y: Int32Array,
    readonly features: number,
    private readonly opts: ClassificationBatchOptions,
  ) {
    checkPositiveInt('batchSize', opts.batchSize);
    checkPositiveInt('features', features);
    if (x.length !== y.length * features) throw new BatchError(`x has ${x.length} values but ${y.length} labels × ${features} features need ${y.length * features}`);
    this.samples = y.length;
    this.batchesPerEpoch = opts.dropLast ? Math.floor(this.samples / opts.batchSize) : Math.ceil(this.samples / opts.batchSize);
  }

  private order(epoch: number): Int32Array {
    if (this.permEpoch !== epoch || !this.perm) {
      if (this.opts.shuffle === false) this.perm = Int32Array.from({ length: this.samples }, (_, i) => i);
      else this.perm = new Rng(this.opts.seed ?? 0, epoch + 1).permutation(this.samples);
      this.permEpoch = epoch;
    }
    return this.perm;
  }

  batchAt(index: number): ClassBatch {
    if (!Number.isInteger(index) || index < 0) throw new BatchError(`batch index must be a non-negative integer, got ${index}`);
    if (this.batchesPerEpoch === 0) throw new BatchError(`no batches: ${this.samples} samples for batch size ${this.opts.batchSize}`);
    const epoch = Math.floor(index / this.batchesPerEpoch);
    const perm = this.order(epoch);
    const B = this.opts.batchSize;
    const F = this.features;
    const first = (index % this.batchesPerEpoch) * B;
    const rows = Math.min(B, perm.length - first);
    const inputs = new Float32Array(B * F);
    const targets = new Int32Array(B).fill(-1);
    for (let r = 0; r < rows; r++) {
      const s = perm[first + r];
      inputs.set(this.x.subarray(s * F, (s + 1) * F), r * F);
      targets[r] = this.y[s];
    }
    return { inputs, targets, batch: B, features: F, rows, index, epoch };
  }

  *iterate(start = 0, count = Infinity): Generator<ClassBatch> {
    for (let i = start; i < start + count; i++) yield this.batchAt(i);
  }
}

export function classificationBatches(
  x: Float32Array,
  y: Int32Array,
  features: number,
  opts: ClassificationBatchOptions & { epochs?: number; startBatch?: number },
): Generator<ClassBatch> {
  const b = new ClassificationBatcher(x, y, features, opts);
  const total = (opts.epochs ?? 1) * b.batchesPerEpoch;
  const start = opts.startBatch ?? 0;
  return b.iterate(start, Math.max(0, total - start));
}

/** The rows of a classification set at `indices` (e.g. one side of splitIndices). */
export function takeRows(x: Float32Array, y: Int32Array, features: number, indices: Int32Array): { x: Float32Array; y: Int32Array } {
  const ox = new Float32Array(indices.length * features);
  const oy = new Int32Array(indices.length);
  indices.forEach((s, r) => {
    ox.set(x.subarray(s * features, (s + 1) * features), r * features);
    oy[r] = y[s];
  });
  return { x: ox, y: oy };
}
