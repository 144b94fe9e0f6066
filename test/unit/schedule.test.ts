import * as assert from 'node:assert/strict';
import { constant, makeSchedule, warmupCosine } from '../../src/engine/optim/schedule';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a}, expected ${b}`);

describe('learning-rate schedules', () => {
  it('constant, with and without warmup', () => {
    const c = constant(3e-4);
    for (const s of [0, 1, 2, 1000]) assert.equal(c(s), 3e-4);
    const w = constant(0.1, 4);
    close(w(0), 0, 'step 0');
    close(w(1), 0.025, 'first update');
    close(w(2), 0.05, 'step 2');
    close(w(4), 0.1, 'end of warmup');
    close(w(50), 0.1, 'after warmup');
  });

  it('warmup then cosine to minLrRatio·lr at totalSteps', () => {
    const lr = 1e-3;
    const f = warmupCosine(lr, { warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 });
    close(f(0), 0, 'warmup starts at 0');
    close(f(1), 1e-4, 'first update is lr/warmup');
    close(f(5), 5e-4, 'linear warmup');
    close(f(10), lr, 'peak at warmupSteps');
    close(f(60), 0.55e-3, 'halfway down the cosine is the mean of lr and lr_min');
    close(f(35), 1e-4 + 0.45e-3 * (1 + Math.cos(Math.PI / 4)), 'a quarter down the cosine');
    close(f(110), 1e-4, 'lr_min at totalSteps');
    close(f(500), 1e-4, 'lr_min after totalSteps');
    for (let s = 10; s < 110; s++) assert.ok(f(s + 1) < f(s), `not decreasing at ${s}`);
    for (let s = 0; s < 10; s++) assert.ok(f(s + 1) > f(s), `not increasing in warmup at ${s}`);
  });

  it('defaults: no warmup, minLrRatio 0.1', () => {
    const f = warmupCosine(2, { totalSteps: 100 });
    close(f(0), 2, 'no warmup');
    close(f(100), 0.2, 'default lr_min');
    const z = warmupCosine(2, { totalSteps: 100, minLrRatio: 0 });
    close(z(100), 0, 'decays to zero');
  });

  it('makeSchedule builds both kinds from a config, and bad configs throw', () => {
    close(makeSchedule({ kind: 'cosine', lr: 1, warmupSteps: 2, totalSteps: 4, minLrRatio: 0 })(3), 0.5, 'cosine from config');
    close(makeSchedule({ kind: 'constant', lr: 1, warmupSteps: 2 })(1), 0.5, 'constant from config');
    assert.throws(() => warmupCosine(1, { warmupSteps: 10, totalSteps: 5 }), /totalSteps/);
    assert.throws(() => warmupCosine(1, { totalSteps: 5, minLrRatio: 2 }), /minLrRatio/);
    assert.throws(() => constant(-1), /lr/);
    assert.throws(() => constant(1, 1.5), /warmupSteps/);
    assert.throws(() => makeSchedule({ kind: 'linear', lr: 1 } as never), /unknown schedule kind 'linear'/);
  });
});
