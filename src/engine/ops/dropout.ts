// Dropout with a stateless mask: element i is kept when hash(seed, i) clears a threshold, so backward
// regenerates the mask from the seed instead of storing it. Kernel: kernels/dropout.wgsl (the hash is
// mirrored in cpu/dropout.ts).
import type { KernelSpec } from '../gpu/kernels';
import { record } from '../autograd/tape';
import { Tensor, empty, fmtShape } from '../tensor/tensor';
import { mulScalar } from './elementwise';

const WG = 256;
const SPEC: KernelSpec = { file: 'dropout', entry: 'dropout', bindings: ['read', 'rw'] };

function apply(x: Tensor, p: number, seed: number): Tensor {
  const out = empty(x.rt, x.shape);
  // Kept when hash >= round(p · 2^32): P(keep) = 1 - p.
  const threshold = Math.min(Math.round(p * 4294967296), 4294967295);
  x.rt.dispatch(SPEC, [x.binding(), out.binding()], { values: [x.size, seed >>> 0, threshold, 1 / (1 - p)], format: 'uuuf' }, Math.ceil(x.size / WG));
  return out;
}

/**
 * x · mask / (1 - p) with mask[i] = hash(seed, i) ≥ p·2^32. `seed` is used as a u32 (seed >>> 0); the same seed
 * gives the same mask. p = 0 returns x itself; p = 1 gives zeros.
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (x.dtype !== 'f32') throw new TypeError(`dropout: expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  if (p === 0) return x;
  if (p === 1) return mulScalar(x, 0);
  const out = apply(x, p, seed);
  return record(out, 'dropout', [x], (g) => [apply(g, p, seed)]);
}
