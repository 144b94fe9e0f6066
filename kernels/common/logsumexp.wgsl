// Running log-sum-exp ("online softmax", Milakov & Gimelshein 2018), for kernels that include this file with
// `//#include "common/logsumexp.wgsl"`. A state (m, s) holds the largest value m seen so far and s = Σ exp(x - m);
// log Σ exp(x) = m + log(s). Start from LSE_EMPTY.

// The running max starts at the lowest finite float, not -inf: a row of -inf (masked entries) would otherwise
// compute exp(-inf - -inf) = NaN.
const LSE_LOWEST: f32 = -3.4028234663852886e38;
const LSE_EMPTY: vec2f = vec2f(LSE_LOWEST, 0.0);

// Adds v to the state: (new m, new s, factor by which earlier exp-weighted sums must be scaled, exp weight of v).
// One of the two factors is always 1, so one exp per value. Kernels that accumulate exp-weighted vectors
// alongside s (attention's output rows) need the factors; the others use lse_push.
fn lse_step(ms: vec2f, v: f32) -> vec4f {
  if (v > ms.x) {
    let r = exp(ms.x - v);
    return vec4f(v, ms.y * r + 1.0, r, 1.0);
  }
  let w = exp(v - ms.x);
  return vec4f(ms.x, ms.y + w, 1.0, w);
}

fn lse_push(ms: vec2f, v: f32) -> vec2f {
  return lse_step(ms, v).xy;
}

// The state of the union of two sets of values.
fn lse_merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn lse_value(ms: vec2f) -> f32 {
  return ms.x + log(ms.y);
}
