// Uploads from mapped staging memory (src/engine/gpu/upload-staging.ts) and the decode that copies from it
// (ops/convert.ts decodeFloatCopied): the bytes arrive whole at awkward sizes, staging buffers are reused once
// the GPU has copied them, and destroy() waits for a fill still writing into mapped memory.
import * as assert from 'node:assert/strict';
import { UploadStaging } from '../../src/engine/gpu/upload-staging';
import { decodeFloatCopied } from '../../src/engine/ops/convert';
import { empty } from '../../src/engine/tensor/tensor';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../../src/files/f16';
import { GpuDevice } from '../../src/engine/gpu/device';
import { Runtime } from '../../src/engine/gpu/runtime';
import { randn, runtime } from './helpers';

describe('upload staging', () => {
  it('bytes written into the mapped memory reach the GPU at sizes 1, 3, 4, 5, 4097 and 2^20+3', async () => {
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    try {
      for (const size of [1, 3, 4, 5, 4097, (1 << 20) + 3]) {
        const s = await staging.acquire(size);
        assert.equal(s.bytes.byteLength, size);
        for (let i = 0; i < size; i++) s.bytes[i] = (i * 7 + size) & 255;
        const expected = s.bytes.slice();
        const dst = empty(rt, [Math.ceil(size / 4)], 'u32');
        staging.recordCopy(s, dst.range(), size);
        rt.flush();
        staging.remapAfterSubmit();
        const got = new Uint8Array(await rt.readBytes(dst.range(), size));
        assert.deepEqual(got, expected, `${size} bytes`);
        dst.dispose();
      }
    } finally {
      await staging.destroy();
    }
  });

  it('the pad to a whole word reaches the GPU as zeros, also from a reused buffer that held other bytes', async () => {
    // Staging buffers are mapped at creation without Dawn's zero-fill (gpu/device.ts BASIN_DAWN_TOGGLES), and a
    // reused one holds the last upload: the bytes past `bytes` up to the word are copied too, so acquire zeroes them.
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    try {
      const dst = empty(rt, [2], 'u32');
      const first = await staging.acquire(8);
      first.bytes.fill(0xff);
      staging.recordCopy(first, dst.range(), 8);
      rt.flush();
      staging.remapAfterSubmit();
      await rt.sync();
      const again = await staging.acquire(5); // 5 bytes round up to the same 8-byte buffer
      assert.equal(again.buffer, first.buffer, 'the 8-byte buffer is reused');
      again.bytes.fill(0xaa);
      staging.recordCopy(again, dst.range(), 5);
      rt.flush();
      staging.remapAfterSubmit();
      assert.deepEqual(Array.from(new Uint8Array(await rt.readBytes(dst.range(), 8))), [0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0]);
      dst.dispose();
    } finally {
      await staging.destroy();
    }
  });

  it('a fresh staging buffer is not zero-filled by Dawn (BASIN_DAWN_TOGGLES reach the device), and its pad is zeroed', async () => {
    // Dawn's testing toggle fills new resources with 0x01 where it would clear them: with the lazy clear of buffers
    // mapped at creation disabled, a fresh staging buffer's mapped bytes read 0x01, and the pad past `bytes` must
    // still reach the GPU as zeros.
    const gpu = await GpuDevice.create({ toggles: ['nonzero_clear_resources_on_creation_for_testing'] });
    const rt = new Runtime(gpu);
    const staging = new UploadStaging(rt);
    try {
      const s = await staging.acquire(5);
      const whole = new Uint8Array(s.bytes.buffer, s.bytes.byteOffset, 8);
      assert.deepEqual(Array.from(whole.subarray(0, 5)), [1, 1, 1, 1, 1], 'not cleared by Dawn: the toggle is applied');
      assert.deepEqual(Array.from(whole.subarray(5)), [0, 0, 0], 'the pad, zeroed by acquire');
      s.bytes.set([9, 8, 7, 6, 5]);
      const dst = empty(rt, [2], 'u32');
      staging.recordCopy(s, dst.range(), 5);
      rt.flush();
      staging.remapAfterSubmit();
      assert.deepEqual(Array.from(new Uint8Array(await rt.readBytes(dst.range(), 8))), [9, 8, 7, 6, 5, 0, 0, 0]);
      dst.dispose();
    } finally {
      await staging.destroy();
      gpu.destroy();
    }
  });

  it('F32, F16 and BF16 decoded from staging equal the host decode (odd counts, one element, none)', async () => {
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    try {
      for (const n of [0, 1, 2, 7, 1023, 100_003]) {
        const v = randn(n, n + 1);
        const half = (enc: typeof encodeF16, dec: typeof decodeF16): [Uint8Array, Float32Array] => {
          const bits = new Uint16Array(n);
          enc(v, bits);
          const back = new Float32Array(n);
          dec(bits, back);
          return [new Uint8Array(bits.buffer), back];
        };
        const cases: ['F32' | 'F16' | 'BF16', Uint8Array, Float32Array][] = [
          ['F32', new Uint8Array(v.buffer), v],
          ['F16', ...half(encodeF16, decodeF16)],
          ['BF16', ...half(encodeBf16, decodeBf16)],
        ];
        for (const [dtype, bytes, expected] of cases) {
          const s = await staging.acquire(bytes.byteLength);
          s.bytes.set(bytes);
          const t = decodeFloatCopied(rt, dtype, [n], (dst, b) => {
            assert.equal(b, bytes.byteLength);
            staging.recordCopy(s, dst, b);
          });
          if (n === 0) staging.release(s); // nothing to copy: given back unused
          rt.flush();
          staging.remapAfterSubmit();
          assert.deepEqual(Array.from(await t.toArray()), Array.from(expected), `${dtype}, ${n} elements`);
          t.dispose();
        }
      }
    } finally {
      await staging.destroy();
    }
  });

  it('reuses a staging buffer once its copy is done, and one given back unused at once', async () => {
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    try {
      const dst = empty(rt, [256], 'f32');
      for (let k = 0; k < 5; k++) {
        const s = await staging.acquire(1024);
        staging.recordCopy(s, dst.range(), 1024);
        rt.flush();
        staging.remapAfterSubmit();
        await rt.sync();
        await new Promise((r) => setTimeout(r, 5)); // the map's callback
      }
      assert.equal(staging.created, 1, 'one buffer served five uploads');
      const a = await staging.acquire(1024);
      staging.release(a);
      const b = await staging.acquire(1024);
      assert.equal(b.buffer, a.buffer, 'a buffer given back unused is lent again');
      staging.release(b);
      assert.throws(() => staging.recordCopy(b, dst.range(), 1024), /not lent/);
      dst.dispose();
    } finally {
      await staging.destroy();
    }
  });

  it('an acquire waits for a buffer on its way back rather than making one; more acquires than maps in flight make new ones', async () => {
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    try {
      const dst = empty(rt, [1024], 'f32');
      const first = await staging.acquire(4096);
      staging.recordCopy(first, dst.range(), 4096);
      rt.flush();
      staging.remapAfterSubmit(); // its map is in flight now
      const [a, b] = await Promise.all([staging.acquire(4096), staging.acquire(4096)]);
      assert.equal(a.buffer, first.buffer, 'the first acquire took the buffer whose map was in flight');
      assert.notEqual(b.buffer, first.buffer);
      assert.equal(staging.created, 2, 'one map in flight serves one waiter; the second acquire made a buffer');
      a.bytes.fill(1); // mapped again: writable
      staging.release(a);
      staging.release(b);
      dst.dispose();
    } finally {
      await staging.destroy();
    }
  });

  it('destroy() waits for a fill still writing into the mapped memory before unmapping it', async () => {
    const rt = await runtime();
    const staging = new UploadStaging(rt);
    const s = await staging.acquire(64);
    let filled = false;
    const fill = new Promise<void>((resolve) =>
      setTimeout(() => {
        s.bytes.fill(9); // would throw (a detached buffer) if destroy() had unmapped it
        filled = true;
        resolve();
      }, 30),
    );
    staging.track(fill);
    await staging.destroy();
    assert.equal(filled, true, 'destroy() returned only after the fill');
    assert.equal(staging.heldBytes, 0);
    await assert.rejects(staging.acquire(4), /after destroy/);
  });
});
