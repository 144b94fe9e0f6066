// The kernel warm-up (WarmRequest, src/protocol/worker.ts): one throwaway training step of a config in a temporary
// folder, so that the shared Runtime holds the pipelines the real run will dispatch before the user presses
// ▶ Train. On lavapipe a cold machine spends ~15–20 s compiling a small transformer's ~27 pipelines (Mesa keeps
// them in its disk cache afterwards, so this matters for the first run of a machine, and costs ~1–2 s later).
//
// Why a real step and not a list of pipelines: which kernels (and which workgroup overrides) a run uses depends on
// the model, optimizer, loss and statistics; one step of the trainer itself is the only list that cannot go stale.
// Why not createComputePipelineAsync: measured with Dawn (webgpu 0.6) on lavapipe, the async pipelines resolved
// in <1 s but the compile then happened at the first dispatch anyway (the first step got slower, not faster).
//
// It runs on the GPU queue like a job (holder WARM_HOLDER): a train job that comes meanwhile waits and reports
// 'compiling' instead of 'queued'. The step itself cannot be interrupted (the compiles are synchronous).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CancellationToken } from 'vscode-jsonrpc';
import type { WarmParams, WarmResult } from '../../protocol/worker';
import { loadConfig } from '../../files/config/load';
import { train } from '../../engine/train/trainer';
import type { GpuDevice } from '../../engine/gpu/device';
import { JobCancelledError } from './context';
import { WARM_HOLDER, dropRuntime, exclusiveGpu, isWarm, markWarm, sharedRuntime } from './gpu';
import { warmKey } from './train';
import { modelRegistry } from '../../files/registry/models';

/** Models above this size are not warmed up in the background (their first step shows 'compiling' instead). */
const WARM_MAX_PARAMETERS = 5_000_000;

/** Warms the kernels of `params.configPath`'s training. Never throws for a config problem (says `skipped`). */
export async function warmUp(params: WarmParams, token: CancellationToken, getGpu: () => Promise<GpuDevice>, log: (m: string) => void): Promise<WarmResult> {
  const t0 = performance.now();
  const done = (kernels: number, skipped?: string): WarmResult => ({ kernels, ms: Math.round(performance.now() - t0), ...(skipped ? { skipped } : {}) });
  if (typeof params?.configPath !== 'string' || !path.isAbsolute(params.configPath)) return done(0, 'configPath must be an absolute path');
  let config;
  try {
    config = loadConfig(params.configPath).config;
  } catch {
    return done(0, 'the config has problems');
  }
  // A throwaway step of a large model would hold the GPU and memory for long in the background: warm small ones.
  const parameters = modelRegistry.get(config.model.type).parameters(config.model);
  if (parameters > WARM_MAX_PARAMETERS) return done(0, `the model has ${parameters.toLocaleString('en-US')} parameters (warm-up is for models up to ${WARM_MAX_PARAMETERS.toLocaleString('en-US')})`);
  const key = warmKey(config);
  const ctx = {
    jobId: WARM_HOLDER,
    token,
    throwIfCancelled() {
      if (token.isCancellationRequested) throw new JobCancelledError(WARM_HOLDER);
    },
  };
  try {
    return await exclusiveGpu(ctx, () => undefined, async () => {
      const gpu = await getGpu();
      const rt = sharedRuntime(gpu);
      if (isWarm(rt, key)) return done(0, 'already warm');
      const before = rt.counters.byKernel.size;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-warm-'));
      const abort = new AbortController();
      const sub = token.onCancellationRequested(() => abort.abort());
      try {
        // One step that is also the last: it dispatches forward, backward, the optimizer, evaluation, the
        // statistics and the checkpoint's reads — everything the real run's steps will.
        const one = structuredClone(config);
        one.name = 'warm-up';
        one.train = { ...one.train, steps: 1, epochs: undefined, evalEvery: 0, checkpointEvery: 0, logEvery: 1 };
        const r = await train({ rt, config: one, configPath: params.configPath, outputDir: dir, signal: abort.signal });
        if (r.steps < 1) return done(0, 'cancelled');
        markWarm(rt, key);
        const kernels = rt.counters.byKernel.size - before;
        log(`warm-up: ${path.basename(params.configPath)}: ${kernels} new kernel(s) compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        return done(kernels);
      } catch (e) {
        // Same rule as withGpu: a Runtime that failed mid-work may hold recorded work on freed buffers.
        dropRuntime(gpu);
        throw e;
      } finally {
        sub.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  } catch (e) {
    if (e instanceof JobCancelledError) return done(0, 'cancelled');
    throw e;
  }
}
