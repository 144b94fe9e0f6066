// Fine-tuning: start from a trained model's weights (`init.from`), freeze parameters by name glob
// (`train.freeze`) and unfreeze them on a schedule (`train.unfreeze`).
//
// `init.from` loads WEIGHTS only (the optimizer starts fresh): tensors are matched by name and shape. A mismatch
// is an error naming the first ones, unless `init.partial` lets them keep their fresh initialization (a new
// output head, say); either way the run records the checkpoint in its lineage, so merging and task-vector pruning
// find the common base without being told. Checkpoints in F32, F16 and BF16 load (decoded to f32).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RUN_FILE, listRuns, modelWeightsFile, openRun } from '../../files/run-record';
import { isConfigFile } from '../../files/config/config-files';
import { loadConfig, resolveConfigPath } from '../../files/config/load';
import { MODEL_FILE, SHARD_INDEX_FILE, openWeightsFile, type WeightsFile } from '../../files/merge/model-files';
import { modelFileIn } from '../../files/merge/merge-commit';
import type { ParameterStore } from '../optim/params';
import { CheckpointMismatchError } from './checkpoint';

export interface InitSource {
  /** The weights file: a .safetensors file, or a sharded model's model.safetensors.index.json. */
  file: string;
  /** The run folder it belongs to, when it is a Basin run's checkpoint. */
  runDir: string | null;
}

/**
 * A checkpoint file, a run folder (its latest checkpoint), a training config (the latest checkpoint of its latest
 * run: `from: demo.basin.yaml` fine-tunes whatever `basin train demo.basin.yaml` left) or a model folder as `basin
 * merge` writes one (model.safetensors, or shards with model.safetensors.index.json). A clear error for anything
 * else. Messages name the path, not the field: the caller knows which field (init.from, --base, eval's argument) it is.
 */
export async function resolveInitSource(from: string): Promise<InitSource> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(from);
  } catch {
    throw new Error(`${from} does not exist (give a checkpoint .safetensors file, a run folder, a model folder or a training config)`);
  }
  if (st.isFile() && isConfigFile(from)) {
    const { config, path: cfgPath } = loadConfig(from);
    const outDir = resolveConfigPath(cfgPath, config.output);
    const runs = (await listRuns(outDir)).filter((r) => 'record' in r && r.record.name === config.name);
    for (const r of runs.reverse()) {
      const run = await openRun(r.dir);
      const ck = run.latestCheckpoint();
      if (ck) return { file: modelWeightsFile(path.join(run.dir, ck.path), { withAdapters: true }), runDir: run.dir };
    }
    throw new Error(`no run of ${config.name} with a checkpoint under ${outDir} yet: train it first (basin train ${from})`);
  }
  if (st.isDirectory()) {
    if (!fs.existsSync(path.join(from, RUN_FILE))) {
      // A merged model (basin merge --out) or any transformers-style folder.
      const file = modelFileIn(from);
      if (file) return { file: path.resolve(file), runDir: null };
      throw new Error(`${from} is a folder without ${RUN_FILE}, ${MODEL_FILE} or ${SHARD_INDEX_FILE}: give a Basin run folder, a model folder or a checkpoint .safetensors file`);
    }
    const run = await openRun(from);
    const ck = run.latestCheckpoint();
    if (!ck) throw new Error(`the run ${from} has no checkpoint yet`);
    // A LoRA run's model is its merged file (adapters folded in), not the checkpoint that resume reads. An adapter
    // run has none: its checkpoint, whose adapter tensors a plain model leaves unused (and an adapter run re-initializes).
    return { file: modelWeightsFile(path.join(run.dir, ck.path), { withAdapters: true }), runDir: run.dir };
  }
  // A run's own checkpoint (<run>/checkpoints/step-N.safetensors): remember the run too.
  const maybeRun = path.dirname(path.dirname(path.resolve(from)));
  return { file: modelWeightsFile(path.resolve(from), { withAdapters: true }), runDir: fs.existsSync(path.join(maybeRun, RUN_FILE)) ? maybeRun : null };
}

export interface InitReport {
  file: string;
  /** Tensors loaded from the checkpoint. */
  loaded: string[];
  /** Model tensors that kept their fresh initialization (partial), with why. */
  fresh: string[];
  /** Checkpoint tensors the model does not have. */
  unused: string[];
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Loads the weights of `file` (a .safetensors file or a sharded model's index) into the store, matched by name
 * and shape. Without `partial`, any model tensor missing from the file or of another shape is an error listing the
 * mismatches (before any value is written).
 */
export async function initFromCheckpoint(file: string, store: ParameterStore, opts: { partial: boolean }): Promise<InitReport> {
  const weights = await openWeightsFile(file);
  try {
    return await initFrom(file, weights, store, opts);
  } finally {
    await weights.close();
  }
}

async function initFrom(file: string, weights: WeightsFile, store: ParameterStore, opts: { partial: boolean }): Promise<InitReport> {
  const loaded: string[] = [];
  const fresh: string[] = [];
  const problems: string[] = [];
  for (const e of store.entries) {
    const t = weights.tensors[e.name];
    if (!t) {
      problems.push(`no tensor ${e.name} ${fmt(e.shape)}`);
      fresh.push(`${e.name} (not in the checkpoint)`);
    } else if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      problems.push(`tensor ${e.name} is ${t.dtype}, expected a float (F32, F16 or BF16)`);
      fresh.push(`${e.name} (${t.dtype})`);
    } else if (t.shape.length !== e.shape.length || t.shape.some((x, i) => x !== e.shape[i])) {
      problems.push(`tensor ${e.name} has shape ${fmt(t.shape)} in the checkpoint, the model has ${fmt(e.shape)}`);
      fresh.push(`${e.name} (shape ${fmt(t.shape)} vs ${fmt(e.shape)})`);
    } else loaded.push(e.name);
  }
  const known = new Set(store.entries.map((e) => e.name));
  const unused = Object.keys(weights.tensors).filter((n) => !known.has(n));
  if (problems.length && !opts.partial) {
    throw new CheckpointMismatchError(file, problems, { init: true, mismatches: true });
  }
  if (!loaded.length) throw new CheckpointMismatchError(file, ['no tensor of the model is in it (is it a checkpoint of another model?)'], { init: true });
  const values = new Map<string, Float32Array>();
  for (const name of loaded) {
    const data = await weights.read(name);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointMismatchError(file, [`tensor ${name} holds a non-finite value (${data[bad]} at index ${bad})`], { init: true });
    values.set(name, data);
  }
  for (const [name, data] of values) store.load(name, data);
  return { file, loaded, fresh, unused };
}

/** A freeze or unfreeze glob that matches no parameter. */
export class ParameterGlobError extends Error {
  constructor(
    readonly field: (string | number)[],
    readonly glob: string,
    readonly names: string[],
  ) {
    super(`"${glob}" matches no parameter; the parameters are: ${names.join(', ')}`);
    this.name = 'ParameterGlobError';
  }
}

export interface FreezePlan {
  /** Parameters frozen at the start of training (before any unfreeze). */
  frozen: Set<string>;
  /** Sorted by step: which parameters start training at that step. */
  unfreeze: { step: number; names: string[] }[];
}

/** Resolves `train.freeze` and `train.unfreeze` against the model's parameter names; a glob matching nothing throws. */
export function planFreeze(store: ParameterStore, freeze: readonly string[], unfreeze: readonly { step: number; params: readonly string[] }[]): FreezePlan {
  const names = store.entries.map((e) => e.name);
  const frozen = new Set<string>();
  freeze.forEach((g, i) => {
    const m = store.match(g);
    if (!m.length) throw new ParameterGlobError(['train', 'freeze', i], g, names);
    for (const e of m) frozen.add(e.name);
  });
  const steps = unfreeze.map((u, i) => {
    const set = new Set<string>();
    u.params.forEach((g, j) => {
      const m = store.match(g);
      if (!m.length) throw new ParameterGlobError(['train', 'unfreeze', i, 'params', j], g, names);
      for (const e of m) set.add(e.name);
    });
    return { step: u.step, names: [...set] };
  });
  steps.sort((a, b) => a.step - b.step);
  return { frozen, unfreeze: steps };
}

/** The parameters frozen at `step` (the state after every unfreeze with u.step ≤ step). */
export function frozenAt(plan: FreezePlan, step: number): Set<string> {
  const out = new Set(plan.frozen);
  for (const u of plan.unfreeze) if (u.step <= step) for (const n of u.names) out.delete(n);
  return out;
}

/** Sets every parameter's frozen flag to match `frozen` (writes the segment table only when something changes). */
export function applyFrozen(store: ParameterStore, frozen: ReadonlySet<string>): void {
  for (const e of store.entries) {
    const want = frozen.has(e.name);
    if (e.flags.frozen !== want) store.setFlags(e.name, { frozen: want });
  }
}
