// Issue 17's bad optimizer input: an unknown optimizer or a bad hyperparameter is a config error with its line.
import * as assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/files/config/load';

function errorOf(optimizer: string): string {
  const text = `name: x\nmodel: { type: transformer }\ndata: { type: synthetic-sequences }\ntrain:\n  optimizer: ${optimizer}\n`;
  try {
    parseConfig(text, 'opt.basin.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, (e as Error).stack);
    return e.message;
  }
  assert.fail(`accepted ${optimizer}`);
}

describe('optimizer config errors', () => {
  it('an unknown optimizer names the known ones, on its line', () => {
    const m = errorOf('{ type: maoo, lr: 0.001 }');
    assert.match(m, /^opt\.basin\.yaml:5:\d+: train\.optimizer\.type: .*"adamw".*"mao".*"maoo"/);
  });
  it('mao: a negative rank and β1 outside [0, 1) are each named with line and column', () => {
    const m = errorOf('{ type: mao, lr: 0.001, rank: -3, betas: [1.2, 0.99] }');
    assert.match(m, /opt\.basin\.yaml:5:\d+: train\.optimizer\.rank: must be >= 1, got -3/);
    assert.match(m, /opt\.basin\.yaml:5:\d+: train\.optimizer\.betas\[0\]: must be < 1, got 1\.2/);
  });
  it('adamw: β2 = 1 and a negative learning rate are refused', () => {
    assert.match(errorOf('{ type: adamw, lr: 0.001, betas: [0.9, 1] }'), /train\.optimizer\.betas\[1\]: must be < 1/);
    assert.match(errorOf('{ type: adamw, lr: -0.1 }'), /train\.optimizer\.lr: must be/);
  });
});
