import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runtime, assertClose } from './helpers';
import { fromArray, tidy } from '../../src/engine/tensor/tensor';
import { axpbyInPlace, full, clone } from '../../src/engine/ops/basic';
import { KernelCompileError, setKernelsDirectory, kernelsDirectory } from '../../src/engine/gpu/kernels';
import { Runtime } from '../../src/engine/gpu/runtime';

describe('runtime basics', () => {
  it('fills, scales and adds in place over sizes that fold past 65,535 workgroups', async () => {
    const rt = await runtime();
    for (const n of [1, 7, 257, 65535 * 256 + 3]) {
      const x = fromArray(rt, Float32Array.from({ length: n }, (_, i) => i % 97), [n]);
      const y = full(rt, [n], 2);
      axpbyInPlace(y, x, 3, 0.5);
      const got = await y.toFloat32();
      const want = Float32Array.from({ length: n }, (_, i) => 3 * (i % 97) + 1);
      assertClose(got, want, { what: `axpby n=${n}` });
      x.dispose();
      y.dispose();
    }
  });

  it('tidy() frees what it does not return and the pool reuses it after submit', async () => {
    const rt = await runtime();
    const before = rt.pool.snapshot().liveBytes;
    const kept = tidy(() => {
      const a = full(rt, [1000], 1);
      return clone(a);
    });
    assert.equal(rt.pool.snapshot().liveBytes - before, 4096);
    assert.deepEqual([...(await kept.toFloat32()).slice(0, 3)], [1, 1, 1]);
    kept.dispose();
    assert.equal(rt.pool.snapshot().liveBytes, before);
  });

  it('a kernel that fails to compile names its file', async () => {
    const rt = await runtime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-kern-'));
    const real = kernelsDirectory();
    fs.writeFileSync(path.join(dir, 'elementwise.wgsl'), '@compute @workgroup_size(1) fn broken() { let x: f32 = undefined_thing; }');
    setKernelsDirectory(dir);
    const fresh = new Runtime(rt.gpu);
    try {
      fresh.dispatch({ file: 'elementwise', entry: 'broken', bindings: [] }, [], { values: [] }, 1);
      await assert.rejects(fresh.sync(), (e: unknown) => e instanceof KernelCompileError && /kernels\/elementwise\.wgsl/.test((e as Error).message));
    } finally {
      setKernelsDirectory(real);
      // Swallow the validation error the broken dispatch left behind.
      try { rt.gpu.check(); } catch { /* expected */ }
    }
  });
});
