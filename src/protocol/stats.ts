// Per-layer training statistics: ONE binary frame format, shared by the engine (which writes frames to
// `<run>/stats.bin` and hands them to the worker), the host (which streams them from the worker and reads the
// file of a finished run) and the statistics webview (which decodes them). Pure TypeScript: no Node, no DOM,
// no vscode, so every side imports it.
//
// A frame is one sample of every parameter tensor at one step:
//   u32 magic 'BST1' | u32 headerBytes | header (UTF-8 JSON, padded with spaces to a multiple of 4)
//   | f32 payload: for each tensor in header order: scalars[SCALAR_KEYS.length] | hist[HIST_BINS] | vRow[rows] | vCol[cols]
// All little-endian. `stats.bin` is a plain concatenation of frames (append-only); a truncated last frame (a
// killed job) is ignored by the reader.
//
// The curvature profile of a tensor viewed as a matrix [rows, cols] (rows = shape[0], cols = the product of the
// rest; a vector [n] is [n, 1]): vRow[i] = Σ_j v[i, j], vCol[j] = Σ_i v[i, j], where v is AdamW's second moment
// (bias-uncorrected, as stored). These are exactly the factors a factored (Adafactor-style) optimizer keeps.
// The histogram counts log10(v) in HIST_BINS equal bins over [HIST_LO, HIST_HI); values below go to bin 0
// (zeros included), above to the last bin (+Inf and NaN too).
//
// Optimizers without a second moment (SGD): momentumNorm is ‖·‖ of SGD's momentum buffer (0 without momentum);
// vMean, vMax and the quantiles are 0, the histogram is all zeros and vRow/vCol are zeros. updateRatio is NaN in a
// frame sampled without the pre-step weights (the engine always has them; see src/engine/stats/layer-stats.ts).
// The engine samples every `train.statsEvery` steps, at every checkpoint step and at the last step; it also writes
// the sample of each checkpoint step to `stats/step-<n>.safetensors` (tensors `<weight>.scalars` in SCALAR_KEYS
// order, `<weight>.v_hist`, `<weight>.v_row`, `<weight>.v_col`).
//
// Optional header fields (absent in older files, which decode as before; the payload never changes):
//   tensors[i].role   'trained' | 'frozen' | 'lora' | 'adapter' (TENSOR_ROLES): how the tensor trained at that
//                     step. frozen: frozen by train.freeze, LoRA (the base weights) or not yet unfrozen — its
//                     gradNorm, updateRatio and momentum are 0 by design; lora: `<weight>.lora_a`/`.lora_b`;
//                     adapter: a name containing `.adapter_`; absent: not recorded (older writers).
//   extras            per-sample values that change every step, aligned with `tensors` (one entry per tensor,
//                     null where the tensor has none). Written BEFORE `tensors` so that readers that cache the
//                     tensor list (stats-reduce.ts HeaderCache) still skip re-parsing it:
//     capturedEnergy  mao: the fraction in [0, 1] of the momentum's energy ‖M̃‖²_F that its rank-r factors
//                     keep after the step (null: a tensor with a dense momentum).
//     saliencyMass    a run with a base (fine-tuning, `init.from`): Σ τ² ⊙ F̂ over the tensor, τ = θ − θ_base,
//                     F̂_ij = sqrt(R_i·C_j / ΣR) from this frame's vRow/vCol — the merge's saliency mass
//                     (src/engine/stats/saliency.ts); null where the base has no such tensor (LoRA, adapters).
// The sidecar carries them as `<weight>.captured_energy` [1] and `<weight>.saliency_mass` [1] where present and
// the roles as the metadata `roles` (JSON: name → role).

export const STATS_MAGIC = 0x31545342; // 'BST1' read as little-endian u32
export const STATS_FILE = 'stats.bin';

/** Per-tensor scalars, in payload order. One source of truth for names, order and meaning. */
export const SCALAR_KEYS = [
  'gradNorm', //     ‖g‖₂ of the gradient used by the step (after clipping scale, before the update)
  'weightNorm', //   ‖w‖₂ after the step
  'updateRatio', //  ‖Δw‖₂ / ‖w‖₂ of this step's update (0 when ‖w‖ = 0)
  'momentumNorm', // ‖m‖₂, AdamW's first moment
  'vMean', //        mean of v, AdamW's second moment (curvature proxy: the diagonal empirical Fisher's EMA)
  'vMax', //         max of v
  'vP50', //         quantiles of v (nearest rank: always one of v's values, never above vMax): exact for a tensor
  //                 within the engine's per-tensor sample budget (4,096 values, less with over 256 tensors),
  //                 else from a stratified random sample of that size; exact from the factors when v is factored
  'vP90',
  'vP99',
] as const;
export type ScalarKey = (typeof SCALAR_KEYS)[number];

export const HIST_BINS = 32;
/** log10 range of the v histogram. */
export const HIST_LO = -16;
export const HIST_HI = 0;

/** How a tensor trained at the sampled step (see the header comment). */
export const TENSOR_ROLES = ['trained', 'frozen', 'lora', 'adapter'] as const;
export type TensorRole = (typeof TENSOR_ROLES)[number];

export interface StatsTensorInfo {
  name: string;
  shape: number[];
  rows: number;
  cols: number;
  /** Absent in frames of older writers. */
  role?: TensorRole;
}

/** Per-sample values aligned with the header's tensors (null: the tensor has none). */
export interface StatsExtras {
  capturedEnergy?: (number | null)[];
  saliencyMass?: (number | null)[];
}
export const EXTRA_KEYS = ['capturedEnergy', 'saliencyMass'] as const;
export type ExtraKey = (typeof EXTRA_KEYS)[number];

export interface StatsFrameHeader {
  step: number;
  /** ms since the epoch when the sample was taken. */
  time: number;
  extras?: StatsExtras;
  tensors: StatsTensorInfo[];
}

export interface TensorStats extends StatsTensorInfo {
  scalars: Record<ScalarKey, number>;
  hist: Float32Array;
  vRow: Float32Array;
  vCol: Float32Array;
  /** From the header's extras; absent when the frame has none for this tensor. */
  capturedEnergy?: number;
  saliencyMass?: number;
}

export interface StatsFrame {
  step: number;
  time: number;
  tensors: TensorStats[];
}

/** The [rows, cols] matrix view of a tensor shape. */
export function matrixView(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  const rows = shape[0];
  let cols = 1;
  for (let i = 1; i < shape.length; i++) cols *= shape[i];
  return { rows, cols };
}

/** f32 count of one tensor's record in the payload. */
export function recordFloats(t: { rows: number; cols: number }): number {
  return SCALAR_KEYS.length + HIST_BINS + t.rows + t.cols;
}

export function frameFloats(tensors: readonly { rows: number; cols: number }[]): number {
  let n = 0;
  for (const t of tensors) n += recordFloats(t);
  return n;
}

/** Encode a frame; `payload` must hold frameFloats(header.tensors) floats in record order. */
export function encodeStatsFrame(header: StatsFrameHeader, payload: Float32Array): Uint8Array {
  const want = frameFloats(header.tensors);
  if (payload.length !== want) throw new Error(`stats frame: payload has ${payload.length} floats, the header describes ${want}`);
  checkExtras(header.extras, header.tensors.length, 'stats frame');
  // Key order matters: extras before tensors (see the header comment).
  let json = JSON.stringify({ step: header.step, time: header.time, ...(header.extras ? { extras: header.extras } : {}), tensors: header.tensors });
  const enc = new TextEncoder();
  let hbytes = enc.encode(json);
  const pad = (4 - (hbytes.length % 4)) % 4;
  if (pad) {
    json += ' '.repeat(pad);
    hbytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + hbytes.length + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, STATS_MAGIC, true);
  dv.setUint32(4, hbytes.length, true);
  out.set(hbytes, 8);
  out.set(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), 8 + hbytes.length);
  return out;
}

export class StatsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StatsFormatError';
  }
}

const MAX_HEADER_BYTES = 64 * 1024 * 1024;

const isRole = (x: unknown): x is TensorRole => (TENSOR_ROLES as readonly unknown[]).includes(x);

/** Throws StatsFormatError unless `extras` is absent or holds arrays of `n` finite numbers or nulls. */
export function checkExtras(extras: unknown, n: number, where: string): asserts extras is StatsExtras | undefined {
  if (extras === undefined) return;
  if (!extras || typeof extras !== 'object' || Array.isArray(extras)) throw new StatsFormatError(`${where}: extras is not an object`);
  for (const k of EXTRA_KEYS) {
    const a = (extras as Record<string, unknown>)[k];
    if (a === undefined) continue;
    if (!Array.isArray(a) || a.length !== n) throw new StatsFormatError(`${where}: extras.${k} must hold one entry per tensor (${n})`);
    if (!a.every((v) => v === null || (typeof v === 'number' && Number.isFinite(v)))) throw new StatsFormatError(`${where}: extras.${k} holds a value that is neither a finite number nor null`);
  }
}

/** The value of extras[key] for tensor i: undefined where absent or null. */
export function extraAt(extras: StatsExtras | undefined, key: ExtraKey, i: number): number | undefined {
  const v = extras?.[key]?.[i];
  return typeof v === 'number' ? v : undefined;
}

/**
 * The header length of the frame at `offset`, checked (magic, bounds, alignment): null when `bytes` ends before
 * the header does; throws StatsFormatError on malformed bytes.
 */
export function statsHeaderLength(bytes: Uint8Array, offset: number): number | null {
  if (bytes.length - offset < 8) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(offset, true);
  if (magic !== STATS_MAGIC) throw new StatsFormatError(`stats frame at byte ${offset}: bad magic 0x${magic.toString(16)}`);
  const hlen = dv.getUint32(offset + 4, true);
  if (hlen > MAX_HEADER_BYTES || hlen % 4 !== 0) throw new StatsFormatError(`stats frame at byte ${offset}: header length ${hlen} is invalid`);
  return bytes.length - offset - 8 < hlen ? null : hlen;
}

/**
 * Decode the frame at `offset` of `bytes`. Returns null when the bytes end before the frame does (a frame still
 * being written); throws StatsFormatError on anything malformed. Every length is bounds-checked.
 */
export function decodeStatsFrame(bytes: Uint8Array, offset = 0): { frame: StatsFrame; next: number } | null {
  const hlen = statsHeaderLength(bytes, offset);
  if (hlen === null) return null;
  let header: StatsFrameHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(offset + 8, offset + 8 + hlen))) as StatsFrameHeader;
  } catch (e) {
    throw new StatsFormatError(`stats frame at byte ${offset}: header is not JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || typeof header.step !== 'number' || typeof header.time !== 'number' || !Array.isArray(header.tensors)) {
    throw new StatsFormatError(`stats frame at byte ${offset}: header lacks step, time or tensors`);
  }
  for (const t of header.tensors) {
    if (!t || typeof t !== 'object' || typeof t.name !== 'string' || !Number.isSafeInteger(t.rows) || !Number.isSafeInteger(t.cols) || t.rows < 0 || t.cols < 0 || !Array.isArray(t.shape)) {
      throw new StatsFormatError(`stats frame at byte ${offset}: a tensor entry is malformed`);
    }
    if (t.role !== undefined && typeof t.role !== 'string') throw new StatsFormatError(`stats frame at byte ${offset}: tensor '${t.name}' has a malformed role`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new StatsFormatError(`stats frame at byte ${offset}: tensor '${t.name}' has a malformed shape`);
    const mv = matrixView(t.shape);
    if (mv.rows !== t.rows || mv.cols !== t.cols) {
      throw new StatsFormatError(`stats frame at byte ${offset}: tensor '${t.name}' is [${t.rows}, ${t.cols}], its shape [${t.shape.join(', ')}] gives [${mv.rows}, ${mv.cols}]`);
    }
  }
  checkExtras(header.extras, header.tensors.length, `stats frame at byte ${offset}`);
  const floats = frameFloats(header.tensors);
  const start = offset + 8 + hlen;
  if (bytes.length - start < floats * 4) return null;
  // Copy so the payload is aligned whatever the input's offset.
  const payload = new Float32Array(floats);
  new Uint8Array(payload.buffer).set(bytes.subarray(start, start + floats * 4));
  const tensors: TensorStats[] = [];
  let p = 0;
  header.tensors.forEach((t, i) => {
    const scalars = {} as Record<ScalarKey, number>;
    SCALAR_KEYS.forEach((k, i) => (scalars[k] = payload[p + i]));
    p += SCALAR_KEYS.length;
    const hist = payload.subarray(p, p + HIST_BINS);
    p += HIST_BINS;
    const vRow = payload.subarray(p, p + t.rows);
    p += t.rows;
    const vCol = payload.subarray(p, p + t.cols);
    p += t.cols;
    const out: TensorStats = { name: t.name, shape: t.shape, rows: t.rows, cols: t.cols, scalars, hist, vRow, vCol };
    // A role this reader does not know (a newer writer) is left out rather than refusing the frame.
    if (isRole(t.role)) out.role = t.role;
    const e = extraAt(header.extras, 'capturedEnergy', i);
    if (e !== undefined) out.capturedEnergy = e;
    const m = extraAt(header.extras, 'saliencyMass', i);
    if (m !== undefined) out.saliencyMass = m;
    tensors.push(out);
  });
  return { frame: { step: header.step, time: header.time, tensors }, next: start + floats * 4 };
}

/** Every complete frame in `bytes` (a whole stats.bin); a truncated tail is ignored. */
export function decodeStatsFrames(bytes: Uint8Array): StatsFrame[] {
  const out: StatsFrame[] = [];
  let off = 0;
  for (;;) {
    const r = decodeStatsFrame(bytes, off);
    if (!r) break;
    out.push(r.frame);
    off = r.next;
  }
  return out;
}

/** Upper edge (value, not log) of histogram bin i. */
export function histUpperEdge(i: number): number {
  return 10 ** (HIST_LO + ((i + 1) * (HIST_HI - HIST_LO)) / HIST_BINS);
}

/** Quantile q ∈ (0, 1] of v from its histogram: the upper edge of the bin where the cumulative count reaches q. */
export function histQuantile(hist: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i];
  if (total <= 0) return 0;
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= q * total) return histUpperEdge(i);
  }
  return histUpperEdge(hist.length - 1);
}
