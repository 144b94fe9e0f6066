// Planning a merge before any data is read (mergekit's rule: plan the per-tensor work, then execute it lazily).
//
// planMerge(config) opens every model's headers (model-files.ts), checks that they agree — the same tensor names
// and shapes, layer ranges that exist — and lists EVERY mismatch at once before any work. It then produces one
// MergeTask per output tensor: where each input's bytes are (file, offset, dtype), the parameters resolved for
// that tensor (params.ts), the statistics refs when the method needs them, and which inputs are read for the last
// time (so an executor can free them). The plan is plain data (JSON-serialisable): the executor reads the inputs
// with TensorFileReader and writes the outputs grouped by outputShards().
//
// Inputs are normalized to slices as mergekit does: `models:` is one slice of every layer. Output tensors come in
// mergekit's order: the tensors before the layers (embeddings; from the first slice's models), the layers slice by
// slice (output layer indices count up across slices; a layer tensor is renamed to its output index), then the
// tensors after the layers (final norm, head; from the last slice's models).
import * as path from 'node:path';
import type { Needs, RegistryEntry } from '../registry/entry';
import { mergeMethodRegistry, type MergeMethodName } from '../registry/merge-methods';
import { RunRecordError } from '../run-record';
import { SafetensorsError } from '../safetensors';
import { referencedModels, type MergeConfig, type MergeSliceConfig, type ModelRef } from './config';
import { FLOAT_DTYPE_BYTES, ModelFiles, ModelFilesError, statisticsFor, type CheckpointOrigin, type OtherTensor, type FloatDType, type TensorRef, type WeightStatistics } from './model-files';
import { layerT, nonLayerPlace, renameLayer, resolveParams, tensorLayer, type ResolvedParams } from './params';

export class MergePlanError extends Error {
  constructor(
    message: string,
    readonly file: string,
    /** One line per problem (the message holds them too, capped). */
    readonly problems: string[] = [],
  ) {
    super(message);
    this.name = 'MergePlanError';
  }
}

/** One model of the merge, as every task refers to it (by `index`). */
export interface PlanModel {
  index: number;
  ref: ModelRef;
  /** The Basin checkpoint read for a run folder or checkpoint file. */
  checkpoint: CheckpointOrigin | null;
  /** Layers found in its tensor names (max index after `blocks.`/`layers.` + 1; 0 when none). */
  layers: number;
  /** stats/step-<n>.safetensors when the method reads statistics, else null. */
  statisticsFile: string | null;
}

/** One input tensor of a task. */
export interface PlanInput {
  /** Index into MergePlan.models. */
  model: number;
  tensor: TensorRef;
  /** The method's per-model parameters (`perModel: true`) resolved for this input and tensor. */
  params: ResolvedParams;
  /** The weight's v_row / v_col when the method needs statistics and the stats file has them (else null: the executor treats F̂ as 1). */
  stats: WeightStatistics | null;
  /** No later task reads this (model, tensor): free it after this task. */
  lastUse: boolean;
}

/** The work for one output tensor. */
export interface MergeTask {
  index: number;
  /** Output tensor name. */
  output: string;
  shape: number[];
  numel: number;
  /** What to write it as (config out_dtype, else dtype, else the base's — or first input's — dtype). */
  outDtype: FloatDType;
  outBytes: number;
  /** Output layer index; null for the tensors before/after the layers. */
  layer: number | null;
  /** Gradient position the parameters were read at (params.ts). */
  t: number;
  /** θ₀, when the method uses a base model. */
  base: PlanInput | null;
  /** θ_t in config order (the base excluded for methods that use one). */
  experts: PlanInput[];
  /** The method's global parameters resolved for this tensor (defaults applied). */
  params: ResolvedParams;
  /** The inputs read for the last time by this task (same as the inputs with lastUse). */
  release: { model: number; tensor: string }[];
}

/** A tensor the merged model takes as it is from one input: the base's non-float tensors (as mergekit does). */
export interface CopiedTensor {
  /** Index into MergePlan.models. */
  model: number;
  name: string;
  dtype: OtherTensor['dtype'];
  shape: number[];
  file: string;
  byteOffset: number;
  byteLength: number;
}

export interface MergePlan {
  configFile: string;
  method: MergeMethodName;
  needs: Needs;
  models: PlanModel[];
  tasks: MergeTask[];
  /** Non-float tensors (position ids, masks) copied byte for byte from the base, or the first model without one. */
  copies: CopiedTensor[];
  /** Sum of outBytes. */
  outputBytes: number;
  /** Things the executor or the user should know (not errors). */
  warnings: string[];
}

const MAX_SHOWN = 40;

function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function rethrowForModel(c: MergeConfig, m: ModelRef, e: unknown): never {
  if (e instanceof ModelFilesError || e instanceof SafetensorsError || e instanceof RunRecordError) {
    throw new MergePlanError(`${c.file}:${m.line}:${m.column}: model "${m.written}": ${e.message}`, c.file);
  }
  throw e;
}

/** Largest layer index + 1 over a model's tensor names. */
function countLayers(f: ModelFiles): number {
  let n = 0;
  for (const t of f.list) {
    const l = tensorLayer(t.name);
    if (l) n = Math.max(n, l.index + 1);
  }
  return n;
}

interface Source {
  model: number;
  first: number;
  params: MergeSliceConfig['sources'][number]['parameters'];
}

/**
 * Plans a merge: opens the models' headers (never their data), checks that they agree and returns the task list.
 * Throws MergePlanError listing every mismatch (missing tensors per model, shape A vs shape B, layer ranges past a
 * model's layers, missing statistics).
 */
export async function planMerge(config: MergeConfig): Promise<MergePlan> {
  const entry: RegistryEntry = mergeMethodRegistry.get(config.method);
  const needs: Needs = entry.needs ?? {};
  const usesBase = needs.base === true || config.method === 'multislerp';
  const refs = referencedModels(config);
  const files: ModelFiles[] = [];
  const warnings: string[] = [];
  try {
    for (const r of refs) {
      try {
        files.push(await ModelFiles.open(r));
      } catch (e) {
        rethrowForModel(config, r, e);
      }
    }
    const indexOf = new Map(refs.map((r, i) => [r.path, i]));
    const models: PlanModel[] = refs.map((ref, i) => ({ index: i, ref, checkpoint: files[i].checkpoint, layers: countLayers(files[i]), statisticsFile: null }));
    if (!usesBase && config.baseModel) warnings.push(`merge_method ${config.method} does not use base_model; it is merged like the other models only when listed among them`);

    const problems: string[] = [];
    const where = (m: number) => `model "${models[m].ref.written}" (${config.file}:${models[m].ref.line})`;

    // The slices' sources with their layer ranges checked.
    const slices: { cfg: MergeSliceConfig; base: number | null; sources: Source[]; count: number }[] = [];
    config.slices.forEach((s, j) => {
      const baseRef = usesBase ? (s.baseModel ?? config.baseModel) : null;
      const base = baseRef ? indexOf.get(baseRef.path)! : null;
      const sources: Source[] = [];
      let count = -1;
      s.sources.forEach((src, i) => {
        const m = indexOf.get(src.model.path)!;
        const n = models[m].layers;
        let [first, end] = src.layerRange ?? [0, n];
        if (src.layerRange && end > n) {
          problems.push(`slices[${j}].sources[${i}].layer_range [${first}, ${end}] picks layers past ${where(m)}'s ${n} layers (0 to ${n - 1})`);
          end = Math.min(end, n);
          first = Math.min(first, end);
        }
        if (count < 0) count = end - first;
        else if (!src.layerRange && end - first !== count) problems.push(`${where(m)} has ${n} layers but ${where(sources[0].model)} has ${count}`);
        sources.push({ model: m, first, params: src.parameters });
      });
      // A base that is not a source of the slice reads the layers the first source reads.
      if (base !== null && !sources.some((x) => x.model === base)) {
        if (config.form === 'slices' && s.sources[0]?.layerRange && s.sources[0].layerRange[1] > models[base].layers) {
          problems.push(`slices[${j}]: base ${where(base)} has ${models[base].layers} layers, fewer than the slice's layer_range [${s.sources[0].layerRange.join(', ')}] needs`);
        }
        if (config.form === 'models' && models[base].layers !== Math.max(count, 0)) problems.push(`base ${where(base)} has ${models[base].layers} layers but ${where(sources[0].model)} has ${count}`);
      }
      slices.push({ cfg: s, base, sources, count: Math.max(count, 0) });
    });

    const expertsOf = (sl: (typeof slices)[number]) => sl.sources.filter((x) => x.model !== sl.base);
    for (const [j, sl] of slices.entries()) {
      const k = expertsOf(sl).length;
      const at = `${config.form === 'slices' ? `slices[${j}]` : 'models'} (${config.file}:${sl.cfg.line})`;
      if (k === 0) problems.push(`${at}: nothing to merge: every input is the base model`);
      else if (config.method === 'slerp' && k !== 1) problems.push(`${at}: slerp interpolates between the base and exactly one other model, got ${k}`);
      else if (config.method === 'model_stock' && k < 2) problems.push(`${at}: model_stock needs at least two models besides the base, got ${k}`);
    }

    // Statistics, when the method reads them: every expert must have them.
    const stats = new Map<number, Record<string, WeightStatistics>>();
    if (needs.statistics) {
      const experts = new Set(slices.flatMap((sl) => expertsOf(sl).map((x) => x.model)));
      for (const m of experts) {
        const r = await statisticsFor(files[m]);
        if (r.stats) {
          stats.set(m, r.stats.weights);
          models[m].statisticsFile = r.stats.file;
        } else problems.push(`${where(m)}: merge_method ${config.method} needs training statistics: ${r.message}`);
      }
    }

    // Fisher and RegMean read each expert's own training data, which Basin finds in the run's config: a model that
    // is not a Basin run or checkpoint has none. Said here, before any work.
    if (needs.data) {
      const experts = new Set(slices.flatMap((sl) => expertsOf(sl).map((x) => x.model)));
      for (const m of experts) {
        if (!files[m].checkpoint) {
          problems.push(`${where(m)}: merge_method ${config.method} needs a pass over each model's own training data, which Basin finds in a run's config: this model is not a Basin run or checkpoint (use the curvature method, which needs no data, or merge Basin runs)`);
        }
      }
    }

    // Names and shapes: every model against the reference (the first slice's first source, or the base).
    const refModel = slices[0]?.base ?? slices[0]?.sources[0]?.model ?? 0;
    // Layer ranges, layer counts and input counts must be right before tensors can be paired up.
    const structural = problems.length;
    const reportedMissing = new Set<string>();
    if (config.form === 'models' && structural === 0) {
      const refNames = new Set(files[refModel].list.map((t) => t.name));
      for (let m = 0; m < files.length; m++) {
        if (m === refModel) continue;
        const missing = files[refModel].list.filter((t) => !files[m].has(t.name)).map((t) => t.name);
        const extra = files[m].list.filter((t) => !refNames.has(t.name)).map((t) => t.name);
        for (const n of missing) reportedMissing.add(`${m}\0${n}`);
        if (missing.length) problems.push(`${where(m)} lacks ${missing.length} tensor(s) of ${where(refModel)}: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`);
        if (extra.length) problems.push(`${where(m)} has ${extra.length} tensor(s) ${where(refModel)} lacks: ${extra.slice(0, 8).join(', ')}${extra.length > 8 ? ', …' : ''}`);
      }
    }

    // The tasks.
    const tasks: MergeTask[] = [];
    const firstSlice = slices[0];
    const lastSlice = slices[slices.length - 1];
    const refList = files[refModel].list;
    const pre = refList.filter((t) => !tensorLayer(t.name) && nonLayerPlace(t.name) === 'pre');
    const post = refList.filter((t) => !tensorLayer(t.name) && nonLayerPlace(t.name) === 'post');
    // The per-layer tensors of the reference's first layer it has, as name templates in file order.
    const templates: string[] = [];
    {
      const seen = new Set<string>();
      for (const t of refList) {
        const l = tensorLayer(t.name);
        if (!l) continue;
        const tpl = renameLayer(t.name, 0);
        if (!seen.has(tpl)) (seen.add(tpl), templates.push(tpl));
      }
    }

    const input = (m: number, name: string, shape: number[] | null, outName: string): TensorRef | null => {
      const t = files[m].tensors[name];
      if (!t) {
        if (!reportedMissing.has(`${m}\0${name}`)) problems.push(`${where(m)} has no tensor "${name}" (needed for "${outName}")`);
        return null;
      }
      if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
        problems.push(`"${name}": ${where(m)} has shape ${fmtShape(t.shape)} but ${where(refModel)} has ${fmtShape(shape)}`);
        return null;
      }
      return t;
    };

    const addTask = (sl: (typeof slices)[number], outName: string, nameIn: (first: number) => string, layer: number | null, t: number) => {
      const refName = nameIn(sl.sources.find((s) => s.model === refModel)?.first ?? sl.sources[0].first);
      const refT = files[refModel].tensors[refName] ?? files[sl.sources[0].model].tensors[nameIn(sl.sources[0].first)];
      const shape = refT ? refT.shape : null;
      const levels = (src?: Source) => ({ source: src?.params, slice: sl.cfg.parameters, global: config.parameters });
      let base: PlanInput | null = null;
      let ok = true;
      if (sl.base !== null) {
        const bsrc = sl.sources.find((s) => s.model === sl.base);
        const name = nameIn((bsrc ?? sl.sources[0]).first);
        const tr = input(sl.base, name, shape, outName);
        if (tr) base = { model: sl.base, tensor: tr, params: resolveParams(entry.params, 'perModel', levels(bsrc), name, t), stats: null, lastUse: false };
        else ok = false;
      }
      const experts: PlanInput[] = [];
      for (const src of expertsOf(sl)) {
        const name = nameIn(src.first);
        const tr = input(src.model, name, shape, outName);
        if (!tr) {
          ok = false;
          continue;
        }
        experts.push({ model: src.model, tensor: tr, params: resolveParams(entry.params, 'perModel', levels(src), name, t), stats: stats.get(src.model)?.[name] ?? null, lastUse: false });
      }
      if (!ok || !shape) return;
      const first = base ?? experts[0];
      const outDtype: FloatDType = config.outDtype ?? config.dtype ?? first.tensor.dtype;
      const numel = first.tensor.numel;
      tasks.push({
        index: tasks.length,
        output: outName,
        shape: shape.slice(),
        numel,
        outDtype,
        outBytes: numel * FLOAT_DTYPE_BYTES[outDtype],
        layer,
        t,
        base,
        experts,
        params: resolveParams(entry.params, 'global', levels(), outName, t),
        release: [],
      });
    };

    if (structural === 0) {
      for (const t of pre) addTask(firstSlice, t.name, () => t.name, null, 0);
      let outLayer = 0;
      for (const sl of slices) {
        for (let off = 0; off < sl.count; off++) {
          const t = layerT(off, sl.count);
          for (const tpl of templates) addTask(sl, renameLayer(tpl, outLayer), (first) => renameLayer(tpl, first + off), outLayer, t);
          outLayer++;
        }
      }
      for (const t of post) addTask(lastSlice, t.name, () => t.name, null, 1);
      const outNames = new Set<string>();
      for (const task of tasks) {
        if (outNames.has(task.output)) problems.push(`two output tensors are named "${task.output}"`);
        outNames.add(task.output);
      }
      if (tasks.length === 0 && problems.length === 0) problems.push(`nothing to merge: ${where(refModel)} has no float tensor (F32, F16, BF16) in what the config selects`);
    }

    if (problems.length) {
      const shown = problems.slice(0, MAX_SHOWN).map((p) => `  - ${p}`);
      if (problems.length > MAX_SHOWN) shown.push(`  … and ${problems.length - MAX_SHOWN} more`);
      throw new MergePlanError(`${config.file}: the models do not fit together (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${shown.join('\n')}`, config.file, problems);
    }

    // Last uses: a frankenmerge's slices may read one input layer more than once.
    const last = new Map<string, number>();
    const key = (i: PlanInput) => `${i.model}\0${i.tensor.name}`;
    for (const task of tasks) for (const i of [task.base, ...task.experts]) if (i) last.set(key(i), task.index);
    for (const task of tasks) {
      for (const i of [task.base, ...task.experts]) {
        if (!i || last.get(key(i)) !== task.index) continue;
        i.lastUse = true;
        if (!task.release.some((r) => r.model === i.model && r.tensor === i.tensor.name)) task.release.push({ model: i.model, tensor: i.tensor.name });
      }
    }
    // Non-float tensors are not merged: the output takes them as they are, as mergekit does, from the reference
    // model (the base, or the first model) — per-layer ones (GPT-J's BOOL attn.bias) layer by layer like the merged
    // tensors, from each slice's own reference source at its source layer, renamed to the output layer.
    const outputs = new Set(tasks.map((t) => t.output));
    const copies: CopiedTensor[] = [];
    const copy = (m: number, from: string, to: string) => {
      const o = files[m].other.find((x) => x.name === from);
      if (!o || outputs.has(to) || copies.some((c) => c.name === to)) return;
      const h = files[m].headers.get(o.file)!.tensors[o.name];
      copies.push({ model: m, name: to, dtype: o.dtype, shape: o.shape.slice(), file: o.file, byteOffset: h.byteOffset, byteLength: h.byteLength });
    };
    const refOther = files[refModel].other;
    for (const o of refOther) if (!tensorLayer(o.name)) copy(refModel, o.name, o.name);
    const otherTemplates = [...new Set(refOther.filter((o) => tensorLayer(o.name)).map((o) => renameLayer(o.name, 0)))];
    if (otherTemplates.length) {
      let outLayer = 0;
      for (const sl of slices) {
        const src = sl.sources.find((s) => s.model === (sl.base ?? refModel)) ?? sl.sources[0];
        for (let off = 0; off < sl.count; off++, outLayer++) {
          for (const tpl of otherTemplates) copy(src.model, renameLayer(tpl, src.first + off), renameLayer(tpl, outLayer));
        }
      }
    }
    if (copies.length) warnings.push(`not merged, copied from model "${models[refModel].ref.written}" as they are (not float tensors): ${copies.map((c) => `${c.name} (${c.dtype})`).join(', ')}`);
    return { configFile: config.file, method: config.method, needs, models, tasks, copies, outputBytes: tasks.reduce((a, t) => a + t.outBytes, 0) + copies.reduce((a, c) => a + c.byteLength, 0), warnings };
  } finally {
    for (const f of files) await f.close();
  }
}

// ---------------------------------------------------------------------------------------------- output shards

export interface OutputShard {
  /** File name inside the output folder: `model.safetensors`, or `model-0000i-of-0000n.safetensors`. */
  file: string;
  /** Indices into plan.tasks, in writing order. */
  tasks: number[];
  /** Indices into plan.copies, written after the shard's tasks (copies come after every task, in shards alike). */
  copies: number[];
  /** Tensor bytes (headers excluded). */
  bytes: number;
}

export interface OutputLayout {
  shards: OutputShard[];
  /** The `model.safetensors.index.json` to write when there is more than one shard, else null. */
  index: { metadata: { total_size: number }; weight_map: Record<string, string> } | null;
}

/**
 * Groups the output tensors into shards of at most `maxShardBytes` tensor bytes, in task order (a tensor larger
 * than the limit gets a shard of its own), named like transformers' sharded checkpoints. Copied tensors (ids,
 * masks) follow the merged ones, under the same limit.
 */
export function outputShards(plan: Pick<MergePlan, 'tasks'> & Partial<Pick<MergePlan, 'copies'>>, maxShardBytes: number): OutputLayout {
  if (!(Number.isFinite(maxShardBytes) && maxShardBytes >= 1)) throw new RangeError(`maxShardBytes must be a positive number, got ${maxShardBytes}`);
  const copies = plan.copies ?? [];
  const groups: { tasks: number[]; copies: number[]; bytes: number }[] = [];
  let cur: (typeof groups)[number] | null = null;
  const place = (bytes: number): (typeof groups)[number] => {
    if (!cur || (cur.tasks.length + cur.copies.length > 0 && cur.bytes + bytes > maxShardBytes)) {
      cur = { tasks: [], copies: [], bytes: 0 };
      groups.push(cur);
    }
    cur.bytes += bytes;
    return cur;
  };
  for (const t of plan.tasks) place(t.outBytes).tasks.push(t.index);
  copies.forEach((c, i) => place(c.byteLength).copies.push(i));
  if (groups.length <= 1) return { shards: [{ file: 'model.safetensors', tasks: groups[0]?.tasks ?? [], copies: groups[0]?.copies ?? [], bytes: groups[0]?.bytes ?? 0 }], index: null };
  const n = groups.length;
  const w = Math.max(5, String(n).length);
  const shards = groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(w, '0')}-of-${String(n).padStart(w, '0')}.safetensors`, ...g }));
  const weightMap: Record<string, string> = {};
  for (const s of shards) {
    for (const i of s.tasks) weightMap[plan.tasks[i].output] = s.file;
    for (const i of s.copies) weightMap[copies[i].name] = s.file;
  }
  return { shards, index: { metadata: { total_size: shards.reduce((a, s) => a + s.bytes, 0) }, weight_map: weightMap } };
}

/** The output file of a plan's merged model, for messages (`<output>/model.safetensors`). */
export function outputFile(outputDir: string, layout: OutputLayout): string {
  return path.join(outputDir, layout.index ? 'model.safetensors.index.json' : layout.shards[0].file);
}
