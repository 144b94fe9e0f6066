// What a user reads from the `basin` command: the GPU driver's own notices (Dawn prints them from native code
// to stderr) are held back by bin/basin.js unless --verbose is given. Needs dist/cli.js (npm test builds it).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const basin = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/basin.js'), ...args], { encoding: 'utf8', timeout: 120_000 });

describe('basin CLI output', () => {
  it("keeps the driver's chatter out of what a user reads, and shows it with --verbose", function () {
    const plain = basin('gpu-info');
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /^adapter\s/m);
    assert.doesNotMatch(plain.stderr, /artificially reduced/);
    const verbose = basin('--verbose', 'gpu-info');
    assert.equal(verbose.status, 0, verbose.stderr);
    assert.match(verbose.stdout, /^adapter\s/m);
    // Not every driver prints notices; where this one does, --verbose shows them.
    if (/llvmpipe|lavapipe/i.test(verbose.stdout)) assert.match(verbose.stderr, /artificially reduced/);
  });

  it('passes the exit code and the error of a failing command through', () => {
    const r = basin('train', path.join(ROOT, 'no-such.basin.yaml'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no-such\.basin\.yaml:1:1: cannot read the config/);
  });
});
