// Decoding F16 / BF16 tensor bytes to f32 on the GPU (kernels/convert.wgsl), and the f32 ↔ f16 casts of mixed
// precision (kernels/cast.wgsl, below). The CPU reference is
// src/files/f16.ts (decodeF16 / decodeBf16), which the files part uses for the same job on the host.
import type { KernelSpec } from '../gpu/kernels';
import type { BufferBinding, Runtime } from '../gpu/runtime';
import { Tensor, ShapeError, empty, fmtShape, fromArray, numel } from '../tensor/tensor';

const WG = 256;
const SPECS: Record<'F16' | 'BF16', KernelSpec> = {
  F16: { file: 'convert', entry: 'f16_to_f32', bindings: ['read', 'rw'] },
  BF16: { file: 'convert', entry: 'bf16_to_f32', bindings: ['read', 'rw'] },
};

/**
 * An f32 tensor of `shape` from the raw little-endian bytes of an F16 or BF16 tensor (2 bytes per element), or
 * of an F32 tensor (uploaded as is). The bytes are uploaded once; half precision is widened by a kernel.
 */
export function decodeFloatBytes(rt: Runtime, bytes: Uint8Array, dtype: 'F32' | 'F16' | 'BF16', shape: readonly number[]): Tensor {
  const n = numel(shape);
  const per = dtype === 'F32' ? 4 : 2;
  if (bytes.byteLength !== n * per) throw new ShapeError(`decode ${dtype}: ${bytes.byteLength} bytes for shape [${shape.join(', ')}], expected ${n * per}`);
  if (dtype === 'F32') {
    const f = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer);
    return fromArray(rt, f, shape, 'f32');
  }
  // Two halves per u32 word; an odd count gets a zero half at the end. Aligned bytes of an even count are
  // uploaded as they lie (a merge streams gigabytes through here: no host copy).
  let words: Uint32Array;
  if (n > 0 && n % 2 === 0 && bytes.byteOffset % 4 === 0) words = new Uint32Array(bytes.buffer, bytes.byteOffset, n / 2);
  else {
    words = new Uint32Array(Math.max(1, Math.ceil(n / 2)));
    new Uint8Array(words.buffer).set(bytes);
  }
  const src = fromArray(rt, words, [words.length], 'u32');
  return widen(src, dtype, shape);
}

/** F16/BF16 bits two per word → f32 of `shape`; disposes the words. */
function widen(src: Tensor, dtype: 'F16' | 'BF16', shape: readonly number[]): Tensor {
  const n = numel(shape);
  const out = empty(src.rt, shape, 'f32');
  if (n > 0) src.rt.dispatch(SPECS[dtype], [src.binding(), out.binding()], { values: [n, 0, 0, 0] }, Math.ceil(n / WG));
  src.dispose();
  return out;
}

/**
 * decodeFloatBytes for bytes that already lie in a GPU buffer the caller copies from (a merge's reads land in
 * mapped staging memory: gpu/upload-staging.ts): `copyRaw(dst, bytes)` records the copy of the tensor's raw bytes
 * (F32: n × 4; F16/BF16: n × 2, copied as whole words, the last half of an odd count unused) into dst.
 */
export function decodeFloatCopied(rt: Runtime, dtype: 'F32' | 'F16' | 'BF16', shape: readonly number[], copyRaw: (dst: BufferBinding, bytes: number) => void): Tensor {
  const n = numel(shape);
  if (dtype === 'F32') {
    const out = empty(rt, shape, 'f32');
    if (n > 0) copyRaw(out.range(), n * 4);
    return out;
  }
  const raw = empty(rt, [Math.max(1, Math.ceil(n / 2))], 'u32');
  if (n > 0) copyRaw(raw.range(), n * 2);
  return widen(raw, dtype, shape);
}

const ENCODE: Record<'F16' | 'BF16', KernelSpec> = {
  F16: { file: 'convert', entry: 'f32_to_f16_words', bindings: ['read', 'rw'] },
  BF16: { file: 'convert', entry: 'f32_to_bf16_words', bindings: ['read', 'rw'] },
};

/**
 * An f32 tensor's values as F16 or BF16 bits, two per u32 word (the even index in the low half; an odd count
 * leaves a zero high half): [⌈n/2⌉] u32, the bytes a safetensors file holds, rounded to nearest even as
 * src/files/f16.ts encodeF16 / encodeBf16 round (the CPU reference, bit for bit). A merge narrows its output so
 * before reading it back. Needs no shader-f16 (integer arithmetic).
 */
export function encodeHalfWords(src: Tensor, dtype: 'F16' | 'BF16'): Tensor {
  if (src.dtype !== 'f32') throw new TypeError(`encode ${dtype}: expected an f32 tensor, got ${src.dtype}`);
  const words = Math.ceil(src.size / 2);
  const out = empty(src.rt, [Math.max(1, words)], 'u32');
  if (src.size > 0) src.rt.dispatch(ENCODE[dtype], [src.binding(), out.binding()], { values: [src.size, 0, 0, 0] }, Math.ceil(words / WG));
  return out;
}

// ---- f32 ↔ f16 casts (kernels/cast.wgsl), for mixed-precision training -----------------------------------
// No gradient flows through them: the mixed-precision linear (ops/matmul.ts linearHalf) casts inside its own
// recorded op and writes its gradients in f32. CPU reference: encodeF16 / decodeF16 of src/files/f16.ts.

const CAST_F16: KernelSpec = { file: 'cast', entry: 'f32_to_f16', bindings: ['read', 'rw'] };
const CAST_F32: KernelSpec = { file: 'cast', entry: 'f16_to_f32', bindings: ['read', 'rw'] };

function assertHalfDevice(rt: Runtime, op: string): void {
  if (!rt.hasF16) throw new Error(`${op}: this device has no shader-f16 feature, so it cannot run f16 kernels (train in f32 here)`);
}

/** Write src (f32) into dst (f16, same element count), rounded to nearest even; beyond ±65504 becomes ±Inf. */
export function castF16Into(dst: Tensor, src: Tensor): Tensor {
  if (src.dtype !== 'f32' || dst.dtype !== 'f16') throw new TypeError(`castF16Into: expected f32 → f16, got ${src.dtype} → ${dst.dtype}`);
  if (src.size !== dst.size) throw new ShapeError(`castF16Into: ${fmtShape(src.shape)} into ${fmtShape(dst.shape)}: element counts differ`);
  assertHalfDevice(src.rt, 'castF16');
  const words = Math.ceil(src.size / 2);
  if (src.size > 0) src.rt.dispatch(CAST_F16, [src.binding(), dst.binding()], { values: [src.size, 0, 0, 0] }, Math.ceil(words / WG));
  return dst;
}

/** An f16 copy of an f32 tensor (half the bytes). */
export function castF16(x: Tensor): Tensor {
  if (x.dtype !== 'f32') throw new TypeError(`castF16: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  return castF16Into(empty(x.rt, x.shape, 'f16'), x);
}

/** The f32 values of an f16 tensor (exact). */
export function castF32(x: Tensor): Tensor {
  if (x.dtype !== 'f16') throw new TypeError(`castF32: expected an f16 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  assertHalfDevice(x.rt, 'castF32');
  const out = empty(x.rt, x.shape, 'f32');
  if (x.size > 0) x.rt.dispatch(CAST_F32, [x.binding(), out.binding()], { values: [x.size, 0, 0, 0] }, Math.ceil(x.size / WG));
  return out;
}
