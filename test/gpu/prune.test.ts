// Pruning on the GPU against the CPU references (src/engine/cpu/prune.ts): every score and mask on awkward
// shapes, exact N:M patterns, row vs global thresholds, SparseGPT's reconstruction, and the sweep and apply on a
// tiny trained model (density 1 equals the dense model exactly; task vectors reset pruned entries to the base).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  cpuApplyMask,
  cpuColSqSum,
  cpuCurvatureScore,
  cpuGram,
  cpuMagnitudeScore,
  cpuNmMask,
  cpuRandomScore,
  cpuSparseGpt,
  cpuThresholdMask,
  cpuWandaScore,
  keepCount,
  reconstructionError,
  sparseGptPrepare,
} from '../../src/engine/cpu/prune';
import { accumulateColSqSum, maskNm, maskSelect, maskThreshold, scoreCurvature, scoreMagnitude, scoreRandom, scoreWanda } from '../../src/engine/prune/kernels';
import { fromArray, type Tensor } from '../../src/engine/tensor/tensor';
import { zeros } from '../../src/engine/ops/basic';
import { parseConfig } from '../../src/files/config/load';
import { train } from '../../src/engine/train/trainer';
import { resolvePruneSource } from '../../src/engine/prune/source';
import { runSweep } from '../../src/engine/prune/sweep';
import { pruneToCheckpoint } from '../../src/engine/prune/apply';
import { pruneScoreConfig, type PruneOptions } from '../../src/files/prune/options';
import { readSweepFile } from '../../src/files/prune/sweep-file';
import { readSafetensorsHeader, readTensor, writeSafetensors } from '../../src/files/safetensors';
import { RunFolder } from '../../src/files/run-record';
import { buildModel } from '../../src/engine/nn/registry';
import { PruneModel } from '../../src/engine/prune/session';
import { calibrate, forwardStages } from '../../src/engine/prune/calibrate';
import { SparseGpt } from '../../src/engine/prune/sparsegpt';
import { rankOrder } from '../../src/engine/prune/masks';
import { kthLargest, topKMask } from '../../src/engine/ops/select';
import { assertClose, randn, runtime } from './helpers';

const SHAPES: [number, number][] = [
  [1, 1],
  [7, 13],
  [5, 64],
  [33, 97],
  [3, 300],
];

const arr = async (t: Tensor) => (await t.toArray()) as Float32Array;

describe('prune: scores and masks vs CPU', function () {
  this.timeout(120_000);

  it('magnitude, with and without a base (task vector), exactly', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const w = randn(r * c, r * 31 + c);
      const b = randn(r * c, r * 7 + c + 1, 0.5);
      const wt = fromArray(rt, w, [r, c]);
      const bt = fromArray(rt, b, [r, c]);
      assert.deepEqual(await arr(scoreMagnitude(wt)), cpuMagnitudeScore(w), `[${r}, ${c}]`);
      assert.deepEqual(await arr(scoreMagnitude(wt, bt)), cpuMagnitudeScore(w, b), `[${r}, ${c}] τ`);
    }
  });

  it('random: bit-identical to the CPU hash, uniform, independent per salt', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const like = zeros(rt, [r, c]);
      assert.deepEqual(await arr(scoreRandom(like, 5, 3)), cpuRandomScore(r * c, 5, 3), `[${r}, ${c}]`);
    }
    const big = cpuRandomScore(20000, 1, 0);
    const mean = big.reduce((a, b) => a + b, 0) / big.length;
    assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
    assert.ok(big.every((x) => x >= 0 && x < 1));
    const other = cpuRandomScore(100, 1, 1);
    assert.notDeepEqual(Array.from(other), Array.from(big.subarray(0, 100)));
  });

  it('curvature: d²·R_i·C_j/ΣR from row/column sums, never a dense F̂', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const w = randn(r * c, r + c * 3);
      const b = randn(r * c, r + c * 5, 0.3);
      const vr = randn(r, r + 11).map(Math.abs);
      const vc = randn(c, c + 13).map(Math.abs);
      let sumR = 0;
      for (const x of vr) sumR += x;
      const [wt, bt, rT, cT] = [fromArray(rt, w, [r, c]), fromArray(rt, b, [r, c]), fromArray(rt, vr, [r]), fromArray(rt, vc, [c])];
      assertClose(await arr(scoreCurvature(wt, rT, cT, undefined, sumR)), cpuCurvatureScore(w, vr, vc, c), { rtol: 1e-5, atol: 1e-9, what: `[${r}, ${c}]` });
      assertClose(await arr(scoreCurvature(wt, rT, cT, bt, sumR)), cpuCurvatureScore(w, vr, vc, c, b), { rtol: 1e-5, atol: 1e-9, what: `[${r}, ${c}] τ` });
    }
  });

  it('wanda: input norms of a calibration batch, |w|·‖X_j‖', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const n = 17;
      const x = randn(n * c, c + 99);
      const x2 = randn(3 * c, c + 98);
      const acc = zeros(rt, [c]);
      accumulateColSqSum(fromArray(rt, x, [n, c]), acc);
      accumulateColSqSum(fromArray(rt, x2, [3, c]), acc); // accumulates over batches
      const cpuSq = cpuColSqSum([...x, ...x2], n + 3, c);
      assertClose(await arr(acc), cpuSq, { rtol: 1e-5, what: `col sq [${c}]` });
      const w = randn(r * c, r * 3 + c);
      assertClose(await arr(scoreWanda(fromArray(rt, w, [r, c]), acc)), cpuWandaScore(w, cpuSq, c), { rtol: 1e-5, what: `wanda [${r}, ${c}]` });
    }
  });

  it('threshold masks per row and per tensor, pruned entries 0 or the base', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const w = randn(r * c, r + c + 1);
      const b = randn(r * c, r + c + 2);
      const s = cpuMagnitudeScore(w);
      const [wt, bt, st] = [fromArray(rt, w, [r, c]), fromArray(rt, b, [r, c]), fromArray(rt, s, [r, c])];
      const rowThr = new Float32Array(r).map((_, i) => s[i * c + (i % c)]);
      const out = zeros(rt, [r, c]);
      maskThreshold(out, wt, st, fromArray(rt, rowThr, [r]));
      assert.deepEqual(await arr(out), cpuApplyMask(w, cpuThresholdMask(s, c, rowThr)), `row [${r}, ${c}]`);
      const one = Float32Array.of(s[Math.floor(s.length / 2)]);
      maskThreshold(out, wt, st, fromArray(rt, one, [1]), bt);
      assert.deepEqual(await arr(out), cpuApplyMask(w, cpuThresholdMask(s, c, one), b), `tensor τ [${r}, ${c}]`);
    }
  });

  it('mask_select applies a u32 keep-mask at an offset (one mask over packed scores), pruned entries 0 or the base', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const w = randn(r * c, r * 5 + c);
      const b = randn(r * c, r * 5 + c + 1);
      const off = 37;
      const maskAll = new Uint32Array(off + r * c + 3).map((_, i) => (i * 2654435761) % 7 < 3 ? 1 : 0);
      const mask = new Uint8Array(maskAll.subarray(off, off + r * c));
      const out = zeros(rt, [r, c]);
      const wt = fromArray(rt, w, [r, c]);
      const mt = fromArray(rt, maskAll, [maskAll.length], 'u32');
      maskSelect(out, wt, mt, off);
      assert.deepEqual(await arr(out), cpuApplyMask(w, mask), `[${r}, ${c}]`);
      maskSelect(out, wt, mt, off, fromArray(rt, b, [r, c]));
      assert.deepEqual(await arr(out), cpuApplyMask(w, mask, b), `[${r}, ${c}] τ`);
    }
  });

  it('tensor thresholds from the host rank order keep what the GPU select keeps: exactly k, ties to the lower index', async () => {
    const rt = await runtime();
    for (const [r, c] of SHAPES) {
      const n = r * c;
      // Many ties, both zeros (−0 orders below +0 in the select's keys) and negatives.
      const s = new Float32Array(n).map((_, i) => (i % 3 === 0 ? (i % 2 ? -0 : 0) : Math.round(randn(1, i + n)[0] * 2) / 2));
      const st = fromArray(rt, s, [r, c]);
      const { hi, order } = rankOrder(s);
      for (const k of [...new Set([1, Math.ceil(n / 3), Math.max(1, n - 1), n])]) {
        const idx = order[k - 1];
        const host = { key: fromArray(rt, Uint32Array.of(hi[idx], ~idx >>> 0, 0, 0), [4], 'u32'), k, n, abs: false };
        const got = (await topKMask(st, host).toArray()) as Uint32Array;
        const want = (await topKMask(st, kthLargest(st, k)).toArray()) as Uint32Array;
        assert.deepEqual(got, want, `[${r}, ${c}] k=${k}`);
        assert.equal(got.reduce((a, b) => a + b, 0), k);
      }
    }
  });

  it('N:M keeps exactly N of every M (2:4, 4:8, ties included), as the CPU does', async () => {
    const rt = await runtime();
    for (const [r, c, n, m] of [
      [1, 4, 2, 4],
      [7, 8, 2, 4],
      [5, 64, 4, 8],
      [3, 296, 2, 4],
    ] as const) {
      const w = randn(r * c, r * c);
      // Scores with many ties (rounded), so the rule for ties is exercised.
      const s = new Float32Array(r * c).map((_, i) => Math.round(Math.abs(w[i]) * 2) / 2);
      const out = zeros(rt, [r, c]);
      const wt = fromArray(rt, w, [r, c]);
      maskNm(out, wt, fromArray(rt, s, [r, c]), n, m);
      const got = await arr(out);
      const mask = cpuNmMask(s, c, n, m);
      assert.deepEqual(got, cpuApplyMask(w, mask), `${n}:${m} [${r}, ${c}]`);
      for (let g = 0; g < r * c; g += m) {
        let kept = 0;
        for (let k = g; k < g + m; k++) kept += got[k] !== 0 ? 1 : 0;
        assert.equal(kept, n, `group at ${g} of [${r}, ${c}] keeps ${kept}`);
      }
    }
    assert.throws(() => maskNm(zeros(rt, [2, 6]), zeros(rt, [2, 6]), zeros(rt, [2, 6]), 2, 4), /not a multiple of 4/);
  });
});

describe('prune: SparseGPT (CPU float64 solve)', () => {
  it('reconstructs the layer output better than magnitude at the same density (unstructured and 2:4)', () => {
    const rows = 12;
    const cols = 24;
    const n = 200;
    // Correlated inputs with unequal scales: where OBS's compensation matters.
    const z = randn(n * cols, 1);
    const x = new Float32Array(n * cols);
    for (let r = 0; r < n; r++) for (let j = 0; j < cols; j++) x[r * cols + j] = (z[r * cols + j] + 0.8 * z[r * cols + ((j + 1) % cols)]) * (1 + (j % 5));
    const w = randn(rows * cols, 2);
    const h = cpuGram(x, n, cols);
    const prep = sparseGptPrepare(h, cols, 0.01);
    for (const [density, pattern] of [
      [0.5, null],
      [0.3, null],
      [0.5, { n: 2, m: 4 }],
    ] as const) {
      const sg = cpuSparseGpt(w, rows, prep, { density, blockSize: 8, pattern });
      const s = cpuMagnitudeScore(w);
      let magMask: Uint8Array;
      if (pattern) magMask = cpuNmMask(s, cols, pattern.n, pattern.m);
      else {
        const thr = new Float32Array(rows).map((_, r) => Float32Array.from(s.subarray(r * cols, (r + 1) * cols)).sort()[cols - keepCount(density, cols)]);
        magMask = cpuThresholdMask(s, cols, thr);
      }
      const mag = cpuApplyMask(w, magMask);
      const kept = sg.mask.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(kept / (rows * cols) - density) < 0.05, `kept ${kept}`);
      for (let k = 0; k < rows * cols; k++) if (!sg.mask[k]) assert.equal(sg.weight[k], 0);
      const eSg = reconstructionError(w, sg.weight, h, rows, cols);
      const eMag = reconstructionError(w, mag, h, rows, cols);
      assert.ok(eSg < 0.8 * eMag, `density ${density} ${pattern ? '2:4' : ''}: SparseGPT ${eSg} vs magnitude ${eMag}`);
    }
  });
});

const MLP = (steps: number) => `
name: prune-mlp
seed: 3
model: { type: mlp, inputs: 16, hidden: [32, 32], classes: 8, activation: relu }
data: { type: synthetic-classification, samples: 900, noise: 0.6, validFraction: 0.2 }
train:
  steps: ${steps}
  batchSize: 64
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: 30
  statsEvery: 10
  logEvery: 10
`;

describe('prune: sweep and apply on a tiny trained model', function () {
  this.timeout(300_000);
  let dir = '';
  let runDir = '';
  const base: PruneOptions = { targets: ['layers.*.weight'], granularity: 'tensor', pattern: null };
  before(async () => {
    const rt = await runtime();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-prune-'));
    runDir = (await train({ rt, config: parseConfig(MLP(60), 'prune-mlp.basin.yaml'), outputDir: dir })).runDir;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('density 1 equals the dense metrics exactly; metrics worsen as density falls; the file fills point by point', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    const seen: number[] = [];
    const onDiskCounts: Promise<number>[] = [];
    const { file, sweep } = await runSweep(rt, src, {
      ...base,
      granularity: 'row',
      scores: ['magnitude', 'random', 'curvature', 'wanda', 'sparsegpt'].map((s) => pruneScoreConfig(s, s === 'wanda' || s === 'sparsegpt' ? { batches: 3 } : {})),
      densities: [1, 0.5, 0.1],
      onPoint: (_p, s) => {
        seen.push(s.points.length);
        // What a reader polling the file sees meanwhile (the file may lag the sweep by the write in flight).
        // (Its atomic writes' temporary files are dot-files beside it: not the sweep file.)
        const name = fs.readdirSync(path.join(runDir, 'prune')).find((f) => !f.startsWith('.'))!;
        onDiskCounts.push(readSweepFile(path.join(runDir, 'prune', name)).then((f) => f.points.length));
      },
    });
    assert.deepEqual(seen, Array.from({ length: 15 }, (_, i) => i + 1));
    const disk = await Promise.all(onDiskCounts);
    assert.ok(disk.some((n) => n > 0 && n < 15), `a reader saw points appear: ${disk}`);
    for (let i = 1; i < disk.length; i++) assert.ok(disk[i] >= disk[i - 1] - 1, `counts on disk ${disk}`);
    const onDisk = await readSweepFile(file);
    assert.equal(onDisk.status, 'completed');
    assert.equal(onDisk.points.length, 15);
    assert.equal(path.dirname(file), path.join(runDir, 'prune'));
    const dense = sweep.dense!;
    assert.ok(dense.accuracy > 0.5, `the model learned: ${dense.accuracy}`);
    for (const score of ['magnitude', 'random', 'curvature', 'wanda', 'sparsegpt']) {
      const pts = sweep.points.filter((p) => p.score === score);
      const at = (d: number) => pts.find((p) => p.density === d)!;
      assert.deepEqual(at(1).metrics, dense, `${score} at density 1`);
      assert.equal(at(1).kept, 1);
      assert.ok(Math.abs(at(0.5).kept - 0.5) < 0.02, `${score} keeps ${at(0.5).kept}`);
      assert.ok(at(0.1).metrics.loss > at(1).metrics.loss, `${score}: loss at 10% ${at(0.1).metrics.loss} vs dense ${at(1).metrics.loss}`);
      assert.ok(at(0.1).metrics.loss >= at(0.5).metrics.loss - 0.05, `${score}: roughly monotone`);
      for (const l of at(0.5).layers) assert.ok(Math.abs(l - 0.5) < 0.05, `${score} per-row keeps ${l} per layer`);
    }
    const loss = (s: string, d: number) => sweep.points.find((p) => p.score === s && p.density === d)!.metrics.loss;
    assert.ok(loss('magnitude', 0.1) < loss('random', 0.1), `magnitude ${loss('magnitude', 0.1)} beats random ${loss('random', 0.1)}`);
  });

  it('global thresholds give tensors different densities; per-tensor ones the same', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    const g = await runSweep(rt, src, { ...base, granularity: 'global', scores: [pruneScoreConfig('magnitude')], densities: [0.3] });
    const t = await runSweep(rt, src, { ...base, granularity: 'tensor', scores: [pruneScoreConfig('magnitude')], densities: [0.3] });
    const gp = g.sweep.points[0];
    const tp = t.sweep.points[0];
    const total = g.sweep.targets.reduce((s, x) => s + x.size, 0);
    assert.equal(Math.round(gp.kept * total), keepCount(0.3, total));
    assert.ok(Math.max(...gp.layers) - Math.min(...gp.layers) > 0.02, `global: ${gp.layers}`);
    for (const [i, l] of tp.layers.entries()) assert.equal(Math.round(l * t.sweep.targets[i].size), keepCount(0.3, t.sweep.targets[i].size));
  });

  it('task vector: pruned entries are reset to the base exactly, kept ones are the fine-tuned values', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    const baseFile = path.join(runDir, 'checkpoints/step-30.safetensors');
    const out = path.join(dir, 'tv');
    const { weights, result } = await pruneToCheckpoint(rt, src, { ...base, base: baseFile, score: pruneScoreConfig('curvature'), density: 0.2, out });
    const h = await readSafetensorsHeader(weights);
    for (const name of Object.keys(h.tensors)) {
      const got = (await readTensor(weights, name, h)).data as Float32Array;
      const ft = (await readTensor(src.checkpoint, name)).data as Float32Array;
      if (!result.layers.some((l) => l.name === name)) {
        assert.deepEqual(got, ft, `${name} is not a target: unchanged`);
        continue;
      }
      const b = (await readTensor(baseFile, name)).data as Float32Array;
      let keptFt = 0;
      for (let k = 0; k < got.length; k++) {
        assert.ok(got[k] === ft[k] || got[k] === b[k], `${name}[${k}] is neither`);
        if (got[k] === ft[k] && ft[k] !== b[k]) keptFt++;
      }
      assert.ok(Math.abs(keptFt / got.length - 0.2) < 0.03, `${name}: ${keptFt / got.length} of τ kept`);
    }
    assert.ok(fs.existsSync(path.join(out, 'prune-report.json')));
    // The same base as a sharded model folder (as basin merge writes a large one): the same weights, bit for bit.
    const shardedBase = path.join(dir, 'sharded-base');
    fs.mkdirSync(shardedBase, { recursive: true });
    const bh = await readSafetensorsHeader(baseFile);
    const names = Object.keys(bh.tensors);
    const shards = [names.filter((_, i) => i % 2 === 0), names.filter((_, i) => i % 2 === 1)];
    const weightMap: Record<string, string> = {};
    for (const [k, part] of shards.entries()) {
      const file = `model-0000${k + 1}-of-00002.safetensors`;
      const tensors = [];
      for (const n of part) {
        tensors.push({ name: n, dtype: 'F32' as const, shape: bh.tensors[n].shape, data: (await readTensor(baseFile, n, bh)).data as Float32Array });
        weightMap[n] = file;
      }
      await writeSafetensors(path.join(shardedBase, file), tensors);
    }
    fs.writeFileSync(path.join(shardedBase, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const out2 = path.join(dir, 'tv-sharded-base');
    const again = await pruneToCheckpoint(rt, src, { ...base, base: shardedBase, score: pruneScoreConfig('curvature'), density: 0.2, out: out2 });
    for (const name of names) {
      assert.deepEqual((await readTensor(again.weights, name)).data, (await readTensor(weights, name)).data, `${name}: the same with the base in shards`);
    }
  });

  it('the kept fractions a point reports are those of the weights it writes (row and global, ties counted)', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    for (const granularity of ['row', 'global'] as const) {
      const out = path.join(dir, `kept-${granularity}`);
      const { weights, result } = await pruneToCheckpoint(rt, src, { ...base, granularity, score: pruneScoreConfig('magnitude'), density: 0.37, out, evaluate: false });
      let all = 0;
      for (const l of result.layers) {
        const w = (await readTensor(weights, l.name)).data as Float32Array;
        const nonzero = w.reduce((a, x) => a + (x !== 0 ? 1 : 0), 0);
        assert.equal(Math.round(l.kept * w.length), nonzero, `${granularity} ${l.name}`);
        all += nonzero;
      }
      const total = result.layers.reduce((a, l) => a + l.shape[0] * l.shape[1], 0);
      assert.ok(Math.abs(result.kept - all / total) < 1e-12, `${granularity}: ${result.kept} vs ${all / total}`);
    }
  });

  it('apply 2:4 writes a checkpoint with exactly two of every four inputs', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    const out = path.join(dir, 'nm');
    const { weights, result } = await pruneToCheckpoint(rt, src, { ...base, pattern: { n: 2, m: 4 }, score: pruneScoreConfig('wanda', { batches: 2 }), density: 1, out });
    assert.equal(result.kept, 0.5);
    for (const l of result.layers) {
      const w = (await readTensor(weights, l.name)).data as Float32Array;
      for (let g = 0; g < w.length; g += 4) assert.equal([0, 1, 2, 3].filter((k) => w[g + k] !== 0).length, 2, `${l.name} group ${g}`);
    }
    assert.ok(result.metrics!.pruned.loss >= result.metrics!.dense.loss - 1e-6);
  });
});

describe('prune: calibration', function () {
  this.timeout(120_000);

  it('a transformer’s calibration pass: XᵀX’s diagonal equals the input norms, for every targeted Linear', async () => {
    const rt = await runtime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-prune-cal-'));
    try {
      const config = parseConfig(
        'name: cal\nmodel: { type: transformer, vocab: 20, dModel: 12, layers: 1, heads: 2, seqLen: 5 }\ndata: { type: synthetic-sequences, sequences: 120, length: 6 }\ntrain: { steps: 3, batchSize: 4 }\n',
        'cal.basin.yaml',
      );
      const run = await RunFolder.create(dir, 'cal', { config });
      fs.mkdirSync(run.checkpointsDir, { recursive: true });
      const decls = buildModel(config.model, 1).declarations();
      await writeSafetensors(path.join(run.dir, run.checkpointPath(1)), decls.map((d) => ({ name: d.name, dtype: 'F32' as const, shape: d.shape, data: d.init })));
      await run.addCheckpoint({ step: 1, path: run.checkpointPath(1), time: Date.now() });
      const pm = await PruneModel.open(rt, await resolvePruneSource(run.dir), { targets: ['blocks.*.weight', 'head.weight'], granularity: 'tensor', pattern: null });
      try {
        assert.deepEqual(pm.targets.map((t) => t.name), ['blocks.0.attn.q.weight', 'blocks.0.attn.k.weight', 'blocks.0.attn.v.weight', 'blocks.0.attn.o.weight', 'blocks.0.mlp.fc1.weight', 'blocks.0.mlp.fc2.weight', 'head.weight']);
        const cal = await calibrate(pm, { batches: 2, colSq: true, gram: true });
        for (const [i, t] of pm.targets.entries()) {
          assert.equal(cal.rows[i], 2 * 4 * 5, `${t.name} saw 2 batches of 4×5 rows`);
          const sq = await arr(cal.colSq[i]!);
          const g = await arr(cal.gram[i]!);
          assertClose(Array.from({ length: t.cols }, (_, j) => g[j * t.cols + j]), sq, { rtol: 1e-4, atol: 1e-5, what: t.name });
          assert.ok(sq.every((x) => x > 0), `${t.name}: inputs seen`);
        }
        // Sequential SparseGPT's stages: q/k/v read one input; a stage observed alone, its forward ended early,
        // gets the same XᵀX as in the full pass.
        assert.deepEqual(await forwardStages(pm), [[0, 1, 2], [3], [4], [5], [6]]);
        const part = await calibrate(pm, { batches: 2, gram: true, only: [4], stopEarly: true });
        assert.ok(part.gram[0] === null && part.gram[5] === null, 'only the stage is observed');
        assertClose(await arr(part.gram[4]!), await arr(cal.gram[4]!), { rtol: 1e-5, atol: 1e-6, what: 'fc1 observed alone' });
        part.dispose();
        cal.dispose();
        assert.ok(pm.targets.every((t) => t.layer!.observer === null), 'observers removed');
      } finally {
        pm.destroy();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// SparseGPT's sequential mode on a 2-layer MLP (16 → 24 → 8): the second layer's Hessian must come from the
// inputs the PRUNED first layer produces. Checked against a CPU recomputation (features of the calibration
// batches through the pruned layer 0, ReLU, XᵀX), and against the dense Hessian it must differ from.
const MLP2 = `
name: prune-mlp2
seed: 5
model: { type: mlp, inputs: 16, hidden: [24], classes: 8, activation: relu }
data: { type: synthetic-classification, samples: 600, noise: 0.6, validFraction: 0.25 }
train:
  steps: 80
  batchSize: 32
  optimizer: { type: adamw, lr: 0.01 }
  schedule: { type: constant, warmup: 0 }
  evalEvery: 0
  checkpointEvery: 80
  statsEvery: 0
  logEvery: 20
`;

describe('prune: SparseGPT sequential calibration (2-layer MLP)', function () {
  this.timeout(300_000);
  let dir = '';
  let runDir = '';
  const opts: PruneOptions = { targets: ['layers.*.weight'], granularity: 'tensor', pattern: null };
  before(async () => {
    const rt = await runtime();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-prune-seq-'));
    runDir = (await train({ rt, config: parseConfig(MLP2, 'prune-mlp2.basin.yaml'), outputDir: dir })).runDir;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('layer 1’s H is XᵀX of the pruned layer 0’s outputs (CPU recomputation), not the dense one', async () => {
    const rt = await runtime();
    const pm = await PruneModel.open(rt, await resolvePruneSource(runDir), opts);
    try {
      assert.deepEqual(await forwardStages(pm), [[0], [1]]);
      const batches = 3;
      const cfg = pruneScoreConfig('sparsegpt', { batches, blockSize: 8 }) as Extract<ReturnType<typeof pruneScoreConfig>, { type: 'sparsegpt' }>;
      assert.equal(cfg.calibration, 'sequential', 'sequential is the default');
      const sg = await SparseGpt.prepare(pm, cfg);
      const hs: Float64Array[] = [];
      const point = await sg.apply(0.3, null, { onHessian: (i, h) => (hs[i] = h) });
      assert.ok(Math.abs(point.kept - 0.3) < 0.02, `kept ${point.kept}`);
      const data = await pm.data();
      const w0 = await arr(pm.targets[0].live);
      const b0 = await arr(pm.store.get('layers.0.bias'));
      const w0Dense = await arr(pm.targets[0].dense);
      assert.ok(w0.filter((x) => x === 0).length > 0.6 * w0.length, 'layer 0 is pruned in the live weights');
      const [hid, inp] = [24, 16];
      const h0 = new Float64Array(inp * inp);
      const h1 = new Float64Array(hid * hid);
      const h1Dense = new Float64Array(hid * hid);
      for (let s = 1; s <= batches; s++) {
        const b = data.trainBatch(s);
        const x = b.features!;
        const layer0 = (w: Float32Array) => {
          const out = new Float32Array(b.rows * hid);
          for (let r = 0; r < b.rows; r++) {
            for (let o = 0; o < hid; o++) {
              let acc = b0[o];
              for (let j = 0; j < inp; j++) acc += x[r * inp + j] * w[o * inp + j];
              out[r * hid + o] = Math.max(0, acc);
            }
          }
          return out;
        };
        const add = (into: Float64Array, g: Float64Array) => g.forEach((v, k) => (into[k] += v));
        add(h0, cpuGram(x, b.rows, inp));
        add(h1, cpuGram(layer0(w0), b.rows, hid));
        add(h1Dense, cpuGram(layer0(w0Dense), b.rows, hid));
      }
      assertClose(hs[0], h0, { rtol: 1e-4, atol: 1e-3, what: 'layer 0: H from the model input' });
      assertClose(hs[1], h1, { rtol: 1e-4, atol: 1e-3, what: 'layer 1: H from the pruned layer 0' });
      let diff = 0;
      let norm = 0;
      h1.forEach((v, k) => {
        diff += (v - h1Dense[k]) ** 2;
        norm += h1Dense[k] ** 2;
      });
      assert.ok(Math.sqrt(diff / norm) > 0.05, `the pruned inputs' H differs from the dense one: relative ${Math.sqrt(diff / norm)}`);
      // One-pass mode hands layer 1 the dense H.
      const one = await SparseGpt.prepare(pm, { ...cfg, calibration: 'one-pass' });
      const hsOne: Float64Array[] = [];
      await one.apply(0.3, null, { onHessian: (i, h) => (hsOne[i] = h) });
      assertClose(hsOne[1], h1Dense, { rtol: 1e-4, atol: 1e-3, what: 'one-pass: layer 1 from the dense model' });
    } finally {
      pm.restore();
      pm.destroy();
    }
  });

  // Sequential's loss is NOT reliably ≤ one-pass's on models this small (a 12-case exploration of seeds, widths
  // and calibration sizes had it lower in 6 to 9 of 12 per density), so what is tested is the mechanism: the first
  // stage is pruned identically in both modes (same inputs), the later one differently, and the sweep runs it.
  it('both modes prune layer 0 identically and layer 1 differently; the sweep runs the sequential mode, density 1 dense', async () => {
    const rt = await runtime();
    const src = await resolvePruneSource(runDir);
    const pm = await PruneModel.open(rt, src, opts);
    const cfg = pruneScoreConfig('sparsegpt', { batches: 4, blockSize: 8 }) as Extract<ReturnType<typeof pruneScoreConfig>, { type: 'sparsegpt' }>;
    let seqLoss = 0;
    try {
      const weights = async (calibration: 'sequential' | 'one-pass') => {
        const sg = await SparseGpt.prepare(pm, { ...cfg, calibration });
        await sg.apply(0.3, null);
        const w = await Promise.all(pm.targets.map((t) => arr(t.live)));
        const loss = (await pm.evaluate()).loss;
        return { w, loss };
      };
      const seq = await weights('sequential');
      const one = await weights('one-pass');
      seqLoss = seq.loss;
      assert.deepEqual(seq.w[0], one.w[0], 'layer 0 reads the model input in both modes');
      assert.notDeepEqual(seq.w[1], one.w[1], 'layer 1 is rebuilt for the pruned inputs');
      assert.notEqual(seq.loss, one.loss);
    } finally {
      pm.restore();
      pm.destroy();
    }
    const { sweep } = await runSweep(rt, src, { ...opts, scores: [cfg], densities: [1, 0.3], file: path.join(dir, 'sweep-seq.json') });
    assert.equal(sweep.options.scores[0].type === 'sparsegpt' && sweep.options.scores[0].calibration, 'sequential', 'the sweep file records the mode');
    assert.deepEqual(sweep.points[0].metrics, sweep.dense, 'density 1 is the dense model');
    assertClose([sweep.points[1].metrics.loss], [seqLoss], { rtol: 1e-5, what: 'the sweep point is the sequential result' });
  });
});
