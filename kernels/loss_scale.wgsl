// Dynamic loss scaling on the GPU (src/engine/train/loss-scale.ts), so a mixed-precision step never waits for a
// readback to decide whether it counts. The state is one small buffer:
//   [0] scale S (f32)   [1] good steps since the last change (u32)   [2] skipped steps in total (u32)
//   [3] the last skipped step (u32, 0: none)
//   unscale  grads *= 1/S over one chunk of the flat gradient buffer (the loss's gradient seed was S).
//   update   one invocation after the optimizer step: reads the total Σg² the step's gradient norms left
//            (kernels/gradnorm.wgsl; the optimizer skipped the update when it is not finite) and applies the
//            rules of LossScaleRules (the CPU reference, same file as above):
//              finite      good += 1; at growthInterval good steps S = min(2·S, maxScale), good = 0
//              not finite  skipped += 1, last = step, good = 0, S = S/2; while S ≥ minScale the overflow is
//                          handled, so the non-finite latch of the gradient norms is cleared (no error); below
//                          minScale it stays, and the trainer's "not finite at step N (layer)" error fires.
//#include "common/finite.wgsl"

override WG: u32 = 256u;

struct UnscaleParams {
  n: u32, // elements of the chunk
  _p0: u32,
  _p1: u32,
  _p2: u32,
}
@group(0) @binding(0) var<uniform> up: UnscaleParams;
@group(0) @binding(1) var<storage, read_write> u_grads: array<f32>;
@group(0) @binding(2) var<storage, read> u_state: array<f32>;

@compute @workgroup_size(WG)
fn unscale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= up.n) { return; }
  // S is a power of two unless configured otherwise, so 1/S is exact and unscaling loses nothing.
  u_grads[i] = u_grads[i] * (1.0 / u_state[0]);
}

struct UpdateParams {
  numTensors: u32,     // the norms buffer holds Σg² per tensor, the total at [numTensors], the latch after it
  step: u32,
  growthInterval: u32,
  _pad: u32,
  minScale: f32,
  maxScale: f32,
  _p1: u32,
  _p2: u32,
}
@group(0) @binding(0) var<uniform> sp: UpdateParams;
@group(0) @binding(1) var<storage, read_write> s_norms: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_state: array<u32>;

@compute @workgroup_size(1)
fn update() {
  let n = sp.numTensors;
  var scale = bitcast<f32>(s_state[0]);
  if (is_finite(s_norms[n])) {
    let good = s_state[1] + 1u;
    if (good >= sp.growthInterval) {
      scale = min(scale * 2.0, sp.maxScale);
      s_state[1] = 0u;
    } else {
      s_state[1] = good;
    }
  } else {
    scale = scale * 0.5;
    s_state[1] = 0u;
    s_state[2] = s_state[2] + 1u;
    s_state[3] = sp.step;
    if (scale >= sp.minScale) {
      s_norms[n + 1u] = 0.0;
      s_norms[n + 2u] = 0.0;
    }
  }
  s_state[0] = bitcast<u32>(scale);
}
