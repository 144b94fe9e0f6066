// Full-catalogue ranking on the GPU (kernels/rank_eval.wgsl) against the CPU reference (src/engine/cpu/ranking.ts):
// counts above / tied with the target and top-K lists on awkward sizes, seen items and padding excluded, ties,
// K > V, tables above one binding; the sampled-negatives protocol; the popularity baseline; the metrics' tie rule;
// rankNextItem on a SASRec model against a per-user CPU ranking.
//
// Values are quantised to multiples of 1/8 in [−2, 2], so every product and partial sum is exact in f32: GPU and
// CPU scores are bit-identical whatever the summation order, and ties are real ties on both sides.
import * as assert from 'node:assert/strict';
import { cpuRankFullCatalog, cpuRankSampled } from '../../src/engine/cpu/ranking';
import { rankingMetrics, userMetrics, type SeenCsr } from '../../src/engine/eval/metrics';
import { csrOf, itemPopularity, MAX_TOP_K, rankFullCatalog, rankNextItem, rankPopularity, rankSampled, sampleNegatives } from '../../src/engine/eval/ranking';
import type { Runtime } from '../../src/engine/gpu/runtime';
import { SASRec } from '../../src/engine/nn/sasrec';
import { fromArray, noGrad, tidy } from '../../src/engine/tensor/tensor';
import { materializeModel } from '../../src/engine/train/trainer';
import { assertClose, randn, rng, runtime } from './helpers';

function quantised(n: number, seed: number, levels = 8, clip = 2): Float32Array {
  return randn(n, seed).map((x) => Math.max(-clip, Math.min(clip, Math.round(x * levels) / levels)));
}

/** Random seen lists: some duplicates, sometimes the target and the padding id (both must be ignored). */
function randomSeen(U: number, V: number, targets: Int32Array, seed: number, maxLen: number): SeenCsr & { offsets: Int32Array; items: Int32Array } {
  const r = rng(seed);
  const offsets = new Int32Array(U + 1);
  const items: number[] = [];
  for (let u = 0; u < U; u++) {
    const n = Math.floor(r() * (maxLen + 1));
    for (let i = 0; i < n; i++) items.push(Math.floor(r() * V));
    if (r() < 0.5 && n > 0) items.push(items[items.length - 1]);
    if (r() < 0.5) items.push(targets[u]);
    if (r() < 0.3) items.push(0);
    offsets[u + 1] = items.length;
  }
  return { offsets, items: Int32Array.from(items) };
}

function randomTargets(U: number, V: number, seed: number, pad: number | null): Int32Array {
  const r = rng(seed);
  const lo = pad === 0 ? 1 : 0;
  return Int32Array.from({ length: U }, () => lo + Math.floor(r() * (V - lo)));
}

async function compare(rt: Runtime, c: { U: number; V: number; d: number; k: number; pad: number | null; seenLen: number; seed: number; levels?: number }): Promise<void> {
  const h = quantised(c.U * c.d, c.seed, c.levels);
  const e = quantised(c.V * c.d, c.seed + 1, c.levels);
  const targets = randomTargets(c.U, c.V, c.seed + 2, c.pad);
  const seen = c.seenLen > 0 ? randomSeen(c.U, c.V, targets, c.seed + 3, c.seenLen) : null;
  const hidden = fromArray(rt, h, [c.U, c.d]);
  const table = fromArray(rt, e, [c.V, c.d]);
  try {
    const gpu = await rankFullCatalog(hidden, table, targets, seen, { k: c.k, pad: c.pad });
    const cpu = cpuRankFullCatalog(h, e, c.d, targets, seen, { k: c.k, pad: c.pad });
    const what = `U ${c.U} V ${c.V} d ${c.d} k ${c.k} pad ${c.pad}`;
    assert.deepEqual([...gpu.greater], [...cpu.greater], `${what}: greater`);
    assert.deepEqual([...gpu.equal], [...cpu.equal], `${what}: equal`);
    if (c.k > 0) assert.deepEqual([...gpu.topK!], [...cpu.topK], `${what}: top-K`);
    else assert.equal(gpu.topK, null);
  } finally {
    hidden.dispose();
    table.dispose();
  }
}

describe('full-catalogue ranking (GPU vs CPU)', function () {
  this.timeout(240_000);

  const cases = [
    { U: 1, V: 1, d: 1, k: 10, pad: null, seenLen: 0, seed: 1 }, // one item, no padding: K > V
    { U: 7, V: 2, d: 3, k: 10, pad: 0, seenLen: 2, seed: 2 }, // one real item: K > V, seen = target or padding only
    { U: 7, V: 257, d: 64, k: 10, pad: 0, seenLen: 30, seed: 3 },
    { U: 7, V: 257, d: 1, k: 37, pad: 0, seenLen: 5, seed: 4, levels: 1 }, // d = 1, integer values: ties everywhere
    { U: 7, V: 5000, d: 3, k: MAX_TOP_K, pad: 0, seenLen: 200, seed: 5 },
    { U: 1, V: 5000, d: 64, k: 1, pad: 0, seenLen: 10, seed: 6 },
    { U: 7, V: 300, d: 3, k: 0, pad: 5, seenLen: 10, seed: 7 }, // no top-K lists; a padding id that is not 0
  ];
  for (const c of cases) {
    it(`users ${c.U}, V ${c.V}, d ${c.d}, K ${c.k}, pad ${c.pad}, seen ≤ ${c.seenLen}`, async () => {
      await compare(await runtime(), c);
    });
  }

  it('a table above one binding is ranked in row ranges with the same counts and top-K', async () => {
    const rt = await runtime();
    const prev = rt.setMaxBindingBytes(4096); // 5000 × 3 floats = 60 kB: 15+ ranges of unaligned rows
    try {
      await compare(rt, { U: 7, V: 5000, d: 3, k: 20, pad: 0, seenLen: 50, seed: 8 });
      await compare(rt, { U: 3, V: 700, d: 1, k: 10, pad: 0, seenLen: 5, seed: 9, levels: 1 });
    } finally {
      rt.setMaxBindingBytes(prev);
    }
  });

  it('a hand-checked case: seen and padding excluded, the target kept in the top-K, ties ordered by id', async () => {
    const rt = await runtime();
    // scores = table (hidden = 1): item 0 is padding, 4 is seen; target 2 scores 1; items 1 and 3 score 3.
    const hidden = fromArray(rt, Float32Array.from([1]), [1, 1]);
    const table = fromArray(rt, Float32Array.from([9, 3, 1, 3, 8, 1]), [6, 1]);
    try {
      const r = await rankFullCatalog(hidden, table, [2], { offsets: [0, 1], items: [4] }, { k: 4 });
      assert.deepEqual([...r.greater], [2]);
      assert.deepEqual([...r.equal], [1]); // item 5 ties with the target
      assert.deepEqual([...r.topK!], [1, 3, 2, 5]);
      const m = rankingMetrics(r.greater, r.equal, 10, 5, { ids: r.topK!, length: 4 });
      // position 2 or 3 with probability ½ each
      assertClose([m.hr, m.ndcg, m.mrr, m.meanRank, m.coverage!], [1, (1 / Math.log2(4) + 1 / Math.log2(5)) / 2, (1 / 3 + 1 / 4) / 2, 2.5, 4 / 5], { atol: 1e-12 });
      const m2 = rankingMetrics(r.greater, r.equal, 3, 5);
      assertClose([m2.hr, m2.ndcg], [0.5, 0.5 / Math.log2(4)], { atol: 1e-12 });
      assert.equal(m2.coverage, null);
    } finally {
      hidden.dispose();
      table.dispose();
    }
  });

  it('tie rule: all-equal scores give chance-level expectations, not 0 or 1', () => {
    // 100 candidates all tied with the target: position uniform in 0..99 → HR@10 = 0.1, MRR = H(100)/100.
    const m = userMetrics(0, 99, 10);
    let h = 0;
    for (let i = 1; i <= 100; i++) h += 1 / i;
    assertClose([m.hr, m.rr], [0.1, h / 100], { atol: 1e-12 });
    // A large tie group takes the asymptotic harmonic sum: compare with exact summation.
    const big = userMetrics(10, 50_000, 10);
    let hb = 0;
    for (let i = 11; i <= 50_011; i++) hb += 1 / i;
    assertClose([big.rr], [hb / 50_001], { rtol: 1e-9, atol: 0 });
  });

  it('refuses bad input with what and where: target out of range, padding target, K above the maximum, seen id out of range, shapes', async () => {
    const rt = await runtime();
    const hidden = fromArray(rt, new Float32Array(6), [2, 3]);
    const table = fromArray(rt, new Float32Array(30), [10, 3]);
    try {
      await assert.rejects(rankFullCatalog(hidden, table, [1, 10], null), /user 1 has target 10/);
      await assert.rejects(rankFullCatalog(hidden, table, [0, 1], null), /user 0 has target 0.*padding id 0/);
      await assert.rejects(rankFullCatalog(hidden, table, [1, 2], null, { k: 129 }), /0\.\.128/);
      await assert.rejects(rankFullCatalog(hidden, table, [1, 2], { offsets: [0, 1, 2], items: [3, 11] }), /user 1 has item 11/);
      await assert.rejects(rankFullCatalog(hidden, table, [1], null), /1 targets for hidden \[2, 3\]/);
      const wide = fromArray(rt, new Float32Array(8), [2, 4]);
      await assert.rejects(rankFullCatalog(wide, table, [1, 2], null), /\[2, 4\].*\[10, 3\]/);
      wide.dispose();
    } finally {
      hidden.dispose();
      table.dispose();
    }
  });
});

describe('sampled-negatives protocol and popularity baseline', function () {
  this.timeout(240_000);

  it('negatives: deterministic by seed, distinct, never seen / target / padding; GPU counts == CPU', async () => {
    const rt = await runtime();
    const U = 7;
    const V = 400;
    const d = 64;
    const targets = randomTargets(U, V, 21, 0);
    const seen = randomSeen(U, V, targets, 22, 150);
    const a = sampleNegatives(targets, seen, V, { seed: 5 });
    const b = sampleNegatives(targets, seen, V, { seed: 5 });
    const c = sampleNegatives(targets, seen, V, { seed: 6 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    for (let u = 0; u < U; u++) {
      const row = [...a.subarray(u * 100, (u + 1) * 100)];
      assert.equal(new Set(row).size, 100, `user ${u}: distinct negatives`);
      const banned = new Set([0, targets[u], ...seen.items.subarray(seen.offsets[u], seen.offsets[u + 1])]);
      assert.ok(row.every((j) => !banned.has(j) && j > 0 && j < V), `user ${u}: a banned negative`);
    }
    // A small pool (fewer than 2 × count unseen) takes the shuffle path: still every unseen item at most once.
    const small = sampleNegatives([1], { offsets: [0, 2], items: [2, 3] }, 8, { count: 4, seed: 1 });
    assert.equal(new Set(small).size, 4);
    assert.ok([...small].every((j) => j >= 4 && j < 8));
    assert.throws(() => sampleNegatives([1], { offsets: [0, 2], items: [2, 3] }, 8, { count: 5, seed: 1 }), /user 0 has 4 unseen items, fewer than the 5/);

    const h = quantised(U * d, 23);
    const e = quantised(V * d, 24);
    const hidden = fromArray(rt, h, [U, d]);
    const table = fromArray(rt, e, [V, d]);
    try {
      const gpu = await rankSampled(hidden, table, targets, a, 100);
      const cpu = cpuRankSampled(h, e, d, targets, a, 100);
      assert.deepEqual([...gpu.greater], [...cpu.greater]);
      assert.deepEqual([...gpu.equal], [...cpu.equal]);
      // Sampled ranks are never worse than full ranks (a subset of the same candidates).
      const full = await rankFullCatalog(hidden, table, targets, seen, { k: 0 });
      for (let u = 0; u < U; u++) assert.ok(gpu.greater[u] <= full.greater[u]);
    } finally {
      hidden.dispose();
      table.dispose();
    }
  });

  it('popularity baseline: counts from training, ranked by the same kernel; GPU == CPU, and a hand check', async () => {
    const rt = await runtime();
    const V = 257;
    const r = rng(31);
    const train = Array.from({ length: 40 }, () => Int32Array.from({ length: 1 + Math.floor(r() * 30) }, () => 1 + Math.floor(r() * r() * (V - 1))));
    const pop = itemPopularity(train, V);
    assert.equal(pop.reduce((s, x) => s + x, 0), train.reduce((s, x) => s + x.length, 0));
    const U = 7;
    const targets = randomTargets(U, V, 32, 0);
    const seen = randomSeen(U, V, targets, 33, 20);
    const gpu = await rankPopularity(rt, pop, targets, seen, { k: 10 });
    const cpu = cpuRankFullCatalog(new Float32Array(U).fill(1), pop, 1, targets, seen, { k: 10 });
    assert.deepEqual([...gpu.greater], [...cpu.greater]);
    assert.deepEqual([...gpu.equal], [...cpu.equal]);
    assert.deepEqual([...gpu.topK!], [...cpu.topK]);
    // Hand check: counts [pad, 5, 1, 5, 0]: the target 2 (count 1) has items 1 and 3 above it, 4 below.
    const hc = await rankPopularity(rt, Float32Array.from([0, 5, 1, 5, 0]), [2], null, { k: 2 });
    assert.deepEqual([hc.greater[0], hc.equal[0], ...hc.topK!], [2, 0, 1, 3]);
  });
});

describe('rankNextItem on a SASRec model', function () {
  this.timeout(240_000);

  it('the last real position of each right-padded history, in user batches, equals a per-user CPU ranking', async () => {
    const rt = await runtime();
    const spec = { type: 'sasrec', items: 30, hidden: 8, blocks: 1, heads: 2, maxLen: 5, dropout: 0.2, attentionDropout: 0 } as const;
    const { model, store } = materializeModel(rt, spec, 4);
    try {
      const r = rng(41);
      const U = 7;
      const histories = Array.from({ length: U }, (_, u) => Int32Array.from({ length: [1, 3, 5, 6, 9, 2, 4][u] }, () => 1 + Math.floor(r() * 30)));
      const targets = Int32Array.from({ length: U }, () => 1 + Math.floor(r() * 30));
      const offsets = new Int32Array(U + 1);
      histories.forEach((h, u) => (offsets[u + 1] = offsets[u] + h.length));
      const seen = { offsets, items: Int32Array.from(histories.flatMap((h) => [...h])) };
      assert.deepEqual(csrOf(histories), seen);
      const m = await rankNextItem(rt, model, { histories, targets, seen }, { seqLen: 5, batchSize: 3, k: 10 });
      assert.equal(model.training, true, 'the model is back in training mode');

      // CPU: each user alone (unpadded, last maxLen items), its last hidden row ranked against E on the CPU.
      model.eval();
      const E = await store.params.read('item.weight');
      const hs = new Float32Array(U * 8);
      for (let u = 0; u < U; u++) {
        const w = histories[u].subarray(Math.max(0, histories[u].length - 5));
        const out = noGrad(() => tidy(() => model.hidden(fromArray(rt, w, [1, w.length], 'i32'))));
        hs.set((await out.toFloat32()).subarray((w.length - 1) * 8), u * 8);
        out.dispose();
      }
      model.train();
      // Scores are not exact here (learned floats): rank on the CPU from the GPU's own hidden states and compare
      // the metrics, which near-ties could only move by a position.
      const cpu = cpuRankFullCatalog(hs, E, 8, targets, seen, { k: 10 });
      const want = rankingMetrics(cpu.greater, cpu.equal, 10, 30, { ids: cpu.topK, length: 10 });
      assert.equal(m.users, U);
      assertClose([m.meanRank], [want.meanRank], { atol: 0.3, what: 'mean rank' });
      assertClose([m.hr, m.ndcg, m.mrr, m.coverage!], [want.hr, want.ndcg, want.mrr, want.coverage!], { atol: 0.15, what: 'hr, ndcg, mrr, coverage' });
      assert.ok(model instanceof SASRec);
    } finally {
      store.destroy();
    }
  });
});
