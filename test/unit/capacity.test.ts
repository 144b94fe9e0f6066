// The device-capacity check (src/engine/train/capacity.ts): a catalog or vocabulary too large for the adapter is
// refused from the config alone, with the figures and the field to change.
import * as assert from 'node:assert/strict';
import { checkTrainingFits, DeviceCapacityError, type DeviceCapacity } from '../../src/engine/train/capacity';
import { parseConfig } from '../../src/files/config/load';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const lavapipe: DeviceCapacity = { maxBufferSize: 4 * GiB, maxBindingBytes: 128 * MiB, hostMemoryBytes: 24 * GiB };
const bigGpu: DeviceCapacity = { maxBufferSize: 64 * GiB, maxBindingBytes: 2 * GiB, hostMemoryBytes: null };

function sasrec(items: number, loss: string, opts: { hidden?: number; optimizer?: string; batchSize?: number } = {}) {
  return parseConfig(
    `name: cap
model: { type: sasrec, items: ${items}, hidden: ${opts.hidden ?? 64}, blocks: 2, heads: 1, maxLen: 200 }
data: { type: synthetic-sequences, sequences: 100, length: 9, vocab: 41 }
train:
  steps: 10
  batchSize: ${opts.batchSize ?? 128}
  optimizer: { type: ${opts.optimizer ?? 'adamw'}, lr: 0.001 }
  loss: { type: ${loss} }
`,
    'cap.basin.yaml',
  );
}

function refusal(fn: () => void): DeviceCapacityError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DeviceCapacityError, `expected a DeviceCapacityError, got ${(e as Error).stack}`);
    return e;
  }
  assert.fail('expected a refusal');
}

describe('device capacity (capacity.ts)', () => {
  it('fits: ml-latest-small sized SASRec with CCE− on lavapipe, and a 1 M catalog with CCE on a big GPU', () => {
    checkTrainingFits(sasrec(9_000, 'cce-minus'), lavapipe);
    checkTrainingFits(sasrec(1_000_000, 'cce'), bigGpu);
  });

  it('refuses an item table above maxBufferSize, naming the catalog, its bytes, the limit and model.items', () => {
    // 20 M items × 64 × 4 B = 5.1 GB > 4 GiB.
    const e = refusal(() => checkTrainingFits(sasrec(20_000_000, 'cce-minus'), lavapipe));
    assert.deepEqual(e.field, ['model', 'items']);
    assert.match(e.message, /20,000,000 items/);
    assert.match(e.message, /4883\.1 MiB in one buffer .*maxBufferSize of 4096\.0 MiB/);
    assert.match(e.message, /data\.maxItems/);
    assert.ok(e.neededBytes > e.limitBytes && e.limitBytes === 4 * GiB);
  });

  it('full cross-entropy: logits above one binding run in pieces; refused when 64 rows exceed a binding, pointing at cce', () => {
    // 128 × 200 rows × 100,001 items × 4 B = 10.2 GB of logits: in pieces of 320 rows, within 24 GiB of host memory.
    checkTrainingFits(sasrec(100_000, 'cross-entropy'), lavapipe);
    // 64 rows × 1,000,001 items × 4 B = 256 MB, over a 128 MiB binding.
    const e = refusal(() => checkTrainingFits(sasrec(1_000_000, 'cross-entropy'), lavapipe));
    assert.deepEqual(e.field, ['train', 'loss']);
    assert.match(e.message, /logits \[25,600 rows, 1,000,001\]/);
    assert.match(e.message, /64 rows of them are 244\.1 MiB, over this device's maxStorageBufferBindingSize of 128\.0 MiB/);
    assert.match(e.message, /type: cce/);
    // The same catalog with the fused loss fits.
    checkTrainingFits(sasrec(1_000_000, 'cce'), lavapipe);
    checkTrainingFits(sasrec(1_000_000, 'cross-entropy', { batchSize: 2 }), bigGpu);
  });

  it('on a software adapter, refuses full cross-entropy whose kept logits exceed host memory, on train.loss', () => {
    const small = { ...lavapipe, hostMemoryBytes: 8 * GiB };
    const e = refusal(() => checkTrainingFits(sasrec(100_000, 'cross-entropy'), small));
    assert.deepEqual(e.field, ['train', 'loss']);
    assert.match(e.message, /keeps logits \[25,600 rows, 100,001\] = 9765\.7 MiB/);
    assert.match(e.message, /host memory/);
    assert.match(e.message, /type: cce/);
    checkTrainingFits(sasrec(100_000, 'cross-entropy', { batchSize: 32 }), small);
  });

  it('on a software adapter, refuses parameters + gradients + optimizer state above host memory; counts the optimizer', () => {
    // 12 M × 64 × 4 B = 3.07 GB of parameters: under maxBufferSize; × 4 with AdamW = 12.3 GB.
    const small = { ...lavapipe, hostMemoryBytes: 8 * GiB };
    const e = refusal(() => checkTrainingFits(sasrec(12_000_000, 'cce-minus'), small));
    assert.match(e.message, /adamw's state/);
    assert.match(e.message, /host memory/);
    // mao keeps no dense state for the table: parameters + gradients = 6.1 GB fit in 8 GiB.
    checkTrainingFits(sasrec(12_000_000, 'cce-minus', { optimizer: 'mao' }), small);
    // A real GPU does not report its memory: only the hard limits apply.
    checkTrainingFits(sasrec(12_000_000, 'cce-minus'), { ...bigGpu, hostMemoryBytes: null });
  });
});
