// Plain-JS references for ops/attention.ts: causal multi-head self-attention on q, k, v [b, t, d] with head h in
// columns h·hd … (h+1)·hd − 1, computed in f64 with the full score matrix (no online softmax). With dropout on the
// probabilities, P̃_ij = Z_ij·P_ij with Z_ij = keep/(1 − p) from the dropout hash of (seed, ((b·heads + h)·t + i)·t + j),
// and the gradient is taken through P̃ (dP_ij = Z_ij·dP̃_ij): the plain chain rule, not the kernel's shortcut.
import { dropoutHash, dropoutThreshold } from './dropout';

export interface AttentionDropoutRef {
  p: number;
  seed: number;
}

/** Z_ij of (batch bi, head h, query i, key j): 1 without dropout. */
function dropZ(drop: AttentionDropoutRef | undefined, bi: number, h: number, heads: number, t: number, i: number, j: number): number {
  if (!drop || drop.p === 0) return 1;
  const idx = (((bi * heads + h) * t + i) * t + j) >>> 0;
  return dropoutHash(drop.seed >>> 0, idx) >= dropoutThreshold(drop.p) ? Math.fround(1 / (1 - drop.p)) : 0;
}

/** Probabilities P[i][j] (j ≤ i) of one (batch, head). */
function probs(q: ArrayLike<number>, k: ArrayLike<number>, bi: number, h: number, t: number, d: number, hd: number): number[][] {
  const scale = 1 / Math.sqrt(hd);
  const P: number[][] = [];
  for (let i = 0; i < t; i++) {
    const s: number[] = [];
    for (let j = 0; j <= i; j++) {
      let dot = 0;
      for (let c = 0; c < hd; c++) dot += q[(bi * t + i) * d + h * hd + c] * k[(bi * t + j) * d + h * hd + c];
      s.push(dot * scale);
    }
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, x) => a + x, 0);
    P.push(e.map((x) => x / z));
  }
  return P;
}

/** Output [b, t, d]. */
export function attentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, b: number, t: number, d: number, heads: number, drop?: AttentionDropoutRef): Float32Array {
  const hd = d / heads;
  const out = new Float32Array(b * t * d);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      const P = probs(q, k, bi, h, t, d, hd);
      for (let i = 0; i < t; i++) {
        for (let c = 0; c < hd; c++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += dropZ(drop, bi, h, heads, t, i, j) * P[i][j] * v[(bi * t + j) * d + h * hd + c];
          out[(bi * t + i) * d + h * hd + c] = acc;
        }
      }
    }
  }
  return out;
}

/** Gradients of q, k, v for the output gradient dO, each [b, t, d]. */
export function attentionGradRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dO: ArrayLike<number>, b: number, t: number, d: number, heads: number, drop?: AttentionDropoutRef): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const hd = d / heads;
  const scale = 1 / Math.sqrt(hd);
  const n = b * t * d;
  const dq = new Float64Array(n);
  const dk = new Float64Array(n);
  const dv = new Float64Array(n);
  const at = (bi: number, i: number, h: number, c: number) => (bi * t + i) * d + h * hd + c;
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      const P = probs(q, k, bi, h, t, d, hd);
      for (let i = 0; i < t; i++) {
        // O_i = Σ_j Z_ij P_ij v_j: dP_ij = Z_ij (dO_i · v_j); dS_ij = P_ij (dP_ij − Σ_l P_il dP_il); dV_j += Z_ij P_ij dO_i.
        const dP: number[] = [];
        const Z: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let c = 0; c < hd; c++) s += dO[at(bi, i, h, c)] * v[at(bi, j, h, c)];
          Z.push(dropZ(drop, bi, h, heads, t, i, j));
          dP.push(Z[j] * s);
        }
        let rowDot = 0;
        for (let j = 0; j <= i; j++) rowDot += P[i][j] * dP[j];
        for (let j = 0; j <= i; j++) {
          const dS = P[i][j] * (dP[j] - rowDot) * scale;
          for (let c = 0; c < hd; c++) {
            dv[at(bi, j, h, c)] += Z[j] * P[i][j] * dO[at(bi, i, h, c)];
            dq[at(bi, i, h, c)] += dS * k[at(bi, j, h, c)];
            dk[at(bi, j, h, c)] += dS * q[at(bi, i, h, c)];
          }
        }
      }
    }
  }
  return { dq: Float32Array.from(dq), dk: Float32Array.from(dk), dv: Float32Array.from(dv) };
}
