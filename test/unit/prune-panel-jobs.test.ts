// The prune job kinds' parameter checks in the worker (src/worker/jobs/prune-sweep.ts, prune-apply.ts): every bad
// request fails with InvalidJobParamsError naming the parameter, before the job asks for the GPU (the fake context
// rejects any GPU use); the host part's wording (src/host/jobs/kinds/prune.ts) needs vscode and is covered by the
// vscode tier.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { JobKind, JobParams } from '../../src/protocol/worker';
import { InvalidJobParamsError, JobCancelledError, handlerFor, type JobContext } from '../../src/worker/jobs';
import { defaultPruneOut } from '../../src/worker/jobs/prune-apply';
import { checkSweepDensities, newSweepFile } from '../../src/worker/jobs/prune-sweep';

function fakeContext<K extends JobKind>(): JobContext<K> {
  const cts = new CancellationTokenSource();
  return {
    jobId: 'prune-test-1',
    token: cts.token,
    throwIfCancelled() {
      if (cts.token.isCancellationRequested) throw new JobCancelledError('prune-test-1');
    },
    progress: () => undefined,
    log: () => undefined,
    gpu: () => Promise.reject(new Error('no GPU in the unit tier: the parameter check should have failed first')),
    sendBinary: () => false,
  };
}

async function refused<K extends 'prune-sweep' | 'prune-apply'>(kind: K, params: unknown, re: RegExp): Promise<void> {
  const h = handlerFor(kind)!;
  assert.ok(h, kind);
  await assert.rejects(
    () => h(params as JobParams<K>, fakeContext() as unknown as JobContext<JobKind>),
    (e: Error) => {
      assert.ok(e instanceof InvalidJobParamsError, `${e.name}: ${e.message}`);
      assert.match(e.message, re);
      return true;
    },
  );
}

describe('prune jobs: parameter checks before the GPU', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-prune-jobs-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('prune-sweep: scores, densities, source, file, granularity and pattern are checked', async () => {
    const src = path.join(tmp, 'nothing-here');
    await refused('prune-sweep', { source: src, scores: [] }, /scores must be a non-empty list/);
    await refused('prune-sweep', { source: src, scores: ['nope'] }, /scores\[0\].*nope/);
    await refused('prune-sweep', { source: src, scores: ['random'], scoreParams: { random: { seed: -1 } } }, /scores\[0\].*seed/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], densities: [0.5, 0] }, /densities\[1\].*outside \(0, 1\]/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], densities: [] }, /densities must be a list/);
    await refused('prune-sweep', { source: 'relative/run', scores: ['magnitude'] }, /source must be an absolute path/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], file: 'x.json' }, /file must be an absolute path/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], granularity: 'layer' }, /granularity.*"layer" is not one of row, tensor, global/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], pattern: '4:2' }, /pattern.*1 ≤ N < M/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], targets: [] }, /targets must be a non-empty list/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'], step: 1.5 }, /step must be a non-negative integer/);
    await refused('prune-sweep', { source: src, scores: ['magnitude'] }, /does not exist/);
  });

  it('prune-apply: score, density and out are checked', async () => {
    const src = path.join(tmp, 'nothing-here');
    await refused('prune-apply', { source: src, score: '', density: 0.5 }, /score must be a score name/);
    await refused('prune-apply', { source: src, score: 'magnitude', density: 0 }, /density must be a number in \(0, 1\]/);
    await refused('prune-apply', { source: src, score: 'magnitude', density: 1.01 }, /density must be a number in \(0, 1\]/);
    await refused('prune-apply', { source: src, score: 'magnitude', density: 0.5, out: 'rel' }, /out must be an absolute folder path/);
    await refused('prune-apply', { source: src, score: 'magnitude', density: 0.5 }, /does not exist/);
  });

  it('sorts and dedupes densities, defaults to the standard list, and names new files and output folders', () => {
    assert.deepEqual(checkSweepDensities([0.2, 1, 0.5, 0.5]), [1, 0.5, 0.2]);
    assert.equal(checkSweepDensities(undefined)[0], 1);
    const when = new Date(2026, 0, 2, 3, 4, 5);
    const f = newSweepFile(tmp, when);
    assert.equal(f, path.join(tmp, 'prune', 'sweep-20260102-030405.json'));
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '{}');
    assert.equal(newSweepFile(tmp, when), path.join(tmp, 'prune', 'sweep-20260102-030405-1.json'), 'a second sweep in the same second gets a suffix');
    assert.equal(defaultPruneOut('/r', 'wanda', 0.4, 30), path.join('/r', 'prune', 'wanda-d40-step30'));
    assert.equal(defaultPruneOut('/r', 'magnitude', 0.5, 7, '2:4'), path.join('/r', 'prune', 'magnitude-2of4-step7'));
  });
});
