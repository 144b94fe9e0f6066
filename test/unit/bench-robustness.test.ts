// The pure arithmetic of `basin bench lr-robustness` and `basin bench forgetting`: spreads over an lr grid, the
// AdamW-over-mao ratio, the retained fraction and the λ choice. (The benches themselves train on the GPU.)
import { strict as assert } from 'node:assert';
import { defaultLr, LR_MULTIPLIERS, lrSpread, spreadRatio } from '../../bench/lr-robustness';
import { pickBest, retainedFraction } from '../../bench/forgetting';

describe('bench lr-robustness: spread over the lr grid', () => {
  it('is max − min of the finished runs, with worst/best', () => {
    const s = lrSpread([2.5, 2.0, 1.6, 1.8, 3.2]);
    assert.ok(Math.abs(s.spread! - 1.6) < 1e-12);
    assert.equal(s.best, 1.6);
    assert.equal(s.worst, 3.2);
    assert.ok(Math.abs(s.worstOverBest! - 2) < 1e-12);
    assert.equal(s.diverged, 0);
  });
  it('counts diverged runs (null or non-finite) instead of folding them in', () => {
    const s = lrSpread([1.5, null, 2, NaN, Infinity]);
    assert.equal(s.spread, 0.5);
    assert.equal(s.diverged, 3);
  });
  it('has no spread when every run diverged, and zero for a single run', () => {
    assert.deepEqual(lrSpread([null, null]), { spread: null, worstOverBest: null, best: null, worst: null, diverged: 2 });
    assert.equal(lrSpread([1.7]).spread, 0);
    assert.equal(lrSpread([1.7]).worstOverBest, 1);
  });
  it('orients the AdamW/mao ratio so > 1 means mao is more robust', () => {
    assert.equal(spreadRatio(0.6, 0.3), 2);
    assert.ok(spreadRatio(0.2, 0.6)! < 1);
    assert.equal(spreadRatio(0.2, 0), null);
    assert.equal(spreadRatio(null, 0.2), null);
  });
  it('takes ×1 from the optimizer registry and spans ×0.1 … ×10', () => {
    assert.ok(defaultLr('adamw') > 0 && defaultLr('mao') > 0);
    assert.deepEqual([...LR_MULTIPLIERS], [0.1, 0.3, 1, 3, 10]);
    assert.throws(() => defaultLr('no-such-optimizer'), /no-such-optimizer/);
  });
});

describe('bench forgetting: retained fraction and λ choice', () => {
  it('is after ÷ before, null when nothing was learnt', () => {
    assert.equal(retainedFraction(0.8, 0.4), 0.5);
    assert.equal(retainedFraction(0.5, 0.5), 1);
    assert.equal(retainedFraction(0, 0.3), null);
    assert.equal(retainedFraction(0.5, NaN), null);
  });
  it('picks the best mean of the two tasks, first on ties', () => {
    assert.equal(pickBest([[0.9, 0.1], [0.5, 0.6], [0.2, 0.8]]), 1);
    assert.equal(pickBest([[0.5, 0.5], [0.6, 0.4]]), 0);
    assert.equal(pickBest([]), -1);
  });
});
