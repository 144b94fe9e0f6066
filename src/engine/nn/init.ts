// Seeded parameter initialisation, so a config and a seed give the same model on every machine.

// The generator is Basin's one PRNG (data/rng.ts); models.ts takes it from here.
export { seededRandom } from '../data/rng';

export function normal(n: number, std: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const th = 2 * Math.PI * rand();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

export function uniform(n: number, bound: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * bound;
  return out;
}

export function constant(n: number, value: number): Float32Array {
  return new Float32Array(n).fill(value);
}
