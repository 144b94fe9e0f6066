// Plain-JS references (f64) for the recommender losses of loss/cce.ts and loss/sampled.ts, and for the negative
// sampler of loss/negatives.ts (the same hash, so GPU and CPU draws are identical). Hidden X [rows, d], item
// table E [V, d], bias b [V] | null; a target outside [0, V) (−1 = padding) is ignored: no loss, not counted,
// no gradient. Losses are means over the counted rows.

export interface HeadGrads {
  loss: number;
  count: number;
  dx: Float64Array;
  de: Float64Array;
  db: Float64Array;
}

function dot(x: ArrayLike<number>, xo: number, e: ArrayLike<number>, eo: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += x[xo + k] * e[eo + k];
  return s;
}

/** Adds G[r, j] · E[item] to dX[r] and G[r, j] · X[r] to dE[item], G to db[item]. */
function scatter(out: HeadGrads, x: ArrayLike<number>, e: ArrayLike<number>, r: number, item: number, gv: number, d: number): void {
  if (gv === 0) return;
  for (let k = 0; k < d; k++) {
    out.dx[r * d + k] += gv * e[item * d + k];
    out.de[item * d + k] += gv * x[r * d + k];
  }
  out.db[item] += gv;
}

/** Full softmax cross-entropy over every item (what CCE must equal), with dX, dE, db for a loss gradient g. */
export function fullCeRef(x: ArrayLike<number>, e: ArrayLike<number>, b: ArrayLike<number> | null, targets: ArrayLike<number>, v: number, d: number, g = 1): HeadGrads {
  const rows = targets.length;
  const out: HeadGrads = { loss: 0, count: 0, dx: new Float64Array(rows * d), de: new Float64Array(v * d), db: new Float64Array(v) };
  for (let r = 0; r < rows; r++) if (targets[r] >= 0 && targets[r] < v) out.count++;
  const coef = out.count ? g / out.count : 0;
  const z = new Float64Array(v);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (!(t >= 0 && t < v)) continue;
    let m = -Infinity;
    for (let i = 0; i < v; i++) {
      z[i] = dot(x, r * d, e, i * d, d) + (b ? b[i] : 0);
      m = Math.max(m, z[i]);
    }
    let s = 0;
    for (let i = 0; i < v; i++) s += Math.exp(z[i] - m);
    const lse = m + Math.log(s);
    out.loss += lse - z[t];
    for (let i = 0; i < v; i++) scatter(out, x, e, r, i, (Math.exp(z[i] - lse) - (i === t ? 1 : 0)) * coef, d);
  }
  out.loss = out.count ? out.loss / out.count : 0;
  return out;
}

export interface SampledRefOptions {
  /** 'softmax': positive + negatives in one softmax (CCE−, sampled softmax); 'bce': one sigmoid per logit. */
  mode: 'softmax' | 'bce';
  /** softmax: added to every kept negative's logit (CCE−: log(V−1) − log(1+K); logQ uniform: log(V−1)). */
  corr?: number;
  /** softmax: subtracted from a negative's logit per item (logQ with a popularity sampler): log Q(item). */
  logq?: ArrayLike<number> | null;
  /** bce: exponent of the positive's sigmoid (gBCE's β; 1 = BCE). */
  beta?: number;
}

/**
 * The sampled losses given the negatives [rows, k]: per counted row the positive (its target) and k negatives;
 * a negative equal to the target or outside [0, V) is masked (takes no part). softmax: loss = LSE(s) − s₀ over
 * s₀ = z[t], sⱼ = z[nⱼ] + corr − logq[nⱼ]; bce: loss = β·softplus(−s₀) + Σⱼ softplus(sⱼ) with s = z.
 */
export function sampledRef(
  x: ArrayLike<number>, e: ArrayLike<number>, b: ArrayLike<number> | null, targets: ArrayLike<number>, negatives: ArrayLike<number>,
  v: number, d: number, k: number, opts: SampledRefOptions, g = 1,
): HeadGrads {
  const rows = targets.length;
  const out: HeadGrads = { loss: 0, count: 0, dx: new Float64Array(rows * d), de: new Float64Array(v * d), db: new Float64Array(v) };
  for (let r = 0; r < rows; r++) if (targets[r] >= 0 && targets[r] < v) out.count++;
  const coef = out.count ? g / out.count : 0;
  const beta = opts.beta ?? 1;
  const softplus = (u: number) => (u > 0 ? u + Math.log1p(Math.exp(-u)) : Math.log1p(Math.exp(u)));
  const sigmoid = (u: number) => 1 / (1 + Math.exp(-u));
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (!(t >= 0 && t < v)) continue;
    const items: number[] = [t];
    const s: number[] = [dot(x, r * d, e, t * d, d) + (b ? b[t] : 0)];
    for (let j = 0; j < k; j++) {
      const n = negatives[r * k + j];
      if (!(n >= 0 && n < v) || n === t) continue;
      let z = dot(x, r * d, e, n * d, d) + (b ? b[n] : 0);
      if (opts.mode === 'softmax') z += (opts.corr ?? 0) - (opts.logq ? opts.logq[n] : 0);
      items.push(n);
      s.push(z);
    }
    if (opts.mode === 'softmax') {
      const m = Math.max(...s);
      const lse = m + Math.log(s.reduce((a, z) => a + Math.exp(z - m), 0));
      out.loss += lse - s[0];
      items.forEach((it, j) => scatter(out, x, e, r, it, (Math.exp(s[j] - lse) - (j === 0 ? 1 : 0)) * coef, d));
    } else {
      out.loss += beta * softplus(-s[0]);
      scatter(out, x, e, r, t, beta * (sigmoid(s[0]) - 1) * coef, d);
      for (let j = 1; j < s.length; j++) {
        out.loss += softplus(s[j]);
        scatter(out, x, e, r, items[j], sigmoid(s[j]) * coef, d);
      }
    }
  }
  out.loss = out.count ? out.loss / out.count : 0;
  return out;
}

/** gBCE's β = α(t(1 − 1/α) + 1/α) with α = k / (V − 1) (gSASRec, arXiv 2308.07192). */
export function gbceBeta(k: number, v: number, t: number): number {
  const alpha = k / (v - 1);
  return alpha * (t * (1 - 1 / alpha) + 1 / alpha);
}

// ---- the negative sampler's hash (kernels/rec_loss.wgsl: rl_sample) -------------------------------------------

/** lowbias32 (Wellons): a 32-bit integer hash with good avalanche. */
export function hash32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The hash of draw `attempt` of sample j of row r (seed, step): independent streams per (seed, step, r, j). */
export function drawHash(seed: number, step: number, r: number, j: number, attempt: number): number {
  let h = hash32(seed);
  h = hash32(h ^ step);
  h = hash32(h ^ r);
  return hash32((h ^ (Math.imul(j, 0x9e3779b9) + attempt)) >>> 0);
}

/** ⌊h·m / 2³²⌋ for u32 h, m: an unbiased map of a uniform u32 to [0, m) (no modulo bias). */
export function mulhi(h: number, m: number): number {
  // 16-bit halves, as in the kernel: h·m reaches 2⁶⁴, beyond a double's exact integers.
  const al = h & 0xffff;
  const ah = h >>> 16;
  const bl = m & 0xffff;
  const bh = m >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const carry = ((ll >>> 16) + (lh & 0xffff) + (hl & 0xffff)) >>> 16;
  return ah * bh + (lh >>> 16) + (hl >>> 16) + carry;
}

export interface AliasTable {
  prob: Float32Array;
  alias: Int32Array;
}

/** Second hash of a draw (the alias table's coin). */
export function coinHash(h: number): number {
  return hash32(h ^ 0x68e31da4);
}

/** How many draws a popularity sample may make before falling back to a uniform non-target item. */
export const MAX_ATTEMPTS = 32;

/**
 * negatives [rows, k] as the GPU draws them: uniform over 1..V−1 without the target, or from an alias table
 * (popularity; a draw equal to the target is redrawn, up to MAX_ATTEMPTS, then a uniform non-target item).
 */
export function sampleNegativesRef(targets: ArrayLike<number>, k: number, v: number, seed: number, step: number, alias?: AliasTable): Int32Array {
  const out = new Int32Array(targets.length * k);
  const uniform = (t: number, h: number): number => {
    if (t >= 1 && t < v) {
      const n = 1 + mulhi(h, v - 2);
      return n >= t ? n + 1 : n;
    }
    return 1 + mulhi(h, v - 1);
  };
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r];
    for (let j = 0; j < k; j++) {
      let n = -1;
      if (alias) {
        for (let a = 0; a < MAX_ATTEMPTS && n < 0; a++) {
          const h = drawHash(seed, step, r, j, a);
          const col = mulhi(h, v);
          const u = (coinHash(h) >>> 8) / 16777216;
          const c = u < alias.prob[col] ? col : alias.alias[col];
          if (c !== t && c !== 0) n = c;
        }
        if (n < 0) n = uniform(t, drawHash(seed, step, r, j, MAX_ATTEMPTS));
      } else n = uniform(t, drawHash(seed, step, r, j, 0));
      out[r * k + j] = n;
    }
  }
  return out;
}
