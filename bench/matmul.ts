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
//
// PyTorch on the CPU (float32 torch.matmul, a python3 subprocess: bench/torch/basin_torch.py; installed by
// `sudo bash scripts/setup-system.sh --torch`) is the third column, timed the same way inside its process (a batch
// of products, the last one finished when torch.matmul returns); its batches alternate with the other two.
// Absent, its figures are null and `torch_why` says why.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { Tensor, fromArray } from '../src/engine/tensor/tensor';
import { matmul } from '../src/engine/ops/matmul';
import { Rng } from '../src/engine/data/rng';
import { TorchPeer, describeTorch, readAllF32 } from './torch/peer';
import { writeSafetensors } from '../src/files/safetensors';
import { gitCommit, median, packageRoot } from './report';

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
  torch_ms: number | null;
  torch_gflops: number | null;
  /** Basin GFLOP/s ÷ PyTorch (CPU) GFLOP/s. */
  ratio_vs_torch: number | null;
  /** Largest |Basin − f64 reference| / (1 + |reference|) over sampled outputs. */
  basin_max_err: number;
  tfjs_max_err: number | null;
  torch_max_err: number | null;
  /** Why the TF.js figures are null. */
  why?: string;
  /** Why the PyTorch figures are null. */
  torch_why?: string;
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


/** Uniform in [-0.5, 0.5), from Basin's PRNG (src/engine/data/rng.ts) so a case is reproducible. */
function randomData(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.float() - 0.5;
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
  /** Fetch the last product for last() where that is not free (PyTorch's lives in another process). */
  fetchLast?(): Promise<void>;
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

/** PyTorch's runner: the operands go over once as a safetensors file; the result comes back only for the check. */
async function torchRunner(peer: TorchPeer, aData: Float32Array, bData: Float32Array, q: Case, perBatch: number): Promise<Runner> {
  const file = peer.file('mm.safetensors');
  await writeSafetensors(file, [
    { name: 'a', dtype: 'F32', shape: q.transA ? [q.k, q.m] : [q.m, q.k], data: aData },
    { name: 'b', dtype: 'F32', shape: q.transB ? [q.n, q.k] : [q.k, q.n], data: bData },
  ]);
  await peer.call({ cmd: 'mm_load', file, transA: Boolean(q.transA), transB: Boolean(q.transB) });
  let last: Float32Array = new Float32Array(0);
  return {
    async batch() {
      const r = await peer.call({ cmd: 'mm_batch', n: perBatch });
      return r.ms_per_product as number;
    },
    last: () => last,
    async fetchLast() {
      const out = peer.file('mm-out.safetensors');
      await peer.call({ cmd: 'mm_result', out });
      last = (await readAllF32(out)).get('c')!;
    },
    dispose() {},
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
  const torchStart = await TorchPeer.start();
  const torch = 'why' in torchStart ? null : torchStart;
  const torchWhy = 'why' in torchStart ? torchStart.why : null;
  opts.log(torch ? `PyTorch: ${describeTorch(torch.info)}, BLAS ${torch.info.blas.libraries.join(', ') || 'none seen'}` : `PyTorch: ${torchWhy}`);
  try {
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
      let pt: Runner | null = null;
      let caseTorchWhy: string | null = torchWhy;
      const torchTimes: number[] = [];
      const torchStep = async (warm: boolean): Promise<void> => {
        if (!pt) return;
        try {
          const ms = await pt.batch();
          if (!warm) torchTimes.push(ms);
        } catch (e) {
          caseTorchWhy = `PyTorch failed on this case: ${(e as Error).message.split('\n')[0]}`;
          opts.log(caseTorchWhy);
          pt = null;
        }
      };
      if (torch) {
        try {
          pt = await torchRunner(torch, aData, bData, q, perBatch);
        } catch (e) {
          caseTorchWhy = `PyTorch failed on this case: ${(e as Error).message.split('\n')[0]}`;
        }
      }
      await basin.batch(); // warm-up: pipeline compiles, buffer pools
      await tfStep(true);
      await torchStep(true);
      for (let r = 0; r < batches; r++) {
        // ABBA across the three: forward, then reversed.
        const forward = r % 4 === 0 || r % 4 === 3;
        const order = forward ? ['basin', 'tfjs', 'torch'] : ['torch', 'tfjs', 'basin'];
        for (const who of order) {
          if (who === 'basin') basinTimes.push(await basin.batch());
          else if (who === 'tfjs') await tfStep(false);
          else await torchStep(false);
        }
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
      let torchMs: number | null = null;
      let torchErr: number | null = null;
      if (pt && torchTimes.length) {
        torchMs = median(torchTimes);
        try {
          await (pt as Runner).fetchLast!();
          torchErr = spotCheck((pt as Runner).last(), aData, bData, q);
        } catch (e) {
          caseTorchWhy = `PyTorch's result could not be read back: ${(e as Error).message.split('\n')[0]}`;
          torchMs = null;
        }
      }
      const basinG = flops / (basinMs * 1e6);
      const tfG = tfMs === null ? null : flops / (tfMs * 1e6);
      const torchG = torchMs === null ? null : flops / (torchMs * 1e6);
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
        torch_ms: torchMs === null ? null : round(torchMs, 3),
        torch_gflops: torchG === null ? null : round(torchG),
        ratio_vs_torch: torchG === null ? null : round(basinG / torchG, 4),
        basin_max_err: Number(basinErr.toExponential(2)),
        tfjs_max_err: tfErr === null ? null : Number(tfErr.toExponential(2)),
        torch_max_err: torchErr === null ? null : Number(torchErr.toExponential(2)),
        ...(tfMs === null ? { why: caseWhy ?? tfWhy ?? 'unknown' } : {}),
        ...(torchMs === null ? { torch_why: caseTorchWhy ?? 'unknown' } : {}),
      };
      rows.push(row);
      opts.log(
        `  ${q.name.padEnd(20)} basin ${row.basin_gflops.toFixed(2).padStart(7)} GFLOP/s   tfjs ${row.tfjs_gflops === null ? '   null' : row.tfjs_gflops.toFixed(2).padStart(7)} GFLOP/s   ` +
          `torch ${row.torch_gflops === null ? '   null' : row.torch_gflops.toFixed(2).padStart(7)} GFLOP/s   ratio ${row.ratio ?? 'null'}, vs torch ${row.ratio_vs_torch ?? 'null'}`,
      );
    }
    const r1024 = rows.find((r) => r.m === 1024 && r.k === 1024 && r.n === 1024);
    const report = {
      bench: 'matmul',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: info.vendor, architecture: info.architecture, description: info.description, backend: info.backend, fallback: info.fallback },
      peers: [`tfjs-webgpu ${tfjs.version ?? 'unknown'}`, ...(torch ? [describeTorch(torch.info)] : [])],
      ...(tfWhy ? { tfjs: null, why: tfWhy } : {}),
      torch: torch ? { version: torch.info.torch, python: torch.info.executable, threads: torch.info.threads, blas: torch.info.blas.kind, blas_libraries: torch.info.blas.libraries } : null,
      ...(torchWhy ? { torch_why: torchWhy } : {}),
      timed:
        'per case: a batch of back-to-back products of the same operands, ended by reading the last result back; ' +
        `Basin, TF.js and PyTorch (CPU) batches alternate; median over ${batches} batches each after one warm-up batch, divided by the ` +
        'products per batch; f32, 2·M·N·K flops; nothing subtracted (PyTorch: timed inside its process, the operands already there)',
      rows,
      headline: { ratio_vs_tfjs_1024: r1024?.ratio ?? null, ratio_vs_torch_cpu: r1024?.ratio_vs_torch ?? null },
    };
    return report;
  } finally {
    // The peer process would keep Node alive after an error.
    torch?.close();
    gpu.destroy();
  }
}

/** The report as a table for people. */
export function formatMatmulReport(report: object): string {
  const r = report as {
    device: { description: string; backend: string; fallback: boolean };
    rows: MatmulRow[];
    headline: { ratio_vs_tfjs_1024: number | null; ratio_vs_torch_cpu: number | null };
    peers: string[];
    why?: string;
    torch_why?: string;
    commit: string | null;
  };
  const lines = [
    `matmul (f32) on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], peer ${r.peers.join(', ')}, commit ${r.commit ?? 'n/a'}`,
    '',
    `${'case'.padEnd(22)}${'basin GFLOP/s'.padStart(15)}${'tfjs GFLOP/s'.padStart(15)}${'torch GFLOP/s'.padStart(15)}${'ratio'.padStart(9)}${'vs torch'.padStart(10)}` +
      `${'basin ms'.padStart(11)}${'tfjs ms'.padStart(11)}${'torch ms'.padStart(11)}`,
  ];
  for (const row of r.rows) {
    const f = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? 'null' : x.toFixed(d));
    lines.push(
      `${row.case.padEnd(22)}${f(row.basin_gflops).padStart(15)}${f(row.tfjs_gflops).padStart(15)}${f(row.torch_gflops).padStart(15)}${f(row.ratio).padStart(9)}` +
        `${f(row.ratio_vs_torch, 3).padStart(10)}${f(row.basin_ms, 1).padStart(11)}${f(row.tfjs_ms, 1).padStart(11)}${f(row.torch_ms, 1).padStart(11)}`,
    );
  }
  lines.push(
    '',
    'ratio = Basin GFLOP/s ÷ TF.js WebGPU GFLOP/s (same adapter), vs torch = Basin GFLOP/s ÷ PyTorch CPU GFLOP/s',
    `headline: Basin / TF.js at 1024³ = ${r.headline.ratio_vs_tfjs_1024 ?? 'null'}${r.why ? ` (TF.js: ${r.why})` : ''}; ` +
      `Basin / PyTorch CPU at 1024³ = ${r.headline.ratio_vs_torch_cpu ?? 'null'}${r.torch_why ? ` (PyTorch: ${r.torch_why})` : ''}`,
  );
  return lines.join('\n');
}
