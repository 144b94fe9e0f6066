// bfloat16 rounding of mao's error-feedback residual (src/engine/cpu/mao.ts; kernels/mao.wgsl bf16_bits does the
// same bit arithmetic): round to nearest, ties to even, f32's range kept.
import * as assert from 'node:assert/strict';
import { bf16Round, bf16ToF32, f32ToBf16 } from '../../src/engine/cpu/mao';

describe('bf16 (mao error feedback storage)', () => {
  it('rounds to nearest with ties to even, keeps sign, range and exact values', () => {
    const ulp1 = 2 ** -7; // spacing of bf16 in [1, 2)
    assert.equal(bf16Round(1), 1);
    assert.equal(bf16Round(1 + ulp1 / 2), 1, 'a tie goes to the even mantissa (1)');
    assert.equal(bf16Round(1 + ulp1 + ulp1 / 2), 1 + 2 * ulp1, 'a tie goes to the even mantissa (1 + 2⁻⁶)');
    assert.equal(bf16Round(1 + ulp1 * 0.49), 1);
    assert.equal(bf16Round(1 + ulp1 * 0.51), 1 + ulp1);
    assert.equal(bf16Round(-3.140625), -3.140625, 'exactly representable');
    assert.equal(bf16Round(-Math.PI), -3.140625);
    // f16 would flush these: the residual of a small gradient keeps its magnitude.
    for (const x of [1e-9, -3e-20, 1e-38, 3e38]) {
      const y = bf16Round(x);
      assert.ok(Math.abs(y - x) <= Math.abs(x) * 2 ** -8, `${x} → ${y}`);
    }
    assert.equal(bf16Round(0), 0);
  });

  it('packs and unpacks: f32ToBf16 then bf16ToF32 equals bf16Round, element by element', () => {
    const xs = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 40) - 20));
    const back = bf16ToF32(f32ToBf16(xs));
    xs.forEach((x, i) => assert.equal(back[i], bf16Round(x), `element ${i}: ${x}`));
    assert.ok(back.some((y, i) => y !== xs[i]), 'some values change (the test would pass on an identity)');
  });
});
