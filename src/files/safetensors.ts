// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian u64 header length N, N bytes of
// UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the byte
// buffer; offsets are relative to the buffer's start. Tensors are stored little-endian, row-major.
//
// Reading never loads the whole file: the header alone gives the tensor list, and each tensor is read at its
// offset with positioned reads. The parser is bounds-checked: anything malformed throws SafetensorsError naming
// the file (and the tensor, where one is at fault) — never another exception, never a huge allocation.
// Writing is streamed tensor by tensor (a tensor's data may be produced lazily) into an atomic write.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { openAtomic } from './atomic';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from './f16';

export class SafetensorsError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly tensor?: string,
  ) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Element sizes in bytes of the dtypes this parser accepts (the spec's byte-sized dtypes). */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_SIZES;

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  numel: number;
  /** As in the header: relative to the start of the byte buffer. */
  dataOffsets: [number, number];
  /** Absolute position of the tensor's first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  /** N, the JSON header's length in bytes (padding included). */
  headerLength: number;
  /** 8 + N: where the byte buffer starts. */
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string>;
  /** By name (a null-prototype object, so any tensor name is safe as a key). */
  tensors: Record<string, TensorInfo>;
  /** The same tensors in file order (by data offset): the order to stream them in. */
  list: TensorInfo[];
}

export interface DecodedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Float dtypes decode to Float32Array; integer and BOOL dtypes to Int32Array (range-checked). */
  data: Float32Array | Int32Array;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Reverses the bytes of each `size`-byte element in place (big-endian hosts only). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * Validates a header's JSON bytes against a file of `fileSize` bytes. Exported for tests and for callers that
 * already hold the bytes; `readSafetensorsHeader` is the usual entry point.
 */
export function parseSafetensorsHeader(jsonBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const fail = (msg: string, tensor?: string): never => {
    throw new SafetensorsError(
      tensor === undefined ? `${file}: ${msg}` : `${file}: tensor "${tensor}": ${msg}`,
      file,
      tensor,
    );
  };
  const headerLength = jsonBytes.length;
  const dataStart = 8 + headerLength;
  const bufferSize = fileSize - dataStart;
  if (bufferSize < 0) fail(`header length ${headerLength} exceeds the file size ${fileSize} − 8`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(jsonBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(`header must be a JSON object starting with "{", got ${describe(text.slice(0, 1))}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail('header must be a JSON object');

  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`"__metadata__" must be an object, got ${describe(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__" value of "${k}" must be a string, got ${describe(v)}`);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`entry must be an object, got ${describe(raw)}`, name);
    const entry = raw as Record<string, unknown>;
    const dtype = entry.dtype;
    if (!isDType(dtype)) fail(`unknown dtype ${describe(dtype)} (known: ${Object.keys(DTYPE_SIZES).join(', ')})`, name);
    const shapeRaw = entry.shape;
    if (!Array.isArray(shapeRaw)) fail(`shape must be an array, got ${describe(shapeRaw)}`, name);
    const shape = shapeRaw as unknown[];
    let numel = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(`shape must hold non-negative integers, got [${shape.map(describe).join(', ')}]`, name);
      }
      numel *= d as number;
      if (numel > Number.MAX_SAFE_INTEGER) fail(`shape [${shape.join(', ')}] has too many elements`, name);
    }
    const offs = entry.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(`data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offs) ?? 'nothing'}`, name);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`data_offsets [${begin}, ${end}]: begin is after end`, name);
    if (end > bufferSize) fail(`data_offsets [${begin}, ${end}] run past the byte buffer (${bufferSize} bytes)`, name);
    const size = DTYPE_SIZES[dtype as SafetensorsDType];
    if (end - begin !== numel * size) {
      fail(
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${numel * size}`,
        name,
      );
    }
    tensors.push({
      name,
      dtype: dtype as SafetensorsDType,
      shape: shape as number[],
      numel,
      dataOffsets: [begin, end],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
    });
  }

  // Sorted by offset, the tensors must tile the buffer exactly: no overlap, no gap, nothing left over.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < cursor) fail(`data_offsets [${begin}, ${end}] overlap tensor "${prev?.name}" (ends at ${cursor})`, t.name);
    if (begin > cursor) {
      fail(`data_offsets [${begin}, ${end}] leave a gap of ${begin - cursor} bytes after ${prev ? `tensor "${prev.name}"` : 'the header'}`, t.name);
    }
    cursor = end;
    prev = t;
  }
  if (cursor !== bufferSize) {
    fail(`the tensors cover ${cursor} bytes of the ${bufferSize}-byte buffer (${bufferSize - cursor} bytes unaccounted for)`);
  }
  const byName = Object.create(null) as Record<string, TensorInfo>;
  for (const t of tensors) byName[t.name] = t;
  return { file, headerLength, dataStart, fileSize, metadata, tensors: byName, list: tensors };
}

async function readFully(h: fs.promises.FileHandle, into: Uint8Array, position: number, file: string, what: string, tensor?: string): Promise<void> {
  const fail = (msg: string): never => {
    throw new SafetensorsError(tensor === undefined ? `${file}: ${msg}` : `${file}: tensor "${tensor}": ${msg}`, file, tensor);
  };
  let off = 0;
  while (off < into.length) {
    let bytesRead = 0;
    try {
      ({ bytesRead } = await h.read(into, off, into.length - off, position + off));
    } catch (e) {
      fail(`cannot read ${what} (${(e as Error).message})`);
    }
    if (bytesRead === 0) fail(`unexpected end of file reading ${what} (${off} of ${into.length} bytes at offset ${position})`);
    off += bytesRead;
  }
}

async function readHeaderFrom(h: fs.promises.FileHandle, file: string): Promise<SafetensorsHeader> {
  const { size } = await h.stat();
  if (size < 8) throw new SafetensorsError(`${file}: file is ${size} bytes, shorter than the 8-byte header length`, file);
  const lenBytes = new Uint8Array(8);
  await readFully(h, lenBytes, 0, file, 'the header length');
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, file);
  if (n > BigInt(size - 8)) throw new SafetensorsError(`${file}: header length ${n} exceeds the file size ${size} − 8`, file);
  const json = new Uint8Array(Number(n));
  await readFully(h, json, 8, file, 'the header');
  return parseSafetensorsHeader(json, size, file);
}

function decode(t: TensorInfo, bytes: Uint8Array, file: string): Float32Array | Int32Array {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${file}: tensor "${t.name}": ${msg}`, file, t.name);
  };
  const size = DTYPE_SIZES[t.dtype];
  // `bytes` is a fresh, exactly-sized, aligned buffer that we own.
  if (!LITTLE_ENDIAN) swapBytes(bytes, size);
  const buf = bytes.buffer as ArrayBuffer;
  const off = bytes.byteOffset;
  const n = t.numel;
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(buf, off, n);
    case 'F16': {
      const out = new Float32Array(n);
      decodeF16(new Uint16Array(buf, off, n), out);
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(n);
      decodeBf16(new Uint16Array(buf, off, n), out);
      return out;
    }
    case 'F64':
      return Float32Array.from(new Float64Array(buf, off, n));
    case 'I32':
      return new Int32Array(buf, off, n);
    case 'BOOL':
    case 'U8':
      return Int32Array.from(new Uint8Array(buf, off, n));
    case 'I8':
      return Int32Array.from(new Int8Array(buf, off, n));
    case 'U16':
      return Int32Array.from(new Uint16Array(buf, off, n));
    case 'I16':
      return Int32Array.from(new Int16Array(buf, off, n));
    case 'U32': {
      const src = new Uint32Array(buf, off, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        if (src[i] > 0x7fffffff) fail(`U32 value ${src[i]} at index ${i} does not fit an Int32Array`);
        out[i] = src[i];
      }
      return out;
    }
    case 'I64':
    case 'U64': {
      const src = t.dtype === 'I64' ? new BigInt64Array(buf, off, n) : new BigUint64Array(buf, off, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) fail(`${t.dtype} value ${v} at index ${i} does not fit an Int32Array`);
        out[i] = Number(v);
      }
      return out;
    }
    default:
      return fail(`dtype ${t.dtype} has no decoder; read its raw bytes with readTensorBytes()`);
  }
}

/**
 * An open safetensors file: the header is parsed once, then tensors are read one at a time at their offsets.
 * Use this when reading many tensors of one file (merging, loading a checkpoint); close() when done.
 */
export class SafetensorsReader {
  private constructor(
    readonly file: string,
    readonly header: SafetensorsHeader,
    private readonly handle: fs.promises.FileHandle,
  ) {}

  static async open(file: string, header?: SafetensorsHeader): Promise<SafetensorsReader> {
    let h: fs.promises.FileHandle;
    try {
      h = await fs.promises.open(file, 'r');
    } catch (e) {
      throw new SafetensorsError(`${file}: cannot open (${(e as Error).message})`, file);
    }
    try {
      let hdr: SafetensorsHeader;
      if (header) {
        const { size } = await h.stat();
        if (size !== header.fileSize) {
          throw new SafetensorsError(`${file}: file is ${size} bytes but its header was read when it had ${header.fileSize}`, file);
        }
        hdr = header;
      } else {
        hdr = await readHeaderFrom(h, file);
      }
      return new SafetensorsReader(file, hdr, h);
    } catch (e) {
      await h.close().catch(() => undefined);
      throw e;
    }
  }

  /** The tensors in file order. */
  get tensors(): TensorInfo[] {
    return this.header.list;
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors[name];
    if (!t) {
      const names = this.header.list.map((x) => x.name);
      const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} in all)` : '');
      throw new SafetensorsError(`${this.file}: tensor "${name}": not in the file (it has: ${shown || 'no tensors'})`, this.file, name);
    }
    return t;
  }

  /** The tensor's raw little-endian bytes, in a fresh buffer. */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const out = new Uint8Array(t.byteLength);
    await readFully(this.handle, out, t.byteOffset, this.file, 'the tensor data', name);
    return out;
  }

  async read(name: string): Promise<DecodedTensor> {
    const t = this.info(name);
    const bytes = await this.readBytes(name);
    return { name, dtype: t.dtype, shape: t.shape.slice(), data: decode(t, bytes, this.file) };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads and validates only the header: the tensor list, shapes, dtypes and metadata. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const r = await SafetensorsReader.open(file);
  await r.close();
  return r.header;
}

/** Reads one tensor at its offset (a header read before may be passed to skip re-parsing it). */
export async function readTensor(file: string, name: string, header?: SafetensorsHeader): Promise<DecodedTensor> {
  const r = await SafetensorsReader.open(file, header);
  try {
    return await r.read(name);
  } finally {
    await r.close();
  }
}

/** Reads one tensor's raw bytes (e.g. F16 to upload and decode on the GPU). */
export async function readTensorBytes(file: string, name: string, header?: SafetensorsHeader): Promise<Uint8Array> {
  const r = await SafetensorsReader.open(file, header);
  try {
    return await r.readBytes(name);
  } finally {
    await r.close();
  }
}

// ---------------------------------------------------------------------------------------------------- writing

export type WritableFloatDType = 'F32' | 'F16' | 'BF16';

type Lazy<T> = T | (() => T | Promise<T>);

/**
 * A tensor to write. `data` may be a function, called only when the tensor's turn comes (streaming).
 * `valuesOutliveNextCall`: the producer promises that the values it returns stay valid until the writer asks for
 * the tensor after the next one (it alternates two buffers). Values already in their on-disk form (F32 as a
 * Float32Array, F16/BF16 as a Uint16Array of bits) are then written straight from its memory, with no copy, and the
 * write runs while the producer makes the next tensor.
 */
export type WriteTensor =
  | { name: string; dtype: WritableFloatDType; shape: readonly number[]; data: Lazy<HalfOrF32>; valuesOutliveNextCall?: boolean }
  | { name: string; dtype: 'I32'; shape: readonly number[]; data: Lazy<Int32Array>; valuesOutliveNextCall?: undefined };

/**
 * A tensor of any dtype written byte for byte as another file holds it (little-endian, as safetensors stores it): a
 * merge copies the base's non-float tensors (position ids, masks) this way.
 */
export interface WriteRawTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  raw: Lazy<Uint8Array>;
}

/**
 * A float tensor's values: f32 (encoded to the tensor's dtype here), or for F16/BF16 the bits already encoded
 * (a Uint16Array: e.g. narrowed on the GPU), written as they are.
 */
export type HalfOrF32 = Float32Array | Uint16Array;

/**
 * A float tensor written in pieces, in order: `pieces` is called when the tensor's turn comes and each piece is
 * consumed before the next is asked for (so a piece may be a view the producer reuses): written, or for F16/BF16
 * encoded into the writer's own buffer, whose write then runs while the producer makes the next piece. Their total
 * must be the shape's. For tensors too large to hold on the host at once (the merge executor's row chunks).
 */
export interface WriteTensorPieces {
  name: string;
  dtype: WritableFloatDType;
  shape: readonly number[];
  pieces: () => AsyncIterable<HalfOrF32>;
  /** As WriteTensor's: each piece stays valid until the piece after the next one is asked for. */
  valuesOutliveNextCall?: boolean;
}

const CHUNK_ELEMENTS = 1 << 20;

/**
 * Writes tensors (in the given order) and string metadata to `file` atomically. The header is padded with
 * spaces so the byte buffer starts at a multiple of 8. F16/BF16 round to nearest even.
 */
export async function writeSafetensors(
  file: string,
  tensors: readonly (WriteTensor | WriteTensorPieces | WriteRawTensor)[],
  metadata?: Record<string, string>,
): Promise<void> {
  const fail = (msg: string, tensor?: string): never => {
    throw new SafetensorsError(tensor === undefined ? `${file}: ${msg}` : `${file}: tensor "${tensor}": ${msg}`, file, tensor);
  };
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') fail(`metadata value of "${k}" must be a string`);
    header.__metadata__ = metadata;
  }
  const seen = new Set<string>();
  const numels: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') fail('"__metadata__" is reserved', t.name);
    if (seen.has(t.name)) fail('name used twice', t.name);
    seen.add(t.name);
    if ('raw' in t ? !(t.dtype in DTYPE_SIZES) : !(t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'I32')) fail(`cannot write dtype ${String(t.dtype)}`, t.name);
    let numel = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail(`shape [${t.shape.join(', ')}] must hold non-negative integers`, t.name);
      numel *= d;
    }
    if ('raw' in t) {
      if (typeof t.raw !== 'function' && t.raw.byteLength !== numel * DTYPE_SIZES[t.dtype]) fail(`raw data has ${t.raw.byteLength} bytes but ${t.dtype} [${t.shape.join(', ')}] needs ${numel * DTYPE_SIZES[t.dtype]}`, t.name);
    } else if ('pieces' in t) {
      if (t.dtype === ('I32' as string)) fail('pieces are for float tensors', t.name);
    } else if (typeof t.data !== 'function' && t.data.length !== numel) {
      fail(`data has ${t.data.length} elements but shape [${t.shape.join(', ')}] needs ${numel}`, t.name);
    }
    const bytes = numel * DTYPE_SIZES[t.dtype];
    Object.defineProperty(header, t.name, {
      value: { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    numels.push(numel);
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  let halfMax = 1;
  for (let i = 0; i < tensors.length; i++) if (tensors[i].dtype === 'F16' || tensors[i].dtype === 'BF16') halfMax = Math.max(halfMax, numels[i]);
  // F16/BF16 values are encoded into one of two scratch buffers and their write is left in flight (one at a
  // time, so the other buffer is free) while the caller makes the next values: a merge's next row chunk runs on
  // the GPU during the disk write instead of after it.
  // Made on first use: values the caller keeps (valuesOutliveNextCall) in their on-disk form never need them.
  const scratch16: Uint16Array[] = [];
  const scratch = (k: number) => (scratch16[k] ??= new Uint16Array(Math.min(CHUNK_ELEMENTS, halfMax)));
  let flip = 0;
  let inFlight: Promise<void> | null = null;
  const settle = async () => {
    const p = inFlight;
    inFlight = null;
    await p;
  };
  const w = await openAtomic(file);
  try {
    await w.write(prefix);
    await w.write(json);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      if ('pieces' in t) {
        let total = 0;
        for await (const piece of t.pieces()) {
          if (!(piece instanceof Float32Array || (piece instanceof Uint16Array && t.dtype !== 'F32'))) fail(`a piece of data must be a Float32Array${t.dtype === 'F32' ? '' : ` or a Uint16Array of ${t.dtype} bits`}`, t.name);
          total += piece.length;
          if (total > numels[i]) fail(`data has more than the ${numels[i]} elements shape [${t.shape.join(', ')}] needs`, t.name);
          await writeValues(t, piece);
        }
        if (total !== numels[i]) fail(`data has ${total} elements but shape [${t.shape.join(', ')}] needs ${numels[i]}`, t.name);
        continue;
      }
      if ('raw' in t) {
        const raw = typeof t.raw === 'function' ? await t.raw() : t.raw;
        if (!(raw instanceof Uint8Array)) fail('raw data must be a Uint8Array', t.name);
        const want = numels[i] * DTYPE_SIZES[t.dtype];
        if (raw.byteLength !== want) fail(`raw data has ${raw.byteLength} bytes but ${t.dtype} [${t.shape.join(', ')}] needs ${want}`, t.name);
        await settle(); // the bytes are the caller's: written before returning
        await w.write(raw);
        continue;
      }
      const data = typeof t.data === 'function' ? await t.data() : t.data;
      if (!(data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint16Array)) fail('data must be a Float32Array, Uint16Array (F16/BF16 bits) or Int32Array', t.name);
      if ((t.dtype === 'I32') !== data instanceof Int32Array) fail(`data of dtype ${t.dtype} must be ${t.dtype === 'I32' ? 'an Int32Array' : 'a Float32Array'}`, t.name);
      if (data instanceof Uint16Array && t.dtype === 'F32') fail('data of dtype F32 must be a Float32Array (a Uint16Array holds F16/BF16 bits)', t.name);
      if (data.length !== numels[i]) fail(`data has ${data.length} elements but shape [${t.shape.join(', ')}] needs ${numels[i]}`, t.name);
      await writeValues(t, data);
    }
    await settle();
    if (w.bytesWritten !== 8 + json.length + offset) fail(`wrote ${w.bytesWritten} bytes, expected ${8 + json.length + offset}`);
  } catch (e) {
    await settle().catch(() => undefined);
    await w.abort().catch(() => undefined);
    throw e;
  }
  await w.commit();

  async function writeValues(t: WriteTensor | WriteTensorPieces, data: Float32Array | Int32Array | Uint16Array): Promise<void> {
      const asOnDisk = t.dtype === 'F32' ? data instanceof Float32Array : t.dtype !== 'I32' && data instanceof Uint16Array;
      if (t.valuesOutliveNextCall && asOnDisk && LITTLE_ENDIAN) {
        // The producer keeps these values until the call after its next one: written from its memory, and left in
        // flight (the previous write, which may use the buffer it is about to reuse, ends first).
        await settle();
        const p = w.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        p.catch(() => undefined); // seen by the next settle()
        inFlight = p;
        return;
      }
      for (let s = 0; s < data.length; s += CHUNK_ELEMENTS) {
        const part = data.subarray(s, Math.min(data.length, s + CHUNK_ELEMENTS));
        if (t.dtype === 'F32' || t.dtype === 'I32') {
          // Written from the caller's memory: done before returning (the caller may reuse it).
          await settle();
          const view = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
          if (LITTLE_ENDIAN) await w.write(view);
          else {
            const copy = Uint8Array.from(view);
            swapBytes(copy, 4);
            await w.write(copy);
          }
        } else {
          const out = scratch(flip).subarray(0, part.length);
          flip ^= 1;
          if (part instanceof Uint16Array) out.set(part); // bits encoded already: copied, so the caller may reuse them
          else if (t.dtype === 'F16') encodeF16(part as Float32Array, out);
          else encodeBf16(part as Float32Array, out);
          const view = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
          if (!LITTLE_ENDIAN) swapBytes(view, 2);
          // The previous write (from the other buffer) ends first: one in flight, in order.
          await settle();
          const p = w.write(view);
          p.catch(() => undefined); // seen by the next settle(); no unhandled rejection in between
          inFlight = p;
        }
      }
  }
}
