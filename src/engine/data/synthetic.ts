// Deterministic synthetic data sets (same options and seed → same data, on every machine).
//
// syntheticSequences: item sequences from a sparse random Markov chain. Each item 1..vocab-1 (0 is padding, as
// in the MovieLens sequences) has `branching` likely successors with random weights; with probability `noise`
// the next item is uniform instead. A model that learns the chain reaches a top-10 hit rate near
// (1 − noise) + noise·10/(vocab−1) when branching ≤ 10, far above chance 10/(vocab−1).
//
// syntheticClassification: one Gaussian cluster per class; centres ~ N(0, I), samples = centre + noise·N(0, I).
import { Rng } from './rng';

export class SyntheticDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SyntheticDataError';
  }
}

export interface SyntheticSequencesOptions {
  sequences: number;
  /** Items per sequence (≥ 2). */
  length: number;
  /** Ids 1..vocab-1 are items, 0 is padding. */
  vocab: number;
  /** Likely successors per item (clamped to vocab − 1). */
  branching: number;
  /** Probability of a uniformly random next item. */
  noise: number;
  seed: number;
  /** Seed of the transition rules alone (default: `seed`): runs that share it learn the same task. */
  chainSeed?: number;
}

export interface MarkovChain {
  /** successors[item] for item 1..vocab-1 (successors[0] is empty). */
  successors: Int32Array[];
  /** probs[item][k]: probability of successors[item][k] (before noise), summing to 1. */
  probs: Float64Array[];
}

export interface SyntheticSequences {
  rows: Int32Array[];
  vocab: number;
  chain: MarkovChain;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new SyntheticDataError(`${name} must be an integer ≥ ${min}, got ${v}`);
}

export function syntheticSequences(o: SyntheticSequencesOptions): SyntheticSequences {
  checkInt('sequences', o.sequences, 1);
  checkInt('length', o.length, 2);
  checkInt('vocab', o.vocab, 2);
  checkInt('branching', o.branching, 1);
  if (!(o.noise >= 0 && o.noise <= 1)) throw new SyntheticDataError(`noise must be in [0, 1], got ${o.noise}`);
  const items = o.vocab - 1;
  const b = Math.min(o.branching, items);
  // Separate streams: the chain does not change when only the number or length of sequences does.
  const chainRng = new Rng(o.chainSeed ?? o.seed, 0x5eed);
  const successors: Int32Array[] = [new Int32Array(0)];
  const probs: Float64Array[] = [new Float64Array(0)];
  for (let item = 1; item <= items; item++) {
    // b distinct successors: rejection when b is small against the catalogue, else a partial Fisher–Yates.
    const succ = new Int32Array(b);
    if (b * 4 <= items) {
      for (let k = 0; k < b; ) {
        const cand = 1 + chainRng.int(items);
        if (!succ.subarray(0, k).includes(cand)) succ[k++] = cand;
      }
    } else {
      const pool = new Int32Array(items);
      for (let i = 0; i < items; i++) pool[i] = i + 1;
      for (let k = 0; k < b; k++) {
        const j = k + chainRng.int(items - k);
        const t = pool[k];
        pool[k] = pool[j];
        pool[j] = t;
        succ[k] = pool[k];
      }
    }
    const w = new Float64Array(b);
    let sum = 0;
    for (let k = 0; k < b; k++) sum += w[k] = 0.25 + chainRng.float();
    for (let k = 0; k < b; k++) w[k] /= sum;
    successors.push(succ);
    probs.push(w);
  }
  const rng = new Rng(o.seed, 0xda7a);
  const rows: Int32Array[] = [];
  for (let s = 0; s < o.sequences; s++) {
    const row = new Int32Array(o.length);
    let cur = 1 + rng.int(items);
    row[0] = cur;
    for (let t = 1; t < o.length; t++) {
      if (rng.float() < o.noise) cur = 1 + rng.int(items);
      else {
        const u = rng.float();
        const p = probs[cur];
        let k = 0;
        let acc = p[0];
        while (u >= acc && k < p.length - 1) acc += p[++k];
        cur = successors[cur][k];
      }
      row[t] = cur;
    }
    rows.push(row);
  }
  return { rows, vocab: o.vocab, chain: { successors, probs } };
}

export interface SyntheticClassificationOptions {
  samples: number;
  inputs: number;
  classes: number;
  seed: number;
  /** Standard deviation of each cluster (default 0.5). */
  noise?: number;
}

export interface ClassificationData {
  /** Row-major [samples, inputs]. */
  x: Float32Array;
  /** Class of each sample, 0..classes-1. */
  y: Int32Array;
  inputs: number;
  classes: number;
}

export function syntheticClassification(o: SyntheticClassificationOptions): ClassificationData & { centers: Float32Array } {
  checkInt('samples', o.samples, 1);
  checkInt('inputs', o.inputs, 1);
  checkInt('classes', o.classes, 2);
  const noise = o.noise ?? 0.5;
  if (!(noise >= 0) || !Number.isFinite(noise)) throw new SyntheticDataError(`noise must be a finite number ≥ 0, got ${noise}`);
  const rng = new Rng(o.seed, 0xc1a5);
  const centers = new Float32Array(o.classes * o.inputs);
  for (let i = 0; i < centers.length; i++) centers[i] = rng.normal();
  const x = new Float32Array(o.samples * o.inputs);
  const y = new Int32Array(o.samples);
  for (let s = 0; s < o.samples; s++) {
    const c = rng.int(o.classes);
    y[s] = c;
    for (let f = 0; f < o.inputs; f++) x[s * o.inputs + f] = centers[c * o.inputs + f] + noise * rng.normal();
  }
  return { x, y, inputs: o.inputs, classes: o.classes, centers };
}
