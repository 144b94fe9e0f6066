// Tensors on the GPU. A tensor is a shape over a byte range of a GPU buffer (its storage); views (reshape,
// parameter slices of a flat buffer) share storage. Memory is released deterministically: by dispose(), or by
// the tidy() scope the tensor was made in. Gradients are filled by autograd/ (the tape).
import type { BufferBinding, Runtime } from '../gpu/runtime';
import { decodeF16, encodeF16 } from '../../files/f16';

/**
 * Element types. f16 (IEEE binary16, 2 bytes) holds the half-precision copies of mixed-precision training
 * (weights and saved activations, src/engine/train/mixed-precision.ts); kernels that read it need the device's
 * shader-f16 feature (rt.hasF16). Everything else, master weights and gradients included, is f32.
 */
export type DType = 'f32' | 'i32' | 'u32' | 'f16';

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: DType): number {
  return dtype === 'f16' ? 2 : 4;
}

/**
 * Bytes a tensor of `n` elements occupies in a buffer: rounded up to a whole 4-byte word (an odd count of f16
 * elements leaves half a word; WebGPU sizes copies and bindings in multiples of 4) and never 0.
 */
export function tensorBytes(n: number, dtype: DType): number {
  return Math.max(4, Math.ceil((n * dtypeBytes(dtype)) / 4) * 4);
}

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

/**
 * A tensor bound whole to a kernel exceeds the largest range one storage binding may cover
 * (maxStorageBufferBindingSize). Thrown before the dispatch is recorded, instead of a Dawn validation error.
 */
export class BindingLimitError extends Error {
  constructor(
    message: string,
    /** The tensor's name (`tok.weight`), or its shape when it has none. */
    readonly tensor: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(message);
    this.name = 'BindingLimitError';
  }
}

/** 256.0 MiB, 10.0 KiB: the unit that keeps a digit that means something. */
export function fmtBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/**
 * The guard's error: tensor t would need a binding of `bytes` bytes, over `limit`. `where` names the op or kernel;
 * `hint` replaces the default advice.
 */
export function bindingLimitError(t: Tensor, bytes: number, limit: number, where: string, hint?: string): BindingLimitError {
  const what = `${t.name ?? 'a tensor'} ${fmtShape(t.shape)} ${t.dtype}`;
  const advice = hint ??
    'only embedding() and linear() split a tensor over several bindings; every other op binds it whole. Reduce the ' +
      'dimensions that make it large (vocabulary size or dModel for an embedding or output layer; batch size or ' +
      'sequence length for activations), or use an op that supports chunked tensors.';
  return new BindingLimitError(
    `${where}: ${what} needs ${fmtBytes(bytes)} (${bytes} bytes) in one storage binding, over this device's limit of ` +
      `${fmtBytes(limit)} (${limit} bytes, maxStorageBufferBindingSize): ${advice}`,
    t.name ?? fmtShape(t.shape),
    bytes,
    limit,
  );
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
  private released = false;

  constructor(readonly rt: Runtime, readonly shape: readonly number[], readonly dtype: DType, readonly storage: Storage) {
    this.size = numel(shape);
    if (this.size * dtypeBytes(dtype) > storage.byteLength) {
      throw new ShapeError(`shape ${fmtShape(shape)} ${dtype} needs ${this.size * dtypeBytes(dtype)} bytes, storage has ${storage.byteLength}`);
    }
    trackInScope(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Bytes of the tensor's range (whole 4-byte words, at least 4: see tensorBytes). */
  get byteSize(): number {
    return tensorBytes(this.size, this.dtype);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * The binding a kernel reads or writes, whole. Never zero-sized (WebGPU rejects that). It carries the tensor
   * so that Runtime.dispatch can refuse one above the binding limit by name (BindingLimitError) before recording
   * anything; ops that support larger tensors bind row ranges instead (rowRanges()).
   */
  binding(): BufferBinding {
    this.assertAlive();
    return { buffer: this.storage.buffer, offset: this.storage.offset, size: this.byteSize, tensor: this };
  }

  /** The tensor's byte range for copies and read-backs, which have no binding limit. */
  range(): BufferBinding {
    this.assertAlive();
    return { buffer: this.storage.buffer, offset: this.storage.offset, size: this.byteSize };
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

  /** The values; an f16 tensor is widened to a Float32Array (exactly: every f16 is an f32). */
  async toArray(): Promise<Float32Array | Int32Array | Uint32Array> {
    this.assertAlive();
    const bytes = await this.rt.readBytes(this.range(), this.dtype === 'f16' ? this.byteSize : this.size * 4);
    if (this.dtype === 'f16') {
      const out = new Float32Array(this.size);
      decodeF16(new Uint16Array(bytes, 0, this.size), out);
      return out;
    }
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
    if (!this.released) this.storage.release();
    this.gradFn = null;
  }

  /**
   * Frees the values and keeps the tensor as a node of the autograd graph: for an activation whose last reader has
   * run and that no backward reads (mixed precision: a layer norm's output once the f16 Linear layers that take it
   * have cast it; they keep the f16 copy). Its gradient still flows through it; reading it again throws.
   */
  releaseData(): void {
    if (this.disposed || this.released) return;
    this.released = true;
    this.storage.release();
  }

  /** True once releaseData() freed the values (the autograd node remains). */
  get isReleased(): boolean {
    return this.released;
  }

  assertAlive(): void {
    if (this.disposed) throw new Error(`tensor ${this.name ?? fmtShape(this.shape)} was used after dispose()`);
    if (this.released) throw new Error(`tensor ${this.name ?? fmtShape(this.shape)} was read after releaseData() freed its values (an activation released after its last use)`);
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
  const bytes = tensorBytes(numel(shape), dtype);
  const buf = rt.pool.acquire(bytes, undefined, opts);
  return new Tensor(rt, shape, dtype, new Storage(rt, buf, 0, buf.size, true));
}

export function fromArray(rt: Runtime, data: ArrayLike<number> | Float32Array | Int32Array | Uint32Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (data.length !== numel(shape)) {
    throw new ShapeError(`data has ${data.length} elements, shape ${fmtShape(shape)} needs ${numel(shape)}`);
  }
  const t = empty(rt, shape, dtype, { hostWrite: true });
  if (dtype === 'f16') {
    // Rounded to nearest even on the host (src/files/f16.ts), padded to a whole word.
    const half = new Uint16Array(t.byteSize / 2);
    encodeF16(data instanceof Float32Array ? data : Float32Array.from(data), half);
    rt.device.queue.writeBuffer(t.storage.buffer, 0, half.buffer, 0, half.byteLength);
    return t;
  }
  const typed = dtype === 'f32' ? (data instanceof Float32Array ? data : Float32Array.from(data))
    : dtype === 'i32' ? (data instanceof Int32Array ? data : Int32Array.from(data))
    : (data instanceof Uint32Array ? data : Uint32Array.from(data));
  // A buffer acquired for a host write is referenced by no unsubmitted work, so it can be written at once.
  if (typed.length) rt.device.queue.writeBuffer(t.storage.buffer, 0, typed.buffer, typed.byteOffset, typed.byteLength);
  return t;
}

/** A tensor viewing a byte range of an externally owned buffer (flat parameter/gradient/state buffers). */
export function view(rt: Runtime, buffer: GPUBuffer, byteOffset: number, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return new Tensor(rt, shape, dtype, new Storage(rt, buffer, byteOffset, tensorBytes(numel(shape), dtype), false));
}

// ---- binding-sized pieces ------------------------------------------------------------------------------

/** Rows [r0, r1) of a tensor viewed as [rows, rowElems], and the binding that covers them. */
export interface RowRange {
  r0: number;
  r1: number;
  /** Starts at the 256-byte boundary at or before row r0 (WebGPU's binding-offset alignment), ends at row r1. */
  binding: BufferBinding;
  /** Elements from the binding's start to row r0: 0 when the range starts on a boundary (always with `aligned`). */
  lead: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Cut t, viewed as [t.size / rowElems, rowElems], into row ranges that each fit one storage binding
 * (rt.maxBindingBytes), for kernels that process a large tensor one binding at a time. A tensor that fits is one
 * range, bound whole. Without `aligned` the kernel adds `lead` to its row offsets, so any row count works; with
 * it every range starts on a 256-byte boundary (lead 0, e.g. for a plain view handed to matmul) and holds a
 * multiple of 64 / gcd(rowElems, 64) rows. Throws BindingLimitError when not even that many rows fit.
 */
export function rowRanges(t: Tensor, rowElems: number, opts: { where: string; aligned?: boolean }): RowRange[] {
  t.assertAlive();
  // Offsets below count 4-byte elements; f16 tensors are never split (mixed precision keeps such layers in f32).
  if (t.dtype === 'f16') throw new TypeError(`${opts.where}: rowRanges() handles 4-byte elements, got an f16 tensor ${fmtShape(t.shape)}`);
  const limit = t.rt.maxBindingBytes;
  const rows = rowElems > 0 ? t.size / rowElems : 0;
  if (!Number.isInteger(rows)) throw new ShapeError(`rowRanges: ${fmtShape(t.shape)} is not made of rows of ${rowElems}`);
  if (t.size * 4 <= limit) return [{ r0: 0, r1: rows, binding: t.range(), lead: 0 }];
  const off = t.storage.offset;
  const maxElems = Math.floor(limit / 4);
  let per: number;
  let unit: number; // rows that must be bound together
  let reserve = 0; // elements a binding may start before its first row
  if (opts.aligned) {
    if (off % 256 !== 0) throw new Error(`${opts.where}: ${t.name ?? fmtShape(t.shape)} starts at byte ${off}, not on a 256-byte boundary`);
    unit = 64 / gcd(rowElems, 64);
    per = Math.floor(Math.floor(maxElems / rowElems) / unit) * unit;
  } else {
    // The binding starts up to `reserve` elements before row r0 (none when rows are whole multiples of 256 bytes).
    unit = 1;
    reserve = off % 256 === 0 ? 64 - gcd(rowElems, 64) : 63;
    per = Math.floor((maxElems - reserve) / rowElems);
  }
  if (per < 1) {
    const piece = unit * rowElems * 4;
    throw bindingLimitError(t, t.size * 4, limit, opts.where,
      `${opts.where} splits it by rows, but ${unit === 1 ? 'one row' : `${unit} rows (the 256-byte alignment of binding offsets)`} of ` +
        `${rowElems} elements (${fmtBytes(piece)}) ${reserve ? `plus up to ${reserve * 4} bytes of alignment ` : ''}already exceed one binding: reduce the row length ` +
        `(dModel or in-features).`);
  }
  const out: RowRange[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const r1 = Math.min(rows, r0 + per);
    const startByte = off + r0 * rowElems * 4;
    const bindStart = Math.floor(startByte / 256) * 256;
    const lead = (startByte - bindStart) / 4;
    out.push({ r0, r1, lead, binding: { buffer: t.storage.buffer, offset: bindStart, size: Math.max(4, (lead + (r1 - r0) * rowElems) * 4) } });
  }
  return out;
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
