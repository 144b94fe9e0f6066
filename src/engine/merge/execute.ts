// The streaming merge executor: runs a MergePlan (src/files/merge/plan.ts) on the GPU, tensor by tensor.
//
// Memory stays bounded by a few tensors, whatever the size of the models, and by a few row chunks, whatever the
// size of the tensors: a tensor above the chunk budget (ExecuteOptions.chunkBytes, 4 MiB of f32 per operand) is
// merged in row chunks (tensor-merge.ts mergeTensorChunked: bit-identical to the whole-tensor merge), its rows
// read at their offsets when each chunk needs them (again for each sweep of a first pass that finds per-tensor
// quantities: top-k thresholds, norms; the page cache serves the re-reads), and written piece by piece
// (writeSafetensors' pieces); smaller tensors take the path below, whole:
//   - each input tensor is read from its file at its byte offset when its first task needs it (positioned reads,
//     TensorFileReader), uploaded in its own dtype (F16/BF16 are widened on the GPU: ops/convert.ts) and
//     released after its last use (the plan's `release` lists);
//   - the output is written by writeSafetensors, which pulls each tensor when its turn comes (lazy data), so only
//     the current merged tensor is on the host; shards are written one after another into a work folder inside
//     the output folder, and moved into place (renames) only when every shard, the index and the report are
//     complete: a failed, cancelled or killed merge leaves the output folder as it was;
//   - the next task's input bytes are read from disk while the GPU merges the current one (reading is usually
//     what a merge waits for);
//   - nothing per tensor is garbage for the host, and input bytes are copied by no one but the GPU: a read lands
//     straight in the mapped memory of a reused MAP_WRITE staging buffer (gpu/upload-staging.ts), and the upload
//     is a copy recorded from there (queue.writeBuffer would first copy every byte into Dawn's own staging on
//     the main thread); the merged tensor comes back through two reused staging buffers (Readback),
//     recorded in the same submit as the merge so that one round trip fetches both the stats and the values, and
//     the writer writes straight from the mapped staging memory (no host copy of the tensor), that write running
//     while the next tensor merges (two staging buffers in turn).
// A report (merge-report.json) lands beside the output: per tensor the kept fraction per expert, the sign-conflict
// fraction and the norm of the merged delta; per expert its saliency mass in total and per layer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../../files/atomic';
import { TensorFileReader, type FloatDType, type TensorRef } from '../../files/merge/model-files';
import { outputShards, type MergePlan, type MergeTask, type PlanInput } from '../../files/merge/plan';
import { writeSafetensors } from '../../files/safetensors';
import type { Runtime } from '../gpu/runtime';
import { decodeFloatBytes, decodeFloatCopied, encodeHalfWords } from '../ops/convert';
import { UploadStaging, type StagedBytes } from '../gpu/upload-staging';
import type { Tensor } from '../tensor/tensor';
import { chunkRowsFor, defaultChunkBytes, mergeTensor, mergeTensorChunked, type ChunkLoader, type TensorMergeStats } from './tensor-merge';
import { MergeDataError, runMergeDataPass } from './data-pass';
import { readSafetensorsHeader, type SafetensorsHeader } from '../../files/safetensors';
import { COMMIT_FILE, MERGE_REPORT_FILE, MODEL_FILE_RE, WORK_PREFIX, commitMergeOutput, finishCommit, holdWorkFolder, workFolders, workHost } from '../../files/merge/merge-commit';


export class MergeOutputExistsError extends Error {
  constructor(readonly dir: string, readonly file: string) {
    super(`${file} already exists: Basin does not write over a merged model (use --force, or another --out folder)`);
    this.name = 'MergeOutputExistsError';
  }
}

export interface MergeProgress {
  done: number;
  total: number;
  tensor: string;
  /** Input bytes read so far. */
  bytesRead: number;
}

export interface TensorReport extends TensorMergeStats {
  name: string;
  shape: number[];
  layer: number | null;
}

export interface MergeReport {
  format: 'basin-merge-report-1';
  configFile: string;
  method: string;
  /** The models in plan order (`written` as in the config), and which is the base. */
  models: { index: number; written: string; path: string; role: 'base' | 'expert' | 'base+expert' }[];
  /** Per expert (model index): Σ saliency over every tensor, and per layer (key: layer index, or "other"). */
  saliency: { model: number; total: number; perLayer: Record<string, number> }[];
  tensors: TensorReport[];
  /** Input bytes read, output bytes written, seconds. */
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  /** The output's weights file (model.safetensors or the index), or null for a preview. */
  output: string | null;
  warnings: string[];
  /** A preview ran on a sample: which tensors, how many rows of each. */
  sample?: { tensors: number; rowsPerTensor: number };
  /** Where the time went (ms, summed over tensors) and how much GPU work each tensor recorded. */
  timing?: MergeTiming;
}

export interface MergeTiming {
  /**
   * Waiting for input bytes from disk: wall time, once per task or row chunk for all its inputs (the next task's or
   * chunk's reads run during the current one's GPU work, so this is what the read-ahead did not hide).
   */
  readWaitMs: number;
  /** Uploading the inputs and recording the F16/BF16 widening. */
  uploadMs: number;
  /** Recording the merge's passes, then waiting for the GPU to finish them (stats and values come back together). */
  computeMs: number;
  /** Mapping the merged values' staging buffer (after the passes finished: the copy's own time). */
  readbackMs: number;
  /** Encoding and writing the output (everything between handing a tensor to the writer and the next task). */
  writeMs: number;
  tensors: number;
  dispatches: number;
  submits: number;
  /** Bytes read back from the GPU (an F16/BF16 output comes back narrowed: 2 bytes per value). */
  readbackBytes: number;
  /** Row-chunked tensors: chunk reads served by the read-ahead (read while the previous chunk merged)… */
  chunkReadsAhead: number;
  /** …and read-ahead guesses not taken (a pass ended; the next one starts over or needs other inputs). */
  chunkReadsWasted: number;
  /** Staging buffers the reads landed in (created, reused afterwards) and their high-water mark in bytes (host memory). */
  stagingBuffers: number;
  stagingPeakBytes: number;
}

export interface ExecuteOptions {
  rt: Runtime;
  plan: MergePlan;
  /** Output folder (created). Required unless `preview`. */
  outDir?: string;
  /** Write over an existing merged model in outDir. */
  force?: boolean;
  maxShardBytes?: number;
  signal?: AbortSignal;
  onProgress?(p: MergeProgress): void;
  /**
   * Preview: run the plan on a sample and write nothing: at most `tensors` tasks (spread over the plan) and the
   * first `rows` rows of each. Statistics are those of the sample (a top-k trim thresholds within it).
   */
  preview?: { tensors: number; rows: number };
  /**
   * Bytes of f32 per operand of a row chunk (tensor-merge.ts chunkRowsFor): tensors above it are merged and
   * written in row chunks; 0 or Infinity merges every tensor whole. Default: defaultChunkBytes (4 MiB on a
   * software adapter, 64 MiB on a hardware GPU).
   * Tests force tiny chunks with it.
   */
  chunkBytes?: number;
}

export class MergeCancelledError extends Error {
  constructor() {
    super('merge cancelled');
    this.name = 'MergeCancelledError';
  }
}

/** Blocks a preview's row sample is read in: spread over the tensor, a few positioned reads per tensor. */
const SAMPLE_BLOCKS = 8;

/**
 * `rows` rows of a tensor (rows = shape[0]) as a smaller ref, for a preview: SAMPLE_BLOCKS blocks of consecutive
 * rows spread evenly from the first row to the last (an embedding table's rows or a layer's output channels are
 * not alike from one end to the other, so a prefix would not stand for the tensor). The same (rows, shape[0])
 * always picks the same rows, so a weight, its statistics and its data-pass tensors line up.
 */
export function rowSample(ref: TensorRef, rows: number): TensorRef {
  const total = ref.shape[0];
  if (ref.shape.length === 0 || total <= rows) return ref;
  const per = ref.numel / total;
  const bpe = ref.byteLength / ref.numel;
  const blocks = Math.min(SAMPLE_BLOCKS, rows);
  const pieces: { byteOffset: number; byteLength: number }[] = [];
  let next = 0; // the first row no block has taken
  let left = rows; // rows still to take
  for (let b = 0; b < blocks; b++) {
    const n = Math.floor(rows / blocks) + (b < rows % blocks ? 1 : 0);
    // Starts spread from row 0 (first block) to total − n (the last block ends at the last row), never over the
    // previous block, and leaving room for the blocks after it.
    const ideal = blocks === 1 ? 0 : Math.floor((b * (total - n)) / (blocks - 1));
    const start = Math.min(Math.max(ideal, next), total - left);
    next = start + n;
    left -= n;
    const prev = pieces[pieces.length - 1];
    const byteOffset = ref.byteOffset + start * per * bpe;
    if (prev && prev.byteOffset + prev.byteLength === byteOffset) prev.byteLength += n * per * bpe;
    else pieces.push({ byteOffset, byteLength: n * per * bpe });
  }
  return { ...ref, shape: [rows, ...ref.shape.slice(1)], numel: rows * per, byteOffset: pieces[0].byteOffset, byteLength: rows * per * bpe, pieces };
}

/** Rows [r0, r1) of a tensor (rows = shape[0]) as a smaller ref: a positioned slice of its bytes. */
function rowSlice(ref: TensorRef, r0: number, r1: number): TensorRef {
  const per = ref.numel / ref.shape[0];
  const bpe = ref.byteLength / ref.numel;
  return { ...ref, shape: [r1 - r0, ...ref.shape.slice(1)], numel: (r1 - r0) * per, byteOffset: ref.byteOffset + r0 * per * bpe, byteLength: (r1 - r0) * per * bpe };
}

/**
 * The merged tensors' way back to the host: two MAP_READ staging buffers, grown to the largest tensor and reused in
 * turn, instead of a fresh staging buffer and a fresh host copy per tensor. The copy into staging is recorded right
 * after the merge's passes (before its stats are awaited), so one submit serves both. read() hands out the mapped
 * memory itself, which stays valid until the record() after the next one unmaps it: the writer writes straight
 * from it and leaves that write running while the next tensor merges (writeSafetensors' valuesOutliveNextCall).
 */
class Readback {
  private slots: { staging: GPUBuffer | null; mapped: boolean }[] = [
    { staging: null, mapped: false },
    { staging: null, mapped: false },
  ];
  private cur = 0;
  private bytes = 0;
  /** Elements of the recorded values, and whether they are F16/BF16 bits (two per word) or f32. */
  private count = 0;
  private half = false;

  constructor(private readonly rt: Runtime) {}

  /** Bytes mapped by read() so far. */
  total = 0;

  /**
   * Record the copy of t into the next staging buffer (the next flush submits it). An F16/BF16 output is narrowed
   * on the GPU first (ops/convert.ts encodeHalfWords): half the bytes come back, and the host writes them as they are.
   */
  record(t: Tensor, as: FloatDType = 'F32'): void {
    this.cur ^= 1;
    const slot = this.slots[this.cur];
    if (slot.mapped) slot.staging!.unmap(); // the values read two tensors ago: their write has ended
    slot.mapped = false;
    const src = as === 'F32' ? t : encodeHalfWords(t, as);
    const bytes = as === 'F32' ? t.size * 4 : Math.ceil(t.size / 2) * 4;
    if (!slot.staging || slot.staging.size < bytes) {
      slot.staging?.destroy();
      slot.staging = this.rt.device.createBuffer({ size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'basin-merge-readback' });
    }
    this.bytes = bytes;
    this.count = t.size;
    this.half = as !== 'F32';
    if (bytes > 0) this.rt.copy(src.range(), { buffer: slot.staging, offset: 0, size: bytes }, bytes);
    if (src !== t) src.dispose(); // the copy is recorded before any later use of the buffer
  }

  /**
   * The recorded values (f32, or F16/BF16 bits), as a view of the mapped staging memory (valid until the record()
   * after the next one).
   */
  async read(): Promise<Float32Array | Uint16Array> {
    const slot = this.slots[this.cur];
    if (this.bytes === 0 || !slot.staging) return this.half ? new Uint16Array(0) : new Float32Array(0);
    this.rt.flush();
    await Promise.race([slot.staging.mapAsync(GPUMapMode.READ, 0, this.bytes), this.rt.gpu.lostPromise()]);
    this.rt.gpu.check();
    slot.mapped = true;
    this.total += this.bytes;
    const range = slot.staging.getMappedRange(0, this.bytes);
    return this.half ? new Uint16Array(range, 0, this.count) : new Float32Array(range);
  }

  destroy(): void {
    for (const slot of this.slots) {
      if (slot.mapped) slot.staging?.unmap();
      slot.staging?.destroy();
      slot.staging = null;
      slot.mapped = false;
    }
  }
}

/**
 * Runs a merge plan; writes the merged model and its report into outDir (or, with `preview`, only reports). The
 * files appear in outDir only once the whole merge has succeeded; a failure or a cancel leaves outDir as it was.
 */
export async function executeMerge(o: ExecuteOptions): Promise<MergeReport> {
  const { plan } = o;
  const t0 = performance.now();
  const preview = o.preview ?? null;
  const layout = outputShards(plan, o.maxShardBytes ?? 5_000_000_000);
  let outputFile: string | null = null;
  /** Where the output is written until the merge has succeeded (a folder inside outDir), and whether outDir is new. */
  let work: string | null = null;
  let madeOutDir = false;
  if (!preview) {
    if (!o.outDir) throw new Error('executeMerge: outDir is required');
    madeOutDir = !fs.existsSync(o.outDir);
    await fs.promises.mkdir(o.outDir, { recursive: true });
    await claimOutDir(o.outDir);
    const existing = (await fs.promises.readdir(o.outDir)).filter((f) => MODEL_FILE_RE.test(f));
    for (const f of [MERGE_REPORT_FILE, 'model.safetensors', 'model.safetensors.index.json', ...layout.shards.map((s) => s.file), ...existing]) {
      const p = path.join(o.outDir, f);
      if (!o.force && fs.existsSync(p)) {
        throw new MergeOutputExistsError(o.outDir, p);
      }
    }
    outputFile = path.join(o.outDir, layout.index ? 'model.safetensors.index.json' : layout.shards[0].file);
    work = await fs.promises.mkdtemp(path.join(o.outDir, `${WORK_PREFIX}${workHost()}-${process.pid}-`));
  }
  const release = work ? holdWorkFolder(work) : () => undefined;
  try {
    return await executeInto(o, work, outputFile, layout, preview, t0);
  } catch (e) {
    if (work && fs.existsSync(path.join(work, COMMIT_FILE))) {
      // Failed while moving its files in (a rename refused): the merge itself is done, and its record says what is
      // left. Released below, the work folder is finished by the next merge or read of the folder, even in this process.
      throw new Error(`${(e as Error).message} (the merge is complete in ${work}; the next merge or read of ${o.outDir} moves its files into place)`, { cause: e });
    }
    // A failed or cancelled merge leaves outDir as it found it: no partial shards (which would also stop a rerun
    // without --force), and a model it was to replace still whole.
    if (work) await fs.promises.rm(work, { recursive: true, force: true }).catch(() => undefined); // the merge's own error matters
    if (madeOutDir) await fs.promises.rmdir(o.outDir!).catch(() => undefined); // only if empty
    throw e;
  } finally {
    release();
  }
}

/** Another merge is writing into the output folder. */
export class MergeBusyError extends Error {
  constructor(readonly dir: string, readonly workDir: string, readonly owner: string, committed = false) {
    super(
      committed
        ? `${dir} is being written by another merge (${owner}; its work folder ${workDir}), which has finished and is moving its files in: wait for it to end (another machine's counts as gone a minute after its commit record, and is then finished by the next merge or read here)`
        : `${dir} is being written by another merge (${owner}; its work folder ${workDir}): wait for it to end, or remove that folder if the merge is gone`,
    );
    this.name = 'MergeBusyError';
  }
}

/**
 * Before a merge writes into outDir: work folders of merges whose process is gone (killed) on this machine are
 * finished if they had committed, else removed; one of a live merge, or of another machine's (whose process cannot be checked from here), stops this
 * merge, since two merges renaming files into one folder would leave a mix of both.
 */
async function claimOutDir(outDir: string): Promise<void> {
  for (const w of workFolders(outDir)) {
    // A killed merge that had committed is finished (its model is whole, in a work folder); one that had not is
    // removed. The commit record itself is finishCommit's to read.
    if (w.finishable) finishCommit(outDir, w.dir);
    else if (w.live) throw new MergeBusyError(outDir, w.dir, w.foreign ? `process ${w.pid} on ${w.host}` : `process ${w.pid}`, w.committed);
    else await fs.promises.rm(w.dir, { recursive: true, force: true });
  }
}

async function executeInto(
  o: ExecuteOptions,
  work: string | null,
  outputFile: string | null,
  layout: ReturnType<typeof outputShards>,
  preview: { tensors: number; rows: number } | null,
  t0: number,
): Promise<MergeReport> {
  const { rt, plan } = o;

  // Which tasks run: all, or a preview's spread-out sample.
  let tasks: MergeTask[] = plan.tasks;
  if (preview) {
    const k = Math.max(1, Math.min(preview.tensors, plan.tasks.length));
    const pick = new Set<number>();
    for (let i = 0; i < k; i++) pick.add(Math.floor((i * plan.tasks.length) / k));
    tasks = plan.tasks.filter((t) => pick.has(t.index));
  }
  const rows = preview ? preview.rows : Infinity;
  const refOf = (inp: PlanInput) => (preview ? rowSample(inp.tensor, rows) : inp.tensor);

  const reader = new TensorFileReader();
  const staging = new UploadStaging(rt);
  const readback = new Readback(rt);
  const timing: MergeTiming = { readWaitMs: 0, uploadMs: 0, computeMs: 0, readbackMs: 0, writeMs: 0, tensors: 0, dispatches: 0, submits: 0, readbackBytes: 0, chunkReadsAhead: 0, chunkReadsWasted: 0, stagingBuffers: 0, stagingPeakBytes: 0 };
  const counters0 = { dispatches: rt.counters.dispatches, submits: rt.counters.submits };
  /**
   * Reads a tensor's bytes straight into mapped staging memory (uploadReads copies them to the GPU from there; a
   * read not uploaded goes back with staging.release).
   */
  const readInto = (ref: TensorRef): Promise<StagedBytes> => {
    const p = staging.acquire(ref.byteLength).then((s) =>
      reader.readBytes(ref, s.bytes).then(
        () => s,
        (e: unknown) => {
          staging.release(s);
          throw e;
        },
      ),
    );
    staging.track(p); // the staging memory stays mapped until the read is done, whatever happens meanwhile
    return p;
  };
  let bytesRead = 0;
  let bytesWritten = 0;
  const cache = new Map<string, Tensor>();
  const keyOf = (inp: PlanInput) => `${inp.model}\u0000${inp.tensor.name}`;
  // Raw bytes of the next task's inputs, read while the GPU works on the current task.
  const pending = new Map<string, Promise<StagedBytes>>();
  const chunkBytes = o.chunkBytes ?? defaultChunkBytes(rt);
  /** Rows per chunk of a task merged in row chunks, or 0 (whole; always for a preview: its tensors are samples). */
  const chunkRowsOf = (task: MergeTask) => (preview || !Number.isFinite(chunkBytes) ? 0 : chunkRowsFor(rt, plan.method, task.shape, chunkBytes));
  const readAhead = (task: MergeTask | undefined) => {
    // A chunked task reads its rows when they are merged, never the whole tensor.
    if (!task || chunkRowsOf(task) > 0) return;
    for (const inp of [...(task.base ? [task.base] : []), ...task.experts]) {
      const k = keyOf(inp);
      if (cache.has(k) || pending.has(k)) continue;
      const p = readInto(refOf(inp));
      p.catch(() => undefined);
      pending.set(k, p);
    }
  };
  /**
   * Waits for reads that overlap (timed once, as wall time), then uploads each one's bytes as an f32 tensor: a copy
   * from its staging buffer (F16/BF16 widened on the GPU), submitted at once, the staging buffers mapped again for
   * later reads once the GPU has copied them; null entries stay null. On a failed read nothing is uploaded and the
   * error is thrown; on a failed upload the tensors made are freed.
   */
  const uploadReads = async (reads: ({ ref: TensorRef; read: Promise<StagedBytes> } | null)[]): Promise<(Tensor | null)[]> => {
    const w0 = performance.now();
    const got = await Promise.allSettled(reads.map((x) => x?.read ?? null));
    const u0 = performance.now();
    timing.readWaitMs += u0 - w0;
    const out: (Tensor | null)[] = [];
    try {
      const bad = got.find((g) => g.status === 'rejected');
      if (bad) throw (bad as PromiseRejectedResult).reason;
      reads.forEach((x, i) => {
        const staged = (got[i] as PromiseFulfilledResult<StagedBytes | null>).value;
        if (!x || !staged) return void out.push(null);
        bytesRead += staged.bytes.byteLength;
        out.push(decodeFloatCopied(rt, x.ref.dtype, x.ref.shape, (dst, bytes) => staging.recordCopy(staged, dst, bytes)));
      });
      // Submitted now: the GPU copies (and widens) while the host goes on, and the staging buffers come back sooner.
      rt.flush();
      staging.remapAfterSubmit();
    } catch (e) {
      for (const t of out) t?.dispose();
      throw e;
    } finally {
      // Reads not copied (a failure before their turn) go back as they are; copied ones come back when remapped.
      for (const g of got) if (g.status === 'fulfilled' && g.value) staging.release(g.value);
    }
    timing.uploadMs += performance.now() - u0;
    return out;
  };
  /** A task's inputs as f32 tensors: cached ones as they are, the others from the bytes read ahead (or read now). */
  const loadAll = async (inps: PlanInput[]): Promise<Tensor[]> => {
    const reads = new Map<string, { ref: TensorRef; read: Promise<StagedBytes> }>();
    for (const inp of inps) {
      const k = keyOf(inp);
      if (cache.has(k) || reads.has(k)) continue;
      const ref = refOf(inp);
      reads.set(k, { ref, read: pending.get(k) ?? readInto(ref) });
      pending.delete(k);
    }
    const tensors = await uploadReads([...reads.values()]);
    [...reads.keys()].forEach((k, i) => {
      const t = tensors[i]!;
      t.name = `${reads.get(k)!.ref.name} (model ${inps.find((x) => keyOf(x) === k)!.model})`;
      cache.set(k, t); // released after the tensor's last use, or at the end
    });
    return inps.map((inp) => cache.get(keyOf(inp))!);
  };
  const loadStats = async (inp: PlanInput): Promise<{ row: Tensor; col: Tensor } | null> => {
    if (!inp.stats) return null;
    // Statistics are small (rows + cols floats): plain reads.
    const rowRef = preview ? rowSample(inp.stats.vRow, rows) : inp.stats.vRow;
    const [r, c] = await Promise.all([reader.readBytes(rowRef), reader.readBytes(inp.stats.vCol)]);
    const row = decodeFloatBytes(rt, r, rowRef.dtype, rowRef.shape);
    const col = decodeFloatBytes(rt, c, inp.stats.vCol.dtype, inp.stats.vCol.shape);
    return { row, col };
  };

  const modelName = (m: number) => `"${plan.models[m].ref.written}"`;

  // Fisher and RegMean: one pass over each expert's own training data first (./data-pass.ts), written to a
  // temporary file per expert and read back tensor by tensor like the weights.
  const dataFiles = new Map<number, { file: string; header: SafetensorsHeader }>();
  let dataDir: string | null = null;
  const prepareData = async () => {
    if (!plan.needs.data) return;
    const experts = [...new Set(tasks.flatMap((t) => t.experts.map((e) => e.model)))];
    const batches = Number(plan.tasks[0]?.params.batches ?? 32);
    dataDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'basin-merge-data-'));
    for (const m of experts) {
      const origin = plan.models[m].checkpoint;
      if (!origin) {
        throw new MergeDataError(
          `${plan.method} needs a pass over each model's own data, which Basin finds in a run's config: model ${modelName(m)} is not a Basin run or checkpoint (use the curvature method, which needs no data, or merge Basin runs)`,
        );
      }
      if (o.signal?.aborted) throw new MergeCancelledError();
      const out = path.join(dataDir, `model-${m}.safetensors`);
      await runMergeDataPass({ rt, runDir: origin.runDir, weightsFile: origin.file, fisher: plan.method === 'fisher', gram: plan.method === 'regmean', batches, out, signal: o.signal });
      dataFiles.set(m, { file: out, header: await readSafetensorsHeader(out) });
    }
  };
  /** The data pass's tensor `name` of model m as a ref (null when it has none). */
  const dataRef = (m: number, name: string): TensorRef | null => {
    const d = dataFiles.get(m);
    const info = d?.header.tensors[name];
    if (!d || !info) return null;
    return { name, dtype: 'F32', shape: info.shape, numel: info.shape.reduce((a, b) => a * b, 1), file: d.file, byteOffset: info.byteOffset, byteLength: info.byteLength };
  };
  const loadData = async (m: number, name: string, shape: number[]): Promise<Tensor | null> => {
    const d = dataFiles.get(m);
    const info = d?.header.tensors[name];
    if (!d || !info) return null;
    const ref: TensorRef = { name, dtype: 'F32', shape: info.shape, numel: info.shape.reduce((a, b) => a * b, 1), file: d.file, byteOffset: info.byteOffset, byteLength: info.byteLength };
    const sliced = preview && shape[0] !== info.shape[0] && !name.endsWith('.gram') ? rowSample(ref, shape[0]) : ref;
    const bytes = await reader.readBytes(sliced);
    return decodeFloatBytes(rt, bytes, 'F32', sliced.shape);
  };
  const reports: TensorReport[] = [];
  const saliency = new Map<number, { total: number; perLayer: Record<string, number> }>();

  /**
   * Merges one task on the GPU and returns the merged values (host f32, or F16/BF16 bits for such an output; valid
   * until the task after the next one: Readback) after its statistics were checked; a preview returns none.
   */
  const runTask = async (task: MergeTask, next: MergeTask | undefined): Promise<Float32Array | Uint16Array> => {
    if (o.signal?.aborted) throw new MergeCancelledError();
    const loaded = await loadAll([...(task.base ? [task.base] : []), ...task.experts]);
    const base = task.base ? loaded[0] : null;
    const experts = task.base ? loaded.slice(1) : loaded;
    const curvature = plan.needs.statistics ? await Promise.all(task.experts.map(loadStats)) : undefined;
    readAhead(next);
    const shape = preview ? refOf(task.experts[0]).shape : task.shape;
    let fisher: Tensor[] | undefined;
    let gram: Tensor[] | undefined;
    if (plan.method === 'fisher') {
      const f = await Promise.all(task.experts.map((e) => loadData(e.model, e.tensor.name, shape)));
      if (f.every((x) => x)) fisher = f as Tensor[];
      else f.forEach((x) => x?.dispose());
    } else if (plan.method === 'regmean') {
      const g = await Promise.all(task.experts.map((e) => loadData(e.model, `${e.tensor.name}.gram`, shape)));
      if (g.every((x) => x)) gram = g as Tensor[];
      else g.forEach((x) => x?.dispose());
    }
    let merged: Tensor | null = null;
    const c0 = performance.now();
    try {
      const r = mergeTensor(plan.method, {
        name: task.output,
        shape,
        base,
        experts,
        perModel: task.experts.map((e) => e.params as Record<string, number | boolean>),
        global: task.params as Record<string, number | boolean>,
        curvature,
        fisher,
        gram,
      }, (out) => {
        // A preview reports only the stats: its values never leave the GPU (one map per tensor, not two).
        if (!preview) readback.record(out, task.outDtype);
      });
      merged = r.merged;
      let stats: TensorMergeStats;
      try {
        stats = await r.stats;
      } catch (e) {
        // The kernels count models among the experts; say which files they are.
        const names = task.experts.map((x, i) => `model ${i} = ${modelName(x.model)}`).join(', ');
        throw new Error(`${(e as Error).message} (${names}${task.base ? `, base = ${modelName(task.base.model)}` : ''})`);
      }
      reports.push({ name: task.output, shape, layer: task.layer, ...stats });
      // A preview merges a sample of the rows: its saliency mass stands for the whole tensor's, scaled up by the
      // rows it did not read (else a tall tensor would count for less than a short one in its layer's total).
      const sampleScale = shape.length && task.shape[0] > shape[0] ? task.shape[0] / shape[0] : 1;
      stats.saliencyMass?.forEach((m, i) => {
        const id = task.experts[i].model;
        const s = saliency.get(id) ?? { total: 0, perLayer: {} };
        s.total += m * sampleScale;
        const key = task.layer === null ? 'other' : String(task.layer);
        s.perLayer[key] = (s.perLayer[key] ?? 0) + m * sampleScale;
        saliency.set(id, s);
      });
      const r0 = performance.now();
      timing.computeMs += r0 - c0;
      const values = preview ? new Float32Array(0) : await readback.read();
      timing.readbackMs += performance.now() - r0;
      timing.tensors++;
      return values;
    } finally {
      merged?.dispose();
      for (const t of [...(fisher ?? []), ...(gram ?? [])]) t.dispose();
      for (const c of curvature ?? []) {
        c?.row.dispose();
        c?.col.dispose();
      }
      for (const rel of task.release) {
        const k = `${rel.model}\u0000${rel.tensor}`;
        cache.get(k)?.dispose();
        cache.delete(k);
      }
      o.onProgress?.({ done: reports.length, total: tasks.length, tensor: task.output, bytesRead });
    }
  };

  /**
   * Merges one task in row chunks (tensor-merge.ts mergeTensorChunked): yields the merged rows, chunk by chunk,
   * as views of the staging memory (valid until the piece after the next one is asked for: Readback). Inputs are read chunk by chunk at
   * their row offsets (positioned reads into reused staging buffers); nothing of the task is cached.
   */
  async function* runChunked(task: MergeTask, next: MergeTask | undefined, rowsPer: number): AsyncGenerator<Float32Array | Uint16Array> {
    if (o.signal?.aborted) throw new MergeCancelledError();
    const curvature = plan.needs.statistics ? await Promise.all(task.experts.map(loadStats)) : undefined;
    readAhead(next);
    const fisherRefs = plan.method === 'fisher' ? task.experts.map((e) => dataRef(e.model, e.tensor.name)) : null;
    const hasFisher = !!fisherRefs && fisherRefs.every((r) => r);
    // regmean: the Gram matrices [in, in] are read whole (every chunk's rows solve against all of Σ G).
    let gram: Tensor[] | undefined;
    if (plan.method === 'regmean') {
      const g = await Promise.all(task.experts.map((e) => loadData(e.model, `${e.tensor.name}.gram`, task.shape)));
      if (g.every((x) => x)) gram = g as Tensor[];
      else g.forEach((x) => x?.dispose());
    }
    // Read-ahead: a pass asks for the chunks in row order, so while the GPU merges rows [r0, r1) the same inputs'
    // rows [r1, r1 + rowsPer) are read (raw bytes, one more chunk per input in host memory). A guess the next call
    // does not take (the pass ended, or the next pass reads other inputs) is given back unread.
    const rows = task.shape[0];
    let ahead = new Map<string, Promise<StagedBytes>>();
    const aheadKey = (slot: string, r0: number, r1: number) => `${slot}\u0000${r0}\u0000${r1}`;
    const giveBack = (m: Map<string, Promise<StagedBytes>>) => {
      for (const p of m.values()) {
        timing.chunkReadsWasted++;
        p.then((b) => staging.release(b), () => undefined);
      }
    };
    const load: ChunkLoader = async (r0, r1, need) => {
      // The inputs this call reads, each with a slot name that stays the same from chunk to chunk.
      const inputs: [string, TensorRef | null][] = [
        ['base', need.base && task.base ? task.base.tensor : null],
        ...task.experts.map((e, t): [string, TensorRef | null] => [`expert ${t}`, need.experts.includes(t) ? e.tensor : null]),
        ...(need.fisher && hasFisher ? fisherRefs!.map((r, t): [string, TensorRef | null] => [`fisher ${t}`, r]) : []),
      ];
      const taken = ahead;
      ahead = new Map();
      const reads = inputs.map(([slot, ref]) => {
        if (!ref) return null;
        const slice = rowSlice(ref, r0, r1);
        const k = aheadKey(slot, r0, r1);
        const early = taken.get(k);
        taken.delete(k);
        if (early) timing.chunkReadsAhead++;
        return { ref: slice, read: early ?? readInto(slice) };
      });
      giveBack(taken);
      if (r1 < rows) {
        const n1 = Math.min(rows, r1 + rowsPer);
        for (const [slot, ref] of inputs) {
          if (!ref) continue;
          const p = readInto(rowSlice(ref, r1, n1));
          p.catch(() => undefined); // a failed guess is reported when (if) it is taken
          ahead.set(aheadKey(slot, r1, n1), p);
        }
      }
      const ok = await uploadReads(reads);
      const E = task.experts.length;
      return { base: ok[0], experts: ok.slice(1, 1 + E), fisher: need.fisher && hasFisher ? (ok.slice(1 + E) as Tensor[]) : undefined };
    };
    const c0 = performance.now();
    let readbackMs = 0;
    try {
      const gen = mergeTensorChunked(rt, plan.method, {
        name: task.output,
        shape: task.shape,
        hasBase: !!task.base,
        experts: task.experts.length,
        hasFisher,
        perModel: task.experts.map((e) => e.params as Record<string, number | boolean>),
        global: task.params as Record<string, number | boolean>,
        curvature,
        gram,
      }, rowsPer, load);
      let stats: TensorMergeStats;
      for (;;) {
        const r = await gen.next().catch((e: unknown) => {
          // The stats' errors (plain Errors: NaN/Inf, a zero multislerp sum) count models among the experts: say
          // which files they are, as runTask does; typed errors (reads, cancellation, ranges) pass unchanged.
          if (!(e instanceof Error) || e.constructor !== Error) throw e;
          const names = task.experts.map((x, i) => `model ${i} = ${modelName(x.model)}`).join(', ');
          throw new Error(`${(e as Error).message} (${names}${task.base ? `, base = ${modelName(task.base.model)}` : ''})`);
        });
        if (r.done) {
          stats = r.value;
          break;
        }
        if (o.signal?.aborted) {
          await gen.return(undefined as never);
          throw new MergeCancelledError();
        }
        readback.record(r.value, task.outDtype);
        const r0 = performance.now();
        const values = await readback.read();
        readbackMs += performance.now() - r0;
        yield values;
      }
      reports.push({ name: task.output, shape: task.shape, layer: task.layer, ...stats });
      stats.saliencyMass?.forEach((m, i) => {
        const id = task.experts[i].model;
        const s = saliency.get(id) ?? { total: 0, perLayer: {} };
        s.total += m;
        const key = task.layer === null ? 'other' : String(task.layer);
        s.perLayer[key] = (s.perLayer[key] ?? 0) + m;
        saliency.set(id, s);
      });
      timing.tensors++;
    } finally {
      giveBack(ahead);
      ahead = new Map();
      // Reads and writes of the pieces interleave with the GPU work: count the GPU side as compute.
      timing.readbackMs += readbackMs;
      timing.computeMs += performance.now() - c0 - readbackMs;
      for (const c of curvature ?? []) {
        c?.row.dispose();
        c?.col.dispose();
      }
      for (const g of gram ?? []) g.dispose();
      for (const rel of task.release) {
        const k = `${rel.model}\u0000${rel.tensor}`;
        cache.get(k)?.dispose();
        cache.delete(k);
      }
      o.onProgress?.({ done: reports.length, total: tasks.length, tensor: task.output, bytesRead });
    }
  }

  try {
    await prepareData();
    if (preview) {
      for (let i = 0; i < tasks.length; i++) await runTask(tasks[i], tasks[i + 1]);
      // A preview skips tasks, so inputs whose last use was skipped are still cached: free them all.
    } else {
      const order = layout.shards.flatMap((s) => s.tasks.map((i) => plan.tasks[i]));
      let at = 0;
      // The writer's time: from handing it a tensor until it asks for the next one (or finishes the shard).
      let handedAt: number | null = null;
      const wrote = () => {
        if (handedAt !== null) timing.writeMs += performance.now() - handedAt;
        handedAt = null;
      };
      for (const shard of layout.shards) {
        const file = path.join(work!, shard.file);
        await writeSafetensors(
          file,
          [
            ...shard.tasks.map((i) => {
              const task = plan.tasks[i];
              const rowsPer = chunkRowsOf(task);
              if (rowsPer > 0) {
                return {
                  name: task.output,
                  dtype: task.outDtype,
                  shape: task.shape,
                  valuesOutliveNextCall: true, // Readback alternates two staging buffers
                  pieces: () => {
                    wrote();
                    const me = at++;
                    const gen = runChunked(task, order[me + 1], rowsPer);
                    // The writer's time between pieces is write time; the generator's own is compute/read.
                    return {
                      [Symbol.asyncIterator]: () => ({
                        next: async () => {
                          wrote();
                          const r = await gen.next();
                          handedAt = performance.now();
                          return r;
                        },
                        return: async () => gen.return(undefined),
                      }),
                    };
                  },
                };
              }
              return {
                name: task.output,
                dtype: task.outDtype,
                shape: task.shape,
                valuesOutliveNextCall: true, // Readback alternates two staging buffers
                data: async () => {
                  wrote();
                  const me = at++;
                  const values = await runTask(task, order[me + 1]);
                  handedAt = performance.now();
                  return values;
                },
              };
            }),
            // The reference model's non-float tensors, byte for byte (plan.copies).
            ...shard.copies.map((i) => {
              const c = plan.copies[i];
              return { name: c.name, dtype: c.dtype, shape: c.shape, raw: () => reader.readBytes(c) };
            }),
          ],
          { format: 'pt', merged_by: 'basin', merge_method: plan.method },
        );
        wrote();
        bytesWritten += (await fs.promises.stat(file)).size;
      }
      if (layout.index) await writeFileAtomic(path.join(work!, 'model.safetensors.index.json'), JSON.stringify(layout.index, null, 2) + '\n');
    }
  } finally {
    for (const t of cache.values()) t.dispose();
    cache.clear();
    await Promise.allSettled(pending.values());
    for (const p of pending.values()) p.then((b) => staging.release(b), () => undefined);
    readback.destroy();
    await staging.destroy(); // after every read into its memory has ended
    timing.stagingBuffers = staging.created;
    timing.stagingPeakBytes = staging.peakHeldBytes;
    await reader.close();
    if (dataDir) await fs.promises.rm(dataDir, { recursive: true, force: true });
  }

  const baseIdx = new Set(plan.tasks.flatMap((t) => (t.base ? [t.base.model] : [])));
  const expertIdx = new Set(plan.tasks.flatMap((t) => t.experts.map((e) => e.model)));
  const report: MergeReport = {
    format: 'basin-merge-report-1',
    configFile: plan.configFile,
    method: plan.method,
    models: plan.models.map((m) => ({
      index: m.index,
      written: m.ref.written,
      path: m.ref.path,
      role: baseIdx.has(m.index) && expertIdx.has(m.index) ? 'base+expert' : baseIdx.has(m.index) ? 'base' : 'expert',
    })),
    saliency: [...saliency.entries()].sort((a, b) => a[0] - b[0]).map(([model, s]) => ({ model, ...s })),
    tensors: reports,
    bytesRead,
    bytesWritten,
    seconds: (performance.now() - t0) / 1000,
    output: outputFile,
    warnings: plan.warnings,
    ...(preview ? { sample: { tensors: tasks.length, rowsPerTensor: preview.rows } } : {}),
    timing: { ...timing, readbackBytes: readback.total, dispatches: rt.counters.dispatches - counters0.dispatches, submits: rt.counters.submits - counters0.submits },
  };
  if (!preview) {
    // Every file is complete: the report joins them, then the commit record, after which the merge is done even
    // if this process is killed while the files move into place (merge-commit.ts: the next open finishes it).
    const files = layout.shards.map((s) => s.file).concat(layout.index ? ['model.safetensors.index.json'] : []);
    await writeFileAtomic(path.join(work!, MERGE_REPORT_FILE), JSON.stringify(report, null, 2) + '\n');
    commitMergeOutput(o.outDir!, work!, files);
  }
  return report;
}
