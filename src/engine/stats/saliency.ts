// Task saliency of a fine-tune, on demand at sample time: per tensor Σ τ² ⊙ F̂ with τ = θ − θ_base and
// F̂_ij = sqrt(R_i·C_j / ΣR), R and C the row and column sums of the second moment that the same frame carries
// (vRow, vCol). This is the curvature merge's saliency mass (notes/algorithms.md §1 "Task saliency" and §2
// "curvature"; src/engine/cpu/merge.ts cpuFhat, kernels/merge.wgsl fhat_of): the same F̂, the same sum, so the
// panel's number for a tensor is the number `basin merge --method curvature` reports for that expert
// (test/unit/stats-saliency.test.ts holds the two together).
//
// No dense buffer is kept during training: the base weights are read from the base checkpoint on disk, one tensor
// at a time, at each sampled step (the run does not otherwise keep them: init.from loads them into the parameters,
// which then train away from them). A sample costs one read of the base file (the page cache usually holds it) and
// one readback of the parameters, only in runs that have a base.
import { openWeightsFile, type WeightsFile } from '../../files/merge/model-files';

/**
 * Σ_ij τ_ij² · sqrt(R_i·C_j / ΣR) over a [rows, cols] tensor (row-major), factored as
 * Σ_i sqrt(R_i / ΣR) · Σ_j τ_ij² · sqrt(C_j) so that F̂ is never formed. τ is `w` itself, or w − base (in f32, as
 * the merge forms τ) when `base` is given: the task vector is never stored. ΣR ≤ 0 (no second moment yet) gives 0,
 * as the merge's F̂ does.
 */
export function saliencyMass(w: ArrayLike<number>, rows: number, cols: number, vRow: ArrayLike<number>, vCol: ArrayLike<number>, base?: ArrayLike<number>): number {
  if (w.length !== rows * cols || vRow.length !== rows || vCol.length !== cols || (base && base.length !== w.length)) {
    throw new Error(`saliency mass: τ has ${w.length} values${base ? ` (base ${base.length})` : ''}, R ${vRow.length}, C ${vCol.length}, for a [${rows}, ${cols}] tensor`);
  }
  let sumR = 0;
  for (let i = 0; i < rows; i++) sumR += vRow[i];
  if (!(sumR > 0)) return 0;
  const sqrtC = new Float64Array(cols);
  for (let j = 0; j < cols; j++) sqrtC[j] = Math.sqrt(Math.max(0, vCol[j]));
  let total = 0;
  for (let i = 0; i < rows; i++) {
    const r = vRow[i];
    if (!(r > 0)) continue;
    let row = 0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      const d = base ? Math.fround(w[o + j] - base[o + j]) : w[o + j];
      row += d * d * sqrtC[j];
    }
    total += Math.sqrt(r / sumR) * row;
  }
  return total;
}

/** The base checkpoint of a fine-tune, read tensor by tensor when a sample needs it (nothing kept in between). */
export class BaseWeights {
  private weights: Promise<WeightsFile> | null = null;

  /** @param file a .safetensors file, or a sharded model's model.safetensors.index.json */
  constructor(readonly file: string) {}

  /** The base's tensor `name` as f32, or null when the base has no tensor of that name and shape. */
  async read(name: string, shape: readonly number[]): Promise<Float32Array | null> {
    // Opened once (the header parsed once); the files stay open until close().
    this.weights ??= openWeightsFile(this.file);
    const w = await this.weights;
    const t = w.tensors[name];
    if (!t || (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')) return null;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) return null;
    return w.read(name);
  }

  /** Closes the files (a later read opens them again). */
  close(): void {
    const w = this.weights;
    this.weights = null;
    void w?.then((x) => x.close(), () => undefined);
  }
}
