// Basin's one PRNG (sfc32, seeded through splitmix32) for everything that must be reproducible: model
// initialisation, synthetic data, splits, batch order, and the tests' and benchmarks' random inputs.
// `new Rng(seed, stream)` gives independent streams for one seed (e.g. one per epoch), so any stream can be
// recreated without replaying the others (resume); `seededRandom(seed)` is the same generator as a plain
// `() => number` for code that only wants uniform floats. (Model initialisation used a second generator,
// mulberry32, copied into several tests and benchmarks too; it now draws from this one. sfc32 is the one to keep:
// a resumed run redraws its batch order from it.)

function splitmix32(state: number): [number, number] {
  let z = (state + 0x9e3779b9) >>> 0;
  const next = z;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [(z ^ (z >>> 16)) >>> 0, next];
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number, stream = 0) {
    let s = (Math.floor(seed) ^ Math.imul(Math.floor(stream) + 1, 0x27d4eb2d)) >>> 0;
    let v: number;
    [v, s] = splitmix32(s);
    this.a = v;
    [v, s] = splitmix32(s);
    this.b = v;
    [v, s] = splitmix32(s);
    this.c = v;
    this.d = 1;
    // Mix in the high part of seeds above 2^32 and warm up.
    this.a = (this.a ^ Math.floor(seed / 4294967296)) >>> 0;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform uint32. */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1), 53 bits. */
  float(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (n ≤ 2^32). */
  int(n: number): number {
    if (!(n >= 1) || n > 4294967296) throw new RangeError(`Rng.int: n must be in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x = this.u32();
    while (x >= limit) x = this.u32();
    return x % n;
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(xs: T): T {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i];
      xs[i] = xs[j];
      xs[j] = t;
    }
    return xs;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

/** Uniform floats in [0, 1) (53 bits) from `new Rng(seed, stream)`, as a plain function. */
export function seededRandom(seed: number, stream = 0): () => number {
  const r = new Rng(seed, stream);
  return () => r.float();
}
