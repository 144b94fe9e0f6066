// Dawn's GPU polls, paced (src/engine/gpu/dawn-polling.ts). Two kinds of checks:
//   - the pacing itself, on a stand-in poll: an anonymous native-looking function (a Proxy) that reschedules itself
//     the way Dawn's AsyncRunner does;
//   - that Dawn's real polls are the ones recognised: a real wait for the GPU goes through the pacing, so if a
//     new `webgpu` release changes how it schedules its polls, this fails instead of silently spinning again.
import * as assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { dawnPolls, PACED_POLL_MS, paceDawnPolling, SPIN_MS } from '../../src/engine/gpu/dawn-polling';
import { runtime } from './helpers';

/** A poll like Dawn's: native-looking, anonymous, rescheduling itself from inside until `ms` have passed. */
function standInWait(ms: number): Promise<number> {
  return new Promise((resolve) => {
    const end = performance.now() + ms;
    let turns = 0;
    const poll: () => void = new Proxy(() => {
      turns++;
      if (performance.now() < end) setImmediate(poll);
      else resolve(turns);
    }, {});
    setImmediate(poll);
  });
}

describe('Dawn polls paced', () => {
  before(async () => {
    await runtime(); // the device module installs the pacing as it loads Dawn
    assert.equal(paceDawnPolling(), true, 'pacing installed (BASIN_GPU_POLL=spin must not be set for these tests)');
  });

  it('a long wait polls on every turn only for its first SPIN_MS, then once per PACED_POLL_MS', async () => {
    const before = { ...dawnPolls };
    const ms = 60;
    const t0 = performance.now();
    const turns = await standInWait(ms);
    const wall = performance.now() - t0;
    const immediate = dawnPolls.immediate - before.immediate;
    const paced = dawnPolls.paced - before.paced;
    assert.equal(immediate + paced, turns, 'every poll went through the pacing');
    assert.ok(immediate >= 1, 'the first polls of a wait are not delayed');
    assert.ok(paced >= 1, `a ${ms} ms wait was paced (${immediate} immediate polls)`);
    // Paced polls are at least PACED_POLL_MS apart: no more of them than the wait's milliseconds after SPIN_MS.
    assert.ok(paced <= Math.ceil((wall - SPIN_MS) / PACED_POLL_MS) + 1, `${paced} paced polls in ${wall.toFixed(1)} ms`);
  });

  it('a new wait spins again at first; other callbacks, their arguments and promisify are untouched', async () => {
    await standInWait(10);
    const before = dawnPolls.immediate;
    await standInWait(0.5);
    assert.ok(dawnPolls.immediate > before, 'a wait that begins after another starts with immediate polls again');
    const handle = await new Promise<unknown>((resolve) => {
      const h: unknown = setImmediate((a: number, b: string) => resolve(a === 1 && b === 'x' ? h : null), 1, 'x');
    });
    assert.equal((handle as object).constructor.name, 'Immediate', 'a JavaScript callback still gets a real Immediate, with its arguments');
    assert.equal(await promisify(setImmediate)('value'), 'value');
  });

  it('recognises the polls of a real wait for the GPU (and paces them on a software adapter)', async function () {
    const rt = await runtime();
    const dev = rt.device;
    const n = 1 << 20;
    const module = dev.createShaderModule({
      code: `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  var x = a[g.x];
  for (var i = 0; i < 400; i++) { x = x * 1.0001 + 0.5; }
  a[g.x] = x;
}`,
    });
    const pipe = await dev.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const buf = dev.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE });
    const bg = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
    try {
      const before = { ...dawnPolls };
      const t0 = performance.now();
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipe);
      pass.setBindGroup(0, bg);
      for (let k = 0; k < 8; k++) pass.dispatchWorkgroups(n / 256);
      pass.end();
      dev.queue.submit([enc.finish()]);
      await dev.queue.onSubmittedWorkDone();
      const wall = performance.now() - t0;
      const polls = dawnPolls.immediate + dawnPolls.paced - before.immediate - before.paced;
      assert.ok(polls >= 1, 'Dawn scheduled its polls through the paced setImmediate');
      if (rt.gpu.info.fallback && wall > 20) {
        const paced = dawnPolls.paced - before.paced;
        assert.ok(paced >= 1 && paced <= wall / PACED_POLL_MS + 1, `${paced} paced polls in a ${wall.toFixed(0)} ms wait`);
      }
    } finally {
      buf.destroy();
    }
  });
});
