// Everything that can be refused is refused here, before any GPU work: the targets (globs that match nothing
// list the names; an N:M pattern that does not divide an input dimension names the tensors), the base of a task
// vector (missing tensors, other shapes), and each score's needs (statistics, calibration data). Reads only
// safetensors headers and builds the model's module tree on the CPU to tell which weight is the output head.
import * as fs from 'node:fs';
import { SafetensorsError, readSafetensorsHeader } from '../../files/safetensors';
import { ModelFilesError, openWeightsFile, type WeightsFile } from '../../files/merge/model-files';
import { DEFAULT_TARGETS, PruneOptionError, selectTargets, type NamedShape, type PruneOptions } from '../../files/prune/options';
import type { PruneScoreConfig } from '../../files/registry/prune-scores';
import { buildModel } from '../nn/registry';
import type { Tensor } from '../tensor/tensor';
import { modelSpec } from '../train/trainer';
import { checkScoreNeeds } from './scores';
import { isConfigFile } from '../../files/config/config-files';
import { resolveInitSource } from '../train/fine-tune';
import type { PruneSource } from './source';

export interface PrunePlan {
  targets: NamedShape[];
  /** The output head's weight (never a default target), when the model has one as a matrix. */
  head: string | null;
}

/** The output head's parameter name: the model's parameters bound to placeholders that carry their names. */
export function headParamName(source: PruneSource): string | null {
  const model = buildModel(modelSpec(source.config), source.config.seed);
  const decls = new Map(model.declarations().map((d) => [d.name, d.shape]));
  model.bindParameters((name) => ({ name, shape: decls.get(name)! }) as unknown as Tensor);
  return (model.head.weight as unknown as { name: string }).name ?? null;
}

export async function planPrune(source: PruneSource, options: PruneOptions, scores: readonly PruneScoreConfig[]): Promise<PrunePlan> {
  const header = await readSafetensorsHeader(source.checkpoint);
  const tensors = Object.entries(header.tensors).map(([name, t]) => ({ name, shape: t.shape }));
  const head = headParamName(source);
  const targets = selectTargets(tensors, { targets: options.targets.length ? options.targets : [...DEFAULT_TARGETS], pattern: options.pattern }, head ? [head] : []);
  if (options.base) {
    if (!fs.existsSync(options.base)) throw new PruneOptionError('base', `${options.base} does not exist`);
    // A run folder or a training config names its latest checkpoint, as init.from does; the resolved file is
    // written back into the options, which the sweep or the apply then reads.
    if (fs.statSync(options.base).isDirectory() || isConfigFile(options.base)) {
      try {
        options.base = (await resolveInitSource(options.base)).file;
      } catch (e) {
        throw new PruneOptionError('base', (e as Error).message);
      }
    }
    // One file or a sharded model's index (a merged model's folder resolves to it): only headers are read here.
    const bw = await openBase(options.base);
    try {
      for (const t of targets) checkBaseTensor(bw, options.base, t, source.checkpoint);
    } finally {
      await bw.close();
    }
  }
  for (const s of scores) await checkScoreNeeds(s, source, targets, options.base);
  return { targets, head };
}

/** The base of a task vector for reading: a .safetensors file or a sharded model's index; a bad file is the base's error. */
export async function openBase(file: string): Promise<WeightsFile> {
  try {
    return await openWeightsFile(file);
  } catch (e) {
    if (e instanceof ModelFilesError || e instanceof SafetensorsError) throw new PruneOptionError('base', e.message);
    throw e;
  }
}

/** A task vector needs the base's value of every target, in the target's shape. */
export function checkBaseTensor(base: WeightsFile, baseFile: string, t: NamedShape, checkpoint: string): void {
  const b = base.tensors[t.name];
  if (!b) throw new PruneOptionError('base', `${baseFile} has no tensor ${t.name} (a task vector needs the base's value of every target)`);
  if (b.shape.join() !== t.shape.join()) throw new PruneOptionError('base', `${t.name} is [${b.shape.join(', ')}] in ${baseFile} but [${t.shape.join(', ')}] in ${checkpoint}`);
}
