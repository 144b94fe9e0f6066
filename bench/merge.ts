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
// baseline). The baseline is the RSS of this process once it has created the device and compiled every kernel of
// both methods (tiny merges of tiny models), before any benchmark model is written or read. Peak GPU memory is the buffer pool's high-water mark: live bytes (what the merge
// holds) and live + pooled (what the device holds); the pool is emptied before each merge.
// Repetitions (`--quick`: 3) interleave the read bound and the two merges, so that load from other processes hits
// all alike; the figures are medians. Each row also says where a merge's time went (read wait, upload, GPU
// passes, readback, write) and how many dispatches and submits a tensor took (the executor's MergeTiming).
//
// On a software adapter (lavapipe: `device.fallback`) the "GPU" is the CPU: kernels run on the same cores as the
// reads, GPU buffers are host memory and count in the RSS. The ratio target is for a real GPU; here the bench
// shows the work per byte and the memory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { parseMergeConfig } from '../src/files/merge/config';
import { planMerge } from '../src/files/merge/plan';
import { RunFolder } from '../src/files/run-record';
import { writeSafetensors, type WriteTensor } from '../src/files/safetensors';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { MERGE_PREVIEW_ROWS } from '../src/protocol/panels/merge';
import { executeMerge, type MergeTiming } from '../src/engine/merge/execute';
import { decodeFloatBytes } from '../src/engine/ops/convert';
import { dawnPollCount } from '../src/engine/gpu/dawn-polling';
import { gitCommit, median } from './report';

export interface MergeBenchOptions {
  json: boolean;
  quick?: boolean;
  /** Another model shape than quick's or the full one's (a size between them where the full run takes too long). */
  shape?: ModelShape;
  /** Repetitions (default: 3 quick, 1 full). */
  reps?: number;
  /** The executor's row-chunk budget (bytes of f32 per operand; default the executor's; Infinity: whole tensors). */
  chunkBytes?: number;
  log(s: string): void;
}

export interface ModelShape {
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
export async function writeModels(dir: string, shape: ModelShape, log: (s: string) => void): Promise<string[]> {
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

/** CPU seconds of this process's main (JS) thread so far, from /proc (Linux); null elsewhere. */
function mainThreadCpuSeconds(): number | null {
  try {
    // Fields after the command name: state is field 3, utime and stime are fields 14 and 15 (clock ticks, 100 Hz).
    const f = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/** The two merges timed (and warmed up): method and its parameters. */
const METHODS = [
  ['ties', '{ density: 0.5 }'],
  ['curvature', '{ density: 0.2 }'],
] as const;

/** A merge config of `runs` (base, then two experts). */
const mergeYaml = (method: string, params: string, runs: string[]) =>
  `merge_method: ${method}\nbase_model: ${JSON.stringify(runs[0])}\nmodels:\n  - model: ${JSON.stringify(runs[1])}\n  - model: ${JSON.stringify(runs[2])}\nparameters: ${params}\n`;

export async function runMergeBench(o: MergeBenchOptions): Promise<object> {
  const shape: ModelShape = o.shape ?? (o.quick ? { dim: 1024, matrices: 48 } : { dim: 4096, matrices: 32 });
  const reps = o.reps ?? (o.quick ? 3 : 1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-merge-'));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  try {
    // The device alone: made, and one kernel run (a BF16 decode).
    const probe = decodeFloatBytes(rt, new Uint8Array(8), 'BF16', [4]);
    await probe.toArray();
    probe.dispose();
    rt.pool.trim();
    global.gc?.();
    const deviceRss = process.memoryUsage().rss;
    // The runtime's own baseline: the device with every kernel of both methods compiled (a software adapter
    // keeps tens of MB of compiled code per pipeline set), from tiny merges (whole tensors and row chunks) of
    // tiny models: what any merge costs before it holds a byte of the models.
    {
      const warmDir = path.join(dir, 'warm');
      const tiny = await writeModels(warmDir, { dim: 64, matrices: 2 }, () => undefined);
      for (const [method, params] of METHODS) {
        const plan = await planMerge(parseMergeConfig(mergeYaml(method, params, tiny), path.join(warmDir, `${method}.merge.yaml`)));
        for (const chunkBytes of [undefined, 64 * 4 * 8]) await executeMerge({ rt, plan, outDir: path.join(warmDir, `out-${method}`), force: true, chunkBytes });
        await executeMerge({ rt, plan, preview: { tensors: 1, rows: 4 } });
      }
      fs.rmSync(warmDir, { recursive: true, force: true });
    }
    rt.pool.trim();
    global.gc?.();
    const baselineRss = process.memoryUsage().rss;
    o.log(`merge bench: RSS ${(deviceRss / 1e6).toFixed(0)} MB with the device, ${(baselineRss / 1e6).toFixed(0)} MB with the merge kernels compiled (the baseline)`);
    o.log(`merge bench: 3 models of ${shape.matrices} × [${shape.dim}, ${shape.dim}] bf16 in ${dir}`);
    const runs = await writeModels(dir, shape, o.log);
    const files = runs.map((r) => path.join(r, 'checkpoints', 'step-1.safetensors'));
    const inputBytes = files.reduce((a, f) => a + fs.statSync(f).size, 0);
    await readBound(files); // warm the page cache: the bound and the merges then read alike
    global.gc?.();
    const rssBeforeMerges = process.memoryUsage().rss;
    o.log(`  RSS: ${(baselineRss / 1e6).toFixed(0)} MB baseline, ${(rssBeforeMerges / 1e6).toFixed(0)} MB after writing the models`);
    const largestTensorBytes = shape.dim * shape.dim * 4;
    const methods = METHODS;
    const plans = new Map<string, Awaited<ReturnType<typeof planMerge>>>();
    for (const [method, params] of methods) {
      const yaml = mergeYaml(method, params, runs);
      const file = path.join(dir, `${method}.merge.yaml`);
      fs.writeFileSync(file, yaml);
      plans.set(method, await planMerge(parseMergeConfig(yaml, file)));
    }
    // Warm-up (excluded from the timing): a one-tensor preview of each method compiles its kernels.
    for (const [method] of methods) await executeMerge({ rt, plan: plans.get(method)!, preview: { tensors: 1, rows: 4 } });
    rt.pool.trim();
    global.gc?.();
    const rssWarm = process.memoryUsage().rss;
    o.log(`  RSS: ${(rssWarm / 1e6).toFixed(0)} MB with the merge kernels compiled`);
    interface Sample { seconds: number; cpuSeconds: number; mainCpuSeconds: number | null; gcMs: number; polls: number; peakRss: number; gpuLive: number; gpuTotal: number; bytesWritten: number; bytesRead: number; timing: MergeTiming }
    const samples = new Map<string, Sample[]>(methods.map(([m]) => [m, []]));
    const boundSeconds: number[] = [];
    for (let r = 0; r < reps; r++) {
      const bound = await readBound(files);
      boundSeconds.push(bound.seconds);
      o.log(`  [${r + 1}/${reps}] read bound: ${(bound.bytes / 1e9).toFixed(2)} GB in ${bound.seconds.toFixed(2)} s`);
      for (const [method] of methods) {
        await rt.sync();
        rt.pool.trim(); // each merge starts with an empty pool: its peak is its own
        rt.pool.resetPeak();
        global.gc?.();
        let peakRss = process.memoryUsage().rss;
        const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        const main0 = mainThreadCpuSeconds();
        const polls0 = dawnPollCount();
        let gcMs = 0;
        const gcObserver = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) gcMs += e.duration;
        });
        gcObserver.observe({ entryTypes: ['gc'] });
        const report = await executeMerge({ rt, plan: plans.get(method)!, outDir: path.join(dir, `out-${method}`), force: true, chunkBytes: o.chunkBytes });
        const seconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const cpuSeconds = (cpu.user + cpu.system) / 1e6;
        const main1 = mainThreadCpuSeconds();
        const mainCpuSeconds = main0 === null || main1 === null ? null : main1 - main0;
        const polls = dawnPollCount() - polls0;
        await new Promise((r) => setImmediate(r)); // the observer's last entries
        gcObserver.disconnect();
        clearInterval(timer);
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        const pool = rt.pool.snapshot();
        samples.get(method)!.push({ seconds, cpuSeconds, mainCpuSeconds, gcMs, polls, peakRss, gpuLive: pool.peakLiveBytes, gpuTotal: pool.peakTotalBytes, bytesWritten: report.bytesWritten, bytesRead: report.bytesRead, timing: report.timing! });
        o.log(`  [${r + 1}/${reps}] ${method}: ${seconds.toFixed(2)} s (${cpuSeconds.toFixed(1)} CPU s), ${(inputBytes / 1e9 / seconds).toFixed(3)} GB/s, peak RSS ${(peakRss / 1e6).toFixed(0)} MB, GPU ${(pool.peakLiveBytes / 1e6).toFixed(0)} MB live / ${(pool.peakTotalBytes / 1e6).toFixed(0)} MB with the pool`);
        fs.rmSync(path.join(dir, `out-${method}`), { recursive: true, force: true });
      }
    }
    // The merge panel's preview (every tensor, MERGE_PREVIEW_ROWS rows of each): the panel wants it under 2 s.
    const previewSeconds = new Map<string, number>();
    for (const [method] of methods) {
      const plan = plans.get(method)!;
      const times: number[] = [];
      for (let r = 0; r < Math.max(1, reps); r++) {
        const t0 = performance.now();
        await executeMerge({ rt, plan, preview: { tensors: plan.tasks.length, rows: MERGE_PREVIEW_ROWS } });
        times.push((performance.now() - t0) / 1000);
      }
      previewSeconds.set(method, median(times));
      o.log(`  ${method} preview (${plan.tasks.length} tensors × ${MERGE_PREVIEW_ROWS} rows): ${median(times).toFixed(2)} s`);
    }
    const boundMedian = median(boundSeconds);
    const rows: object[] = methods.map(([method]) => {
      const xs = samples.get(method)!;
      const seconds = median(xs.map((x) => x.seconds));
      const t = xs[xs.length - 1].timing;
      const mainCpu = xs.some((x) => x.mainCpuSeconds === null) ? null : median(xs.map((x) => x.mainCpuSeconds!));
      const perTensor = (v: number) => v / Math.max(1, t.tensors);
      return {
        case: method,
        input_gb: inputBytes / 1e9,
        seconds,
        input_gb_per_s: inputBytes / 1e9 / seconds,
        read_bound_seconds: boundMedian,
        ratio_vs_read_bound: boundMedian / seconds,
        cpu_seconds: median(xs.map((x) => x.cpuSeconds)),
        // The JS thread's CPU time (Linux: /proc; null elsewhere): reads issued, uploads and dispatches recorded,
        // outputs written, Dawn's polls, garbage collection. Everything else (file reads, the driver, lavapipe's
        // kernels) runs on other threads. read_bound_seconds / main_thread_cpu_s is the ratio this thread's CPU
        // alone would allow, were none of it waiting (see dawn_polls).
        main_thread_cpu_s: mainCpu,
        ratio_cap_main_thread: mainCpu === null ? null : boundMedian / mainCpu,
        // Of which garbage collection (its pauses on the main thread): mostly the mapped staging ranges, which V8
        // counts as external memory (Dawn's getMappedRange makes a new ArrayBuffer per mapping).
        gc_ms: median(xs.map((x) => x.gcMs)),
        // Dawn's polls of the GPU during the merge (gpu/dawn-polling.ts): while the thread waits for the GPU it polls
        // once a millisecond, and each poll is a wake-up that main_thread_cpu_s counts. That part of the thread's
        // CPU grows with the merge's wall time, not with its work (on lavapipe, a profile put about half of the
        // thread's CPU in waiting), so ratio_cap_main_thread is a lower bound on what the thread allows.
        dawn_polls: median(xs.map((x) => x.polls)),
        peak_rss_mb: Math.max(...xs.map((x) => x.peakRss)) / 1e6,
        baseline_rss_mb: baselineRss / 1e6,
        device_rss_mb: deviceRss / 1e6,
        rss_before_merges_mb: rssBeforeMerges / 1e6,
        rss_kernels_compiled_mb: rssWarm / 1e6,
        rss_limit_mb: (baselineRss + 4 * largestTensorBytes) / 1e6,
        peak_gpu_mb: Math.max(...xs.map((x) => x.gpuLive)) / 1e6,
        peak_gpu_with_pool_mb: Math.max(...xs.map((x) => x.gpuTotal)) / 1e6,
        peak_gpu_tensors: Math.max(...xs.map((x) => x.gpuLive)) / largestTensorBytes,
        output_gb: xs[0].bytesWritten / 1e9,
        // Bytes read over the files' size: 1 when every input is read once; a row-chunked top-k trim reads its
        // inputs again for each sweep of its select (tensor-merge.ts defaultChunkBytes).
        read_amplification: xs[0].bytesRead / inputBytes,
        repetitions: xs.length,
        preview_seconds: previewSeconds.get(method)!,
        // The last repetition's phases, per tensor (ms).
        ms_per_tensor: {
          read_wait: perTensor(t.readWaitMs),
          upload: perTensor(t.uploadMs),
          gpu_passes: perTensor(t.computeMs),
          readback: perTensor(t.readbackMs),
          write: perTensor(t.writeMs),
        },
        // Row-chunked tensors: chunks read while the previous chunk merged, and guesses not taken.
        chunk_reads_ahead: t.chunkReadsAhead,
        chunk_reads_wasted: t.chunkReadsWasted,
        // Mapped staging memory the reads landed in (host memory on any adapter): buffers made, peak MB.
        staging_buffers: t.stagingBuffers,
        staging_peak_mb: t.stagingPeakBytes / 1e6,
        dispatches_per_tensor: perTensor(t.dispatches),
        submits_per_tensor: perTensor(t.submits),
      };
    });
    const ties = rows[0] as { ratio_vs_read_bound: number; peak_rss_mb: number };
    const peakRssAll = Math.max(...rows.map((r) => (r as { peak_rss_mb: number }).peak_rss_mb));
    const peakGpuAll = Math.max(...rows.map((r) => (r as { peak_gpu_mb: number }).peak_gpu_mb));
    return {
      bench: 'merge',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: ['read bound: the same files read once with 64 MiB reads'],
      setup: { models: 3, dtype: 'bf16', shape: `${shape.matrices} × [${shape.dim}, ${shape.dim}]`, input_gb: inputBytes / 1e9, largest_tensor_f32_mb: largestTensorBytes / 1e6, chunks: o.chunkBytes === undefined ? 'the executor\'s default' : Number.isFinite(o.chunkBytes) ? `${o.chunkBytes} bytes` : 'none: every tensor whole' },
      rows,
      headline: { ratio_vs_read_bound: ties.ratio_vs_read_bound, peak_rss_mb: peakRssAll, rss_limit_mb: (baselineRss + 4 * largestTensorBytes) / 1e6, peak_gpu_mb: peakGpuAll, preview_seconds: Math.max(...previewSeconds.values()) },
      notes: [
        'baseline_rss_mb: this process with the device made and every kernel of both methods compiled (tiny merges of tiny models, whole and in row chunks), before any benchmark model was written or read; device_rss_mb with the device alone (one kernel run); rss_before_merges_mb after writing the models, rss_kernels_compiled_mb after a one-tensor preview of each method; a merge starts from the last',
        'what the RSS holds above the GPU buffers on lavapipe: the JS heap between collections (tens of MB), the compiled kernels, and memory the driver\'s allocator keeps after buffers are destroyed (the RSS stays well above the baseline after a merge, with every buffer freed)',
        'peak_gpu_mb: the merge\'s live GPU buffers at their high-water mark (peak_gpu_with_pool_mb adds freed buffers the pool keeps for reuse); peak_gpu_tensors is the same in units of the largest tensor in f32',
        'a tensor\'s merge holds on the GPU: the base and each expert in f32 (widened from bf16), the output, the per-element accumulators the method reads (ties and curvature: vote, numerator, denominator, sign flags) and one score per trimmed expert: about 3 + 1 + 4 + 2 = 10 tensors for two experts, so 4 × the largest tensor cannot hold on the GPU side with f32 buffers',
        ...(gpu.info.fallback
          ? ['software adapter (lavapipe): GPU buffers are host memory and count in the RSS, and the kernels run on the CPU cores that also read the files; the ratio target (≥ 0.5) is for a real GPU']
          : []),
      ],
    };
  } finally {
    gpu.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatMergeBench(report: object): string {
  const r = report as { setup: { shape: string; input_gb: number; chunks?: string }; rows: Record<string, number | string>[]; headline: Record<string, number>; device: { description: string } };
  const lines = [`merge bench on ${r.device.description}: 3 bf16 models of ${r.setup.shape} (${r.setup.input_gb.toFixed(2)} GB in all), medians; row chunks: ${r.setup.chunks ?? 'default'}`];
  lines.push(`${'method'.padEnd(10)} ${'seconds'.padStart(8)} ${'GB/s'.padStart(7)} ${'read s'.padStart(7)} ${'ratio'.padStart(6)} ${'peak RSS MB'.padStart(12)} ${'limit MB'.padStart(9)} ${'GPU MB'.padStart(7)} ${'+pool'.padStart(6)}`);
  for (const x of r.rows) {
    const n = (k: string, d = 2) => (x[k] as number).toFixed(d);
    lines.push(`${String(x.case).padEnd(10)} ${n('seconds').padStart(8)} ${n('input_gb_per_s', 3).padStart(7)} ${n('read_bound_seconds').padStart(7)} ${n('ratio_vs_read_bound').padStart(6)} ${n('peak_rss_mb', 0).padStart(12)} ${n('rss_limit_mb', 0).padStart(9)} ${n('peak_gpu_mb', 0).padStart(7)} ${n('peak_gpu_with_pool_mb', 0).padStart(6)}`);
  }
  if (r.rows.every((x) => typeof x.main_thread_cpu_s === 'number')) {
    lines.push(`main thread CPU s, of which GC; Dawn's polls while waiting (the ratio the CPU alone would allow): ${r.rows.map((x) => `${x.case} ${(x.main_thread_cpu_s as number).toFixed(2)}, GC ${((x.gc_ms as number) / 1000).toFixed(2)}; ${x.dawn_polls} polls (${(x.ratio_cap_main_thread as number).toFixed(2)})`).join('; ')}`);
  }
  lines.push('ms per tensor: read wait · upload · GPU passes · readback · write; dispatches, submits per tensor; bytes read / file bytes; staging buffers (peak MB)');
  for (const x of r.rows) {
    const m = x.ms_per_tensor as unknown as Record<string, number>;
    const f = (v: number) => v.toFixed(1);
    lines.push(`${String(x.case).padEnd(10)} ${f(m.read_wait)} · ${f(m.upload)} · ${f(m.gpu_passes)} · ${f(m.readback)} · ${f(m.write)}; ${(x.dispatches_per_tensor as number).toFixed(0)}, ${(x.submits_per_tensor as number).toFixed(1)}; read ×${(x.read_amplification as number).toFixed(1)}; staging ${x.staging_buffers} (${(x.staging_peak_mb as number).toFixed(0)} MB)`);
  }
  lines.push(`panel preview (every tensor × ${MERGE_PREVIEW_ROWS} rows), seconds: ${r.rows.map((x) => `${x.case} ${(x.preview_seconds as number).toFixed(2)}`).join(', ')}`);
  lines.push(`headline: ratio_vs_read_bound ${r.headline.ratio_vs_read_bound.toFixed(3)} (target ≥ 0.5), peak_rss_mb ${r.headline.peak_rss_mb.toFixed(0)} (limit ${r.headline.rss_limit_mb.toFixed(0)}), peak_gpu_mb ${r.headline.peak_gpu_mb.toFixed(0)}, preview_seconds ${r.headline.preview_seconds.toFixed(2)} (target < 2)`);
  for (const note of (report as { notes?: string[] }).notes ?? []) lines.push(`note: ${note}`);
  return lines.join('\n');
}
