// WGSL has no isnan/isinf (and compilers may assume floats are finite): an f32 is NaN or ±Inf iff its exponent
// bits are all ones. Include with `//#include "common/finite.wgsl"`.
fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
