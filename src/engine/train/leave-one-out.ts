// Leave-one-out evaluation during training (algorithms.md §5): when the data set carries a SequenceSplit (the
// `interactions` source), each user's validation target is ranked given the user's own history (its last maxLen
// items) against the whole catalogue with the user's seen items removed — not the windows of held-out sequences
// that evaluate() ranks for other sources. The same for the test target once training ends (metrics `test_*`).
//
// Ranking metrics (ndcg10, hr10Full, mrr, coverage10) come from rankNextItem (src/engine/eval/ranking.ts), the
// full-catalogue GPU kernel. A second, cheap pass over the same rows (one hidden state per user) gives the run's
// loss on those rows and the old accuracy / hr10 columns (the target among the top-1 / top-10 logits, nothing
// removed), so the statistics panel's existing charts keep their meaning on the new rows.
import type { Runtime } from '../gpu/runtime';
import { crossEntropyLoss } from '../loss/cross-entropy';
import type { LossFn } from '../loss/loss';
import type { Model } from '../nn/models';
import { embedding } from '../ops/embedding';
import { fromArray, noGrad, tidy } from '../tensor/tensor';
import { rankNextItem, type NextItemQueries } from '../eval/ranking';
import type { SequenceSplit } from '../data/interactions/splits';

/** The same fields as evaluate()'s EvalMetrics (kept here so that evaluate.ts can import this file without a circle). */
export interface LeaveOneOutMetrics {
  loss: number;
  accuracy: number;
  hr10: number;
  ndcg10: number;
  hr10Full: number;
  mrr: number;
  coverage10: number;
}

export interface LeaveOneOutData {
  /** The model's window: only each history's last `seqLen` items are read. */
  seqLen: number;
  /** Users per forward pass. */
  batchSize: number;
  valid: NextItemQueries;
  test: NextItemQueries;
}

/**
 * The queries of one evaluation target of a split: every user with a target and a non-empty input; the seen
 * items are the split's (the distinct items of the input), restricted to those users.
 */
export function splitQueries(split: SequenceSplit, which: 'valid' | 'test'): NextItemQueries {
  const targets = which === 'valid' ? split.valid : split.test;
  const inputs = which === 'valid' ? split.validInput : split.testInput;
  const seen = which === 'valid' ? split.seenValid : split.seen;
  const histories: Int32Array[] = [];
  const tg: number[] = [];
  const offsets: number[] = [0];
  const items: number[] = [];
  for (let u = 0; u < split.numUsers; u++) {
    if (targets[u] === 0 || inputs[u].length === 0) continue; // no target, or nothing to read (rankNextItem refuses it)
    histories.push(inputs[u]);
    tg.push(targets[u]);
    for (let j = seen.offsets[u]; j < seen.offsets[u + 1]; j++) items.push(seen.items[j]);
    offsets.push(items.length);
  }
  return { histories, targets: Int32Array.from(tg), seen: { offsets: Int32Array.from(offsets), items: Int32Array.from(items) } };
}

export function leaveOneOutData(split: SequenceSplit, seqLen: number, batchSize: number): LeaveOneOutData {
  return { seqLen, batchSize, valid: splitQueries(split, 'valid'), test: splitQueries(split, 'test') };
}

/**
 * The inputs of a batch of users as the model reads them: each history's last `seqLen` items at positions
 * 0..n-1 and padding after them (SASRec right-pads, src/engine/nn/sasrec.ts), and the row of each last item.
 */
export function lastWindows(histories: readonly Int32Array[], seqLen: number): { inputs: Int32Array; last: Int32Array } {
  const n = histories.length;
  const inputs = new Int32Array(n * seqLen);
  const last = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const h = histories[i];
    if (h.length === 0) throw new RangeError(`leave-one-out: user ${i} of the batch has an empty history`);
    const w = h.subarray(Math.max(0, h.length - seqLen));
    inputs.set(w, i * seqLen);
    last[i] = i * seqLen + w.length - 1;
  }
  return { inputs, last };
}

/** Loss, accuracy and hr10 (top-1 / top-10 of the logits, nothing removed) of each user's target at its last position. */
async function lastPositionMetrics(rt: Runtime, model: Model, q: NextItemQueries, seqLen: number, batchSize: number, loss: LossFn): Promise<{ loss: number; accuracy: number; hr10: number }> {
  const V = model.head.weight.shape[0];
  // The [users, V] logits are read back for the top-k columns: keep them within half a binding.
  const B = Math.max(1, Math.min(batchSize, Math.floor(rt.maxBindingBytes / 2 / (4 * V))));
  const U = q.histories.length;
  let lossSum = 0;
  let hits1 = 0;
  let hits10 = 0;
  for (let u0 = 0; u0 < U; u0 += B) {
    const n = Math.min(B, U - u0);
    const { inputs, last } = lastWindows(q.histories.slice(u0, u0 + n), seqLen);
    const targets = Int32Array.from({ length: n }, (_, i) => q.targets[u0 + i]);
    const reads = noGrad(() =>
      tidy(() => {
        const h = embedding(model.hidden(fromArray(rt, inputs, [n, seqLen], 'i32')), fromArray(rt, last, [n], 'i32'));
        const out = loss(h, model.head, { targets: fromArray(rt, targets, [n], 'i32') }, { training: false });
        const logits = out.logits ?? model.head.logits(h);
        return { loss: out.loss.toArray(), logits: logits.toArray() };
      }),
    );
    const [l, z] = await Promise.all([reads.loss, reads.logits]);
    lossSum += l[0] * n;
    for (let i = 0; i < n; i++) {
      const t = z[i * V + targets[i]];
      let rank = 0;
      for (let j = 0; j < V; j++) if (z[i * V + j] > t) rank++;
      if (rank === 0) hits1++;
      if (rank < 10) hits10++;
    }
  }
  return U ? { loss: lossSum / U, accuracy: hits1 / U, hr10: hits10 / U } : { loss: NaN, accuracy: NaN, hr10: NaN };
}

/** The leave-one-out metrics of one target (validation during training, test at the end). */
export async function evaluateLeaveOneOut(rt: Runtime, model: Model, loo: LeaveOneOutData, which: 'valid' | 'test', loss?: LossFn): Promise<LeaveOneOutMetrics> {
  const q = which === 'valid' ? loo.valid : loo.test;
  if (q.histories.length === 0) return { loss: NaN, accuracy: NaN, hr10: NaN, ndcg10: NaN, hr10Full: NaN, mrr: NaN, coverage10: NaN };
  const wasTraining = model.training;
  model.eval();
  try {
    const r = await rankNextItem(rt, model, q, { seqLen: loo.seqLen, batchSize: loo.batchSize, k: 10, pad: 0 });
    const m = await lastPositionMetrics(rt, model, q, loo.seqLen, loo.batchSize, loss ?? crossEntropyLoss);
    return { ...m, ndcg10: r.ndcg, hr10Full: r.hr, mrr: r.mrr, coverage10: r.coverage ?? NaN };
  } finally {
    model.train(wasTraining);
  }
}
