// The pure arithmetic of `basin bench optimizer-quality`: the validation-loss ratio against AdamW. (The bench
// itself trains on the GPU.)
import { strict as assert } from 'node:assert';
import { lossRatio, QUALITY_OPTIMIZERS } from '../../bench/optimizer-quality';
import { defaultLr } from '../../bench/lr-robustness';

describe('bench optimizer-quality: validation loss against AdamW', () => {
  it('is the optimizer\'s loss ÷ AdamW\'s (≤ 1: as good or better)', () => {
    assert.equal(lossRatio(2.04, 2), 1.02);
    assert.ok(lossRatio(1.9, 2)! < 1);
    assert.equal(lossRatio(2, 2), 1);
  });
  it('is null when either run did not finish or AdamW\'s loss is not positive', () => {
    assert.equal(lossRatio(null, 2), null);
    assert.equal(lossRatio(2, null), null);
    assert.equal(lossRatio(NaN, 2), null);
    assert.equal(lossRatio(2, 0), null);
  });
  it('runs AdamW, Adafactor and mao, each with a default lr from the registry', () => {
    assert.deepEqual([...QUALITY_OPTIMIZERS], ['adamw', 'adafactor', 'mao']);
    for (const o of QUALITY_OPTIMIZERS) assert.ok(defaultLr(o) > 0, o);
  });
});
