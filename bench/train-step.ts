// `basin bench train-step`: one full training step (forward, cross-entropy, backward, Adam update) of the same
// causal transformer in Basin and in TF.js's WebGPU backend (4.22) on the same adapter, in the same process, and
// in PyTorch on the CPU (a python3 subprocess, bench/torch/basin_torch.py, same weights, batch and optimizer;
// installed by `sudo bash scripts/setup-system.sh --torch`, reported as null with the reason when absent).
//
// Same model: TF.js's weights are tf.variables initialised from Basin's initial parameters (so the parameter
// shapes and count are checked equal, and the two loss trajectories should agree to float precision). Same
// data: one fixed batch of token ids from a sparse random Markov chain, uploaded at every step by both. Same
// optimizer: Adam with the same lr, betas and eps, weight decay 0 (Basin's AdamW with λ = 0 is Adam), no
// clipping. Basin's AdamW also runs its non-finite guard (three small grad-norm kernels) as the trainer does.
//
// Timing: after warm-up, the peers' steps alternate (ABBA order: forward, then reversed) so that the load of
// other processes hits all alike; each step is timed until it has completed on the GPU (Basin: the loss readback, which is
// submitted after the optimizer and zeroGrads, then rt.sync(); TF.js: loss.data(), which flushes everything
// minimize() recorded, then its device's onSubmittedWorkDone(); PyTorch: the step inside the python process,
// loss.item() included, IPC excluded). All read the loss back at every step.
//
// Memory (the transformer case, one untimed warm-up step): Basin's buffer-pool high-water mark and TF.js's
// buffer-manager high-water mark, each against an analytic lower bound from the model's shapes
// (transformerLowerBound below).
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import { backward } from '../src/engine/autograd/tape';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import type { TransformerSpec } from '../src/engine/nn/models';
import { AdamW } from '../src/engine/optim/adamw';
import { forwardBatch, materializeModel } from '../src/engine/train/trainer';
import type { Batch } from '../src/engine/train/data-source';
import { tidy } from '../src/engine/tensor/tensor';
import { seededRandom } from '../src/engine/data/rng';
import { TorchPeer, describeTorch } from './torch/peer';
import { KernelProfiler, KernelProfileRow, formatProfile } from '../src/engine/gpu/profiler';
import { gitCommit, median } from './report';

export interface TrainStepBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
  /** Tests: tiny models and fewer steps instead of the demo and transformer cases (the rows say so). */
  tiny?: boolean;
}

interface Case {
  name: string;
  spec: TransformerSpec;
  batch: number;
}

const LR = 3e-3;
const BETAS: [number, number] = [0.9, 0.999];
const EPS = 1e-8;
const SEED = 1;

const DEMO: Case = { name: 'demo', spec: { type: 'transformer', vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 }, batch: 32 };
const TRANSFORMER: Case = {
  name: 'transformer',
  spec: { type: 'transformer', vocab: 4096, dModel: 128, layers: 2, heads: 4, seqLen: 64, mlpRatio: 4, dropout: 0 },
  batch: 32,
};
// Tests (tiny: true): both cases shrunk so that the whole bench runs in seconds; the rows say so.
const TINY_DEMO: Case = { name: 'demo-tiny', spec: { type: 'transformer', vocab: 32, dModel: 16, layers: 1, heads: 2, seqLen: 8, mlpRatio: 4, dropout: 0 }, batch: 4 };
const TINY: Case = { name: 'transformer-tiny', spec: { type: 'transformer', vocab: 128, dModel: 32, layers: 1, heads: 2, seqLen: 16, mlpRatio: 4, dropout: 0 }, batch: 8 };

/** Token sequences from a sparse random Markov chain (3 likely successors per token, 10% uniform noise). */
export function makeBatch(spec: TransformerSpec, batch: number, seed: number): Batch {
  const rand = seededRandom(seed);
  const V = spec.vocab;
  const T = spec.seqLen;
  const succ = Array.from({ length: V }, () => [0, 1, 2].map(() => Math.floor(rand() * V)));
  const inputs = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T);
  for (let b = 0; b < batch; b++) {
    let tok = Math.floor(rand() * V);
    for (let t = 0; t <= T; t++) {
      const next = rand() < 0.1 ? Math.floor(rand() * V) : succ[tok][Math.floor(rand() * 3)];
      if (t < T) inputs[b * T + t] = tok;
      if (t > 0) targets[b * T + t - 1] = tok;
      tok = next;
    }
  }
  return { rows: batch * T, inputs, seqLen: T, targets };
}

export { median } from './report'; // mao-step imports it from here

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- Basin ------------------------------------------------------------------------------------------------

/**
 * The bytes a training step of the transformer cannot do without, from its shapes: parameters, gradients and
 * Adam's two moments (4 × P floats), plus the activations backward must keep when each op saves what its own
 * backward reads and nothing is recomputed (activation checkpointing could trade some of them for compute).
 * N = batch·seqLen rows, D = dModel, F = the MLP width, H = heads, V = vocab; a tensor two ops save counts once:
 *   batch               token ids and targets, N i32 each (embedding and cross-entropy backward)
 *   per block           ln1: its input x (N·D) + mean and rstd (2N); q, k, v linears: ln1's output (N·D);
 *                       attention: q, k, v (3·N·D), its output (N·D, also the o linear's input) and the
 *                       row log-sum-exp (N·H); ln2: its input h = x + attn (N·D) + 2N; fc1: ln2's output
 *                       (N·D); GELU: its input (N·F); fc2: GELU's output (N·F). The residual adds keep nothing.
 *                       = N·(8·D + 2·F + H + 4) floats
 *   final               ln_f: its input (N·D) + 2N; head linear: ln_f's output (N·D); cross-entropy: the logits
 *                       (N·V, softmax backward reads them) and one log-sum-exp per row (N)
 * Dropout is 0 in these cases (a mask would add N·D per dropout site).
 */
export function transformerLowerBound(spec: TransformerSpec, batch: number, params: number): { bytes: number; params: number; grads: number; optimizer: number; activations: number } {
  const N = batch * spec.seqLen;
  const D = spec.dModel;
  const F = Math.round(D * spec.mlpRatio);
  const perBlock = N * (8 * D + 2 * F + spec.heads + 4);
  const final = N * (2 * D + 2) + N * spec.vocab + N;
  const activations = 4 * (spec.layers * perBlock + final) + 4 * 2 * N;
  const p = 4 * params;
  return { bytes: p + p + 2 * p + activations, params: p, grads: p, optimizer: 2 * p, activations };
}

interface MemoryReport {
  /** The analytic lower bound (transformerLowerBound) and its parts. */
  lower_bound_bytes: number;
  lower_bound_parts: { params: number; grads: number; optimizer_state: number; activations_kept: number };
  basin_peak_bytes: number;
  basin_peak_live_bytes: number;
  /** Live bytes that forward + loss added (what Basin keeps for backward, plus the logits and the batch). */
  basin_forward_kept_bytes: number;
  peak_over_lower_bound: number;
  live_over_lower_bound: number;
  tfjs_peak_bytes: number | null;
  tfjs_peak_tensor_bytes: number | null;
  tfjs_peak_over_lower_bound: number | null;
  tfjs_why?: string;
  what: string;
}

class BasinPeer {
  readonly store;
  readonly model;
  readonly optimizer: AdamW;
  readonly batch: Batch;

  constructor(readonly rt: Runtime, readonly c: Case, batch: Batch) {
    const { model, store } = materializeModel(rt, c.spec, SEED);
    this.model = model;
    this.store = store;
    this.optimizer = new AdamW(store, { betas: BETAS, eps: EPS, weightDecay: 0, maxGradNorm: 0 });
    this.batch = batch;
    model.train();
  }

  /** One step, completed on the GPU. `mem` instruments it (pool high-water mark, activation bytes). */
  async step(mem?: { activations: number }): Promise<{ loss: number; ms: number; recordMs: number }> {
    const rt = this.rt;
    const t0 = performance.now();
    const loss = tidy(() => {
      const live0 = mem ? rt.pool.snapshot().liveBytes : 0;
      const { loss } = forwardBatch(rt, this.model, this.batch, { training: true });
      if (mem) mem.activations = rt.pool.snapshot().liveBytes - live0;
      backward(loss);
      return loss;
    });
    this.optimizer.step(LR);
    this.store.zeroGrads();
    const read = loss.toArray(); // submits the whole step in one command buffer
    const t1 = performance.now();
    const value = (await read)[0];
    await rt.sync();
    const t2 = performance.now();
    loss.dispose();
    return { loss: value, ms: t2 - t0, recordMs: t1 - t0 };
  }

  /** One step instrumented for memory: the pool's high-water mark and the live bytes forward + loss kept. */
  async memoryStep(): Promise<{ loss: number; peak: number; peakLive: number; forwardKept: number }> {
    const rt = this.rt;
    await rt.sync();
    rt.pool.resetPeak();
    const mem = { activations: 0 };
    const r = await this.step(mem);
    const snap = rt.pool.snapshot();
    return { loss: r.loss, peak: snap.peakTotalBytes, peakLive: snap.peakLiveBytes, forwardKept: mem.activations };
  }

  destroy(): void {
    this.optimizer.destroy();
    this.store.destroy();
  }
}

// ---- TF.js (WebGPU backend) -------------------------------------------------------------------------------

type TF = typeof tfc;

// The Dawn instance of TF.js's device: kept strongly referenced for the device's whole life (see
// shared notes/webgpu-node.md: a collected instance frees Dawn under a live device).
let tfGpuInstance: unknown = null;

interface TfEnv {
  tf: TF;
  device: GPUDevice;
  /** Programs recorded (one dispatch each) and command-buffer submits, counted by wrapping the backend's methods. */
  counters: { dispatches: number; submits: number };
  version: string;
  destroy(): void;
}

async function startTfjs(backendName: string): Promise<TfEnv> {
  const webgpu = (await import('webgpu')) as unknown as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  for (const [k, v] of Object.entries(webgpu.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  // TF.js (devDependencies) is loaded at run time from the package's node_modules, not bundled (as bench/matmul.ts).
  const req = createRequire(path.join(path.resolve(__dirname, '..'), 'package.json'));
  const tf = req('@tensorflow/tfjs-core') as TF;
  const tfw = req('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend: new (d: GPUDevice, info?: unknown) => tfc.KernelBackend };
  // tfjs-core's Node bundle registers no gradients (the @tensorflow/tfjs union package does). Its ES modules
  // that do cannot be loaded by Node (directory imports), so this one require is bundled by esbuild (and
  // transformed by tsx in tests). The registries live on a global (tfjs-core global_util), shared by both copies.
  require('@tensorflow/tfjs-core/dist/register_all_gradients');
  const flags = process.env.BASIN_BACKEND && process.env.BASIN_BACKEND !== 'default' ? [`backend=${process.env.BASIN_BACKEND}`] : [];
  const gpu = webgpu.create(flags);
  tfGpuInstance = gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('TF.js: no WebGPU adapter');
  // The device TF.js's own registration (tfjs-backend-webgpu/dist/base.js) would request.
  const lim = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    },
  });
  // WebGPUBackend's constructor checks navigator.gpu (Node 20 has no navigator): give it this instance's GPU.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  let restoreNavigator = () => {};
  if (!g.navigator) {
    g.navigator = { gpu };
    restoreNavigator = () => delete g.navigator;
  } else if (!g.navigator.gpu) {
    try {
      Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
      restoreNavigator = () => delete g.navigator!.gpu;
    } catch {
      /* the constructor will say WebGPU is unsupported */
    }
  }
  if (tf.findBackendFactory(backendName)) tf.removeBackend(backendName);
  tf.registerBackend(backendName, () => new tfw.WebGPUBackend(device, (adapter as unknown as { info?: unknown }).info), 3);
  if (!(await tf.setBackend(backendName))) throw new Error('TF.js: the webgpu backend failed to initialise');
  await tf.ready();
  const counters = { dispatches: 0, submits: 0 };
  const be = tf.backend() as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const [method, key] of [['recordAndSubmit', 'dispatches'], ['submitQueue', 'submits']] as const) {
    const orig = be[method];
    if (typeof orig === 'function') {
      be[method] = function (this: unknown, ...a: unknown[]) {
        counters[key]++;
        return orig.apply(this, a);
      };
    }
  }
  return {
    tf,
    device,
    counters,
    version: tf.version_core,
    destroy: () => {
      tf.disposeVariables();
      tf.removeBackend(backendName);
      device.destroy();
      restoreNavigator();
      setTimeout(() => {
        tfGpuInstance = null;
      }, 100).unref?.();
    },
  };
}

class TfjsPeer {
  readonly vars = new Map<string, tfc.Variable>();
  readonly varList: tfc.Variable[] = [];
  readonly optimizer: tfc.Optimizer;
  private mask: tfc.Tensor2D;

  constructor(readonly env: TfEnv, readonly c: Case, init: Map<string, { shape: readonly number[]; data: Float32Array }>, readonly batch: Batch) {
    const tf = env.tf;
    for (const [name, { shape, data }] of init) {
      const v = tf.variable(tf.tensor(data, [...shape], 'float32'), true, `basin.${c.name}.${name}`);
      this.vars.set(name, v);
      this.varList.push(v);
    }
    const T = c.spec.seqLen;
    const m = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
    this.mask = tf.keep(tf.tensor2d(m, [T, T]));
    this.optimizer = tf.train.adam(LR, BETAS[0], BETAS[1], EPS);
  }

  get parameterCount(): number {
    return this.varList.reduce((s, v) => s + v.size, 0);
  }

  private w(name: string): tfc.Tensor {
    const v = this.vars.get(name);
    if (!v) throw new Error(`TF.js model: no parameter ${name}`);
    return v;
  }

  private linear(x: tfc.Tensor2D, name: string): tfc.Tensor2D {
    // Basin's Linear: y = x·Wᵀ + b with W [out, in]; TF.js's fused matMul takes the bias in the same kernel.
    return this.env.tf.fused.matMul({ a: x, b: this.w(`${name}.weight`) as tfc.Tensor2D, transposeB: true, bias: this.w(`${name}.bias`) }) as tfc.Tensor2D;
  }

  private layerNorm(x: tfc.Tensor2D, name: string): tfc.Tensor2D {
    const tf = this.env.tf;
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    return tf.add(tf.mul(xhat, this.w(`${name}.weight`)), this.w(`${name}.bias`)) as tfc.Tensor2D;
  }

  private gelu(x: tfc.Tensor2D): tfc.Tensor2D {
    // Basin's GELU (kernels/elementwise.wgsl): the tanh approximation.
    const tf = this.env.tf;
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), 0.7978845608028654);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as tfc.Tensor2D;
  }

  private attention(x: tfc.Tensor2D, prefix: string, B: number): tfc.Tensor2D {
    const tf = this.env.tf;
    const { seqLen: T, dModel: D, heads: H } = this.c.spec;
    const hd = D / H;
    const split = (t: tfc.Tensor2D) => tf.transpose(tf.reshape(t, [B, T, H, hd]), [0, 2, 1, 3]) as tfc.Tensor4D;
    const q = split(tf.mul(this.linear(x, `${prefix}.q`), 1 / Math.sqrt(hd)) as tfc.Tensor2D);
    const k = split(this.linear(x, `${prefix}.k`));
    const v = split(this.linear(x, `${prefix}.v`));
    const p = tf.softmax(tf.add(tf.matMul(q, k, false, true), this.mask));
    const y = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [B * T, D]) as tfc.Tensor2D;
    return this.linear(y, `${prefix}.o`);
  }

  private lossFn(): tfc.Scalar {
    const tf = this.env.tf;
    const { vocab: V, seqLen: T, dModel: D, layers } = this.c.spec;
    const B = this.batch.rows / T;
    const ids = tf.tensor2d(this.batch.inputs!, [B, T], 'int32');
    const labels = tf.oneHot(tf.tensor1d(this.batch.targets, 'int32'), V);
    let x = tf.reshape(tf.add(tf.gather(this.w('tok.weight'), ids), this.w('pos.weight')), [B * T, D]) as tfc.Tensor2D;
    for (let l = 0; l < layers; l++) {
      const p = `blocks.${l}`;
      x = tf.add(x, this.attention(this.layerNorm(x, `${p}.ln1`), `${p}.attn`, B));
      const h = this.gelu(this.linear(this.layerNorm(x, `${p}.ln2`), `${p}.mlp.fc1`));
      x = tf.add(x, this.linear(h, `${p}.mlp.fc2`));
    }
    const logits = this.linear(this.layerNorm(x, 'ln_f'), 'head');
    return tf.losses.softmaxCrossEntropy(labels, logits) as tfc.Scalar;
  }

  async step(): Promise<{ loss: number; ms: number; recordMs: number }> {
    const tf = this.env.tf;
    const t0 = performance.now();
    const loss = tf.tidy(() => this.optimizer.minimize(() => this.lossFn(), true, this.varList)!);
    const t1 = performance.now();
    const value = (await loss.data())[0];
    await this.env.device.queue.onSubmittedWorkDone();
    const t2 = performance.now();
    loss.dispose();
    return { loss: value, ms: t2 - t0, recordMs: t1 - t0 };
  }

  /**
   * One step with TF.js's high-water marks: GPU bytes its buffer manager had handed out (tensors, uniforms and
   * staging buffers alike), and tf.memory().numBytes (live tensors, variables and Adam's moments included).
   * Sampled by wrapping the two methods that raise them, for this step only.
   */
  async memoryStep(): Promise<{ loss: number; peakGpu: number | null; peakTensors: number }> {
    const tf = this.env.tf;
    type Fn = (...a: unknown[]) => unknown;
    const engine = tf.engine() as unknown as { state: { numBytes: number }; trackTensor: Fn };
    const bm = (tf.backend() as unknown as { bufferManager?: { numBytesUsed: number; acquireBuffer: Fn } }).bufferManager;
    let peakTensors = engine.state.numBytes;
    let peakGpu = bm ? bm.numBytesUsed : 0;
    const origTrack = engine.trackTensor;
    engine.trackTensor = function (this: unknown, ...a: unknown[]) {
      const r = origTrack.apply(this, a);
      peakTensors = Math.max(peakTensors, engine.state.numBytes);
      return r;
    };
    const origAcquire = bm?.acquireBuffer;
    if (bm && origAcquire) {
      bm.acquireBuffer = function (this: unknown, ...a: unknown[]) {
        const r = origAcquire.apply(this, a);
        peakGpu = Math.max(peakGpu, bm.numBytesUsed);
        return r;
      };
    }
    try {
      const r = await this.step();
      return { loss: r.loss, peakGpu: bm ? peakGpu : null, peakTensors };
    } finally {
      engine.trackTensor = origTrack;
      if (bm && origAcquire) bm.acquireBuffer = origAcquire;
    }
  }

  destroy(): void {
    this.optimizer.dispose();
    this.mask.dispose();
    for (const v of this.varList) v.dispose();
  }
}

// ---- the benchmark ----------------------------------------------------------------------------------------

interface PeerRun {
  losses: number[];
  times: number[];
  recordTimes: number[];
}

function lossCheck(name: string, r: PeerRun): string | null {
  const first = r.losses[0];
  const last = r.losses[r.losses.length - 1];
  if (!r.losses.every(Number.isFinite)) return `${name}: non-finite loss`;
  if (!(last < first)) return `${name}: loss did not decrease over the timed steps (${first.toFixed(4)} → ${last.toFixed(4)})`;
  return null;
}

export async function runTrainStepBench(opts: TrainStepBenchOptions): Promise<object> {
  const { log } = opts;
  const warmup = opts.tiny ? 1 : opts.quick ? 2 : 3;
  const timed = opts.tiny ? 3 : opts.quick ? 5 : 10;
  const profiledSteps = 1;
  const cases = opts.tiny ? [TINY_DEMO, TINY] : [DEMO, TRANSFORMER];

  // TF.js and Dawn may print to stdout; keep stdout for the report.
  const saved = { log: console.log, warn: console.warn, info: console.info };
  console.log = console.info = console.warn = (...a: unknown[]) => log(a.map(String).join(' '));

  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  let tfEnv: TfEnv | null = null;
  let tfWhy: string | null = null;
  let torch: TorchPeer | null = null;
  let torchWhy: string | null = null;
  try {
    try {
      tfEnv = await startTfjs('webgpu');
    } catch (e) {
      tfWhy = `TF.js WebGPU backend failed to start: ${(e as Error).message}`;
      log(`train-step: ${tfWhy}`);
    }
    const started = await TorchPeer.start();
    if ('why' in started) {
      torchWhy = started.why;
      log(`train-step: ${torchWhy}`);
    } else {
      torch = started;
      if (torch.info.blas.kind === 'reference' || torch.info.blas.kind === 'unknown') {
        log(`train-step: PyTorch runs on the ${torch.info.blas.kind} BLAS (${torch.info.blas.libraries.join(', ') || 'none seen'}): install libopenblas0-pthread for its real speed`);
      }
    }
    const info = gpu.info;
    log(`train-step: ${info.description || info.vendor} (${info.backend}${info.fallback ? ', software fallback adapter' : ''}); TF.js ${tfEnv?.version ?? 'unavailable'}; ${torch ? describeTorch(torch.info) : 'PyTorch unavailable'}`);
    log(`train-step: ${warmup} warm-up steps, then ${timed} timed steps per peer, alternating; lr ${LR}, betas ${BETAS}, eps ${EPS}, weight decay 0`);

    const rows: Record<string, unknown>[] = [];
    const profiles: Record<string, unknown> = {};
    let memory: MemoryReport | null = null;
    for (const c of cases) {
      const s = c.spec;
      log(`train-step: ${c.name} (vocab ${s.vocab}, d_model ${s.dModel}, ${s.layers} blocks, ${s.heads} heads, seq ${s.seqLen}, batch ${c.batch}, mlpRatio ${s.mlpRatio})`);
      const batch = makeBatch(s, c.batch, 1234);
      const basin = new BasinPeer(rt, c, batch);
      let tfjs: TfjsPeer | null = null;
      let rowWhy: string[] = [];
      // PyTorch's failure on one case (not its absence) is that case's `torch_why`; the case still runs.
      let caseTorchWhy: string | null = torchWhy;
      try {
        const init = new Map<string, { shape: readonly number[]; data: Float32Array }>();
        const all = await basin.store.readAll();
        for (const e of basin.store.entries) init.set(e.name, { shape: e.shape, data: all.get(e.name)! });
        const basinParams = basin.store.parameterCount;
        let tfParams: number | null = null;
        if (tfEnv) {
          tfjs = new TfjsPeer(tfEnv, c, init, batch);
          tfParams = tfjs.parameterCount;
          if (tfParams !== basinParams) throw new Error(`parameter counts differ: Basin ${basinParams}, TF.js ${tfParams}`);
        }
        let torchParams: number | null = null;
        let torchOn = false;
        if (torch) {
          try {
            torchParams = (await torch.loadModel(s, init, [], { lr: LR, betas: BETAS, eps: EPS, weightDecay: 0, clip: 0 })).params;
            if (torchParams !== basinParams) throw new Error(`parameter counts differ: Basin ${basinParams}, PyTorch ${torchParams}`);
            await torch.loadBatch('bench', batch);
            torchOn = true;
          } catch (e) {
            caseTorchWhy = `PyTorch failed on this case: ${(e as Error).message}`;
            log(`  ${caseTorchWhy}`);
          }
        }
        log(`  parameters: Basin ${basinParams.toLocaleString('en-US')}, TF.js ${tfParams?.toLocaleString('en-US') ?? 'n/a'}, PyTorch ${torchParams?.toLocaleString('en-US') ?? 'n/a'}`);

        const b: PeerRun = { losses: [], times: [], recordTimes: [] };
        const t: PeerRun = { losses: [], times: [], recordTimes: [] };
        const p: PeerRun = { losses: [], times: [], recordTimes: [] };
        const warmLoss = { basin: [] as number[], tfjs: [] as number[], torch: [] as number[] };
        for (let i = 0; i < warmup; i++) {
          // The last warm-up step of the transformer case is instrumented for memory (untimed either way).
          const instrument = i === warmup - 1 && c === cases[1];
          let basinMem: Awaited<ReturnType<BasinPeer['memoryStep']>> | null = null;
          let tfMem: Awaited<ReturnType<TfjsPeer['memoryStep']>> | null = null;
          if (instrument) {
            basinMem = await basin.memoryStep();
            warmLoss.basin.push(basinMem.loss);
          } else warmLoss.basin.push((await basin.step()).loss);
          if (tfjs) {
            if (instrument) {
              tfMem = await tfjs.memoryStep();
              warmLoss.tfjs.push(tfMem.loss);
            } else warmLoss.tfjs.push((await tfjs.step()).loss);
          }
          if (torchOn) warmLoss.torch.push((await torch!.step('bench')).loss);
          if (basinMem) {
            const lb = transformerLowerBound(s, c.batch, basinParams);
            memory = {
              lower_bound_bytes: lb.bytes,
              lower_bound_parts: { params: lb.params, grads: lb.grads, optimizer_state: lb.optimizer, activations_kept: lb.activations },
              basin_peak_bytes: basinMem.peak,
              basin_peak_live_bytes: basinMem.peakLive,
              basin_forward_kept_bytes: basinMem.forwardKept,
              peak_over_lower_bound: round(basinMem.peak / lb.bytes, 3),
              live_over_lower_bound: round(basinMem.peakLive / lb.bytes, 3),
              tfjs_peak_bytes: tfMem?.peakGpu ?? null,
              tfjs_peak_tensor_bytes: tfMem?.peakTensors ?? null,
              tfjs_peak_over_lower_bound: tfMem?.peakGpu ? round(tfMem.peakGpu / lb.bytes, 3) : null,
              ...(tfMem ? (tfMem.peakGpu === null ? { tfjs_why: 'the TF.js backend has no bufferManager to sample' } : {}) : { tfjs_why: tfWhy ?? 'TF.js did not run' }),
              what:
                'one untimed warm-up step of the transformer case. lower bound = params + grads + Adam m and v + the activations backward must keep ' +
                '(per op, nothing recomputed; formula in bench/train-step.ts transformerLowerBound). basin_peak = buffer-pool high-water mark ' +
                '(live tensors + free pooled buffers + flat params/grads/optimizer buffers and grad-norm buffers; the uniform ring and readback ' +
                'staging buffers are not counted); basin_peak_live = the same without free pooled buffers; basin_forward_kept = live bytes forward + ' +
                'loss added. tfjs_peak = high-water mark of the GPU bytes TF.js\'s buffer manager had in use (tensors, variables, Adam moments, ' +
                'uniform and staging buffers); tfjs_peak_tensor = high-water mark of tf.memory().numBytes',
            };
          }
        }
        const tf0 = tfEnv ? { ...tfEnv.counters } : null;
        let basinSubmits = 0;
        let basinDispatches = 0;
        for (let i = 0; i < timed; i++) {
          // ABBA with three peers: forward order, then reversed, so each peer sits first and last equally often.
          const order = i % 4 === 0 || i % 4 === 3 ? ['basin', 'tfjs', 'torch'] : ['torch', 'tfjs', 'basin'];
          for (const who of order) {
            if (who === 'basin') {
              const d0 = rt.counters.dispatches;
              const s0 = rt.counters.submits;
              const r = await basin.step();
              basinDispatches += rt.counters.dispatches - d0;
              basinSubmits += rt.counters.submits - s0;
              b.losses.push(r.loss);
              b.times.push(r.ms);
              b.recordTimes.push(r.recordMs);
            } else if (who === 'tfjs' && tfjs) {
              const r = await tfjs.step();
              t.losses.push(r.loss);
              t.times.push(r.ms);
              t.recordTimes.push(r.recordMs);
            } else if (who === 'torch' && torchOn) {
              const r = await torch!.step('bench');
              p.losses.push(r.loss);
              p.times.push(r.ms);
            }
          }
        }
        const tfDisp = tfjs && tf0 ? (tfEnv!.counters.dispatches - tf0.dispatches) / timed : null;
        const tfSubmits = tfjs && tf0 ? (tfEnv!.counters.submits - tf0.submits) / timed : null;
        const bWhy = lossCheck('Basin', b);
        const tWhy = tfjs ? lossCheck('TF.js', t) : tfWhy;
        const pWhy = torchOn ? lossCheck('PyTorch', p) : caseTorchWhy;
        // The row fails on Basin's or TF.js's check (the peers it has always had); PyTorch's check nulls its ratio.
        rowWhy = [bWhy, tWhy].filter((x): x is string => !!x);
        const basinMs = median(b.times);
        const tfMs = tfjs ? median(t.times) : null;
        const torchMs = torchOn ? median(p.times) : null;
        // The runs start from the same weights and see the same data with the same optimizer: their losses should track.
        const lossDiff = (other: number[], otherWarm: number[]) =>
          Math.max(...[...warmLoss.basin.map((x, i) => Math.abs(x - otherWarm[i])), ...b.losses.map((x, i) => Math.abs(x - other[i]))]);
        const maxLossDiff = tfjs ? lossDiff(t.losses, warmLoss.tfjs) : null;
        const maxTorchDiff = torchOn ? lossDiff(p.losses, warmLoss.torch) : null;
        const row = {
          case: `${c.name}: vocab ${s.vocab}, d_model ${s.dModel}, ${s.layers} blocks, ${s.heads} heads, seq ${s.seqLen}, batch ${c.batch}, mlp x${s.mlpRatio}`,
          model: c.name,
          params: basinParams,
          tfjs_params: tfParams,
          torch_params: torchParams,
          basin_ms: round(basinMs),
          tfjs_ms: tfMs === null ? null : round(tfMs),
          torch_ms: torchMs === null ? null : round(torchMs),
          ratio: tfMs === null || bWhy || tWhy ? null : round(tfMs / basinMs, 3),
          ratio_vs_torch: torchMs === null || bWhy || pWhy ? null : round(torchMs / basinMs, 3),
          basin_ms_all: b.times.map((x) => round(x, 1)),
          tfjs_ms_all: t.times.map((x) => round(x, 1)),
          torch_ms_all: p.times.map((x) => round(x, 1)),
          basin_record_ms: round(median(b.recordTimes)),
          tfjs_record_ms: tfjs ? round(median(t.recordTimes)) : null,
          basin_dispatches_per_step: round(basinDispatches / timed, 1),
          basin_submits_per_step: round(basinSubmits / timed, 2),
          tfjs_dispatches_per_step: tfDisp === null ? null : round(tfDisp, 1),
          tfjs_submits_per_step: tfSubmits === null ? null : round(tfSubmits, 2),
          basin_loss_first: round(b.losses[0], 5),
          basin_loss_last: round(b.losses[b.losses.length - 1], 5),
          tfjs_loss_first: tfjs ? round(t.losses[0], 5) : null,
          tfjs_loss_last: tfjs ? round(t.losses[t.losses.length - 1], 5) : null,
          torch_loss_first: torchOn ? round(p.losses[0], 5) : null,
          torch_loss_last: torchOn ? round(p.losses[p.losses.length - 1], 5) : null,
          max_loss_diff_basin_vs_tfjs: maxLossDiff === null ? null : round(maxLossDiff, 6),
          max_loss_diff_basin_vs_torch: maxTorchDiff === null ? null : round(maxTorchDiff, 6),
          ...(pWhy ? { torch_why: pWhy } : {}),
          ok: rowWhy.length === 0,
          ...(rowWhy.length ? { why: rowWhy.join('; ') } : {}),
          timed:
            `median of ${timed} steps after ${warmup} warm-up steps; one step = upload batch, forward, cross-entropy, backward, Adam update (Basin: + zeroGrads), ` +
            'loss read back, waited to GPU completion (PyTorch: timed inside its process, CPU, float32)',
        };
        rows.push(row);
        log(`  Basin ${row.basin_ms} ms/step (record ${row.basin_record_ms} ms, ${row.basin_dispatches_per_step} dispatches, ${row.basin_submits_per_step} submits), loss ${row.basin_loss_first} → ${row.basin_loss_last}`);
        if (tfjs) log(`  TF.js ${row.tfjs_ms} ms/step (record ${row.tfjs_record_ms} ms${tfDisp !== null ? `, ${row.tfjs_dispatches_per_step} dispatches, ${row.tfjs_submits_per_step} submits` : ''}), loss ${row.tfjs_loss_first} → ${row.tfjs_loss_last}; max |loss diff| ${row.max_loss_diff_basin_vs_tfjs}`);
        if (torchOn) log(`  PyTorch ${row.torch_ms} ms/step, loss ${row.torch_loss_first} → ${row.torch_loss_last}; max |loss diff| ${row.max_loss_diff_basin_vs_torch}`);
        if (rowWhy.length) log(`  FAILED: ${rowWhy.join('; ')}`);

        // Profile (after timing, so it does not perturb the timed steps).
        const prof = new KernelProfiler(rt).attach();
        const pc0 = { d: rt.counters.dispatches, s: rt.counters.submits };
        for (let i = 0; i < profiledSteps; i++) await basin.step();
        await prof.drain();
        prof.detach();
        const prow = prof.rows();
        const per = (r: KernelProfileRow) => ({
          kernel: r.kernel,
          dispatches_per_step: round(r.dispatches / profiledSteps, 1),
          cpu_ms_per_step: round(r.cpuMs / profiledSteps, 3),
          gpu_ms_per_step: r.gpuMs === null ? null : round(r.gpuMs / profiledSteps, 2),
        });
        profiles[c.name] = {
          steps: profiledSteps,
          gpu_timing: prof.gpuTiming ? 'timestamp-query, one pass per dispatch' : null,
          dispatches_per_step: round((rt.counters.dispatches - pc0.d) / profiledSteps, 1),
          submits_per_step: round((rt.counters.submits - pc0.s) / profiledSteps, 2),
          gpu_ms_per_step_total: prof.gpuTiming ? round(prow.reduce((x, r) => x + (r.gpuMs ?? 0), 0) / profiledSteps, 2) : null,
          cpu_record_ms_per_step_total: round(prow.reduce((x, r) => x + r.cpuMs, 0) / profiledSteps, 3),
          by_time: prow.slice(0, 10).map(per),
          by_count: [...prow].sort((x, y) => y.dispatches - x.dispatches).slice(0, 10).map(per),
        };
        if (c === cases[1]) for (const l of formatProfile(prow, profiledSteps, 8)) log(l);
        prof.destroy();
      } finally {
        tfjs?.destroy();
        basin.destroy();
        await rt.sync();
        rt.pool.trim();
      }
    }

    const tr = rows[1];
    const demo = rows[0];
    const report = {
      bench: 'train-step',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
      peers: [...(tfEnv ? [`tfjs-webgpu ${tfEnv.version}`] : []), ...(torch ? [describeTorch(torch.info)] : [])],
      torch: torch ? { version: torch.info.torch, python: torch.info.executable, threads: torch.info.threads, blas: torch.info.blas.kind, blas_libraries: torch.info.blas.libraries } : null,
      unavailable_peers: [
        ...(tfEnv ? [] : [{ peer: 'tfjs-webgpu', value: null, why: tfWhy }]),
        ...(torch ? [] : [{ peer: 'pytorch-cpu', value: null, why: torchWhy }]),
      ],
      note: info.fallback
        ? 'software adapter (lavapipe/llvmpipe on the CPU): a ratio against a peer on the same adapter, not a GPU speed; PyTorch runs on the same CPU cores'
        : 'hardware adapter; PyTorch runs on the CPU',
      setup: { lr: LR, betas: BETAS, eps: EPS, weight_decay: 0, clip: 'none', warmup, timed, order: 'peers alternate step by step (ABBA)' },
      rows,
      memory,
      profile: profiles,
      headline: {
        ms_per_step: (tr.basin_ms as number) ?? null,
        ratio_vs_peer: (tr.ratio as number | null) ?? null,
        ratio_vs_peer_demo: (demo.ratio as number | null) ?? null,
        ratio_vs_torch_cpu: (tr.ratio_vs_torch as number | null) ?? null,
        ratio_vs_torch_cpu_demo: (demo.ratio_vs_torch as number | null) ?? null,
        peak_over_lower_bound: memory?.peak_over_lower_bound ?? null,
        tfjs_peak_over_lower_bound: memory?.tfjs_peak_over_lower_bound ?? null,
      },
    };

    return report;
  } finally {
    console.log = saved.log;
    console.warn = saved.warn;
    console.info = saved.info;
    tfEnv?.destroy();
    torch?.close();
    gpu.destroy();
  }
}

interface ProfileRowOut {
  kernel: string;
  dispatches_per_step: number;
  cpu_ms_per_step: number;
  gpu_ms_per_step: number | null;
}

/** The human table of a train-step report (what `basin bench train-step` prints without --json). */
export function formatTrainStepReport(report: object): string {
  const r = report as {
    device: { description: string; backend: string; fallback: boolean };
    peers: string[];
    commit: string | null;
    rows: Record<string, unknown>[];
    memory: MemoryReport | null;
    profile: Record<string, { steps: number; gpu_timing: string | null; dispatches_per_step: number; submits_per_step: number; gpu_ms_per_step_total: number | null; cpu_record_ms_per_step_total: number; by_time: ProfileRowOut[]; by_count: ProfileRowOut[] }>;
    headline: Record<string, number | null>;
  };
  const out: string[] = [];
  const cell = (v: unknown) => (v === null || v === undefined ? 'n/a' : String(v));
  out.push(`train step (f32, Adam) on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], peer ${r.peers.join(', ') || 'none'}, commit ${r.commit ?? 'n/a'}`);
  out.push('');
  out.push(
    `${'model'.padEnd(18)} ${'params'.padStart(10)} ${'basin ms'.padStart(9)} ${'tfjs ms'.padStart(9)} ${'ratio'.padStart(6)} ${'torch ms'.padStart(9)} ${'vs torch'.padStart(8)} ` +
      `${'disp/step'.padStart(9)} ${'submits'.padStart(7)}  loss basin | tfjs | torch (first → last)`,
  );
  for (const x of r.rows) {
    out.push(
      `${cell(x.model).padEnd(18)} ${cell(x.params).padStart(10)} ${cell(x.basin_ms).padStart(9)} ${cell(x.tfjs_ms).padStart(9)} ${cell(x.ratio).padStart(6)} ` +
        `${cell(x.torch_ms).padStart(9)} ${cell(x.ratio_vs_torch).padStart(8)} ${cell(x.basin_dispatches_per_step).padStart(9)} ${cell(x.basin_submits_per_step).padStart(7)}  ` +
        `${cell(x.basin_loss_first)} → ${cell(x.basin_loss_last)} | ${cell(x.tfjs_loss_first)} → ${cell(x.tfjs_loss_last)} | ${cell(x.torch_loss_first)} → ${cell(x.torch_loss_last)}` +
        `${x.ok ? '' : `  FAILED: ${cell(x.why)}`}`,
    );
  }
  out.push('ratio = TF.js ms ÷ Basin ms, vs torch = PyTorch (CPU) ms ÷ Basin ms (bigger is better for Basin); median step, peers alternating');
  const torchWhy = r.rows.map((x) => x.torch_why).find((w) => w);
  if (torchWhy) out.push(`pytorch: n/a (${cell(torchWhy)})`);
  const m = r.memory;
  if (m) {
    const mib = (x: number | null) => (x === null ? 'n/a' : (x / 2 ** 20).toFixed(2));
    const p = m.lower_bound_parts;
    out.push('');
    out.push(
      `memory (transformer step): lower bound ${mib(m.lower_bound_bytes)} MiB = params ${mib(p.params)} + grads ${mib(p.grads)} + Adam ${mib(p.optimizer_state)} + ` +
        `activations backward keeps ${mib(p.activations_kept)}`,
    );
    out.push(`  ${'peer'.padEnd(8)} ${'peak MiB'.padStart(9)} ${'÷ bound'.padStart(8)}   detail`);
    out.push(`  ${'basin'.padEnd(8)} ${mib(m.basin_peak_bytes).padStart(9)} ${cell(m.peak_over_lower_bound).padStart(8)}   pool high-water; live tensors only ${mib(m.basin_peak_live_bytes)} MiB (${m.live_over_lower_bound}); forward kept ${mib(m.basin_forward_kept_bytes)} MiB`);
    out.push(`  ${'tfjs'.padEnd(8)} ${mib(m.tfjs_peak_bytes).padStart(9)} ${cell(m.tfjs_peak_over_lower_bound).padStart(8)}   buffer-manager high-water; tf.memory().numBytes peak ${mib(m.tfjs_peak_tensor_bytes)} MiB${m.tfjs_why ? ` (${m.tfjs_why})` : ''}`);
  }
  const names = Object.keys(r.profile);
  const p = r.profile[names[names.length - 1]];
  if (p) {
    out.push('');
    out.push(
      `profile (${names[names.length - 1]}, Basin, ${p.steps} step${p.steps > 1 ? 's' : ''}): ${p.dispatches_per_step} dispatches, ${p.submits_per_step} submits per step; ` +
        `${p.cpu_record_ms_per_step_total} ms CPU in dispatch()${p.gpu_ms_per_step_total !== null ? `, ${p.gpu_ms_per_step_total} ms GPU (${p.gpu_timing})` : ', no GPU timestamps'}`,
    );
    const gpu = p.gpu_ms_per_step_total !== null;
    out.push(`  ${'kernel'.padEnd(34)} ${'disp/step'.padStart(9)} ${'cpu ms'.padStart(8)} ${gpu ? 'gpu ms'.padStart(8) + ' ' + 'gpu %'.padStart(6) : ''}`);
    for (const k of p.by_time) {
      const share = gpu ? ((100 * (k.gpu_ms_per_step ?? 0)) / Math.max(1e-9, p.gpu_ms_per_step_total!)).toFixed(1) : '';
      out.push(`  ${k.kernel.padEnd(34)} ${String(k.dispatches_per_step).padStart(9)} ${k.cpu_ms_per_step.toFixed(3).padStart(8)} ${gpu ? cell(k.gpu_ms_per_step).padStart(8) + ' ' + share.padStart(6) : ''}`);
    }
    out.push(`  by count: ${p.by_count.slice(0, 6).map((k) => `${k.kernel} ${k.dispatches_per_step}`).join(', ')}`);
  }
  out.push('');
  out.push(`headline: ${Object.entries(r.headline).map(([k, v]) => `${k} ${cell(v)}`).join(', ')}`);
  return out.join('\n');
}
