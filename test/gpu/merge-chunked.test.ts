// Row-chunked merging (src/engine/merge/tensor-merge.ts mergeTensorChunked, methods.ts prepareChunked): with a
// tiny forced chunk budget every registered method gives the whole-tensor path's result bit for bit, and the same
// stats, on awkward shapes (prime rows, rows that do not divide the chunk, rank 3); tensors that are not chunked
// (one row, vectors, an odd column count whose aligned row unit is too large) say so; regmean chunks too, its
// Gram matrices bound whole to every chunk. End to end: the executor with tiny chunks writes the same bytes as
// without, from BF16/F16 files, with pieces streamed to the writer.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randn, runtime } from './helpers';
import { Tensor, fromArray } from '../../src/engine/tensor/tensor';
import { DEFAULT_CHUNK_BYTES, HARDWARE_CHUNK_BYTES, chunkRowsFor, defaultChunkBytes, mergeTensor, mergeTensorChunked, type ChunkLoader, type TensorMergeStats } from '../../src/engine/merge/tensor-merge';
import { MERGE_METHOD_ENTRIES, type MergeMethodName } from '../../src/files/registry/merge-methods';
import { matrixView } from '../../src/protocol/stats';
import { kthLargest, kthLargestStreamed } from '../../src/engine/ops/select';
import { cpuKthLargest } from '../../src/engine/cpu/select';
import { executeMerge } from '../../src/engine/merge/execute';
import { loadMergeConfig } from '../../src/files/merge/config';
import { planMerge } from '../../src/files/merge/plan';
import { readSafetensorsHeader, writeSafetensors } from '../../src/files/safetensors';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../../src/files/f16';

type Params = Record<string, number | boolean>;
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Parameters that make each method do its per-tensor work (trims below density 1, several experts). */
function setup(method: MergeMethodName): { E: number; base: boolean; perModel: (t: number) => Params; global: Params; curvature?: boolean; fisher?: boolean } {
  const w = (t: number) => ({ weight: 1 + 0.5 * t });
  switch (method) {
    case 'ties': return { E: 3, base: true, perModel: (t) => ({ ...w(t), density: [0.5, 0.3, 1][t] }), global: { lambda: 0.9 } };
    case 'breadcrumbs':
    case 'breadcrumbs_ties': return { E: 2, base: true, perModel: (t) => ({ ...w(t), density: 0.4 + 0.1 * t, gamma: 0.05 }), global: {} };
    case 'dare_linear':
    case 'dare_ties': return { E: 3, base: true, perModel: (t) => ({ ...w(t), density: 0.3 + 0.2 * t }), global: { seed: 5 } };
    case 'della': return { E: 3, base: true, perModel: (t) => ({ ...w(t), density: 0.5, epsilon: 0.2 * t }), global: { seed: 7 } };
    case 'slerp': return { E: 1, base: true, perModel: w, global: { t: 0.3 } };
    case 'multislerp': return { E: 3, base: true, perModel: w, global: {} };
    case 'model_stock': return { E: 3, base: true, perModel: w, global: { filter_wise: false } };
    case 'curvature': return { E: 3, base: true, perModel: (t) => ({ ...w(t), density: 0.4 }), global: {}, curvature: true };
    case 'fisher': return { E: 2, base: false, perModel: w, global: {}, fisher: true };
    case 'linear': return { E: 3, base: false, perModel: w, global: { normalize: true } };
    default: return { E: 2, base: true, perModel: w, global: {} };
  }
}

const pos = (len: number, s: number) => Float32Array.from(randn(len, s), (v) => 0.1 + v * v);

async function both(method: MergeMethodName, shape: number[], chunkBytes: number, over: Partial<ReturnType<typeof setup>> = {}, seed = 1) {
  const rt = await runtime();
  const s = { ...setup(method), ...over };
  const n = numel(shape);
  const { rows, cols } = matrixView(shape);
  const base = s.base ? randn(n, seed) : null;
  const experts = Array.from({ length: s.E }, (_, t) => {
    const d = randn(n, seed * 100 + t + 1, 0.1);
    return base ? Float32Array.from(d, (v, i) => Math.fround(base[i] + v)) : randn(n, seed * 100 + t + 1);
  });
  const perModel = Array.from({ length: s.E }, (_, t) => s.perModel(t));
  const fisher = s.fisher ? experts.map((_, t) => pos(n, 31 + t)) : undefined;
  // regmean: per expert a Gram matrix XᵀX [cols, cols] of 2·cols random inputs (positive definite), for 2-D weights.
  const gramOf = (t: number) => {
    const k = 2 * cols;
    const x = randn(k * cols, 71 + t);
    const g = new Float32Array(cols * cols);
    for (let r = 0; r < k; r++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) g[i * cols + j] += x[r * cols + i] * x[r * cols + j];
    return g;
  };
  const grams = method === 'regmean' && shape.length === 2 ? experts.map((_, t) => gramOf(t)) : undefined;
  const made: Tensor[] = [];
  const up = (a: Float32Array, sh: number[]) => {
    const t = fromArray(rt, a, sh);
    made.push(t);
    return t;
  };
  const curvature = s.curvature ? experts.map((_, t) => (t === s.E - 1 ? null : { row: up(pos(rows, 7 + t), [rows]), col: up(pos(cols, 17 + t), [cols]) })) : undefined;
  const name = `layers.${method}.weight`;
  try {
    const res = mergeTensor(method, {
      name, shape, base: base ? up(base, shape) : null, experts: experts.map((x) => up(x, shape)), perModel, global: s.global, curvature,
      fisher: fisher?.map((f) => up(f, shape)),
      gram: grams?.map((g) => up(g, [cols, cols])),
    });
    const whole = await res.merged.toFloat32();
    res.merged.dispose();
    const wholeStats = await res.stats;

    const rowsPer = chunkRowsFor(rt, method, shape, chunkBytes);
    if (rowsPer === 0) return { whole, wholeStats, rowsPer, chunked: null, chunkedStats: null, loads: [] as number[][] };
    const per = n / shape[0];
    const slice = (a: Float32Array, r0: number, r1: number) => fromArray(rt, a.subarray(r0 * per, r1 * per), [r1 - r0, ...shape.slice(1)]);
    const loads: number[][] = [];
    const load: ChunkLoader = async (r0, r1, need) => {
      loads.push([r0, r1]);
      return {
        base: need.base && base ? slice(base, r0, r1) : null,
        experts: experts.map((x, t) => (need.experts.includes(t) ? slice(x, r0, r1) : null)),
        fisher: need.fisher && fisher ? fisher.map((f) => slice(f, r0, r1)) : undefined,
      };
    };
    const chunked = new Float32Array(n);
    const gen = mergeTensorChunked(rt, method, { name, shape, hasBase: !!base, experts: s.E, hasFisher: !!fisher, perModel, global: s.global, curvature, gram: grams?.map((g) => up(g, [cols, cols])) }, rowsPer, load);
    let at = 0;
    let chunkedStats: TensorMergeStats;
    for (;;) {
      const r = await gen.next();
      if (r.done) {
        chunkedStats = r.value;
        break;
      }
      const v = await r.value.toFloat32();
      chunked.set(v, at);
      at += v.length;
    }
    assert.equal(at, n, `${method} ${JSON.stringify(shape)}: chunks cover the tensor`);
    assert.ok(loads.length >= 2, `${method} ${JSON.stringify(shape)}: more than one chunk (${rowsPer} rows per chunk)`);
    return { whole, wholeStats, rowsPer, chunked, chunkedStats, loads };
  } finally {
    for (const t of made) t.dispose();
  }
}

function assertSame(what: string, a: Float32Array, b: Float32Array): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} (row ${i}) differs: chunked ${b[i]} vs whole ${a[i]}`);
  }
}

// Column counts that are powers of two keep the span-aligned row unit small (16384 / cols rows); the chunk budget
// (bytes per f32 operand) is chosen so the rows per chunk do not divide the rows.
const CHUNKED: { shape: number[]; chunkBytes: number }[] = [
  { shape: [37, 512], chunkBytes: 32 * 512 * 4 }, // prime rows: 32 + 5
  { shape: [100, 1024], chunkBytes: 48 * 1024 * 4 }, // 48 + 48 + 4
  { shape: [41, 8, 64], chunkBytes: 32 * 512 * 4 }, // rank 3, one unit (32 rows) per chunk: 32 + 9
];

describe('merge in row chunks = whole tensor, bit for bit', function () {
  this.timeout(600_000);
  const methods = MERGE_METHOD_ENTRIES.map((e) => e.name as MergeMethodName);

  for (const method of methods) {
    it(`${method}`, async () => {
      // regmean: its Cholesky of Σ G [cols, cols] runs in one workgroup, so it gets narrower shapes too (the rank-3
      // one merges as a weighted average: regmean's Gram form is for 2-D weights).
      const shapes = method === 'regmean' ? [{ shape: [600, 64], chunkBytes: 256 * 64 * 4 }, CHUNKED[0], CHUNKED[2]] : CHUNKED;
      for (const { shape, chunkBytes } of shapes) {
        const r = await both(method, shape, chunkBytes);
        const what = `${method} ${JSON.stringify(shape)}`;
        assert.ok(r.rowsPer > 0, `${what}: chunked`);
        assertSame(what, r.whole, r.chunked!);
        assert.deepEqual(r.chunkedStats, r.wholeStats, `${what}: stats`);
      }
    });
  }

  it('a trim finds every expert\'s threshold in 4 sweeps of the chunks, then reads only the chunks holding them', async () => {
    // [100, 1024] in chunks of 48 rows (3 blocks of 2^14 elements each): 3 chunks. ties trims two of its three
    // experts: 4 sweeps (3 value digits and the count) serve both thresholds, the last sweep reads the one or two
    // chunks holding them, the apply pass each chunk once.
    const r = await both('ties', [100, 1024], 48 * 1024 * 4);
    const chunks = 3;
    const extra = r.loads.length - 4 * chunks - chunks;
    assert.ok(extra >= 1 && extra <= 2, `chunk loads: ${r.loads.length} (${JSON.stringify(r.loads)})`);
    assertSame('ties [100, 1024]', r.whole, r.chunked!);
  });

  it('model_stock filter-wise and multislerp without a base, chunked', async () => {
    for (const [method, over] of [['model_stock', { global: { filter_wise: true } }], ['multislerp', { base: false }], ['multislerp', { E: 1 }], ['ties', { base: true, E: 2 }]] as const) {
      const r = await both(method, [37, 512], 32 * 512 * 4, over as Partial<ReturnType<typeof setup>>);
      assertSame(`${method} ${JSON.stringify(over)}`, r.whole, r.chunked!);
      assert.deepEqual(r.chunkedStats, r.wholeStats);
    }
  });

  it('keeps one row, vectors, small tensors and odd column counts whole', async () => {
    const rt = await runtime();
    assert.equal(chunkRowsFor(rt, 'ties', [1, 70000], 1024), 0);
    assert.equal(chunkRowsFor(rt, 'ties', [70000], 1024), 0);
    assert.equal(chunkRowsFor(rt, 'ties', [37, 512], 37 * 512 * 4), 0);
    assert.equal(chunkRowsFor(rt, 'ties', [37, 13], 64), 0); // the aligned unit would be 16384 rows
    assert.ok(chunkRowsFor(rt, 'ties', [4096, 4096], 8 << 20) === 512);
  });

  it('default chunks: small on a software adapter (its GPU memory is host memory), a [4096, 4096] matrix whole on a GPU', async () => {
    const rt = await runtime();
    assert.equal(defaultChunkBytes(rt), rt.gpu.info.fallback ? DEFAULT_CHUNK_BYTES : Math.min(HARDWARE_CHUNK_BYTES, rt.gpu.info.limits.maxStorageBufferBindingSize));
    // The same choice for a hardware adapter's description (only info is read).
    const gpuLike = (binding: number) => ({ ...rt, gpu: { ...rt.gpu, info: { ...rt.gpu.info, fallback: false, limits: { ...rt.gpu.info.limits, maxStorageBufferBindingSize: binding } } } }) as unknown as typeof rt;
    assert.equal(defaultChunkBytes(gpuLike(2 ** 31)), 64 << 20);
    assert.equal(defaultChunkBytes(gpuLike(32 << 20)), 32 << 20, 'within one storage binding');
    assert.equal(chunkRowsFor(rt, 'ties', [4096, 4096], 64 << 20), 0, 'whole: its inputs are read once');
    assert.ok(chunkRowsFor(rt, 'ties', [8192, 4096], 64 << 20) > 0, 'a larger tensor still in chunks');
    assert.ok(chunkRowsFor(rt, 'ties', [4096, 4096], DEFAULT_CHUNK_BYTES) > 0, 'chunked on a software adapter');
  });

  it('the streamed select finds the keys kthLargest finds, several selects over several series at once, ties straddling too', async () => {
    const rt = await runtime();
    // quant > 0: values on a coarse grid, so ties straddle the threshold; pieces that do not align with the select's
    // blocks of 2^14 (SELECT_BLOCK), nor each other across series.
    for (const [n, quant, pieces] of [[1000, 0, [77, 130]], [70000, 4, [16384, 9999]], [5000, 1, [999, 5000]], [40000, 0.5, [16383, 4097]]] as const) {
      const series = pieces.map((_, s) => Float32Array.from(randn(n, n + quant + 17 * s), (x) => (quant ? Math.round(x * quant) / quant : x)));
      const wholes = series.map((v) => fromArray(rt, v, [n]));
      const ks = [1, 7, Math.floor(n / 3), n - 1, n];
      const selects = series.flatMap((_, source) => ks.map((k) => ({ k, abs: source === 0, source })));
      const visited: number[][] = [];
      const got = await kthLargestStreamed(rt, n, selects, async (visit, within) => {
        const sweep: number[] = [];
        visited.push(sweep);
        for (let source = 0; source < series.length; source++) {
          const piece = source === 0 ? pieces[0] : pieces[1];
          for (let s = 0; s < n; s += piece) {
            const e = Math.min(n, s + piece);
            if (within && !within.some(([a, b]) => a < e && b > s)) continue;
            const x = fromArray(rt, series[source].subarray(s, e), [e - s]);
            sweep.push(e - s);
            visit(source, x, s);
            x.dispose();
          }
        }
      });
      assert.equal(visited.length, 5, 'three value sweeps, the count, and the blocks holding the thresholds');
      const full = visited[0].reduce((a, b) => a + b, 0);
      assert.ok(visited[4].reduce((a, b) => a + b, 0) <= full, 'the last sweep visits only the blocks it needs');
      if (n > 4 * 16384) {
        // One select: its last sweep reads the one or two pieces that hold its block.
        const lastSweep: number[] = [];
        const [one] = await kthLargestStreamed(rt, n, [{ k: 7, abs: true }], async (visit, within) => {
          lastSweep.length = 0;
          for (let s = 0; s < n; s += pieces[0]) {
            const e = Math.min(n, s + pieces[0]);
            if (within && !within.some(([a, b]) => a < e && b > s)) continue;
            const x = fromArray(rt, series[0].subarray(s, e), [e - s]);
            lastSweep.push(s);
            visit(0, x, s);
            x.dispose();
          }
        });
        assert.ok(lastSweep.length >= 1 && lastSweep.length <= 2, `last sweep: ${lastSweep.length} pieces`);
        const a = (await one.key.toArray()) as Uint32Array;
        assert.equal(a[1], cpuKthLargest(series[0], 7, true).lo);
        one.key.dispose();
      }
      for (let i = 0; i < selects.length; i++) {
        const sel = selects[i];
        const want = kthLargest(wholes[sel.source], sel.k, { abs: sel.abs });
        const [a, b] = [(await want.key.toArray()) as Uint32Array, (await got[i].key.toArray()) as Uint32Array];
        const cpu = cpuKthLargest(series[sel.source], sel.k, sel.abs);
        const what = `n=${n} quant=${quant} k=${sel.k} source=${sel.source}`;
        assert.deepEqual([a[0], a[1]], [cpu.hi, cpu.lo], `whole: ${what}`);
        assert.deepEqual([b[0], b[1]], [a[0], a[1]], `streamed: ${what}`);
        want.key.dispose();
        got[i].key.dispose();
      }
      for (const w of wholes) w.dispose();
    }
  });

  it('a NaN in a chunk is reported with the stats at the end', async () => {
    const rt = await runtime();
    const shape = [37, 512];
    const n = numel(shape);
    const a = randn(n, 3);
    const b = randn(n, 4);
    b[33 * 512 + 7] = NaN;
    const load: ChunkLoader = async (r0, r1, need) => ({
      base: null,
      experts: [a, b].map((x, t) => (need.experts.includes(t) ? fromArray(rt, x.subarray(r0 * 512, r1 * 512), [r1 - r0, 512]) : null)),
    });
    const gen = mergeTensorChunked(rt, 'linear', { name: 'x', shape, hasBase: false, experts: 2, hasFisher: false, perModel: [{}, {}], global: {} }, 32, load);
    await assert.rejects(async () => {
      for (;;) if ((await gen.next()).done) break;
    }, /model 1 has 1 non-finite/);
  });
});

describe('merge executor in row chunks', function () {
  this.timeout(600_000);
  let dir = '';
  const SH: Record<string, number[]> = { 'a.weight': [37, 512], 'b.weight': [100, 256], 'c.bias': [512], 'd.weight': [5, 13] };
  async function model(file: string, seed: number, dtype: 'F32' | 'F16' | 'BF16', base?: Map<string, Float32Array>) {
    const values = new Map<string, Float32Array>();
    let s = seed;
    for (const [name, shape] of Object.entries(SH)) {
      const n = numel(shape);
      const v = randn(n, s++, base ? 0.1 : 1);
      if (base) for (let i = 0; i < n; i++) v[i] += base.get(name)![i];
      if (dtype !== 'F32') {
        const h = new Uint16Array(n);
        (dtype === 'F16' ? encodeF16 : encodeBf16)(v, h);
        (dtype === 'F16' ? decodeF16 : decodeBf16)(h, v);
      }
      values.set(name, v);
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writeSafetensors(file, [...values].map(([name, data]) => ({ name, dtype, shape: SH[name], data })));
    return values;
  }
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-chunked-'));
    const base = await model(path.join(dir, 'base/model.safetensors'), 1, 'BF16');
    await model(path.join(dir, 'e1/model.safetensors'), 100, 'BF16', base);
    await model(path.join(dir, 'e2/model.safetensors'), 200, 'F16', base);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a file cut short under a chunk read ahead: the error names the file and tensor; the model it would replace is kept', async () => {
    // A copy of e2 planned whole, then truncated inside b.weight's rows 64..95 (chunks of 32 rows: that chunk is
    // read ahead while rows 32..63 merge).
    fs.mkdirSync(path.join(dir, 'e2-cut'), { recursive: true });
    const cut = path.join(dir, 'e2-cut/model.safetensors');
    fs.copyFileSync(path.join(dir, 'e2/model.safetensors'), cut);
    const f = path.join(dir, 'cut.merge.yaml');
    fs.writeFileSync(f, 'merge_method: ties\nbase_model: ./base\nmodels:\n  - model: ./e1\n    parameters: { weight: 1, density: 0.4 }\n  - model: ./e2-cut\n    parameters: { weight: 1, density: 0.4 }\nout_dtype: bfloat16\n');
    const rt = await runtime();
    const plan = await planMerge(loadMergeConfig(f));
    const out = path.join(dir, 'cut-out');
    await executeMerge({ rt, plan, outDir: out, chunkBytes: 16 * 512 * 4 });
    const before = fs.readFileSync(path.join(out, 'model.safetensors'));
    const h = await readSafetensorsHeader(cut);
    fs.truncateSync(cut, h.tensors['b.weight'].byteOffset + 70 * 256 * 2);
    await assert.rejects(
      executeMerge({ rt, plan, outDir: out, chunkBytes: 16 * 512 * 4, force: true }),
      (e: Error) => e.message.includes(cut) && e.message.includes('"b.weight"') && /file ended/.test(e.message),
    );
    assert.ok(fs.readFileSync(path.join(out, 'model.safetensors')).equals(before), 'the earlier output is untouched');
    assert.deepEqual(fs.readdirSync(out).filter((n) => n.includes('.tmp')), [], 'no temporary file left');
  });

  for (const [method, params] of [
    ['ties', '    parameters: { weight: 1, density: 0.4 }'],
    ['della', '    parameters: { weight: 1, density: 0.5, epsilon: 0.1 }'],
    ['multislerp', '    parameters: { weight: 1 }'],
  ] as const) {
    it(`${method}: the same bytes with tiny chunks as whole (BF16/F16 inputs, BF16 output)`, async () => {
      const f = path.join(dir, `${method}.merge.yaml`);
      const global = method === 'della' ? 'parameters: { seed: 3 }\n' : '';
      fs.writeFileSync(f, `merge_method: ${method}\nbase_model: ./base\n${global}models:\n  - model: ./e1\n${params}\n  - model: ./e2\n${params}\nout_dtype: bfloat16\n`);
      const rt = await runtime();
      const plan = await planMerge(loadMergeConfig(f));
      const outs: Buffer[] = [];
      const reports = [];
      for (const [k, chunkBytes] of [['whole', Infinity], ['chunked', 16 * 512 * 4]] as const) {
        const out = path.join(dir, `${method}-${k}`);
        reports.push(await executeMerge({ rt, plan, outDir: out, chunkBytes }));
        outs.push(fs.readFileSync(path.join(out, 'model.safetensors')));
      }
      assert.ok(outs[0].equals(outs[1]), `${method}: the chunked output differs from the whole one`);
      assert.deepEqual(reports[1].tensors, reports[0].tensors);
      // Each chunk after a pass's first was read while the one before it merged, and no guess was thrown away
      // (a pass reads the same inputs from chunk to chunk); a whole merge has no chunks to read ahead.
      assert.equal(reports[0].timing!.chunkReadsAhead, 0);
      assert.ok(reports[1].timing!.chunkReadsAhead > 0, `${method}: no chunk was read ahead`);
      assert.equal(reports[1].timing!.chunkReadsWasted, 0, `${method}: read-ahead guesses not taken`);
    });
  }
});
