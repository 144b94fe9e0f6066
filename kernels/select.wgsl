// Top-k selection without sorting (src/engine/ops/select.ts; CPU reference src/engine/cpu/select.ts).
//
// Every element gets a 64-bit composite key (hi, lo): hi orders the values as unsigned integers (abs mode: the
// bits of |x|, which order non-negative floats; signed mode: the sign-flipped bits), lo = ~index, so that among
// equal values the LOWER index ranks higher. All keys are distinct, so "the k-th largest key" keeps exactly k
// elements: ties at the threshold are resolved by index, deterministically. The k-th largest key is found by a
// radix select, most significant byte first: per byte a 256-bin histogram of the elements whose higher bytes match
// the prefix found so far (sel_hist), then one invocation walks the bins from the top (sel_scan) and fixes the
// byte. Index bytes that are the same for every element (n ≤ 2^(8m)) are fixed on the host and skipped.
// The index bytes matter only when ties at the threshold value straddle it. When the last value byte leaves every
// element of that value kept (rank still to find = their count, the usual case for real-valued data), the k-th
// largest key is the one of the highest index among them: one pass (sel_tie, an atomic max) finds it and the
// index passes return at once.
//
// State (u32): [0] hi prefix, [1] lo prefix, [2] rank still to find inside the current prefix (1-based),
// [3] 0 = index passes run; 1 = tie mode (set by the last value scan), then 2 + the highest tied index.

struct SelParams {
  n: u32,        // elements in this binding-sized piece
  lead: u32,     // elements from the binding's start to the piece's first element
  base: u32,     // global index of the piece's first element
  absMode: u32,
  stage: u32,    // 0..3 value bytes (MSB first), 4..7 index bytes
  k: u32,
  loInit: u32,
  hiB: u32,      // topk_mask: second threshold in use (range mode)
  leadM: u32,    // topk_mask: the mask binding's own lead
}
@group(0) @binding(0) var<uniform> p: SelParams;

override WG: u32 = 256u;
override ITEMS: u32 = 16u;

fn sel_hi(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if (p.absMode != 0u) { return b & 0x7fffffffu; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

// ---- sel_init: state ← (0, loInit, k) and the histogram cleared -------------------------------------------------
@group(0) @binding(1) var<storage, read_write> init_state: array<u32>;
@group(0) @binding(2) var<storage, read_write> init_hist: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn sel_init(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    init_state[0] = 0u;
    init_state[1] = p.loInit;
    init_state[2] = p.k;
    init_state[3] = 0u;
  }
  for (var b = lid; b < 256u; b += WG) { atomicStore(&init_hist[b], 0u); }
}

// ---- sel_hist: one pass's histogram --------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> hx: array<f32>;
@group(0) @binding(2) var<storage, read> hstate: array<u32>;
@group(0) @binding(3) var<storage, read_write> hhist: array<atomic<u32>>;

var<workgroup> whist: array<atomic<u32>, 256>;

@compute @workgroup_size(WG)
fn sel_hist(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Tie mode: no index pass needed. (No early return: the barriers below must stay in uniform control flow.)
  let skip = p.stage >= 4u && hstate[3] != 0u;
  for (var b = lid; b < 256u; b += WG) { atomicStore(&whist[b], 0u); }
  workgroupBarrier();
  // ITEMS elements per invocation (strided by WG, so loads stay coalesced): fewer workgroups, fewer flushes of the
  // 256 bins into the global histogram.
  let first = (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
  let ph = hstate[0];
  let pl = hstate[1];
  for (var e = 0u; e < ITEMS; e++) {
    let i = first + e * WG;
    if (i >= p.n || skip) { break; }
    let hi = sel_hi(hx[p.lead + i]);
    let lo = ~(p.base + i);
    var byte = 0u;
    var hit = true;
    if (p.stage < 4u) {
      let sh = 24u - 8u * p.stage;
      if (p.stage > 0u) { hit = (hi >> (sh + 8u)) == (ph >> (sh + 8u)); }
      byte = (hi >> sh) & 255u;
    } else {
      let q = p.stage - 4u;
      let sh = 24u - 8u * q;
      hit = hi == ph;
      if (q > 0u) { hit = hit && (lo >> (sh + 8u)) == (pl >> (sh + 8u)); }
      byte = (lo >> sh) & 255u;
    }
    if (hit) { atomicAdd(&whist[byte], 1u); }
  }
  workgroupBarrier();
  for (var b = lid; b < 256u; b += WG) {
    let c = atomicLoad(&whist[b]);
    if (c != 0u) { atomicAdd(&hhist[b], c); }
  }
}

// ---- sel_scan: fix this pass's byte and clear the histogram for the next pass -------------------------------
@group(0) @binding(1) var<storage, read_write> sstate: array<u32>;
@group(0) @binding(2) var<storage, read_write> shist: array<u32>;

@compute @workgroup_size(1)
fn sel_scan() {
  if (p.stage >= 4u && sstate[3] != 0u) { return; }
  var rem = sstate[2];
  var chosen = 0u;
  for (var b = 255i; b >= 0i; b--) {
    let c = shist[u32(b)];
    if (rem <= c) { chosen = u32(b); break; }
    rem -= c;
  }
  if (p.stage < 4u) {
    sstate[0] = sstate[0] | (chosen << (24u - 8u * p.stage));
  } else {
    sstate[1] = (sstate[1] & ~(255u << (24u - 8u * (p.stage - 4u)))) | (chosen << (24u - 8u * (p.stage - 4u)));
  }
  sstate[2] = rem;
  // The last value byte: if every element of the chosen value is kept, the index passes are not needed.
  if (p.stage == 3u && rem == shist[chosen]) { sstate[3] = 1u; }
  for (var b = 0u; b < 256u; b++) { shist[b] = 0u; }
}

// ---- sel_tie (tie mode only): state[3] = 2 + the highest index whose value key equals the threshold's --------
@group(0) @binding(1) var<storage, read> tx: array<f32>;
@group(0) @binding(2) var<storage, read_write> tstate: array<atomic<u32>>;

var<workgroup> wmax: atomic<u32>;

@compute @workgroup_size(WG)
fn sel_tie(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Not in tie mode: nothing to do. (No early return: the barriers below must stay in uniform control flow.)
  let skip = atomicLoad(&tstate[3]) == 0u;
  if (lid == 0u) { atomicStore(&wmax, 0u); }
  workgroupBarrier();
  let first = (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
  let th = atomicLoad(&tstate[0]);
  var m = 0u;
  for (var e = 0u; e < ITEMS; e++) {
    let i = first + e * WG;
    if (i >= p.n || skip) { break; }
    if (sel_hi(tx[p.lead + i]) == th) { m = max(m, p.base + i + 2u); }
  }
  if (m != 0u) { atomicMax(&wmax, m); }
  workgroupBarrier();
  if (lid == 0u) {
    let w = atomicLoad(&wmax);
    if (w != 0u) { atomicMax(&tstate[3], w); }
  }
}

// ---- sel_tie_done: tie mode's lo key from the highest tied index -----------------------------------------------
@group(0) @binding(1) var<storage, read_write> dstate: array<u32>;

@compute @workgroup_size(1)
fn sel_tie_done() {
  if (dstate[3] >= 2u) { dstate[1] = ~(dstate[3] - 2u); }
}

// ---- topk_mask: mask[i] = 1 where key(i) ≥ threshold A (and key(i) < threshold B in range mode) -------------
@group(0) @binding(1) var<storage, read> mx: array<f32>;
@group(0) @binding(2) var<storage, read> mthr: array<u32>;   // [0..1] threshold A, [4..5] threshold B
@group(0) @binding(3) var<storage, read_write> mmask: array<u32>;

fn key_ge(hi: u32, lo: u32, th: u32, tl: u32) -> bool {
  return hi > th || (hi == th && lo >= tl);
}

@compute @workgroup_size(WG)
fn topk_mask(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  let hi = sel_hi(mx[p.lead + i]);
  let lo = ~(p.base + i);
  var keep = key_ge(hi, lo, mthr[0], mthr[1]);
  if (p.hiB != 0u) { keep = keep && !key_ge(hi, lo, mthr[4], mthr[5]); }
  mmask[p.leadM + i] = select(0u, 1u, keep);
}
