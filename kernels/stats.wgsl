// Per-layer training statistics over the flat layout (src/engine/stats/layer-stats.ts), for EVERY tensor in a
// few dispatches, written straight into the frame payload of src/protocol/stats.ts so that one copy reads a
// whole sample back:
//   stats_blocks   one workgroup per layout block (blocks never straddle tensors), per chunk of the layout:
//                  Σg², Σw², Σ(w − w_prev)², Σm², Σv, max v and the 32-bin log10 histogram of v → partials[block]
//   stats_tensors  one workgroup per tensor: sums its blocks' partials in block order (deterministic, no float
//                  atomics) and writes the record's scalars and histogram into the payload
//   stats_profile  one invocation per row and per column of every tensor's [rows, cols] view of v, per chunk:
//                  vRow[i] = Σ_j v[i, j], vCol[j] = Σ_i v[i, j] (a tensor split over chunks accumulates, chunk
//                  after chunk, in dispatch order)
// Segments table (src/engine/optim/params.ts): u32 × 4 per tensor = [offset, size, flags, firstBlock].
// Stats table (layer-stats.ts): u32 × 4 per tensor = [payloadBase, rows, cols, 0].
//#include "common/finite.wgsl"

override WG: u32 = 256u;      // power of two (tree reduction)
override BLOCK: u32 = 1024u;  // FLAT_BLOCK
override PWG: u32 = 64u;      // stats_profile workgroup size = items per profile group

const BINS: u32 = 32u;          // HIST_BINS
const HIST_LO: f32 = -16.0;     // HIST_LO
const HIST_HI: f32 = 0.0;       // HIST_HI
const NSCALARS: u32 = 9u;       // SCALAR_KEYS.length
// Block partial record (u32 words): 6 f32 bit patterns [gg, ww, dd, mm, vsum, vmax], then BINS u32 counts.
const PART: u32 = 38u;
const LOG10_2: f32 = 0.30102999566398120;


// log10 histogram bin of v: v ≤ 0 (zeros) and values below 10^HIST_LO → 0; above 10^HIST_HI, +Inf and NaN →
// the last bin. Mirrors histBin() in src/engine/cpu/stats.ts.
fn hist_bin(v: f32) -> u32 {
  if (!is_finite(v)) { return BINS - 1u; }
  if (!(v > 0.0)) { return 0u; }
  let f = (log2(v) * LOG10_2 - HIST_LO) * (f32(BINS) / (HIST_HI - HIST_LO));
  return u32(clamp(floor(f), 0.0, f32(BINS - 1u)));
}

// ---- stats_blocks ----------------------------------------------------------------------------------------
struct BlockParams {
  blockBase: u32,
  numBlocks: u32,
  elemBase: u32,
  hasPrev: u32,
  hasM: u32,
  hasV: u32,
}
@group(0) @binding(0) var<uniform> bp: BlockParams;
@group(0) @binding(1) var<storage, read> b_grads: array<f32>;
@group(0) @binding(2) var<storage, read> b_params: array<f32>;
@group(0) @binding(3) var<storage, read> b_prev: array<f32>;
@group(0) @binding(4) var<storage, read> b_m: array<f32>;
@group(0) @binding(5) var<storage, read> b_v: array<f32>;
@group(0) @binding(6) var<storage, read> b_segments: array<u32>;
@group(0) @binding(7) var<storage, read> b_blocks: array<u32>;
@group(0) @binding(8) var<storage, read_write> b_partials: array<u32>;

var<workgroup> redA: array<vec4<f32>, WG>;   // gg, ww, dd, mm
var<workgroup> redB: array<vec2<f32>, WG>;   // vsum, vmax
var<workgroup> hist: array<atomic<u32>, BINS>;

@compute @workgroup_size(WG)
fn stats_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;      // folded grids may hold more groups than blocks
  let valid = w < bp.numBlocks;
  var start = 0u;
  var end = 0u;
  if (valid) {
    let b = bp.blockBase + w;
    let t = b_blocks[b];
    let off = b_segments[t * 4u];
    start = off + (b - b_segments[t * 4u + 3u]) * BLOCK;
    end = min(start + BLOCK, off + b_segments[t * 4u + 1u]);
  }
  if (lid < BINS) { atomicStore(&hist[lid], 0u); }
  workgroupBarrier();
  var a = vec4<f32>(0.0);
  var vs = 0.0;
  var vm = 0.0;
  for (var gi = start + lid; gi < end; gi = gi + WG) {
    let i = gi - bp.elemBase;
    let g = b_grads[i];
    let p = b_params[i];
    var d = 0.0;
    if (bp.hasPrev != 0u) { d = p - b_prev[i]; }
    var m = 0.0;
    if (bp.hasM != 0u) { m = b_m[i]; }
    a = a + vec4<f32>(g * g, p * p, d * d, m * m);
    if (bp.hasV != 0u) {
      let v = b_v[i];
      vs = vs + v;
      vm = max(vm, v);
      atomicAdd(&hist[hist_bin(v)], 1u);
    }
  }
  redA[lid] = a;
  redB[lid] = vec2<f32>(vs, vm);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      redA[lid] = redA[lid] + redA[lid + s];
      let x = redB[lid];
      let y = redB[lid + s];
      redB[lid] = vec2<f32>(x.x + y.x, max(x.y, y.y));
    }
    workgroupBarrier();
  }
  if (valid) {
    let base = (bp.blockBase + w) * PART;
    if (lid == 0u) {
      let r = redA[0];
      let q = redB[0];
      b_partials[base] = bitcast<u32>(r.x);
      b_partials[base + 1u] = bitcast<u32>(r.y);
      b_partials[base + 2u] = bitcast<u32>(r.z);
      b_partials[base + 3u] = bitcast<u32>(r.w);
      b_partials[base + 4u] = bitcast<u32>(q.x);
      b_partials[base + 5u] = bitcast<u32>(q.y);
    }
    if (lid < BINS) { b_partials[base + 6u + lid] = atomicLoad(&hist[lid]); }
  }
}

// ---- stats_tensors ---------------------------------------------------------------------------------------
// Payload record: scalars [gradNorm, weightNorm, updateRatio, momentumNorm, vMean, vMax, vP50, vP90, vP99]
// (SCALAR_KEYS order), then hist[BINS]. The quantiles are left 0 here: the host fills them from the histogram
// with histQuantile(), the one definition shared with every reader.
struct TensorParams {
  numTensors: u32,
  maxNorm: f32,     // > 0: the optimizer clipped by min(1, maxNorm / (‖g‖_total + 1e-6)); 0: no clipping
}
@group(0) @binding(0) var<uniform> tp: TensorParams;
@group(0) @binding(1) var<storage, read> t_partials: array<u32>;
@group(0) @binding(2) var<storage, read> t_segments: array<u32>;
@group(0) @binding(3) var<storage, read> t_table: array<u32>;
@group(0) @binding(4) var<storage, read> t_norms: array<f32>;
@group(0) @binding(5) var<storage, read_write> t_payload: array<f32>;

var<workgroup> fields: array<f32, PART>;

@compute @workgroup_size(64)
fn stats_tensors(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= tp.numTensors) { return; }   // uniform per workgroup: no barrier is skipped by part of a group
  let size = t_segments[t * 4u + 1u];
  let first = t_segments[t * 4u + 3u];
  let nb = (size + BLOCK - 1u) / BLOCK;
  // One invocation per field, blocks summed in order.
  if (lid < PART) {
    var acc = 0.0;
    var cnt = 0u;
    for (var j = 0u; j < nb; j = j + 1u) {
      let word = t_partials[(first + j) * PART + lid];
      if (lid == 5u) { acc = max(acc, bitcast<f32>(word)); }
      else if (lid < 6u) { acc = acc + bitcast<f32>(word); }
      else { cnt = cnt + word; }
    }
    if (lid < 6u) { fields[lid] = acc; } else { fields[lid] = f32(cnt); }
  }
  workgroupBarrier();
  let base = t_table[t * 4u];
  if (lid == 0u) {
    var scale = 1.0;
    if (tp.maxNorm > 0.0) { scale = min(1.0, tp.maxNorm / (sqrt(t_norms[tp.numTensors]) + 1e-6)); }
    let wn = sqrt(fields[1]);
    var ratio = 0.0;
    if (wn > 0.0) { ratio = sqrt(fields[2]) / wn; }
    var mean = 0.0;
    if (size > 0u) { mean = fields[4] / f32(size); }
    t_payload[base] = sqrt(fields[0]) * scale;
    t_payload[base + 1u] = wn;
    t_payload[base + 2u] = ratio;
    t_payload[base + 3u] = sqrt(fields[3]);
    t_payload[base + 4u] = mean;
    t_payload[base + 5u] = fields[5];
    t_payload[base + 6u] = 0.0;
    t_payload[base + 7u] = 0.0;
    t_payload[base + 8u] = 0.0;
  }
  if (lid < BINS) { t_payload[base + NSCALARS + lid] = fields[6u + lid]; }
}

// ---- stats_profile ---------------------------------------------------------------------------------------
// groups: u32 × 2 per profile group = [tensor | (1 << 31 for a column group), first row or column]. A group
// covers PWG consecutive rows (or columns) of one tensor. Dispatched per chunk over the groups of the tensors
// that overlap the chunk; each invocation sums its row or column over the part of the tensor inside the chunk,
// and adds to what earlier chunks wrote unless the tensor starts in this chunk.
struct ProfileParams {
  groupBase: u32,
  numGroups: u32,
  elemBase: u32,     // the chunk: elements [elemBase, elemEnd) of the flat buffer, bound from elemBase
  elemEnd: u32,
  blockBase: u32,    // the chunk's first block
}
@group(0) @binding(0) var<uniform> pp: ProfileParams;
@group(0) @binding(1) var<storage, read> p_v: array<f32>;
@group(0) @binding(2) var<storage, read> p_segments: array<u32>;
@group(0) @binding(3) var<storage, read> p_table: array<u32>;
@group(0) @binding(4) var<storage, read> p_groups: array<u32>;
@group(0) @binding(5) var<storage, read_write> p_payload: array<f32>;

@compute @workgroup_size(PWG)
fn stats_profile(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= pp.numGroups) { return; }
  let gword = p_groups[(pp.groupBase + w) * 2u];
  let t = gword & 0x7fffffffu;
  let isCol = (gword >> 31u) != 0u;
  let item = p_groups[(pp.groupBase + w) * 2u + 1u] + lid;
  let off = p_segments[t * 4u];
  let size = p_segments[t * 4u + 1u];
  let firstBlock = p_segments[t * 4u + 3u];
  let base = p_table[t * 4u];
  let rows = p_table[t * 4u + 1u];
  let cols = p_table[t * 4u + 2u];
  // The tensor's elements inside this chunk, relative to the tensor's start.
  let lo = clamp(pp.elemBase, off, off + size) - off;
  let hi = clamp(pp.elemEnd, off, off + size) - off;
  var s = 0.0;
  var slot = 0u;
  if (isCol) {
    if (item >= cols) { return; }
    slot = base + NSCALARS + BINS + rows + item;
    // Rows r with lo ≤ r·cols + item < hi.
    var r = 0u;
    if (lo > item) { r = (lo - item + cols - 1u) / cols; }
    for (var k = r * cols + item; k < hi; k = k + cols) { s = s + p_v[off + k - pp.elemBase]; }
  } else {
    if (item >= rows) { return; }
    slot = base + NSCALARS + BINS + item;
    let k0 = max(item * cols, lo);
    let k1 = min(item * cols + cols, hi);
    for (var k = k0; k < k1; k = k + 1u) { s = s + p_v[off + k - pp.elemBase]; }
  }
  if (firstBlock < pp.blockBase) { s = s + p_payload[slot]; }
  p_payload[slot] = s;
}

// ---- stats_sample: a stratified random sample of v per tensor, for its quantiles --------------------------------
// A tensor of `size` elements gets `count` = min(size, its sample budget) sample slots; slot i draws one element
// uniformly from the i-th of `count` equal strata of the tensor ([i·q + min(i, r), …) with q = size / count,
// r = size % count), so a tensor no larger than its budget is copied whole (exact quantiles) and a larger one is
// covered evenly with no stride aliasing against its row length. One invocation per slot, grouped SWG slots per
// workgroup ([tensor, first slot] per group, like the profile groups); dispatched per chunk, each slot written by
// the chunk that holds its element. The host sorts each sample (layer-stats.ts).
// Sample table: u32 × 2 per tensor = [sampleBase, count].
struct SampleParams {
  groupBase: u32,
  numGroups: u32,
  elemBase: u32,
  elemEnd: u32,
  seed: u32,
}
@group(0) @binding(0) var<uniform> qp: SampleParams;
@group(0) @binding(1) var<storage, read> q_v: array<f32>;
@group(0) @binding(2) var<storage, read> q_segments: array<u32>;
@group(0) @binding(3) var<storage, read> q_table: array<u32>;
@group(0) @binding(4) var<storage, read> q_groups: array<u32>;
@group(0) @binding(5) var<storage, read_write> q_out: array<f32>;

// PCG-style integer hash (one round): decorrelates neighbouring slots.
fn sample_hash(x: u32) -> u32 {
  let s = x * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(PWG)
fn stats_sample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= qp.numGroups) { return; }
  let t = q_groups[(qp.groupBase + w) * 2u];
  let i = q_groups[(qp.groupBase + w) * 2u + 1u] + lid;
  let count = q_table[t * 2u + 1u];
  if (i >= count) { return; }
  let off = q_segments[t * 4u];
  let size = q_segments[t * 4u + 1u];
  let q = size / count;
  let r = size % count;
  var len = q;
  if (i < r) { len = q + 1u; }
  let start = i * q + min(i, r);
  let pos = off + start + sample_hash(i ^ (t * 2654435761u) ^ qp.seed) % len;
  if (pos < qp.elemBase || pos >= qp.elemEnd) { return; }
  q_out[q_table[t * 2u] + i] = q_v[pos - qp.elemBase];
}
