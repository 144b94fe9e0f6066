// The merge methods on the GPU (src/engine/merge/, kernels/merge.wgsl) against their CPU reference
// (src/engine/cpu/merge.ts): every method on awkward shapes (1, 7, 13×17, 64×33, rank 3) with 2–4 experts, with
// and without a base where the method allows; the random drops (DARE, DELLA) equal exactly for a fixed seed;
// known answers from the papers' definitions on tiny hand-made tensors; the stats; NaN inputs; tensors past one
// workgroup's span; element-wise methods over binding-sized chunks, and the refusal of the others.
import * as assert from 'node:assert/strict';
import { assertClose, randn, runtime } from './helpers';
import { BindingLimitError, Tensor, fromArray } from '../../src/engine/tensor/tensor';
import { mergeTensor } from '../../src/engine/merge/tensor-merge';
import { MERGE_PASSES } from '../../src/engine/merge/registry';
import { cpuMergeTensor, CpuMergeInput } from '../../src/engine/cpu/merge';
import { MERGE_METHOD_ENTRIES, type MergeMethodName } from '../../src/files/registry/merge-methods';
import { matrixView } from '../../src/protocol/stats';

type Params = Record<string, number | boolean>;

interface Case {
  shape: number[];
  E: number;
  base?: boolean;
  perModel?: (t: number) => Params;
  global?: Params;
  curvature?: boolean;
  fisher?: boolean;
  gram?: boolean;
  seed?: number;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function makeCpu(method: MergeMethodName, c: Case): CpuMergeInput {
  const n = numel(c.shape);
  const seed = c.seed ?? 1;
  const base = c.base === false ? null : randn(n, seed);
  const experts = Array.from({ length: c.E }, (_, t) => {
    const d = randn(n, seed * 100 + t + 1, 0.1);
    return base ? Float32Array.from(d, (v, i) => Math.fround(base[i] + v)) : randn(n, seed * 100 + t + 1);
  });
  const { rows, cols } = matrixView(c.shape);
  const pos = (len: number, s: number) => Float32Array.from(randn(len, s), (v) => 0.1 + v * v);
  return {
    name: `layers.${method}.weight`,
    shape: c.shape,
    base,
    experts,
    perModel: Array.from({ length: c.E }, (_, t) => ({ weight: 1 + 0.5 * t, ...(c.perModel?.(t) ?? {}) })),
    global: c.global ?? {},
    // The last expert has no statistics (F̂ = 1) to cover that path.
    curvature: c.curvature ? experts.map((_, t) => (t === c.E - 1 && c.E > 2 ? null : { row: pos(rows, 7 + t), col: pos(cols, 17 + t) })) : undefined,
    fisher: c.fisher ? experts.map((_, t) => pos(n, 31 + t)) : undefined,
    gram: c.gram ? experts.map((_, t) => gramOf(c.shape[1], 41 + t)) : undefined,
  };
}

/** XᵀX of a random X [2·d, d]: symmetric positive definite, well conditioned. */
function gramOf(d: number, seed: number): Float32Array {
  const m = 2 * d + 3;
  const x = randn(m * d, seed);
  const g = new Float32Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    let s = 0;
    for (let r = 0; r < m; r++) s += x[r * d + i] * x[r * d + j];
    g[i * d + j] = s / m;
  }
  return g;
}

async function gpuMerge(method: MergeMethodName, inp: CpuMergeInput) {
  const rt = await runtime();
  const live = rt.pool.snapshot().liveBytes;
  const up = (a: Float32Array, shape = inp.shape) => fromArray(rt, a, shape);
  const made: Tensor[] = [];
  const t = <T extends Tensor>(x: T) => (made.push(x), x);
  const res = mergeTensor(method, {
    name: inp.name,
    shape: inp.shape,
    base: inp.base ? t(up(inp.base)) : null,
    experts: inp.experts.map((x) => t(up(x))),
    perModel: inp.perModel,
    global: inp.global,
    curvature: inp.curvature?.map((s) => (s ? { row: t(up(s.row, [s.row.length])), col: t(up(s.col, [s.col.length])) } : null)),
    fisher: inp.fisher?.map((f) => t(up(f))),
    gram: inp.gram?.map((g) => t(up(g, [inp.shape[1], inp.shape[1]]))),
  });
  try {
    const merged = await res.merged.toFloat32();
    const stats = await res.stats;
    return { merged, stats };
  } finally {
    res.merged.dispose();
    for (const x of made) x.dispose();
    // Every temporary and every stats buffer is released once the stats are read (or have failed).
    await res.stats.catch(() => undefined);
    assert.equal(rt.pool.snapshot().liveBytes, live, `${method} '${inp.name}': GPU bytes still live after the merge`);
  }
}

async function compare(method: MergeMethodName, c: Case, tol = { atol: 1e-4, rtol: 1e-3 }) {
  const inp = makeCpu(method, c);
  const what = `${method} ${JSON.stringify(c.shape)} E=${c.E}${inp.base ? '' : ' no base'}`;
  const want = cpuMergeTensor(method, inp);
  const got = await gpuMerge(method, inp);
  assertClose(got.merged, want.merged, { ...tol, what });
  assertClose(got.stats.keptFraction, want.stats.keptFraction, { atol: 1e-6, rtol: 0, what: `${what}: keptFraction` });
  assert.ok(Math.abs(got.stats.signConflict - want.stats.signConflict) < 1e-6, `${what}: signConflict ${got.stats.signConflict} vs ${want.stats.signConflict}`);
  assertClose([got.stats.deltaNorm], [want.stats.deltaNorm], { atol: 1e-4, rtol: 1e-3, what: `${what}: deltaNorm` });
  assert.equal(got.stats.saliencyMass === undefined, want.stats.saliencyMass === undefined, `${what}: saliencyMass presence`);
  if (want.stats.saliencyMass) assertClose(got.stats.saliencyMass!, want.stats.saliencyMass, { atol: 1e-4, rtol: 1e-3, what: `${what}: saliencyMass` });
  return { got, want };
}

const SHAPES = [[1], [7], [13, 17], [64, 33], [3, 5, 7]];

describe('merge methods: GPU = CPU reference', () => {
  it('has GPU passes for every registered method', () => {
    assert.deepEqual(Object.keys(MERGE_PASSES).sort(), MERGE_METHOD_ENTRIES.map((e) => e.name).sort());
  });

  it('linear, with and without a base, normalized or not', async () => {
    for (const [i, shape] of SHAPES.entries()) await compare('linear', { shape, E: 2 + (i % 3), base: i % 2 === 0, global: { normalize: i !== 3 } });
  });

  it('task_arithmetic with λ', async () => {
    for (const [i, shape] of SHAPES.entries()) await compare('task_arithmetic', { shape, E: 2 + (i % 3), global: { lambda: 0.7, normalize: i === 2 } });
  });

  it('ties and breadcrumbs (top-k trims on the GPU select)', async () => {
    for (const [i, shape] of SHAPES.entries()) {
      await compare('ties', { shape, E: 3, perModel: (t) => ({ density: [0.5, 0.3, 1][t] }), global: { lambda: 0.9, normalize: i !== 1 } });
      await compare('breadcrumbs', { shape, E: 2, perModel: () => ({ density: 0.6, gamma: 0.1 }) });
      await compare('breadcrumbs_ties', { shape, E: 4, perModel: (t) => ({ density: 0.4 + 0.1 * t, gamma: 0.05 }) });
    }
  });

  it('dare_linear, dare_ties and della: the same drops on GPU and CPU for a fixed seed', async () => {
    for (const [i, shape] of SHAPES.entries()) {
      await compare('dare_linear', { shape, E: 2, perModel: () => ({ density: 0.5 }), global: { seed: 11 + i, rescale: i !== 2 } });
      await compare('dare_ties', { shape, E: 3, perModel: (t) => ({ density: 0.3 + 0.2 * t }), global: { seed: 5 } });
      await compare('della', { shape, E: 3, perModel: (t) => ({ density: 0.5, epsilon: 0.2 * t }), global: { seed: 7 } }, { atol: 2e-4, rtol: 2e-3 });
    }
  });

  it('curvature: saliency trim, curvature-weighted election and mean (one expert without statistics)', async () => {
    for (const [i, shape] of SHAPES.entries()) await compare('curvature', { shape, E: 2 + (i % 3), curvature: true, perModel: (t) => ({ density: [0.2, 0.5, 1, 0.3][t] }), global: { lambda: 1.1 } });
  });

  it('fisher and regmean (and regmean’s average for non-2-D tensors)', async () => {
    for (const [i, shape] of SHAPES.entries()) {
      await compare('fisher', { shape, E: 2 + (i % 3), fisher: true, base: false });
      await compare('regmean', { shape, E: 2 + (i % 2), gram: shape.length === 2, base: false }, { atol: 5e-4, rtol: 5e-3 });
    }
  });

  it('slerp, multislerp and model_stock', async () => {
    for (const [i, shape] of SHAPES.entries()) {
      if (shape[0] > 1 || shape.length > 1) await compare('slerp', { shape, E: 1, global: { t: 0.3 } });
      await compare('multislerp', { shape, E: 1 + (i % 3), base: i % 2 === 1 });
      await compare('model_stock', { shape, E: 2 + (i % 3), global: { filter_wise: i % 2 === 0 } });
    }
  });
});

async function merge(method: MergeMethodName, base: number[] | null, experts: number[][], perModel: Params[], global: Params = {}) {
  const inp: CpuMergeInput = {
    name: 'hand',
    shape: [experts[0].length],
    base: base ? Float32Array.from(base) : null,
    experts: experts.map((e) => Float32Array.from(e)),
    perModel,
    global,
  };
  const got = await gpuMerge(method, inp);
  const cpu = cpuMergeTensor(method, inp);
  assertClose(got.merged, cpu.merged, { what: `${method} hand-made: GPU vs CPU` });
  return got;
}

describe('merge methods: known answers', () => {
  it('TIES on 3 experts × 4 entries, by hand', async () => {
    // τ1 keeps 3, −2; τ2 keeps −4, 2; τ3 keeps 2, 1.5 (density 0.5 → 2 of 4). Votes: +, −, +, −.
    // Disjoint means: 2/1, −2/1, (3 + 2)/2, −4/1. Entry 1 has a kept −2 and a kept 1.5: one conflict in four.
    const r = await merge('ties', [0, 0, 0, 0], [[1, -2, 3, 0.5], [-1, 1, 2, -4], [2, 1.5, -1, 1]], [0, 1, 2].map(() => ({ weight: 1, density: 0.5 })));
    assertClose(r.merged, [2, -2, 2.5, -4], { what: 'ties' });
    assert.deepEqual(r.stats.keptFraction, [0.5, 0.5, 0.5]);
    assert.equal(r.stats.signConflict, 0.25);
  });

  it('an expert of weight 0 takes no part in sign conflicts (voting and linear-combination methods)', async () => {
    // τ2 opposes τ1 everywhere: with weight 1 every entry conflicts, with weight 0 none does.
    const experts = [[1, -2, 3, 0.5], [-1, 2, -3, -0.5], [2, -1, 1, 1]];
    for (const method of ['task_arithmetic', 'ties', 'linear', 'multislerp'] as MergeMethodName[]) {
      const on = await merge(method, [0, 0, 0, 0], experts, [{ weight: 1 }, { weight: 1 }, { weight: 1 }]);
      const off = await merge(method, [0, 0, 0, 0], experts, [{ weight: 1 }, { weight: 0 }, { weight: 1 }]);
      if (method !== 'ties') assert.equal(on.stats.signConflict, 1, `${method} with every weight 1`);
      assert.equal(off.stats.signConflict, 0, `${method} with the opposing expert at weight 0`);
    }
  });

  it('TIES keeps the lower index among equal magnitudes at the threshold', async () => {
    const r = await merge('ties', [0, 0, 0], [[1, -1, 1]], [{ weight: 1, density: 0.34 }]);
    assertClose(r.merged, [1, 0, 0], { what: 'tie at the threshold' });
  });

  it('task_arithmetic: θ₀ + λ·Σ τ_t', async () => {
    const r = await merge('task_arithmetic', [1, 2], [[2, 2], [1, 5]], [{ weight: 1 }, { weight: 1 }], { lambda: 0.5 });
    assertClose(r.merged, [1.5, 3.5], { what: 'task arithmetic' });
    assertClose([r.stats.deltaNorm], [Math.hypot(0.5, 1.5)], { what: 'deltaNorm' });
  });

  it('slerp: t = 0 gives the base, t = 1 the model, a quarter turn at t = ½, the linear fallback when parallel', async () => {
    const b = [1, 0];
    const x = [0, 1];
    assertClose((await merge('slerp', b, [x], [{}], { t: 0 })).merged, b, { what: 't=0' });
    assertClose((await merge('slerp', b, [x], [{}], { t: 1 })).merged, x, { what: 't=1' });
    assertClose((await merge('slerp', b, [x], [{}], { t: 0.5 })).merged, [Math.SQRT1_2, Math.SQRT1_2], { what: 't=½' });
    assertClose((await merge('slerp', [1, 2, 3], [[2, 4, 6]], [{}], { t: 0.3 })).merged, [1.3, 2.6, 3.9], { what: 'parallel' });
  });

  it('model_stock with two experts: t = 2cosθ / (1 + cosθ)', async () => {
    // Orthogonal task vectors: cosθ = 0, t = 0, the base.
    assertClose((await merge('model_stock', [0, 0], [[1, 0], [0, 1]], [{}, {}])).merged, [0, 0], { what: 'orthogonal' });
    const c = Math.SQRT1_2;
    const t = (2 * c) / (1 + c);
    assertClose((await merge('model_stock', [0, 0], [[1, 1], [1, 0]], [{}, {}])).merged, [t, t / 2], { what: '45°' });
  });

  it('multislerp of two unit vectors at equal weights: the normalized bisector, scaled by the mean norm', async () => {
    assertClose((await merge('multislerp', null, [[2, 0], [0, 2]], [{}, {}])).merged, [Math.SQRT2, Math.SQRT2], { what: 'bisector' });
  });

  it('dare: the same seed gives the same drops, another seed other drops', async () => {
    const base = new Array(64).fill(0);
    const x = Array.from({ length: 64 }, (_, i) => i + 1);
    const a = await merge('dare_linear', base, [x], [{ density: 0.5 }], { seed: 1 });
    const b = await merge('dare_linear', base, [x], [{ density: 0.5 }], { seed: 1 });
    const c = await merge('dare_linear', base, [x], [{ density: 0.5 }], { seed: 2 });
    assert.deepEqual(Array.from(a.merged), Array.from(b.merged));
    assert.notDeepEqual(Array.from(a.merged), Array.from(c.merged));
    // Kept entries are rescaled by 1/density.
    a.merged.forEach((v, i) => assert.ok(v === 0 || v === 2 * x[i], `entry ${i}: ${v}`));
  });
});

describe('merge methods: the random drops follow their probabilities', () => {
  it('DARE keeps about `density` of the entries; DELLA keeps large |τ| more often than small ones', async () => {
    const n = 4000;
    const base = new Array(n).fill(0);
    const x = Array.from(randn(n, 5));
    const dare = await merge('dare_linear', base, [x], [{ density: 0.3 }], { seed: 4 });
    // Binomial(4000, 0.3): σ ≈ 29 entries, so ±4σ is ±0.029 of the fraction.
    assert.ok(Math.abs(dare.stats.keptFraction[0] - 0.3) < 0.029, `DARE kept ${dare.stats.keptFraction[0]}`);
    const d = await merge('della', base, [x], [{ density: 0.5, epsilon: 0.8 }], { seed: 4 });
    // Keep probabilities run from 0.1 (smallest |τ|) to 0.9 (largest): the larger half keeps ≈ 0.7, the smaller ≈ 0.3.
    const order = x.map((v, i) => [Math.abs(v), i]).sort((a, b) => a[0] - b[0]).map((e) => e[1]);
    const keptIn = (idx: number[]) => idx.filter((i) => d.merged[i] !== 0).length / idx.length;
    const small = keptIn(order.slice(0, n / 2));
    const large = keptIn(order.slice(n / 2));
    assert.ok(Math.abs(small - 0.3) < 0.05 && Math.abs(large - 0.7) < 0.05, `DELLA kept ${small} of the small half, ${large} of the large half`);
    // Kept entries are divided by their keep probability: the largest |τ| (p = 0.9) by 0.9.
    const top = order[n - 1];
    if (d.merged[top] !== 0) assertClose([d.merged[top]], [x[top] / 0.9], { what: 'DELLA rescale' });
  });
});

describe('merge methods: errors', () => {
  it('a NaN in a model names the tensor and the model', async () => {
    const x = [1, 2, NaN];
    await assert.rejects(merge('task_arithmetic', [0, 0, 0], [[1, 1, 1], x], [{}, {}]), /tensor 'hand' of model 1 has 1 non-finite/);
  });

  it('multislerp: a zero weighted sum of unit vectors among three models is an error; RegMean: a singular Σ G is one', async () => {
    await assert.rejects(merge('multislerp', null, [[1, 0], [-1, 0], [0, 0]], [{}, {}, {}]), /weighted sum of the unit task vectors is zero/);
    const rt = await runtime();
    const w = [fromArray(rt, [1, 2, 3, 4], [2, 2]), fromArray(rt, [4, 3, 2, 1], [2, 2])];
    const g = [fromArray(rt, [0, 0, 0, 0], [2, 2]), fromArray(rt, [0, 0, 0, 0], [2, 2])];
    const r = mergeTensor('regmean', { name: 'fc.weight', shape: [2, 2], base: null, experts: w, perModel: [{}, {}], global: {}, gram: g });
    await assert.rejects(r.stats, /'fc.weight': Σ G is not positive definite/);
    for (const x of [...w, ...g, r.merged]) x.dispose();
  });

  it('della refuses keep probabilities outside [0, 1]', async () => {
    await assert.rejects(merge('della', [0, 0], [[1, 2]], [{ density: 0.9, epsilon: 0.4 }]), /density ± epsilon\/2/);
  });

  it('refuses a method that needs a base without one, and mismatched shapes', async () => {
    const rt = await runtime();
    const a = fromArray(rt, [1, 2, 3], [3]);
    const b = fromArray(rt, [1, 2], [2]);
    assert.throws(() => mergeTensor('ties', { name: 'w', shape: [3], base: null, experts: [a], perModel: [{}], global: {} }), /needs a base model/);
    assert.throws(() => mergeTensor('linear', { name: 'w', shape: [3], base: null, experts: [a, b], perModel: [{}, {}], global: {} }), /model 1 has shape \[2\], expected \[3\]/);
    a.dispose();
    b.dispose();
  });

  it('norm-based methods refuse a tensor above one binding by name (BindingLimitError)', async () => {
    const rt = await runtime();
    const prev = rt.maxBindingBytes;
    const x = fromArray(rt, randn(4096, 3), [64, 64]);
    x.name = 'big.weight';
    rt.setMaxBindingBytes(4096);
    try {
      assert.throws(() => mergeTensor('model_stock', { name: 'big.weight', shape: [64, 64], base: x, experts: [x, x], perModel: [{}, {}], global: {} }), (e: unknown) => e instanceof BindingLimitError && /big\.weight/.test(e.message));
    } finally {
      rt.setMaxBindingBytes(prev);
      x.dispose();
    }
  });
});

describe('merge methods over several workgroup spans (64 elements per invocation)', () => {
  it('element-wise methods match the CPU reference past one workgroup (16,384 elements): partials, first-expert writes', async () => {
    // [131, 257] = 33,667 elements: two full workgroups and a ragged third, one binding (not chunked).
    const shape = [131, 257];
    await compare('ties', { shape, E: 3, perModel: (t) => ({ density: 0.2 + 0.3 * t }) });
    await compare('breadcrumbs', { shape, E: 2, perModel: () => ({ density: 0.4, gamma: 0.01 }) });
    await compare('curvature', { shape, E: 3, curvature: true, perModel: () => ({ density: 0.3 }) });
    await compare('linear', { shape, E: 2, base: false });
    await compare('fisher', { shape, E: 2, fisher: true });
    await compare('multislerp', { shape, E: 3 });
  });
});

describe('merge methods over binding-sized chunks (forced small limit)', () => {
  it('element-wise methods match the CPU reference chunk by chunk (hashes, rows and stats keep global indices)', async () => {
    const rt = await runtime();
    const prev = rt.maxBindingBytes;
    // 8 KiB (the smallest a select's 2,048-bin histogram fits; WebGPU guarantees 128 MiB): 1,984 floats per span,
    // so [96, 65] is four chunks, the last ragged.
    rt.setMaxBindingBytes(8192);
    try {
      const shape = [96, 65];
      await compare('linear', { shape, E: 3, base: false });
      await compare('task_arithmetic', { shape, E: 2, global: { lambda: 0.8 } });
      await compare('ties', { shape, E: 3, perModel: (t) => ({ density: 0.3 + 0.2 * t }) });
      await compare('breadcrumbs_ties', { shape, E: 2, perModel: () => ({ density: 0.5, gamma: 0.05 }) });
      await compare('dare_ties', { shape, E: 3, perModel: () => ({ density: 0.5 }), global: { seed: 9 } });
      await compare('curvature', { shape, E: 3, curvature: true, perModel: () => ({ density: 0.25 }) });
      await compare('fisher', { shape, E: 2, fisher: true, base: false });
    } finally {
      rt.setMaxBindingBytes(prev);
    }
  });
});
