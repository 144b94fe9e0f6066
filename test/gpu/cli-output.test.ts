// What a user reads from the `basin` command: the GPU driver's own notices (Dawn prints them from native code
// to stderr) are held back by bin/basin.js unless --verbose is given. Needs dist/cli.js (npm test builds it).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
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

  it("a training that fails over its data (not the GPU) shows no driver notices, though its header names the GPU", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-cli-nan-'));
    try {
      const cfg = path.join(dir, 'nan.basin.yaml');
      fs.writeFileSync(
        cfg,
        'name: nan\nmodel: { type: mlp, inputs: 4, hidden: [8], classes: 3 }\ndata: { type: synthetic-classification, samples: 64 }\n' +
          'train: { steps: 20, batchSize: 8, optimizer: { type: sgd, lr: 1.0e+30, momentum: 0 }, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: 5 }\noutput: runs\n',
      );
      const r = basin('train', cfg);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\(vulkan\)|\(metal\)|\(d3d12\)/i, 'the header names the GPU and its backend');
      assert.match(r.stderr, /the gradient is not finite at step \d+/);
      assert.doesNotMatch(r.stderr, /the GPU driver said|artificially reduced/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses --from-checkpoint without --resume, saying why', () => {
    const r = basin('train', path.join(ROOT, 'examples/demo.basin.yaml'), '--from-checkpoint', '3');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--from-checkpoint needs --resume <runDir>/);
  });

  it('passes the exit code and the error of a failing command through', () => {
    const r = basin('train', path.join(ROOT, 'no-such.basin.yaml'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no-such\.basin\.yaml:1:1: cannot read the config/);
  });
});

/** State and parent of a process from /proc (Linux; no procps needed). */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const text = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8') as string;
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  const fs = require('node:fs') as typeof import('node:fs');
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => procStat(p)?.ppid === pid);
}

describe('basin CLI process', () => {
  it('the CLI process dies with the filtering wrapper (no orphan keeps writing a run folder)', async function () {
    this.timeout(60_000);
    const { spawn } = await import('node:child_process');
    // `bench` with an unknown name would exit at once; a long GPU command is needed: gpu-info is too quick, so
    // the wrapper is killed while the child is still starting up, and the child must not outlive it.
    const wrapper = spawn(process.execPath, [path.join(ROOT, 'bin/basin.js'), 'train', path.join(ROOT, 'examples/demo.basin.yaml'), '--output', require('node:os').tmpdir()], { stdio: ['ignore', 'ignore', 'pipe'] });
    const childPid = await new Promise<number>((resolve, reject) => {
      const t = setInterval(() => {
        const child = childrenOf(wrapper.pid!)[0];
        if (child) {
          clearInterval(t);
          resolve(child);
        }
      }, 100);
      setTimeout(() => {
        clearInterval(t);
        reject(new Error('no child process'));
      }, 20_000);
    });
    process.kill(wrapper.pid!, 'SIGKILL');
    // A zombie (exited, not yet reaped by whoever inherited it) counts as gone.
    const alive = (pid: number) => procStat(pid)?.state !== undefined && procStat(pid)?.state !== 'Z';
    const t0 = Date.now();
    while (alive(childPid) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(childPid), `the CLI process ${childPid} outlived its wrapper`);
  });
});
