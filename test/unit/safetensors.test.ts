import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DTYPE_SIZES,
  SafetensorsError,
  SafetensorsReader,
  readSafetensorsHeader,
  readTensor,
  readTensorBytes,
  writeSafetensors,
  type SafetensorsDType,
  type WriteTensor,
  type WriteTensorPieces,
} from '../../src/files/safetensors';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/files/f16';
import { seededRandom } from '../../src/engine/data/rng';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (v: number): number => ((f32[0] = v), u32[0]);
const fromBits = (b: number): number => ((u32[0] = b >>> 0), f32[0]);

// Reproducible inputs from Basin's one PRNG.
const prng = seededRandom;

/** Builds a safetensors file by hand (independent of the writer), optionally with a custom header object. */
function rawFile(header: unknown, buffer: Uint8Array, headerLengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(headerLengthOverride ?? BigInt(json.length));
  return Buffer.concat([pre, json, buffer]);
}

/**
 * Independent oracle for round-to-nearest-even: decode every candidate exactly (f64 holds f32, f16 and bf16
 * values and their midpoints exactly) and pick the nearest, ties to the even bit pattern.
 */
function oracleRound(x: number, decode: (h: number) => number, maxFinite: number, infBits: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // Binary search the largest non-negative pattern whose value ≤ a (patterns are monotonic in value).
  let lo = 0;
  let hi = maxFinite;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (decode(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = lo;
  const vb = decode(below);
  if (vb === a) return sign | below;
  // Above the largest finite: the next "pattern" is inf, and the rounding boundary is half an ulp above max.
  const above = below + 1;
  const va = below === maxFinite ? decode(maxFinite) + (decode(maxFinite) - decode(maxFinite - 1)) : decode(above);
  const dBelow = a - vb;
  const dAbove = va - a;
  let pick: number;
  if (dBelow < dAbove) pick = below;
  else if (dAbove < dBelow) pick = above;
  else pick = below % 2 === 0 ? below : above;
  if (pick > maxFinite) return sign | infBits;
  return sign | pick;
}

describe('f16 / bf16 conversion', () => {
  it('f16: specials, subnormals, overflow and ties to even', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff], // max finite
      [65519.99, 0x7bff], // just below the rounding boundary
      [65520, 0x7c00], // the tie above max rounds to inf
      [1e10, 0x7c00],
      [-Infinity, 0xfc00],
      [Infinity, 0x7c00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exactly half the smallest subnormal: tie to even (0)
      [2 ** -25 * 1.0000001, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal ulps: even (2)
      [-(2 ** -24), 0x8001],
      [1e-30, 0x0000],
      [-1e-30, 0x8000],
      [1 + 2 ** -11, 0x3c00], // tie: stays at even 1.0
      [1 + 3 * 2 ** -11, 0x3c02], // tie: goes up to the even mantissa
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the top subnormal into the smallest normal
    ];
    for (const [v, bits] of cases) assert.equal(f32ToF16Bits(v).toString(16), bits.toString(16), `f16(${v})`);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.equal(f16BitsToF32(0x03ff), 2 ** -14 - 2 ** -24);
    assert.equal(f16BitsToF32(0xfc00), -Infinity);
    const nan = f32ToF16Bits(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
    assert.ok(Number.isNaN(f16BitsToF32(nan)));
    // NaN with payload only in the low f32 bits stays NaN (not inf).
    assert.notEqual(f32ToF16Bits(fromBits(0x7f800001)) & 0x3ff, 0);
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  });

  it('bf16: specials, subnormals, overflow and ties to even', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [1 + 2 ** -8, 0x3f80], // tie: stays at even
      [1 + 3 * 2 ** -8, 0x3f82], // tie: up to even
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [fromBits(0x7f7fffff), 0x7f80], // f32 max rounds to inf in bf16
      [fromBits(0x00000001), 0x0000], // smallest f32 subnormal
      [fromBits(0x00010000), 0x0001], // bf16 subnormal
      [fromBits(0x80018000), 0x8002], // negative subnormal tie → even
    ];
    for (const [v, bits] of cases) assert.equal(f32ToBf16Bits(v).toString(16), bits.toString(16), `bf16(${v})`);
    const nan = f32ToBf16Bits(fromBits(0x7f800001));
    assert.ok(Number.isNaN(bf16BitsToF32(nan)), 'NaN payload in low bits stays NaN');
    assert.ok(Object.is(bf16BitsToF32(0x8000), -0));
  });

  it('agrees with an exact nearest-even oracle on 20,000 random values', () => {
    const rnd = prng(7);
    for (let i = 0; i < 20000; i++) {
      // Random f32 spread over the interesting exponent range, plus exact ties.
      const exp = Math.floor(rnd() * 60) - 30;
      let v = Math.fround((rnd() * 2 - 1) * 2 ** exp);
      if (i % 10 === 0) v = Math.fround(f16BitsToF32(Math.floor(rnd() * 0x7bff)) + 2 ** (exp - 11)); // near-ties
      assert.equal(f32ToF16Bits(v), oracleRound(v, f16BitsToF32, 0x7bff, 0x7c00), `f16 of ${v}`);
      assert.equal(f32ToBf16Bits(v), oracleRound(v, bf16BitsToF32, 0x7f7f, 0x7f80), `bf16 of ${v}`);
    }
  });
});

describe('safetensors', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-st-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const specials = new Float32Array([0, -0, 1, -1, 0.1, 1e-8, 2 ** -24, 2 ** -149, 65504, 70000, 3.4e38, Infinity, -Infinity, NaN, 1 + 2 ** -11]);

  it('writes a raw tensor of any dtype byte for byte; a raw length that does not fit the shape is refused', async () => {
    const p = path.join(dir, 'raw.safetensors');
    const ids = new BigInt64Array([0n, 1n, -2n, 9007199254740993n, 4n]);
    const raw = new Uint8Array(ids.buffer);
    await writeSafetensors(p, [
      { name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'position_ids', dtype: 'I64', shape: [1, 5], raw: () => raw },
      { name: 'mask', dtype: 'BOOL', shape: [3], raw: new Uint8Array([1, 0, 1]) },
    ]);
    const h = await readSafetensorsHeader(p);
    assert.deepEqual(h.list.map((t) => [t.name, t.dtype, t.shape]), [['w', 'F32', [2]], ['position_ids', 'I64', [1, 5]], ['mask', 'BOOL', [3]]]);
    assert.deepEqual(await readTensorBytes(p, 'position_ids', h), raw);
    assert.deepEqual(await readTensorBytes(p, 'mask', h), new Uint8Array([1, 0, 1]));
    await assert.rejects(writeSafetensors(path.join(dir, 'bad.safetensors'), [{ name: 'ids', dtype: 'I64', shape: [3], raw: new Uint8Array(16) }]), /tensor "ids": raw data has 16 bytes but I64 \[3\] needs 24/);
    await assert.rejects(writeSafetensors(path.join(dir, 'bad2.safetensors'), [{ name: 'ids', dtype: 'I64', shape: [3], raw: () => new Uint8Array(8) }]), /raw data has 8 bytes but I64 \[3\] needs 24/);
    assert.ok(!fs.existsSync(path.join(dir, 'bad2.safetensors')), 'nothing written');
  });

  it('round-trips F32, F16, BF16 and I32 with metadata; the buffer starts 8-byte aligned', async () => {
    const p = path.join(dir, 'rt.safetensors');
    const rnd = prng(1);
    const big = Float32Array.from({ length: 3 * 5 * 7 }, () => (rnd() - 0.5) * 10);
    const ints = Int32Array.from([0, -1, 2147483647, -2147483648, 42]);
    await writeSafetensors(
      p,
      [
        { name: 'a.f32', dtype: 'F32', shape: [specials.length], data: specials },
        { name: 'b.f16', dtype: 'F16', shape: [specials.length], data: specials },
        { name: 'c.bf16', dtype: 'BF16', shape: [specials.length], data: specials },
        { name: 'd.big', dtype: 'F16', shape: [3, 5, 7], data: () => big },
        { name: 'e.ints', dtype: 'I32', shape: [5], data: ints },
        { name: 'f.empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
        { name: 'g.scalar', dtype: 'BF16', shape: [], data: new Float32Array([3]) },
      ],
      { format: 'pt', step: '12' },
    );
    const h = await readSafetensorsHeader(p);
    assert.equal(h.dataStart % 8, 0);
    assert.deepEqual(h.metadata, { format: 'pt', step: '12' });
    assert.deepEqual(
      h.list.map((t) => [t.name, t.dtype, t.shape]),
      [
        ['a.f32', 'F32', [15]],
        ['b.f16', 'F16', [15]],
        ['c.bf16', 'BF16', [15]],
        ['d.big', 'F16', [3, 5, 7]],
        ['e.ints', 'I32', [5]],
        ['f.empty', 'F32', [0, 4]],
        ['g.scalar', 'BF16', []],
      ],
    );
    const a = (await readTensor(p, 'a.f32', h)).data;
    assert.ok(a instanceof Float32Array);
    for (let i = 0; i < specials.length; i++) assert.ok(Object.is(a[i], specials[i]), `f32[${i}]`);

    const b = (await readTensor(p, 'b.f16', h)).data;
    const c = (await readTensor(p, 'c.bf16', h)).data;
    for (let i = 0; i < specials.length; i++) {
      assert.ok(Object.is(b[i], f16BitsToF32(f32ToF16Bits(specials[i]))) || (Number.isNaN(b[i]) && Number.isNaN(specials[i])), `f16[${i}]`);
      assert.ok(Object.is(c[i], bf16BitsToF32(f32ToBf16Bits(specials[i]))) || (Number.isNaN(c[i]) && Number.isNaN(specials[i])), `bf16[${i}]`);
    }
    // Spot checks: ±0 keep their sign, 70000 overflows f16 but not bf16, 2^-24 is the f16 subnormal, 2^-149 flushes in f16.
    assert.ok(Object.is(b[1], -0) && Object.is(c[1], -0));
    assert.equal(b[9], Infinity);
    assert.equal(c[9], 70144);
    assert.equal(b[6], 2 ** -24);
    assert.equal(b[7], 0);
    assert.equal(c[7], 0); // below bf16's smallest subnormal (2^-133)
    assert.ok(Number.isNaN(b[13]) && Number.isNaN(c[13]));
    assert.equal(b[14], 1);

    const d = (await readTensor(p, 'd.big', h)).data;
    for (let i = 0; i < big.length; i++) assert.ok(Math.abs(d[i] - big[i]) <= Math.abs(big[i]) * 2 ** -11, `d[${i}]`);
    const e = await readTensor(p, 'e.ints', h);
    assert.ok(e.data instanceof Int32Array);
    assert.deepEqual(Array.from(e.data), Array.from(ints));
    assert.equal((await readTensor(p, 'f.empty', h)).data.length, 0);
    assert.deepEqual(Array.from((await readTensor(p, 'g.scalar', h)).data), [3]);
    assert.deepEqual(Array.from(await readTensorBytes(p, 'g.scalar', h)), [0x40, 0x40]);
  });

  it('decodes integer dtypes written by another producer, range-checked', async () => {
    const p = path.join(dir, 'ints.safetensors');
    const i64 = new BigInt64Array([-5n, 7n, 2147483647n]);
    const u8 = new Uint8Array([0, 255, 3, 0, 0, 0, 0, 0]); // 3 bytes of U8 + padding tensor
    const buf = Buffer.concat([Buffer.from(i64.buffer), Buffer.from(u8.subarray(0, 3)), Buffer.from(new BigInt64Array([1n << 40n]).buffer)]);
    fs.writeFileSync(
      p,
      rawFile(
        {
          idx: { dtype: 'I64', shape: [3], data_offsets: [0, 24] },
          mask: { dtype: 'U8', shape: [3], data_offsets: [24, 27] },
          huge: { dtype: 'I64', shape: [1], data_offsets: [27, 35] },
        },
        buf,
      ),
    );
    assert.deepEqual(Array.from((await readTensor(p, 'idx')).data), [-5, 7, 2147483647]);
    assert.deepEqual(Array.from((await readTensor(p, 'mask')).data), [0, 255, 3]);
    await assert.rejects(readTensor(p, 'huge'), (e: unknown) => e instanceof SafetensorsError && /"huge".*does not fit/.test(e.message));
  });

  it('reads the header alone: a 4 GiB (sparse) file, only 8 + N bytes read', async () => {
    const p = path.join(dir, 'huge.safetensors');
    const n = 1 << 30; // 2^30 f32 = 4 GiB of data, never written
    const header = { __metadata__: { note: 'sparse' }, 'emb.weight': { dtype: 'F32', shape: [1 << 20, 1 << 10], data_offsets: [0, n * 4] } };
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const pre = Buffer.alloc(8);
    pre.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(p, Buffer.concat([pre, Buffer.from(json)]));
    fs.truncateSync(p, 8 + json.length + n * 4);

    const probe = await fs.promises.open(p, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    const original = proto.read;
    let bytesRead = 0;
    proto.read = async function (this: unknown, ...args: unknown[]) {
      const r = await original.apply(this, args);
      bytesRead += r.bytesRead;
      return r;
    };
    try {
      const h = await readSafetensorsHeader(p);
      assert.equal(bytesRead, 8 + json.length);
      assert.deepEqual(h.tensors['emb.weight'].shape, [1 << 20, 1 << 10]);
      assert.equal(h.list[0].byteLength, n * 4);
      assert.equal(h.fileSize, 8 + json.length + n * 4);
      assert.equal(h.metadata.note, 'sparse');
    } finally {
      proto.read = original;
      fs.rmSync(p);
    }
  });

  it('reads one tensor at its offset with positioned reads (only its bytes)', async () => {
    const p = path.join(dir, 'three.safetensors');
    const rnd = prng(3);
    const mk = (n: number) => Float32Array.from({ length: n }, () => rnd());
    const A = mk(1000);
    const B = mk(77);
    const C = mk(5000);
    await writeSafetensors(p, [
      { name: 'A', dtype: 'F32', shape: [10, 100], data: A },
      { name: 'B', dtype: 'F32', shape: [7, 11], data: B },
      { name: 'C', dtype: 'F32', shape: [5000], data: C },
    ]);
    const h = await readSafetensorsHeader(p);
    const tb = h.tensors.B;
    assert.equal(tb.byteOffset, h.dataStart + 4000);
    assert.equal(tb.byteLength, 77 * 4);

    const r = await SafetensorsReader.open(p, h);
    const handleProto = Object.getPrototypeOf((r as unknown as { handle: object }).handle) as {
      read: (...a: unknown[]) => Promise<{ bytesRead: number }>;
    };
    const original = handleProto.read;
    const reads: [number, number][] = [];
    handleProto.read = async function (this: unknown, ...args: unknown[]) {
      const res = await original.apply(this, args);
      reads.push([args[3] as number, res.bytesRead]);
      return res;
    };
    try {
      const got = await r.read('B');
      assert.deepEqual(got.shape, [7, 11]);
      assert.deepEqual(Array.from(got.data), Array.from(B));
      assert.deepEqual(reads, [[tb.byteOffset, 77 * 4]]);
    } finally {
      handleProto.read = original;
      await r.close();
    }
    assert.deepEqual(Array.from((await readTensor(p, 'C')).data), Array.from(C));
    await assert.rejects(readTensor(p, 'D', h), (e: unknown) => e instanceof SafetensorsError && e.message.includes(p) && e.message.includes('"D"'));
  });

  it('valuesOutliveNextCall: values written from the producer\'s two alternating buffers, whole tensors and pieces, every value in order', async () => {
    // The producer alternates two buffers and overwrites the one of two calls ago at once when asked for the next
    // values (what the contract allows): a writer that had not finished writing it, or that kept a view of it,
    // would write garbage.
    const value = (t: number, i: number) => ((i * 2654435761 + t * 97) % 65521) / 64 - 512;
    const n = 300_007;
    const two = [new Float32Array(n), new Float32Array(n)];
    const bits = [new Uint16Array(n), new Uint16Array(n)];
    let turn = 0;
    const next = (t: number, dtype: 'F32' | 'BF16'): Float32Array | Uint16Array => {
      turn ^= 1;
      if (dtype === 'F32') {
        const b = two[turn];
        for (let i = 0; i < n; i++) b[i] = value(t, i);
        return b;
      }
      const b = bits[turn];
      for (let i = 0; i < n; i++) b[i] = f32ToBf16Bits(value(t, i));
      return b;
    };
    const tensors: WriteTensor[] = [];
    for (let t = 0; t < 12; t++) {
      const dtype = t % 3 === 0 ? 'BF16' : 'F32';
      tensors.push({ name: `t${t}`, dtype, shape: [n], valuesOutliveNextCall: true, data: async () => next(t, dtype) });
    }
    const pieceTensor: WriteTensorPieces = {
      name: 'pieces',
      dtype: 'F32',
      shape: [5, n],
      valuesOutliveNextCall: true,
      pieces: async function* () {
        for (let k = 0; k < 5; k++) yield next(100 + k, 'F32');
      },
    };
    const p = path.join(dir, 'outlive.safetensors');
    await writeSafetensors(p, [...tensors, pieceTensor]);
    for (let t = 0; t < 12; t++) {
      const got = (await readTensor(p, `t${t}`)).data;
      const want = Float32Array.from({ length: n }, (_, i) => (t % 3 === 0 ? bf16BitsToF32(f32ToBf16Bits(value(t, i))) : value(t, i)));
      assert.deepEqual(got, want, `t${t}`);
    }
    const gotPieces = (await readTensor(p, 'pieces')).data;
    for (let k = 0; k < 5; k++) {
      assert.deepEqual(gotPieces.subarray(k * n, (k + 1) * n), Float32Array.from({ length: n }, (_, i) => value(100 + k, i)), `piece ${k}`);
    }
  });

  it('pieces from one reused buffer: BF16/F16 writes run while the next piece is made, every value lands in order', async () => {
    // 2.6 M elements in pieces of 700,001 (over the writer's 1 Mi-element encode chunk in the first tensor, so
    // both scratch buffers turn over within a piece too); the producer overwrites its one buffer for each piece, as
    // the merge executor's staging memory is, and yields to the event loop between pieces (its GPU work).
    const n = 2_600_000;
    const value = (i: number) => ((i * 2654435761) % 65521) / 64 - 512;
    const piecesOf = (size: number) => async function* () {
      const buf = new Float32Array(size);
      for (let s = 0; s < n; s += size) {
        const m = Math.min(size, n - s);
        for (let k = 0; k < m; k++) buf[k] = value(s + k);
        await new Promise((r) => setImmediate(r));
        yield buf.subarray(0, m);
      }
    };
    const p = path.join(dir, 'pieces.safetensors');
    await writeSafetensors(p, [
      { name: 'a', dtype: 'BF16', shape: [n], pieces: piecesOf(1_700_001) },
      { name: 'b', dtype: 'F16', shape: [2, n / 2], pieces: piecesOf(700_001) },
      { name: 'c', dtype: 'F32', shape: [n], pieces: piecesOf(999_983) },
    ]);
    const expected = Float32Array.from({ length: n }, (_, i) => value(i));
    const round = (to: (x: number) => number, back: (b: number) => number) => Float32Array.from(expected, (x) => back(to(x)));
    assert.deepEqual((await readTensor(p, 'a')).data, round(f32ToBf16Bits, bf16BitsToF32));
    assert.deepEqual((await readTensor(p, 'b')).data, round(f32ToF16Bits, f16BitsToF32));
    assert.deepEqual((await readTensor(p, 'c')).data, expected);

    // F16/BF16 bits encoded elsewhere (a merge narrows on the GPU) are written as they are, whole or in pieces
    // from one reused buffer; F32 takes no bits.
    const bitsOf16 = Uint16Array.from({ length: 1001 }, (_, i) => (i * 40503) & 0xffff);
    const r = path.join(dir, 'bits.safetensors');
    await writeSafetensors(r, [
      { name: 'whole', dtype: 'BF16', shape: [1001], data: bitsOf16 },
      { name: 'pieces', dtype: 'F16', shape: [7, 143], pieces: async function* () {
        const buf = new Uint16Array(300);
        for (let s = 0; s < 1001; s += 300) {
          buf.set(bitsOf16.subarray(s, s + 300));
          await new Promise((res) => setImmediate(res));
          yield buf.subarray(0, Math.min(300, 1001 - s));
        }
      } },
    ]);
    const raw = async (name: string) => new Uint16Array((await readTensorBytes(r, name)).slice().buffer);
    assert.deepEqual(await raw('whole'), bitsOf16);
    assert.deepEqual(await raw('pieces'), bitsOf16);
    await assert.rejects(writeSafetensors(path.join(dir, 'bits-f32.safetensors'), [{ name: 'x', dtype: 'F32', shape: [2], data: () => new Uint16Array(2) as unknown as Float32Array }]), /F32 must be a Float32Array/);

    // A producer that fails while a write is in flight: the error comes through and no file (or temp file) is left.
    const q = path.join(dir, 'pieces-fail.safetensors');
    async function* failing() {
      yield new Float32Array(1_500_000).fill(1);
      await new Promise((r) => setImmediate(r));
      throw new Error('the GPU was lost');
    }
    await assert.rejects(writeSafetensors(q, [{ name: 'a', dtype: 'BF16', shape: [3_000_000], pieces: failing }]), /the GPU was lost/);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('pieces-fail')), []);
  });

  it('rejects writer misuse before touching the file', async () => {
    const p = path.join(dir, 'bad-write.safetensors');
    await assert.rejects(writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }]), /tensor "x".*3/);
    await assert.rejects(
      writeSafetensors(p, [
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      ]),
      /used twice/,
    );
    await assert.rejects(writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [-1], data: new Float32Array(0) }]), /non-negative/);
    await assert.rejects(writeSafetensors(p, [{ name: 'x', dtype: 'F16', shape: [2], data: () => new Float32Array(3) }]), /3 elements/);
    assert.equal(fs.existsSync(p), false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('bad-write')), []);
  });

  describe('malformed files: SafetensorsError naming the file and the tensor', () => {
    const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] } };
    const buf = new Uint8Array(12);
    const cases: { what: string; file: () => Buffer; match: RegExp; tensor?: string }[] = [
      { what: 'file shorter than 8 bytes', file: () => Buffer.from([1, 2, 3]), match: /shorter than the 8-byte/ },
      { what: 'header length past the end', file: () => rawFile(good, buf, 10_000n), match: /header length 10000 exceeds the file size/ },
      { what: 'header length over 100 MB', file: () => rawFile(good, buf, 1n << 62n), match: /exceeds the 100000000-byte limit/ },
      { what: 'not JSON', file: () => rawFile('{"w": nope}', buf), match: /not valid JSON/ },
      { what: 'JSON but not an object', file: () => rawFile('[1, 2]', buf), match: /must be a JSON object/ },
      {
        what: 'invalid UTF-8',
        file: () => Buffer.concat([Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])]),
        match: /not valid UTF-8/,
      },
      { what: 'unknown dtype', file: () => rawFile({ ...good, w: { ...good.w, dtype: 'F33' } }, buf), match: /unknown dtype "F33"/, tensor: 'w' },
      { what: 'negative shape', file: () => rawFile({ ...good, w: { ...good.w, shape: [-2] } }, buf), match: /non-negative integers/, tensor: 'w' },
      { what: 'fractional shape', file: () => rawFile({ ...good, w: { ...good.w, shape: [1.5] } }, buf), match: /non-negative integers/, tensor: 'w' },
      { what: 'size mismatch', file: () => rawFile({ ...good, w: { ...good.w, shape: [3] } }, buf), match: /hold 8 bytes but shape \[3\] of F32 needs 12/, tensor: 'w' },
      { what: 'offsets past the buffer', file: () => rawFile({ ...good, b: { ...good.b, data_offsets: [8, 16] } }, buf), match: /run past the byte buffer/, tensor: 'b' },
      { what: 'begin after end', file: () => rawFile({ ...good, b: { ...good.b, data_offsets: [12, 8] } }, buf), match: /begin is after end/, tensor: 'b' },
      { what: 'overlap', file: () => rawFile({ w: good.w, b: { dtype: 'F16', shape: [2], data_offsets: [4, 8] } }, new Uint8Array(8)), match: /overlap tensor "w"/, tensor: 'b' },
      { what: 'gap', file: () => rawFile({ w: good.w, b: { dtype: 'F16', shape: [2], data_offsets: [10, 14] } }, new Uint8Array(14)), match: /gap of 2 bytes/, tensor: 'b' },
      { what: 'buffer not fully covered', file: () => rawFile(good, new Uint8Array(16)), match: /4 bytes unaccounted/ },
      { what: 'metadata value not a string', file: () => rawFile({ ...good, __metadata__: { step: 3 } }, buf), match: /"step" must be a string/ },
      { what: 'missing data_offsets', file: () => rawFile({ ...good, w: { dtype: 'F32', shape: [2] } }, buf), match: /data_offsets must be/, tensor: 'w' },
      { what: 'entry not an object', file: () => rawFile({ ...good, w: 5 }, buf), match: /entry must be an object/, tensor: 'w' },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const p = path.join(dir, `bad-${c.what.replace(/\W+/g, '-')}.safetensors`);
        fs.writeFileSync(p, c.file());
        await assert.rejects(
          (async () => {
            const h = await readSafetensorsHeader(p);
            for (const t of h.list) await readTensor(p, t.name, h);
          })(),
          (e: unknown) => {
            assert.ok(e instanceof SafetensorsError, `not a SafetensorsError: ${String(e)}`);
            assert.match(e.message, c.match);
            assert.ok(e.message.startsWith(p + ':'), e.message);
            if (c.tensor) {
              assert.equal(e.tensor, c.tensor);
              assert.ok(e.message.includes(`tensor "${c.tensor}"`), e.message);
            }
            return true;
          },
        );
      });
    }
  });

  it('FUZZ: 4,000 mutated files either read as valid data or throw SafetensorsError, never anything else, never hang', async function () {
    this.timeout(120000);
    const base = path.join(dir, 'fuzz-base.safetensors');
    const rnd = prng(20240611);
    await writeSafetensors(
      base,
      [
        { name: 'emb', dtype: 'F32', shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i - 5.5) },
        { name: 'h', dtype: 'F16', shape: [5], data: new Float32Array([1, -2, 0.5, 65504, -0]) },
        { name: 'g', dtype: 'BF16', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
        { name: 'ids', dtype: 'I32', shape: [3], data: new Int32Array([7, 8, 9]) },
        { name: 'none', dtype: 'F32', shape: [0], data: new Float32Array(0) },
      ],
      { who: 'fuzz' },
    );
    const original = fs.readFileSync(base);
    const h0 = await readSafetensorsHeader(base);
    const headerObj = JSON.parse(original.subarray(8, h0.dataStart).toString('utf8')) as Record<string, Record<string, unknown>>;
    const dataBytes = original.subarray(h0.dataStart);
    const dtypes = [...Object.keys(DTYPE_SIZES), 'F33', '', 'f32', 'F4'];
    const weird = (): unknown => {
      const pool: unknown[] = [-1, 0, 1, 2, 3, 4, 7, 8, 1.5, 1e300, -0, 2 ** 53, 2 ** 60, '4', null, [], {}, true, Math.floor(rnd() * 100)];
      return pool[Math.floor(rnd() * pool.length)];
    };
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
    const names = Object.keys(headerObj).filter((k) => k !== '__metadata__');

    function headerEdit(): Buffer {
      const h = structuredClone(headerObj) as Record<string, Record<string, unknown>>;
      const edits = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < edits; k++) {
        const name = pick(names);
        const e = h[name];
        if (!e || typeof e !== 'object') continue;
        switch (Math.floor(rnd() * 9)) {
          case 0:
            e.dtype = pick(dtypes);
            break;
          case 1:
            e.shape = Array.from({ length: Math.floor(rnd() * 4) }, () => weird());
            break;
          case 2: {
            if (!Array.isArray(e.data_offsets)) break;
            const o = (e.data_offsets as number[]).slice();
            o[Math.floor(rnd() * 2)] += Math.floor(rnd() * 17) - 8;
            e.data_offsets = o;
            break;
          }
          case 3:
            e.data_offsets = [weird(), weird()];
            break;
          case 4:
            delete e[pick(['dtype', 'shape', 'data_offsets'])];
            break;
          case 5:
            h[name] = weird() as Record<string, unknown>;
            break;
          case 6:
            h.__metadata__ = pick([{ a: 'b' }, { a: 1 }, [], null, 'x', {}]) as Record<string, unknown>;
            break;
          case 7:
            h[`extra${k}`] = { dtype: pick(dtypes), shape: [Math.floor(rnd() * 4)], data_offsets: [Math.floor(rnd() * 80), Math.floor(rnd() * 80)] };
            break;
          default: {
            // Swap two tensors' offsets (same size → still valid; different → invalid).
            const other = h[pick(names)];
            if (other && typeof other === 'object') [e.data_offsets, other.data_offsets] = [other.data_offsets, e.data_offsets];
          }
        }
      }
      let json = JSON.stringify(h);
      if (rnd() < 0.3) json += ' '.repeat(Math.floor(rnd() * 9));
      if (rnd() < 0.05) json = json.slice(0, Math.floor(rnd() * json.length));
      const pre = Buffer.alloc(8);
      pre.writeBigUInt64LE(BigInt(json.length) + (rnd() < 0.1 ? BigInt(Math.floor(rnd() * 9) - 4) : 0n));
      return Buffer.concat([pre, Buffer.from(json), dataBytes]);
    }

    function mutate(): Buffer {
      const kind = Math.floor(rnd() * 5);
      if (kind === 0) return headerEdit();
      const b = Buffer.from(original);
      if (kind === 1) {
        // Random byte flips, mostly in the length prefix and header.
        const flips = 1 + Math.floor(rnd() * 4);
        for (let k = 0; k < flips; k++) {
          const at = rnd() < 0.8 ? Math.floor(rnd() * h0.dataStart) : Math.floor(rnd() * b.length);
          b[at] = rnd() < 0.5 ? Math.floor(rnd() * 256) : b[at] ^ (1 << Math.floor(rnd() * 8));
        }
        return b;
      }
      if (kind === 2) return b.subarray(0, Math.floor(rnd() * b.length)); // truncation
      if (kind === 3) return Buffer.concat([b, Buffer.alloc(1 + Math.floor(rnd() * 9), Math.floor(rnd() * 256))]); // trailing junk
      // Replace a header character with a structural one.
      const at = 8 + Math.floor(rnd() * (h0.dataStart - 8));
      b[at] = pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x3a, 0x2c, 0x30, 0x39, 0x2d, 0x00, 0x20]);
      return b;
    }

    const p = path.join(dir, 'fuzz.safetensors');
    let accepted = 0;
    let rejected = 0;
    let slowest = 0;
    for (let i = 0; i < 4000; i++) {
      const bytes = mutate();
      fs.writeFileSync(p, bytes);
      const t0 = performance.now();
      try {
        const h = await readSafetensorsHeader(p);
        const r = await SafetensorsReader.open(p, h);
        try {
          for (const t of h.list) {
            let numel = 1;
            for (const d of t.shape) numel *= d;
            assert.equal(t.byteLength, numel * DTYPE_SIZES[t.dtype as SafetensorsDType]);
            assert.ok(t.byteOffset >= h.dataStart && t.byteOffset + t.byteLength <= bytes.length);
            const got = await r.read(t.name);
            assert.equal(got.data.length, numel, `iteration ${i}: ${t.name}`);
          }
        } finally {
          await r.close();
        }
        accepted++;
      } catch (e) {
        if (!(e instanceof SafetensorsError)) {
          fs.writeFileSync(path.join(os.tmpdir(), `basin-fuzz-failure-${i}.safetensors`), bytes);
          throw new Error(`iteration ${i}: ${String(e)} (input saved to ${os.tmpdir()}/basin-fuzz-failure-${i}.safetensors)`);
        }
        assert.ok(e.message.startsWith(p), e.message);
        rejected++;
      }
      slowest = Math.max(slowest, performance.now() - t0);
    }
    assert.ok(accepted > 100, `some mutations keep the file valid (${accepted})`);
    assert.ok(rejected > 1000, `most mutations are rejected (${rejected})`);
    assert.ok(slowest < 2000, `no read takes long (slowest ${slowest.toFixed(0)} ms)`);
  });
});
