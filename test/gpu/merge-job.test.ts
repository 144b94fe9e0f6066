// The `merge` job kind's worker handler (src/worker/jobs/merge.ts) on tiny real experts trained with the CLI:
// a preview writes nothing and reports per-tensor stats with layers; the saliency variant reads the statistics of
// the Basin runs and names the expert without statistics instead of failing; a full merge writes the model and
// refuses to write over it without `force`; bad params are InvalidJobParamsError; cancel ends it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { mergeJob } from '../../src/worker/jobs/merge';
import { InvalidJobParamsError, JobCancelledError, type JobContext } from '../../src/worker/jobs/context';
import { GpuDevice } from '../../src/engine/gpu/device';
import type { MergeJobProgress } from '../../src/protocol/worker';

import { makeMergeExperts } from '../fixtures/merge-experts';

let gpu: GpuDevice | undefined;
function ctxOf(progress: MergeJobProgress[], cts = new CancellationTokenSource()): JobContext<'merge'> {
  return {
    jobId: 'test',
    token: cts.token,
    throwIfCancelled: () => {
      if (cts.token.isCancellationRequested) throw new JobCancelledError('test');
    },
    progress: (p) => progress.push(p),
    log: () => undefined,
    gpu: async () => (gpu ??= await GpuDevice.create()),
    sendBinary: () => false,
  };
}

describe('merge job (worker)', function () {
  this.timeout(240_000);
  let dir = '';
  let fx: ReturnType<typeof makeMergeExperts>;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-merge-job-'));
    fx = makeMergeExperts(dir, { root: path.resolve(__dirname, '../..') });
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad params before touching the GPU', async () => {
    await assert.rejects(mergeJob({ configFile: 'relative.merge.yaml' }, ctxOf([])), InvalidJobParamsError);
    await assert.rejects(mergeJob({ configFile: path.join(dir, 'x.basin.yaml') }, ctxOf([])), /merge\.yaml/);
    await assert.rejects(mergeJob({ configFile: fx.file, preview: { tensors: 0, rows: 4 } }, ctxOf([])), /preview must be/);
    await assert.rejects(mergeJob({ configFile: fx.file, saliency: true }, ctxOf([])), /needs? .*preview|give preview/);
  });

  it('preview: every tensor on a sample, per-layer stats, nothing written', async () => {
    const progress: MergeJobProgress[] = [];
    const t0 = performance.now();
    const r = await mergeJob({ configFile: fx.file, preview: { tensors: 1000, rows: 64 } }, ctxOf(progress));
    const ms = performance.now() - t0;
    console.log(`      preview of ${r.tensors.length} tensors: ${ms.toFixed(0)} ms`);
    assert.equal(r.output, null);
    assert.equal(r.tensors.length, 8, 'an MLP with 3 hidden layers: 4 layers × (weight, bias)');
    assert.deepEqual([...new Set(r.tensors.map((t) => t.layer))], [0, 1, 2, 3]);
    assert.ok(r.tensors.every((t) => t.keptFraction.length === 3 && t.keptFraction.every((k) => k > 0.3 && k <= 1)));
    assert.ok(!fs.existsSync(path.join(dir, 'merged')));
    assert.equal(progress.at(-1)?.done, 8);
  });

  it('saliency: curvature over the experts with statistics; the bare file is named, not fatal', async () => {
    const r = await mergeJob({ configFile: fx.file, preview: { tensors: 1000, rows: 256 }, saliency: true }, ctxOf([]));
    assert.equal(r.method, 'curvature');
    assert.equal(r.saliency.length, 2);
    for (const s of r.saliency) {
      assert.ok(s.total > 0);
      assert.deepEqual(Object.keys(s.perLayer).sort(), ['0', '1', '2', '3']);
    }
    assert.equal(r.noStatistics?.length, 1);
    assert.equal(r.noStatistics![0].written, './plain-expert.safetensors');
    assert.match(r.noStatistics![0].message, /not a Basin checkpoint/);
  });

  it('a full merge writes the model once; again only with force; cancel ends it', async () => {
    const r = await mergeJob({ configFile: fx.file }, ctxOf([]));
    assert.ok(r.output && fs.existsSync(r.output));
    await assert.rejects(mergeJob({ configFile: fx.file }, ctxOf([])), /already exists/);
    const cts = new CancellationTokenSource();
    cts.cancel();
    await assert.rejects(mergeJob({ configFile: fx.file, force: true }, ctxOf([], cts)), JobCancelledError);
    const again = await mergeJob({ configFile: fx.file, force: true }, ctxOf([]));
    assert.equal(again.output, r.output);
  });
});
