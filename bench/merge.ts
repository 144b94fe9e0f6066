// `basin bench merge`: the merge executor against the time to merely read the same files.
//
// Three synthetic models (a base and two experts, bf16 on disk, ≥ 1 GB each; `--quick`: ≈ 96 MB each) shaped like
// a transformer's weights ([4096, 4096] matrices; quick: [1024, 1024]), written as Basin run folders so that the
// curvature method finds row/column second-moment sums beside each checkpoint. Then, in one process:
//   read bound   every input file read once, start to end, with 64 MiB positioned reads (what any merge must do);
//   ties         density 0.5;
//   curvature    density 0.2, from the statistics.
// Headlines: `ratio_vs_read_bound` (read-bound time ÷ merge time of the ties merge, the common case; target ≥ 0.5) and `peak_rss_mb` (the process's resident memory high-water mark
// during the merges, sampled every 20 ms; target below 4 × the largest tensor in f32 plus the runtime's own
// baseline, measured before the first merge and reported beside it). Peak GPU memory is the buffer pool's
// high-water mark (live + pooled bytes).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMergeConfig } from '../src/files/merge/config';
import { planMerge } from '../src/files/merge/plan';
import { RunFolder } from '../src/files/run-record';
import { writeSafetensors, type WriteTensor } from '../src/files/safetensors';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { executeMerge } from '../src/engine/merge/execute';
import { gitCommit } from './report';

export interface MergeBenchOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
}

interface ModelShape {
  dim: number;
  matrices: number;
}

/** xorshift32 → bf16 bits of values with |x| in about [2⁻⁸, 2⁻²], random sign: weight-like, fast to make. */
function fillWeights(dst: Uint16Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < dst.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const exp = 119 + ((s >>> 8) % 6); // 2^-8 … 2^-3
    dst[i] = ((s >>> 31) << 15) | (exp << 7) | (s & 0x7f);
  }
}

/** An expert: the base with a small change in the low mantissa bits of a fraction of the entries. */
function perturb(base: Uint16Array, dst: Uint16Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < base.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const b = base[i];
    dst[i] = (s & 3) === 0 ? (b & 0xff80) | ((b + (s >>> 24)) & 0x7f) : b;
  }
}

const asF32 = (bits: Uint16Array): Float32Array => {
  const f = new Float32Array(bits.length);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return f;
};

/** Writes base + two experts as run folders (bf16 weights, F32 stats sidecars); returns the run dirs. */
async function writeModels(dir: string, shape: ModelShape, log: (s: string) => void): Promise<string[]> {
  const n = shape.dim * shape.dim;
  const names = Array.from({ length: shape.matrices }, (_, i) => `blocks.${i}.mlp.weight`);
  const runs: string[] = [];
  for (let m = 0; m < 3; m++) {
    const run = await RunFolder.create(dir, m === 0 ? 'base' : `expert-${m}`, { config: { bench: 'merge' } });
    const tensors: WriteTensor[] = names.map((name, i) => ({
      name,
      dtype: 'BF16' as const,
      shape: [shape.dim, shape.dim],
      // Lazy: one tensor in memory at a time, also while the file is written.
      data: () => {
        const base = new Uint16Array(n);
        fillWeights(base, 1 + i);
        if (m === 0) return asF32(base);
        const e = new Uint16Array(n);
        perturb(base, e, 1000 * m + i);
        return asF32(e);
      },
    }));
    const file = path.join(run.dir, run.checkpointPath(1));
    await writeSafetensors(file, tensors, { format: 'pt' });
    await run.addCheckpoint({ step: 1, path: run.checkpointPath(1), time: Date.now() });
    const stats: WriteTensor[] = names.flatMap((name, i) => [
      { name: `${name}.v_row`, dtype: 'F32' as const, shape: [shape.dim], data: Float32Array.from({ length: shape.dim }, (_, k) => 1e-6 * (1 + ((k * 7 + i + m) % 13))) },
      { name: `${name}.v_col`, dtype: 'F32' as const, shape: [shape.dim], data: Float32Array.from({ length: shape.dim }, (_, k) => 1e-6 * (1 + ((k * 5 + i * m) % 11))) },
    ]);
    await writeSafetensors(path.join(run.dir, run.statsPath(1)), stats, { format: 'basin-stats-1', step: '1' });
    await run.update({ status: 'completed' });
    runs.push(run.dir);
    log(`  wrote ${path.basename(run.dir)}: ${(fs.statSync(file).size / 1e9).toFixed(2)} GB`);
  }
  return runs;
}

async function readBound(files: string[]): Promise<{ seconds: number; bytes: number }> {
  const buf = Buffer.allocUnsafe(64 << 20);
  const t0 = performance.now();
  let bytes = 0;
  for (const f of files) {
    const h = await fs.promises.open(f, 'r');
    try {
      for (;;) {
        const { bytesRead } = await h.read(buf, 0, buf.length, bytes === 0 ? 0 : null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
      }
    } finally {
      await h.close();
    }
  }
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

export async function runMergeBench(o: MergeBenchOptions): Promise<object> {
  const shape: ModelShape = o.quick ? { dim: 1024, matrices: 48 } : { dim: 4096, matrices: 32 };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-merge-'));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  try {
    o.log(`merge bench: 3 models of ${shape.matrices} × [${shape.dim}, ${shape.dim}] bf16 in ${dir}`);
    const runs = await writeModels(dir, shape, o.log);
    const files = runs.map((r) => path.join(r, 'checkpoints', 'step-1.safetensors'));
    const inputBytes = files.reduce((a, f) => a + fs.statSync(f).size, 0);
    // Read twice and keep the second: both the bound and the merges then read from the same (warm) page cache.
    await readBound(files);
    const bound = await readBound(files);
    o.log(`  read bound: ${(bound.bytes / 1e9).toFixed(2)} GB in ${bound.seconds.toFixed(2)} s`);
    const largestTensorBytes = shape.dim * shape.dim * 4;
    const rows: object[] = [];
    global.gc?.();
    const baselineRss = process.memoryUsage().rss;
    for (const [method, params] of [
      ['ties', '{ density: 0.5 }'],
      ['curvature', '{ density: 0.2 }'],
    ] as const) {
      const yaml = `merge_method: ${method}\nbase_model: ${JSON.stringify(runs[0])}\nmodels:\n  - model: ${JSON.stringify(runs[1])}\n  - model: ${JSON.stringify(runs[2])}\nparameters: ${params}\n`;
      const file = path.join(dir, `${method}.merge.yaml`);
      fs.writeFileSync(file, yaml);
      const plan = await planMerge(parseMergeConfig(yaml, file));
      await rt.sync();
      rt.pool.resetPeak();
      let peakRss = process.memoryUsage().rss;
      const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
      const t0 = performance.now();
      const report = await executeMerge({ rt, plan, outDir: path.join(dir, `out-${method}`), force: true });
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(timer);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      const gpuPeak = rt.pool.snapshot().peakTotalBytes;
      rows.push({
        case: method,
        input_gb: inputBytes / 1e9,
        seconds,
        input_gb_per_s: inputBytes / 1e9 / seconds,
        read_bound_seconds: bound.seconds,
        ratio_vs_read_bound: bound.seconds / seconds,
        peak_rss_mb: peakRss / 1e6,
        baseline_rss_mb: baselineRss / 1e6,
        rss_limit_mb: (baselineRss + 4 * largestTensorBytes) / 1e6,
        peak_gpu_mb: gpuPeak / 1e6,
        output_gb: report.bytesWritten / 1e9,
      });
      o.log(`  ${method}: ${seconds.toFixed(2)} s, ${(inputBytes / 1e9 / seconds).toFixed(3)} GB/s, peak RSS ${(peakRss / 1e6).toFixed(0)} MB, GPU ${(gpuPeak / 1e6).toFixed(0)} MB`);
      fs.rmSync(path.join(dir, `out-${method}`), { recursive: true, force: true });
    }
    const ties = rows[0] as { ratio_vs_read_bound: number; peak_rss_mb: number };
    const peakRssAll = Math.max(...rows.map((r) => (r as { peak_rss_mb: number }).peak_rss_mb));
    return {
      bench: 'merge',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: ['read bound: the same files read once with 64 MiB reads'],
      setup: { models: 3, dtype: 'bf16', shape: `${shape.matrices} × [${shape.dim}, ${shape.dim}]`, input_gb: inputBytes / 1e9, largest_tensor_f32_mb: largestTensorBytes / 1e6 },
      rows,
      headline: { ratio_vs_read_bound: ties.ratio_vs_read_bound, peak_rss_mb: peakRssAll, rss_limit_mb: (baselineRss + 4 * largestTensorBytes) / 1e6 },
    };
  } finally {
    gpu.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatMergeBench(report: object): string {
  const r = report as { setup: { shape: string; input_gb: number }; rows: Record<string, number | string>[]; headline: Record<string, number>; device: { description: string } };
  const lines = [`merge bench on ${r.device.description}: 3 bf16 models of ${r.setup.shape} (${r.setup.input_gb.toFixed(2)} GB in all)`];
  lines.push(`${'method'.padEnd(10)} ${'seconds'.padStart(8)} ${'GB/s'.padStart(7)} ${'read s'.padStart(7)} ${'ratio'.padStart(6)} ${'peak RSS MB'.padStart(12)} ${'limit MB'.padStart(9)} ${'GPU MB'.padStart(7)}`);
  for (const x of r.rows) {
    const n = (k: string, d = 2) => (x[k] as number).toFixed(d);
    lines.push(`${String(x.case).padEnd(10)} ${n('seconds').padStart(8)} ${n('input_gb_per_s', 3).padStart(7)} ${n('read_bound_seconds').padStart(7)} ${n('ratio_vs_read_bound').padStart(6)} ${n('peak_rss_mb', 0).padStart(12)} ${n('rss_limit_mb', 0).padStart(9)} ${n('peak_gpu_mb', 0).padStart(7)}`);
  }
  lines.push(`headline: ratio_vs_read_bound ${r.headline.ratio_vs_read_bound.toFixed(3)} (target ≥ 0.5), peak_rss_mb ${r.headline.peak_rss_mb.toFixed(0)} (limit ${r.headline.rss_limit_mb.toFixed(0)})`);
  return lines.join('\n');
}
