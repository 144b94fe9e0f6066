// Matrix multiply C[b] = op(A[b]) · op(B[b]) (+ bias[n]), op = identity or transpose, read in place.
//   A is stored [M, K] (TRANS_A: [K, M]), B is stored [K, N] (TRANS_B: [N, K]), C is [M, N], all row-major.
//   Batch b advances A, B and C by stride_a, stride_b, stride_c elements (0 shares a 2-D operand).
//   sum_batch = 1: the batch is part of the contraction, C = Σ_b op(A[b]) · op(B[b]) (the gradient of an
//   operand shared across a batch), with one output matrix.
//
// Entry matmul_reg: register-blocked, no workgroup memory and no barriers. Each invocation computes a TM × 4·TN4
// block of C with its accumulators in registers; per step of k it loads TM values of A and 4·TN4 of B and does
// TM·TN4 vec4 fmas. On a software adapter (lavapipe) an invocation is one SIMD lane of a CPU thread, so barriers
// and workgroup memory cost more than they save and this is the fast layout.
// Edges: row and column indices are clamped into range for loads (no branch in the k loop) and only the stores
// are guarded, so any M, N, K works.
// Workgroups are linearised (wid.x + wid.y * nwg.x) over tiles_x · tiles_y · out_batches, and each loops with a
// stride of the whole grid, so no dimension is limited by the 65,535-group limit.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  batch: u32,
  stride_a: u32,
  stride_b: u32,
  stride_c: u32,
  sum_batch: u32,
  tiles_x: u32,
  tiles_y: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
/** Invocations per workgroup along n (x) and m (y). */
override WGX: u32 = 8u;
override WGY: u32 = 8u;
/** Rows of C per invocation (≤ MAX_TM) and vec4 column groups per invocation (≤ MAX_TN4). */
const TM: u32 = 8u;
const TN4: u32 = 2u;

const MAX_TM: u32 = 8u;
const MAX_TN4: u32 = 2u;
const MAX_ACC: u32 = 16u; // MAX_TM * MAX_TN4

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WGX, WGY)
fn matmul_reg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tiles = p.tiles_x * p.tiles_y;
  var out_batches = p.batch;
  var inner_batches = 1u;
  if (p.sum_batch != 0u) {
    out_batches = 1u;
    inner_batches = p.batch;
  }
  // Element steps of A along k and across rows, of B along k and across columns.
  var a_k = 1u;
  var a_row = p.k;
  if (TRANS_A) {
    a_k = p.m;
    a_row = 1u;
  }
  var b_k = p.n;
  var b_col = 1u;
  if (TRANS_B) {
    b_k = 1u;
    b_col = p.k;
  }
  let total = tiles * out_batches;
  let grid = nwg.x * nwg.y;
  for (var g = wid.x + wid.y * nwg.x; g < total; g += grid) {
    let ob = g / tiles;
    let t = g - ob * tiles;
    let ty = t / p.tiles_x;
    let tx = t - ty * p.tiles_x;
    let row0 = (ty * WGY + lid.y) * TM;
    let col0 = (tx * WGX + lid.x) * (4u * TN4);

    // Clamped load offsets: out-of-range rows and columns repeat the last one and are never stored.
    var ra: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) { ra[i] = min(row0 + i, p.m - 1u) * a_row; }
    var cn: array<vec4u, MAX_TN4>;
    var cb: array<vec4u, MAX_TN4>;
    for (var j = 0u; j < TN4; j++) {
      let c0 = col0 + 4u * j;
      let last = p.n - 1u;
      cn[j] = vec4u(min(c0, last), min(c0 + 1u, last), min(c0 + 2u, last), min(c0 + 3u, last));
      cb[j] = cn[j] * b_col;
    }

    var acc: array<vec4f, MAX_ACC>;
    for (var i = 0u; i < TM * TN4; i++) { acc[i] = vec4f(0.0); }

    for (var ib = 0u; ib < inner_batches; ib++) {
      let bt = ob + ib; // one of them is 0
      var ao = bt * p.stride_a;
      var bo = bt * p.stride_b;
      for (var kk = 0u; kk < p.k; kk++) {
        var bv: array<vec4f, MAX_TN4>;
        for (var j = 0u; j < TN4; j++) {
          let o = cb[j] + vec4u(bo);
          bv[j] = vec4f(b[o.x], b[o.y], b[o.z], b[o.w]);
        }
        for (var i = 0u; i < TM; i++) {
          let av = vec4f(a[ao + ra[i]]);
          for (var j = 0u; j < TN4; j++) { acc[i * TN4 + j] = fma(av, bv[j], acc[i * TN4 + j]); }
        }
        ao += a_k;
        bo += b_k;
      }
    }

    let co = ob * p.stride_c;
    for (var j = 0u; j < TN4; j++) {
      var bj = vec4f(0.0);
      if (BIAS) {
        let o = cn[j];
        bj = vec4f(bias[o.x], bias[o.y], bias[o.z], bias[o.w]);
      }
      for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if (row >= p.m) { break; }
        let v = acc[i * TN4 + j] + bj;
        let base = co + row * p.n;
        for (var q = 0u; q < 4u; q++) {
          let col = col0 + 4u * j + q;
          if (col < p.n) { c[base + col] = v[q]; }
        }
      }
    }
  }
}

// ---- vec4 variant: M, N and K multiples of 4 -------------------------------------------------------------
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4f>;

@compute @workgroup_size(WGX, WGY)
fn matmul_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tiles = p.tiles_x * p.tiles_y;
  let total = tiles * p.batch;
  let grid = nwg.x * nwg.y;
  let k4 = p.k / 4u;
  let n4 = p.n / 4u;
  for (var g = wid.x + wid.y * nwg.x; g < total; g += grid) {
    let ob = g / tiles;
    let t = g - ob * tiles;
    let ty = t / p.tiles_x;
    let tx = t - ty * p.tiles_x;
    let row0 = (ty * WGY + lid.y) * 8u;
    let col4 = (tx * WGX + lid.x) * 2u; // in vec4 units
    var ra: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) { ra[i] = min(row0 + i, p.m - 1u) * k4; }
    let cb0 = min(col4, n4 - 1u);
    let cb1 = min(col4 + 1u, n4 - 1u);
    var acc: array<vec4f, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4f(0.0); }
    var bo = 0u;
    for (var kk = 0u; kk < k4; kk++) {
      var bq: array<vec4f, 8>;
      for (var q = 0u; q < 4u; q++) {
        bq[2u * q] = b4[bo + q * n4 + cb0];
        bq[2u * q + 1u] = b4[bo + q * n4 + cb1];
      }
      for (var i = 0u; i < 8u; i++) {
        let av = a4[ra[i] + kk];
        for (var q = 0u; q < 4u; q++) {
          acc[2u * i] = fma(vec4f(av[q]), bq[2u * q], acc[2u * i]);
          acc[2u * i + 1u] = fma(vec4f(av[q]), bq[2u * q + 1u], acc[2u * i + 1u]);
        }
      }
      bo += 4u * n4;
    }
    for (var i = 0u; i < 8u; i++) {
      let row = row0 + i;
      if (row < p.m) {
        if (col4 < n4) { c4[row * n4 + col4] = acc[2u * i]; }
        if (col4 + 1u < n4) { c4[row * n4 + col4 + 1u] = acc[2u * i + 1u]; }
      }
    }
  }
}

@compute @workgroup_size(WGX, WGY)
fn matmul_x(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k4 = p.k / 4u;
  let n4 = p.n / 4u;
  let row0 = (wid.y * WGY + lid.y) * 8u;
  let col4 = (wid.x * WGX + lid.x) * 2u;
  let cb0 = min(col4, n4 - 1u);
  let cb1 = min(col4 + 1u, n4 - 1u);
  let ra0 = min(row0 + 0u, p.m - 1u) * k4;
  let ra1 = min(row0 + 1u, p.m - 1u) * k4;
  let ra2 = min(row0 + 2u, p.m - 1u) * k4;
  let ra3 = min(row0 + 3u, p.m - 1u) * k4;
  let ra4 = min(row0 + 4u, p.m - 1u) * k4;
  let ra5 = min(row0 + 5u, p.m - 1u) * k4;
  let ra6 = min(row0 + 6u, p.m - 1u) * k4;
  let ra7 = min(row0 + 7u, p.m - 1u) * k4;
  var c00 = vec4f(0.0); var c01 = vec4f(0.0);
  var c10 = vec4f(0.0); var c11 = vec4f(0.0);
  var c20 = vec4f(0.0); var c21 = vec4f(0.0);
  var c30 = vec4f(0.0); var c31 = vec4f(0.0);
  var c40 = vec4f(0.0); var c41 = vec4f(0.0);
  var c50 = vec4f(0.0); var c51 = vec4f(0.0);
  var c60 = vec4f(0.0); var c61 = vec4f(0.0);
  var c70 = vec4f(0.0); var c71 = vec4f(0.0);
  var bo = 0u;
  for (var kk = 0u; kk < k4; kk++) {
    let b00 = b4[bo + 0u * n4 + cb0]; let b01 = b4[bo + 0u * n4 + cb1];
    let b10 = b4[bo + 1u * n4 + cb0]; let b11 = b4[bo + 1u * n4 + cb1];
    let b20 = b4[bo + 2u * n4 + cb0]; let b21 = b4[bo + 2u * n4 + cb1];
    let b30 = b4[bo + 3u * n4 + cb0]; let b31 = b4[bo + 3u * n4 + cb1];
    let av0 = a4[ra0 + kk];
    c00 = fma(vec4f(av0[0]), b00, c00); c01 = fma(vec4f(av0[0]), b01, c01);
    c00 = fma(vec4f(av0[1]), b10, c00); c01 = fma(vec4f(av0[1]), b11, c01);
    c00 = fma(vec4f(av0[2]), b20, c00); c01 = fma(vec4f(av0[2]), b21, c01);
    c00 = fma(vec4f(av0[3]), b30, c00); c01 = fma(vec4f(av0[3]), b31, c01);
    let av1 = a4[ra1 + kk];
    c10 = fma(vec4f(av1[0]), b00, c10); c11 = fma(vec4f(av1[0]), b01, c11);
    c10 = fma(vec4f(av1[1]), b10, c10); c11 = fma(vec4f(av1[1]), b11, c11);
    c10 = fma(vec4f(av1[2]), b20, c10); c11 = fma(vec4f(av1[2]), b21, c11);
    c10 = fma(vec4f(av1[3]), b30, c10); c11 = fma(vec4f(av1[3]), b31, c11);
    let av2 = a4[ra2 + kk];
    c20 = fma(vec4f(av2[0]), b00, c20); c21 = fma(vec4f(av2[0]), b01, c21);
    c20 = fma(vec4f(av2[1]), b10, c20); c21 = fma(vec4f(av2[1]), b11, c21);
    c20 = fma(vec4f(av2[2]), b20, c20); c21 = fma(vec4f(av2[2]), b21, c21);
    c20 = fma(vec4f(av2[3]), b30, c20); c21 = fma(vec4f(av2[3]), b31, c21);
    let av3 = a4[ra3 + kk];
    c30 = fma(vec4f(av3[0]), b00, c30); c31 = fma(vec4f(av3[0]), b01, c31);
    c30 = fma(vec4f(av3[1]), b10, c30); c31 = fma(vec4f(av3[1]), b11, c31);
    c30 = fma(vec4f(av3[2]), b20, c30); c31 = fma(vec4f(av3[2]), b21, c31);
    c30 = fma(vec4f(av3[3]), b30, c30); c31 = fma(vec4f(av3[3]), b31, c31);
    let av4 = a4[ra4 + kk];
    c40 = fma(vec4f(av4[0]), b00, c40); c41 = fma(vec4f(av4[0]), b01, c41);
    c40 = fma(vec4f(av4[1]), b10, c40); c41 = fma(vec4f(av4[1]), b11, c41);
    c40 = fma(vec4f(av4[2]), b20, c40); c41 = fma(vec4f(av4[2]), b21, c41);
    c40 = fma(vec4f(av4[3]), b30, c40); c41 = fma(vec4f(av4[3]), b31, c41);
    let av5 = a4[ra5 + kk];
    c50 = fma(vec4f(av5[0]), b00, c50); c51 = fma(vec4f(av5[0]), b01, c51);
    c50 = fma(vec4f(av5[1]), b10, c50); c51 = fma(vec4f(av5[1]), b11, c51);
    c50 = fma(vec4f(av5[2]), b20, c50); c51 = fma(vec4f(av5[2]), b21, c51);
    c50 = fma(vec4f(av5[3]), b30, c50); c51 = fma(vec4f(av5[3]), b31, c51);
    let av6 = a4[ra6 + kk];
    c60 = fma(vec4f(av6[0]), b00, c60); c61 = fma(vec4f(av6[0]), b01, c61);
    c60 = fma(vec4f(av6[1]), b10, c60); c61 = fma(vec4f(av6[1]), b11, c61);
    c60 = fma(vec4f(av6[2]), b20, c60); c61 = fma(vec4f(av6[2]), b21, c61);
    c60 = fma(vec4f(av6[3]), b30, c60); c61 = fma(vec4f(av6[3]), b31, c61);
    let av7 = a4[ra7 + kk];
    c70 = fma(vec4f(av7[0]), b00, c70); c71 = fma(vec4f(av7[0]), b01, c71);
    c70 = fma(vec4f(av7[1]), b10, c70); c71 = fma(vec4f(av7[1]), b11, c71);
    c70 = fma(vec4f(av7[2]), b20, c70); c71 = fma(vec4f(av7[2]), b21, c71);
    c70 = fma(vec4f(av7[3]), b30, c70); c71 = fma(vec4f(av7[3]), b31, c71);
    bo += 4u * n4;
  }
  if (row0 + 0u < p.m) { let o = (row0 + 0u) * n4 + col4; if (col4 < n4) { c4[o] = c00; } if (col4 + 1u < n4) { c4[o + 1u] = c01; } }
  if (row0 + 1u < p.m) { let o = (row0 + 1u) * n4 + col4; if (col4 < n4) { c4[o] = c10; } if (col4 + 1u < n4) { c4[o + 1u] = c11; } }
  if (row0 + 2u < p.m) { let o = (row0 + 2u) * n4 + col4; if (col4 < n4) { c4[o] = c20; } if (col4 + 1u < n4) { c4[o + 1u] = c21; } }
  if (row0 + 3u < p.m) { let o = (row0 + 3u) * n4 + col4; if (col4 < n4) { c4[o] = c30; } if (col4 + 1u < n4) { c4[o + 1u] = c31; } }
  if (row0 + 4u < p.m) { let o = (row0 + 4u) * n4 + col4; if (col4 < n4) { c4[o] = c40; } if (col4 + 1u < n4) { c4[o + 1u] = c41; } }
  if (row0 + 5u < p.m) { let o = (row0 + 5u) * n4 + col4; if (col4 < n4) { c4[o] = c50; } if (col4 + 1u < n4) { c4[o + 1u] = c51; } }
  if (row0 + 6u < p.m) { let o = (row0 + 6u) * n4 + col4; if (col4 < n4) { c4[o] = c60; } if (col4 + 1u < n4) { c4[o + 1u] = c61; } }
  if (row0 + 7u < p.m) { let o = (row0 + 7u) * n4 + col4; if (col4 < n4) { c4[o] = c70; } if (col4 + 1u < n4) { c4[o + 1u] = c71; } }
}
