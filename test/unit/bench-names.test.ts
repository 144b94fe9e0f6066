// `basin bench`'s list of names is the one its help and errors print: every name has a case, every case a name.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_NAMES } from '../../src/cli/bench';

describe('basin bench names', () => {
  it('BENCH_NAMES equals the switch cases of benchCommand', () => {
    const src = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'cli', 'bench.ts'), 'utf8');
    const cases = [...src.matchAll(/^\s+case '([a-z0-9-]+)':/gm)].map((m) => m[1]);
    assert.deepEqual([...cases].sort(), [...BENCH_NAMES].sort());
  });
});
