// Tensors on the GPU. A tensor is a shape over a byte range of a GPU buffer (its storage); views (reshape,
// parameter slices of a flat buffer) share storage. Memory is released deterministically: by dispose(), or by
// the tidy() scope the tensor was made in. Gradients are filled by autograd/ (the tape).
import type { BufferBinding, Runtime } from '../gpu/runtime';

export type DType = 'f32' | 'i32' | 'u32';

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A byte range of a GPU buffer, reference-counted across the tensors that view it. */
export class Storage {
  private refs = 1;
  constructor(
    readonly rt: Runtime,
    readonly buffer: GPUBuffer,
    readonly offset: number,
    readonly byteLength: number,
    /** Pooled storage goes back to the pool when the last view is disposed; external storage never does. */
    private readonly pooled: boolean,
  ) {}

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0 && this.pooled) this.rt.pool.release(this.buffer);
  }

  get alive(): boolean {
    return this.refs > 0;
  }
}

/** How the gradient of an op's output flows to its inputs (see autograd/tape.ts). */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Given the output's gradient, the gradient of each input (null where none flows). */
  backward(grad: Tensor): (Tensor | null)[];
}

export class Tensor {
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  /** Hierarchical parameter name (`blocks.0.attn.q.weight`) when this tensor is a parameter. */
  name?: string;
  /** A frozen parameter takes no gradient and no optimizer update. */
  frozen = false;
  private disposed = false;

  constructor(readonly rt: Runtime, readonly shape: readonly number[], readonly dtype: DType, readonly storage: Storage) {
    this.size = numel(shape);
    if (this.size * 4 > storage.byteLength) {
      throw new ShapeError(`shape ${fmtShape(shape)} needs ${this.size * 4} bytes, storage has ${storage.byteLength}`);
    }
    trackInScope(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** The binding a kernel reads or writes. Never zero-sized (WebGPU rejects that). */
  binding(): BufferBinding {
    this.assertAlive();
    return { buffer: this.storage.buffer, offset: this.storage.offset, size: Math.max(4, this.size * 4) };
  }

  /** A view with another shape over the same storage (autograd: gradient reshaped back). */
  reshape(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.size, this.shape);
    this.assertAlive();
    const out = new Tensor(this.rt, resolved, this.dtype, this.storage.retain());
    if (this.requiresGrad && gradEnabled()) {
      const src = this;
      out.requiresGrad = true;
      out.gradFn = { name: 'reshape', inputs: [src], backward: (g) => [g.reshape(src.shape)] };
    }
    return out;
  }

  async toArray(): Promise<Float32Array | Int32Array | Uint32Array> {
    this.assertAlive();
    const bytes = await this.rt.readBytes(this.binding(), this.size * 4);
    return this.dtype === 'f32' ? new Float32Array(bytes) : this.dtype === 'i32' ? new Int32Array(bytes) : new Uint32Array(bytes);
  }

  async toFloat32(): Promise<Float32Array> {
    const a = await this.toArray();
    return a instanceof Float32Array ? a : Float32Array.from(a);
  }

  /** Read a single-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs a tensor of one element, got ${fmtShape(this.shape)}`);
    return (await this.toArray())[0];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    this.gradFn = null;
  }

  assertAlive(): void {
    if (this.disposed) throw new Error(`tensor ${this.name ?? fmtShape(this.shape)} was used after dispose()`);
  }

  toString(): string {
    return `Tensor(${this.name ? this.name + ' ' : ''}${fmtShape(this.shape)} ${this.dtype})`;
  }
}

function resolveShape(shape: readonly number[], size: number, from: readonly number[]): number[] {
  const out = [...shape];
  const inferred = out.indexOf(-1);
  if (inferred >= 0) {
    const rest = numel(out.filter((_, i) => i !== inferred));
    out[inferred] = rest === 0 ? 0 : size / rest;
  }
  if (numel(out) !== size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`cannot reshape ${fmtShape(from)} (${size} elements) to ${fmtShape(shape)}`);
  }
  return out;
}

// ---- creation -------------------------------------------------------------------------------------------

/** An uninitialised tensor for recorded GPU work to write (`hostWrite`: for the host to fill with writeBuffer). */
export function empty(rt: Runtime, shape: readonly number[], dtype: DType = 'f32', opts: { hostWrite?: boolean } = {}): Tensor {
  const bytes = Math.max(4, numel(shape) * 4);
  const buf = rt.pool.acquire(bytes, undefined, opts);
  return new Tensor(rt, shape, dtype, new Storage(rt, buf, 0, buf.size, true));
}

export function fromArray(rt: Runtime, data: ArrayLike<number> | Float32Array | Int32Array | Uint32Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (data.length !== numel(shape)) {
    throw new ShapeError(`data has ${data.length} elements, shape ${fmtShape(shape)} needs ${numel(shape)}`);
  }
  const t = empty(rt, shape, dtype, { hostWrite: true });
  const typed = dtype === 'f32' ? (data instanceof Float32Array ? data : Float32Array.from(data))
    : dtype === 'i32' ? (data instanceof Int32Array ? data : Int32Array.from(data))
    : (data instanceof Uint32Array ? data : Uint32Array.from(data));
  // A buffer acquired for a host write is referenced by no unsubmitted work, so it can be written at once.
  if (typed.length) rt.device.queue.writeBuffer(t.storage.buffer, 0, typed.buffer, typed.byteOffset, typed.byteLength);
  return t;
}

/** A tensor viewing a byte range of an externally owned buffer (flat parameter/gradient/state buffers). */
export function view(rt: Runtime, buffer: GPUBuffer, byteOffset: number, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return new Tensor(rt, shape, dtype, new Storage(rt, buffer, byteOffset, Math.max(4, numel(shape) * 4), false));
}

// ---- scopes and grad mode -------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s) s.add(t);
}

/**
 * Run fn; dispose every tensor made inside it except those reachable from its result (a tensor, an array or an
 * object of tensors) and those passed to keep(). Nested scopes hand kept tensors to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t) || kept.has(t)) {
      trackInScope(t);
      continue;
    }
    t.dispose();
  }
  return result;
}

const kept = new WeakSet<Tensor>();

/** Exempt a tensor from the enclosing tidy() scopes. */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectTensors(x, out, depth + 1);
}

let gradDepth = 0;

export function gradEnabled(): boolean {
  return gradDepth === 0;
}

/** Run fn without recording gradients (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  gradDepth++;
  try {
    return fn();
  } finally {
    gradDepth--;
  }
}
