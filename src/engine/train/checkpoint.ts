// Checkpoints: `checkpoints/step-N.safetensors` (the weights, named like the parameters) and beside it
// `step-N.opt.safetensors` (the optimizer state as `<state>.<param>`, shapes from the optimizer's declaration,
// metadata `optimizer` and `optimizerStep`). Both written atomically (temp file + rename, src/files/safetensors.ts).
// Loading checks everything against the model and the optimizer before any value reaches the GPU: every tensor
// present, dtype F32, the declared shape, finite weights; the error names the first mismatches.
import * as path from 'node:path';
import type { RunFolder } from '../../files/run-record';
import { readSafetensorsHeader, readTensor, writeSafetensors, type SafetensorsHeader } from '../../files/safetensors';
import type { Optimizer } from '../optim/optimizer';
import type { ParameterStore } from '../optim/params';

export class CheckpointMismatchError extends Error {
  /**
   * @param opts.init weights a model starts from (init.from, eval): only the model must fit (a fresh optimizer);
   * else a resume, where the optimizer's state must fit too.
   * @param opts.mismatches the problems are tensors missing or of another shape (init.partial would load the rest).
   */
  constructor(
    readonly file: string,
    readonly problems: string[],
    opts: { init?: boolean; mismatches?: boolean } = {},
  ) {
    const shown = problems.slice(0, 5).join('; ');
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
    super(
      opts.init
        ? `${file} does not fit this model${opts.mismatches ? ` (${problems.length} ${problems.length === 1 ? 'tensor' : 'tensors'})` : ''}: ${shown}${more}`
        : `checkpoint ${file} does not fit this model and optimizer: ${shown}${more}`,
    );
    this.name = 'CheckpointMismatchError';
    this.mismatches = opts.mismatches ?? false;
  }

  /** Tensors missing or of another shape: a fine-tune could keep fresh weights for them (init.partial). */
  readonly mismatches: boolean;
}

/** The optimizer-state file beside a weights file. */
export function optimizerStatePath(weightsFile: string): string {
  return weightsFile.replace(/\.safetensors$/, '.opt.safetensors');
}

/** Writes the weights and the optimizer state of `step`, then records the checkpoint in run.json; `metadata` goes into the weights file's header. */
export async function saveCheckpoint(run: RunFolder, step: number, store: ParameterStore, optimizer: Optimizer, metrics?: Record<string, number>, metadata?: Record<string, string>): Promise<string> {
  const weights = await store.readAll();
  const snap = await optimizer.snapshot();
  const rel = run.checkpointPath(step);
  const abs = path.join(run.dir, rel);
  const meta = { step: String(step), format: 'basin-1' };
  const optTensors: { name: string; dtype: 'F32' | 'BF16'; shape: number[]; data: Float32Array }[] = [];
  for (const d of optimizer.stateTensors()) {
    const data = snap.buffers[d.state]?.get(d.param);
    if (!data) throw new Error(`${optimizer.name}: its snapshot lacks ${d.state} of ${d.param}, which it declares`);
    optTensors.push({ name: `${d.state}.${d.param}`, dtype: d.dtype ?? 'F32', shape: d.shape, data });
  }
  // The optimizer state first, the weights last: a checkpoint exists once its weights file does (that is what
  // availableCheckpoints() looks for), so a kill between the two writes leaves no half checkpoint behind.
  await writeSafetensors(optimizerStatePath(abs), optTensors, { ...meta, optimizer: snap.optimizer, optimizerStep: String(snap.step) });
  await writeSafetensors(abs, [...weights].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: store.entry(name).shape as number[], data })), { ...metadata, ...meta });
  await run.addCheckpoint({ step, path: rel, time: Date.now(), ...(metrics ? { metrics } : {}) });
  return rel;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Problems of a header against expected (name, shape, dtype: default F32) triples: missing, another dtype or shape. */
function headerProblems(header: SafetensorsHeader, expected: { name: string; shape: readonly number[]; dtype?: string }[], what: string): string[] {
  const out: string[] = [];
  for (const e of expected) {
    const t = header.tensors[e.name];
    const dtype = e.dtype ?? 'F32';
    if (!t) out.push(`no ${what} ${e.name}`);
    else if (t.dtype !== dtype) out.push(`${what} ${e.name} is ${t.dtype}, expected ${dtype}`);
    else if (!sameShape(t.shape, e.shape)) out.push(`${what} ${e.name} has shape ${fmt(t.shape)}, expected ${fmt(e.shape)}`);
  }
  const known = new Set(expected.map((e) => e.name));
  const extra = Object.keys(header.tensors).filter((n) => !known.has(n));
  if (extra.length) out.push(`unexpected ${what}${extra.length > 1 ? 's' : ''} ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? '…' : ''}`);
  return out;
}

/** Loads weights into the store after checking names, dtypes, shapes and finiteness. */
export async function loadWeights(file: string, store: ParameterStore): Promise<void> {
  const header = await readSafetensorsHeader(file);
  const problems = headerProblems(header, store.entries.map((e) => ({ name: e.name, shape: e.shape })), 'tensor');
  if (problems.length) throw new CheckpointMismatchError(file, problems);
  const values = new Map<string, Float32Array>();
  for (const e of store.entries) {
    const data = (await readTensor(file, e.name, header)).data as Float32Array;
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointMismatchError(file, [`tensor ${e.name} holds a non-finite value (${data[bad]} at index ${bad}): the run had diverged when it was written`]);
    values.set(e.name, data);
  }
  for (const [name, data] of values) store.load(name, data);
}

/** Loads a checkpoint's weights and optimizer state (resume), checking both against the model and the optimizer. */
export async function loadCheckpoint(file: string, store: ParameterStore, optimizer: Optimizer): Promise<void> {
  const optFile = optimizerStatePath(file);
  const oh = await readSafetensorsHeader(optFile);
  const saved = oh.metadata?.optimizer;
  if (saved && saved !== optimizer.name) {
    throw new CheckpointMismatchError(optFile, [`its optimizer state is ${saved}'s, this run uses ${optimizer.name}`]);
  }
  const decl = optimizer.stateTensors();
  const problems = headerProblems(oh, decl.map((d) => ({ name: `${d.state}.${d.param}`, shape: d.shape, dtype: d.dtype })), 'optimizer state');
  if (problems.length) throw new CheckpointMismatchError(optFile, problems);
  await loadWeights(file, store);
  const buffers: Record<string, Map<string, Float32Array>> = {};
  for (const d of decl) (buffers[d.state] ??= new Map()).set(d.param, (await readTensor(optFile, `${d.state}.${d.param}`, oh)).data as Float32Array);
  optimizer.loadState({ step: Number(oh.metadata?.optimizerStep ?? 0), buffers });
}
