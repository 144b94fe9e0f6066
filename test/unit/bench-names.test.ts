// `basin bench`'s list of names is the one its help and errors print: every name has a case, every case a name.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_NAMES, benchSizes } from '../../src/cli/bench';

describe('basin bench names', () => {
  it('BENCH_NAMES equals the switch cases of benchCommand', () => {
    const src = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'cli', 'bench.ts'), 'utf8');
    const cases = [...src.matchAll(/^\s+case '([a-z0-9-]+)':/gm)].map((m) => m[1]);
    assert.deepEqual([...cases].sort(), [...BENCH_NAMES].sort());
  });
});

describe('basin bench size options', () => {
  it('parse the headline catalog, tokens, a merge shape and reps', () => {
    assert.deepEqual(benchSizes('loss', { catalogs: '100000', tokens: '4096' }), { catalogs: [100_000], tokens: 4096 });
    assert.deepEqual(benchSizes('loss', { catalogs: '10000,100000' }), { catalogs: [10_000, 100_000] });
    assert.deepEqual(benchSizes('merge', { shape: '8x2048', reps: '2' }), { shape: { matrices: 8, dim: 2048 }, reps: 2 });
    assert.deepEqual(benchSizes('matmul', {}), {});
    assert.deepEqual(benchSizes('sasrec', { steps: '1000' }), { steps: 1000 });
    assert.deepEqual(benchSizes('sasrec', { steps: '1000', seeds: '3' }), { steps: 1000, seeds: 3 });
    assert.deepEqual(benchSizes('sasrec', { losses: 'ce, cce-minus' }), { losses: ['ce', 'cce_minus'] });
    assert.deepEqual(benchSizes('sasrec', { seeds: '2,3' }), { seedList: [2, 3] });
    assert.throws(() => benchSizes('sasrec', { seeds: '2,x' }), /--seeds: expected a positive integer, got "x"/);
    assert.deepEqual(benchSizes('optimizer-quality', { steps: '60' }), { steps: 60 });
  });

  it('refuse bad values and an option of another benchmark, naming the flag', () => {
    assert.throws(() => benchSizes('loss', { catalogs: '10k' }), /--catalogs: expected a positive integer, got "10k"/);
    assert.throws(() => benchSizes('loss', { catalogs: '1' }), /at least 2 items/);
    assert.throws(() => benchSizes('loss', { tokens: '0' }), /--tokens: expected a positive integer/);
    assert.throws(() => benchSizes('merge', { shape: '2048' }), /--shape: expected <matrices>x<dim>/);
    assert.throws(() => benchSizes('merge', { catalogs: '100' }), /--catalogs is an option of `basin bench loss`, not of merge/);
    assert.throws(() => benchSizes('loss', { reps: '2' }), /--reps is an option of `basin bench merge`/);
    assert.throws(() => benchSizes('loss', { whole: true }), /--whole is an option of `basin bench merge`/);
    assert.throws(() => benchSizes('loss', { steps: '10' }), /--steps is an option of `basin bench sasrec` and `basin bench optimizer-quality`, not of loss/);
    assert.throws(() => benchSizes('sasrec', { steps: '-1' }), /--steps: expected a positive integer/);
    assert.throws(() => benchSizes('loss', { seeds: '2' }), /--seeds is an option of `basin bench sasrec`, not of loss/);
    assert.throws(() => benchSizes('sasrec', { seeds: '0' }), /--seeds: expected a positive integer/);
    assert.throws(() => benchSizes('merge', { losses: 'ce' }), /--losses is an option of `basin bench sasrec`, not of merge/);
    assert.throws(() => benchSizes('sasrec', { losses: ' , ' }), /--losses: expected loss names/);
    assert.throws(() => benchSizes('sasrec', { variants: true }), /--variants is an option of `basin bench optimizer-quality`, not of sasrec/);
  });
});
