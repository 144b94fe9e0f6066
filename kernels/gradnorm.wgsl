// Per-tensor gradient sums of squares over the flat gradient buffer, with no readback:
//   sumsq_blocks  one workgroup per layout block (blocks never straddle tensors) → partials[block]
//   sumsq_tensors one workgroup per tensor, sums its blocks' partials          → out[tensor]
//   sumsq_total   one workgroup, sums the non-frozen tensors                   → out[numTensors]
// Fixed-order tree reductions, no float atomics (WGSL has none): the result is deterministic run to run.
// NaN and ±Inf propagate through the sums (squares are ≥ 0, so Inf − Inf never arises), which is how the
// optimizer kernel learns that a step must be skipped.
// Segments table (see src/engine/optim/params.ts): u32 × 4 per tensor = [offset, size, flags, firstBlock].
//#include "common/finite.wgsl"

override WG: u32 = 256u;      // power of two (tree reduction)
override BLOCK: u32 = 1024u;  // FLAT_BLOCK: elements per layout block

const SEG_FROZEN: u32 = 2u;

var<workgroup> red: array<f32, WG>;

fn reduce_in_workgroup(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

// ---- sumsq_blocks: over one chunk of the layout (the grads binding starts at element elemBase) --------------
struct BlockParams {
  blockBase: u32,
  numBlocks: u32,
  elemBase: u32,
  _pad: u32,
}
@group(0) @binding(0) var<uniform> bp: BlockParams;
@group(0) @binding(1) var<storage, read> b_grads: array<f32>;
@group(0) @binding(2) var<storage, read> b_segments: array<u32>;
@group(0) @binding(3) var<storage, read> b_blocks: array<u32>;
@group(0) @binding(4) var<storage, read_write> b_partials: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;      // folded grids may hold more groups than blocks
  let valid = w < bp.numBlocks;
  var start = 0u;
  var end = 0u;
  if (valid) {
    let b = bp.blockBase + w;
    let t = b_blocks[b];
    let off = b_segments[t * 4u];
    let size = b_segments[t * 4u + 1u];
    start = off + (b - b_segments[t * 4u + 3u]) * BLOCK;
    end = min(start + BLOCK, off + size);
  }
  var s = 0.0;
  // Coalesced: consecutive invocations read consecutive elements.
  for (var i = start + lid; i < end; i = i + WG) {
    let g = b_grads[i - bp.elemBase];
    s = s + g * g;
  }
  // Every invocation reaches the barriers (no early return above).
  let total = reduce_in_workgroup(lid, s);
  if (valid && lid == 0u) { b_partials[bp.blockBase + w] = total; }
}

// ---- sumsq_tensors ----------------------------------------------------------------------------------------
struct TensorParams {
  numTensors: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}
@group(0) @binding(0) var<uniform> tp: TensorParams;
@group(0) @binding(1) var<storage, read> t_partials: array<f32>;
@group(0) @binding(2) var<storage, read> t_segments: array<u32>;
@group(0) @binding(3) var<storage, read_write> t_out: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_tensors(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x;
  let valid = t < tp.numTensors;
  var first = 0u;
  var nb = 0u;
  if (valid) {
    first = t_segments[t * 4u + 3u];
    nb = (t_segments[t * 4u + 1u] + BLOCK - 1u) / BLOCK;
  }
  var s = 0.0;
  for (var j = lid; j < nb; j = j + WG) { s = s + t_partials[first + j]; }
  let total = reduce_in_workgroup(lid, s);
  if (valid && lid == 0u) { t_out[t] = total; }
}

// ---- sumsq_total: out[numTensors] = Σ over non-frozen tensors (frozen gradients are never applied) ----------
// It also latches the FIRST non-finite step: when the total is NaN or ±Inf and out[numTensors + 1] is still 0, it
// stores the step number there and the index of the first non-finite non-frozen tensor in out[numTensors + 2]
// (both as u32 bit patterns). The trainer reads the latch with the norms it already reads on logging steps, so a
// divergence is named at the step it happened, with no extra readback per step. (_p0 carries the step.)
@group(0) @binding(0) var<uniform> sp: TensorParams;
@group(0) @binding(1) var<storage, read> s_segments: array<u32>;
@group(0) @binding(2) var<storage, read_write> s_out: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_total(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var t = lid; t < sp.numTensors; t = t + WG) {
    if ((s_segments[t * 4u + 2u] & SEG_FROZEN) == 0u) { s = s + s_out[t]; }
  }
  let total = reduce_in_workgroup(lid, s);
  if (lid == 0u) {
    let n = sp.numTensors;
    s_out[n] = total;
    if (!is_finite(total) && bitcast<u32>(s_out[n + 1u]) == 0u && sp._p0 != 0u) {
      var first = n;
      for (var t = 0u; t < n; t = t + 1u) {
        if ((s_segments[t * 4u + 2u] & SEG_FROZEN) == 0u && !is_finite(s_out[t])) { first = t; break; }
      }
      s_out[n + 1u] = bitcast<f32>(sp._p0);
      s_out[n + 2u] = bitcast<f32>(first);
    }
  }
}

