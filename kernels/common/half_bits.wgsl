// f32 bits → half-precision bits in integer arithmetic, round to nearest even (the CPU reference is
// src/files/f16.ts f32BitsToF16Bits / f32BitsToBf16Bits, bit for bit). Integer arithmetic because WGSL lets an
// implementation pick either neighbour for a value between two f16s and leaves values beyond the f16 range
// indeterminate. Included by cast.wgsl (mixed precision) and convert.wgsl (a merge's F16/BF16 output).

/** IEEE binary16 bits of the f32 with bits `b`: round to nearest, ties to even; ±Inf on overflow; NaN stays NaN. */
fn f16_bits(b: u32) -> u32 {
  let sign = (b >> 16u) & 0x8000u;
  let ex = (b >> 23u) & 0xffu;
  let mant = b & 0x7fffffu;
  if (ex == 0xffu) {
    // Inf, or a quiet NaN keeping the top of the payload.
    return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u);
  }
  let e = i32(ex) - 112; // rebias 127 → 15
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    // An f16 subnormal (or zero): the implicit bit restored, shifted into place, rounded on the bits shifted out.
    if (e < -10) { return sign; }
    let m = mant | 0x800000u;
    let shift = u32(14 - e);
    let r = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    return sign | select(r, r + 1u, rem > half || (rem == half && (r & 1u) != 0u));
  }
  let r = (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  // A carry out of the mantissa bumps the exponent, and 0x7bff + 1 is +Inf: both correct.
  return sign | select(r, r + 1u, rem > 0x1000u || (rem == 0x1000u && (r & 1u) != 0u));
}

/** bfloat16 bits of the f32 with bits `b`: round to nearest, ties to even (a carry may reach ±Inf); NaN stays a quiet NaN. */
fn bf16_bits(b: u32) -> u32 {
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0u) { return ((b >> 16u) | 0x40u) & 0xffffu; }
  // b ≤ 0xff800000 here, so the sum stays below 2^32.
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
