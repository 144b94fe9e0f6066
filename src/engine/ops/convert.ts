// Decoding F16 / BF16 tensor bytes to f32 on the GPU (kernels/convert.wgsl). The CPU reference is
// src/files/f16.ts (decodeF16 / decodeBf16), which the files part uses for the same job on the host.
import type { KernelSpec } from '../gpu/kernels';
import type { Runtime } from '../gpu/runtime';
import { Tensor, ShapeError, empty, fromArray, numel } from '../tensor/tensor';

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
  // Two halves per u32 word; an odd count gets a zero half at the end.
  const words = new Uint32Array(Math.max(1, Math.ceil(n / 2)));
  new Uint8Array(words.buffer).set(bytes);
  const src = fromArray(rt, words, [words.length], 'u32');
  const out = empty(rt, shape, 'f32');
  if (n > 0) rt.dispatch(SPECS[dtype], [src.binding(), out.binding()], { values: [n, 0, 0, 0] }, Math.ceil(n / WG));
  src.dispose();
  return out;
}
