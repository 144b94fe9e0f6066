// `basin bench matmul`: Basin's matmul against TF.js's WebGPU backend on the same adapter and the same GPUDevice.
//
// What is timed, per case: a batch of back-to-back products of the same operands (Basin: one submit; TF.js: its
// own batching), ended by reading the last result back to the host, which waits for all of them. Nothing is
// subtracted. Basin and TF.js batches alternate (so a change in machine load hits both). One batch each warms up
// (pipeline compiles, buffer pools); the figure is the median over several batches
// of (batch time / products in the batch). A 2·M·N·K flop count gives GFLOP/s.
//
// TF.js (@tensorflow/tfjs-core and @tensorflow/tfjs-backend-webgpu, devDependencies) is loaded at run time with
// require() and never bundled: the bench needs the dev dependencies installed. Where TF.js cannot run, its figures
// are null and `why` (top level, or per row) says why.
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { Tensor, fromArray } from '../src/engine/tensor/tensor';
import { matmul } from '../src/engine/ops/matmul';

export interface MatmulBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
}

interface Case {
  name: string;
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  what: string;
}

const CASES: Case[] = [
  { name: '256x256x256', m: 256, k: 256, n: 256, what: 'square' },
  { name: '512x512x512', m: 512, k: 512, n: 512, what: 'square' },
  { name: '1024x1024x1024', m: 1024, k: 1024, n: 1024, what: 'square' },
  { name: '2048x128x512 (B^T)', m: 2048, k: 128, n: 512, transB: true, what: 'linear forward x·Wᵀ, B·T=2048, 128→512' },
  { name: '2048x512x128', m: 2048, k: 512, n: 128, what: 'linear backward dx = g·W (and 512→128 forward shape)' },
  { name: '512x2048x128 (A^T)', m: 512, k: 2048, n: 128, transA: true, what: 'linear backward dW = gᵀ·x' },
];

export interface MatmulRow {
  case: string;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  what: string;
  products_per_batch: number;
  batches: number;
  basin_ms: number;
  basin_gflops: number;
  tfjs_ms: number | null;
  tfjs_gflops: number | null;
  ratio: number | null;
  /** Largest |Basin − f64 reference| / (1 + |reference|) over sampled outputs. */
  basin_max_err: number;
  tfjs_max_err: number | null;
  /** Why the TF.js figures are null. */
  why?: string;
}

/** Minimal view of TF.js used here. */
interface Tf {
  tensor2d(data: Float32Array, shape: [number, number]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA?: boolean, transposeB?: boolean): TfTensor;
  registerBackend(name: string, factory: () => unknown, priority?: number): boolean;
  removeBackend(name: string): void;
  findBackendFactory(name: string): unknown;
  setBackend(name: string): Promise<boolean>;
  getBackend(): string;
  ready(): Promise<void>;
  version_core?: string;
}
interface TfTensor {
  data(): Promise<Float32Array>;
  dispose(): void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function randomData(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Max relative error of c against an f64 dot product, on a few sampled outputs. */
function spotCheck(c: Float32Array, a: Float32Array, b: Float32Array, q: Case): number {
  const { m, k, n } = q;
  let worst = 0;
  for (let s = 0; s < 48; s++) {
    const i = (s * 7919) % m;
    const j = (s * 104729 + 13) % n;
    let ref = 0;
    for (let p = 0; p < k; p++) {
      const av = q.transA ? a[p * m + i] : a[i * k + p];
      const bv = q.transB ? b[j * k + p] : b[p * n + j];
      ref += av * bv;
    }
    worst = Math.max(worst, Math.abs(c[i * n + j] - ref) / (1 + Math.abs(ref)));
  }
  return worst;
}

function packageRoot(): string {
  // bench/ or dist/ sits one level below the package root.
  return path.resolve(__dirname, '..');
}

function gitCommit(): string | null {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: packageRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}

/** TF.js with its WebGPU backend on Basin's own GPUDevice, or the reason it cannot run. */
async function loadTfjs(gpu: GpuDevice, log: (s: string) => void): Promise<{ tf: Tf; version: string } | { why: string; version: string | null }> {
  const req = createRequire(path.join(packageRoot(), 'package.json'));
  let version: string | null = null;
  try {
    version = (req('@tensorflow/tfjs-backend-webgpu/package.json') as { version: string }).version;
  } catch (e) {
    return { why: `@tensorflow/tfjs-backend-webgpu is not installed (a devDependency: run npm install in ${packageRoot()}): ${(e as Error).message.split('\n')[0]}`, version };
  }
  // TF.js prints advice to stdout while it loads; keep stdout for the report.
  const origLog = console.log;
  const origWarn = console.warn;
  console.log = (...a: unknown[]) => log(a.map(String).join(' '));
  console.warn = console.log;
  try {
    // The backend registers itself only where navigator.gpu exists; ours is created below from Basin's device.
    const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
    if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
    if (!g.navigator!.gpu) {
      Object.defineProperty(g.navigator!, 'gpu', {
        value: { requestAdapter: async () => gpu.adapter, getPreferredCanvasFormat: () => 'rgba8unorm' },
        configurable: true,
      });
    }
    const tf = req('@tensorflow/tfjs-core') as Tf;
    const backendMod = req('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend: new (device: GPUDevice, info?: unknown) => unknown };
    const info = (gpu.adapter as unknown as { info?: unknown }).info;
    // Kernels are registered for the backend name 'webgpu': replace its factory (which would request a device of
    // its own) with one that wraps Basin's device.
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new backendMod.WebGPUBackend(gpu.device, info), 0);
    if (!(await tf.setBackend('webgpu'))) return { why: 'tf.setBackend failed for the WebGPU backend on this device', version };
    await tf.ready();
    return { tf, version };
  } catch (e) {
    return { why: `TF.js WebGPU backend failed to start: ${(e as Error).message.split('\n')[0]}`, version };
  } finally {
    console.log = origLog;
    console.warn = origWarn;
  }
}

/** Products per batch: about 1 GFLOP of work, between 1 and 16. */
function batchSize(q: Case): number {
  const flops = 2 * q.m * q.n * q.k;
  return Math.max(1, Math.min(16, Math.round(1e9 / flops)));
}

interface Runner {
  /** One batch; resolves to ms per product. */
  batch(): Promise<number>;
  last(): Float32Array;
  dispose(): void;
}

function basinRunner(rt: Runtime, aData: Float32Array, bData: Float32Array, q: Case, perBatch: number): Runner {
  const a = fromArray(rt, aData, q.transA ? [q.k, q.m] : [q.m, q.k]);
  const b = fromArray(rt, bData, q.transB ? [q.n, q.k] : [q.k, q.n]);
  const opts = { transA: q.transA, transB: q.transB };
  let last: Float32Array = new Float32Array(0);
  return {
    async batch() {
      const t0 = performance.now();
      const outs: Tensor[] = [];
      for (let i = 0; i < perBatch; i++) outs.push(matmul(a, b, opts));
      last = await outs[outs.length - 1].toFloat32();
      const dt = performance.now() - t0;
      for (const o of outs) o.dispose();
      return dt / perBatch;
    },
    last: () => last,
    dispose() {
      a.dispose();
      b.dispose();
    },
  };
}

function tfjsRunner(tf: Tf, aData: Float32Array, bData: Float32Array, q: Case, perBatch: number): Runner {
  const a = tf.tensor2d(aData, q.transA ? [q.k, q.m] : [q.m, q.k]);
  const b = tf.tensor2d(bData, q.transB ? [q.n, q.k] : [q.k, q.n]);
  let last: Float32Array = new Float32Array(0);
  return {
    async batch() {
      const t0 = performance.now();
      const outs: TfTensor[] = [];
      for (let i = 0; i < perBatch; i++) outs.push(tf.matMul(a, b, Boolean(q.transA), Boolean(q.transB)));
      last = await outs[outs.length - 1].data();
      const dt = performance.now() - t0;
      for (const o of outs) o.dispose();
      return dt / perBatch;
    },
    last: () => last,
    dispose() {
      a.dispose();
      b.dispose();
    },
  };
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

export async function runMatmulBench(opts: MatmulBenchOptions): Promise<object> {
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  opts.log(`matmul bench on ${info.description || info.device || info.vendor} (${info.backend}${info.fallback ? ', software adapter' : ''})`);
  const tfjs = await loadTfjs(gpu, opts.log);
  const tfWhy = 'why' in tfjs ? tfjs.why : null;
  if (tfWhy) opts.log(`TF.js: ${tfWhy}`);
  const batches = opts.quick ? 2 : 5;
  const cases = opts.quick ? CASES.filter((c) => c.m * c.n * c.k <= 512 ** 3 || c.name.startsWith('1024')) : CASES;
  const rows: MatmulRow[] = [];
  for (const [ci, q] of cases.entries()) {
    const aData = randomData(q.m * q.k, 2 * ci + 1);
    const bData = randomData(q.k * q.n, 2 * ci + 2);
    const perBatch = opts.quick ? Math.max(1, batchSize(q) >> 2) : batchSize(q);
    const flops = 2 * q.m * q.n * q.k;
    // Basin and TF.js batches alternate, so that a change in machine load between them affects both.
    const basin = basinRunner(rt, aData, bData, q, perBatch);
    let tf: Runner | null = null;
    let caseWhy: string | null = null;
    const basinTimes: number[] = [];
    const tfTimes: number[] = [];
    const tfStep = async (warm: boolean): Promise<void> => {
      if (!tf) return;
      try {
        const ms = await tf.batch();
        if (!warm) tfTimes.push(ms);
      } catch (e) {
        caseWhy = `TF.js failed on this case: ${(e as Error).message.split('\n')[0]}`;
        opts.log(caseWhy);
        tf.dispose();
        tf = null;
      }
    };
    if (!tfWhy && 'tf' in tfjs) {
      try {
        tf = tfjsRunner(tfjs.tf, aData, bData, q, perBatch);
      } catch (e) {
        caseWhy = `TF.js failed on this case: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    await basin.batch(); // warm-up: pipeline compiles, buffer pools
    await tfStep(true);
    for (let r = 0; r < batches; r++) {
      basinTimes.push(await basin.batch());
      await tfStep(false);
    }
    const basinMs = median(basinTimes);
    const basinErr = spotCheck(basin.last(), aData, bData, q);
    basin.dispose();
    let tfMs: number | null = null;
    let tfErr: number | null = null;
    if (tf) {
      tfMs = median(tfTimes);
      tfErr = spotCheck((tf as Runner).last(), aData, bData, q);
      (tf as Runner).dispose();
    }
    const basinG = flops / (basinMs * 1e6);
    const tfG = tfMs === null ? null : flops / (tfMs * 1e6);
    const row: MatmulRow = {
      case: q.name,
      m: q.m,
      k: q.k,
      n: q.n,
      transA: Boolean(q.transA),
      transB: Boolean(q.transB),
      what: q.what,
      products_per_batch: perBatch,
      batches,
      basin_ms: round(basinMs, 3),
      basin_gflops: round(basinG),
      tfjs_ms: tfMs === null ? null : round(tfMs, 3),
      tfjs_gflops: tfG === null ? null : round(tfG),
      ratio: tfG === null ? null : round(basinG / tfG),
      basin_max_err: Number(basinErr.toExponential(2)),
      tfjs_max_err: tfErr === null ? null : Number(tfErr.toExponential(2)),
      ...(tfMs === null ? { why: caseWhy ?? tfWhy ?? 'unknown' } : {}),
    };
    rows.push(row);
    opts.log(`  ${q.name.padEnd(20)} basin ${row.basin_gflops.toFixed(2).padStart(7)} GFLOP/s   tfjs ${row.tfjs_gflops === null ? '   null' : row.tfjs_gflops.toFixed(2).padStart(7)} GFLOP/s   ratio ${row.ratio ?? 'null'}`);
  }
  const r1024 = rows.find((r) => r.m === 1024 && r.k === 1024 && r.n === 1024);
  const report = {
    bench: 'matmul',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, architecture: info.architecture, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [`tfjs-webgpu ${tfjs.version ?? 'unknown'}`],
    ...(tfWhy ? { tfjs: null, why: tfWhy } : {}),
    timed:
      'per case: a batch of back-to-back products of the same operands, ended by reading the last result back; ' +
      `Basin and TF.js batches alternate; median over ${batches} batches each after one warm-up batch, divided by the ` +
      'products per batch; f32, 2·M·N·K flops; nothing subtracted',
    rows,
    headline: { ratio_vs_tfjs_1024: r1024?.ratio ?? null },
  };
  gpu.destroy();
  return report;
}

/** The report as a table for people. */
export function formatMatmulReport(report: object): string {
  const r = report as { device: { description: string; backend: string; fallback: boolean }; rows: MatmulRow[]; headline: { ratio_vs_tfjs_1024: number | null }; peers: string[]; why?: string; commit: string | null };
  const lines = [
    `matmul (f32) on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], peer ${r.peers.join(', ')}, commit ${r.commit ?? 'n/a'}`,
    '',
    `${'case'.padEnd(22)}${'basin GFLOP/s'.padStart(15)}${'tfjs GFLOP/s'.padStart(15)}${'ratio'.padStart(9)}${'basin ms'.padStart(11)}${'tfjs ms'.padStart(11)}`,
  ];
  for (const row of r.rows) {
    const f = (x: number | null, d = 2) => (x === null ? 'null' : x.toFixed(d));
    lines.push(`${row.case.padEnd(22)}${f(row.basin_gflops).padStart(15)}${f(row.tfjs_gflops).padStart(15)}${f(row.ratio).padStart(9)}${f(row.basin_ms, 1).padStart(11)}${f(row.tfjs_ms, 1).padStart(11)}`);
  }
  lines.push('', `headline: Basin / TF.js at 1024³ = ${r.headline.ratio_vs_tfjs_1024 ?? 'null'}${r.why ? ` (TF.js: ${r.why})` : ''}`);
  return lines.join('\n');
}
