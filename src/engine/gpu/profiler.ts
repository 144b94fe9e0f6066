// Per-kernel profile of the runtime's dispatches: counts, CPU-side recording time (time spent inside
// rt.dispatch: pipeline/bind-group lookup, uniforms, encoding) and, where the device has 'timestamp-query', GPU
// time from a timestamp pair around each dispatch (each timed dispatch gets its own compute pass, so profiling
// perturbs what it measures a little; use it for where the time goes, not for the step time itself).
// Used by `basin bench train-step` and `basin train --profile`. Attaches to a Runtime through its `profiler`
// hook (src/engine/gpu/runtime.ts) and by wrapping that runtime instance's dispatch().
import type { Runtime } from './runtime';

const QUERIES = 4096; // the WebGPU maximum per query set: 2,048 timed dispatches per set
const RESOLVE = 0x200 | 0x04; // QUERY_RESOLVE | COPY_SRC
const STAGING = 0x01 | 0x08; // MAP_READ | COPY_DST

export interface KernelProfileRow {
  kernel: string;
  dispatches: number;
  /** Sum of CPU time inside rt.dispatch() for this kernel (ms). */
  cpuMs: number;
  /** Sum of GPU time between the pass's begin and end timestamps (ms); null without timestamp-query. */
  gpuMs: number | null;
}

interface QuerySlot {
  qs: GPUQuerySet;
  resolve: GPUBuffer;
  staging: GPUBuffer;
  keys: string[];
}

interface KernelStat {
  n: number;
  cpuMs: number;
  gpuNs: number;
}

export class KernelProfiler {
  readonly gpuTiming: boolean;
  private stats = new Map<string, KernelStat>();
  private free: QuerySlot[] = [];
  private open: QuerySlot[] = [];
  private submitted: QuerySlot[] = [];
  private reads: Promise<void>[] = [];
  private origDispatch: Runtime['dispatch'] | null = null;
  private readError: unknown = null;

  constructor(private readonly rt: Runtime, opts: { gpuTiming?: boolean } = {}) {
    const has = rt.gpu.info.features.includes('timestamp-query');
    this.gpuTiming = (opts.gpuTiming ?? true) && has;
  }

  /** Start profiling: wraps rt.dispatch (CPU time, counts) and installs the timestamp hook. */
  attach(): this {
    if (this.origDispatch) return this;
    const rt = this.rt;
    const orig = rt.dispatch;
    this.origDispatch = orig;
    const stats = this.stats;
    rt.dispatch = function (this: Runtime, spec, buffers, uniforms, groups) {
      const t0 = performance.now();
      orig.call(this, spec, buffers, uniforms, groups);
      const key = `${spec.file}:${spec.entry}`;
      let s = stats.get(key);
      if (!s) stats.set(key, (s = { n: 0, cpuMs: 0, gpuNs: 0 }));
      s.n++;
      s.cpuMs += performance.now() - t0;
    };
    if (this.gpuTiming) {
      rt.profiler = {
        beginDispatch: (key) => this.beginDispatch(key),
        beforeSubmit: (enc) => this.beforeSubmit(enc),
        afterSubmit: () => this.afterSubmit(),
      };
    }
    return this;
  }

  /** Stop profiling (pending timestamp reads still land; await drain() for them). */
  detach(): void {
    if (!this.origDispatch) return;
    delete (this.rt as { dispatch?: unknown }).dispatch; // back to the prototype's method
    this.origDispatch = null;
    if (this.rt.profiler) {
      this.rt.flush(); // resolve what is recorded while the hook is still installed
      this.rt.profiler = null;
    }
  }

  /** Wait for every submitted timestamp readback. */
  async drain(): Promise<void> {
    this.rt.flush();
    while (this.reads.length) await Promise.all(this.reads.splice(0));
    if (this.readError) throw this.readError;
  }

  reset(): void {
    this.stats.clear();
  }

  rows(): KernelProfileRow[] {
    return [...this.stats.entries()]
      .map(([kernel, s]) => ({ kernel, dispatches: s.n, cpuMs: s.cpuMs, gpuMs: this.gpuTiming ? s.gpuNs / 1e6 : null }))
      .sort((a, b) => (b.gpuMs ?? b.cpuMs) - (a.gpuMs ?? a.cpuMs) || b.dispatches - a.dispatches);
  }

  destroy(): void {
    this.detach();
    for (const s of [...this.free, ...this.open]) {
      s.qs.destroy();
      s.resolve.destroy();
      s.staging.destroy();
    }
    this.free = [];
    this.open = [];
  }

  private slot(): QuerySlot {
    const last = this.open[this.open.length - 1];
    if (last && last.keys.length < QUERIES / 2) return last;
    const dev = this.rt.device;
    const s = this.free.pop() ?? {
      qs: dev.createQuerySet({ type: 'timestamp', count: QUERIES }),
      resolve: dev.createBuffer({ size: QUERIES * 8, usage: RESOLVE }),
      staging: dev.createBuffer({ size: QUERIES * 8, usage: STAGING }),
      keys: [],
    };
    s.keys = [];
    this.open.push(s);
    return s;
  }

  private beginDispatch(key: string): GPUComputePassTimestampWrites {
    const s = this.slot();
    const i = s.keys.length;
    s.keys.push(key);
    return { querySet: s.qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  private beforeSubmit(enc: GPUCommandEncoder): void {
    for (const s of this.open) {
      const n = s.keys.length * 2;
      if (!n) continue;
      enc.resolveQuerySet(s.qs, 0, n, s.resolve, 0);
      enc.copyBufferToBuffer(s.resolve, 0, s.staging, 0, n * 8);
      this.submitted.push(s);
    }
    this.open = [];
  }

  private afterSubmit(): void {
    for (const s of this.submitted.splice(0)) {
      this.reads.push(
        s.staging.mapAsync(GPUMapMode.READ, 0, s.keys.length * 16).then(
          () => {
            const t = new BigUint64Array(s.staging.getMappedRange(0, s.keys.length * 16));
            for (let i = 0; i < s.keys.length; i++) {
              const dt = Number(t[2 * i + 1] - t[2 * i]);
              let st = this.stats.get(s.keys[i]);
              if (!st) this.stats.set(s.keys[i], (st = { n: 0, cpuMs: 0, gpuNs: 0 }));
              if (dt > 0 && dt < 1e12) st.gpuNs += dt;
            }
            s.staging.unmap();
            this.free.push(s);
          },
          (e) => {
            this.readError ??= e;
          },
        ),
      );
    }
  }
}

/** The profile as text lines: top kernels by GPU time (or CPU time without timestamps) and by count. */
export function formatProfile(rows: KernelProfileRow[], steps: number, top = rows.length): string[] {
  const per = Math.max(1, steps);
  const gpu = rows.some((r) => r.gpuMs !== null);
  const totalGpu = rows.reduce((s, r) => s + (r.gpuMs ?? 0), 0);
  const lines = [
    `  ${'kernel'.padEnd(34)} ${'disp/step'.padStart(9)} ${'cpu ms/step'.padStart(11)} ${gpu ? `${'gpu ms/step'.padStart(11)} ${'gpu %'.padStart(6)}` : '(no timestamp-query: GPU time n/a)'}`,
  ];
  for (const r of rows.slice(0, top)) {
    lines.push(
      `  ${r.kernel.padEnd(34)} ${(r.dispatches / per).toFixed(1).padStart(9)} ${(r.cpuMs / per).toFixed(3).padStart(11)}` +
        (gpu ? ` ${((r.gpuMs ?? 0) / per).toFixed(2).padStart(11)} ${((100 * (r.gpuMs ?? 0)) / Math.max(totalGpu, 1e-9)).toFixed(1).padStart(6)}` : ''),
    );
  }
  return lines;
}
