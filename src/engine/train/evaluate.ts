// Validation metrics: mean cross-entropy, top-1 accuracy and HR@10 (target among the 10 highest logits) over the
// rows whose target is not ignored. Next-item models (token batches) also get full-catalogue ranking metrics on the
// GPU (src/engine/eval/ranking.ts): every validation target is ranked against all items, the padding id and the
// items read before it in its window removed (the target itself never removed), ties counted as a random order.
import type { Runtime } from '../gpu/runtime';
import type { LossFn } from '../loss/loss';
import type { Model } from '../nn/models';
import { fromArray, keep, noGrad, tidy, view, type Tensor } from '../tensor/tensor';
import { headRowsPerPiece } from '../ops/loss';
import type { OutputHead } from '../nn/models';
import { embedding } from '../ops/embedding';
import { rankFullCatalog, RankingAccumulator } from '../eval/ranking';
import type { TrainingData } from './data-source';
import { batchInputs, forwardBatch } from './forward';
import { evaluateLeaveOneOut } from './leave-one-out';

export interface EvalMetrics {
  loss: number;
  accuracy: number;
  hr10: number;
  /** Next-item models: NDCG@10, HR@10, MRR and coverage@10 of full-catalogue ranking with seen items removed. */
  ndcg10?: number;
  hr10Full?: number;
  mrr?: number;
  coverage10?: number;
}

/** What guessing uniformly at random would score. */
export function chanceMetrics(classes: number): EvalMetrics {
  return { loss: Math.log(classes), accuracy: 1 / classes, hr10: Math.min(1, 10 / classes) };
}

/** Rank-based metrics of one row: how many logits beat the target's. */
export function rankOfTarget(logits: Float32Array, row: number, classes: number, target: number): number {
  const base = row * classes;
  const t = logits[base + target];
  let rank = 0;
  for (let j = 0; j < classes; j++) if (logits[base + j] > t) rank++;
  return rank;
}

/**
 * The head's logits of hidden [rows, d], read back to the host; formed in pieces of rows (views of the hidden
 * states, 64-row multiples so that each starts on a 256-byte boundary) when [rows, classes] exceeds one storage
 * binding. Call inside a tidy scope: the readbacks are recorded before the scope disposes the pieces.
 */
export function headLogitsToHost(head: OutputHead, hidden: Tensor): Promise<Float32Array> {
  const rt = hidden.rt;
  const [rows, d] = hidden.shape;
  const classes = head.weight.shape[0];
  if (rows * classes * 4 <= rt.maxBindingBytes || hidden.storage.offset % 256 !== 0) {
    return head.logits(hidden).toArray() as Promise<Float32Array>;
  }
  const per = Math.max(64, headRowsPerPiece(rt.maxBindingBytes, classes));
  const reads: Promise<Float32Array>[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    reads.push(head.logits(view(rt, hidden.storage.buffer, hidden.storage.offset + r0 * d * 4, [n, d])).toArray() as Promise<Float32Array>);
  }
  return Promise.all(reads).then((parts) => {
    const out = new Float32Array(rows * classes);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  });
}

/** Validation metrics of a model; the loss is the run's registered loss (default cross-entropy), ranks from the full logits. */
export async function evaluate(rt: Runtime, model: Model, data: TrainingData, loss?: LossFn): Promise<EvalMetrics> {
  // Data with an evaluation split: each user's validation target given its history (./leave-one-out.ts).
  if (data.leaveOneOut) return evaluateLeaveOneOut(rt, model, data.leaveOneOut, 'valid', loss);
  model.eval();
  let lossSum = 0;
  let rows = 0;
  let hits1 = 0;
  let hits10 = 0;
  let ranking: RankingAccumulator | null = null;
  try {
    for (const batch of data.validBatches()) {
      const queries = batch.inputs ? rankingQueries(batch.inputs, batch.seqLen!, batch.targets) : null;
      let queryHidden: Tensor | null = null;
      const reads = noGrad(() =>
        tidy(() => {
          const out = forwardBatch(rt, model, batch, { loss });
          // A loss that never forms the full logits (sampled, CCE, CE in pieces) leaves them to the head here.
          const logits = out.logits ? out.logits.toArray() : headLogitsToHost(model.head, model.hidden(batchInputs(rt, batch)));
          // The hidden states of the rows to rank (one more forward: forwardBatch keeps its hidden states to itself).
          if (queries && queries.rows.length) queryHidden = keep(embedding(model.hidden(batchInputs(rt, batch)), fromArray(rt, queries.rows, [queries.rows.length], 'i32')));
          return { loss: out.loss.toArray(), logits };
        }),
      );
      const [lossArr, logits] = await Promise.all([reads.loss, reads.logits]);
      const C = model.classes;
      let counted = 0;
      for (let r = 0; r < batch.targets.length; r++) {
        const y = batch.targets[r];
        if (y < 0) continue;
        counted++;
        const rank = rankOfTarget(logits as Float32Array, r, C, y);
        if (rank === 0) hits1++;
        if (rank < 10) hits10++;
      }
      lossSum += lossArr[0] * counted;
      rows += counted;
      if (queries && queryHidden) {
        const q: Tensor = queryHidden;
        try {
          const r = await rankFullCatalog(q, model.head.weight, queries.targets, queries.seen, { k: 10, pad: 0 });
          ranking ??= new RankingAccumulator(10, model.head.weight.shape[0] - 1);
          ranking.add(r.greater, r.equal, r.topK ? { ids: r.topK, length: r.k } : null);
        } finally {
          q.dispose();
        }
      }
    }
  } finally {
    model.train();
  }
  if (rows === 0) return { loss: NaN, accuracy: NaN, hr10: NaN };
  const m: EvalMetrics = { loss: lossSum / rows, accuracy: hits1 / rows, hr10: hits10 / rows };
  if (ranking) {
    const r = ranking.result();
    Object.assign(m, { ndcg10: r.ndcg, hr10Full: r.hr, mrr: r.mrr, coverage10: r.coverage ?? NaN });
  }
  return m;
}

/** The final test evaluation of data with an evaluation split (leave-one-out test targets); null for other data. */
export async function evaluateTest(rt: Runtime, model: Model, data: TrainingData, loss?: LossFn): Promise<EvalMetrics | null> {
  if (data.leaveOneOut) return evaluateLeaveOneOut(rt, model, data.leaveOneOut, 'test', loss);
  // Fresh samples of a synthetic source: the validation metrics, over the test batches.
  if (data.testBatches) return evaluate(rt, model, { ...data, validBatches: data.testBatches }, loss);
  return null;
}

/** Whether the data has a test split: interactions' held-out targets, or a synthetic source's fresh samples. */
export function hasTestSplit(data: TrainingData): boolean {
  return data.leaveOneOut !== undefined || data.testBatches !== undefined;
}

/**
 * The rows of a token batch to rank: every row with a target; its seen items are the non-padding inputs of its
 * window up to and including its own position (what the model has read).
 */
export function rankingQueries(inputs: Int32Array, seqLen: number, targets: Int32Array): { rows: Int32Array; targets: Int32Array; seen: { offsets: Int32Array; items: Int32Array } } {
  const rows: number[] = [];
  const items: number[] = [];
  const offsets: number[] = [0];
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] <= 0) continue; // ignored rows (−1); the padding id is never a target to rank
    rows.push(r);
    const start = r - (r % seqLen);
    for (let i = start; i <= r; i++) if (inputs[i] !== 0) items.push(inputs[i]);
    offsets.push(items.length);
  }
  const rowsA = Int32Array.from(rows);
  return { rows: rowsA, targets: Int32Array.from(rowsA, (r) => targets[r]), seen: { offsets: Int32Array.from(offsets), items: Int32Array.from(items) } };
}
