// Layer normalisation over the last axis (rows of length d): y = (x - mean) * rstd * w + b.
// Forward saves mean and rstd per row; backward recomputes x̂ = (x - mean) * rstd from them.
// Variance: the corrected two-pass algorithm (Chan, Golub & LeVeque 1983): m1 = Σx / d, then with c = x - m1,
// mean = m1 + Σc / d and var = (Σc² - (Σc)² / d) / d. The second pass is centred, so neither a large mean against
// a small spread nor an outlier cancels catastrophically, and the Σc term repairs the rounding of m1. (A one-pass
// E[(x-k)²] - E[x-k]² shifted by k = x[0] was 6.7e-2 off with an outlier at index 0, d = 4096.)
//   *_small: one invocation per row (no workgroup memory, no barriers).
//   *_rows:  one workgroup per row.
//   (rowLayout in ops/reduce.ts picks one by adapter and shape.)
//   layernorm_backward_params: dw, db as column sums over row chunks, written as [nchunks, d] partials
//   (the host sums the chunks with the reduce kernels when nchunks > 1).

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  chunk: u32,   // rows per chunk (params kernel)
  nchunks: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256u;

// ---- forward ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let inv_d = 1.0 / f32(p.d);
  // Corrected two-pass variance (see the header); a row read by one invocation stays in its cache, so the second
  // pass costs little. Sums go in blocks of 64 so that long rows keep their precision.
  var s = 0.0;
  var part = 0.0;
  for (var j = 0u; j < p.d; j++) {
    part += x[base + j];
    if ((j & 63u) == 63u) {
      s += part;
      part = 0.0;
    }
  }
  let m1 = (s + part) * inv_d;
  var acc = vec2f(0.0);
  var part2 = vec2f(0.0);
  for (var j = 0u; j < p.d; j++) {
    let c = x[base + j] - m1;
    part2 += vec2f(c, c * c);
    if ((j & 63u) == 63u) {
      acc += part2;
      part2 = vec2f(0.0);
    }
  }
  acc += part2;
  let mean = m1 + acc.x * inv_d;
  let q = max(acc.y - acc.x * acc.x * inv_d, 0.0);
  let rstd = inverseSqrt(q * inv_d + p.eps);
  for (var j = 0u; j < p.d; j++) { y[base + j] = (x[base + j] - mean) * rstd * w[j] + b[j]; }
  mean_out[row] = mean;
  rstd_out[row] = rstd;
}

var<workgroup> sh: array<vec2f, WG>;

// Sum of v over the workgroup, returned to every invocation. Must be called from uniform control flow.
fn wg_sum2(lid: u32, v: vec2f) -> vec2f {
  sh[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] += sh[lid + s]; }
    workgroupBarrier();
  }
  let r = sh[0];
  // Everyone has read sh[0] before a following call overwrites it.
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn layernorm_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup
  let base = row * p.d;
  let inv_d = 1.0 / f32(p.d);
  // Corrected two-pass variance (see the header): one tree for the first mean m1, one for Σ(x - m1) and
  // Σ(x - m1)². The row is read twice; on a GPU the second read hits the cache.
  var s = 0.0;
  var part = 0.0;
  var k = 0u;
  for (var j = lid; j < p.d; j += WG) {
    part += x[base + j];
    k++;
    if ((k & 63u) == 0u) {
      s += part;
      part = 0.0;
    }
  }
  let m1 = wg_sum2(lid, vec2f(s + part, 0.0)).x * inv_d;
  var acc = vec2f(0.0);
  var part2 = vec2f(0.0);
  k = 0u;
  for (var j = lid; j < p.d; j += WG) {
    let c = x[base + j] - m1;
    part2 += vec2f(c, c * c);
    k++;
    if ((k & 63u) == 0u) {
      acc += part2;
      part2 = vec2f(0.0);
    }
  }
  let tot = wg_sum2(lid, acc + part2);
  let mean = m1 + tot.x * inv_d;
  let rstd = inverseSqrt(max(tot.y - tot.x * tot.x * inv_d, 0.0) * inv_d + p.eps);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = (x[base + j] - mean) * rstd * w[j] + b[j]; }
  if (lid == 0u) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// ---- backward: dx ----------------------------------------------------------------------------------------
// With ĝ = g·w and x̂ = (x - mean)·rstd:  dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ·x̂)).
@group(0) @binding(1) var<storage, read> bg: array<f32>;
@group(0) @binding(2) var<storage, read> bx: array<f32>;
@group(0) @binding(3) var<storage, read> bw: array<f32>;
@group(0) @binding(4) var<storage, read> bmean: array<f32>;
@group(0) @binding(5) var<storage, read> brstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> bdx: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_small(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let mean = bmean[row];
  let rstd = brstd[row];
  var acc = vec2f(0.0);
  var part = vec2f(0.0);
  for (var j = 0u; j < p.d; j++) {
    let gw = bg[base + j] * bw[j];
    part += vec2f(gw, gw * (bx[base + j] - mean) * rstd);
    if ((j & 63u) == 63u) {
      acc += part;
      part = vec2f(0.0);
    }
  }
  acc += part;
  let inv_d = 1.0 / f32(p.d);
  let mg = acc.x * inv_d;
  let mgx = acc.y * inv_d;
  for (var j = 0u; j < p.d; j++) {
    let xh = (bx[base + j] - mean) * rstd;
    bdx[base + j] = rstd * (bg[base + j] * bw[j] - mg - xh * mgx);
  }
}

@compute @workgroup_size(WG)
fn layernorm_backward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let mean = bmean[row];
  let rstd = brstd[row];
  var acc = vec2f(0.0);
  for (var j = lid; j < p.d; j += WG) {
    let gw = bg[base + j] * bw[j];
    acc += vec2f(gw, gw * (bx[base + j] - mean) * rstd);
  }
  let tot = wg_sum2(lid, acc);
  let inv_d = 1.0 / f32(p.d);
  let mg = tot.x * inv_d;
  let mgx = tot.y * inv_d;
  for (var j = lid; j < p.d; j += WG) {
    let xh = (bx[base + j] - mean) * rstd;
    bdx[base + j] = rstd * (bg[base + j] * bw[j] - mg - xh * mgx);
  }
}

// ---- backward: dw = Σ_rows g·x̂, db = Σ_rows g ---------------------------------------------------------------
// One invocation per (row chunk, column): neighbouring invocations read neighbouring columns.
@group(0) @binding(1) var<storage, read> pg: array<f32>;
@group(0) @binding(2) var<storage, read> px: array<f32>;
@group(0) @binding(3) var<storage, read> pmean: array<f32>;
@group(0) @binding(4) var<storage, read> prstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_part: array<f32>;
@group(0) @binding(6) var<storage, read_write> db_part: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.nchunks * p.d) { return; }
  let j = t % p.d;
  let c = t / p.d;
  let start = c * p.chunk;
  let end = min(start + p.chunk, p.rows);
  var acc = vec2f(0.0); // (dw, db)
  var part = vec2f(0.0);
  for (var r = start; r < end; r++) {
    let g = pg[r * p.d + j];
    part += vec2f(g * (px[r * p.d + j] - pmean[r]) * prstd[r], g);
    if (((r - start) & 63u) == 63u) {
      acc += part;
      part = vec2f(0.0);
    }
  }
  acc += part;
  dw_part[t] = acc.x;
  db_part[t] = acc.y;
}
