// A catalog too large for the device is refused by train() with the figure and the config line, before anything
// is read or allocated: never a raw Dawn error (src/engine/train/capacity.ts).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train } from '../../src/engine/train/trainer';
import { ConfigError, loadConfig } from '../../src/files/config/load';
import { runtime } from './helpers';

describe('device capacity in train()', function () {
  this.timeout(120_000);

  it('full cross-entropy where 64 rows of logits exceed the binding limit: a config error on train.loss, no run folder', async () => {
    const rt = await runtime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-capacity-'));
    const file = path.join(dir, 'big.basin.yaml');
    fs.writeFileSync(
      file,
      `name: big-catalog
model: { type: sasrec, items: 5000, hidden: 16, blocks: 1, heads: 1, maxLen: 8 }
data: { type: synthetic-sequences, sequences: 50, length: 9, vocab: 41 }
train:
  steps: 5
  batchSize: 4
  optimizer: { type: adamw, lr: 0.01 }
  loss: { type: cross-entropy }
`,
    );
    // 64 rows × 5001 items × 4 B = 1.28 MB of logits against a 64 kB binding (this adapter's real limit is 128 MiB).
    const prev = rt.setMaxBindingBytes(65536);
    try {
      const { config } = loadConfig(file);
      const out = path.join(dir, 'runs');
      await assert.rejects(
        train({ rt, config, configPath: file, outputDir: out }),
        (e: Error) => {
          assert.ok(e instanceof ConfigError, e.stack);
          assert.match(e.message, /big\.basin\.yaml:8:\d+: train\.loss/);
          assert.match(e.message, /logits \[32 rows, 5,001\]/);
          assert.match(e.message, /type: cce/);
          return true;
        },
      );
      assert.ok(!fs.existsSync(out) || fs.readdirSync(out).length === 0, 'no run folder for a refused config');
    } finally {
      rt.setMaxBindingBytes(prev);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
