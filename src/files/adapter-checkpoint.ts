// Checkpoints of adapter runs (`train.adapters`, src/engine/train/adapters.ts), as files: pure Node, so the host,
// the merge and prune readers and the engine agree on what such a checkpoint is.
//
// An adapter run's `step-N.safetensors` holds the base model's (frozen) tensors AND the adapters
// (`blocks.<i>.adapter_attn.down.weight`, …), with the adapters' config in the header metadata under `adapters`.
// Unlike LoRA there is no merged twin: an adapter is h + up(act(down(h))), non-linear, so it cannot be folded into
// any weight. Whatever wants a plain model from such a checkpoint (merging, pruning) gets AdapterModelError naming
// the run; eval and init.from, which build the model with its adapters (or leave them out), ask for the file itself.
import * as fs from 'node:fs';
import type { TrainSectionConfig } from './config/schema';
import { parseSafetensorsHeader, MAX_HEADER_BYTES, type SafetensorsHeader } from './safetensors';

/** Every adapter tensor's name contains this (the statistics panel recognises adapter tensors by it). */
export const ADAPTER_MARK = '.adapter_';
/** The checkpoint metadata key holding the adapters' config (JSON). */
export const ADAPTERS_METADATA = 'adapters';

/** `train.adapters` after defaults. */
export type AdaptersConfig = NonNullable<TrainSectionConfig['adapters']>;

export const isAdapterParam = (name: string): boolean => name.includes(ADAPTER_MARK);

/** The header of a safetensors file, read synchronously; null when the file is missing or not safetensors. */
function headerSync(file: string): SafetensorsHeader | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) return null;
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n > MAX_HEADER_BYTES || n > size - 8) return null;
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    return parseSafetensorsHeader(json, size, file);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The adapters' config of a checkpoint, or null when it holds no adapter tensor (or is not a readable safetensors
 * file: its reader will say why). Adapter tensors without the metadata (a file rewritten by another tool) throw.
 */
export function checkpointAdapters(file: string): AdaptersConfig | null {
  const h = headerSync(file);
  if (!h || !Object.keys(h.tensors).some(isAdapterParam)) return null;
  const meta = h.metadata?.[ADAPTERS_METADATA];
  if (!meta) throw new Error(`${file} holds adapter tensors (${ADAPTER_MARK}…) but no "${ADAPTERS_METADATA}" metadata saying their size and activation: was it rewritten by another tool?`);
  return JSON.parse(meta) as AdaptersConfig;
}

/** `{ adapters: JSON }`: the metadata an adapter run's checkpoints carry. */
export function adaptersMetadata(cfg: AdaptersConfig): Record<string, string> {
  return { [ADAPTERS_METADATA]: JSON.stringify(cfg) };
}

/** A plain model was asked of an adapter run's checkpoint (merge, prune): there is none, and this says why. */
export class AdapterModelError extends Error {
  constructor(
    readonly file: string,
    /** The run folder the checkpoint belongs to, when it is a run's. */
    readonly runDir: string | null,
    readonly adapters: AdaptersConfig,
  ) {
    const what = runDir ? `the run ${runDir}` : `the checkpoint ${file}`;
    super(
      `${what} was fine-tuned with adapters (train.adapters: size ${adapters.size} after ${adapters.targets.join(' and ')}): its model is the base weights plus ` +
        'bottleneck modules h + up(act(down(h))), which are non-linear and cannot be folded into the weights, so there is no plain model to merge, prune or anchor EWC to' +
        `${runDir ? ` (checkpoint ${file})` : ''}. Evaluate it with \`basin eval\`, or fine-tune from it (init.from loads its base tensors and leaves the adapters out).`,
    );
    this.name = 'AdapterModelError';
  }
}
