// The worker's job registry (src/worker/jobs/index.ts): one handler per kind of the protocol, dispatch by name
// that ignores inherited properties, and the handlers' parameter checks that need no GPU (a bad eval request
// fails before it queues for the GPU).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { JobKind, JobParams } from '../../src/protocol/worker';
import { InvalidJobParamsError, JobCancelledError, handlerFor, jobHandlers, jobKinds, type JobContext } from '../../src/worker/jobs';
import { RunFolder } from '../../src/files/run-record';
import { writeSafetensors } from '../../src/files/safetensors';

interface FakeContext<K extends JobKind> extends JobContext<K> {
  progressed: { data: unknown; fraction?: number; message?: string }[];
  cancel(): void;
}

function fakeContext<K extends JobKind>(): FakeContext<K> {
  const cts = new CancellationTokenSource();
  const progressed: FakeContext<K>['progressed'] = [];
  return {
    jobId: 'test-job-1',
    token: cts.token,
    progressed,
    cancel: () => cts.cancel(),
    throwIfCancelled() {
      if (cts.token.isCancellationRequested) throw new JobCancelledError('test-job-1');
    },
    progress: (data, opts) => progressed.push({ data, ...opts }),
    log: () => undefined,
    gpu: () => Promise.reject(new Error('no GPU in the unit tier: this handler should not have asked for it')),
    sendBinary: () => false,
  };
}

function run<K extends JobKind>(kind: K, params: JobParams<K>, ctx = fakeContext<K>()) {
  const handler = handlerFor(kind);
  assert.ok(handler, `a handler for ${kind}`);
  return handler(params, ctx as unknown as JobContext<JobKind>);
}

describe('worker job registry', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-job-kinds-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('has one handler per kind, found by name; inherited and unknown names are no kinds', () => {
    assert.deepEqual([...jobKinds].sort(), ['eval', 'eval-weights', 'merge', 'prune-apply', 'prune-sweep', 'selfTest', 'train']);
    for (const k of jobKinds) assert.equal(handlerFor(k), jobHandlers[k]);
    for (const bad of ['toString', '__proto__', 'constructor', 'export', '', 42, null, undefined]) assert.equal(handlerFor(bad), undefined, String(bad));
  });

  it('dispatches selfTest: progress per step, a failure on request, cancellation', async () => {
    const ctx = fakeContext<'selfTest'>();
    assert.deepEqual(await run('selfTest', { steps: 3, intervalMs: 1 }, ctx), { steps: 3 });
    assert.deepEqual(ctx.progressed.map((p) => p.data), [{ step: 1 }, { step: 2 }, { step: 3 }]);
    assert.equal(ctx.progressed[2].fraction, 1);
    await assert.rejects(run('selfTest', { steps: 5, intervalMs: 1, failAtStep: 2 }), /failed at step 2/);
    const cancelled = fakeContext<'selfTest'>();
    cancelled.cancel();
    await assert.rejects(run('selfTest', { steps: 5, intervalMs: 1 }, cancelled), JobCancelledError);
  });

  it('train refuses params that cannot work', async () => {
    await assert.rejects(run('train', {}), (e) => e instanceof InvalidJobParamsError && /configPath or resume/.test(e.message));
    await assert.rejects(run('train', { configPath: 'relative.basin.yaml' }), InvalidJobParamsError);
  });

  it('eval refuses a request it cannot serve, before asking for the GPU', async () => {
    const config = {
      name: 'k',
      seed: 1,
      model: { type: 'mlp', inputs: 4, hidden: [4], classes: 2 },
      data: { type: 'synthetic-classification', samples: 64 },
      train: { steps: 10, batchSize: 8, optimizer: { type: 'sgd', lr: 0.1 } },
    };
    const bare = await RunFolder.create(tmp, 'bare', { config });
    const withCkpt = await RunFolder.create(tmp, 'trained', { config });
    await writeSafetensors(withCkpt.resolve(withCkpt.checkpointPath(10)), [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    await withCkpt.addCheckpoint(10);
    const noConfig = await RunFolder.create(tmp, 'noconfig', { config: { name: 'noconfig' } });

    const cases: [JobParams<'eval'>, RegExp][] = [
      [{} as JobParams<'eval'>, /needs runDir/],
      [{ runDir: 'runs/relative' }, /runDir must be an absolute path/],
      [{ runDir: path.join(tmp, 'missing') }, /not a run folder/],
      [{ runDir: bare.dir }, /has no checkpoint to evaluate/],
      [{ runDir: withCkpt.dir, step: 1.5 }, /step must be a non-negative integer/],
      [{ runDir: withCkpt.dir, step: 20 }, /no checkpoint at step 20 \(checkpoints: 10\)/],
      [{ runDir: noConfig.dir }, /records no training config/],
    ];
    for (const [params, why] of cases) {
      await assert.rejects(run('eval', params), (e) => e instanceof InvalidJobParamsError && why.test(e.message), JSON.stringify(params));
    }
  });
});
