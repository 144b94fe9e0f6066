// The parameter store: llm.c's flat layout. Every parameter lives in ONE flat f32 buffer, every gradient in ONE
// more with the same layout, and every optimizer state (Adam m and v, momentum, later mao's factors) in one flat
// buffer per state made by allocLike(). One layout for all of them means
//  - an optimizer updates the whole model in one kernel (per binding-sized chunk), not one dispatch per tensor;
//  - one layer's momentum or curvature is a slice (sliceOf) that the statistics panels read without a copy;
//  - a checkpoint is "read each flat buffer, cut it by the entries".
// Each tensor starts at a 256-byte-aligned offset (minStorageBufferOffsetAlignment) so that it can also be bound
// alone, as an ordinary Tensor, by the ops that compute with it.
//
// Flat kernels need per-tensor behaviour (decay on/off, frozen, per-tensor reductions). The layout is cut into
// BLOCKs of FLAT_BLOCK elements that never straddle two tensors; a block table maps each block to its tensor and a
// segments table gives each tensor's [offset, size, flags, firstBlock]. One workgroup handles one block, so it
// knows its tensor with two loads and reduces within one tensor only (deterministic per-tensor sums, no atomics).
import type { BufferBinding, Runtime } from '../gpu/runtime';
import { fillInPlace } from '../ops/basic';
import { ShapeError, Tensor, fmtShape, keep, numel, view } from '../tensor/tensor';
import { globToRegExp } from '../../files/glob';

export { globToRegExp };

/** Elements per block of the flat layout: a multiple of 64 so that every block starts 256-byte aligned. */
export const FLAT_BLOCK = 1024;
/** Tensor offsets are multiples of this many elements (256 bytes). */
export const FLAT_ALIGN = 64;
/** Segments table: u32s per tensor, [offset, size, flags, firstBlock]. */
export const SEGMENT_STRIDE = 4;
/** Segment flag bits, shared with kernels/optim.wgsl and kernels/gradnorm.wgsl. */
export const SEG_DECAY = 1;
export const SEG_FROZEN = 2;

const FLAT_USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC

export interface ParamFlags {
  /** Decoupled weight decay applies (default: rank ≥ 2; false for biases and norm weights). */
  decay: boolean;
  /** No gradient, no optimizer update, not counted in the clipping norm. */
  frozen: boolean;
}

export interface ParamEntry {
  readonly name: string;
  readonly shape: readonly number[];
  /** Offset in elements (f32) from the start of every flat buffer of this store; a multiple of FLAT_ALIGN. */
  readonly offset: number;
  readonly size: number;
  /** Position in `entries`, the segments table and the grad-norm buffer. */
  readonly index: number;
  readonly flags: Readonly<ParamFlags>;
}

/** A run of whole blocks whose element span fits one storage binding: the unit of a flat kernel's dispatch. */
export interface FlatChunk {
  readonly blockBase: number;
  readonly numBlocks: number;
  /** First element (of the whole flat buffer) the chunk covers; the binding starts here. */
  readonly elemBase: number;
  /** Elements from elemBase to the end of the chunk's last block. */
  readonly elems: number;
}

export interface MaterializeOptions {
  /**
   * Largest byte range one binding may cover. Default rt.maxBindingBytes; tests pass a small value to exercise
   * the chunked paths without allocating gigabytes. Must be at least FLAT_BLOCK·4 bytes.
   */
  maxBindingBytes?: number;
  label?: string;
}

/** A GPU buffer laid out like the store's parameters: the parameters, the gradients, or one optimizer state. */
export class FlatBuffer {
  private destroyed = false;

  constructor(readonly store: ParameterStore, readonly buffer: GPUBuffer, readonly label: string) {}

  get rt(): Runtime {
    return this.store.runtime;
  }

  get bytes(): number {
    return this.store.bytes;
  }

  /** One parameter's range as a Tensor view (no copy). */
  slice(name: string): Tensor {
    return this.store.sliceOf(this, name);
  }

  /** The binding of one chunk of the layout (see ParameterStore.chunks). */
  chunkBinding(c: FlatChunk): BufferBinding {
    this.assertAlive();
    return { buffer: this.buffer, offset: c.elemBase * 4, size: Math.max(4, c.elems * 4) };
  }

  async read(name: string): Promise<Float32Array> {
    this.assertAlive();
    const e = this.store.entry(name);
    if (e.size === 0) return new Float32Array(0);
    // A copy, not a binding: no maxBindingBytes limit for one large tensor.
    const bytes = await this.rt.readBytes({ buffer: this.buffer, offset: e.offset * 4, size: e.size * 4 });
    return new Float32Array(bytes);
  }

  /** Every tensor, in layout order (one readback of the whole buffer). */
  async readAll(): Promise<Map<string, Float32Array>> {
    const flat = await this.readFlat();
    const out = new Map<string, Float32Array>();
    // Views of the one read-back (no second copy of a large model); callers own the arrays, nothing else holds them.
    for (const e of this.store.entries) out.set(e.name, flat.subarray(e.offset, e.offset + e.size));
    return out;
  }

  /** The whole buffer, padding included (length store.totalElements). */
  async readFlat(): Promise<Float32Array> {
    this.assertAlive();
    if (this.store.totalElements === 0) return new Float32Array(0);
    return new Float32Array(await this.rt.readBytes({ buffer: this.buffer, offset: 0, size: this.store.bytes }));
  }

  /** Overwrite one tensor's range, in order with the recorded work. */
  load(name: string, data: Float32Array): void {
    this.assertAlive();
    const e = this.store.entry(name);
    if (data.length !== e.size) {
      throw new ShapeError(`load ${this.label} '${name}': data has ${data.length} elements, shape ${fmtShape(e.shape)} needs ${e.size}`);
    }
    if (e.size) this.rt.write({ buffer: this.buffer, offset: e.offset * 4, size: e.size * 4 }, data);
  }

  /** Overwrite everything from a flat array (length totalElements) or a map by name (every entry required). */
  loadAll(data: Float32Array | ReadonlyMap<string, Float32Array>): void {
    this.assertAlive();
    if (data instanceof Float32Array) {
      if (data.length !== this.store.totalElements) {
        throw new ShapeError(`loadAll ${this.label}: flat data has ${data.length} elements, the layout has ${this.store.totalElements}`);
      }
      if (data.length) this.rt.write({ buffer: this.buffer, offset: 0, size: this.store.bytes }, data);
      return;
    }
    const missing = this.store.entries.filter((e) => !data.has(e.name)).map((e) => e.name);
    if (missing.length) throw new Error(`loadAll ${this.label}: no data for ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
    for (const e of this.store.entries) this.load(e.name, data.get(e.name)!);
  }

  /** Set every element (padding included) to value: one fill dispatch per binding-sized range. */
  fill(value: number): void {
    this.assertAlive();
    const rt = this.rt;
    const total = this.store.totalElements;
    const step = this.store.maxBindingElems;
    for (let start = 0; start < total; start += step) {
      const n = Math.min(step, total - start);
      // A view of external storage: dispose() never frees the flat buffer.
      const v = view(rt, this.buffer, start * 4, [n]);
      fillInPlace(v, value);
      v.dispose();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // Recorded but unsubmitted work may still use the buffer: submit it first (destroy() after submit is safe,
    // WebGPU frees the memory once that work is done).
    this.rt.flush();
    this.rt.pool.trackExternal(-this.buffer.size);
    this.rt.pool.onDestroy?.(this.buffer);
    this.buffer.destroy();
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error(`flat buffer '${this.label}' was used after destroy()`);
  }
}

interface Decl {
  name: string;
  shape: number[];
  init: Float32Array | null;
  flags: ParamFlags;
}

export class ParameterStore {
  private decls: Decl[] = [];
  private byName = new Map<string, number>();
  private _entries: ParamEntry[] = [];
  private tensors: Tensor[] = [];
  private rt: Runtime | null = null;
  private _params: FlatBuffer | null = null;
  private _grads: FlatBuffer | null = null;
  private _segments: GPUBuffer | null = null;
  private _blocks: GPUBuffer | null = null;
  private segTable = new Uint32Array(0);
  private _chunks: FlatChunk[] = [];
  private _totalElements = 0;
  private _numBlocks = 0;
  private _maxBindingBytes = 0;
  private label = 'params';

  /**
   * Declare a parameter. `init` (default zeros) is uploaded by materialize(). Flags default to decay for
   * rank ≥ 2 (weights, embeddings) and none for rank < 2 (biases, norm gains).
   */
  add(name: string, shape: readonly number[], init?: Float32Array | null, flags: Partial<ParamFlags> = {}): void {
    if (this.rt) throw new Error(`add('${name}'): the store is already materialized`);
    if (!name) throw new Error('a parameter needs a name');
    if (this.byName.has(name)) throw new Error(`parameter '${name}' is declared twice`);
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`parameter '${name}': bad shape ${fmtShape(shape)}`);
    const size = numel(shape);
    if (init && init.length !== size) {
      throw new ShapeError(`parameter '${name}': initial values have ${init.length} elements, shape ${fmtShape(shape)} needs ${size}`);
    }
    this.byName.set(name, this.decls.length);
    this.decls.push({
      name,
      shape: [...shape],
      init: init ?? null,
      flags: { decay: flags.decay ?? shape.length >= 2, frozen: flags.frozen ?? false },
    });
  }

  get isMaterialized(): boolean {
    return this.rt !== null;
  }

  /** Lay out, allocate and upload. Gradients start at zero. */
  materialize(rt: Runtime, opts: MaterializeOptions = {}): this {
    if (this.rt) throw new Error('the parameter store is already materialized');
    const maxBinding = opts.maxBindingBytes ?? rt.maxBindingBytes;
    if (maxBinding < FLAT_BLOCK * 4) throw new Error(`maxBindingBytes ${maxBinding} is below one block (${FLAT_BLOCK * 4} bytes)`);
    this.label = opts.label ?? 'params';
    this._maxBindingBytes = maxBinding;

    // Layout: tensors in declaration order, each at a FLAT_ALIGN-element boundary; blocks per tensor.
    let offset = 0;
    let blocks = 0;
    const entries: ParamEntry[] = [];
    for (const [index, d] of this.decls.entries()) {
      const size = numel(d.shape);
      entries.push({ name: d.name, shape: d.shape, offset, size, index, flags: { ...d.flags } });
      offset += Math.ceil(size / FLAT_ALIGN) * FLAT_ALIGN;
      blocks += Math.ceil(size / FLAT_BLOCK);
    }
    this._entries = entries;
    this._totalElements = offset;
    this._numBlocks = blocks;
    const maxBuffer = rt.limits.maxBufferSize ?? Infinity;
    if (this.bytes > maxBuffer) {
      throw new Error(`the parameters need a ${this.bytes}-byte buffer; this device allows ${maxBuffer} (split the model or use a device with a larger maxBufferSize)`);
    }

    this.segTable = new Uint32Array(Math.max(1, entries.length) * SEGMENT_STRIDE);
    const blockTable = new Uint32Array(Math.max(1, blocks));
    let b = 0;
    for (const e of entries) {
      const s = e.index * SEGMENT_STRIDE;
      this.segTable[s] = e.offset;
      this.segTable[s + 1] = e.size;
      this.segTable[s + 3] = b;
      for (let k = Math.ceil(e.size / FLAT_BLOCK); k > 0; k--) blockTable[b++] = e.index;
    }
    this.writeFlagsToTable();
    this._chunks = planChunks(entries, Math.floor(maxBinding / 4));

    this.rt = rt;
    const dev = rt.device;
    const size = Math.max(256, this.bytes);
    this._params = new FlatBuffer(this, dev.createBuffer({ size, usage: FLAT_USAGE, label: `${this.label}:params` }), `${this.label}:params`);
    this._grads = new FlatBuffer(this, dev.createBuffer({ size, usage: FLAT_USAGE, label: `${this.label}:grads` }), `${this.label}:grads`);
    rt.pool.trackExternal(2 * size);
    this._segments = dev.createBuffer({ size: this.segTable.byteLength, usage: FLAT_USAGE, label: `${this.label}:segments` });
    this._blocks = dev.createBuffer({ size: blockTable.byteLength, usage: FLAT_USAGE, label: `${this.label}:blocks` });
    // Fresh buffers are referenced by no recorded work: write at once. WebGPU zero-initialises new buffers, so
    // gradients, padding and parameters without init start at 0.
    dev.queue.writeBuffer(this._segments, 0, this.segTable);
    dev.queue.writeBuffer(this._blocks, 0, blockTable);
    for (const [i, d] of this.decls.entries()) {
      const e = entries[i];
      if (d.init && e.size) dev.queue.writeBuffer(this._params.buffer, e.offset * 4, d.init.buffer, d.init.byteOffset, d.init.byteLength);
      d.init = null; // the host copy is no longer needed
    }

    this.tensors = entries.map((e) => {
      const t = keep(view(rt, this._params!.buffer, e.offset * 4, e.shape));
      t.name = e.name;
      t.grad = keep(view(rt, this._grads!.buffer, e.offset * 4, e.shape));
      t.grad.name = `${e.name}.grad`;
      this.applyFlagsToTensor(t, e.flags);
      return t;
    });
    return this;
  }

  // ---- layout ------------------------------------------------------------------------------------------

  get entries(): readonly ParamEntry[] {
    this.assertMaterialized();
    return this._entries;
  }

  /** Elements of every flat buffer of this layout, alignment padding included. */
  get totalElements(): number {
    this.assertMaterialized();
    return this._totalElements;
  }

  /** Bytes of ONE flat buffer (parameters, gradients or one optimizer state). */
  get bytes(): number {
    return this._totalElements * 4;
  }

  /** Parameters in the model (padding excluded). */
  get parameterCount(): number {
    return this.decls.reduce((s, d) => s + numel(d.shape), 0);
  }

  get numBlocks(): number {
    return this._numBlocks;
  }

  get maxBindingBytes(): number {
    return this._maxBindingBytes;
  }

  /** Largest element count one binding may cover, a multiple of FLAT_ALIGN. */
  get maxBindingElems(): number {
    return Math.floor(this._maxBindingBytes / 256) * FLAT_ALIGN;
  }

  /** Binding-sized runs of whole blocks covering every tensor (padding between chunks is skipped). */
  get chunks(): readonly FlatChunk[] {
    this.assertMaterialized();
    return this._chunks;
  }

  get runtime(): Runtime {
    return this.assertMaterialized();
  }

  get params(): FlatBuffer {
    this.assertMaterialized();
    return this._params!;
  }

  get grads(): FlatBuffer {
    this.assertMaterialized();
    return this._grads!;
  }

  /** u32 per tensor [offset, size, flags (SEG_DECAY | SEG_FROZEN), firstBlock], bound whole by flat kernels. */
  get segments(): BufferBinding {
    this.assertMaterialized();
    return { buffer: this._segments!, offset: 0, size: this._segments!.size };
  }

  /** u32 per block: the index of the tensor the block belongs to. */
  get blocks(): BufferBinding {
    this.assertMaterialized();
    return { buffer: this._blocks!, offset: 0, size: this._blocks!.size };
  }

  entry(name: string): ParamEntry {
    this.assertMaterialized();
    const i = this.byName.get(name);
    if (i === undefined) throw new Error(`no parameter named '${name}'${suggest(name, this._entries)}`);
    return this._entries[i];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The parameter's tensor: a view of the flat parameter buffer whose `.grad` views the flat gradient buffer. */
  get(name: string): Tensor {
    return this.tensors[this.entry(name).index];
  }

  /** Entries whose names match a glob (see globToRegExp), in layout order. */
  match(glob: string): ParamEntry[] {
    const re = globToRegExp(glob);
    return this.entries.filter((e) => re.test(e.name));
  }

  /** Change a parameter's flags after materialize (freezing by glob, progressive unfreezing). */
  setFlags(name: string, flags: Partial<ParamFlags>): void {
    const e = this.entry(name);
    const next: ParamFlags = { decay: flags.decay ?? e.flags.decay, frozen: flags.frozen ?? e.flags.frozen };
    (this._entries[e.index] as { flags: ParamFlags }).flags = next;
    this.decls[e.index].flags = next;
    this.applyFlagsToTensor(this.tensors[e.index], next);
    this.writeFlagsToTable();
    this.runtime.write(this.segments, this.segTable);
  }

  /** A new zeroed flat buffer with this layout (optimizer state). The caller owns it (destroy()). */
  allocLike(label: string): FlatBuffer {
    const rt = this.runtime;
    const size = Math.max(256, this.bytes);
    const buf = rt.device.createBuffer({ size, usage: FLAT_USAGE, label: `${this.label}:${label}` });
    rt.pool.trackExternal(size);
    return new FlatBuffer(this, buf, label);
  }

  /**
   * One parameter's range of any flat buffer of this layout, as a Tensor view (no copy). toArray() on it always
   * works (a copy); binding it to a kernel needs the tensor to fit maxBindingBytes.
   */
  sliceOf(flat: FlatBuffer, name: string): Tensor {
    if (flat.store !== this) throw new Error(`sliceOf: '${flat.label}' belongs to another parameter store`);
    if (flat.isDestroyed) throw new Error(`sliceOf: '${flat.label}' was destroyed`);
    const e = this.entry(name);
    const t = view(this.runtime, flat.buffer, e.offset * 4, e.shape);
    t.name = `${flat.label}:${name}`;
    return t;
  }

  /** Zero the whole gradient buffer (one fill dispatch per binding-sized range). */
  zeroGrads(): void {
    this.grads.fill(0);
  }

  async read(name: string): Promise<Float32Array> {
    return this.params.read(name);
  }

  async readAll(): Promise<Map<string, Float32Array>> {
    return this.params.readAll();
  }

  load(name: string, data: Float32Array): void {
    this.params.load(name, data);
  }

  destroy(): void {
    if (!this.rt) return;
    this.rt.flush(); // see FlatBuffer.destroy()
    for (const t of this.tensors) {
      t.grad?.dispose();
      t.dispose();
    }
    this._params!.destroy();
    this._grads!.destroy();
    this._segments!.destroy();
    this._blocks!.destroy();
  }

  private writeFlagsToTable(): void {
    for (const e of this._entries) {
      this.segTable[e.index * SEGMENT_STRIDE + 2] = (e.flags.decay ? SEG_DECAY : 0) | (e.flags.frozen ? SEG_FROZEN : 0);
    }
  }

  private applyFlagsToTensor(t: Tensor, f: ParamFlags): void {
    t.frozen = f.frozen;
    t.requiresGrad = !f.frozen;
  }

  private assertMaterialized(): Runtime {
    if (!this.rt) throw new Error('the parameter store is not materialized yet (call materialize(rt))');
    return this.rt;
  }
}

/** Greedy: as many consecutive whole blocks as fit one binding counted from the first block's start. */
export function planChunks(entries: readonly ParamEntry[], maxElems: number): FlatChunk[] {
  const chunks: FlatChunk[] = [];
  let cur: { blockBase: number; numBlocks: number; elemBase: number; end: number } | null = null;
  let b = 0;
  for (const e of entries) {
    const nb = Math.ceil(e.size / FLAT_BLOCK);
    for (let k = 0; k < nb; k++, b++) {
      const start = e.offset + k * FLAT_BLOCK;
      const end = Math.min(start + FLAT_BLOCK, e.offset + e.size);
      if (cur && end - cur.elemBase <= maxElems) {
        cur.numBlocks++;
        cur.end = end;
      } else {
        if (cur) chunks.push({ blockBase: cur.blockBase, numBlocks: cur.numBlocks, elemBase: cur.elemBase, elems: cur.end - cur.elemBase });
        cur = { blockBase: b, numBlocks: 1, elemBase: start, end };
      }
    }
  }
  if (cur) chunks.push({ blockBase: cur.blockBase, numBlocks: cur.numBlocks, elemBase: cur.elemBase, elems: cur.end - cur.elemBase });
  return chunks;
}

function suggest(name: string, entries: readonly ParamEntry[]): string {
  const near = entries.filter((e) => e.name.endsWith(name.split('.').pop() ?? name)).slice(0, 3).map((e) => e.name);
  return near.length ? ` (did you mean ${near.join(', ')}?)` : '';
}
