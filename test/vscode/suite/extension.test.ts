// Extension tests in a real VS Code extension host (see test/vscode/launcher.mjs). The order matters: the first
// test checks that activation starts no worker process.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { BasinApi } from '../../../src/extension';
import type { GpuInfo } from '../../../src/protocol/worker';
import type { WorkerExit } from '../../../src/host/jobs/worker-process';

const EXTENSION_ID = 'basin-ml.basin';

function nextExit(api: BasinApi, timeoutMs = 10_000): Promise<WorkerExit> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`no worker exit within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = api.onDidWorkerExit((e) => {
      clearTimeout(timer);
      sub.dispose();
      resolve(e);
    });
  });
}

function assertGpuInfo(info: GpuInfo | undefined): asserts info is GpuInfo {
  assert.ok(info, 'basin.showGpuInfo returned no GpuInfo (see the Basin output channel for the error)');
  assert.equal(typeof info.vendor, 'string');
  assert.equal(typeof info.backend, 'string');
  assert.ok(Array.isArray(info.features), 'features is an array');
  assert.ok(info.limits.maxBufferSize > 0, 'limits.maxBufferSize > 0');
  assert.ok(info.limits.maxComputeInvocationsPerWorkgroup >= 256, 'limits.maxComputeInvocationsPerWorkgroup >= 256');
}

describe('Basin extension', () => {
  let api: BasinApi;

  it('activates without starting the worker', async () => {
    const ext = vscode.extensions.getExtension<BasinApi>(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
    api = await ext.activate();
    assert.ok(ext.isActive);
    assert.equal(api.workerPid(), undefined, 'activation must not start the worker (it starts on first use)');
  });

  it('registers basin.showGpuInfo', async () => {
    const all = await vscode.commands.getCommands(true);
    assert.ok(all.includes('basin.showGpuInfo'));
  });

  it('Show GPU Info answers through the worker with the adapter', async function () {
    this.timeout(60_000);
    const t0 = Date.now();
    const info = await vscode.commands.executeCommand<GpuInfo | undefined>('basin.showGpuInfo');
    assertGpuInfo(info);
    console.log(`      adapter: ${info.description} (${info.vendor}, ${info.backend}${info.fallback ? ', fallback' : ''}) in ${Date.now() - t0} ms`);
    const expect = process.env.BASIN_EXPECT_ADAPTER;
    if (expect) assert.match(`${info.vendor} ${info.description}`, new RegExp(expect, 'i'));
    // Without a GPU the only adapter is Mesa's lavapipe (llvmpipe), a software fallback.
    if (info.fallback) assert.match(info.description, /llvmpipe|lavapipe/i);
    assert.ok(api.workerPid(), 'the worker runs after the first request');
  });

  it('runs a job with progress and cancels one', async () => {
    const steps: number[] = [];
    const r = await api.worker.runJob('selfTest', { steps: 3, intervalMs: 5 }, { onProgress: (p) => steps.push(p.data.step) });
    assert.deepEqual(r.result, { steps: 3 });
    assert.deepEqual(steps, [1, 2, 3]);

    const cts = new vscode.CancellationTokenSource();
    const job = api.worker.runJob('selfTest', { steps: 1000, intervalMs: 10 }, { token: cts.token, onProgress: () => cts.cancel() });
    await assert.rejects(job, (e: { code?: number; message: string }) => {
      assert.equal(e.code, -32800, e.message);
      return true;
    });
  });

  it('reports a worker killed with SIGKILL, and the next request starts a fresh worker', async function () {
    this.timeout(60_000);
    const pid = api.workerPid();
    assert.ok(pid, 'a worker is running');
    // A job in flight when the worker dies fails with the exit, not a hang.
    const job = api.worker.runJob('selfTest', { steps: 1000, intervalMs: 20 });
    const exited = nextExit(api);
    process.kill(pid, 'SIGKILL');
    const exit = await exited;
    assert.equal(exit.pid, pid);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.expected, false, 'a crash is not an expected exit');
    assert.ok(Array.isArray(exit.stderrTail));
    await assert.rejects(job, /killed by signal SIGKILL/);
    assert.equal(api.workerPid(), undefined);

    const info = await vscode.commands.executeCommand<GpuInfo | undefined>('basin.showGpuInfo');
    assertGpuInfo(info);
    const pid2 = api.workerPid();
    assert.ok(pid2, 'a fresh worker runs');
    assert.notEqual(pid2, pid);
  });

  it('stops the worker on request (SIGTERM, then SIGKILL after a cap)', async () => {
    const pid = api.workerPid();
    assert.ok(pid);
    const exited = nextExit(api);
    await api.worker.stop();
    const exit = await exited;
    assert.equal(exit.expected, true);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the worker process is gone');
  });
});
