// SparseGPT's CPU solve (src/engine/cpu/prune.ts, which the engine runs) against the closed form it approximates:
// pruning one weight q of a row, Optimal Brain Surgeon's update of the others is δ = −(w_q / [H⁻¹]_qq)·H⁻¹[:, q],
// the least-squares optimum of ‖(W − Ŵ)X‖² with Ŵ_q = 0. SparseGPT gives exactly that when q is the block's first
// column (later columns are then solved with q already fixed). Also: N:M keeps exactly N of every M per row, and
// an input that is always zero counts as pruned.
import * as assert from 'node:assert/strict';
import { cpuSparseGpt, reconstructionError, sparseGptPrepare } from '../../src/engine/cpu/prune';
import { Rng } from '../../src/engine/data/rng';

/** H = XᵀX + damp·mean(diag)·I of random inputs X [n, cols] (float64). */
function gram(rng: Rng, n: number, cols: number, dead: number[] = []): Float64Array {
  const x = new Float64Array(n * cols);
  for (let i = 0; i < x.length; i++) x[i] = dead.includes(i % cols) ? 0 : rng.normal();
  const h = new Float64Array(cols * cols);
  for (let r = 0; r < n; r++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] += x[r * cols + i] * x[r * cols + j];
  return h;
}

/** A dense inverse by Gauss–Jordan with partial pivoting (independent of the Cholesky path under test). */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    for (let k = 0; k < n; k++) {
      [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]];
      [inv[c * n + k], inv[p * n + k]] = [inv[p * n + k], inv[c * n + k]];
    }
    const d = m[c * n + c];
    for (let k = 0; k < n; k++) {
      m[c * n + k] /= d;
      inv[c * n + k] /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c];
      if (f === 0) continue;
      for (let k = 0; k < n; k++) {
        m[r * n + k] -= f * m[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }
  return inv;
}

describe('SparseGPT CPU solve (src/engine/cpu/prune.ts)', () => {
  it('one pruned weight in the first column: exactly the OBS closed-form update, the least-squares optimum', () => {
    const cols = 7; // prime: no block or pattern divides it
    const rng = new Rng(11, 0);
    const h = gram(rng, 40, cols);
    const damp = 0.01;
    // The damped H the solve uses.
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += h[j * cols + j] / cols;
    const hd = Float64Array.from(h);
    for (let j = 0; j < cols; j++) hd[j * cols + j] += damp * mean;
    const hinv = inverse(hd, cols);
    // One row; its first weight is by far the least salient, so keeping 6 of 7 prunes it alone.
    const w = Float64Array.from({ length: cols }, (_, j) => (j === 0 ? 1e-3 : 1 + j * 0.37));
    const prep = sparseGptPrepare(h, cols, damp);
    const { weight, mask } = cpuSparseGpt(w, 1, prep, { density: 6 / 7, blockSize: 128 });
    assert.deepEqual(Array.from(mask), [0, 1, 1, 1, 1, 1, 1]);
    const want = Float64Array.from(w, (v, j) => (j === 0 ? 0 : v - (w[0] / hinv[0]) * hinv[j]));
    for (let j = 0; j < cols; j++) assert.ok(Math.abs(weight[j] - want[j]) < 1e-6 * Math.max(1, Math.abs(want[j])), `w[${j}] = ${weight[j]}, OBS gives ${want[j]}`);
    // And no other update with w_0 = 0 reconstructs the layer's output better (a few random perturbations).
    const err = reconstructionError(w, weight, hd, 1, cols);
    for (let t = 0; t < 20; t++) {
      const other = Float64Array.from(weight, (v, j) => (j === 0 ? 0 : v + 1e-2 * rng.normal()));
      assert.ok(reconstructionError(w, other, hd, 1, cols) >= err, 'a perturbed update is no better');
    }
  });

  it('2:4 keeps exactly 2 of every 4 inputs in every row', () => {
    const rows = 5;
    const cols = 12;
    const rng = new Rng(3, 0);
    const prep = sparseGptPrepare(gram(rng, 30, cols), cols, 0.01);
    const w = Float64Array.from({ length: rows * cols }, () => rng.normal());
    const { weight, mask } = cpuSparseGpt(w, rows, prep, { density: 0.5, blockSize: 6, pattern: { n: 2, m: 4 } });
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols; g += 4) {
        const kept = [0, 1, 2, 3].filter((t) => mask[r * cols + g + t]).length;
        assert.equal(kept, 2, `row ${r}, inputs ${g}…${g + 3}`);
        for (let t = 0; t < 4; t++) if (!mask[r * cols + g + t]) assert.equal(weight[r * cols + g + t], 0);
      }
    }
  });

  it('an input that is always zero is pruned (weights zeroed and not counted as kept)', () => {
    const rows = 3;
    const cols = 6;
    const rng = new Rng(5, 0);
    const prep = sparseGptPrepare(gram(rng, 30, cols, [2]), cols, 0.01);
    assert.deepEqual(Array.from(prep.dead), [0, 0, 1, 0, 0, 0]);
    const w = Float64Array.from({ length: rows * cols }, () => 1 + rng.float());
    // Density 1: nothing is pruned by the budget; the dead input's weights are still zero and masked.
    const { weight, mask } = cpuSparseGpt(w, rows, prep, { density: 1, blockSize: 4 });
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        assert.equal(mask[r * cols + j], j === 2 ? 0 : 1, `mask[${r}, ${j}]`);
        if (j === 2) assert.equal(weight[r * cols + j], 0);
      }
    }
  });
});
