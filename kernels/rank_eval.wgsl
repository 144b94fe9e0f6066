// Ranking evaluation without a [users, items] score matrix (src/engine/eval/ranking.ts; CPU reference:
// src/engine/cpu/ranking.ts).
//
// rank_full: one workgroup per user u. score(j) = h_u · E_j. Over the items j of the bound row range that are
// candidates — not the padding id, not one of the user's seen items (a sorted, deduplicated list; the host removes
// the target from it) — it counts the items scoring strictly above the target (`greater`) and exactly equal to it
// (`equal`, the target itself excluded), and keeps the user's top-K candidates (the target included: it is a
// recommendation like any other). Order of the top-K: higher score first, on equal scores the smaller id first.
//
// Row ranges: a table above one storage binding is processed one range [r0, r1) per dispatch (dispatches run in
// order). The first dispatch (first = 1) writes counts and top-K, later ones add to the counts and merge into the
// stored top-K. The target's score comes from its embedding row, gathered beforehand ([users, d], any range),
// and is computed by the same function as every item's score, so an item with the target's embedding ties exactly.
//
// Top-K in workgroup memory (K ≤ MAX_K = 128): 256 slots; [0, K) hold the running top-K (sorted), [K, 128)
// sentinels, [128, 256) the tile of 128 items just scored. When some tile item beats the K-th best, the 256 slots
// are bitonic-sorted (one compare-exchange per invocation per stage) and [0, K) is the new top-K. After the first
// tiles few items beat the K-th best, so most tiles skip the sort.
//
// rank_sampled: one invocation per user: the same counts over C given candidates (the sampled-negatives
// protocol), their embeddings gathered beforehand ([users, C, d]).

struct Params {
  users: u32,
  d: u32,
  r0: u32, // rows [r0, r1) of the table are bound, starting `lead` elements into the binding
  r1: u32,
  lead: u32,
  k: u32, // top-K length (1..MAX_K)
  first: u32, // 1: first range (write), 0: accumulate
  pad: u32, // the padding id, excluded; 0xffffffff = none
  seenBase: u32, // index in `seen` where the item lists start (after users + 1 offsets)
  cands: u32, // rank_sampled: candidates per user
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 128u;
const SLOTS: u32 = 256u;
const NONE: u32 = 0xffffffffu;
// The sentinel of an empty top-K slot: below every finite score, and every real id beats it on ties.
const LOWEST: f32 = -3.4028234e38;

@group(0) @binding(1) var<storage, read> hidden: array<f32>; // [users, d]
@group(0) @binding(2) var<storage, read> table: array<f32>; // rows [r0, r1) of [V, d]
@group(0) @binding(3) var<storage, read> temb: array<f32>; // [users, d]: each user's target row
@group(0) @binding(4) var<storage, read> targets: array<i32>; // [users]
@group(0) @binding(5) var<storage, read> seen: array<u32>; // offsets [users + 1], then the sorted item lists
@group(0) @binding(6) var<storage, read_write> counts: array<u32>; // [users, 2]: greater, equal
@group(0) @binding(7) var<storage, read_write> top: array<u32>; // [users, k, 2]: score bits, id

var<workgroup> sh_score: array<f32, SLOTS>;
var<workgroup> sh_id: array<u32, SLOTS>;
var<workgroup> sh_any: u32;
var<workgroup> sh_greater: atomic<u32>;
var<workgroup> sh_equal: atomic<u32>;

fn item_score(u: u32, j: u32) -> f32 {
  let hb = u * p.d;
  let eb = p.lead + (j - p.r0) * p.d;
  var s = 0.0;
  for (var c = 0u; c < p.d; c++) { s += hidden[hb + c] * table[eb + c]; }
  return s;
}

fn target_score(u: u32) -> f32 {
  let hb = u * p.d;
  var s = 0.0;
  for (var c = 0u; c < p.d; c++) { s += hidden[hb + c] * temb[hb + c]; }
  return s;
}

// Binary search in the user's sorted seen list.
fn is_seen(lo0: u32, hi0: u32, j: u32) -> bool {
  var lo = lo0;
  var hi = hi0;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    let v = seen[p.seenBase + mid];
    if (v == j) { return true; }
    if (v < j) { lo = mid + 1u; } else { hi = mid; }
  }
  return false;
}

// a ranks before b: higher score, then smaller id.
fn before(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
  return sa > sb || (sa == sb && ia < ib);
}

@compute @workgroup_size(WG)
fn rank_full(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Uniform across the workgroup (built from workgroup ids), so the early return keeps barriers uniform.
  let u = wid.x + wid.y * nwg.x;
  if (u >= p.users) { return; }
  let k = p.k;
  let t = u32(targets[u]);
  let st = target_score(u);
  let so = seen[u];
  let se = seen[u + 1u];

  if (lid == 0u) {
    atomicStore(&sh_greater, 0u);
    atomicStore(&sh_equal, 0u);
    sh_any = 0u;
  }
  // Running top-K: from the previous range, or empty.
  for (var i = lid; i < WG; i += WG) {
    if (i < k && p.first == 0u) {
      sh_score[i] = bitcast<f32>(top[(u * k + i) * 2u]);
      sh_id[i] = top[(u * k + i) * 2u + 1u];
    } else {
      sh_score[i] = LOWEST;
      sh_id[i] = NONE;
    }
  }
  workgroupBarrier();

  var greater = 0u;
  var equal = 0u;
  for (var tile = p.r0; tile < p.r1; tile += WG) {
    let j = tile + lid;
    var s = LOWEST;
    var id = NONE;
    if (j < p.r1 && j != p.pad && !is_seen(so, se, j)) {
      s = item_score(u, j);
      id = j;
      if (j != t) {
        if (s > st) { greater++; } else if (s == st) { equal++; }
      }
      if (k > 0u && before(s, id, sh_score[k - 1u], sh_id[k - 1u])) { sh_any = 1u; }
    }
    sh_score[WG + lid] = s;
    sh_id[WG + lid] = id;
    if (workgroupUniformLoad(&sh_any) != 0u) {
      // Bitonic sort of the 256 slots, best first.
      for (var size = 2u; size <= SLOTS; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
          let lo = 2u * lid - (lid & (stride - 1u));
          let hi = lo + stride;
          let sl = sh_score[lo];
          let il = sh_id[lo];
          let sh = sh_score[hi];
          let ih = sh_id[hi];
          // Blocks with (lo & size) == 0 sort best-first, the others worst-first; the last stage is all best-first.
          let swap = select(before(sl, il, sh, ih), before(sh, ih, sl, il), (lo & size) == 0u);
          if (swap) {
            sh_score[lo] = sh;
            sh_id[lo] = ih;
            sh_score[hi] = sl;
            sh_id[hi] = il;
          }
          workgroupBarrier();
        }
      }
      if (lid >= k) {
        sh_score[lid] = LOWEST;
        sh_id[lid] = NONE;
      }
      if (lid == 0u) { sh_any = 0u; }
    }
    workgroupBarrier();
  }

  atomicAdd(&sh_greater, greater);
  atomicAdd(&sh_equal, equal);
  workgroupBarrier();
  if (lid == 0u) {
    let g = atomicLoad(&sh_greater);
    let e = atomicLoad(&sh_equal);
    if (p.first != 0u) {
      counts[u * 2u] = g;
      counts[u * 2u + 1u] = e;
    } else {
      counts[u * 2u] += g;
      counts[u * 2u + 1u] += e;
    }
  }
  for (var i = lid; i < k; i += WG) {
    top[(u * k + i) * 2u] = bitcast<u32>(sh_score[i]);
    top[(u * k + i) * 2u + 1u] = sh_id[i];
  }
}

@group(0) @binding(1) var<storage, read> s_hidden: array<f32>; // [users, d]
@group(0) @binding(2) var<storage, read> s_cand: array<f32>; // [users, cands, d]
@group(0) @binding(3) var<storage, read> s_temb: array<f32>; // [users, d]
@group(0) @binding(4) var<storage, read_write> s_counts: array<u32>; // [users, 2]

@compute @workgroup_size(64)
fn rank_sampled(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let u = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (u >= p.users) { return; }
  let hb = u * p.d;
  var st = 0.0;
  for (var c = 0u; c < p.d; c++) { st += s_hidden[hb + c] * s_temb[hb + c]; }
  var g = 0u;
  var e = 0u;
  for (var i = 0u; i < p.cands; i++) {
    let cb = (u * p.cands + i) * p.d;
    var s = 0.0;
    for (var c = 0u; c < p.d; c++) { s += s_hidden[hb + c] * s_cand[cb + c]; }
    if (s > st) { g++; } else if (s == st) { e++; }
  }
  s_counts[u * 2u] = g;
  s_counts[u * 2u + 1u] = e;
}
