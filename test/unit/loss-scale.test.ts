// The dynamic loss scaler's rules (src/engine/train/loss-scale.ts, the CPU reference of kernels/loss_scale.wgsl)
// and the state file saved beside each checkpoint; the precision plan (f32 fallback without shader-f16).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Runtime } from '../../src/engine/gpu/runtime';
import { describePrecision, planPrecision } from '../../src/engine/train/mixed-precision';
import { LOSS_SCALE_DEFAULTS, LossScaleRules, MAX_LOSS_SCALE, lossScalePath, readLossScaleState, resolveLossScale, writeLossScaleState } from '../../src/engine/train/loss-scale';

describe('loss scaling rules', () => {
  it('defaults: S = 2^15, growth after 2000 good steps, minimum 1', () => {
    assert.deepEqual(resolveLossScale(), { initial: 32768, growthInterval: 2000, minScale: 1 });
    assert.deepEqual(resolveLossScale({ growthInterval: undefined }), { ...LOSS_SCALE_DEFAULTS });
    assert.equal(new LossScaleRules().state.scale, 32768);
  });

  it('an overflow skips the step, halves S and restarts the count of good steps', () => {
    const r = new LossScaleRules({ initial: 1024, growthInterval: 3 });
    assert.equal(r.update(1, true), 'step');
    assert.equal(r.update(2, true), 'step');
    assert.equal(r.state.goodSteps, 2);
    assert.equal(r.update(3, false), 'skip');
    assert.deepEqual(r.state, { scale: 512, goodSteps: 0, skipped: 1, lastSkippedStep: 3 });
    // Two more good steps are not enough: the count restarted at the overflow.
    r.update(4, true);
    r.update(5, true);
    assert.equal(r.state.scale, 512);
    r.update(6, true);
    assert.deepEqual(r.state, { scale: 1024, goodSteps: 0, skipped: 1, lastSkippedStep: 3 });
  });

  it('S doubles after every growthInterval good steps, up to 2^24', () => {
    const r = new LossScaleRules({ initial: 2 ** 22, growthInterval: 2 });
    const seen: number[] = [];
    for (let s = 1; s <= 8; s++) {
      r.update(s, true);
      seen.push(r.state.scale);
    }
    assert.deepEqual(seen, [2 ** 22, 2 ** 23, 2 ** 23, 2 ** 24, 2 ** 24, 2 ** 24, 2 ** 24, 2 ** 24]);
    assert.equal(MAX_LOSS_SCALE, 2 ** 24);
  });

  it('below minScale the outcome is stop (the trainer then raises its non-finite error)', () => {
    const r = new LossScaleRules({ initial: 4, minScale: 1 });
    assert.equal(r.update(1, false), 'skip'); // 2
    assert.equal(r.update(2, false), 'skip'); // 1: not below the minimum
    assert.equal(r.update(3, false), 'stop'); // 0.5
    assert.deepEqual(r.state, { scale: 0.5, goodSteps: 0, skipped: 3, lastSkippedStep: 3 });
  });

  it('a scale that is not a power of two halves and doubles in f32 like the kernel', () => {
    const r = new LossScaleRules({ initial: 1000.1, growthInterval: 1 });
    r.update(1, false);
    assert.equal(r.state.scale, Math.fround(Math.fround(1000.1) * 0.5));
    r.update(2, true);
    assert.equal(r.state.scale, Math.fround(1000.1));
  });

  it('bad options name the field and the value', () => {
    assert.throws(() => resolveLossScale({ initial: 0 }), /train\.lossScale\.initial must be a number in \(0, 2\^24\], got 0/);
    assert.throws(() => resolveLossScale({ initial: 2 ** 25 }), /initial must be a number in \(0, 2\^24\], got 33554432/);
    assert.throws(() => resolveLossScale({ initial: NaN }), /initial/);
    assert.throws(() => resolveLossScale({ growthInterval: 0 }), /train\.lossScale\.growthInterval must be an integer ≥ 1, got 0/);
    assert.throws(() => resolveLossScale({ growthInterval: 2.5 }), /growthInterval/);
    assert.throws(() => resolveLossScale({ minScale: -1 }), /train\.lossScale\.minScale must be a number in \(0, initial\], got -1/);
    assert.throws(() => resolveLossScale({ initial: 8, minScale: 16 }), /minScale .* got 16 \(initial 8\)/);
  });
});

describe('loss scale state beside a checkpoint', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-ls-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sits beside the weights file and round-trips exactly', async () => {
    assert.equal(lossScalePath('checkpoints/step-12.safetensors'), 'checkpoints/step-12.loss-scale.json');
    const f = path.join(dir, 'a.json');
    const s = { scale: 2 ** 21, goodSteps: 7, skipped: 3, lastSkippedStep: 40 };
    await writeLossScaleState(f, s);
    assert.deepEqual(await readLossScaleState(f), s);
  });

  it('a missing file is null (a checkpoint of an f32 run); a damaged one is an error naming the file and field', async () => {
    assert.equal(await readLossScaleState(path.join(dir, 'none.json')), null);
    const f = path.join(dir, 'bad.json');
    fs.writeFileSync(f, '{"scale": -1, "goodSteps": 0, "skipped": 0, "lastSkippedStep": 0}');
    await assert.rejects(readLossScaleState(f), new RegExp(`${f.replace(/[.\\/]/g, '\\$&')}: "scale" must be a positive finite number, got -1`));
    fs.writeFileSync(f, '{"scale": 8, "goodSteps": 1.5, "skipped": 0, "lastSkippedStep": 0}');
    await assert.rejects(readLossScaleState(f), /"goodSteps" must be an integer ≥ 0, got 1\.5/);
    fs.writeFileSync(f, '{"scale": 8,');
    await assert.rejects(readLossScaleState(f), /bad\.json: not JSON/);
  });
});

describe('precision plan', () => {
  // A stand-in for the runtime: planPrecision reads only whether the device and the adapter have shader-f16.
  const fakeRt = (device: boolean, adapter: boolean) =>
    ({ hasF16: device, gpu: { info: { description: 'llvmpipe', vendor: 'mesa' }, adapter: { features: new Set(adapter ? ['shader-f16'] : []) } } }) as unknown as Runtime;

  it('mixed on a device with shader-f16 is mixed; f32 (or nothing) is f32', () => {
    assert.deepEqual(planPrecision(fakeRt(true, true), { precision: 'mixed' }), { requested: 'mixed', used: 'mixed' });
    assert.deepEqual(planPrecision(fakeRt(true, true), { precision: 'f32' }), { requested: 'f32', used: 'f32' });
    assert.deepEqual(planPrecision(fakeRt(false, false), {} as { precision: 'f32' }), { requested: 'f32', used: 'f32' });
  });

  it('mixed without shader-f16 falls back to f32 and says why: the adapter lacks it, or the device was made without it', () => {
    const none = planPrecision(fakeRt(false, false), { precision: 'mixed' });
    assert.deepEqual([none.requested, none.used], ['mixed', 'f32']);
    assert.equal(none.reason, 'llvmpipe has no shader-f16 feature, so this run trains in f32');
    assert.equal(describePrecision(none), 'precision f32 (train.precision is mixed: llvmpipe has no shader-f16 feature, so this run trains in f32)');
    const withheld = planPrecision(fakeRt(false, true), { precision: 'mixed' });
    assert.match(withheld.reason ?? '', /^the device was created without llvmpipe's shader-f16 feature \(withheld on request/);
  });

  it('describes a mixed run with its layers and scale', () => {
    assert.equal(
      describePrecision({ requested: 'mixed', used: 'mixed', halfLayers: 7, lossScale: 32768 }),
      'precision mixed: f16 products in 7 Linear layers with f32 sums, f32 master weights, loss scale 32768',
    );
  });
});
