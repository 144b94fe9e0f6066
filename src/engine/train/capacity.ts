// Will this model and loss fit the device? Checked from the config alone, before any tensor is allocated, so a
// catalog (or vocabulary) too large for the adapter is refused with the figures and what to change — never a Dawn
// validation error, an out-of-memory device loss, or a host `RangeError` from building a multi-GB init array.
//
// Three limits, each a hard fact of the device or the host:
//   1. One flat buffer holds every parameter (src/engine/optim/params.ts), and another the gradients: its bytes must
//      not exceed the adapter's maxBufferSize. For a recommender that is the item table [items + 1, hidden].
//   2. Full cross-entropy forms the logits [rows, classes] in pieces of 64-row multiples, one storage binding each
//      (src/engine/ops/loss.ts crossEntropyOverHead): 64 × classes × 4 bytes must not exceed
//      maxStorageBufferBindingSize. The fused losses (cce, cce-minus, sampled) never form them: the error says so.
//   3. A software adapter (lavapipe, SwiftShader, WARP) allocates "GPU" buffers in host memory: parameters,
//      gradients, the optimizer's dense state and full cross-entropy's logits must fit in it. Real GPUs don't tell
//      WebGPU how much memory they have, so there the first two checks are all we can do before the allocation.
import * as os from 'node:os';
import type { TrainConfig } from '../../files/config/schema';
import { modelRegistry } from '../../files/registry/models';
import { fmtBytes } from '../tensor/tensor';
import { headRowsPerPiece } from '../ops/loss';

export class DeviceCapacityError extends Error {
  constructor(
    message: string,
    /** The config field to blame: `model.items` for a table too large, `train.loss` for logits. */
    readonly field: (string | number)[],
    readonly neededBytes: number,
    readonly limitBytes: number,
  ) {
    super(message);
    this.name = 'DeviceCapacityError';
  }
}

/** What the check needs to know about the device: its limits and whether its memory is the host's. */
export interface DeviceCapacity {
  maxBufferSize: number;
  maxBindingBytes: number;
  /** Host memory a software adapter can use (bytes), null on a real GPU (WebGPU does not report its memory). */
  hostMemoryBytes: number | null;
}

export function deviceCapacity(rt: { limits: Record<string, number>; maxBindingBytes: number; gpu: { info: { fallback?: boolean } } }): DeviceCapacity {
  return {
    maxBufferSize: rt.limits.maxBufferSize ?? Number.POSITIVE_INFINITY,
    maxBindingBytes: rt.maxBindingBytes,
    hostMemoryBytes: rt.gpu.info.fallback ? os.totalmem() : null,
  };
}

/** Dense optimizer state, in f32 values per parameter (factored or low-rank states are small: counted as 0). */
const DENSE_STATE_PER_PARAM: Record<string, (opt: Record<string, unknown>) => number> = {
  adamw: () => 2,
  sgd: (o) => (Number(o.momentum ?? 0) > 0 ? 1 : 0),
  adafactor: (o) => (Number(o.beta1 ?? 0) > 0 ? 1 : 0),
  mao: (o) => (o.errorFeedback === false ? 0 : o.errorFeedbackPrecision === 'f32' ? 1 : 0.5), // E, bf16 by default
};

/** Rows of logits one training batch produces: every position of every sequence, or one per example. */
function logitRows(config: TrainConfig): number {
  const m = config.model as unknown as Record<string, number | string>;
  const perExample = m.type === 'sasrec' ? Number(m.maxLen) : m.type === 'transformer' ? Number(m.seqLen) : 1;
  return config.train.batchSize * perExample;
}

function classesOf(config: TrainConfig): { classes: number; what: string; field: (string | number)[] } {
  const m = config.model as unknown as Record<string, number | string>;
  if (m.type === 'sasrec') return { classes: Number(m.items) + 1, what: `a catalog of ${Number(m.items).toLocaleString('en-US')} items`, field: ['model', 'items'] };
  if (m.type === 'transformer') return { classes: Number(m.vocab), what: `a vocabulary of ${Number(m.vocab).toLocaleString('en-US')} tokens`, field: ['model', 'vocab'] };
  return { classes: Number(m.classes), what: `${Number(m.classes).toLocaleString('en-US')} classes`, field: ['model', 'classes'] };
}

/** Throws a DeviceCapacityError when the config cannot train on a device with these limits. */
export function checkTrainingFits(config: TrainConfig, cap: DeviceCapacity): void {
  const params = modelRegistry.get(config.model.type).parameters(config.model as never);
  const paramBytes = params * 4;
  const { classes, what, field } = classesOf(config);
  const hidden = Number((config.model as unknown as Record<string, number>).hidden ?? (config.model as unknown as Record<string, number>).dModel ?? 0);
  const tableNote = hidden ? ` (${what} × hidden ${hidden} is ${fmtBytes(classes * hidden * 4)} of it)` : '';
  const shrink = config.model.type === 'sasrec'
    ? 'Shrink the catalog (data.maxItems, data.kCore, data.minRating) or model.hidden, or train on a device with a larger limit.'
    : 'Use a smaller model, or a device with a larger limit.';

  // 1. The flat parameter (and gradient) buffer.
  if (paramBytes > cap.maxBufferSize) {
    throw new DeviceCapacityError(
      `the model's ${params.toLocaleString('en-US')} parameters need ${fmtBytes(paramBytes)} in one buffer${tableNote}, ` +
        `over this device's maxBufferSize of ${fmtBytes(cap.maxBufferSize)}. ${shrink}`,
      field,
      paramBytes,
      cap.maxBufferSize,
    );
  }

  // 2. Full cross-entropy forms its logits in pieces of rows, a multiple of 64 rows per binding (ops/loss.ts).
  const fullCe = config.train.loss.type === 'cross-entropy';
  const rows = logitRows(config);
  const logitBytes = fullCe ? rows * classes * 4 : 0;
  const useCce = `Use a loss that never forms them (type: cce — exact, the same loss — or cce-minus / sampled-softmax)`;
  if (fullCe && headRowsPerPiece(cap.maxBindingBytes, classes) === 0) {
    throw new DeviceCapacityError(
      `full cross-entropy over ${what} forms logits [${rows.toLocaleString('en-US')} rows, ${classes.toLocaleString('en-US')}] in pieces of ` +
        `64-row multiples, each in one storage binding, but 64 rows of them are ${fmtBytes(64 * classes * 4)}, over this device's ` +
        `maxStorageBufferBindingSize of ${fmtBytes(cap.maxBindingBytes)}. ${useCce}.`,
      ['train', 'loss'],
      64 * classes * 4,
      cap.maxBindingBytes,
    );
  }

  // 3. Host memory behind a software adapter: parameters, gradients and the optimizer's dense state.
  if (cap.hostMemoryBytes !== null) {
    const opt = config.train.optimizer as unknown as Record<string, unknown> & { type: string };
    const stateFloats = (DENSE_STATE_PER_PARAM[opt.type] ?? (() => 2))(opt);
    const weights = paramBytes * (2 + stateFloats);
    // Full cross-entropy keeps every logit of the step for its backward.
    const needed = weights + logitBytes;
    if (needed > cap.hostMemoryBytes) {
      if (logitBytes > weights) {
        throw new DeviceCapacityError(
          `full cross-entropy over ${what} keeps logits [${rows.toLocaleString('en-US')} rows, ${classes.toLocaleString('en-US')}] = ${fmtBytes(logitBytes)} ` +
            `for each step's backward (${fmtBytes(needed)} with the parameters); this software adapter allocates GPU buffers in host memory, ` +
            `which has ${fmtBytes(cap.hostMemoryBytes)}. ${useCce}, or fewer rows per batch (train.batchSize${config.model.type === 'mlp' ? '' : ' × sequence length'}).`,
          ['train', 'loss'],
          needed,
          cap.hostMemoryBytes,
        );
      }
      throw new DeviceCapacityError(
        `the model's ${params.toLocaleString('en-US')} parameters${tableNote} need about ${fmtBytes(needed)} with their gradients and ` +
          `${opt.type}'s state${logitBytes ? ' (and the cross-entropy logits)' : ''}; this software adapter allocates GPU buffers in host memory, which has ${fmtBytes(cap.hostMemoryBytes)}. ${shrink}`,
        field,
        needed,
        cap.hostMemoryBytes,
      );
    }
  }
}
