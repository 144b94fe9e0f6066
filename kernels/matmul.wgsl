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

// One file for f32 and f16 operands (ops/matmul.ts passes the defines): {{E}} is the element type of A and B and
// {{V4}} its vec4, {{ENABLE}} is `enable f16;` for f16, and {{SUFFIX}} ("" or "_f16") names the entries. Every load
// widens to f32 (a no-op for f32), so sums, bias and C stay f32: mixed precision's products read half the bytes.
{{ENABLE}}

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

/** (output batches, batches summed into each output): (batch, 1), or (1, batch) when sum_batch. */
fn batches() -> vec2u {
  if (p.sum_batch != 0u) { return vec2u(1u, p.batch); }
  return vec2u(p.batch, 1u);
}

/** Linear workgroup-loop index g → (output batch, tile row, tile column). */
fn tile_of(g: u32) -> vec3u {
  let tiles = p.tiles_x * p.tiles_y;
  let ob = g / tiles;
  let t = g - ob * tiles;
  let ty = t / p.tiles_x;
  return vec3u(ob, ty, t - ty * p.tiles_x);
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
/** Invocations per workgroup along n (x) and m (y). */
override WGX: u32 = 8u;
override WGY: u32 = 8u;
/** Rows of C per invocation (≤ MAX_TM) and vec4 column groups per invocation (≤ MAX_TN4). */
override TM: u32 = 8u;
override TN4: u32 = 2u;

const MAX_TM: u32 = 8u;
const MAX_TN4: u32 = 2u;
const MAX_ACC: u32 = 16u; // MAX_TM * MAX_TN4

@group(0) @binding(1) var<storage, read> a: array<{{E}}>;
@group(0) @binding(2) var<storage, read> b: array<{{E}}>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WGX, WGY)
fn matmul_reg{{SUFFIX}}(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bs = batches();
  let out_batches = bs.x;
  let inner_batches = bs.y;
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
  let total = p.tiles_x * p.tiles_y * out_batches;
  let grid = nwg.x * nwg.y;
  for (var g = wid.x + wid.y * nwg.x; g < total; g += grid) {
    let tl = tile_of(g);
    let ob = tl.x;
    let ty = tl.y;
    let tx = tl.z;
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
          bv[j] = vec4f({{V4}}(b[o.x], b[o.y], b[o.z], b[o.w]));
        }
        for (var i = 0u; i < TM; i++) {
          let av = vec4f(f32(a[ao + ra[i]]));
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

// ---- matmul_vec4: the same product with vec4 loads and stores ----------------------------------------------
// For K and N multiples of 4 (and M too when TRANS_A). Each invocation computes an 8 × 8 block of C (two vec4 per
// row); per step of 4 along k it loads 8 vec4 of A and 8 of B, whatever the transposes: an operand is read along
// its contiguous dim and the fragments are rearranged in registers (free on a SIMD-lane machine). Strides and
// offsets in the uniform are in elements, as for matmul_reg.
@group(0) @binding(1) var<storage, read> a4: array<{{V4}}>;
@group(0) @binding(2) var<storage, read> b4: array<{{V4}}>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4f>;

fn ld_a(i: u32) -> vec4f { return vec4f(a4[i]); }
fn ld_b(i: u32) -> vec4f { return vec4f(b4[i]); }

@compute @workgroup_size(WGX, WGY)
fn matmul_vec4{{SUFFIX}}(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bs = batches();
  let out_batches = bs.x;
  let inner_batches = bs.y;
  let k4 = p.k / 4u;
  let n4 = p.n / 4u;
  let m4 = p.m / 4u;
  let total = p.tiles_x * p.tiles_y * out_batches;
  let grid = nwg.x * nwg.y;
  for (var g = wid.x + wid.y * nwg.x; g < total; g += grid) {
    let tl = tile_of(g);
    let ob = tl.x;
    let ty = tl.y;
    let tx = tl.z;
    let row0 = (ty * WGY + lid.y) * 8u;
    let col4 = (tx * WGX + lid.x) * 2u; // in vec4 units

    // Clamped load offsets (vec4 units). Not transposed, A rows start at row·k4; transposed, row vec4 h is at
    // column row0/4 + h of each k row. B likewise.
    var ra: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
      if (TRANS_A) {
        ra[i] = min(row0 / 4u + i, m4 - 1u); // only 0..1 used
      } else {
        ra[i] = min(row0 + i, p.m - 1u) * k4;
      }
    }
    var cb: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
      if (TRANS_B) {
        cb[j] = min(col4 * 4u + j, p.n - 1u) * k4;
      } else {
        cb[j] = min(col4 + j, n4 - 1u); // only 0..1 used
      }
    }

    var acc: array<vec4f, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4f(0.0); }

    for (var ib = 0u; ib < inner_batches; ib++) {
      let bt = ob + ib; // one of them is 0
      let ao = bt * (p.stride_a / 4u);
      let bo = bt * (p.stride_b / 4u);
      for (var kk = 0u; kk < k4; kk++) {
        // af[i]: row i of the A block over the 4 k; bf[2q + j]: k row q of the B block, column vec4 j.
        var af: array<vec4f, 8>;
        if (TRANS_A) {
          var at: array<vec4f, 8>;
          for (var q = 0u; q < 4u; q++) {
            for (var h = 0u; h < 2u; h++) { at[2u * q + h] = ld_a(ao + (4u * kk + q) * m4 + ra[h]); }
          }
          for (var h = 0u; h < 2u; h++) {
            for (var r = 0u; r < 4u; r++) {
              af[4u * h + r] = vec4f(at[h][r], at[2u + h][r], at[4u + h][r], at[6u + h][r]);
            }
          }
        } else {
          for (var i = 0u; i < 8u; i++) { af[i] = ld_a(ao + ra[i] + kk); }
        }
        var bf: array<vec4f, 8>;
        if (TRANS_B) {
          var bt4: array<vec4f, 8>;
          for (var j = 0u; j < 8u; j++) { bt4[j] = ld_b(bo + cb[j] + kk); }
          for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 2u; j++) {
              bf[2u * q + j] = vec4f(bt4[4u * j][q], bt4[4u * j + 1u][q], bt4[4u * j + 2u][q], bt4[4u * j + 3u][q]);
            }
          }
        } else {
          for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 2u; j++) { bf[2u * q + j] = ld_b(bo + (4u * kk + q) * n4 + cb[j]); }
          }
        }
        for (var i = 0u; i < 8u; i++) {
          for (var q = 0u; q < 4u; q++) {
            let av = vec4f(af[i][q]);
            acc[2u * i] = fma(av, bf[2u * q], acc[2u * i]);
            acc[2u * i + 1u] = fma(av, bf[2u * q + 1u], acc[2u * i + 1u]);
          }
        }
      }
    }

    let co = ob * (p.stride_c / 4u);
    for (var j = 0u; j < 2u; j++) {
      let cv = col4 + j;
      if (cv >= n4) { break; }
      var bj = vec4f(0.0);
      if (BIAS) {
        let c0 = cv * 4u;
        bj = vec4f(bias[c0], bias[c0 + 1u], bias[c0 + 2u], bias[c0 + 3u]);
      }
      for (var i = 0u; i < 8u; i++) {
        let row = row0 + i;
        if (row >= p.m) { break; }
        c4[co + row * n4 + cv] = acc[2u * i + j] + bj;
      }
    }
  }
}

// ---- matmul_vec4_wide: 16 × 16 blocks for large products on software adapters --------------------------------
// Same contract as matmul_vec4 (K and N multiples of 4), A not transposed. Each invocation computes a 16 × 16
// block of C (16 rows × 4 vec4 columns): per step of 4 along k it loads 16 vec4 of A (the same rows for every
// lane of a SIMD row, so lavapipe loads them once) and 16 of B (per-lane gathers), for 256 vec4 fmas: twice the
// fmas per gathered load of the 8 × 8 block. On lavapipe that doubles the throughput of a large product
// (measured 1.7 → 3.8 GFLOP per CPU-second at 1024³); it costs a slower first compile, so ops/matmul.ts uses it
// only for products large enough to repay it.
@compute @workgroup_size(WGX, WGY)
fn matmul_vec4_wide{{SUFFIX}}(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bs = batches();
  let out_batches = bs.x;
  let inner_batches = bs.y;
  let k4 = p.k / 4u;
  let n4 = p.n / 4u;
  let total = p.tiles_x * p.tiles_y * out_batches;
  let grid = nwg.x * nwg.y;
  for (var g = wid.x + wid.y * nwg.x; g < total; g += grid) {
    let tl = tile_of(g);
    let ob = tl.x;
    let ty = tl.y;
    let tx = tl.z;
    let row0 = (ty * WGY + lid.y) * 16u;
    let col4 = (tx * WGX + lid.x) * 4u; // in vec4 units

    var ra: array<u32, 16>;
    for (var i = 0u; i < 16u; i++) { ra[i] = min(row0 + i, p.m - 1u) * k4; }
    // Not transposed: B's vec4 column j of row k is at k·n4 + cb[j]. Transposed (B stored [N, K]): column n's
    // k-vector is at n·k4, for the 16 columns cb[r] (r = 4j + lane of the vec4).
    var cb: array<u32, 16>;
    for (var j = 0u; j < 16u; j++) {
      if (TRANS_B) {
        cb[j] = min(col4 * 4u + j, p.n - 1u) * k4;
      } else {
        cb[j] = min(col4 + j, n4 - 1u); // only 0..3 used
      }
    }

    var acc: array<vec4f, 64>;
    for (var i = 0u; i < 64u; i++) { acc[i] = vec4f(0.0); }

    for (var ib = 0u; ib < inner_batches; ib++) {
      let bt = ob + ib; // one of them is 0
      let ao = bt * (p.stride_a / 4u);
      let bo = bt * (p.stride_b / 4u);
      for (var kk = 0u; kk < k4; kk++) {
        // bf[4q + j]: k row q of the block, column vec4 j.
        var bf: array<vec4f, 16>;
        if (TRANS_B) {
          var bt4: array<vec4f, 16>;
          for (var r = 0u; r < 16u; r++) { bt4[r] = ld_b(bo + cb[r] + kk); }
          for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 4u; j++) {
              bf[4u * q + j] = vec4f(bt4[4u * j][q], bt4[4u * j + 1u][q], bt4[4u * j + 2u][q], bt4[4u * j + 3u][q]);
            }
          }
        } else {
          for (var q = 0u; q < 4u; q++) {
            let bq = bo + (4u * kk + q) * n4;
            for (var j = 0u; j < 4u; j++) { bf[4u * q + j] = ld_b(bq + cb[j]); }
          }
        }
        for (var i = 0u; i < 16u; i++) {
          let av = ld_a(ao + ra[i] + kk);
          for (var j = 0u; j < 4u; j++) {
            acc[4u * i + j] = fma(vec4f(av[3]), bf[12u + j], fma(vec4f(av[2]), bf[8u + j], fma(vec4f(av[1]), bf[4u + j], fma(vec4f(av[0]), bf[j], acc[4u * i + j]))));
          }
        }
      }
    }

    let co = ob * (p.stride_c / 4u);
    for (var j = 0u; j < 4u; j++) {
      let cv = col4 + j;
      if (cv >= n4) { break; }
      var bj = vec4f(0.0);
      if (BIAS) {
        let c0 = cv * 4u;
        bj = vec4f(bias[c0], bias[c0 + 1u], bias[c0 + 2u], bias[c0 + 3u]);
      }
      for (var i = 0u; i < 16u; i++) {
        let row = row0 + i;
        if (row >= p.m) { break; }
        c4[co + row * n4 + cv] = acc[4u * i + j] + bj;
      }
    }
  }
}
