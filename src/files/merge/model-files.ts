// A merge's input models on disk: the tensor list of each (name, dtype, shape, file, byte range) WITHOUT reading
// any data, then one tensor's bytes at a time at its offset (positioned reads, never whole files), so a merge
// holds only the tensors it is working on. Pure Node: the GPU executor uploads the bytes (F16/BF16 decode on the
// GPU or with ../f16.ts).
//
// A model is one of (config.ts ModelRef):
//   - a Basin run folder: its latest checkpoint (RunFolder.latestCheckpoint);
//   - a Basin checkpoint `<run>/checkpoints/step-<n>.safetensors`;
//   - a .safetensors file;
//   - a folder with `model.safetensors`, or with a sharded `model.safetensors.index.json` ({weight_map: {tensor:
//     shard file}}): the index is bounds-checked and validated against the shards' headers (every shard exists
//     inside the folder, every tensor is in its shard's header with the dtype and shape the header gives).
// Training statistics (row/column sums of Adam's v) are found for Basin checkpoints by `statisticsFor`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeBf16, decodeF16 } from '../f16';
import { RunFolder, RunRecordError, modelWeightsFile } from '../run-record';
import { MAX_HEADER_BYTES, SafetensorsError, SafetensorsReader, type SafetensorsDType, type SafetensorsHeader } from '../safetensors';
import { resolveModelRef, type ModelRef, type ModelRefKind } from './config';
import { MODEL_FILE, SHARD_INDEX_FILE, modelFileIn, settleMergeFolder } from './merge-commit';

/** The float dtypes a merge reads and writes. */
export type FloatDType = 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPE_BYTES: Record<FloatDType, number> = { F32: 4, F16: 2, BF16: 2 };

export function isFloatDType(d: string): d is FloatDType {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

/** Where one tensor's bytes are: enough to read it with a single positioned read. */
export interface TensorRef {
  name: string;
  dtype: FloatDType;
  shape: number[];
  numel: number;
  /** Absolute path of the .safetensors file. */
  file: string;
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
  /**
   * A sample of rows gathered from several places (a merge preview): these byte ranges, read in order and laid
   * end to end, are the tensor's bytes (`byteLength` is their sum; `byteOffset` is the first one's).
   */
  pieces?: readonly { byteOffset: number; byteLength: number }[];
}

/** A tensor a merge cannot read as floats (integer buffers and the like), listed so a plan can say so. */
export interface OtherTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  file: string;
}

export class ModelFilesError extends Error {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'ModelFilesError';
  }
}

// ----------------------------------------------------------------------------------------- the sharded index

/** A parsed `model.safetensors.index.json`. */
export interface ShardIndex {
  file: string;
  /** The index's `metadata` (e.g. total_size), as written. */
  metadata: Record<string, unknown>;
  /** Tensor name → absolute shard path (a null-prototype object: any tensor name is a safe key). */
  weightMap: Record<string, string>;
  /** The distinct shard files, absolute, in first-mention order. */
  shards: string[];
}

/** Largest number of tensors an index may list (far above any real model; bounds the work on a hostile file). */
export const MAX_INDEX_TENSORS = 1_000_000;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * Parses an index's JSON text and checks its structure and shard paths (no file is opened): `weight_map` maps
 * names to relative `.safetensors` paths inside the index's folder — no absolute path, no `..` escape, no
 * backslash, no NUL. Throws ModelFilesError naming the file and the tensor at fault.
 */
export function parseShardIndex(text: string, indexFile: string): ShardIndex {
  const fail = (msg: string): never => {
    throw new ModelFilesError(`${indexFile}: ${msg}`, indexFile);
  };
  if (text.length > MAX_HEADER_BYTES) fail(`index is ${text.length} characters, over the ${MAX_HEADER_BYTES} limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail(`must hold a JSON object with "weight_map", got ${describe(parsed)}`);
  const obj = parsed as Record<string, unknown>;
  const metadata = obj.metadata === undefined ? {} : obj.metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) fail(`"metadata" must be an object, got ${describe(metadata)}`);
  const md = metadata as Record<string, unknown>;
  if (md.total_size !== undefined && !(typeof md.total_size === 'number' && Number.isSafeInteger(md.total_size) && md.total_size >= 0)) {
    fail(`"metadata.total_size" must be a non-negative integer, got ${describe(md.total_size)}`);
  }
  const wm = obj.weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) fail(`"weight_map" must be an object {tensor: shard file}, got ${describe(wm)}`);
  const entries = Object.entries(wm as Record<string, unknown>);
  if (entries.length === 0) fail('"weight_map" lists no tensors');
  if (entries.length > MAX_INDEX_TENSORS) fail(`"weight_map" lists ${entries.length} tensors, over the ${MAX_INDEX_TENSORS} limit`);
  const dir = path.dirname(path.resolve(indexFile));
  const weightMap = Object.create(null) as Record<string, string>;
  const shards: string[] = [];
  const checked = new Map<string, string>();
  for (const [name, shard] of entries) {
    if (name === '') fail('"weight_map" has an empty tensor name');
    if (typeof shard !== 'string') fail(`tensor "${name}": shard must be a file name, got ${describe(shard)}`);
    const s = shard as string;
    let abs = checked.get(s);
    if (abs === undefined) {
      if (s === '' || s.includes('\0') || s.includes('\\')) fail(`tensor "${name}": shard ${describe(s)} is not a plain relative path`);
      if (path.isAbsolute(s) || path.posix.isAbsolute(s) || /^[A-Za-z]:/.test(s)) fail(`tensor "${name}": shard ${describe(s)} must be relative to the index's folder`);
      if (s.split('/').some((seg) => seg === '..')) fail(`tensor "${name}": shard ${describe(s)} leaves the index's folder`);
      if (!/\.safetensors$/i.test(s)) fail(`tensor "${name}": shard ${describe(s)} is not a .safetensors file`);
      abs = path.resolve(dir, s);
      const rel = path.relative(dir, abs);
      if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) fail(`tensor "${name}": shard ${describe(s)} leaves the index's folder`);
      checked.set(s, abs);
      if (!shards.includes(abs)) shards.push(abs);
    }
    weightMap[name] = abs;
  }
  return { file: path.resolve(indexFile), metadata: md, weightMap, shards };
}

/**
 * Opens a sharded model's index and checks it against the shards: each shard is a file inside the folder (after
 * symlinks), has a valid safetensors header (bounds-checked by ../safetensors.ts), and holds every tensor the
 * index maps to it. Returns the index and each shard's header.
 */
export async function openShardIndex(indexFile: string): Promise<{ index: ShardIndex; headers: Map<string, SafetensorsHeader> }> {
  let text: string;
  try {
    const st = await fs.promises.stat(indexFile);
    if (st.size > MAX_HEADER_BYTES) throw new ModelFilesError(`${indexFile}: index is ${st.size} bytes, over the ${MAX_HEADER_BYTES} limit`, indexFile);
    text = await fs.promises.readFile(indexFile, 'utf8');
  } catch (e) {
    if (e instanceof ModelFilesError) throw e;
    throw new ModelFilesError(`${indexFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, indexFile);
  }
  const index = parseShardIndex(text, indexFile);
  const dir = path.dirname(index.file);
  let realDir: string;
  try {
    realDir = await fs.promises.realpath(dir);
  } catch (e) {
    throw new ModelFilesError(`${index.file}: cannot resolve its folder (${(e as Error).message})`, index.file);
  }
  const headers = new Map<string, SafetensorsHeader>();
  for (const shard of index.shards) {
    const rel = path.relative(dir, shard);
    let real: string;
    try {
      real = await fs.promises.realpath(shard);
    } catch {
      const users = Object.keys(index.weightMap).filter((n) => index.weightMap[n] === shard);
      throw new ModelFilesError(`${index.file}: shard "${rel}" does not exist (it holds ${users.length} tensors, e.g. "${users[0]}")`, index.file);
    }
    const back = path.relative(realDir, real);
    if (back.startsWith('..') || path.isAbsolute(back)) throw new ModelFilesError(`${index.file}: shard "${rel}" is a link leaving the model's folder`, index.file);
    if (!(await fs.promises.stat(real)).isFile()) throw new ModelFilesError(`${index.file}: shard "${rel}" is not a file`, index.file);
    const r = await SafetensorsReader.open(shard);
    headers.set(shard, r.header);
    await r.close();
  }
  for (const name of Object.keys(index.weightMap)) {
    const shard = index.weightMap[name];
    if (!headers.get(shard)!.tensors[name]) {
      throw new ModelFilesError(`${index.file}: tensor "${name}" is mapped to "${path.relative(dir, shard)}" but that shard's header does not hold it`, index.file);
    }
  }
  return { index, headers };
}

// --------------------------------------------------------------------------------------------------- models

/** A Basin checkpoint behind a model reference (run folder or checkpoint file). */
export interface CheckpointOrigin {
  /** The run folder. */
  runDir: string;
  step: number;
  file: string;
}

/** An opened model: its tensors listed from the headers; data read on demand. */
export class ModelFiles {
  private readonly readers = new Map<string, Promise<SafetensorsReader>>();

  private constructor(
    /** The model's path (as resolved from the config). */
    readonly path: string,
    readonly kind: ModelRefKind,
    /** The safetensors files it reads, with their headers. */
    readonly headers: ReadonlyMap<string, SafetensorsHeader>,
    /** Float tensors by name (null-prototype object), in file order in `list`. */
    readonly tensors: Readonly<Record<string, TensorRef>>,
    readonly list: readonly TensorRef[],
    /** Tensors of non-float dtypes (not mergeable). */
    readonly other: readonly OtherTensor[],
    /** For Basin runs and checkpoints: which checkpoint. */
    readonly checkpoint: CheckpointOrigin | null,
  ) {}

  /** Opens a model reference (a ModelRef from a config, or a path resolved like one from `cwd`). */
  static async open(ref: Pick<ModelRef, 'path' | 'kind'> | string): Promise<ModelFiles> {
    const r = typeof ref === 'string' ? resolveModelRef(process.cwd(), ref) : ref;
    let files: string[] = [];
    let checkpoint: CheckpointOrigin | null = null;
    let headers = new Map<string, SafetensorsHeader>();
    let weightMap: Record<string, string> | null = null;
    switch (r.kind) {
      case 'run': {
        let run: RunFolder;
        try {
          run = await RunFolder.open(r.path);
        } catch (e) {
          if (e instanceof RunRecordError) throw new ModelFilesError(e.message, path.join(r.path, 'run.json'));
          throw e;
        }
        const latest = run.latestCheckpoint();
        if (!latest) throw new ModelFilesError(`${r.path}: the run has no checkpoint yet (checkpoints/step-<n>.safetensors)`, r.path);
        // A LoRA run's model is its merged twin (W + scale·B·A), not the checkpoint with adapter tensors.
        const weights = modelWeightsFile(latest.absPath);
        checkpoint = { runDir: run.dir, step: latest.step, file: weights };
        files = [weights];
        break;
      }
      case 'checkpoint': {
        const step = Number(/step-(\d+)\.safetensors$/.exec(r.path)?.[1]);
        const weights = modelWeightsFile(r.path);
        checkpoint = { runDir: path.dirname(path.dirname(r.path)), step, file: weights };
        files = [weights];
        break;
      }
      case 'safetensors':
        files = [r.path];
        break;
      case 'folder':
        files = [path.join(r.path, 'model.safetensors')];
        break;
      case 'sharded': {
        const o = await openShardIndex(path.join(r.path, 'model.safetensors.index.json'));
        headers = o.headers;
        weightMap = o.index.weightMap;
        files = o.index.shards;
        break;
      }
    }
    if (!weightMap) {
      for (const f of files) {
        const reader = await SafetensorsReader.open(f);
        headers.set(f, reader.header);
        await reader.close();
      }
    }
    const tensors = Object.create(null) as Record<string, TensorRef>;
    const list: TensorRef[] = [];
    const other: OtherTensor[] = [];
    for (const f of files) {
      const h = headers.get(f)!;
      for (const t of h.list) {
        if (weightMap && weightMap[t.name] !== f) continue; // a shard may carry tensors the index assigns elsewhere
        if (!isFloatDType(t.dtype)) {
          other.push({ name: t.name, dtype: t.dtype, shape: t.shape.slice(), file: f });
          continue;
        }
        const ref: TensorRef = { name: t.name, dtype: t.dtype, shape: t.shape.slice(), numel: t.numel, file: f, byteOffset: t.byteOffset, byteLength: t.byteLength };
        tensors[t.name] = ref;
        list.push(ref);
      }
    }
    return new ModelFiles(r.path, r.kind, headers, tensors, list, other, checkpoint);
  }

  /** The tensor of a name; throws ModelFilesError listing a few names when it is not there. */
  tensor(name: string): TensorRef {
    const t = this.tensors[name];
    if (!t) {
      const names = this.list.map((x) => x.name);
      const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} in all)` : '');
      throw new ModelFilesError(`${this.path}: no tensor "${name}" (it has: ${shown || 'no float tensors'})`, this.path);
    }
    return t;
  }

  has(name: string): boolean {
    return this.tensors[name] !== undefined;
  }

  private reader(file: string): Promise<SafetensorsReader> {
    let r = this.readers.get(file);
    if (!r) {
      r = SafetensorsReader.open(file, this.headers.get(file));
      this.readers.set(file, r);
      r.catch(() => this.readers.delete(file));
    }
    return r;
  }

  /** One tensor's raw little-endian bytes (a positioned read of exactly its range). */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    return (await this.reader(t.file)).readBytes(name);
  }

  /** One tensor decoded to f32. */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.tensor(name);
    return decodeToF32(t, await this.readBytes(name));
  }

  /** Closes the files it opened (reads open them lazily). */
  async close(): Promise<void> {
    const rs = [...this.readers.values()];
    this.readers.clear();
    for (const r of rs) await (await r.catch(() => null))?.close().catch(() => undefined);
  }
}

/** A model folder's single weights file, and a sharded model's index (transformers' names). */
export { MODEL_FILE, SHARD_INDEX_FILE };

/** One weights file, or a sharded model through its index: each tensor's dtype and shape, and a read as f32. */
export interface WeightsFile {
  /** Every tensor (float or not) by name (null-prototype object). */
  tensors: Readonly<Record<string, { dtype: string; shape: number[] }>>;
  /** A float tensor decoded to f32. */
  read(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Opens a .safetensors file or a model.safetensors.index.json (its shards) for reading whole tensors by name. */
export async function openWeightsFile(file: string): Promise<WeightsFile> {
  if (path.basename(file) === SHARD_INDEX_FILE || path.basename(file) === MODEL_FILE) {
    // A merge killed while moving its files in is finished first. If it replaced this one file by shards, the
    // model is now read through their index (the caller chose the file before the folder was settled).
    const dir = path.dirname(file);
    if (settleMergeFolder(dir).length && !fs.existsSync(file)) file = modelFileIn(dir) ?? file;
  }
  const m = await ModelFiles.open(path.basename(file) === SHARD_INDEX_FILE ? { path: path.dirname(file), kind: 'sharded' } : { path: file, kind: 'safetensors' });
  const tensors = Object.create(null) as Record<string, { dtype: string; shape: number[] }>;
  for (const t of m.list) tensors[t.name] = { dtype: t.dtype, shape: t.shape };
  for (const t of m.other) tensors[t.name] = { dtype: t.dtype, shape: t.shape };
  return { tensors, read: (name) => m.readF32(name), close: () => m.close() };
}

/** Opens a model; shorthand for ModelFiles.open. */
export function openModel(ref: Pick<ModelRef, 'path' | 'kind'> | string): Promise<ModelFiles> {
  return ModelFiles.open(ref);
}

/** Decodes a tensor's little-endian bytes (F32/F16/BF16) to f32. */
export function decodeToF32(t: Pick<TensorRef, 'name' | 'dtype' | 'numel' | 'file'>, bytes: Uint8Array): Float32Array {
  const size = FLOAT_DTYPE_BYTES[t.dtype];
  if (bytes.byteLength !== t.numel * size) throw new ModelFilesError(`${t.file}: tensor "${t.name}": ${bytes.byteLength} bytes for ${t.numel} ${t.dtype} values`, t.file);
  // A fresh aligned copy when the view is not aligned (or to own the memory).
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const dv = new DataView(aligned.buffer, aligned.byteOffset, aligned.byteLength);
  const out = new Float32Array(t.numel);
  if (t.dtype === 'F32') {
    for (let i = 0; i < t.numel; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  const u16 = new Uint16Array(t.numel);
  for (let i = 0; i < t.numel; i++) u16[i] = dv.getUint16(i * 2, true);
  if (t.dtype === 'F16') decodeF16(u16, out);
  else decodeBf16(u16, out);
  return out;
}

/**
 * Reads tensors by TensorRef (what a MergePlan holds) with positioned reads, keeping each file open until
 * close(): the executor's reader. Checks that the file still holds the range (a file replaced since planning
 * gives a clear error, not garbage).
 */
export class TensorFileReader {
  private readonly handles = new Map<string, Promise<fs.promises.FileHandle>>();

  private handle(file: string): Promise<fs.promises.FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = fs.promises.open(file, 'r').catch((e: Error) => {
        this.handles.delete(file);
        throw new ModelFilesError(`${file}: cannot open (${e.message})`, file);
      });
      this.handles.set(file, h);
    }
    return h;
  }

  /**
   * The tensor's bytes, read at their offset. `into` (at least byteLength long) is filled instead of a fresh array
   * and its prefix returned: a merge reuses its read buffers rather than making garbage of every tensor.
   */
  async readBytes(ref: Pick<TensorRef, 'name' | 'file' | 'byteOffset' | 'byteLength' | 'pieces'>, into?: Uint8Array): Promise<Uint8Array> {
    const h = await this.handle(ref.file);
    if (into && into.byteLength < ref.byteLength) throw new RangeError(`readBytes: a ${into.byteLength}-byte buffer for ${ref.byteLength} bytes of "${ref.name}"`);
    const out = into ? into.subarray(0, ref.byteLength) : new Uint8Array(ref.byteLength);
    let at = 0;
    for (const piece of ref.pieces ?? [{ byteOffset: ref.byteOffset, byteLength: ref.byteLength }]) {
      if (at + piece.byteLength > out.length) throw new RangeError(`readBytes: the pieces of "${ref.name}" hold more than its ${ref.byteLength} bytes`);
      let off = 0;
      while (off < piece.byteLength) {
        const { bytesRead } = await h.read(out, at + off, piece.byteLength - off, piece.byteOffset + off);
        if (bytesRead === 0) {
          throw new ModelFilesError(`${ref.file}: tensor "${ref.name}": file ended after ${off} of ${piece.byteLength} bytes at offset ${piece.byteOffset} (changed since the plan was made?)`, ref.file);
        }
        off += bytesRead;
      }
      at += piece.byteLength;
    }
    if (at !== out.length) throw new RangeError(`readBytes: the pieces of "${ref.name}" hold ${at} of its ${ref.byteLength} bytes`);
    return out;
  }

  async readF32(ref: TensorRef): Promise<Float32Array> {
    return decodeToF32(ref, await this.readBytes(ref));
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    for (const h of hs) await (await h.catch(() => null))?.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------- statistics

/** The row/column sums of AdamW's second moment v saved for one weight (protocol/stats.ts). */
export interface WeightStatistics {
  vRow: TensorRef;
  vCol: TensorRef;
}

export interface ModelStatistics {
  /** stats/step-<n>.safetensors of the run. */
  file: string;
  step: number;
  /** Weight name → its v_row / v_col tensors (weights without both are left out). */
  weights: Record<string, WeightStatistics>;
}

export type StatisticsLookup = { stats: ModelStatistics; message?: undefined } | { stats: null; message: string };

const HOW_TO_GET_STATS = 'train with train.statsEvery > 0 so that each checkpoint is saved with statistics (stats/step-<n>.safetensors)';

/**
 * Whether every `<weight>.v_row` of `names` is zero. An optimizer without a second moment (SGD) leaves its statistics
 * at zero: F̂ is then 0 everywhere, and a curvature merge or prune would rank nothing, silently. Row sums are small
 * (one float per row), so they are read until one is not zero.
 */
export async function rowSumsAllZero(names: Iterable<string>, read: (vRowName: string) => Promise<ArrayLike<number>>): Promise<boolean> {
  for (const name of names) {
    const sums = await read(`${name}.v_row`);
    for (let i = 0; i < sums.length; i++) if (sums[i] !== 0) return false;
  }
  return true;
}

/** "<file>: every second-moment statistic (v_row / v_col)<of> is zero (the run was trained with sgd, …)": the start of the refusal. */
export function zeroStatisticsProblem(file: string, runConfig: unknown, of = ''): string {
  const type = (runConfig as { train?: { optimizer?: { type?: unknown } } } | null)?.train?.optimizer?.type;
  const why = typeof type === 'string' ? ` (the run was trained with ${type}, which keeps no second moment)` : '';
  return `${file}: every second-moment statistic (v_row / v_col)${of} is zero${why}`;
}

/**
 * Where a model's training statistics are: for a Basin run or checkpoint at step n, the run's
 * stats/step-<n>.safetensors holding `<weight>.v_row` / `<weight>.v_col`. `{stats: null, message}` says why there
 * are none and how to get them. Reads the stats file's header, and its row sums until one is not zero.
 */
export async function statisticsFor(model: ModelFiles | Pick<ModelRef, 'path' | 'kind'>): Promise<StatisticsLookup> {
  const m = model instanceof ModelFiles ? model : await ModelFiles.open(model);
  try {
    const cp = m.checkpoint;
    if (!cp) {
      return { stats: null, message: `${m.path} is not a Basin checkpoint, so it has no training statistics: merge a Basin run folder or checkpoint and ${HOW_TO_GET_STATS}` };
    }
    let run: RunFolder;
    try {
      run = await RunFolder.open(cp.runDir);
    } catch (e) {
      return { stats: null, message: `${cp.runDir}: ${(e as Error).message}` };
    }
    const file = run.resolve(run.statsPath(cp.step));
    if (!fs.existsSync(file)) {
      let steps: number[] = [];
      try {
        steps = fs
          .readdirSync(run.statsDir)
          .map((f) => /^step-(\d+)\.safetensors$/.exec(f)?.[1])
          .filter((s): s is string => s !== undefined)
          .map(Number)
          .sort((a, b) => a - b);
      } catch {
        /* no stats folder */
      }
      const have = steps.length ? ` (the run has statistics for steps ${steps.slice(-5).join(', ')}, not for the checkpoint's step ${cp.step})` : '';
      return { stats: null, message: `${cp.file}: no statistics beside this checkpoint: ${file} is missing${have}; ${HOW_TO_GET_STATS}` };
    }
    let header: SafetensorsHeader;
    const weights = Object.create(null) as Record<string, WeightStatistics>;
    let allZero = false;
    try {
      const r = await SafetensorsReader.open(file);
      try {
        header = r.header;
        for (const t of header.list) {
          const mm = /^(.*)\.v_row$/.exec(t.name);
          if (!mm) continue;
          const col = header.tensors[`${mm[1]}.v_col`];
          if (!col || !isFloatDType(t.dtype) || !isFloatDType(col.dtype)) continue;
          const ref = (x: typeof t): TensorRef => ({ name: x.name, dtype: x.dtype as FloatDType, shape: x.shape.slice(), numel: x.numel, file, byteOffset: x.byteOffset, byteLength: x.byteLength });
          weights[mm[1]] = { vRow: ref(t), vCol: ref(col) };
        }
        allZero = await rowSumsAllZero(Object.keys(weights), async (n) => (await r.read(n)).data as ArrayLike<number>);
      } finally {
        await r.close();
      }
    } catch (e) {
      if (e instanceof SafetensorsError) return { stats: null, message: e.message };
      throw e;
    }
    if (Object.keys(weights).length === 0) {
      return { stats: null, message: `${file} holds no <weight>.v_row / <weight>.v_col tensors (the optimizer kept no second moment?); ${HOW_TO_GET_STATS} using AdamW, Adafactor or mao` };
    }
    if (allZero) {
      return {
        stats: null,
        message: `${zeroStatisticsProblem(file, run.record.config)}, so the statistics rank no parameter above another; train or fine-tune the model with AdamW, Adafactor or mao (train.statsEvery > 0) to merge it by curvature, or use a method without statistics (ties, task_arithmetic, …)`,
      };
    }
    return { stats: { file, step: cp.step, weights } };
  } finally {
    if (!(model instanceof ModelFiles)) await m.close();
  }
}
