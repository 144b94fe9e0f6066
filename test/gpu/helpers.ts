// Shared fixtures for GPU tests: one runtime per test process, CPU comparison and finite-difference checks.
import * as assert from 'node:assert/strict';
import { GpuDevice } from '../../src/engine/gpu/device';
import { Runtime } from '../../src/engine/gpu/runtime';
import { Tensor, fromArray, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { Rng, seededRandom } from '../../src/engine/data/rng';
import { readSafetensorsHeader, readTensor } from '../../src/files/safetensors';

let shared: Promise<Runtime> | null = null;

/** The test process's runtime (lavapipe on machines without a GPU). */
export function runtime(): Promise<Runtime> {
  if (!shared) shared = GpuDevice.create().then((g) => new Runtime(g));
  return shared;
}

/**
 * Deterministic pseudo-random numbers so a failing case can be reproduced: Basin's one PRNG
 * (src/engine/data/rng.ts), uniform in [0, 1).
 */
export function rng(seed: number): () => number {
  return seededRandom(seed);
}

/** n standard-normal floats times `scale`, from Basin's PRNG (Rng.normal). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * r.normal();
  return out;
}

/** Max |a-b| / (atol + rtol·|b|) must stay ≤ 1; the message names the worst index. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: { atol?: number; rtol?: number; what?: string } = {}): void {
  const atol = opts.atol ?? 1e-4;
  const rtol = opts.rtol ?? 1e-4;
  assert.equal(actual.length, expected.length, `${opts.what ?? 'result'}: length ${actual.length} vs expected ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Number.isFinite(a) ? Math.abs(a - e) / (atol + rtol * Math.abs(e)) : Infinity;
    if (err > worstErr || Number.isNaN(err)) {
      worstErr = Number.isNaN(err) ? Infinity : err;
      worst = i;
    }
  }
  if (worstErr > 1) {
    assert.fail(`${opts.what ?? 'result'}: index ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/**
 * Check the autograd gradient of f at the given inputs against central finite differences of the same GPU
 * function, on a random projection L = Σ f(x)·r so that every output element matters.
 * Checks up to `samples` coordinates per float input.
 */
export async function gradCheck(
  rt: Runtime,
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array | Int32Array; shape: number[]; dtype?: 'f32' | 'i32'; grad?: boolean }[],
  opts: { eps?: number; atol?: number; rtol?: number; samples?: number; seed?: number } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-2;
  const samples = opts.samples ?? 12;
  const make = (datas: (Float32Array | Int32Array)[], withGrad: boolean) =>
    inputs.map((inp, i) => {
      const t = fromArray(rt, datas[i], inp.shape, inp.dtype ?? 'f32');
      if (withGrad && (inp.dtype ?? 'f32') === 'f32' && inp.grad !== false) t.requiresGrad = true;
      return t;
    });
  const base = inputs.map((i) => i.data);
  // Output projection r, fixed.
  const probe = tidy(() => f(...make(base, false)));
  const r = randn(probe.size, opts.seed ?? 7);
  probe.dispose();
  const lossOf = async (datas: (Float32Array | Int32Array)[]): Promise<number> => {
    const out = tidy(() => f(...make(datas, false)));
    const o = await out.toFloat32();
    out.dispose();
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * r[i];
    return s;
  };
  const xs = make(base, true);
  const out = f(...xs);
  const rT = fromArray(rt, r, out.shape);
  backward(out, rT);
  for (let k = 0; k < inputs.length; k++) {
    const x = xs[k];
    if (!x.requiresGrad) continue;
    assert.ok(x.grad, `input ${k} got no gradient`);
    const g = await x.grad!.toFloat32();
    const pick = rng((opts.seed ?? 7) + k);
    const n = inputs[k].data.length;
    const idxs = n <= samples ? [...Array(n).keys()] : [...new Set(Array.from({ length: samples }, () => Math.floor(pick() * n)))];
    for (const i of idxs) {
      const plus = base.map((d) => d.slice());
      const minus = base.map((d) => d.slice());
      (plus[k] as Float32Array)[i] += eps;
      (minus[k] as Float32Array)[i] -= eps;
      const num = ((await lossOf(plus)) - (await lossOf(minus))) / (2 * eps);
      const atol = opts.atol ?? 2e-2;
      const rtol = opts.rtol ?? 2e-2;
      assert.ok(Math.abs(g[i] - num) <= atol + rtol * Math.abs(num), `input ${k} [${inputs[k].shape}] element ${i}: autograd ${g[i]}, finite difference ${num}`);
    }
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  out.dispose();
  rT.dispose();
}

/** Every tensor of a safetensors file, widened to f32 (checkpoints, merged and pruned models). */
export async function readAllTensors(file: string): Promise<Map<string, Float32Array>> {
  const h = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const n of Object.keys(h.tensors)) out.set(n, (await readTensor(file, n, h)).data as Float32Array);
  return out;
}
