// Top-k selection without sorting (src/engine/ops/select.ts; CPU reference src/engine/cpu/select.ts).
//
// Every element gets a 64-bit composite key (hi, lo): hi orders the values as unsigned integers (abs mode: the
// bits of |x|, which order non-negative floats; signed mode: the sign-flipped bits), lo = ~index, so that among
// equal values the LOWER index ranks higher. All keys are distinct, so "the k-th largest key" keeps exactly k
// elements: ties at the threshold are resolved by index, deterministically.
// The value part hi is found by a radix select in three digits of 11, 11 and 10 bits, most significant first: per
// digit a 2048-bin histogram of the elements whose higher digits match the prefix found so far (sel_hist), then
// sel_scan walks the bins from the top and fixes the digit. (Bytes would take four passes, and the top byte of a
// float, its sign and high exponent bits, barely splits weights at all.) That leaves the rank r of the threshold
// among the elements whose value key is hi; the r-th lowest index among them is found without index passes:
// sel_count counts them per block of 2^14 elements, sel_blocks finds the block holding the r-th and the rank
// within it, and sel_find, one workgroup per piece, walks that block alone. So a select reads its input 4 times
// (3 value passes and the count) plus one block, whether ties straddle the threshold or not.
//
// State (u32): [0] hi (the value key), [1] lo (~index, set by sel_find), [2] rank still to find (1-based) inside
// the current prefix, then inside the block, 0 once found; [3] the block holding the threshold (sel_blocks).

struct SelParams {
  n: u32,        // elements in this piece (sel_init, sel_blocks: of the whole tensor)
  lead: u32,     // elements from the binding's start to the piece's first element
  base: u32,     // global index of the piece's first element
  absMode: u32,
  stage: u32,    // 0..2: value digits (most significant first)
  k: u32,
  spare: u32,
  hiB: u32,      // topk_mask: second threshold in use (range mode)
  leadM: u32,    // topk_mask: the mask binding's own lead
}
@group(0) @binding(0) var<uniform> p: SelParams;

override WG: u32 = 256u;
override ITEMS: u32 = 16u;

/** log2 of the elements per block of sel_count (the host keeps WG × ITEMS at most a block: a workgroup spans ≤ 2). */
const BLOCK_SHIFT: u32 = 14u;

/** Bins of a histogram: 2^11 (8 KiB of workgroup memory). */
const BINS: u32 = 2048u;

/** The digit of a stage: its lowest bit and its width (bits 31..21, 20..10, 9..0). */
fn digit_shift(stage: u32) -> u32 { return select(select(0u, 10u, stage == 1u), 21u, stage == 0u); }
fn digit_width(stage: u32) -> u32 { return select(10u, 11u, stage < 2u); }

fn sel_hi(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if (p.absMode != 0u) { return b & 0x7fffffffu; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

/** Blocks of 2^14 elements in n elements (no overflow near 2^32). */
fn sel_blocks_of(n: u32) -> u32 {
  return (n >> BLOCK_SHIFT) + select(0u, 1u, (n & ((1u << BLOCK_SHIFT) - 1u)) != 0u);
}

// ---- sel_init: state ← (0, 0, k, 0), the histogram and the block counts cleared ---------------------------------
@group(0) @binding(1) var<storage, read_write> init_state: array<u32>;
@group(0) @binding(2) var<storage, read_write> init_hist: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> init_counts: array<u32>;

@compute @workgroup_size(WG)
fn sel_init(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    init_state[0] = 0u;
    init_state[1] = 0u;
    init_state[2] = p.k;
    init_state[3] = 0u;
  }
  for (var b = lid; b < BINS; b += WG) { atomicStore(&init_hist[b], 0u); }
  let nb = sel_blocks_of(p.n);
  for (var b = lid; b < nb; b += WG) { init_counts[b] = 0u; }
}

// ---- sel_hist: one value digit's histogram -----------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> hx: array<f32>;
@group(0) @binding(2) var<storage, read> hstate: array<u32>;
@group(0) @binding(3) var<storage, read_write> hhist: array<atomic<u32>>;

var<workgroup> whist: array<atomic<u32>, BINS>;

@compute @workgroup_size(WG)
fn sel_hist(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var b = lid; b < BINS; b += WG) { atomicStore(&whist[b], 0u); }
  workgroupBarrier();
  // ITEMS elements per invocation (strided by WG, so loads stay coalesced): fewer workgroups, fewer flushes of the
  // bins into the global histogram.
  let first = (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
  let ph = hstate[0];
  let sh = digit_shift(p.stage);
  let top = sh + digit_width(p.stage);
  let mask = (1u << digit_width(p.stage)) - 1u;
  for (var e = 0u; e < ITEMS; e++) {
    let i = first + e * WG;
    if (i >= p.n) { break; }
    let hi = sel_hi(hx[p.lead + i]);
    // Stage 0 takes every element (a shift by 32 would be undefined, hence the test on the stage).
    if (p.stage == 0u || (hi >> top) == (ph >> top)) { atomicAdd(&whist[(hi >> sh) & mask], 1u); }
  }
  workgroupBarrier();
  for (var b = lid; b < BINS; b += WG) {
    let c = atomicLoad(&whist[b]);
    if (c != 0u) { atomicAdd(&hhist[b], c); }
  }
}

// ---- sel_scan: fix this pass's digit and clear the histogram for the next pass -------------------------------
// 256 invocations each sum a run of bins (from the top), one walks those sums and then the run that holds the rank:
// a single invocation walking 2,048 bins would wait on each load in turn.
@group(0) @binding(1) var<storage, read_write> sstate: array<u32>;
@group(0) @binding(2) var<storage, read_write> shist: array<u32>;

/** Per invocation of a 256-wide workgroup, the count of its run of items (sel_scan, sel_blocks, sel_find). */
var<workgroup> run_sum: array<u32, 256>;

/**
 * The run holding the rank-th item (1-based, in run order) and the rank within that run, from run_sum. Runs from
 * `last` on are not looked at: with last = 255 the last run takes whatever is left; with 256 a rank past every run
 * gives (256, the rank still to find after all of them).
 */
fn run_of(rank: u32, last: u32) -> vec2u {
  var r = rank;
  var j = 0u;
  for (; j < last; j++) {
    if (r <= run_sum[j]) { break; }
    r -= run_sum[j];
  }
  return vec2u(j, r);
}

@compute @workgroup_size(256)
fn sel_scan(@builtin(local_invocation_index) lid: u32) {
  let nbins = 1u << digit_width(p.stage);
  let per = nbins / 256u;
  let top = nbins - lid * per; // run lid: bins [top - per, top)
  var c = 0u;
  for (var b = top - per; b < top; b++) { c += shist[b]; }
  run_sum[lid] = c;
  workgroupBarrier();
  if (lid == 0u) {
    let run = run_of(sstate[2], 255u);
    let j = run.x;
    var rem = run.y;
    let lowest = nbins - (j + 1u) * per;
    var chosen = nbins - j * per - 1u;
    for (; chosen > lowest; chosen--) {
      let h = shist[chosen];
      if (rem <= h) { break; }
      rem -= h;
    }
    sstate[0] = sstate[0] | (chosen << digit_shift(p.stage));
    sstate[2] = rem;
  }
  // The bins are cleared once the walk has read them.
  workgroupBarrier();
  storageBarrier();
  for (var b = lid; b < BINS; b += 256u) { shist[b] = 0u; }
}

// ---- sel_count: per block of 2^14 elements, how many have the threshold's value key ---------------------------
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read> cstate: array<u32>;
@group(0) @binding(3) var<storage, read_write> ccounts: array<atomic<u32>>;

var<workgroup> wcount: array<atomic<u32>, 2>;

@compute @workgroup_size(WG)
fn sel_count(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (lid < 2u) { atomicStore(&wcount[lid], 0u); }
  workgroupBarrier();
  let wfirst = (wid.x + wid.y * nwg.x) * WG * ITEMS;
  let blk0 = (p.base + wfirst) >> BLOCK_SHIFT;
  let th = cstate[0];
  // Counted in registers first: with many equal values (zeros) every invocation would hit the same counter.
  var c = vec2u(0u, 0u);
  for (var e = 0u; e < ITEMS; e++) {
    let i = wfirst + lid + e * WG;
    if (i >= p.n) { break; }
    if (sel_hi(cx[p.lead + i]) == th) {
      if (((p.base + i) >> BLOCK_SHIFT) == blk0) { c.x += 1u; } else { c.y += 1u; }
    }
  }
  if (c.x != 0u) { atomicAdd(&wcount[0], c.x); }
  if (c.y != 0u) { atomicAdd(&wcount[1], c.y); }
  workgroupBarrier();
  if (lid < 2u) {
    let w = atomicLoad(&wcount[lid]);
    if (w != 0u) { atomicAdd(&ccounts[blk0 + lid], w); }
  }
}

// ---- sel_blocks: the block holding the rank-th such element, and the rank within it (state[3], state[2]) -------
@group(0) @binding(1) var<storage, read_write> bstate: array<u32>;
@group(0) @binding(2) var<storage, read> bcounts: array<u32>;

@compute @workgroup_size(256)
fn sel_blocks(@builtin(local_invocation_index) lid: u32) {
  let nb = sel_blocks_of(p.n);
  let per = (nb + 255u) / 256u;
  let s = min(lid * per, nb);
  let e = min(s + per, nb);
  var c = 0u;
  for (var b = s; b < e; b++) { c += bcounts[b]; }
  run_sum[lid] = c;
  workgroupBarrier();
  if (lid == 0u) {
    let run = run_of(bstate[2], 255u);
    let t = run.x;
    var r = run.y;
    var b = min(t * per, nb - 1u);
    let last = min(t * per + per, nb) - 1u;
    for (; b < last; b++) {
      if (r <= bcounts[b]) { break; }
      r -= bcounts[b];
    }
    bstate[2] = r;
    bstate[3] = b;
  }
}

// ---- sel_find: in the pieces overlapping that block (in index order), the element of that rank -----------------
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read_write> fstate: array<u32>;

var<workgroup> fpick: vec2u;

@compute @workgroup_size(256)
fn sel_find(@builtin(local_invocation_index) lid: u32) {
  let th = fstate[0];
  let rank = fstate[2];
  let blk = fstate[3];
  // This piece's part of the block, [lo, hi) in global indices (0 elements when it has none or it was found).
  let b0 = blk << BLOCK_SHIFT;
  let b1 = select(b0 + (1u << BLOCK_SHIFT), 0xffffffffu, blk >= (0xffffffffu >> BLOCK_SHIFT));
  let lo = max(b0, p.base);
  let hi = min(b1, p.base + p.n);
  let len = select(0u, hi - lo, rank != 0u && lo < hi);
  // Each invocation a run of consecutive indices, so the one holding the rank walks its own run in order.
  let per = (len + 255u) / 256u;
  let s = lo + min(lid * per, len);
  let e = lo + min(lid * per + per, len);
  var c = 0u;
  for (var g = s; g < e; g++) {
    if (sel_hi(fx[p.lead + g - p.base]) == th) { c += 1u; }
  }
  run_sum[lid] = c;
  workgroupBarrier();
  if (lid == 0u && len != 0u) {
    let run = run_of(rank, 256u);
    // Not in this piece: the next piece of the block looks for what is left.
    if (run.x == 256u) { fstate[2] = run.y; }
    fpick = run;
  }
  workgroupBarrier();
  let pick = fpick;
  if (len != 0u && lid == pick.x) {
    var r = pick.y;
    for (var g = s; g < e; g++) {
      if (sel_hi(fx[p.lead + g - p.base]) == th) {
        r -= 1u;
        if (r == 0u) {
          fstate[1] = ~g;
          fstate[2] = 0u;
          break;
        }
      }
    }
  }
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
